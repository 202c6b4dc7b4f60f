//! What digests read from and write to the archive: the threads active in a week for a set of
//! lists (each once however many lists it reached, with the authors' own text of the week's
//! messages), the subscribers, and the delivery ledger that sends each week exactly once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use anyhow::Result;
use rusqlite::{params, params_from_iter, OptionalExtension};

use super::{content, placeholders, Store, LOOKUP_CHUNK};
use crate::message::{EmailAddress, IsoWeek, ListName, MessageId};

/// A person taking part in a thread. Only `name` is ever shown; `key` (the lowercased address,
/// else the name) tells people apart and stays inside the digest code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    /// Display name, else the address's local part: never a full address.
    pub name: String,
    /// Identity for counting and topic features.
    pub key: String,
}

/// One message of a thread dated in the week.
#[derive(Debug, Clone)]
pub struct WeekMessage {
    /// Public id.
    pub id: MessageId,
    /// Unix seconds.
    pub date: i64,
    /// Sender.
    pub author: Participant,
    /// Decoded subject (tags included).
    pub subject: String,
    /// What the author wrote: the body without quoted lines, signature or list footers (a
    /// patch's diff included).
    pub own_text: String,
    /// Whether the body holds a patch.
    pub has_patch: bool,
}

/// A thread with at least one message in the week on one of the chosen lists.
#[derive(Debug, Clone)]
pub struct ActiveThread {
    /// The thread's earliest message (any list): the thread's public identity and link target.
    pub root: MessageId,
    /// The earliest message's subject.
    pub subject: String,
    /// Messages of the thread dated in the week, on the chosen lists.
    pub messages_week: u32,
    /// Messages of the thread dated before the week's end (or undated), on the chosen lists.
    pub messages_total: u32,
    /// Whether the thread started in the week (nothing of it, on any list, is dated earlier).
    pub new: bool,
    /// Every list the week's messages reached, sorted.
    pub lists: Vec<String>,
    /// The week's senders, each once, in order of their first message.
    pub participants: Vec<Participant>,
    /// The week's messages in date order.
    pub messages: Vec<WeekMessage>,
}

impl Store {
    /// Every list's name, sorted.
    pub fn list_names(&self) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT name FROM lists ORDER BY name")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The subjects of the latest `per_list` messages of each of `lists` (every list when
    /// empty), with their list's name.
    pub fn recent_subjects(
        &self,
        lists: &[ListName],
        per_list: usize,
    ) -> Result<Vec<(String, String)>> {
        let names: Vec<String> = if lists.is_empty() {
            self.list_names()?
        } else {
            lists.iter().map(|l| l.as_str().to_string()).collect()
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.subject FROM lists l
             JOIN memberships ms ON ms.list = l.id
             JOIN messages m ON m.id = ms.message
             WHERE l.name = ?1 ORDER BY ms.message DESC LIMIT ?2",
        )?;
        let mut out = Vec::new();
        for name in names {
            let rows = stmt.query_map(params![name, per_list as i64], |r| r.get::<_, String>(0))?;
            for subject in rows {
                out.push((name.clone(), subject?));
            }
        }
        Ok(out)
    }

