//! Keeps the search index in step with the archive. SQLite leads, the index follows: documents
//! are handed over only after the SQLite commit that stored them, and each index commit records
//! the store's change-feed position it covers (the watermark), so after a crash the next run
//! catches up from SQLite, never the other way round.
//!
//! The one [`IndexWriter`] lives on its own thread, so tantivy's work overlaps with parsing and
//! SQLite writes; an import hands over the documents of the messages it has just stored, built
//! from what it still holds in memory, and reads from SQLite only what changed otherwise
//! (cross-posts gaining a list, threads merged) and what an earlier run left behind.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{bounded, Sender};

use crate::index::{self, IndexDoc, IndexWriter};
use crate::store::{IndexSource, MessageRef, ScanCursor, Store};

/// Feed entries read from the store at a time.
const FEED_CHUNK: usize = 2000;

/// How many documents a long import indexes between commits, which make them visible to
/// searchers (a commit flushes tantivy's segments, so each costs indexing speed)...
const COMMIT_EVERY_DOCS: u64 = 100_000;

/// ...and the longest a stored message waits for one: a server answering during an import
/// finds what it can read in SQLite by search soon after, not only at the import's end.
const COMMIT_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// Jobs (batches) waiting for the writer thread: enough for SQLite to run ahead while tantivy
/// flushes segments at a commit, few enough to bound the documents held in memory.
const QUEUE: usize = 16;

/// The index directory inside a data directory.
pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

/// Work for the writer thread, applied in order.
enum Job {
    /// `adds` are messages new to the archive (plain adds), `upserts` replace what the index
    /// holds under their ids.
    Docs {
        adds: Vec<IndexDoc>,
        upserts: Vec<IndexDoc>,
    },
    /// Commit everything sent so far, recording `watermark`; the result goes to `done` when
    /// someone waits for it.
    Commit {
        watermark: u64,
        done: Option<Sender<Result<()>>>,
    },
}

/// The single writer of the index, owned by the import path.
pub struct Indexer {
    /// The index's base directory.
    dir: PathBuf,
    jobs: Option<Sender<Job>>,
    worker: Option<JoinHandle<Result<()>>>,
    /// The feed position handed to the writer thread (not necessarily committed yet).
    watermark: u64,
    /// Documents handed over since the last commit asked for.
    uncommitted: u64,
    /// When the last commit was asked for (or the indexer opened).
    last_commit: std::time::Instant,
    /// Whether a commit was sent without waiting for it.
    unconfirmed: bool,
}

impl Indexer {
    /// Opens the index for writing (creating it), reads its watermark and starts the writer
    /// thread.
    pub fn open(data_dir: &Path) -> Result<Indexer> {
        let dir = index_dir(data_dir);
        let mut writer = IndexWriter::open(&dir)
            .with_context(|| format!("cannot open the search index in {}", dir.display()))?;
        let watermark = IndexWriter::watermark(&dir)?.unwrap_or(0);
        let (tx, rx) = bounded::<Job>(QUEUE);
        let worker = std::thread::Builder::new()
            .name("archivist-index".into())
            .spawn(move || -> Result<()> {
                for job in rx {
                    match job {
                        Job::Docs { adds, upserts } => {
                            writer.add(&adds)?;
                            writer.upsert(&upserts)?;
                        }
                        Job::Commit { watermark, done } => {
                            let result = writer.commit(watermark);
                            match done {
                                Some(done) => {
                                    let failed = result.is_err();
                                    let _ = done.send(result);
                                    if failed {
                                        return Ok(());
                                    }
                                }
                                None => result?,
                            }
                        }
                    }
                }
                // The queue is closed: let the merges the last commits started finish (they
                // purge the documents replaced by cross-posts); dropping the writer would
                // abandon them, and nothing else ever merges (the web server only reads).
                writer.close()
            })
            .context("cannot start the index writer thread")?;
        Ok(Indexer {
            dir,
            jobs: Some(tx),
            worker: Some(worker),
            watermark,
            uncommitted: 0,
            last_commit: std::time::Instant::now(),
            unconfirmed: false,
        })
    }

    /// Hands a job to the writer thread; if the thread has stopped, returns its error.
    fn send(&mut self, job: Job) -> Result<()> {
        let sent = match &self.jobs {
            Some(jobs) => jobs.send(job).is_ok(),
            None => false,
        };
        if sent {
            return Ok(());
        }
        Err(self
            .stop()
            .err()
            .unwrap_or_else(|| anyhow!("the index writer thread stopped")))
    }

    /// Closes the queue and waits for the writer thread.
    fn stop(&mut self) -> Result<()> {
        self.jobs = None;
        match self.worker.take() {
            Some(worker) => worker
                .join()
                .map_err(|_| anyhow!("the index writer thread panicked"))?,
            None => Ok(()),
        }
    }

    /// Applies every store change after the watermark, reading each message from the store;
    /// commits when `COMMIT_EVERY_DOCS` documents are pending or the last commit is
    /// `COMMIT_AFTER` old. Returns the documents written.
    pub fn catch_up(&mut self, store: &Store) -> Result<u64> {
        self.follow(store, Vec::new())
    }

