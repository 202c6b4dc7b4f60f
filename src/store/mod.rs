//! The SQLite archive: the only module with SQL. Opens the database (WAL, foreign keys,
//! migrations from `schema/`), answers the importer's batched look-ups and writes each batch in
//! one transaction. Row ids stay in here; callers see [`MessageRef`] handles and Message-IDs.

mod content;
mod digest;
mod migrate;
mod read;

pub use content::{pack_content, unpack as unpack_content};
pub use digest::{
    request_key, ActiveThread, Confirmed, Delivery, DeliveryState, Participant, Subscriber,
    WeekMessage, WeekRun,
};
pub use read::{FullMessage, ListOverview, OutlineMessage, ThreadSummary};

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{params, params_from_iter, Connection, OptionalExtension};

use crate::dedup::ContentKey;
use crate::message::{Attachment, ListName, MessageId};
use crate::thread::{StoredSubjects, SubjectMessage, ThreadId};

/// SQLite caps the number of `?` parameters; look-ups are chunked below it.
const LOOKUP_CHUNK: usize = 500;

/// An opaque handle to a stored message, valid for one [`Store`]. Its row id never leaves
/// this module.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MessageRef(i64);

/// An opaque handle to a list row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListRef(i64);

/// An opaque handle to an input file row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileRef(i64);

/// A stored message that shares an identity with an incoming copy.
#[derive(Debug, Clone)]
pub struct StoredCandidate {
    /// Handle for writing memberships.
    pub handle: MessageRef,
    /// Public id.
    pub id: MessageId,
    /// Content key.
    pub key: ContentKey,
    /// Lists it is already a member of.
    pub lists: Vec<ListRef>,
}

/// What a stored message's content key was made from (see [`Store::key_source`]).
#[derive(Debug, Clone)]
pub struct KeySource {
    /// The raw bytes as received.
    pub raw: Vec<u8>,
    /// The text extracted from them (before any footer was stripped).
    pub text: String,
    /// Sender address.
    pub from_addr: Option<String>,
    /// Unix seconds.
    pub date: Option<i64>,
    /// Decoded subject.
    pub subject: String,
}

/// What the store remembers about an input file.
#[derive(Debug, Clone)]
pub struct FileState {
    /// Handle.
    pub handle: FileRef,
    /// The list its messages were filed under.
    pub list: Option<ListRef>,
    /// Detected variant name.
    pub variant: String,
    /// On-disk size when last read.
    pub size: u64,
    /// End of the last committed record in the (decompressed) stream.
    pub done_offset: u64,
    /// Fingerprint of the on-disk bytes `[0, size)`.
    pub fingerprint: Option<Vec<u8>>,
    /// Whether the whole file was read.
    pub complete: bool,
}

/// A new message row.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Public id.
    pub id: MessageId,
    /// The header's Message-ID, if any.
    pub header_id: Option<MessageId>,
    /// Dedup key.
    pub key: ContentKey,
    /// Thread.
    pub thread: ThreadId,
    /// Unix seconds.
    pub date: Option<i64>,
    /// The subject's key for the subject fallback (`thread::subject_key`), if not empty.
    pub subject_key: Option<String>,
    /// Sender name.
    pub from_name: Option<String>,
    /// Sender address.
    pub from_addr: Option<String>,
    /// Decoded subject.
    pub subject: String,
    /// To then Cc as `[name, addr]` pairs, JSON.
    pub recipients_json: String,
    /// References then In-Reply-To, JSON.
    pub refs_json: String,
    /// Flags.
    pub has_patch: bool,
    /// Flags.
    pub html_only: bool,
    /// Raw size.
    pub size: u64,
    /// The raw bytes and extracted text, packed by [`pack_content`].
    pub content: Vec<u8>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
    /// Where this copy came from.
    pub offset: u64,
}

/// A problem row.
#[derive(Debug, Clone)]
pub struct NewProblem {
    /// Offset in the file's (decompressed) stream.
    pub offset: u64,
    /// Length of the range.
    pub length: u64,
    /// Kind name.
    pub kind: String,
    /// Explanation.
    pub detail: String,
    /// zstd-compressed bytes.
    pub raw_z: Vec<u8>,
}

/// A recorded problem: a byte range of an input file that is not a stored message.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProblemRecord {
    /// The file's path as imported.
    pub file: String,
    /// Offset of the range in the file's (decompressed) stream.
    pub offset: u64,
    /// Length of the range in bytes.
    pub length: u64,
    pub kind: String,
    pub detail: String,
}

/// Everything one import batch writes, applied in a single transaction.
#[derive(Debug, Default)]
pub struct Batch {
    /// New messages (memberships in the batch's list are added for them).
    pub messages: Vec<NewMessage>,
    /// Existing messages that gained the batch's list: (message, offset).
    pub cross_posts: Vec<(MessageRef, u64)>,
    /// Further copies of messages the batch's list already holds (stored before or earlier in
    /// this batch), by public id: where each was read.
    pub copies: Vec<CopyPlace>,
    /// Thread keys to insert or update.
    pub thread_keys: Vec<(String, ThreadId)>,
    /// Thread merges: (absorbed, survivor).
    pub merges: Vec<(ThreadId, ThreadId)>,
    /// Replies to record as orphans of the subject fallback: (message id, subject key, date).
    pub orphans: Vec<(String, String, i64)>,
    /// Recorded orphans adopted by this batch, by message id.
    pub adopted: Vec<String>,
    /// Problems found.
    pub problems: Vec<NewProblem>,
    /// Footers newly learned for the batch's list.
    pub footers: Vec<String>,
    /// File progress to record, if the batch came from a file.
    pub progress: Option<FileProgress>,
}