    /// The threads with a message dated in `[start, end)` (Unix seconds) on one of `lists`
    /// (every list when empty), ordered by their earliest message's date and id. Lists the
    /// archive does not know are ignored; callers check names with [`Store::list_names`].
    pub fn active_threads(
        &self,
        start: i64,
        end: i64,
        lists: &[ListName],
    ) -> Result<Vec<ActiveThread>> {
        let list_filter = self.list_filter(lists)?;
        let Some(in_lists) = list_filter.as_sql("m.id") else {
            return Ok(Vec::new());
        };

        // The week's messages on the chosen lists (the date index narrows the scan).
        let sql = format!(
            "SELECT m.id, m.thread_id FROM messages m
             WHERE m.date >= ?1 AND m.date < ?2 AND {in_lists} ORDER BY m.id"
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let week_rows: Vec<(i64, i64)> = stmt
            .query_map([start, end], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut thread_ids: Vec<i64> = week_rows.iter().map(|&(_, t)| t).collect();
        thread_ids.sort_unstable();
        thread_ids.dedup();

        // Per thread: its earliest message, whether anything predates the week, and how many
        // messages it had on the chosen lists by the week's end.
        struct Shape {
            root: Option<(MessageId, String)>,
            new: bool,
            total: u32,
        }
        let mut shapes: HashMap<i64, Shape> = HashMap::with_capacity(thread_ids.len());
        for chunk in thread_ids.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT m.thread_id, m.message_id, m.subject, m.date, {in_lists}
                 FROM messages m WHERE m.thread_id IN ({})
                 ORDER BY m.thread_id, m.date IS NULL, m.date, m.message_id",
                placeholders(chunk.len())
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(chunk.iter()))?;
            while let Some(r) = rows.next()? {
                let thread: i64 = r.get(0)?;
                let date: Option<i64> = r.get(3)?;
                let listed: bool = r.get(4)?;
                let shape = shapes.entry(thread).or_insert(Shape {
                    root: None,
                    new: true,
                    total: 0,
                });
                if shape.root.is_none() {
                    shape.root = Some((MessageId::from_trusted(r.get(1)?), r.get(2)?));
                }
                if date.is_some_and(|d| d < start) {
                    shape.new = false;
                }
                if listed && date.is_none_or(|d| d < end) {
                    shape.total += 1;
                }
            }
        }

        // The week's messages themselves, with their own text.
        let footers = self.all_footers()?;
        let mut by_thread: HashMap<i64, Vec<(WeekMessage, Vec<String>)>> = HashMap::new();
        let rows: Vec<i64> = week_rows.iter().map(|&(m, _)| m).collect();
        for chunk in rows.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT m.thread_id, m.message_id, m.date, m.from_name, m.from_addr, m.subject,
                        m.has_patch, m.content,
                        (SELECT group_concat(list, ',') FROM memberships WHERE message = m.id)
                 FROM messages m WHERE m.id IN ({})",
                placeholders(chunk.len())
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(chunk.iter()))?;
            while let Some(r) = rows.next()? {
                let packed: Vec<u8> = r.get(7)?;
                let (_, body) = content::unpack(&packed)?;
                let mut names = Vec::new();
                let mut list_footers: Vec<String> = Vec::new();
                let list_rows: Option<String> = r.get(8)?;
                for id in list_rows
                    .unwrap_or_default()
                    .split(',')
                    .filter_map(|x| x.parse::<i64>().ok())
                {
                    if let Some((name, f)) = footers.get(&id) {
                        names.push(name.clone());
                        list_footers.extend(f.iter().cloned());
                    }
                }
                let body = crate::dedup::strip_footer(&body, &list_footers);
                let own_text = crate::index::split_body(body).own;
                let message = WeekMessage {
                    id: MessageId::from_trusted(r.get(1)?),
                    date: r.get(2)?,
                    author: participant(r.get(3)?, r.get(4)?),
                    subject: r.get(5)?,
                    own_text,
                    has_patch: r.get(6)?,
                };
                by_thread
                    .entry(r.get(0)?)
                    .or_default()
                    .push((message, names));
            }
        }

        let mut out = Vec::with_capacity(thread_ids.len());
        for thread in thread_ids {
            let (Some(shape), Some(mut messages)) =
                (shapes.remove(&thread), by_thread.remove(&thread))
            else {
                continue;
            };
            let Some((root, subject)) = shape.root else {
                continue;
            };
            messages.sort_by(|(a, _), (b, _)| a.date.cmp(&b.date).then_with(|| a.id.cmp(&b.id)));
            let mut lists = BTreeSet::new();
            let mut participants: Vec<Participant> = Vec::new();
            for (m, names) in &messages {
                lists.extend(names.iter().cloned());
                if !participants.iter().any(|p| p.key == m.author.key) {
                    participants.push(m.author.clone());
                }
            }
            let root_date = messages.first().map(|(m, _)| m.date);
            out.push((
                root_date,
                ActiveThread {
                    root,
                    subject,
                    messages_week: messages.len() as u32,
                    messages_total: shape.total.max(messages.len() as u32),
                    new: shape.new,
                    lists: lists.into_iter().collect(),
                    participants,
                    messages: messages.into_iter().map(|(m, _)| m).collect(),
                },
            ));
        }
        out.sort_by(|(da, a), (db, b)| da.cmp(db).then_with(|| a.root.cmp(&b.root)));
        Ok(out.into_iter().map(|(_, t)| t).collect())
    }

    /// The row ids of the named lists, or every list when `lists` is empty.
    fn list_filter(&self, lists: &[ListName]) -> Result<ListFilter> {
        if lists.is_empty() {
            return Ok(ListFilter::All);
        }
        let names: Vec<&str> = lists.iter().map(ListName::as_str).collect();
        let sql = format!(
            "SELECT id FROM lists WHERE name IN ({}) ORDER BY id",
            placeholders(names.len())
        );
        let mut stmt = self.conn.prepare(&sql)?;
        let ids = stmt
            .query_map(params_from_iter(names.iter()), |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(ListFilter::Only(ids))
    }
}