    /// Applies every store change after the watermark, as [`Indexer::catch_up`] does, except
    /// that messages in `fresh` (just stored and new to the archive, with their documents built
    /// from memory) are added without being read back. A message that the feed lists again
    /// (say its thread merged in the same batch) is read from the store like any other change.
    pub fn follow(&mut self, store: &Store, fresh: Vec<IndexDoc>) -> Result<u64> {
        let mut fresh: HashMap<String, IndexDoc> = fresh
            .into_iter()
            .map(|d| (d.message_id.clone(), d))
            .collect();
        let mut written = 0u64;
        loop {
            let (entries, last) = store.index_feed(self.watermark, FEED_CHUNK)?;
            if last == self.watermark {
                break;
            }
            let mut adds = Vec::new();
            let mut read: Vec<MessageRef> = Vec::new();
            for (message, id) in entries {
                match fresh.remove(id.as_str()) {
                    Some(doc) => adds.push(doc),
                    None => read.push(message),
                }
            }
            let upserts: Vec<IndexDoc> = store
                .index_sources_of(&read)?
                .into_iter()
                .map(to_doc)
                .collect();
            let n = (adds.len() + upserts.len()) as u64;
            self.send(Job::Docs { adds, upserts })?;
            written += n;
            self.uncommitted += n;
            self.watermark = last;
        }
        let due = self.uncommitted >= COMMIT_EVERY_DOCS
            || (self.uncommitted > 0 && self.last_commit.elapsed() >= COMMIT_AFTER);
        if due {
            self.send(Job::Commit {
                watermark: self.watermark,
                done: None,
            })?;
            self.uncommitted = 0;
            self.unconfirmed = true;
            self.last_commit = std::time::Instant::now();
        }
        Ok(written)
    }

    /// Commits whatever is pending, recording the watermark with it, and waits until every
    /// commit asked for is done.
    /// The index now holds everything up to the watermark, so an older schema's index left
    /// beside it (from before an upgrade) is deleted.
    pub fn finish(&mut self) -> Result<()> {
        self.commit_pending()?;
        crate::index::remove_older_schemas(&self.dir)
    }

    fn commit_pending(&mut self) -> Result<()> {
        if self.uncommitted == 0 && !self.unconfirmed {
            return Ok(());
        }
        let (done_tx, done_rx) = bounded(1);
        self.send(Job::Commit {
            watermark: self.watermark,
            done: Some(done_tx),
        })?;
        self.uncommitted = 0;
        self.unconfirmed = false;
        self.last_commit = std::time::Instant::now();
        match done_rx.recv() {
            Ok(result) => result,
            Err(_) => Err(self
                .stop()
                .err()
                .unwrap_or_else(|| anyhow!("the index writer thread stopped"))),
        }
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        // Uncommitted documents are dropped with the writer; the watermark brings them back.
        // A failed merge leaves the committed segments as they were: worth a warning only.
        if let Err(e) = self.stop() {
            eprintln!("archivist: the search index writer stopped with an error: {e:#}");
        }
    }
}

/// Builds a fresh index from the whole archive beside the live one and swaps it in; searches
/// keep working meanwhile. Returns the number of documents.
pub fn rebuild(store: &Store, data_dir: &Path) -> Result<u64> {
    // Changes made while the scan runs are after this mark and are caught up by the next
    // import, which re-applies them idempotently (upsert by Message-ID).
    let watermark = store.index_log_head()?;
    let mut failure: Option<anyhow::Error> = None;
    let docs = ScanDocs {
        store,
        cursor: Some(ScanCursor::default()),
        buffer: Vec::new().into_iter(),
        failure: &mut failure,
    };
    let count = index::rebuild(&index_dir(data_dir), docs, watermark)?;
    if let Some(err) = failure {
        return Err(
            err.context("reading the archive for the rebuild failed; the old index is kept")
        );
    }
    Ok(count)
}

/// The archive as a stream of documents, read a chunk at a time.
struct ScanDocs<'a> {
    store: &'a Store,
    cursor: Option<ScanCursor>,
    buffer: std::vec::IntoIter<IndexSource>,
    failure: &'a mut Option<anyhow::Error>,
}

impl Iterator for ScanDocs<'_> {
    type Item = IndexDoc;

    fn next(&mut self) -> Option<IndexDoc> {
        loop {
            if let Some(source) = self.buffer.next() {
                return Some(to_doc(source));
            }
            let cursor = self.cursor?;
            match self.store.index_scan(cursor, FEED_CHUNK) {
                Ok((sources, next)) => {
                    self.cursor = next;
                    self.buffer = sources.into_iter();
                }
                Err(err) => {
                    *self.failure = Some(err);
                    self.cursor = None;
                    return None;
                }
            }
        }
    }
}

fn to_doc(s: IndexSource) -> IndexDoc {
    IndexDoc {
        message_id: s.message_id.as_str().to_string(),
        thread: s.thread.max(0) as u64,
        date: s.date,
        subject: s.subject,
        body: s.body,
        from_name: s.from_name,
        from_addr: s.from_addr,
        recipients: s.recipients,
        lists: s.lists,
        has_attachment: s.has_attachment,
        has_patch: s.has_patch,
    }
}