/// Where a further copy of a stored message was read (see `schema/0004_copies.sql`).
#[derive(Debug, Clone)]
pub struct CopyPlace {
    /// The public id of the message it is a copy of.
    pub message: MessageId,
    /// Offset of its record in the (decompressed) stream.
    pub offset: u64,
    /// Length of its record, separator line included.
    pub length: u64,
}

/// The file position a batch brings the import to.
#[derive(Debug, Clone)]
pub struct FileProgress {
    /// End of the last record in this batch.
    pub done_offset: u64,
    /// Whether the file has been read to its end.
    pub complete: bool,
    /// The variant, once known.
    pub variant: String,
}

/// Archive-wide counts for `archivist stats`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Stats {
    /// Distinct messages.
    pub messages: u64,
    /// Threads with at least one stored message.
    pub threads: u64,
    /// Messages per list (a cross-post counts in each of its lists).
    pub lists: std::collections::BTreeMap<String, u64>,
    /// Problems recorded.
    pub problems: u64,
    /// Further copies of messages a list already held, found again by file and offset.
    pub copies: u64,
}

/// What the search index needs of one message, read from the archive.
#[derive(Debug, Clone)]
pub struct IndexSource {
    /// Public id.
    pub message_id: MessageId,
    /// Thread (internal number; the index uses it for grouping only).
    pub thread: i64,
    /// Unix seconds.
    pub date: Option<i64>,
    /// Decoded subject.
    pub subject: String,
    /// Body text with its lists' learned footers removed.
    pub body: String,
    /// Sender name.
    pub from_name: Option<String>,
    /// Sender address.
    pub from_addr: Option<String>,
    /// To and Cc, as `Name <addr>` strings.
    pub recipients: Vec<String>,
    /// Lists, sorted.
    pub lists: Vec<String>,
    /// Flags.
    pub has_attachment: bool,
    /// Flags.
    pub has_patch: bool,
}

/// What a search hit or a list page shows of a message.
#[derive(Debug, Clone)]
pub struct Summary {
    /// Public id.
    pub message_id: MessageId,
    /// Decoded subject.
    pub subject: String,
    /// Sender.
    pub from: crate::message::Address,
    /// Unix seconds.
    pub date: Option<i64>,
    /// Lists, sorted.
    pub lists: Vec<String>,
    /// Messages in its thread.
    pub thread_size: u64,
}

/// A position in the archive for a full scan (reindex); opaque outside the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanCursor(i64);

/// The archive database.
pub struct Store {
    conn: Connection,
    /// Set during an import: the thread that checkpoints the write-ahead log.
    checkpointer: Option<Checkpointer>,
}

/// Log frames (16 KiB pages) past which the checkpoint thread makes the log start over:
/// 256 MiB of log at most, plus one batch.
const WAL_RESTART_FRAMES: i64 = 16_384;

/// Copies the write-ahead log into the database file on a thread of its own, with its own
/// connection, so the import's write stage neither copies pages nor waits for the `fsync`s
/// of a checkpoint (SQLite's automatic checkpoint runs inside the committing call). Only where
/// committed pages live changes, not what is committed: a kill at any moment leaves the log,
/// which the next open replays, exactly as with automatic checkpoints.
struct Checkpointer {
    tick: Option<crossbeam_channel::Sender<()>>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    /// Asks for a checkpoint soon; never blocks (one pending request is enough).
    fn tick(&self) {
        if let Some(tick) = &self.tick {
            let _ = tick.try_send(());
        }
    }

