//! Writing the index: incremental upserts with a caller-chosen watermark in each commit, and
//! full rebuilds into a new generation that is swapped in atomically.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use tantivy::directory::{Directory as _, MmapDirectory, INDEX_WRITER_LOCK};
use tantivy::merge_policy::{LogMergePolicy, NoMergePolicy};
use tantivy::schema::Term;
use tantivy::{Index, TantivyDocument};

use super::layout;
use super::schema::{normalize_msgid, to_document, Fields};
use super::IndexDoc;

/// How much the writer may use. The default (2 threads, 200 MB) indexes well over 15,000
/// typical messages a second on two cores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriterConfig {
    /// Indexing threads (at least 1).
    pub threads: usize,
    /// Memory budget for all threads together, in bytes (at least 15 MB per thread).
    pub memory_budget_bytes: usize,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            threads: 2,
            memory_budget_bytes: 200_000_000,
        }
    }
}

/// What a commit records besides the documents.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    watermark: u64,
}

/// Reads the watermark of an index's last commit.
fn read_watermark(index: &Index) -> Result<Option<u64>> {
    let metas = index
        .load_metas()
        .context("cannot read the index metadata")?;
    match metas.payload {
        None => Ok(None),
        Some(p) => {
            let payload: Payload = serde_json::from_str(&p)
                .with_context(|| format!("unreadable commit payload {p:?}"))?;
            Ok(Some(payload.watermark))
        }
    }
}

fn open_tantivy_writer(
    index: &Index,
    config: &WriterConfig,
    dir: &Path,
) -> Result<tantivy::IndexWriter<TantivyDocument>> {
    let threads = config.threads.max(1);
    let writer = index
        .writer_with_num_threads(threads, config.memory_budget_bytes)
        .with_context(|| {
            format!(
                "cannot open an index writer on {} (another writer may hold its lock)",
                dir.display()
            )
        })?;
    // An import replaces the document of every message that gains a list (a cross-post read
    // from a later file), which leaves deleted documents behind: a quarter of the documents
    // on a typical multi-list archive. Searches still walk them, so segments holding more than
    // DELETED_RATIO_BEFORE_MERGE of them are merged away.
    let mut policy = LogMergePolicy::default();
    policy.set_del_docs_ratio_before_merge(DELETED_RATIO_BEFORE_MERGE);
    writer.set_merge_policy(Box::new(policy));
    Ok(writer)
}

/// See [`open_tantivy_writer`].
const DELETED_RATIO_BEFORE_MERGE: f32 = 0.1;

fn commit_with(writer: &mut tantivy::IndexWriter<TantivyDocument>, watermark: u64) -> Result<()> {
    let payload = serde_json::to_string(&Payload { watermark }).context("cannot encode payload")?;
    let mut prepared = writer
        .prepare_commit()
        .context("cannot prepare the index commit")?;
    prepared.set_payload(&payload);
    prepared.commit().context("cannot commit the index")?;
    Ok(())
}

/// The one writer of an index. It holds tantivy's writer lock on the live generation for its
/// whole life, so a second writer, or a rebuild, fails instead of racing it.
pub struct IndexWriter {
    dir: PathBuf,
    fields: Fields,
    writer: tantivy::IndexWriter<TantivyDocument>,
}

impl IndexWriter {
    /// Opens (creating if needed) the index under `<base>/vN/` with the default configuration.
    pub fn open(base: &Path) -> Result<Self> {
        Self::open_with(base, &WriterConfig::default())
    }

    /// Opens (creating if needed) the index under `<base>/vN/`.
    pub fn open_with(base: &Path, config: &WriterConfig) -> Result<Self> {
        // A rebuild may swap generations between reading the pointer and taking the lock;
        // checking the pointer again under the lock catches that.
        for _ in 0..3 {
            let generation = layout::ensure_index(base)?;
            let Some((index, fields)) = layout::open_index_if_current(base, &generation)? else {
                start_over(base, &generation)?;
                continue;
            };
            let dir = layout::gen_dir(base, &generation);
            let writer = open_tantivy_writer(&index, config, &dir)?;
            if layout::read_current(base)?.as_deref() == Some(generation.as_str()) {
                return Ok(IndexWriter {
                    dir,
                    fields,
                    writer,
                });
            }
        }
        anyhow::bail!(
            "the index under {} keeps being replaced; try again",
            base.display()
        )
    }

