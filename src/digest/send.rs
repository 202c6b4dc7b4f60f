//! Sending a week's digests through the ledger, exactly once per (subscriber, week).
//!
//! A run takes the sender lock (one sender per archive; the OS releases it when the process
//! dies, even by SIGKILL), opens the week in the ledger (queueing every active subscriber not
//! queued yet, unless the week was completed), then for each unsettled row: renders the
//! subscriber's digest, commits the row as `sending` and hands the message to one of
//! `connections` workers, which deliver it (retrying transient failures) while the main thread
//! composes the next one and commits each outcome as soon as it comes back. A crash leaves at
//! most the rows in flight (two per connection) as `sending`; the next run sends them again with
//! the same Message-IDs. A row whose every attempt failed transiently (the mail server down or
//! busy) goes back to pending for the next run, for up to [`GIVE_UP_AFTER_SECS`]. Once no row
//! is unsettled the week is completed and re-running it sends nothing. The clock and sleeping
//! come in through [`Pacing`].

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use super::mailer::{compose, Composed, Outgoing, SendError, Transport};
use super::render::Renderer;
use super::subscribe::Subscriptions;
use super::{build, matching_threads, BuildOptions, Digest};
use crate::index::Searcher;
use crate::message::{IsoWeek, ListName};
use crate::store::{DeliveryState, Store, Subscriber, WeekRun};

/// Time, from the caller: the current Unix time and a way to wait. The CLI passes the wall
/// clock and `thread::sleep`; tests pass a fake.
pub struct Pacing<'a> {
    /// The current Unix time.
    pub now: &'a (dyn Fn() -> i64 + Sync),
    /// Waits (rate limiting, backoff); called from the delivery workers.
    pub sleep: &'a (dyn Fn(Duration) + Sync),
}

/// What a run needs besides the store and the transport.
pub struct SendSettings<'a> {
    /// `From` of every digest.
    pub from: &'a str,
    /// Whether an empty week is sent.
    pub send_empty_weeks: bool,
    /// Attempts per message for transient failures.
    pub max_attempts: u32,
    /// Messages per second (0: no limit).
    pub rate: f64,
    /// Deliveries in parallel (SMTP connections).
    pub connections: usize,
    /// First backoff delay; doubled per attempt, at most a minute.
    pub backoff: Duration,
    /// How digests are built.
    pub build: BuildOptions,
    /// Templates.
    pub renderer: &'a Renderer,
    /// Tokens and links.
    pub subscriptions: &'a Subscriptions,
    /// Needed only when a subscriber has a saved search.
    pub searcher: Option<&'a Searcher>,
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SendReport {
    /// The week.
    pub week: String,
    /// The week had been completed before: nothing was done.
    pub already_completed: bool,
    /// Rows queued by this run.
    pub queued: u64,
    /// Sent by this run.
    pub sent: u64,
    /// Of those, rows a crashed run had left in flight.
    pub resumed: u64,
    /// Failed permanently in this run (or transiently, for longer than
    /// [`GIVE_UP_AFTER_SECS`] since the row was queued).
    pub failed: u64,
    /// Failed transiently in every attempt of this run (the mail server is down or busy), or
    /// not tried once the server had failed the first few that way: left pending, so the week
    /// stays open and the next run tries them again.
    pub deferred: u64,
    /// Whether the run stopped trying early, the mail server having taken none of the first
    /// few messages.
    pub not_tried: bool,
    /// Skipped in this run (empty week, unsubscribed or paused since queueing).
    pub skipped: u64,
    /// Whether the week is now completed.
    pub completed: bool,
    /// The ledger's counts for the week after the run, by state.
    pub ledger: BTreeMap<String, u64>,
}

/// The sender lock: held while a run sends; released when dropped or when the process dies.
pub struct SendLock {
    _file: File,
}

