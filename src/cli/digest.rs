//! `archivist digest`: preview a week's digest, send it through the ledger, and manage
//! subscriptions from the command line (the web pages call the same API).

use std::time::Instant;

use anyhow::{bail, Context, Result};

use super::{open_store, UsageError};
use crate::config::Config;
use crate::digest::render::{Links, Renderer};
use crate::digest::send::SendSettings;
use crate::digest::service::{build_options, now, Service};
use crate::digest::subscribe::ConfirmOutcome;
use crate::digest::topics::Signals;
use crate::digest::{self};
use crate::index::Searcher;
use crate::indexer;
use crate::message::{EmailAddress, IsoWeek, ListName};
use crate::store::Store;

/// `archivist digest ...`
#[derive(Debug, clap::Args)]
pub struct DigestArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: DigestCommand,
}

/// Digest subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum DigestCommand {
    /// Print a week's digest without sending it.
    Preview(PreviewArgs),
    /// Send a week's digest to every confirmed subscriber, exactly once each.
    Send(SendArgs),
    /// Subscribe an address (unconfirmed) and mail it the confirmation link.
    Subscribe(SubscribeArgs),
    /// Confirm a subscription with the token from its confirmation link.
    Confirm(TokenArgs),
    /// Unsubscribe with the token from a digest's unsubscribe link.
    Unsubscribe(TokenArgs),
}