/// A digest subscriber, as the store knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscriber {
    /// Public identity, used in signed tokens.
    pub handle: String,
    /// Where digests go.
    pub email: EmailAddress,
    /// The lists one digest covers, sorted.
    pub lists: Vec<String>,
    /// Saved search limiting the digest, if any.
    pub query: Option<String>,
    /// Tokens of other generations are void.
    pub generation: i64,
    /// Whether the address confirmed (double opt-in).
    pub confirmed: bool,
    /// Whether digests are paused.
    pub paused: bool,
    /// Whether the subscriber left.
    pub unsubscribed: bool,
}

impl Subscriber {
    /// Whether digests go to this subscriber now.
    pub fn active(&self) -> bool {
        self.confirmed && !self.paused && !self.unsubscribed
    }
}

/// Where a ledger row stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeliveryState {
    /// Queued, not tried yet.
    Pending,
    /// A send was started; after a crash it is unknown whether the server accepted it.
    Sending,
    /// The server accepted it.
    Sent,
    /// The server refused it permanently, or it failed transiently in every run for
    /// [`GIVE_UP_AFTER_SECS`](crate::digest::send::GIVE_UP_AFTER_SECS) after it was queued.
    Failed,
    /// Not sent on purpose (empty week, unsubscribed or paused since queueing).
    Skipped,
}

impl DeliveryState {
    /// The name stored in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Sending => "sending",
            DeliveryState::Sent => "sent",
            DeliveryState::Failed => "failed",
            DeliveryState::Skipped => "skipped",
        }
    }

    fn parse(s: &str) -> DeliveryState {
        match s {
            "sending" => DeliveryState::Sending,
            "sent" => DeliveryState::Sent,
            "failed" => DeliveryState::Failed,
            "skipped" => DeliveryState::Skipped,
            _ => DeliveryState::Pending,
        }
    }
}

/// One unsettled ledger row with its subscriber.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The subscriber, as they are now.
    pub subscriber: Subscriber,
    /// Pending, or sending (a crashed run's row).
    pub state: DeliveryState,
    /// The Message-ID fixed when the row was queued.
    pub message_id: String,
    /// Attempts made so far.
    pub attempts: u32,
}

/// What starting a week's run found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeekRun {
    /// The week was completed earlier: nothing to send.
    Completed,
    /// The run is open; this many rows were queued now (0 when resuming).
    Open {
        /// Rows added by this call.
        queued: u64,
    },
}

const SUBSCRIBER_COLUMNS: &str =
    "s.handle, s.email, s.lists, s.query, s.generation, s.confirmed_at IS NOT NULL, s.paused, s.unsubscribed_at IS NOT NULL";