    /// Adds documents, replacing any already indexed under the same message id. Nothing is
    /// visible to searchers until [`IndexWriter::commit`].
    pub fn upsert(&mut self, docs: &[IndexDoc]) -> Result<()> {
        for doc in docs {
            let id = normalize_msgid(&doc.message_id);
            self.writer
                .delete_term(Term::from_field_text(self.fields.msgid, id));
            self.writer
                .add_document(to_document(&self.fields, doc))
                .with_context(|| format!("cannot index message {id}"))?;
        }
        Ok(())
    }

    /// Adds documents known not to be in the index yet (messages new to the archive), without
    /// the delete an upsert costs. Nothing is visible to searchers until [`IndexWriter::commit`].
    pub fn add(&mut self, docs: &[IndexDoc]) -> Result<()> {
        for doc in docs {
            self.writer
                .add_document(to_document(&self.fields, doc))
                .with_context(|| format!("cannot index message {}", doc.message_id))?;
        }
        Ok(())
    }

    /// Removes documents by message id (for example messages deleted from the archive).
    pub fn delete<S: AsRef<str>>(&mut self, message_ids: &[S]) -> Result<()> {
        for id in message_ids {
            let id = normalize_msgid(id.as_ref());
            self.writer
                .delete_term(Term::from_field_text(self.fields.msgid, id));
        }
        Ok(())
    }

    /// Makes everything since the last commit durable and visible, recording `watermark`
    /// (for example the last SQLite row included) so a restarted indexer knows where to resume.
    pub fn commit(&mut self, watermark: u64) -> Result<()> {
        commit_with(&mut self.writer, watermark)
            .with_context(|| format!("commit to {} failed", self.dir.display()))
    }

    /// Closes the writer after the merges under way (started by commits) are done, so the
    /// index is left compact. Anything not committed is dropped.
    pub fn close(self) -> Result<()> {
        self.writer
            .wait_merging_threads()
            .context("index merge failed")
    }

    /// Drops everything since the last commit.
    pub fn rollback(&mut self) -> Result<()> {
        self.writer
            .rollback()
            .context("cannot roll back the index writer")?;
        Ok(())
    }

    /// The watermark of the live index's last commit; `None` if there is no index (or only one
    /// of an older schema) or it was never committed with one. Needs no writer, so a starting
    /// indexer can ask first.
    pub fn watermark(base: &Path) -> Result<Option<u64>> {
        let Some(generation) = layout::read_current(base)? else {
            return Ok(None);
        };
        // An index of an older schema is as good as none: its watermark would skip documents
        // the current schema never saw.
        match layout::open_index_if_current(base, &generation)? {
            Some((index, _)) => read_watermark(&index),
            None => Ok(None),
        }
    }
}

/// Replaces a generation built with another schema by an empty one. It has no watermark, so
/// the indexer feeds it from the start; a rebuild does the same faster.
fn start_over(base: &Path, stale: &str) -> Result<()> {
    let stale_path = layout::gen_dir(base, stale);
    let dir = MmapDirectory::open(&stale_path)
        .with_context(|| format!("cannot open {}", stale_path.display()))?;
    let lock = dir.acquire_lock(&INDEX_WRITER_LOCK).map_err(|e| {
        anyhow::anyhow!(
            "cannot replace the outdated index: a writer is open on {} ({e})",
            stale_path.display()
        )
    })?;
    if layout::read_current(base)?.as_deref() != Some(stale) {
        // Someone replaced it meanwhile.
        return Ok(());
    }
    let (generation, path) = layout::new_generation(base)?;
    layout::create_index(&path)?;
    layout::publish(base, &generation)?;
    drop(lock);
    // Nothing can read the outdated generation, so it need not be kept.
    layout::remove_stale(base, &generation, &generation)
}

