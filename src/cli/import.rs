//! `archivist import`: reads archives into the store and prints what happened.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{open_store, UsageError};
use crate::config::Config;
use crate::ingest::{self, Report};
use crate::message::ListName;

/// `archivist import [--list NAME] [--dry-run] [--json] PATH...`
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// File every message under this list (default: the List-Id header, else the folder name).
    #[arg(long, value_name = "NAME")]
    pub list: Option<String>,
    /// Read and check everything, report what would happen, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print exactly one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// Files (.mbox, .mbx, Pipermail .txt, .eml, any .gz), directories, or - for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// Runs the import.
pub fn run(config: &Config, args: ImportArgs) -> Result<()> {
    let list = args
        .list
        .as_deref()
        .map(ListName::parse)
        .transpose()
        .map_err(UsageError)?;
    let options = ingest::Options {
        list,
        batch_size: config.import.batch_size,
        max_message_bytes: config.import.max_message_bytes,
        compression_level: config.import.compression_level,
        parse_threads: config.import.parse_threads,
    };
    // A dry run against an archive that does not exist yet compares with an empty one in
    // memory: it creates no file.
    let mut store = if args.dry_run && !config.data_dir.join("archive.sqlite3").exists() {
        crate::store::Store::open(std::path::Path::new(":memory:"))?
    } else {
        open_store(config)?
    };
    // A reserved name is refused up front, before anything is read, unless an older version
    // already keeps a list under it.
    if let Some(l) = &options.list {
        if let Some(reason) = l.reserved_reason() {
            if !store.list_exists(l.as_str())? {
                return Err(UsageError(reason).into());
            }
        }
    }
    let mut indexer = if args.dry_run {
        None
    } else {
        Some(crate::indexer::Indexer::open(&config.data_dir)?)
    };
    let bar = progress_bar(&args.paths);
    let messages = AtomicU64::new(0);
    let on_progress = |records: u64, bytes: u64| {
        let total = messages.fetch_add(records, Ordering::Relaxed) + records;
        bar.inc(bytes);
        bar.set_message(format!("{total} messages"));
    };
    let started = Instant::now();
    let result = ingest::import(
        &mut store,
        indexer.as_mut(),
        &args.paths,
        &options,
        args.dry_run,
        &on_progress,
    );
    bar.finish_and_clear();
    let mut report = result?;
    report.seconds = started.elapsed().as_secs_f64();
    if args.json {
        outln!("{}", serde_json::to_string(&report)?)?;
    } else {
        print_human(&report, args.dry_run)?;
    }
    // Everything readable was imported and reported; the exit status still says some was not.
    if !report.unreadable.is_empty() {
        anyhow::bail!(
            "{} input(s) could not be read: {}",
            report.unreadable.len(),
            report.unreadable.join("; ")
        );
    }
    Ok(())
}

/// A progress bar on a terminal (messages, MB, rate, ETA), nothing otherwise. The total is the
/// size on disk; gzip'd files are counted at four times their size, a typical text ratio.
fn progress_bar(paths: &[PathBuf]) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(None, ProgressDrawTarget::hidden());
    }
    let total: u64 = ingest::source::expand(paths)
        .map(|expanded| {
            expanded
                .inputs
                .iter()
                .filter_map(|i| match i {
                    ingest::source::Input::File(p) => std::fs::metadata(p).ok().map(|m| {
                        let gz = p.extension().is_some_and(|e| e == "gz");
                        m.len() * if gz { 4 } else { 1 }
                    }),
                    ingest::source::Input::Stdin => None,
                })
                .sum()
        })
        .unwrap_or(0);
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg} {bytes}/{total_bytes} ({bytes_per_sec}, ETA {eta}) {wide_bar}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn print_human(report: &Report, dry_run: bool) -> std::io::Result<()> {
    if dry_run {
        outln!("dry run: nothing was written\n")?;
        for f in &report.details {
            outln!("{}", f.path)?;
            if let Some(note) = &f.note {
                outln!("  note:            {note}")?;
            }
            outln!("  list:            {}", f.list)?;
            outln!(
                "  variant:         {} ({}, {} line endings)",
                f.variant,
                f.encoding,
                f.line_endings
            )?;
            outln!("  messages:        {}", f.messages)?;
            outln!("  suspicious splits: {}", f.suspicious_splits)?;
            outln!("  body From lines: {}", f.body_from_lines)?;
            outln!("  >From unquoted:  {}", f.quoted_from_lines)?;
            outln!("  missing ids:     {}", f.missing_ids)?;
            outln!("  undated:         {}", f.undated)?;
            outln!("  problems:        {}", f.problems)?;
            outln!(
                "  date range:      {} .. {}",
                f.first_date.as_deref().unwrap_or("-"),
                f.last_date.as_deref().unwrap_or("-")
            )?;
        }
        outln!()?;
    }
    for unreadable in &report.unreadable {
        outln!("could not read: {unreadable}")?;
    }
    for skipped in &report.skipped {
        outln!("skipped (hidden, or not a mail archive): {skipped}")?;
    }
    let rate = if report.seconds > 0.0 {
        report.messages_read as f64 / report.seconds
    } else {
        0.0
    };
    outln!(
        "{} files, {} messages read: {} new, {} cross-posts, {} duplicates, {} problems ({:.1} MB in {:.2} s, {:.0} messages/s)",
        report.files,
        report.messages_read,
        report.messages_new,
        report.cross_posts,
        report.duplicates,
        report.problems,
        report.bytes as f64 / 1e6,
        report.seconds,
        rate
    )?;
    if report.problems > 0 {
        outln!("see `archivist problems` for where and why")?;
    }
    Ok(())
}