fn subscriber_row(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Subscriber> {
    let email: String = r.get(at + 1)?;
    let lists: String = r.get(at + 2)?;
    Ok(Subscriber {
        handle: r.get(at)?,
        // The address was validated on the way in; a row edited by hand that no longer parses
        // is kept as written rather than failing every query.
        email: EmailAddress::parse(&email).unwrap_or_else(|_| EmailAddress::trusted(email)),
        lists: serde_json::from_str(&lists).unwrap_or_default(),
        query: r.get(at + 3)?,
        generation: r.get(at + 4)?,
        confirmed: r.get(at + 5)?,
        paused: r.get(at + 6)?,
        unsubscribed: r.get(at + 7)?,
    })
}

/// What a subscription request asked for, as a short key: a confirmation link carries the key
/// of the request its email described, so it applies that request and no other.
pub fn request_key(lists: &[ListName], query: Option<&str>) -> String {
    stored_request_key(&lists_json(lists), query)
}

/// [`request_key`] of the lists as stored (their JSON).
fn stored_request_key(lists_json: &str, query: Option<&str>) -> String {
    let mut h = blake3::Hasher::new();
    h.update(lists_json.as_bytes());
    h.update(b"\n");
    if let Some(q) = query {
        h.update(b"q");
        h.update(q.as_bytes());
    }
    h.finalize().as_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// What confirming a subscription did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Confirmed {
    /// Confirmed with the link's request applied (or nothing to change: confirmed before).
    Applied(Subscriber),
    /// No such subscription in that generation, or the subscriber left.
    Gone,
    /// The address was asked for again (other lists or saved search) after the link was
    /// mailed: the link's request is no longer the one on record, and nothing was changed.
    Replaced,
}

fn lists_json(lists: &[ListName]) -> String {
    let mut names: Vec<&str> = lists.iter().map(ListName::as_str).collect();
    names.sort_unstable();
    names.dedup();
    serde_json::to_string(&names).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Records a subscription request and returns the subscriber (unconfirmed, or confirmed
    /// with the request parked until confirmed). `new_handle` is used when the address is new.
    /// A request for an address that unsubscribed starts a new generation.
    pub fn request_subscription(
        &mut self,
        email: &EmailAddress,
        lists: &[ListName],
        query: Option<&str>,
        new_handle: &str,
        now: i64,
    ) -> Result<Subscriber> {
        let lists = lists_json(lists);
        let tx = self.conn.transaction()?;
        let existing: Option<(bool, bool)> = tx
            .query_row(
                "SELECT confirmed_at IS NOT NULL, unsubscribed_at IS NOT NULL
                 FROM digest_subscribers WHERE email_key = ?1",
                [email.key()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        match existing {
            None => {
                tx.execute(
                    "INSERT INTO digest_subscribers (handle, email, email_key, lists, query, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![new_handle, email.as_str(), email.key(), lists, query, now],
                )?;
            }
            Some((_, true)) => {
                tx.execute(
                    "UPDATE digest_subscribers SET generation = generation + 1, email = ?2,
                        lists = ?3, query = ?4, pending_lists = NULL, pending_query = NULL,
                        confirmed_at = NULL, unsubscribed_at = NULL, paused = 0
                     WHERE email_key = ?1",
                    params![email.key(), email.as_str(), lists, query],
                )?;
            }
            Some((false, false)) => {
                tx.execute(
                    "UPDATE digest_subscribers SET lists = ?2, query = ?3 WHERE email_key = ?1",
                    params![email.key(), lists, query],
                )?;
            }
            Some((true, false)) => {
                tx.execute(
                    "UPDATE digest_subscribers SET pending_lists = ?2, pending_query = ?3
                     WHERE email_key = ?1",
                    params![email.key(), lists, query],
                )?;
            }
        }
        let sub = tx.query_row(
            &format!(
                "SELECT {SUBSCRIBER_COLUMNS} FROM digest_subscribers s WHERE s.email_key = ?1"
            ),
            [email.key()],
            |r| subscriber_row(r, 0),
        )?;
        tx.commit()?;
        Ok(sub)
    }

    /// A subscriber by handle.
    pub fn subscriber(&self, handle: &str) -> Result<Option<Subscriber>> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {SUBSCRIBER_COLUMNS} FROM digest_subscribers s WHERE s.handle = ?1"
                ),
                [handle],
                |r| subscriber_row(r, 0),
            )
            .optional()?)
    }

    /// The latest message date not after `limit` (Unix seconds), by the date index.
    pub fn latest_date(&self, limit: i64, lists: &[ListName]) -> Result<Option<i64>> {
        if lists.is_empty() {
            return Ok(self.conn.query_row(
                "SELECT MAX(date) FROM messages WHERE date <= ?1",
                [limit],
                |r| r.get(0),
            )?);
        }
        // Newest first along the date index, stopping at the first message of the lists.
        let sql = format!(
            "SELECT m.date FROM messages m WHERE m.date <= ? AND EXISTS (
                 SELECT 1 FROM memberships ms JOIN lists l ON l.id = ms.list
                 WHERE ms.message = m.id AND l.name IN ({}))
             ORDER BY m.date DESC LIMIT 1",
            super::placeholders(lists.len())
        );
        let params = std::iter::once(rusqlite::types::Value::Integer(limit)).chain(
            lists
                .iter()
                .map(|l| rusqlite::types::Value::Text(l.as_str().to_owned())),
        );
        Ok(self
            .conn
            .query_row(&sql, rusqlite::params_from_iter(params), |r| r.get(0))
            .optional()?)
    }

    /// Every subscriber in any state (unconfirmed, paused, gone), oldest first.
    pub fn all_subscribers(&self) -> Result<Vec<Subscriber>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM digest_subscribers s ORDER BY s.id"
        ))?;
        let rows = stmt.query_map([], |r| subscriber_row(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Every subscriber digests go to now (confirmed, not paused, not unsubscribed).
    pub fn active_subscribers(&self) -> Result<Vec<Subscriber>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {SUBSCRIBER_COLUMNS} FROM digest_subscribers s
             WHERE s.confirmed_at IS NOT NULL AND s.unsubscribed_at IS NULL AND s.paused = 0
             ORDER BY s.id"
        ))?;
        let rows = stmt.query_map([], |r| subscriber_row(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Confirms a subscription and applies the request whose key (see [`request_key`]) the
    /// confirmation link carries, and only that one: a request parked since by someone else
    /// stays parked. `request` is `None` for links made before keys existed, which apply
    /// whatever was asked last.
    pub fn confirm_subscription(
        &mut self,
        handle: &str,
        generation: i64,
        request: Option<&str>,
        now: i64,
    ) -> Result<Confirmed> {
        let tx = self.conn.transaction()?;
        type Row = (bool, String, Option<String>, Option<String>, Option<String>);
        let row: Option<Row> = tx
            .query_row(
                "SELECT confirmed_at IS NOT NULL, lists, query, pending_lists, pending_query
                 FROM digest_subscribers
                 WHERE handle = ?1 AND generation = ?2 AND unsubscribed_at IS NULL",
                params![handle, generation],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((confirmed, lists, query, pending_lists, pending_query)) = row else {
            return Ok(Confirmed::Gone);
        };
        let asked = |lists: &str, query: Option<&str>| {
            request.is_none_or(|r| r == stored_request_key(lists, query))
        };
        let parked = pending_lists
            .as_deref()
            .is_some_and(|p| asked(p, pending_query.as_deref()));
        if parked {
            tx.execute(
                "UPDATE digest_subscribers SET confirmed_at = COALESCE(confirmed_at, ?2),
                    lists = pending_lists, query = pending_query,
                    pending_lists = NULL, pending_query = NULL
                 WHERE handle = ?1",
                params![handle, now],
            )?;
        } else if asked(&lists, query.as_deref()) {
            if !confirmed {
                tx.execute(
                    "UPDATE digest_subscribers SET confirmed_at = ?2 WHERE handle = ?1",
                    params![handle, now],
                )?;
            }
        } else {
            return Ok(Confirmed::Replaced);
        }
        tx.commit()?;
        Ok(match self.subscriber(handle)? {
            Some(s) => Confirmed::Applied(s),
            None => Confirmed::Gone,
        })
    }

    /// Unsubscribes; idempotent. Returns whether the token's subscriber exists in that
    /// generation (already unsubscribed counts).
    pub fn unsubscribe(&mut self, handle: &str, generation: i64, now: i64) -> Result<bool> {
        let changed = self.conn.execute(
            "UPDATE digest_subscribers SET unsubscribed_at = COALESCE(unsubscribed_at, ?3)
             WHERE handle = ?1 AND generation = ?2",
            params![handle, generation, now],
        )?;
        Ok(changed > 0)
    }

    /// Pauses or resumes; returns whether the subscriber exists in that generation and is
    /// still subscribed.
    pub fn set_paused(&mut self, handle: &str, generation: i64, paused: bool) -> Result<bool> {
        let changed = self.conn.execute(
            "UPDATE digest_subscribers SET paused = ?3
             WHERE handle = ?1 AND generation = ?2 AND unsubscribed_at IS NULL",
            params![handle, generation, paused],
        )?;
        Ok(changed > 0)
    }

    /// Changes the lists and saved search of a confirmed subscriber (from the manage page,
    /// reached through a signed link).
    pub fn update_subscription(
        &mut self,
        handle: &str,
        generation: i64,
        lists: &[ListName],
        query: Option<&str>,
    ) -> Result<bool> {
        let changed = self.conn.execute(
            "UPDATE digest_subscribers SET lists = ?3, query = ?4
             WHERE handle = ?1 AND generation = ?2 AND unsubscribed_at IS NULL",
            params![handle, generation, lists_json(lists), query],
        )?;
        Ok(changed > 0)
    }

    /// Opens the week's run: unless the week was completed, queues every active subscriber not
    /// queued yet, each with the Message-ID `message_id(handle)`, in one transaction.
    pub fn start_week(
        &mut self,
        week: IsoWeek,
        now: i64,
        message_id: impl Fn(&str) -> String,
    ) -> Result<WeekRun> {
        let week = week.to_string();
        let tx = self.conn.transaction()?;
        let completed: Option<Option<i64>> = tx
            .query_row(
                "SELECT completed_at FROM digest_runs WHERE week = ?1",
                [&week],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(Some(_)) = completed {
            return Ok(WeekRun::Completed);
        }
        tx.execute(
            "INSERT OR IGNORE INTO digest_runs (week, started_at) VALUES (?1, ?2)",
            params![week, now],
        )?;
        let active: Vec<(i64, String)> = {
            let mut stmt = tx.prepare(
                "SELECT id, handle FROM digest_subscribers
                 WHERE confirmed_at IS NOT NULL AND unsubscribed_at IS NULL AND paused = 0
                 ORDER BY id",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        let mut queued = 0u64;
        {
            let mut insert = tx.prepare(
                "INSERT OR IGNORE INTO digest_outbox (subscriber, week, state, message_id, queued_at)
                 VALUES (?1, ?2, 'pending', ?3, ?4)",
            )?;
            for (id, handle) in &active {
                queued += insert.execute(params![id, week, message_id(handle), now])? as u64;
            }
        }
        tx.commit()?;
        Ok(WeekRun::Open { queued })
    }

    /// The week's rows still to send (pending, or sending from a crashed run), in queue order.
    pub fn unsettled(&self, week: IsoWeek) -> Result<Vec<Delivery>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {SUBSCRIBER_COLUMNS}, o.state, o.message_id, o.attempts
             FROM digest_outbox o JOIN digest_subscribers s ON s.id = o.subscriber
             WHERE o.week = ?1 AND o.state IN ('pending', 'sending') ORDER BY o.subscriber"
        ))?;
        let rows = stmt.query_map([week.to_string()], |r| {
            Ok(Delivery {
                subscriber: subscriber_row(r, 0)?,
                state: DeliveryState::parse(&r.get::<_, String>(8)?),
                message_id: r.get(9)?,
                attempts: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Records a state change of a ledger row, with `attempts` more attempts made; `Sent`
    /// records `now`; `error` is kept for `Failed` and `Skipped` (the reason) and for a
    /// transient failure that was retried.
    pub fn set_delivery(
        &mut self,
        week: IsoWeek,
        handle: &str,
        state: DeliveryState,
        error: Option<&str>,
        attempts: u32,
        now: i64,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE digest_outbox SET state = ?3,
                attempts = attempts + ?6,
                sent_at = CASE WHEN ?3 = 'sent' THEN ?5 ELSE sent_at END,
                last_error = COALESCE(?4, last_error)
             WHERE week = ?1
               AND subscriber = (SELECT id FROM digest_subscribers WHERE handle = ?2)",
            params![
                week.to_string(),
                handle,
                state.as_str(),
                error,
                now,
                attempts
            ],
        )?;
        Ok(())
    }

    /// Puts a row whose delivery failed transiently in this run back to `pending`, for the
    /// next run to try again, unless it was queued before `give_up_before`: then it is
    /// `failed`, as a mail server gives up on a message after days in its queue. Returns the
    /// state the row is now in.
    pub fn defer_delivery(
        &mut self,
        week: IsoWeek,
        handle: &str,
        error: &str,
        attempts: u32,
        give_up_before: i64,
    ) -> Result<DeliveryState> {
        let state: String = self.conn.query_row(
            "UPDATE digest_outbox SET
                state = CASE WHEN queued_at < ?4 THEN 'failed' ELSE 'pending' END,
                attempts = attempts + ?5,
                last_error = ?3
             WHERE week = ?1
               AND subscriber = (SELECT id FROM digest_subscribers WHERE handle = ?2)
             RETURNING state",
            params![week.to_string(), handle, error, give_up_before, attempts],
            |r| r.get(0),
        )?;
        Ok(DeliveryState::parse(&state))
    }

    /// Marks the week completed when no row is left pending or sending; returns whether it is.
    pub fn complete_week(&mut self, week: IsoWeek, now: i64) -> Result<bool> {
        let week = week.to_string();
        let open: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM digest_outbox WHERE week = ?1 AND state IN ('pending', 'sending')",
            [&week],
            |r| r.get(0),
        )?;
        if open > 0 {
            return Ok(false);
        }
        self.conn.execute(
            "UPDATE digest_runs SET completed_at = COALESCE(completed_at, ?2) WHERE week = ?1",
            params![week, now],
        )?;
        Ok(true)
    }

    /// The week's ledger rows counted by state.
    pub fn delivery_counts(&self, week: IsoWeek) -> Result<BTreeMap<DeliveryState, u64>> {
        let mut stmt = self
            .conn
            .prepare("SELECT state, COUNT(*) FROM digest_outbox WHERE week = ?1 GROUP BY state")?;
        let rows = stmt.query_map([week.to_string()], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
        })?;
        let mut out = BTreeMap::new();
        for row in rows {
            let (state, n) = row?;
            out.insert(DeliveryState::parse(&state), n as u64);
        }
        Ok(out)
    }

    /// Whether the week's run completed (a real run sends nothing more for it), and the
    /// handles of subscribers whose digest of the week is settled (sent, or failed for good).
    pub fn week_progress(&self, week: IsoWeek) -> Result<(bool, HashSet<String>)> {
        let week = week.to_string();
        let completed: Option<Option<i64>> = self
            .conn
            .query_row(
                "SELECT completed_at FROM digest_runs WHERE week = ?1",
                [&week],
                |r| r.get(0),
            )
            .optional()?;
        let mut stmt = self.conn.prepare(
            "SELECT s.handle FROM digest_outbox o JOIN digest_subscribers s ON s.id = o.subscriber
             WHERE o.week = ?1 AND o.state IN ('sent', 'failed')",
        )?;
        let settled = stmt
            .query_map([&week], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        Ok((matches!(completed, Some(Some(_))), settled))
    }

    /// The latest week whose run completed, if any (the schedule's memory).
    pub fn last_completed_week(&self) -> Result<Option<IsoWeek>> {
        let week: Option<String> = self.conn.query_row(
            "SELECT MAX(week) FROM digest_runs WHERE completed_at IS NOT NULL",
            [],
            |r| r.get(0),
        )?;
        Ok(week.and_then(|w| IsoWeek::parse(&w).ok()))
    }
}

/// Which lists a query keeps.
enum ListFilter {
    All,
    Only(Vec<i64>),
}

impl ListFilter {
    /// An SQL condition on a message row id column, or `None` when no list can match. The ids
    /// are the store's own integers, so writing them into the SQL is safe.
    fn as_sql(&self, message_column: &str) -> Option<String> {
        match self {
            ListFilter::All => Some("1".into()),
            ListFilter::Only(ids) if ids.is_empty() => None,
            ListFilter::Only(ids) => {
                let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                Some(format!(
                    "EXISTS (SELECT 1 FROM memberships ms WHERE ms.message = {message_column} AND ms.list IN ({}))",
                    ids.join(",")
                ))
            }
        }
    }
}

/// A participant from a sender's name and address: the name when there is one, else the
/// address's local part, so digests never print a full address.
fn participant(name: Option<String>, addr: Option<String>) -> Participant {
    let name = name.map(|n| n.trim().to_string()).filter(|n| !n.is_empty());
    let addr = addr
        .map(|a| a.trim().to_ascii_lowercase())
        .filter(|a| !a.is_empty());
    let shown = match (&name, &addr) {
        (Some(n), _) if !n.contains('@') => n.clone(),
        (_, Some(a)) => a.split('@').next().unwrap_or("someone").to_string(),
        (Some(n), None) => n.split('@').next().unwrap_or("someone").to_string(),
        (None, None) => "someone".to_string(),
    };
    let key = addr.or(name).unwrap_or_else(|| "someone".into());
    Participant { name: shown, key }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn participants_never_show_addresses() {
        let cases: &[(Option<&str>, Option<&str>, &str, &str)] = &[
            (
                Some("Jane Doe"),
                Some("Jane@X.org"),
                "Jane Doe",
                "jane@x.org",
            ),
            (None, Some("jane@x.org"), "jane", "jane@x.org"),
            (Some("jane@x.org"), Some("jane@x.org"), "jane", "jane@x.org"),
            (Some("  "), Some("bob@y"), "bob", "bob@y"),
            (Some("Bob"), None, "Bob", "Bob"),
            (None, None, "someone", "someone"),
        ];
        for (name, addr, shown, key) in cases {
            let p = participant(name.map(String::from), addr.map(String::from));
            assert_eq!(
                (p.name.as_str(), p.key.as_str()),
                (*shown, *key),
                "{name:?} {addr:?}"
            );
        }
    }
}
