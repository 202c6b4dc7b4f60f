//! `archivist demo` and `archivist sample`: the generated sample archive, for a first look and
//! for benchmarks.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{import, stats};
use crate::config::{Config, Secret, TransportKind};
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
    outln!(
        "wrote the sample archive: {} files in {}",
        files.len(),
        dir.display()
    )?;
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
    let config = demo_digests(config)?;
    outln!(
        "open http://{}/ in a browser (Ctrl-C to stop); digest emails go to {} as .eml files",
        config.server.bind,
        config.data_dir.join(&config.digest.directory).display()
    )?;
    super::serve::run(&config, &config.server.bind)
}

/// The demo's digest settings: emails are written to a directory instead of SMTP, links point
/// at the demo server, and without `ARCHIVIST_TOKEN_KEY` a random key is made once and kept in
/// the data directory (readable by its owner only), so links keep working across restarts.
fn demo_digests(config: &Config) -> Result<Config> {
    let mut config = config.clone();
    config.digest.transport = TransportKind::Directory;
    config.digest.base_url = format!("http://{}", config.server.bind);
    if config.digest.token_key.expose().is_none() {
        let path = config.data_dir.join("demo-token-key");
        if !path.exists() {
            let mut bytes = [0u8; 32];
            std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut bytes))
                .context("cannot read /dev/urandom for the demo's token key")?;
            let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            std::io::Write::write_all(&mut options.open(&path)?, key.as_bytes())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let key = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        config.digest.token_key = Secret::new(Some(key.trim().to_string()));
    }
    Ok(config)
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
    outln!(
        "wrote {} files, {} message copies, to {}",
        files.len(),
        messages,
        args.out.display()
    )?;
    Ok(())
}
