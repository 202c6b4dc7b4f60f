//! Read-side queries for the web server and feeds: list overviews, threads by activity,
//! whole threads and single messages. Row ids stay in here; callers get Message-IDs.

use std::collections::HashMap;

use anyhow::Result;
use rusqlite::{params, OptionalExtension};

use super::{content, MessageId, Store};
use crate::message::{Address, Attachment};

/// A list on the home page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListOverview {
    /// Name.
    pub name: String,
    /// Messages in it (a cross-post counts in each list).
    pub messages: u64,
    /// Date of its newest message.
    pub latest: Option<i64>,
}

/// A thread as listed on home and list pages.
#[derive(Debug, Clone)]
pub struct ThreadSummary {
    /// The thread's first message: its id names the thread in URLs.
    pub root_id: MessageId,
    /// Subject of the first message.
    pub subject: String,
    /// Sender of the first message.
    pub from: Address,
    /// Messages in the thread (within the selection).
    pub messages: u64,
    /// First and last activity (within the selection).
    pub first: Option<i64>,
    /// Last activity.
    pub last: Option<i64>,
}

/// A message's date and raw bytes, for mbox export.
pub type DatedRaw = (Option<i64>, Vec<u8>);

/// What a thread's outline needs of a message: no text.
#[derive(Debug, Clone)]
pub struct OutlineMessage {
    /// The message's row, to read it whole with [`Store::full_messages_of`].
    pub row: i64,
    /// Public id.
    pub id: MessageId,
    /// Decoded subject.
    pub subject: String,
    /// Sender.
    pub from: Address,
    /// Unix seconds.
    pub date: Option<i64>,
    /// References then In-Reply-To.
    pub refs: Vec<String>,
}

/// A message with everything its page shows.
#[derive(Debug, Clone)]
pub struct FullMessage {
    /// Public id.
    pub id: MessageId,
    /// Decoded subject.
    pub subject: String,
    /// Sender.
    pub from: Address,
    /// Unix seconds.
    pub date: Option<i64>,
    /// Lists, sorted.
    pub lists: Vec<String>,
    /// References then In-Reply-To.
    pub refs: Vec<String>,
    /// Extracted text.
    pub body: String,
    /// Where the lists' footers start in `body`, if any.
    pub footer_at: Option<usize>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// The text came from HTML.
    pub html_only: bool,
    /// Carries a patch.
    pub has_patch: bool,
    /// Raw size.
    pub size: u64,
    /// Thread number (for the index's `thread:` and grouping).
    pub thread: i64,
}

impl Store {
    /// SQLite's `data_version`: it changes between two calls on this connection exactly when
    /// another connection (an import) committed in between. The web cache watches it.
    pub fn data_version(&self) -> Result<i64> {
        // Asked on every request: a cached statement skips the parse.
        Ok(self
            .conn
            .prepare_cached("PRAGMA data_version")?
            .query_row([], |r| r.get(0))?)
    }

