//! Keeps the search index in step with the archive: reads the store's change feed after its
//! last watermark and applies it to the index. SQLite leads, the index follows: after a crash
//! the next run catches up from the watermark, never the other way round.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::index::{self, IndexDoc, IndexWriter};
use crate::store::{IndexSource, ScanCursor, Store};

/// Feed entries read from the store at a time.
const FEED_CHUNK: usize = 2000;

/// How many documents a long import indexes between commits, which make them visible to
/// searchers. Counted, not timed, so this code needs no clock.
const COMMIT_EVERY_DOCS: u64 = 50_000;

/// The index directory inside a data directory.
pub fn index_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("index")
}

/// The single writer of the index, owned by the import path.
pub struct Indexer {
    writer: IndexWriter,
    watermark: u64,
    uncommitted: u64,
}

impl Indexer {
    /// Opens the index for writing (creating it) and reads its watermark.
    pub fn open(data_dir: &Path) -> Result<Indexer> {
        let dir = index_dir(data_dir);
        let writer = IndexWriter::open(&dir)
            .with_context(|| format!("cannot open the search index in {}", dir.display()))?;
        let watermark = IndexWriter::watermark(&dir)?.unwrap_or(0);
        Ok(Indexer {
            writer,
            watermark,
            uncommitted: 0,
        })
    }

    /// Applies every store change after the watermark; commits when `COMMIT_EVERY_DOCS` (50,000)
    /// documents are pending. Returns the documents written.
    pub fn catch_up(&mut self, store: &Store) -> Result<u64> {
        let mut written = 0u64;
        loop {
            let (sources, last) = store.index_changes(self.watermark, FEED_CHUNK)?;
            if last == self.watermark {
                break;
            }
            let docs: Vec<IndexDoc> = sources.into_iter().map(to_doc).collect();
            self.writer.upsert(&docs)?;
            written += docs.len() as u64;
            self.uncommitted += docs.len() as u64;
            self.watermark = last;
        }
        if self.uncommitted >= COMMIT_EVERY_DOCS {
            self.finish()?;
        }
        Ok(written)
    }

    /// Commits whatever is pending, recording the watermark with it.
    pub fn finish(&mut self) -> Result<()> {
        if self.uncommitted > 0 {
            self.writer.commit(self.watermark)?;
            self.uncommitted = 0;
        }
        Ok(())
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
        date: s.date.unwrap_or(0),
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