    fn stop(&mut self) {
        self.tick = None;
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Store {
    /// Opens an existing archive read-only, for the web server: it never writes, and reads
    /// while an import writes in another process (WAL).
    pub fn open_read_only(path: &Path) -> Result<Store> {
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("cannot open archive database {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // 16 MiB of page cache: the web server holds several of these connections, and the
        // OS page cache keeps the file's hot pages for all of them.
        conn.pragma_update(None, "cache_size", -16384)?;
        // Pages read through a memory map instead of `pread` into the page cache: a search's
        // summaries touch pages scattered over the whole file, so most were copied in afresh
        // for each request (the copies and cache look-ups were 7% of an uncached search page).
        // Reads only: a read-only connection never writes through the map, and the archive
        // file only grows (no VACUUM), so a mapped page never disappears under a reader.
        // SQLite caps the size at its compile-time limit (2 GiB by default); the rest of a
        // larger file is read with `pread` as before. Mapped pages count in the process's
        // resident size although they are the OS page cache the reads went through anyway.
        conn.pragma_update(None, "mmap_size", 1i64 << 32)?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        anyhow::ensure!(
            version == migrate::MIGRATIONS.len() as i64,
            "the archive {} has schema version {version}, this archivist expects {}: run an import or upgrade",
            path.display(),
            migrate::MIGRATIONS.len()
        );
        Ok(Store {
            conn,
            checkpointer: None,
        })
    }

    /// Runs `f` inside one read transaction: every query it makes sees the same snapshot of
    /// the archive (an import may commit in between), and the write-ahead log's shared lock is
    /// taken once instead of once per statement.
    pub fn snapshot<T, E: From<anyhow::Error>>(
        &self,
        f: impl FnOnce(&Store) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        self.conn
            .execute_batch("BEGIN DEFERRED")
            .context("cannot begin a read transaction")?;
        let out = f(self);
        // Ends the read; a read-only transaction has nothing to lose.
        let end = self.conn.execute_batch("COMMIT");
        if let Err(e) = end {
            // A transaction left open would pin this snapshot for every later use of the
            // connection; roll back so it starts afresh.
            let _ = self.conn.execute_batch("ROLLBACK");
            if out.is_ok() {
                return Err(anyhow::Error::from(e)
                    .context("cannot end a read transaction")
                    .into());
            }
        }
        out
    }

    /// Opens (creating if needed) the archive at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Store> {
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open archive database {}", path.display()))?;
        // Larger pages suit the compressed message blobs (fewer overflow pages), and only
        // take effect on a new, empty database.
        conn.pragma_update(None, "page_size", 16384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // 64 MiB of page cache: batched look-ups and index inserts stay in memory.
        conn.pragma_update(None, "cache_size", -65536)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        let mut store = Store {
            conn,
            checkpointer: None,
        };
        migrate::apply(&mut store.conn)
            .with_context(|| format!("cannot migrate {}", path.display()))?;
        Ok(store)
    }

    /// Moves everything from the write-ahead log into the database file and truncates the
    /// log, so the archive on disk is one compact file after a large import.
    pub fn checkpoint(&mut self) -> Result<()> {
        self.stop_background_checkpoints()?;
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// Hands checkpoints of the write-ahead log to a background thread (a `Checkpointer`)
    /// until [`Store::checkpoint`] or [`Store::stop_background_checkpoints`]. For long imports;
    /// an in-memory database keeps checkpointing as before.
    pub fn checkpoint_in_background(&mut self) -> Result<()> {
        if self.checkpointer.is_some() {
            return Ok(());
        }
        let path = match self.conn.path() {
            Some(p) if !p.is_empty() => std::path::PathBuf::from(p),
            _ => return Ok(()),
        };
        let conn = Connection::open(&path)
            .with_context(|| format!("cannot open archive database {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        let worker = std::thread::Builder::new()
            .name("archivist-checkpoint".into())
            .spawn(move || {
                for () in rx {
                    // A checkpoint that cannot finish (busy, or an I/O error) is harmless: the
                    // frames stay in the log, and the final checkpoint on the importing
                    // connection copies them and reports any error.
                    let frames = conn
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
                        .unwrap_or(0);
                    // Passive checkpoints never make the writer start the log over while it
                    // keeps committing, so the log would grow by everything imported. Past
                    // the bound, a restarting checkpoint holds the next commit back until the
                    // log is copied (most of it already is), and the writer starts it over.
                    if frames >= WAL_RESTART_FRAMES {
                        let _ = conn.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()));
                    }
                }
            })
            .context("cannot start the checkpoint thread")?;
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        self.checkpointer = Some(Checkpointer {
            tick: Some(tx),
            worker: Some(worker),
        });
        Ok(())
    }

    /// Stops the background checkpoints and goes back to SQLite's automatic ones.
    pub fn stop_background_checkpoints(&mut self) -> Result<()> {
        if let Some(mut c) = self.checkpointer.take() {
            c.stop();
            // SQLite's default.
            self.conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
        }
        Ok(())
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    /// The list's handle, creating the list on first use.
    pub fn ensure_list(&mut self, name: &ListName, list_id: Option<&str>) -> Result<ListRef> {
        self.conn.execute(
            "INSERT INTO lists (name, list_id) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET list_id = COALESCE(lists.list_id, excluded.list_id)",
            params![name.as_str(), list_id],
        )?;
        let id = self.conn.query_row(
            "SELECT id FROM lists WHERE name = ?1",
            [name.as_str()],
            |r| r.get(0),
        )?;
        Ok(ListRef(id))
    }

    /// The footers learned so far for a list.
    pub fn footers(&self, list: ListRef) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT footer FROM list_footers WHERE list = ?1 ORDER BY footer")?;
        let rows = stmt.query_map([list.0], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The recorded state of an input file.
    pub fn file_state(&self, path: &str, list_key: &str) -> Result<Option<FileState>> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, list, variant, size, done_offset, fingerprint, complete
                 FROM files WHERE path = ?1 AND list_key = ?2",
                params![path, list_key],
                |r| {
                    Ok(FileState {
                        handle: FileRef(r.get(0)?),
                        list: r.get::<_, Option<i64>>(1)?.map(ListRef),
                        variant: r.get(2)?,
                        size: r.get::<_, i64>(3)? as u64,
                        done_offset: r.get::<_, i64>(4)? as u64,
                        fingerprint: r.get(5)?,
                        complete: r.get::<_, i64>(6)? != 0,
                    })
                },
            )
            .optional()?)
    }

    /// Starts (or restarts from zero) the record of an input file read from the beginning.
    pub fn begin_file(
        &mut self,
        path: &str,
        list_key: &str,
        compressed: bool,
        size: u64,
        fingerprint: &[u8],
    ) -> Result<FileRef> {
        // A savepoint, not a transaction: a dry run has one open already.
        let tx = self.conn.savepoint()?;
        tx.execute(
            "INSERT INTO files (path, list_key, variant, compressed, size, done_offset, fingerprint, complete)
             VALUES (?1, ?2, 'unknown', ?3, ?4, 0, ?5, 0)
             ON CONFLICT(path, list_key) DO UPDATE SET
                compressed = excluded.compressed, size = excluded.size,
                fingerprint = excluded.fingerprint, done_offset = 0, complete = 0",
            params![path, list_key, compressed, size as i64, fingerprint],
        )?;
        let id = tx.query_row(
            "SELECT id FROM files WHERE path = ?1 AND list_key = ?2",
            params![path, list_key],
            |r| r.get(0),
        )?;
        // A file read again from the start (it was rewritten) has its problems and further
        // copies found again: those of its earlier version, such as a message its end cut
        // off, would be stale. Its memberships lose their offsets until their messages are
        // read again; one its new version no longer holds keeps the file and no offset.
        tx.execute("DELETE FROM problems WHERE file = ?1", [id])?;
        tx.execute("DELETE FROM copies WHERE file = ?1", [id])?;
        tx.execute("UPDATE memberships SET offset = NULL WHERE file = ?1", [id])?;
        tx.commit()?;
        Ok(FileRef(id))
    }

    /// Records that a file grew and is being read again from its committed offset `from`.
    /// Problems and further copies recorded at or after it (a message the end of the file cut
    /// off) are dropped: that range is read again, and recorded again if it still is one.
    pub fn resume_file(
        &mut self,
        file: FileRef,
        size: u64,
        fingerprint: &[u8],
        from: u64,
    ) -> Result<()> {
        // A savepoint, not a transaction: a dry run has one open already.
        let tx = self.conn.savepoint()?;
        tx.execute(
            "UPDATE files SET size = ?2, fingerprint = ?3, complete = 0 WHERE id = ?1",
            params![file.0, size as i64, fingerprint],
        )?;
        for table in ["problems", "copies"] {
            tx.execute(
                &format!("DELETE FROM {table} WHERE file = ?1 AND offset >= ?2"),
                params![file.0, from as i64],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks a file as gzip-compressed.
    pub fn set_file_compressed(&mut self, file: FileRef) -> Result<()> {
        self.conn
            .execute("UPDATE files SET compressed = 1 WHERE id = ?1", [file.0])?;
        Ok(())
    }

    /// Starts a dry run: everything until [`Store::end_dry_run`] is rolled back.
    pub fn begin_dry_run(&mut self) -> Result<()> {
        self.conn.execute_batch("BEGIN")?;
        Ok(())
    }

    /// Ends a dry run, discarding everything written since [`Store::begin_dry_run`].
    pub fn end_dry_run(&mut self) -> Result<()> {
        self.conn.execute_batch("ROLLBACK")?;
        Ok(())
    }

    /// A list's name.
    pub fn list_name(&self, list: ListRef) -> Result<String> {
        Ok(self
            .conn
            .query_row("SELECT name FROM lists WHERE id = ?1", [list.0], |r| {
                r.get(0)
            })?)
    }

    /// Sets the list a file's messages are filed under.
    pub fn set_file_list(&mut self, file: FileRef, list: ListRef) -> Result<()> {
        self.conn.execute(
            "UPDATE files SET list = ?2 WHERE id = ?1",
            params![file.0, list.0],
        )?;
        Ok(())
    }

    /// Stored messages whose header Message-ID is one of `header_ids`, or whose public id is
    /// one of `public_ids` (synthetic ids of messages without a header id), in one pass of
    /// chunked `IN` queries.
    /// Which of `ids` are public ids of stored messages.
    pub fn taken_ids(&self, ids: &[&str]) -> Result<std::collections::HashSet<String>> {
        let mut taken = std::collections::HashSet::new();
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT message_id FROM messages WHERE message_id IN ({})",
                placeholders(chunk.len())
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(chunk.iter()), |r| r.get::<_, String>(0))?;
            for id in rows {
                taken.insert(id?);
            }
        }
        Ok(taken)
    }

    pub fn candidates(
        &self,
        header_ids: &[&str],
        public_ids: &[&str],
    ) -> Result<HashMap<String, Vec<StoredCandidate>>> {
        // A row may be found by both look-ups (a message whose own Message-ID is a synthetic
        // id): it is a candidate under each.
        let mut by_row: HashMap<i64, (Vec<String>, StoredCandidate)> = HashMap::new();
        for (column, ids) in [
            ("header_message_id", header_ids),
            ("message_id", public_ids),
        ] {
            for chunk in ids.chunks(LOOKUP_CHUNK) {
                let sql = format!(
                    "SELECT id, message_id, content_key, {column} FROM messages WHERE {column} IN ({})",
                    placeholders(chunk.len())
                );
                let mut stmt = self.conn.prepare_cached(&sql)?;
                let rows = stmt.query_map(params_from_iter(chunk.iter()), |r| {
                    let row: i64 = r.get(0)?;
                    let id: String = r.get(1)?;
                    let key: Vec<u8> = r.get(2)?;
                    let lookup: String = r.get(3)?;
                    Ok((row, id, key, lookup))
                })?;
                for row in rows {
                    let (row, id, key, lookup) = row?;
                    let key = key_from_blob(&key);
                    let entry = by_row.entry(row).or_insert_with(|| {
                        (
                            Vec::new(),
                            StoredCandidate {
                                handle: MessageRef(row),
                                id: MessageId::from_trusted(id),
                                key,
                                lists: Vec::new(),
                            },
                        )
                    });
                    if !entry.0.contains(&lookup) {
                        entry.0.push(lookup);
                    }
                }
            }
        }
        let rows: Vec<i64> = by_row.keys().copied().collect();
        for chunk in rows.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT message, list FROM memberships WHERE message IN ({})",
                placeholders(chunk.len())
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let pairs = stmt.query_map(params_from_iter(chunk.iter()), |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })?;
            for pair in pairs {
                let (message, list) = pair?;
                if let Some((_, cand)) = by_row.get_mut(&message) {
                    cand.lists.push(ListRef(list));
                }
            }
        }
        let mut out: HashMap<String, Vec<StoredCandidate>> = HashMap::new();
        let mut sorted: Vec<(i64, (Vec<String>, StoredCandidate))> = by_row.into_iter().collect();
        sorted.sort_by_key(|(row, _)| *row);
        for (_, (lookups, cand)) in sorted {
            for lookup in lookups {
                out.entry(lookup).or_default().push(cand.clone());
            }
        }
        Ok(out)
    }

    /// Thread ids of the given Message-IDs (stored messages and ghosts).
    pub fn thread_keys(&self, ids: &[&str]) -> Result<HashMap<String, ThreadId>> {
        let mut out = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT msgid, thread_id FROM thread_keys WHERE msgid IN ({})",
                placeholders(chunk.len())
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(chunk.iter()), |r| {
                Ok((r.get::<_, String>(0)?, ThreadId(r.get(1)?)))
            })?;
            for row in rows {
                let (k, v) = row?;
                out.insert(k, v);
            }
        }
        Ok(out)
    }