    /// Every list with its message count and latest activity, by name.
    pub fn lists_overview(&self) -> Result<Vec<ListOverview>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT l.name, COUNT(ms.message), MAX(m.date) FROM lists l
             LEFT JOIN memberships ms ON ms.list = l.id
             LEFT JOIN messages m ON m.id = ms.message
             GROUP BY l.id ORDER BY l.name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ListOverview {
                name: r.get(0)?,
                messages: r.get::<_, i64>(1)? as u64,
                latest: r.get(2)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether a list exists.
    pub fn list_exists(&self, name: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM lists WHERE name = ?1")?
            .query_row([name], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Threads by last activity, newest first: all lists or one, optionally only activity in
    /// `[from, to)`. Returns the page and the total number of threads.
    pub fn threads_by_activity(
        &self,
        list: Option<&str>,
        range: Option<(i64, i64)>,
        limit: usize,
        offset: usize,
    ) -> Result<(Vec<ThreadSummary>, u64)> {
        let (from, to) = range.unwrap_or((i64::MIN, i64::MAX));
        let filter = "FROM messages m
             WHERE (?1 IS NULL OR EXISTS (SELECT 1 FROM memberships ms JOIN lists l ON l.id = ms.list
                                          WHERE ms.message = m.id AND l.name = ?1))
               AND COALESCE(m.date, 0) >= ?2 AND COALESCE(m.date, 0) < ?3";
        let total: i64 = self
            .conn
            .prepare_cached(&format!("SELECT COUNT(DISTINCT m.thread_id) {filter}"))?
            .query_row(params![list, from, to], |r| r.get(0))?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT m.thread_id, COUNT(*), MIN(m.date), MAX(m.date) {filter}
             GROUP BY m.thread_id ORDER BY MAX(COALESCE(m.date, 0)) DESC, m.thread_id DESC
             LIMIT ?4 OFFSET ?5"
        ))?;
        let groups: Vec<(i64, i64, Option<i64>, Option<i64>)> = stmt
            .query_map(params![list, from, to, limit as i64, offset as i64], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut root = self.conn.prepare_cached(
            "SELECT message_id, subject, from_name, from_addr FROM messages
             WHERE thread_id = ?1 ORDER BY COALESCE(date, 0), id LIMIT 1",
        )?;
        let mut out = Vec::with_capacity(groups.len());
        for (thread, count, first, last) in groups {
            let (id, subject, name, addr): (String, String, Option<String>, Option<String>) = root
                .query_row([thread], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })?;
            out.push(ThreadSummary {
                root_id: MessageId::from_trusted(id),
                subject,
                from: Address { name, addr },
                messages: count as u64,
                first,
                last,
            });
        }
        Ok((out, total as u64))
    }

    /// One message.
    pub fn message(&self, id: &MessageId) -> Result<Option<FullMessage>> {
        let row: Option<i64> = self
            .conn
            .prepare_cached("SELECT id FROM messages WHERE message_id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?;
        match row {
            Some(row) => Ok(self.full_messages("m.id = ?1", row)?.into_iter().next()),
            None => Ok(None),
        }
    }

    /// Messages in a thread, by the thread number of a [`FullMessage`].
    pub fn thread_size(&self, thread: i64) -> Result<u64> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM messages WHERE thread_id = ?1")?;
        Ok(stmt.query_row([thread], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Messages in the thread holding `id`; 0 if `id` is unknown.
    pub fn thread_size_of(&self, id: &MessageId) -> Result<u64> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT COUNT(*) FROM messages
             WHERE thread_id = (SELECT thread_id FROM messages WHERE message_id = ?1)",
        )?;
        Ok(stmt.query_row([id.as_str()], |r| r.get::<_, i64>(0))? as u64)
    }

    /// Every message of the thread that holds `id`, in date order; `None` if `id` is unknown.
    pub fn thread_messages(&self, id: &MessageId) -> Result<Option<Vec<FullMessage>>> {
        let thread = self.thread_id_of(id)?;
        match thread {
            Some(t) => Ok(Some(self.full_messages("m.thread_id = ?1", t)?)),
            None => Ok(None),
        }
    }

    /// The outline of the thread holding `id` (every message without its text), in date
    /// order; `None` if `id` is unknown. A page of a long thread reads this, then the full
    /// messages of that page only ([`Store::full_messages_of`]).
    pub fn thread_outline(&self, id: &MessageId) -> Result<Option<Vec<OutlineMessage>>> {
        let Some(thread) = self.thread_id_of(id)? else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, message_id, subject, from_name, from_addr, date, refs
             FROM messages WHERE thread_id = ?1 ORDER BY COALESCE(date, 0), id",
        )?;
        let rows = stmt.query_map([thread], |r| {
            Ok(OutlineMessage {
                row: r.get(0)?,
                id: MessageId::from_trusted(r.get(1)?),
                subject: r.get(2)?,
                from: address_at(r, 3)?,
                date: r.get(5)?,
                refs: serde_json::from_str(r.get_ref(6)?.as_str()?).unwrap_or_default(),
            })
        })?;
        Ok(Some(rows.collect::<rusqlite::Result<_>>()?))
    }

    /// The full messages of outline rows ([`OutlineMessage::row`]), in date order.
    pub fn full_messages_of(&self, rows: &[i64]) -> Result<Vec<FullMessage>> {
        let list = serde_json::to_string(rows)?;
        self.full_messages("m.id IN (SELECT value FROM json_each(?1))", list)
    }

    /// The raw bytes of every message in the thread holding `id`, in date order, with their
    /// dates, for mbox export.
    pub fn thread_raw(&self, id: &MessageId) -> Result<Option<Vec<DatedRaw>>> {
        let thread = self.thread_id_of(id)?;
        let Some(thread) = thread else {
            return Ok(None);
        };
        let mut stmt = self.conn.prepare_cached(
            "SELECT date, content FROM messages WHERE thread_id = ?1 ORDER BY COALESCE(date, 0), id",
        )?;
        let rows: Vec<(Option<i64>, Vec<u8>)> = stmt
            .query_map([thread], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (date, packed) in rows {
            out.push((date, content::unpack(&packed)?.0));
        }
        Ok(Some(out))
    }

    /// The thread row of a message, if the message is stored.
    fn thread_id_of(&self, id: &MessageId) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached("SELECT thread_id FROM messages WHERE message_id = ?1")?
            .query_row([id.as_str()], |r| r.get(0))
            .optional()?)
    }