/// Takes the sender lock at `path` (created if needed); fails at once if another run holds it.
pub fn lock(path: &Path) -> Result<SendLock> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .with_context(|| format!("cannot open the sender lock {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(SendLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => {
            bail!(
                "another `archivist digest send` is running (lock {})",
                path.display()
            )
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The Message-ID of a subscriber's digest of a week: unique, and the same on every attempt.
pub fn digest_message_id(week: IsoWeek, handle: &str, from: &str) -> String {
    format!("digest.{week}.{handle}@{}", domain_of(from))
}

/// The domain of a `Name <addr@domain>` or `addr@domain` sender.
pub fn domain_of(from: &str) -> String {
    let addr = from
        .rsplit_once('<')
        .map_or(from, |(_, a)| a.trim_end_matches('>'));
    addr.rsplit_once('@')
        .map_or("localhost", |(_, d)| d)
        .trim()
        .trim_end_matches('>')
        .to_string()
}

/// The digests a run needs, built once per list set and saved search before anything is sent
/// (a handful, however many subscribers), so the send loop holds one message at a time.
type DigestKey = (Vec<String>, Option<String>);

fn digest_key(s: &Subscriber) -> DigestKey {
    (s.lists.clone(), s.query.clone())
}

fn prepare_digests(
    store: &Store,
    week: IsoWeek,
    settings: &SendSettings<'_>,
    subscribers: &[&Subscriber],
) -> Result<HashMap<DigestKey, Digest>> {
    let mut by_lists: HashMap<Vec<String>, Digest> = HashMap::new();
    let mut out: HashMap<DigestKey, Digest> = HashMap::new();
    for s in subscribers {
        let key = digest_key(s);
        if out.contains_key(&key) {
            continue;
        }
        if !by_lists.contains_key(&s.lists) {
            let names: Vec<ListName> = s
                .lists
                .iter()
                .filter_map(|l| ListName::parse(l).ok())
                .collect();
            let digest = build(store, week, &names, &settings.build)?;
            by_lists.insert(s.lists.clone(), digest);
        }
        let full = by_lists
            .get(&s.lists)
            .context("digest missing from the cache")?;
        let digest = match &s.query {
            None => full.clone(),
            Some(query) => {
                let Some(searcher) = settings.searcher else {
                    bail!("a subscriber has a saved search but there is no search index: run `archivist reindex`");
                };
                let keep = matching_threads(store, searcher, query, full, settings.build.zone)?;
                full.filtered(&keep, query)
            }
        };
        out.insert(key, digest);
    }
    Ok(out)
}

/// What to do with one ledger row.
enum Plan {
    Send(Composed),
    Skip(&'static str),
    Fail(String),
}

/// The email for one subscriber's digest.
fn outgoing(
    settings: &SendSettings<'_>,
    subscriber: &Subscriber,
    digest: &Digest,
    message_id: &str,
    now: i64,
) -> Result<Outgoing> {
    let links = settings.subscriptions.links(subscriber);
    let rendered = settings.renderer.digest(digest, &links)?;
    Ok(Outgoing {
        from: settings.from.to_string(),
        to: subscriber.email.as_str().to_string(),
        subject: rendered.subject,
        text: rendered.text,
        html: rendered.html,
        message_id: message_id.to_string(),
        date: now,
        list_id: Some(format!(
            "Weekly digest <digest.{}>",
            domain_of(settings.from)
        )),
        unsubscribe_url: links.unsubscribe,
    })
}

/// How long after a row was queued transient failures stop being retried by later runs and
/// the row fails for good: five days, as a mail server keeps a message in its queue.
pub const GIVE_UP_AFTER_SECS: i64 = 5 * 86_400;

/// Sends `week` to every active subscriber not served yet. See the module documentation.
pub fn send_week(
    store: &mut Store,
    week: IsoWeek,
    settings: &SendSettings<'_>,
    transport: &Transport,
    pacing: &Pacing<'_>,
) -> Result<SendReport> {
    let mut report = SendReport {
        week: week.to_string(),
        ..SendReport::default()
    };
    let now = (pacing.now)();
    match store.start_week(week, now, |handle| {
        digest_message_id(week, handle, settings.from)
    })? {
        WeekRun::Completed => {
            report.already_completed = true;
            report.completed = true;
        }
        WeekRun::Open { queued } => {
            report.queued = queued;
            let deliveries = store.unsettled(week)?;
            let active: Vec<&Subscriber> = deliveries
                .iter()
                .map(|d| &d.subscriber)
                .filter(|s| s.active())
                .collect();
            let digests = prepare_digests(store, week, settings, &active)?;
            let workers = settings.connections.max(1);
            let retry = Retry {
                max_attempts: settings.max_attempts.max(1),
                backoff: settings.backoff,
            };
            let rate = settings.rate;
            std::thread::scope(|scope| -> Result<()> {
                let (jobs, job_rx) = crossbeam_channel::bounded::<Job>(workers);
                let (outcome_tx, outcomes) = crossbeam_channel::unbounded::<Outcome>();
                for _ in 0..workers {
                    let job_rx = job_rx.clone();
                    let outcome_tx = outcome_tx.clone();
                    scope.spawn(move || {
                        for job in job_rx {
                            let delivered = deliver(&job.composed, transport, retry, pacing);
                            let outcome = Outcome {
                                handle: job.handle,
                                resumed: job.resumed,
                                delivered,
                            };
                            if outcome_tx.send(outcome).is_err() {
                                break;
                            }
                            // Each worker keeps its share of the configured rate.
                            if rate > 0.0 {
                                (pacing.sleep)(Duration::from_secs_f64(workers as f64 / rate));
                            }
                        }
                    });
                }
                drop(job_rx);
                drop(outcome_tx);
                // A mail server that failed every attempt of the first few messages, and took
                // none, is down: the rest of the week waits for the next run instead of
                // spending each message's retries on it.
                let give_up_after = (2 * workers).max(3) as u64;
                for (i, d) in deliveries.iter().enumerate() {
                    if report.sent == 0 && report.deferred >= give_up_after {
                        report.deferred += (deliveries.len() - i) as u64;
                        report.not_tried = true;
                        break;
                    }
                    let handle = d.subscriber.handle.as_str();
                    let resumed = d.state == DeliveryState::Sending;
                    let plan = if !d.subscriber.active() {
                        Plan::Skip("not active")
                    } else {
                        let digest = digests
                            .get(&digest_key(&d.subscriber))
                            .context("digest missing from the cache")?;
                        if digest.is_empty() && !settings.send_empty_weeks {
                            Plan::Skip("empty week")
                        } else {
                            let o = outgoing(settings, &d.subscriber, digest, &d.message_id, now)?;
                            match compose(&o) {
                                Ok(c) => Plan::Send(c),
                                Err(e) => Plan::Fail(e.to_string()),
                            }
                        }
                    };
                    let t = (pacing.now)();
                    let composed = match plan {
                        Plan::Send(c) => c,
                        Plan::Skip(why) => {
                            store.set_delivery(
                                week,
                                handle,
                                DeliveryState::Skipped,
                                Some(why),
                                0,
                                t,
                            )?;
                            report.skipped += 1;
                            continue;
                        }
                        Plan::Fail(why) => {
                            store.set_delivery(
                                week,
                                handle,
                                DeliveryState::Failed,
                                Some(&why),
                                0,
                                t,
                            )?;
                            report.failed += 1;
                            continue;
                        }
                    };
                    // Committed before any worker can start the SMTP transaction.
                    store.set_delivery(week, handle, DeliveryState::Sending, None, 0, t)?;
                    let job = Job {
                        handle: handle.to_string(),
                        resumed,
                        composed,
                    };
                    // Wait for a free worker, recording outcomes as they arrive so a crash
                    // finds as few rows in flight as possible.
                    loop {
                        let mut select = crossbeam_channel::Select::new();
                        let send_index = select.send(&jobs);
                        select.recv(&outcomes);
                        let op = select.select();
                        if op.index() == send_index {
                            op.send(&jobs, job)
                                .map_err(|_| anyhow::anyhow!("the delivery workers stopped"))?;
                            break;
                        }
                        let outcome = op
                            .recv(&outcomes)
                            .map_err(|_| anyhow::anyhow!("the delivery workers stopped"))?;
                        record(store, week, outcome, &mut report, pacing)?;
                    }
                }
                drop(jobs);
                for outcome in outcomes {
                    record(store, week, outcome, &mut report, pacing)?;
                }
                Ok(())
            })?;
            report.completed = store.complete_week(week, (pacing.now)())?;
        }
    }
    report.ledger = store
        .delivery_counts(week)?
        .into_iter()
        .map(|(k, v)| (k.as_str().to_string(), v))
        .collect();
    Ok(report)
}

/// A message handed to a delivery worker; its ledger row is already `sending`.
struct Job {
    handle: String,
    resumed: bool,
    composed: Composed,
}

/// What a worker reports back.
struct Outcome {
    handle: String,
    resumed: bool,
    delivered: Delivered,
}

/// How a delivery ended.
struct Delivered {
    result: Result<(), SendError>,
    attempts: u32,
    /// The last transient failure, even when a later attempt succeeded.
    last_transient: Option<String>,
}

/// Retry policy for transient failures.
#[derive(Clone, Copy)]
struct Retry {
    max_attempts: u32,
    backoff: Duration,
}

/// One message, on a worker: attempts with exponential backoff for transient failures, none
/// after a permanent one.
fn deliver(
    composed: &Composed,
    transport: &Transport,
    retry: Retry,
    pacing: &Pacing<'_>,
) -> Delivered {
    let mut attempts = 0u32;
    let mut last_transient = None;
    loop {
        attempts += 1;
        match transport.send(composed) {
            Err(SendError::Transient(e)) if attempts < retry.max_attempts => {
                let delay = retry
                    .backoff
                    .saturating_mul(1 << (attempts - 1).min(10))
                    .min(Duration::from_secs(60));
                last_transient = Some(e);
                (pacing.sleep)(delay);
            }
            result => {
                return Delivered {
                    result,
                    attempts,
                    last_transient,
                }
            }
        }
    }
}

/// Commits a worker's outcome to the ledger.
fn record(
    store: &mut Store,
    week: IsoWeek,
    outcome: Outcome,
    report: &mut SendReport,
    pacing: &Pacing<'_>,
) -> Result<()> {
    let Outcome {
        handle,
        resumed,
        delivered,
    } = outcome;
    let now = (pacing.now)();
    match delivered.result {
        Ok(()) => {
            let note = delivered
                .last_transient
                .map(|e| format!("transient (then sent): {e}"));
            store.set_delivery(
                week,
                &handle,
                DeliveryState::Sent,
                note.as_deref(),
                delivered.attempts,
                now,
            )?;
            report.sent += 1;
            report.resumed += u64::from(resumed);
        }
        Err(SendError::Transient(m)) => {
            let why = format!("transient failures in {} attempts: {m}", delivered.attempts);
            let state = store.defer_delivery(
                week,
                &handle,
                &why,
                delivered.attempts,
                now - GIVE_UP_AFTER_SECS,
            )?;
            if state == DeliveryState::Failed {
                report.failed += 1;
            } else {
                report.deferred += 1;
            }
        }
        Err(SendError::Permanent(m)) => {
            let why = format!("permanent: {m}");
            store.set_delivery(
                week,
                &handle,
                DeliveryState::Failed,
                Some(&why),
                delivered.attempts,
                now,
            )?;
            report.failed += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::*;
    use crate::digest::subscribe::TokenKey;
    use crate::message::EmailAddress;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        renderer: Renderer,
        subscriptions: Subscriptions,
    }

    fn fixture(people: &[&str]) -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = Store::open(&dir.path().join("a.sqlite3")).expect("store");
        let key = TokenKey::new(b"0123456789abcdef0123456789abcdef").expect("key");
        let subscriptions = Subscriptions::new(key, "https://x.example", 48);
        let dev = [ListName::parse("dev").expect("list")];
        for (i, p) in people.iter().enumerate() {
            let email = EmailAddress::parse(p).expect("email");
            let c = subscriptions
                .subscribe(&mut store, &email, &dev, None, 1000 + i as i64)
                .expect("subscribe");
            let token = c.confirm_url.rsplit('/').next().expect("token").to_string();
            subscriptions
                .confirm(&mut store, &token, 2000)
                .expect("confirm");
        }
        Fixture {
            _dir: dir,
            store,
            renderer: Renderer::new("https://x.example").expect("templates"),
            subscriptions,
        }
    }

    fn week() -> IsoWeek {
        IsoWeek::parse("2023-W20").expect("week")
    }

    /// One run with the in-memory transport following `script`; returns the report, what was
    /// delivered and how long the run slept.
    fn run(
        f: &mut Fixture,
        script: Vec<Option<SendError>>,
    ) -> (SendReport, Vec<Composed>, Vec<Duration>) {
        run_at(f, script, 5000)
    }

    /// [`run`] with the clock at `now`.
    fn run_at(
        f: &mut Fixture,
        script: Vec<Option<SendError>>,
        now: i64,
    ) -> (SendReport, Vec<Composed>, Vec<Duration>) {
        let settings = SendSettings {
            from: "Digests <digest@x.example>",
            // The fixture archive has no messages: empty digests are sent so there is
            // something to deliver.
            send_empty_weeks: true,
            max_attempts: 3,
            rate: 0.0,
            connections: 1,
            backoff: Duration::from_secs(1),
            build: BuildOptions::default(),
            renderer: &f.renderer,
            subscriptions: &f.subscriptions,
            searcher: None,
        };
        let transport = Transport::memory(VecDeque::from(script));
        let slept = Mutex::new(Vec::new());
        let pacing = Pacing {
            now: &|| now,
            sleep: &|d| slept.lock().expect("lock").push(d),
        };
        let report = send_week(&mut f.store, week(), &settings, &transport, &pacing).expect("send");
        let slept = slept.into_inner().expect("lock");
        (report, transport.memory_sent(), slept)
    }

    #[test]
    fn transient_failures_back_off_and_permanent_ones_stop() {
        let mut f = fixture(&["a@x.example", "b@x.example"]);
        let (report, sent, slept) = run(
            &mut f,
            vec![
                Some(SendError::Transient("421 busy".into())),
                Some(SendError::Transient("451 later".into())),
                None,
                Some(SendError::Permanent("550 no such user".into())),
            ],
        );
        assert_eq!((report.sent, report.failed, report.completed), (1, 1, true));
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].envelope_to, "a@x.example");
        assert_eq!(slept, [Duration::from_secs(1), Duration::from_secs(2)]);
    }

    #[test]
    fn a_mail_server_down_for_a_whole_run_leaves_the_week_open_until_a_later_run_sends_it() {
        let mut f = fixture(&["a@x.example", "b@x.example"]);
        let down = || Some(SendError::Transient("connection refused".into()));
        let (report, sent, _) = run(&mut f, vec![down(); 6]);
        assert_eq!(
            (
                report.sent,
                report.failed,
                report.deferred,
                report.completed
            ),
            (0, 0, 2, false)
        );
        assert!(sent.is_empty());
        assert_eq!(report.ledger.get("pending"), Some(&2));
        // The server is back: the next run sends both, once, and completes the week.
        let (report, sent, _) = run_at(&mut f, vec![], 5000 + 3600);
        assert_eq!(
            (report.sent, report.deferred, report.completed),
            (2, 0, true)
        );
        assert_eq!(sent.len(), 2);
        let (report, sent, _) = run_at(&mut f, vec![], 5000 + 7200);
        assert!(report.already_completed && sent.is_empty());

        // A server that takes none of the first few is not asked about the rest this run.
        let people: Vec<String> = (0..8).map(|i| format!("p{i}@x.example")).collect();
        let mut many = fixture(&people.iter().map(String::as_str).collect::<Vec<_>>());
        let (report, sent, slept) = run(&mut many, vec![down(); 100]);
        assert_eq!((report.deferred, report.not_tried), (8, true), "{report:?}");
        assert!(sent.is_empty());
        // Two backoff waits per message tried (3 attempts each): fewer than 8 were tried.
        assert!(slept.len() < 2 * 8, "{} waits", slept.len());
        assert_eq!(report.ledger.get("pending"), Some(&8));
        let (report, sent, _) = run_at(&mut many, vec![], 5000 + 60);
        assert_eq!((report.sent, report.completed), (8, true));
        assert_eq!(sent.len(), 8);

        // Still failing five days after the row was queued: failed for good, week completed.
        let mut f = fixture(&["a@x.example"]);
        let (report, _, _) = run(&mut f, vec![down(); 3]);
        assert_eq!((report.deferred, report.completed), (1, false));
        let later = 5000 + GIVE_UP_AFTER_SECS - 1;
        let (report, _, _) = run_at(&mut f, vec![down(); 3], later);
        assert_eq!((report.deferred, report.failed), (1, 0));
        let (report, sent, _) = run_at(&mut f, vec![down(); 3], later + 2);
        assert_eq!(
            (report.deferred, report.failed, report.completed),
            (0, 1, true)
        );
        assert!(sent.is_empty());
        assert_eq!(report.ledger.get("failed"), Some(&1));
    }

    #[test]
    fn a_row_left_sending_by_a_crash_is_sent_again_with_its_message_id() {
        let mut f = fixture(&["a@x.example", "b@x.example"]);
        let from = "Digests <digest@x.example>";
        f.store
            .start_week(week(), 3000, |h| digest_message_id(week(), h, from))
            .expect("queue");
        // The crash: a's row was claimed, the process died before recording the outcome.
        let a = f.store.unsettled(week()).expect("rows")[0].clone();
        f.store
            .set_delivery(
                week(),
                &a.subscriber.handle,
                DeliveryState::Sending,
                None,
                0,
                3001,
            )
            .expect("claim");
        let (report, sent, _) = run(&mut f, vec![]);
        assert_eq!((report.queued, report.sent, report.resumed), (0, 2, 1));
        assert!(sent.iter().any(|m| m.message_id == a.message_id));
        let ids: BTreeMap<&str, ()> = sent.iter().map(|m| (m.message_id.as_str(), ())).collect();
        assert_eq!(ids.len(), 2);
        // Completed: nothing more, ever.
        let (report, sent, _) = run(&mut f, vec![]);
        assert!(report.already_completed && sent.is_empty());
    }

    #[test]
    fn unsubscribed_after_queueing_is_skipped() {
        let mut f = fixture(&["a@x.example", "b@x.example"]);
        let from = "Digests <digest@x.example>";
        f.store
            .start_week(week(), 3000, |h| digest_message_id(week(), h, from))
            .expect("queue");
        let b = f.store.unsettled(week()).expect("rows")[1].clone();
        let links = f.subscriptions.links(&b.subscriber);
        let token = links
            .unsubscribe
            .as_deref()
            .and_then(|u| u.rsplit('/').next())
            .expect("token")
            .to_string();
        assert_eq!(
            f.subscriptions
                .unsubscribe(&mut f.store, &token, 3500)
                .expect("store"),
            Ok(true)
        );
        let (report, sent, _) = run(&mut f, vec![]);
        assert_eq!((report.sent, report.skipped), (1, 1));
        assert_eq!(sent[0].envelope_to, "a@x.example");
    }

    #[test]
    fn domains_and_message_ids() {
        assert_eq!(domain_of("Digests <digest@x.example>"), "x.example");
        assert_eq!(domain_of("digest@y.example"), "y.example");
        assert_eq!(domain_of("nobody"), "localhost");
        assert_eq!(
            digest_message_id(week(), "abc", "d@x.example"),
            "digest.2023-W20.abc@x.example"
        );
    }
}
