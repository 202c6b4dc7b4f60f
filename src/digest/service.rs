//! The digest service as the configuration describes it: signing key, templates, transport and
//! sending settings in one value, shared by the command line, the web pages and the weekly
//! schedule of `archivist serve`, so the three cannot drift apart.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};

use super::mailer::{compose, Outgoing, Transport};
use super::render::Renderer;
use super::send::{self, domain_of, Pacing, SendReport, SendSettings};
use super::subscribe::{Subscriptions, TokenKey};
use super::topics::Params;
use super::BuildOptions;
use crate::config::{Config, TransportKind, Weekday, TOKEN_KEY_ENV};
use crate::index::Searcher;
use crate::message::{EmailAddress, IsoWeek, ListName, ZoneOffset};
use crate::store::Store;

/// Everything needed to confirm subscriptions and send digests.
pub struct Service {
    subscriptions: Subscriptions,
    renderer: Renderer,
    transport: Transport,
    from: String,
    build: BuildOptions,
    send_empty_weeks: bool,
    max_attempts: u32,
    rate: f64,
    connections: usize,
    weekday: Weekday,
    hour: u8,
    data_dir: PathBuf,
}

/// The current Unix time.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn sleep(d: Duration) {
    std::thread::sleep(d);
}

/// The build options the configuration asks for.
pub fn build_options(config: &Config) -> BuildOptions {
    BuildOptions {
        zone: config.digest.timezone,
        history_weeks: config.digest.history_weeks,
        params: Params::default(),
    }
}

/// The transport the configuration asks for.
pub fn transport(config: &Config) -> Result<Transport> {
    match config.digest.transport {
        TransportKind::Smtp => Transport::smtp(&config.digest.smtp),
        TransportKind::Directory => Ok(Transport::Directory(
            config.data_dir.join(&config.digest.directory),
        )),
    }
}

impl Service {
    /// The service the configuration describes. Fails when the token key is missing: every
    /// link a subscriber receives is signed with it.
    pub fn new(config: &Config) -> Result<Service> {
        let Some(raw) = config.digest.token_key.expose() else {
            anyhow::bail!(
                "{TOKEN_KEY_ENV} is not set: subscription links are signed with it (use at least 32 random bytes)"
            );
        };
        let key = TokenKey::new(raw.as_bytes())?;
        Ok(Service {
            subscriptions: Subscriptions::new(
                key,
                &config.digest.base_url,
                config.digest.confirm_hours,
            ),
            renderer: Renderer::new(&config.digest.base_url)?,
            transport: transport(config)?,
            from: config.digest.from.clone(),
            build: build_options(config),
            send_empty_weeks: config.digest.send_empty_weeks,
            max_attempts: config.digest.smtp.max_attempts,
            rate: config.digest.smtp.rate,
            connections: config.digest.smtp.connections,
            weekday: config.digest.weekday,
            hour: config.digest.hour,
            data_dir: config.data_dir.clone(),
        })
    }

    /// Tokens and links.
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subscriptions
    }

    /// Templates.
    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    /// How digests are built.
    pub fn build_options(&self) -> &BuildOptions {
        &self.build
    }

    /// Where weeks start and end.
    pub fn zone(&self) -> ZoneOffset {
        self.build.zone
    }

    /// Records a subscription request and mails its confirmation link. Nothing else is sent
    /// to the address before the link is opened.
    pub fn request_subscription(
        &self,
        store: &mut Store,
        email: &EmailAddress,
        lists: &[ListName],
        query: Option<&str>,
        now: i64,
    ) -> Result<()> {
        let confirmation = self
            .subscriptions
            .subscribe(store, email, lists, query, now)?;
        // What was asked for: for a confirmed address, the subscription stays as it is until
        // this link is opened, and the email must say what opening it will change to.
        let rendered = self.renderer.confirmation(
            &confirmation.lists,
            confirmation.query.as_deref(),
            &confirmation.confirm_url,
            self.subscriptions.confirm_hours(),
        )?;
        let composed = compose(&Outgoing {
            from: self.from.clone(),
            to: email.as_str().to_string(),
            subject: rendered.subject,
            text: rendered.text,
            html: rendered.html,
            message_id: format!(
                "confirm.{}.{}.{now}@{}",
                confirmation.subscriber.handle,
                confirmation.subscriber.generation,
                domain_of(&self.from)
            ),
            date: now,
            list_id: None,
            unsubscribe_url: None,
        })
        .map_err(|e| anyhow::anyhow!("cannot compose the confirmation email: {e}"))?;
        self.transport
            .send(&composed)
            .map_err(|e| anyhow::anyhow!("cannot send the confirmation email: {e}"))
    }

    /// The sending settings, with `searcher` for saved searches.
    pub fn settings<'a>(&'a self, searcher: Option<&'a Searcher>) -> SendSettings<'a> {
        SendSettings {
            from: &self.from,
            send_empty_weeks: self.send_empty_weeks,
            max_attempts: self.max_attempts,
            rate: self.rate,
            connections: self.connections,
            backoff: Duration::from_secs(1),
            build: self.build,
            renderer: &self.renderer,
            subscriptions: &self.subscriptions,
            searcher,
        }
    }

    /// When `week` ends in the configured zone: its digest can be sent from then on. A week
    /// sent before it ended would be completed with only part of its threads, and the
    /// schedule would then never send it whole.
    pub fn week_end(&self, week: IsoWeek) -> i64 {
        week.end(self.build.zone)
    }

    /// Sends `week` to every confirmed subscriber not served yet, under the sender lock
    /// (fails at once if another run holds it).
    pub fn send_week(&self, store: &mut Store, week: IsoWeek) -> Result<SendReport> {
        let _lock = send::lock(&lock_path(&self.data_dir))?;
        let searcher = Searcher::open(&crate::indexer::index_dir(&self.data_dir)).ok();
        let pacing = Pacing {
            now: &now,
            sleep: &sleep,
        };
        send::send_week(
            store,
            week,
            &self.settings(searcher.as_ref()),
            &self.transport,
            &pacing,
        )
        .with_context(|| format!("cannot send the digest of {week}"))
    }

    /// The week due at `now` under the configured schedule, if the ledger has not completed
    /// it yet.
    pub fn due_week(&self, store: &Store, now: i64) -> Result<Option<IsoWeek>> {
        Ok(super::schedule::due_week(
            now,
            self.build.zone,
            self.weekday,
            self.hour,
            store.last_completed_week()?,
        ))
    }
}

/// The sender lock of a data directory.
pub fn lock_path(data_dir: &Path) -> PathBuf {
    data_dir.join("digest-send.lock")
}