    fn full_messages(
        &self,
        condition: &str,
        value: impl rusqlite::ToSql,
    ) -> Result<Vec<FullMessage>> {
        let footers = self.all_footers()?;
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT m.id, m.message_id, m.subject, m.from_name, m.from_addr, m.date,
                    m.refs, m.content, m.html_only, m.has_patch, m.size, m.thread_id,
                    (SELECT group_concat(list, ',') FROM memberships WHERE message = m.id)
             FROM messages m WHERE {condition} ORDER BY COALESCE(m.date, 0), m.id"
        ))?;
        let mut rows = stmt.query([&value])?;
        let mut out = Vec::new();
        let mut row_ids = Vec::new();
        while let Some(r) = rows.next()? {
            let packed = r.get_ref(7)?.as_blob()?;
            let (_, body) = content::unpack(packed)?;
            let refs: Vec<String> =
                serde_json::from_str(r.get_ref(6)?.as_str()?).unwrap_or_default();
            let mut lists = Vec::new();
            let mut list_footers = Vec::new();
            let ids: String = r.get::<_, Option<String>>(12)?.unwrap_or_default();
            for list in ids.split(',').filter_map(|x| x.parse::<i64>().ok()) {
                if let Some((name, f)) = footers.get(&list) {
                    lists.push(name.clone());
                    list_footers.extend(f.iter().cloned());
                }
            }
            lists.sort();
            let footer_at = crate::dedup::footer_start(&body, &list_footers);
            row_ids.push(r.get::<_, i64>(0)?);
            out.push(FullMessage {
                id: MessageId::from_trusted(r.get(1)?),
                subject: r.get(2)?,
                from: address_at(r, 3)?,
                date: r.get(5)?,
                lists,
                refs,
                body,
                footer_at,
                attachments: Vec::new(),
                html_only: r.get(8)?,
                has_patch: r.get(9)?,
                size: r.get::<_, i64>(10)? as u64,
                thread: r.get(11)?,
            });
        }
        // One query for the attachments of every message selected, not one per message.
        let mut attachments: HashMap<i64, Vec<Attachment>> = HashMap::new();
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT a.message, a.filename, a.content_type, a.size FROM attachments a
             WHERE a.message IN (SELECT m.id FROM messages m WHERE {condition})
             ORDER BY a.message, a.position"
        ))?;
        let mut rows = stmt.query([&value])?;
        while let Some(r) = rows.next()? {
            attachments
                .entry(r.get::<_, i64>(0)?)
                .or_default()
                .push(Attachment {
                    filename: r.get(1)?,
                    content_type: r.get(2)?,
                    size: r.get::<_, i64>(3)? as u64,
                });
        }
        for (message, row) in out.iter_mut().zip(&row_ids) {
            message.attachments = attachments.remove(row).unwrap_or_default();
        }
        Ok(out)
    }
}

impl Store {
    /// Months with activity in a list, newest first: (year, month, messages).
    pub fn list_months(&self, list: &str) -> Result<Vec<(i32, u32, u64)>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT CAST(strftime('%Y', m.date, 'unixepoch') AS INTEGER),
                    CAST(strftime('%m', m.date, 'unixepoch') AS INTEGER), COUNT(*)
             FROM messages m JOIN memberships ms ON ms.message = m.id
             JOIN lists l ON l.id = ms.list
             WHERE l.name = ?1 AND m.date IS NOT NULL
             GROUP BY 1, 2 ORDER BY 1 DESC, 2 DESC",
        )?;
        let rows = stmt.query_map([list], |r| {
            Ok((
                r.get::<_, i64>(0)? as i32,
                r.get::<_, i64>(1)? as u32,
                r.get::<_, i64>(2)? as u64,
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

/// The sender in columns `at` (name) and `at + 1` (address) of a row.
fn address_at(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Address> {
    Ok(Address {
        name: r.get(at)?,
        addr: r.get(at + 1)?,
    })
}
