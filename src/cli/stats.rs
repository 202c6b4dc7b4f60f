//! `archivist stats` and `archivist problems`: what the archive holds.

use std::io::Write;

use anyhow::{bail, Result};

use super::{open_existing_store, UsageError};
use crate::config::Config;
use crate::message::MessageId;

/// `archivist raw MESSAGE_ID`
#[derive(Debug, clap::Args)]
pub struct RawArgs {
    /// The Message-ID, with or without angle brackets.
    pub message_id: String,
}

/// Writes a message's stored bytes to stdout.
pub fn raw(config: &Config, args: RawArgs) -> Result<()> {
    let id = MessageId::parse(&args.message_id)
        .ok_or_else(|| UsageError(format!("not a Message-ID: {:?}", args.message_id)))?;
    let store = open_existing_store(config)?;
    match store.raw_message(&id)? {
        Some(bytes) => {
            std::io::stdout().write_all(&bytes)?;
            Ok(())
        }
        None => bail!("no message with Message-ID <{id}> in the archive"),
    }
}

/// `archivist stats [--json]`
#[derive(Debug, clap::Args)]
pub struct StatsArgs {
    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `archivist problems [--json]`
#[derive(Debug, clap::Args)]
pub struct ProblemsArgs {
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

/// Prints archive statistics.
pub fn run(config: &Config, args: StatsArgs) -> Result<()> {
    let store = open_existing_store(config)?;
    let stats = store.stats()?;
    // Written, not `println!`ed: a reader that goes away (`| head`) is an error to return.
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        writeln!(out, "{}", serde_json::to_string(&stats)?)?;
    } else {
        writeln!(
            out,
            "{} messages in {} threads, {} problems, {} further copies",
            stats.messages, stats.threads, stats.problems, stats.copies
        )?;
        for (list, count) in &stats.lists {
            writeln!(out, "  {list:<30} {count:>8}")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Prints the recorded problems with file and byte offset.
pub fn problems(config: &Config, args: ProblemsArgs) -> Result<()> {
    let store = open_existing_store(config)?;
    let problems = store.problems()?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    if args.json {
        // Each `{"file","offset","length","kind","detail"}`.
        writeln!(out, "{}", serde_json::to_string(&problems)?)?;
    } else {
        for p in &problems {
            writeln!(
                out,
                "{}:{}: {}: {} ({} bytes)",
                p.file, p.offset, p.kind, p.detail, p.length
            )?;
        }
    }
    out.flush()?;
    Ok(())
}
