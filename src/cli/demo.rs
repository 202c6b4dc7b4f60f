//! `archivist demo` and `archivist sample`: the generated sample archive, for a first look and
//! for benchmarks.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{import, stats};
use crate::config::Config;
use crate::sample::{self, SampleSpec};

/// `archivist demo [--no-serve]`
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Import and print the statistics, but do not start the web server.
    #[arg(long)]
    pub no_serve: bool,
}

/// `archivist sample --out DIR`
#[derive(Debug, clap::Args)]
pub struct SampleArgs {
    /// Directory to write the archive files into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Weeks of traffic.
    #[arg(long, default_value_t = 8)]
    pub weeks: u32,
    /// Messages per week (before cross-post copies).
    #[arg(long, default_value_t = 75)]
    pub per_week: u32,
    /// Seed: the same seed writes the same bytes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Generates the sample archive under the data directory, imports it, prints the stats and
/// serves it.
pub fn run(config: &Config, args: DemoArgs) -> Result<()> {
    let dir = config.data_dir.join("sample");
    let files = sample::write_sample(&dir, &SampleSpec::demo())
        .with_context(|| format!("cannot write the sample archive to {}", dir.display()))?;
    println!(
        "wrote the sample archive: {} files in {}",
        files.len(),
        dir.display()
    );
    import::run(
        config,
        import::ImportArgs {
            list: None,
            dry_run: false,
            json: false,
            paths: vec![dir],
        },
    )?;
    stats::run(config, stats::StatsArgs { json: false })?;
    if args.no_serve {
        return Ok(());
    }
    println!(
        "open http://{}/ in a browser (Ctrl-C to stop)",
        config.server.bind
    );
    crate::web::serve(&config.data_dir, &config.server.bind, &config.server)
}

/// Writes a sample archive of the requested size.
pub fn sample(args: SampleArgs) -> Result<()> {
    let spec = SampleSpec {
        seed: args.seed,
        weeks: args.weeks,
        messages_per_week: args.per_week,
        ..SampleSpec::demo()
    };
    let files = sample::write_sample(&args.out, &spec)
        .with_context(|| format!("cannot write the sample archive to {}", args.out.display()))?;
    let messages: usize = files.iter().map(|f| f.messages).sum();
    println!(
        "wrote {} files, {} message copies, to {}",
        files.len(),
        messages,
        args.out.display()
    );
    Ok(())
}
