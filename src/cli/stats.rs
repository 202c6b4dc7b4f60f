//! `archivist stats` and `archivist problems`: what the archive holds.

use anyhow::Result;

use super::open_store;
use crate::config::Config;

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
    let store = open_store(config)?;
    let stats = store.stats()?;
    if args.json {
        println!("{}", serde_json::to_string(&stats)?);
    } else {
        println!(
            "{} messages in {} threads, {} problems",
            stats.messages, stats.threads, stats.problems
        );
        for (list, count) in &stats.lists {
            println!("  {list:<30} {count:>8}");
        }
    }
    Ok(())
}

/// Prints the recorded problems with file and byte offset.
pub fn problems(config: &Config, args: ProblemsArgs) -> Result<()> {
    let store = open_store(config)?;
    let problems = store.problems()?;
    if args.json {
        let rows: Vec<serde_json::Value> = problems
            .iter()
            .map(|(file, offset, kind, detail)| {
                serde_json::json!({"file": file, "offset": offset, "kind": kind, "detail": detail})
            })
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        for (file, offset, kind, detail) in &problems {
            println!("{file}:{offset}: {kind}: {detail}");
        }
    }
    Ok(())
}