/// Deletes a half-built generation unless the rebuild got to publish it.
struct Abandon {
    path: Option<PathBuf>,
}

impl Drop for Abandon {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            let _ = std::fs::remove_dir_all(path);
        }
    }
}

/// Merges every segment of `index` into one; the merge keeps the last commit's payload (the
/// watermark). Run with no other writer and no merges under way.
fn merge_into_one(index: &Index, dir: &Path) -> Result<()> {
    let ids = index.searchable_segment_ids()?;
    if ids.len() < 2 {
        return Ok(());
    }
    // One thread and the smallest budget: this writer indexes nothing.
    let mut writer: tantivy::IndexWriter<TantivyDocument> = index
        .writer_with_num_threads(1, MERGE_WRITER_BUDGET)
        .with_context(|| format!("cannot open an index writer on {}", dir.display()))?;
    writer.set_merge_policy(Box::new(NoMergePolicy));
    writer.merge(&ids).wait()?;
    writer.wait_merging_threads()?;
    Ok(())
}

/// tantivy's smallest memory budget for one indexing thread (not exported by tantivy).
const MERGE_WRITER_BUDGET: usize = 15_000_000;

/// Builds a complete new index from `docs` beside the live one and swaps it in atomically,
/// recording `watermark`; returns how many documents went in. Searchers keep answering from
/// the old generation meanwhile and move to the new one on their next search. Fails if an
/// [`IndexWriter`] is open: it holds the lock a rebuild needs. Message ids should be unique:
/// a rebuild adds documents without looking for earlier copies.
pub fn rebuild(
    base: &Path,
    docs: impl IntoIterator<Item = IndexDoc>,
    watermark: u64,
) -> Result<u64> {
    rebuild_with(base, docs, watermark, &WriterConfig::default())
}

/// [`rebuild`] with an explicit writer configuration.
pub fn rebuild_with(
    base: &Path,
    docs: impl IntoIterator<Item = IndexDoc>,
    watermark: u64,
    config: &WriterConfig,
) -> Result<u64> {
    let old = layout::ensure_index(base)?;
    let old_path = layout::gen_dir(base, &old);
    let old_dir = MmapDirectory::open(&old_path)
        .with_context(|| format!("cannot open {}", old_path.display()))?;
    // Holding the live generation's writer lock keeps incremental writers out until the swap.
    let old_lock = old_dir.acquire_lock(&INDEX_WRITER_LOCK).map_err(|e| {
        anyhow::anyhow!(
            "cannot rebuild: an index writer is open on {} ({e})",
            old_path.display()
        )
    })?;
    if layout::read_current(base)?.as_deref() != Some(old.as_str()) {
        anyhow::bail!("another rebuild replaced the index meanwhile");
    }

    let (generation, path) = layout::new_generation(base)?;
    let mut abandon = Abandon {
        path: Some(path.clone()),
    };
    let index = layout::create_index(&path)?;
    let fields = super::schema::fields_of(&index.schema())
        .context("a freshly created index has an unexpected schema")?;
    let mut writer = open_tantivy_writer(&index, config, &path)?;
    let mut count = 0u64;
    for doc in docs {
        writer
            .add_document(to_document(&fields, &doc))
            .with_context(|| format!("cannot index message {}", doc.message_id))?;
        count += 1;
    }
    commit_with(&mut writer, watermark)?;
    // Let merges finish so the new generation is complete and compact when it goes live.
    writer
        .wait_merging_threads()
        .context("index merge after rebuild failed")?;
    // A rebuild has the whole archive at hand and nobody searching the new generation yet:
    // leave it as one segment. Each query pays a fixed cost per segment (a dictionary lookup
    // per term and field, a scorer, a collector) and walks fewer, longer posting lists.
    merge_into_one(&index, &path).context("index merge after rebuild failed")?;

    layout::publish(base, &generation)?;
    abandon.path = None;
    drop(old_lock);
    layout::remove_stale(base, &old, &generation)?;
    // The new generation is complete: an older schema's index is of no more use.
    layout::remove_older_schemas(base)?;
    Ok(count)
}