    /// The messages under the given subject keys dated from `from` to `to`, and the orphans
    /// among them (see `schema/0005_subject_fallback.sql`), each with its thread now.
    pub fn stored_subjects(&self, keys: &[&str], from: i64, to: i64) -> Result<StoredSubjects> {
        let mut out = StoredSubjects::default();
        for (table, map) in [
            ("subject_activity", &mut out.activity),
            ("subject_orphans", &mut out.orphans),
        ] {
            for chunk in keys.chunks(LOOKUP_CHUNK) {
                let sql = format!(
                    "SELECT s.subject_key, m.message_id, m.thread_id, s.date
                     FROM {table} s JOIN messages m ON m.id = s.message
                     WHERE s.subject_key IN ({}) AND s.date BETWEEN ? AND ?",
                    placeholders(chunk.len())
                );
                let mut stmt = self.conn.prepare_cached(&sql)?;
                let params = chunk
                    .iter()
                    .map(|k| rusqlite::types::Value::Text((*k).to_owned()))
                    .chain([from.into(), to.into()]);
                let rows = stmt.query_map(params_from_iter(params), |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        SubjectMessage {
                            message_id: r.get(1)?,
                            thread: ThreadId(r.get(2)?),
                            date: r.get(3)?,
                        },
                    ))
                })?;
                for row in rows {
                    let (key, message) = row?;
                    map.entry(key).or_default().push(message);
                }
            }
        }
        Ok(out)
    }

    /// The first thread id not used yet.
    pub fn next_thread_id(&self) -> Result<ThreadId> {
        let max: Option<i64> =
            self.conn
                .query_row("SELECT MAX(thread_id) FROM thread_keys", [], |r| r.get(0))?;
        Ok(ThreadId(max.unwrap_or(0) + 1))
    }

    /// Writes one batch atomically: messages, memberships, threads, problems and the file's
    /// progress commit together, so a crash leaves either all of it or none.
    pub fn write_batch(
        &mut self,
        list: ListRef,
        file: Option<FileRef>,
        batch: &Batch,
    ) -> Result<()> {
        // A savepoint, not a transaction: outside a dry run it commits like one, inside the dry
        // run's outer transaction it nests, and the whole run is rolled back at the end.
        let tx = self.conn.savepoint()?;
        {
            let mut insert_msg = tx.prepare_cached(
                "INSERT INTO messages (message_id, header_message_id, content_key, thread_id, date,
                    from_name, from_addr, subject, recipients, refs, has_attachment, has_patch,
                    html_only, size, content)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
            )?;
            let mut insert_member = tx.prepare_cached(
                "INSERT OR IGNORE INTO memberships (message, list, file, offset) VALUES (?1, ?2, ?3, ?4)",
            )?;
            let mut insert_attachment = tx.prepare_cached(
                "INSERT INTO attachments (message, position, filename, content_type, size)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut log_change =
                tx.prepare_cached("INSERT INTO index_log (message) VALUES (?1)")?;
            let mut insert_activity = tx.prepare_cached(
                "INSERT OR IGNORE INTO subject_activity (subject_key, date, message)
                 VALUES (?1, ?2, ?3)",
            )?;
            let file_id = file.map(|f| f.0);
            for m in &batch.messages {
                insert_msg.execute(params![
                    m.id.as_str(),
                    m.header_id.as_ref().map(MessageId::as_str),
                    &m.key.0[..],
                    m.thread.0,
                    m.date,
                    m.from_name,
                    m.from_addr,
                    m.subject,
                    m.recipients_json,
                    m.refs_json,
                    !m.attachments.is_empty(),
                    m.has_patch,
                    m.html_only,
                    m.size as i64,
                    m.content,
                ])?;
                let row = tx.last_insert_rowid();
                if let (Some(key), Some(date)) = (&m.subject_key, m.date) {
                    insert_activity.execute(params![key, date, row])?;
                }
                insert_member.execute(params![row, list.0, file_id, m.offset as i64])?;
                log_change.execute([row])?;
                for (pos, a) in m.attachments.iter().enumerate() {
                    insert_attachment.execute(params![
                        row,
                        pos as i64,
                        a.filename,
                        a.content_type,
                        a.size as i64
                    ])?;
                }
            }
            for (message, offset) in &batch.cross_posts {
                insert_member.execute(params![message.0, list.0, file_id, *offset as i64])?;
                log_change.execute([message.0])?;
            }
            // A copy read again from a file read again from the start (it was rewritten) is
            // where the list's membership now points, if `begin_file` left it unplaced;
            // otherwise it is a further copy, unless read again at a place already recorded.
            let mut place_member = tx.prepare_cached(
                "UPDATE memberships SET offset = ?2
                 WHERE message = (SELECT id FROM messages WHERE message_id = ?3)
                   AND list = ?4 AND file IS ?1 AND offset IS NULL",
            )?;
            let mut insert_copy = tx.prepare_cached(
                "INSERT INTO copies (file, offset, length, message, list)
                 SELECT ?1, ?2, ?3, m.id, ?5 FROM messages m WHERE m.message_id = ?4
                 AND NOT EXISTS (SELECT 1 FROM memberships s WHERE s.message = m.id
                     AND s.list = ?5 AND s.file IS ?1 AND s.offset = ?2)
                 AND NOT EXISTS (SELECT 1 FROM copies c WHERE c.file IS ?1 AND c.offset = ?2
                     AND c.message = m.id)",
            )?;
            for c in &batch.copies {
                if file_id.is_some()
                    && place_member.execute(params![
                        file_id,
                        c.offset as i64,
                        c.message.as_str(),
                        list.0
                    ])? > 0
                {
                    continue;
                }
                insert_copy.execute(params![
                    file_id,
                    c.offset as i64,
                    c.length as i64,
                    c.message.as_str(),
                    list.0
                ])?;
            }
            let mut upsert_key = tx.prepare_cached(
                "INSERT INTO thread_keys (msgid, thread_id) VALUES (?1, ?2)
                 ON CONFLICT(msgid) DO UPDATE SET thread_id = excluded.thread_id",
            )?;
            for (msgid, thread) in &batch.thread_keys {
                upsert_key.execute(params![msgid, thread.0])?;
            }
            for (absorbed, survivor) in &batch.merges {
                // The absorbed thread's messages change thread: their index documents too.
                tx.execute(
                    "INSERT INTO index_log (message) SELECT id FROM messages WHERE thread_id = ?1",
                    [absorbed.0],
                )?;
                tx.execute(
                    "UPDATE messages SET thread_id = ?2 WHERE thread_id = ?1",
                    params![absorbed.0, survivor.0],
                )?;
                tx.execute(
                    "UPDATE thread_keys SET thread_id = ?2 WHERE thread_id = ?1",
                    params![absorbed.0, survivor.0],
                )?;
            }
            let mut insert_orphan = tx.prepare_cached(
                "INSERT OR IGNORE INTO subject_orphans (message, subject_key, date)
                 SELECT id, ?2, ?3 FROM messages WHERE message_id = ?1",
            )?;
            for (id, key, date) in &batch.orphans {
                insert_orphan.execute(params![id, key, date])?;
            }
            let mut delete_orphan = tx.prepare_cached(
                "DELETE FROM subject_orphans
                 WHERE message = (SELECT id FROM messages WHERE message_id = ?1)",
            )?;
            for id in &batch.adopted {
                delete_orphan.execute([id])?;
            }
            // `UNIQUE (file, offset, kind)` keeps a file's problem once; standard input has no
            // file (NULL, which UNIQUE never matches), so its problems are matched by their
            // bytes too: the same stream imported again records nothing twice.
            let mut insert_problem = tx.prepare_cached(
                "INSERT OR IGNORE INTO problems (file, offset, length, kind, detail, raw)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6
                 WHERE ?1 IS NOT NULL OR NOT EXISTS (
                     SELECT 1 FROM problems WHERE file IS NULL AND offset = ?2
                         AND length = ?3 AND kind = ?4 AND raw IS ?6)",
            )?;
            for p in &batch.problems {
                insert_problem.execute(params![
                    file_id,
                    p.offset as i64,
                    p.length as i64,
                    p.kind,
                    p.detail,
                    p.raw_z
                ])?;
            }
            let mut insert_footer = tx.prepare_cached(
                "INSERT OR IGNORE INTO list_footers (list, footer) VALUES (?1, ?2)",
            )?;
            for footer in &batch.footers {
                insert_footer.execute(params![list.0, footer])?;
            }
            if let (Some(file), Some(progress)) = (file, &batch.progress) {
                tx.execute(
                    "UPDATE files SET done_offset = ?2, complete = ?3, variant = ?4, list = ?5 WHERE id = ?1",
                    params![
                        file.0,
                        progress.done_offset as i64,
                        progress.complete,
                        progress.variant,
                        list.0
                    ],
                )?;
            }
        }
        tx.commit()?;
        if let Some(c) = &self.checkpointer {
            c.tick();
        }
        Ok(())
    }

    /// Archive-wide counts.
    pub fn stats(&self) -> Result<Stats> {
        let messages: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM messages", [], |r| r.get(0))?;
        let threads: i64 =
            self.conn
                .query_row("SELECT COUNT(DISTINCT thread_id) FROM messages", [], |r| {
                    r.get(0)
                })?;
        let problems: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM problems", [], |r| r.get(0))?;
        let copies: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM copies", [], |r| r.get(0))?;
        let mut stmt = self.conn.prepare(
            "SELECT lists.name, COUNT(memberships.message) FROM lists
             LEFT JOIN memberships ON memberships.list = lists.id
             GROUP BY lists.id ORDER BY lists.name",
        )?;
        let lists = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(Stats {
            messages: messages as u64,
            threads: threads as u64,
            lists,
            problems: problems as u64,
            copies: copies as u64,
        })
    }

    /// What a stored message's content key was made from: its raw bytes, extracted text,
    /// sender address, date and subject (`None` if there is no such row).
    pub fn key_source(&self, message: MessageRef) -> Result<Option<KeySource>> {
        let row = self
            .conn
            .query_row(
                "SELECT content, from_addr, date, subject FROM messages WHERE id = ?1",
                [message.0],
                |r| Ok((r.get::<_, Vec<u8>>(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        row.map(|(content, from_addr, date, subject)| {
            content::unpack(&content).map(|(raw, text)| KeySource {
                raw,
                text,
                from_addr,
                date,
                subject,
            })
        })
        .transpose()
    }

    /// The lists a stored message belongs to.
    pub fn lists_of(&self, message: MessageRef) -> Result<Vec<ListRef>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT list FROM memberships WHERE message = ?1 ORDER BY list")?;
        let rows = stmt.query_map([message.0], |r| Ok(ListRef(r.get(0)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The stored raw bytes of a message, decompressed, by public id.
    pub fn raw_message(&self, id: &MessageId) -> Result<Option<Vec<u8>>> {
        let blob: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT content FROM messages WHERE message_id = ?1",
                [id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        blob.map(|b| content::unpack(&b).map(|(raw, _)| raw))
            .transpose()
    }

    /// Lists a message belongs to, by public id, sorted by name.
    pub fn message_lists(&self, id: &MessageId) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT lists.name FROM memberships
             JOIN messages ON messages.id = memberships.message
             JOIN lists ON lists.id = memberships.list
             WHERE messages.message_id = ?1 ORDER BY lists.name",
        )?;
        let rows = stmt.query_map([id.as_str()], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Public ids of the messages in the same thread as `id`, in date order.
    pub fn thread_of(&self, id: &MessageId) -> Result<Vec<MessageId>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT m.message_id FROM messages m
             WHERE m.thread_id = (SELECT thread_id FROM messages WHERE message_id = ?1)
             ORDER BY m.date, m.message_id",
        )?;
        let rows = stmt.query_map([id.as_str()], |r| r.get::<_, String>(0))?;
        Ok(rows
            .map(|r| r.map(MessageId::from_trusted))
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Problems recorded, in file and offset order.
    pub fn problems(&self) -> Result<Vec<ProblemRecord>> {
        let mut stmt = self.conn.prepare(
            "SELECT COALESCE(files.path, ''), problems.offset, problems.length, problems.kind,
                    problems.detail
             FROM problems LEFT JOIN files ON files.id = problems.file
             ORDER BY files.path, problems.offset",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(ProblemRecord {
                file: r.get(0)?,
                offset: r.get::<_, i64>(1)? as u64,
                length: r.get::<_, i64>(2)? as u64,
                kind: r.get(3)?,
                detail: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

impl Store {
    /// Summaries of the given messages, in no particular order; unknown ids are left out.
    pub fn summaries(&self, ids: &[&str]) -> Result<Vec<Summary>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT m.message_id, m.subject, m.from_name, m.from_addr, m.date,
                        (SELECT group_concat(l.name, ',') FROM memberships ms
                            JOIN lists l ON l.id = ms.list WHERE ms.message = m.id),
                        (SELECT COUNT(*) FROM messages t WHERE t.thread_id = m.thread_id)
                 FROM messages m WHERE m.message_id IN ({})",
                placeholders(chunk.len())
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params_from_iter(chunk.iter()), |r| {
                Ok(Summary {
                    message_id: MessageId::from_trusted(r.get(0)?),
                    subject: r.get(1)?,
                    from: crate::message::Address {
                        name: r.get(2)?,
                        addr: r.get(3)?,
                    },
                    date: r.get(4)?,
                    // Ordered here rather than in SQL, where the order took a temporary
                    // b-tree per row (list names hold no commas).
                    lists: r
                        .get::<_, Option<String>>(5)?
                        .map(|l| {
                            let mut lists: Vec<String> = l.split(',').map(str::to_string).collect();
                            lists.sort_unstable();
                            lists
                        })
                        .unwrap_or_default(),
                    thread_size: r.get::<_, i64>(6)? as u64,
                })
            })?;
            for row in rows {
                out.push(row?);
            }
        }
        Ok(out)
    }

    /// The newest entry of the index feed (0 when empty).
    pub fn index_log_head(&self) -> Result<u64> {
        let head: Option<i64> = self
            .conn
            .query_row("SELECT MAX(seq) FROM index_log", [], |r| r.get(0))?;
        Ok(head.unwrap_or(0) as u64)
    }

    /// Messages changed after feed position `after`, at most `limit` feed entries, and the
    /// feed position reached. A message changed twice is returned once.
    pub fn index_changes(&self, after: u64, limit: usize) -> Result<(Vec<IndexSource>, u64)> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, message FROM index_log WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let mut last = after;
        let mut rows: Vec<i64> = Vec::new();
        for row in stmt.query_map(params![after as i64, limit as i64], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
        })? {
            let (seq, message) = row?;
            last = seq as u64;
            rows.push(message);
        }
        rows.sort_unstable();
        rows.dedup();
        Ok((self.index_sources(&rows)?, last))
    }

    /// The index feed after position `after`, at most `limit` entries, without reading the
    /// messages: each entry's message and its id, in feed order, and the position reached. An
    /// import that still holds a batch's new messages in memory indexes those from memory and
    /// reads only the rest with [`Store::index_sources_of`].
    pub fn index_feed(
        &self,
        after: u64,
        limit: usize,
    ) -> Result<(Vec<(MessageRef, MessageId)>, u64)> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT l.seq, l.message, m.message_id FROM index_log l
             JOIN messages m ON m.id = l.message
             WHERE l.seq > ?1 ORDER BY l.seq LIMIT ?2",
        )?;
        let mut last = after;
        let mut out = Vec::new();
        for row in stmt.query_map(params![after as i64, limit as i64], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
            ))
        })? {
            let (seq, message, id) = row?;
            last = seq as u64;
            out.push((MessageRef(message), MessageId::from_trusted(id)));
        }
        // A feed entry whose message row is gone (never happens today) still advances `last`
        // through the plain query, so the feed cannot stall on it.
        if out.is_empty() {
            let head: Option<i64> = self.conn.query_row(
                "SELECT MAX(seq) FROM (SELECT seq FROM index_log WHERE seq > ?1 ORDER BY seq LIMIT ?2)",
                params![after as i64, limit as i64],
                |r| r.get(0),
            )?;
            last = head.map_or(after, |h| h as u64);
        }
        Ok((out, last))
    }

    /// What the index needs of the given messages, read from the archive.
    pub fn index_sources_of(&self, messages: &[MessageRef]) -> Result<Vec<IndexSource>> {
        let mut rows: Vec<i64> = messages.iter().map(|m| m.0).collect();
        rows.sort_unstable();
        rows.dedup();
        self.index_sources(&rows)
    }

    /// Up to `limit` messages after `cursor` in storage order, for a full rebuild; `None` as the
    /// next cursor once the scan is done.
    pub fn index_scan(
        &self,
        cursor: ScanCursor,
        limit: usize,
    ) -> Result<(Vec<IndexSource>, Option<ScanCursor>)> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT id FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2")?;
        let rows: Vec<i64> = stmt
            .query_map(params![cursor.0, limit as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let next = rows.last().map(|&r| ScanCursor(r));
        Ok((self.index_sources(&rows)?, next))
    }

    fn index_sources(&self, rows: &[i64]) -> Result<Vec<IndexSource>> {
        let footers = self.all_footers()?;
        let mut out = Vec::with_capacity(rows.len());
        for chunk in rows.chunks(LOOKUP_CHUNK) {
            let sql = format!(
                "SELECT m.id, m.message_id, m.thread_id, m.date, m.subject, m.content, m.from_name,
                        m.from_addr, m.recipients, m.has_attachment, m.has_patch,
                        (SELECT group_concat(list, ',') FROM memberships WHERE message = m.id)
                 FROM messages m WHERE m.id IN ({}) ORDER BY m.id",
                placeholders(chunk.len())
            );
            let mut stmt = self.conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(params_from_iter(chunk.iter()))?;
            while let Some(r) = rows.next()? {
                let packed: Vec<u8> = r.get(5)?;
                let (_, body) = content::unpack(&packed)?;
                let recipients_json: String = r.get(8)?;
                let recipients: Vec<[Option<String>; 2]> =
                    serde_json::from_str(&recipients_json).unwrap_or_default();
                let list_ids: String = r.get::<_, Option<String>>(11)?.unwrap_or_default();
                let mut lists = Vec::new();
                let mut list_footers: Vec<String> = Vec::new();
                for id in list_ids.split(',').filter_map(|x| x.parse::<i64>().ok()) {
                    if let Some((name, f)) = footers.get(&id) {
                        lists.push(name.clone());
                        list_footers.extend(f.iter().cloned());
                    }
                }
                lists.sort();
                let body = crate::dedup::strip_footer(&body, &list_footers).to_string();
                out.push(IndexSource {
                    message_id: MessageId::from_trusted(r.get(1)?),
                    thread: r.get(2)?,
                    date: r.get(3)?,
                    subject: r.get(4)?,
                    body,
                    from_name: r.get(6)?,
                    from_addr: r.get(7)?,
                    recipients: recipients
                        .into_iter()
                        .map(|[name, addr]| match (name, addr) {
                            (Some(n), Some(a)) => format!("{n} <{a}>"),
                            (Some(n), None) => n,
                            (None, Some(a)) => a,
                            (None, None) => String::new(),
                        })
                        .filter(|s| !s.is_empty())
                        .collect(),
                    lists,
                    has_attachment: r.get(9)?,
                    has_patch: r.get(10)?,
                });
            }
        }
        Ok(out)
    }

    /// Every list's name and learned footers, by list row.
    fn all_footers(&self) -> Result<HashMap<i64, (String, Vec<String>)>> {
        let mut out: HashMap<i64, (String, Vec<String>)> = HashMap::new();
        // One statement: every message page asks.
        let mut stmt = self.conn.prepare_cached(
            "SELECT l.id, l.name, f.footer FROM lists l
             LEFT JOIN list_footers f ON f.list = l.id ORDER BY l.id, f.footer",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        for row in rows {
            let (id, name, footer) = row?;
            let entry = out.entry(id).or_insert_with(|| (name, Vec::new()));
            entry.1.extend(footer);
        }
        Ok(out)
    }
}

fn placeholders(n: usize) -> String {
    let mut s = String::with_capacity(n * 2);
    for i in 0..n {
        if i > 0 {
            s.push(',');
        }
        s.push('?');
    }
    s
}

fn key_from_blob(blob: &[u8]) -> ContentKey {
    let mut key = [0u8; 32];
    let n = blob.len().min(32);
    key[..n].copy_from_slice(&blob[..n]);
    ContentKey(key)
}
