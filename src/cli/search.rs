//! `archivist search` and `archivist reindex`.

use std::io::Write as _;
use std::time::Instant;

use anyhow::{Context, Result};

use super::open_existing_store;
use crate::config::Config;
use crate::index::{SearchOptions, Searcher, Sort};
use crate::indexer;

/// `archivist search [--json] [--limit N] [--sort relevance|date] QUERY`
#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Hits per page (at most 1000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=1000))]
    pub limit: u64,
    /// Hits to skip (for paging).
    #[arg(long, default_value_t = 0)]
    pub offset: u64,
    /// Result order.
    #[arg(long, value_enum, default_value_t = SortArg::Relevance)]
    pub sort: SortArg,
    /// One hit per thread, with the number of matching messages in it.
    #[arg(long)]
    pub collapse_threads: bool,
    /// The query; several words are joined. The language (words, "phrases", OR, NOT, -word,
    /// from: to: s: b: list: tag: msgid: thread: has:patch has:attachment, date:2023-05,
    /// date:A..B, after:, before:) is described on the web archive's /help page and in
    /// README.md. A query that starts with `-word` follows `--`: `search -- -kolla nova`
    /// (options may come after the query: `search nova --limit 5`).
    #[arg(required = true, value_name = "QUERY")]
    pub query: Vec<String>,
}

/// `--sort`
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum SortArg {
    /// BM25 relevance with a mild preference for recent messages.
    Relevance,
    /// Newest first.
    Date,
}

/// `archivist reindex`
#[derive(Debug, clap::Args)]
pub struct ReindexArgs {}

/// Runs a search and prints the page.
pub fn run(config: &Config, args: SearchArgs) -> Result<()> {
    let store = open_existing_store(config)?;
    let dir = indexer::index_dir(&config.data_dir);
    let searcher = Searcher::open(&dir)
        .with_context(|| format!("cannot open the search index in {}", dir.display()))?;
    let options = SearchOptions {
        limit: args.limit as usize,
        offset: args.offset as usize,
        sort: match args.sort {
            SortArg::Relevance => Sort::Relevance,
            SortArg::Date => Sort::Date,
        },
        collapse_threads: args.collapse_threads,
    };
    let query = args.query.join(" ");
    let page = crate::search::search(&store, &searcher, &query, &options)?;
    // Written, not `println!`ed: a reader that goes away (`| head`) is an error to return,
    // not a panic.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        // Serialized first: serde_json's own write errors hide the I/O error's kind.
        writeln!(out, "{}", serde_json::to_string(&page)?)?;
        out.flush()?;
        return Ok(());
    }
    for notice in &page.notices {
        writeln!(out, "note: {notice}")?;
    }
    writeln!(out, "{} matching", page.total)?;
    for hit in &page.hits {
        writeln!(
            out,
            "\n{}  {}  [{}]\n  {}\n  <{}>{}",
            hit.date.as_deref().unwrap_or("undated"),
            hit.from,
            hit.lists.join(", "),
            hit.subject,
            hit.message_id,
            if hit.thread_hits > 1 {
                format!("  ({} matching messages in this thread)", hit.thread_hits)
            } else {
                String::new()
            }
        )?;
        writeln!(out, "  {}", strip_tags(&hit.snippet))?;
    }
    out.flush()?;
    Ok(())
}

/// Rebuilds the index from the archive and swaps it in.
pub fn reindex(config: &Config, _args: ReindexArgs) -> Result<()> {
    let store = open_existing_store(config)?;
    let started = Instant::now();
    let count = indexer::rebuild(&store, &config.data_dir)?;
    let seconds = started.elapsed().as_secs_f64();
    outln!(
        "indexed {count} messages in {seconds:.2} s ({:.0} messages/s)",
        count as f64 / seconds.max(1e-9)
    )?;
    Ok(())
}

/// The snippet as plain text for a terminal: highlight tags dropped, entities decoded.
fn strip_tags(html: &str) -> String {
    html.replace("<b>", "")
        .replace("</b>", "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
