//! Command-line interface: argument types and one module per subcommand. This is the edge
//! where the wall clock is read and errors get their context.

/// `println!` that returns the write's error instead of panicking: a reader that goes away
/// (`archivist digest preview | head`) ends the command quietly (see `main`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `print!` that returns the write's error instead of panicking (see [`outln`]).
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

mod demo;
mod digest;
mod import;
mod search;
mod serve;
mod stats;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::config::{self, Config};
use crate::store::Store;

/// Mailing-list archive: import mbox archives, search them, serve them, mail weekly digests.
#[derive(Debug, Parser)]
#[command(name = "archivist", version, about)]
pub struct Args {
    /// Configuration file (TOML); see `archivist config --example`.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory holding the archive (overrides `data_dir` in the config).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Import mbox archives (mboxrd, mboxo, Pipermail .txt, .eml, any of them gzip'd).
    Import(import::ImportArgs),
    /// Serve the archive over HTTP: pages, search, feeds and the JSON API.
    Serve(ServeArgs),
    /// Search the archive (see the query language in ARCHITECTURE.md / the web help page).
    Search(search::SearchArgs),
    /// Rebuild the search index from the archive and swap it in atomically.
    Reindex(search::ReindexArgs),
    /// Print archive statistics.
    Stats(stats::StatsArgs),
    /// List the problems recorded during imports (byte ranges that are not messages).
    Problems(stats::ProblemsArgs),
    /// Print a stored message's raw bytes, exactly as received.
    Raw(stats::RawArgs),
    /// Print configuration.
    Config(ConfigArgs),
    /// Generate the sample archive, import it and print the statistics.
    Demo(demo::DemoArgs),
    /// Write a generated sample archive (for demos and benchmarks) without importing it.
    Sample(demo::SampleArgs),
    /// Weekly topic digests: preview, send, subscribe, confirm, unsubscribe.
    Digest(digest::DigestArgs),
}

/// `archivist serve [--bind ADDR]`
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (default: `server.bind` in the config, 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
}

/// `archivist config`
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// Print the example configuration, which documents every default.
    #[arg(long)]
    pub example: bool,
    /// Print the configuration in effect (file, defaults and environment); secrets show as
    /// `[redacted]`.
    #[arg(long, conflicts_with = "example")]
    pub show: bool,
}

/// A mistake in how archivist was called (exit code 2), as opposed to a failure (exit 1).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Runs a parsed command line.
pub fn run(args: Args) -> Result<()> {
    let mut config =
        Config::load(args.config.as_deref())?.with_secrets(|name| std::env::var(name).ok());
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    match args.command {
        Command::Import(a) => import::run(&config, a),
        Command::Stats(a) => stats::run(&config, a),
        Command::Search(a) => search::run(&config, a),
        Command::Serve(a) => {
            let bind = a.bind.unwrap_or_else(|| config.server.bind.clone());
            serve::run(&config, &bind)
        }
        Command::Reindex(a) => search::reindex(&config, a),
        Command::Problems(a) => stats::problems(&config, a),
        Command::Raw(a) => stats::raw(&config, a),
        Command::Config(a) => {
            if a.example {
                out!("{}", config::EXAMPLE)?;
                Ok(())
            } else if a.show {
                outln!("{config:#?}")?;
                Ok(())
            } else {
                Err(UsageError(
                    "nothing to print: use `archivist config --example` or `--show`".into(),
                )
                .into())
            }
        }
        Command::Demo(a) => demo::run(&config, a),
        Command::Sample(a) => demo::sample(a),
        Command::Digest(a) => digest::run(&config, a),
    }
}

/// Opens the archive a reading command works on; a data directory without one (a typo, say)
/// is an error rather than a new, empty archive answering "nothing found".
pub fn open_existing_store(config: &Config) -> Result<Store> {
    let path = config.data_dir.join("archive.sqlite3");
    if !path.exists() {
        anyhow::bail!(
            "no archive in {} (import one with `archivist import`, or pass --data-dir)",
            config.data_dir.display()
        );
    }
    Store::open(&path)
}

/// Opens (creating if needed) the archive in the configured data directory.
pub fn open_store(config: &Config) -> Result<Store> {
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data directory {}", config.data_dir.display()))?;
    Store::open(&config.data_dir.join("archive.sqlite3"))
}