/// `archivist digest send --week 2023-W20 [--dry-run]`
#[derive(Debug, clap::Args)]
pub struct SendArgs {
    /// The ISO week, e.g. 2023-W20.
    #[arg(long, value_parser = parse_week)]
    pub week: IsoWeek,
    /// Build and render every digest, print what would be sent, send and record nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `archivist digest subscribe EMAIL --lists a,b [--query Q]`
#[derive(Debug, clap::Args)]
pub struct SubscribeArgs {
    /// The address.
    pub email: String,
    /// Lists one digest covers, comma-separated.
    #[arg(long, required = true, value_delimiter = ',', value_parser = parse_list)]
    pub lists: Vec<ListName>,
    /// A saved search limiting the digest to matching threads.
    #[arg(long)]
    pub query: Option<String>,
}

/// `archivist digest confirm TOKEN` / `unsubscribe TOKEN`
#[derive(Debug, clap::Args)]
pub struct TokenArgs {
    /// The token: the last part of the link.
    pub token: String,
}

/// `archivist digest preview --week 2023-W20 [--lists a,b] [--json|--text|--html]`
#[derive(Debug, clap::Args)]
pub struct PreviewArgs {
    /// The ISO week, e.g. 2023-W20.
    #[arg(long, value_parser = parse_week)]
    pub week: IsoWeek,
    /// Lists to cover, comma-separated (default: every list).
    #[arg(long, value_delimiter = ',', value_parser = parse_list)]
    pub lists: Vec<ListName>,
    /// Print the digest as JSON: week, lists, topics (label, terms, threads), other threads.
    #[arg(long, group = "format")]
    pub json: bool,
    /// Print the plain-text email (subject line first); the default.
    #[arg(long, group = "format")]
    pub text: bool,
    /// Print the HTML email.
    #[arg(long, group = "format")]
    pub html: bool,
    /// Signals used for grouping, comma-separated (for measuring what each contributes).
    #[arg(long, hide = true, value_parser = parse_signals)]
    pub signals: Option<Signals>,
    /// Average-linkage cut-off for grouping (for tuning).
    #[arg(long, hide = true)]
    pub threshold: Option<f32>,
    /// Fraction of the threshold at which a lone thread joins a topic (for tuning).
    #[arg(long, hide = true)]
    pub attach: Option<f32>,
    /// Content similarity needed before people and lists count (for tuning).
    #[arg(long, hide = true)]
    pub min_content: Option<f32>,
    /// Weights of tags, words, identifiers, paths, people, lists, history (for tuning).
    #[arg(long, hide = true, value_delimiter = ',')]
    pub weights: Option<Vec<f32>>,
    /// Print how long loading and grouping took to stderr.
    #[arg(long, hide = true)]
    pub timings: bool,
}

fn parse_week(raw: &str) -> Result<IsoWeek, String> {
    IsoWeek::parse(raw)
}

fn parse_list(raw: &str) -> Result<ListName, String> {
    ListName::parse(raw)
}

fn parse_signals(raw: &str) -> Result<Signals, String> {
    Signals::parse(raw)
}

/// Runs a digest subcommand.
pub fn run(config: &Config, args: DigestArgs) -> Result<()> {
    match args.command {
        DigestCommand::Preview(a) => preview(config, a),
        DigestCommand::Send(a) => send_command(config, a),
        DigestCommand::Subscribe(a) => subscribe(config, a),
        DigestCommand::Confirm(a) => confirm(config, a),
        DigestCommand::Unsubscribe(a) => unsubscribe(config, a),
    }
}

/// The wall clock, read here at the edge.
fn send_command(config: &Config, args: SendArgs) -> Result<()> {
    let mut store = open_store(config)?;
    let service = Service::new(config)?;
    if args.dry_run {
        let searcher = Searcher::open(&indexer::index_dir(&config.data_dir)).ok();
        return dry_run(
            &store,
            args.week,
            &service.settings(searcher.as_ref()),
            args.json,
        );
    }
    let ends = service.week_end(args.week);
    if ends > now() {
        let end = crate::ingest::rfc3339(ends);
        return Err(UsageError(format!(
            "{} has not ended yet (it ends {end}): a digest sent now would leave out the rest of the week, and the week would count as sent; preview it with --dry-run",
            args.week
        ))
        .into());
    }
    let report = service.send_week(&mut store, args.week)?;
    if args.json {
        outln!("{}", serde_json::to_string(&report)?)?;
    } else if report.already_completed {
        outln!("{}: already sent; nothing to do", report.week)?;
    } else {
        outln!(
            "{}: queued {}, sent {} ({} resumed after a crash), failed {}, deferred {}, skipped {}; {}",
            report.week,
            report.queued,
            report.sent,
            report.resumed,
            report.failed,
            report.deferred,
            report.skipped,
            if report.completed {
                "week completed"
            } else {
                "week NOT completed: run again"
            }
        )?;
    }
    // Deliveries the mail server kept refusing for now are a failure of this run (cron and
    // scripts see it), though the next run retries them.
    if report.deferred > 0 {
        bail!(
            "{} of the digests of {} could not be delivered now (the mail server failed transiently on every attempt{}); run `archivist digest send --week {}` again later",
            report.deferred,
            report.week,
            if report.not_tried {
                ", so the rest were not tried"
            } else {
                ""
            },
            report.week
        );
    }
    Ok(())
}

fn dry_run(store: &Store, week: IsoWeek, settings: &SendSettings<'_>, json: bool) -> Result<()> {
    // What a real run would do: nothing for a completed week, and nothing again for whom the
    // week's digest is settled.
    let (completed, settled) = store.week_progress(week)?;
    let subscribers = if completed {
        Vec::new()
    } else {
        store.active_subscribers()?
    };
    let mut lines = Vec::new();
    for s in subscribers.iter().filter(|s| !settled.contains(&s.handle)) {
        let names: Vec<ListName> = s
            .lists
            .iter()
            .filter_map(|l| ListName::parse(l).ok())
            .collect();
        let mut digest = digest::build(store, week, &names, &settings.build)?;
        if let Some(q) = &s.query {
            let searcher = settings.searcher.context(
                "a subscriber has a saved search but there is no search index: run `archivist reindex`",
            )?;
            let keep = digest::matching_threads(store, searcher, q, &digest, settings.build.zone)?;
            digest = digest.filtered(&keep, q);
        }
        let skip = digest.is_empty() && !settings.send_empty_weeks;
        let rendered = settings
            .renderer
            .digest(&digest, &settings.subscriptions.links(s))?;
        lines.push(serde_json::json!({
            "to": s.email.masked(),
            "subject": rendered.subject,
            "send": !skip,
        }));
    }
    if json {
        outln!(
            "{}",
            serde_json::json!({
                "week": week.to_string(),
                "dry_run": true,
                "already_completed": completed,
                "digests": lines
            })
        )?;
    } else if completed {
        outln!("{week}: dry run; already sent, a real run would send nothing")?;
    } else {
        outln!(
            "{week}: dry run, {} subscriber(s), nothing sent",
            lines.len()
        )?;
        for l in &lines {
            outln!(
                "  {}  {}{}",
                l["to"].as_str().unwrap_or_default(),
                l["subject"].as_str().unwrap_or_default(),
                if l["send"].as_bool() == Some(true) {
                    ""
                } else {
                    "  (skipped: empty week)"
                }
            )?;
        }
    }
    Ok(())
}

fn subscribe(config: &Config, args: SubscribeArgs) -> Result<()> {
    let email = EmailAddress::parse(&args.email)
        .and_then(|e| crate::digest::mailer::deliverable(&e).map(|()| e))
        .map_err(UsageError)?;
    let mut store = open_store(config)?;
    check_lists(&store, &args.lists)?;
    let service = Service::new(config)?;
    service.request_subscription(
        &mut store,
        &email,
        &args.lists,
        args.query.as_deref(),
        now(),
    )?;
    outln!(
        "confirmation link sent to {}; nothing is sent before it is opened",
        email.masked()
    )?;
    Ok(())
}

fn confirm(config: &Config, args: TokenArgs) -> Result<()> {
    let mut store = open_store(config)?;
    let service = Service::new(config)?;
    match service
        .subscriptions()
        .confirm(&mut store, args.token.trim(), now())?
    {
        ConfirmOutcome::Confirmed(s) => {
            outln!(
                "confirmed: weekly digests of {} go to {}",
                s.lists.join(", "),
                s.email.masked()
            )?;
            Ok(())
        }
        ConfirmOutcome::Gone => anyhow::bail!("this subscription was cancelled or replaced"),
        ConfirmOutcome::Replaced => anyhow::bail!(
            "the address was asked for again (other lists or saved search) after this link was sent; nothing was changed: only the latest confirmation email's link applies"
        ),
        ConfirmOutcome::Invalid(e) => anyhow::bail!("{e}"),
    }
}

fn unsubscribe(config: &Config, args: TokenArgs) -> Result<()> {
    let mut store = open_store(config)?;
    let service = Service::new(config)?;
    match service
        .subscriptions()
        .unsubscribe(&mut store, args.token.trim(), now())?
    {
        Ok(true) => {
            outln!("unsubscribed")?;
            Ok(())
        }
        Ok(false) => anyhow::bail!("this subscription was cancelled or replaced"),
        Err(e) => anyhow::bail!("{e}"),
    }
}

/// Fails with a usage error naming the known lists when one of `lists` is not in the archive.
fn check_lists(store: &Store, lists: &[ListName]) -> Result<()> {
    let known = store.list_names()?;
    for l in lists {
        if !known.iter().any(|k| k == l.as_str()) {
            return Err(UsageError(format!(
                "no list named \"{l}\" in the archive (known: {})",
                known.join(", ")
            ))
            .into());
        }
    }
    Ok(())
}

fn preview(config: &Config, args: PreviewArgs) -> Result<()> {
    let store = open_store(config)?;
    check_lists(&store, &args.lists)?;
    let mut options = build_options(config);
    if let Some(signals) = args.signals {
        options.params.signals = signals;
    }
    if let Some(t) = args.threshold {
        options.params.threshold = t;
    }
    if let Some(m) = args.min_content {
        options.params.min_content = m;
    }
    if let Some(a) = args.attach {
        options.params.attach = a;
    }
    if let Some(w) = &args.weights {
        for (slot, value) in options.params.weights.iter_mut().zip(w) {
            *slot = *value;
        }
    }
    // The steps of `digest::build`, one by one, so `--timings` can tell them apart.
    let started = Instant::now();
    let prefixes = digest::list_prefixes(&store, &args.lists)?;
    let prior = digest::history(&store, args.week, &args.lists, &prefixes, &options)
        .with_context(|| format!("cannot group the weeks before {}", args.week))?;
    let history_done = Instant::now();
    let zone = options.zone;
    let threads = store
        .active_threads(args.week.start(zone), args.week.end(zone), &args.lists)
        .with_context(|| format!("cannot read the threads of {}", args.week))?;
    let loaded = Instant::now();
    let subjects = digest::topic_subjects(&threads, &prefixes);
    let inputs = digest::topic_threads(&threads, &subjects);
    let grouping = digest::topics::group(&inputs, &prior, &options.params);
    let grouped = Instant::now();
    let digest = digest::assemble(
        args.week,
        digest::list_names(&store, &args.lists)?,
        &threads,
        &grouping,
    );
    if args.timings {
        let ms = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1000.0;
        eprintln!(
            "{}: {} messages in {} threads; history {:.0} ms, load {:.0} ms, grouping {:.0} ms ({} topics), total {:.0} ms",
            args.week,
            digest.totals.messages,
            digest.totals.threads,
            ms(started, history_done),
            ms(history_done, loaded),
            ms(loaded, grouped),
            digest.topics.len(),
            ms(started, Instant::now()),
        );
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&digest.preview_json())?)?;
        return Ok(());
    }
    let renderer = Renderer::new(&config.digest.base_url)?;
    let rendered = renderer.digest(&digest, &Links::default())?;
    if args.html {
        out!("{}", rendered.html)?;
    } else {
        out!("Subject: {}\n\n{}", rendered.subject, rendered.text)?;
    }
    Ok(())
}
