//! The import pipeline: input → [`mbox`] split → [`parse`] → dedup → thread → store, one
//! SQLite transaction per batch. A reader thread splits, worker threads parse and compress,
//! and the calling thread decides identity and writes, so the stages overlap across cores.

pub mod mbox;
pub mod parse;
pub mod source;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use crossbeam_channel::bounded;
use serde::Serialize;

use crate::dedup::{self, Candidate, ContentKey, KeyInput, Verdict};
use crate::index::IndexDoc;
use crate::indexer::Indexer;
use crate::message::{Address, ListName, MessageId};
use crate::store::{self, Batch, FileProgress, FileRef, ListRef, Store};
use crate::thread;
use mbox::{Item, ProblemKind, SplitStats, Splitter, Variant};
use parse::Parsed;
use source::Input;

/// Items sent from the reader to the parsers at a time.
const CHUNK_ITEMS: usize = 256;
/// A chunk goes out sooner once its records hold this many bytes: with messages of megabytes,
/// 256 of them per chunk and a few chunks in flight took gigabytes.
const CHUNK_BYTES: usize = 16 << 20;
/// A batch is written sooner once its records held this many bytes of input, for the same
/// reason.
const BATCH_BYTES: u64 = 64 << 20;

/// How to import.
#[derive(Debug, Clone)]
pub struct Options {
    /// File every message under this list instead of detecting it.
    pub list: Option<ListName>,
    /// Messages per transaction.
    pub batch_size: usize,
    /// Largest message kept whole.
    pub max_message_bytes: usize,
    /// zstd level.
    pub compression_level: i32,
    /// Parser threads.
    pub parse_threads: usize,
}

/// The import summary. The first fields are the `--json` contract.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    /// Input files read (stdin counts as one).
    pub files: u64,
    /// Message records read (separators found, plus a lone message without one).
    pub messages_read: u64,
    /// Messages stored for the first time.
    pub messages_new: u64,
    /// Copies that added a list to an already stored message.
    pub cross_posts: u64,
    /// Copies already stored for that list.
    pub duplicates: u64,
    /// Problems recorded (byte ranges that are not messages).
    pub problems: u64,
    /// Of `problems`, those that are not message records (text before the first separator,
    /// a truncated end): `messages_read = messages_new + cross_posts + duplicates + problems -
    /// framing_problems` always holds.
    pub framing_problems: u64,
    /// Wall-clock seconds, filled in by the command.
    pub seconds: f64,
    /// Bytes read (decompressed).
    pub bytes: u64,
    /// Files passed over by a directory walk (not mail archives by name or content; hidden).
    pub skipped: Vec<String>,
    /// Inputs that could not be read, each `path: reason` (a file or folder without
    /// permission, a dangling link); the import goes on with the others.
    pub unreadable: Vec<String>,
    /// Per-file details.
    pub details: Vec<FileReport>,
}

/// What was found in one file: the "import doctor" part of the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FileReport {
    /// Path as given.
    pub path: String,
    /// List the messages were filed under.
    pub list: String,
    /// `mbox`, `pipermail`, `single-message` or `empty`.
    pub variant: String,
    /// `gzip` or `plain`.
    pub encoding: String,
    /// `lf`, `crlf`, `mixed` or `none`.
    pub line_endings: String,
    /// Message records read.
    pub messages: u64,
    /// Separators that did not follow a blank line.
    pub suspicious_splits: u64,
    /// Lines starting with `From ` kept inside bodies.
    pub body_from_lines: u64,
    /// `>From ` lines unquoted (mbox only).
    pub quoted_from_lines: u64,
    /// Messages without a usable Message-ID.
    pub missing_ids: u64,
    /// Messages without a usable date.
    pub undated: u64,
    /// Problems recorded for this file.
    pub problems: u64,
    /// Earliest message date (RFC 3339).
    pub first_date: Option<String>,
    /// Latest message date (RFC 3339).
    pub last_date: Option<String>,
    /// `unchanged` when skipped, `resumed at N` when read from a recorded offset.
    pub note: Option<String>,
}

/// Progress callback: (message records, bytes) since the last call.
pub type ProgressFn<'a> = &'a (dyn Fn(u64, u64) + Sync);

/// A message after the parse stage: parsed and compressed, no longer tied to the input.
/// How many stored messages sharing an incoming copy's identity `FileSession::rematch` tries.
const REMATCH_CANDIDATES: usize = 8;

struct Prepared {
    offset: u64,
    /// The record's length in the stream, separator line included.
    length: u64,
    parsed: Parsed,
    content: Vec<u8>,
    size: u64,
}

enum Stage {
    Message(Box<Prepared>),
    Problem(store::NewProblem),
}

struct Chunk {
    items: Vec<Stage>,
    end_offset: u64,
    variant: Variant,
    records: u64,
    bytes: u64,
}

/// Imports every input into `store`. With `dry_run`, everything runs inside one transaction
/// that is rolled back at the end, so the report is exact and nothing is written.
pub fn import(
    store: &mut Store,
    mut indexer: Option<&mut Indexer>,
    paths: &[PathBuf],
    options: &Options,
    dry_run: bool,
    progress: ProgressFn<'_>,
) -> Result<Report> {
    let expanded = source::expand(paths)?;
    let mut report = Report {
        skipped: expanded
            .skipped
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        unreadable: expanded
            .unreadable
            .iter()
            .map(|(p, e)| format!("{}: {e}", p.display()))
            .collect(),
        ..Report::default()
    };
    let inputs = expanded.inputs;
    if dry_run {
        store.begin_dry_run()?;
        indexer = None;
    } else {
        store.checkpoint_in_background()?;
    }
    // Whatever an earlier, interrupted run committed to SQLite but not to the index.
    if let Some(ix) = indexer.as_deref_mut() {
        ix.catch_up(store)?;
    }
    let result = (|| -> Result<()> {
        for input in &inputs {
            // A file that cannot be opened is reported and passed over, so one bad permission
            // does not stop the rest; a failure while reading one is still an error.
            if let source::Input::File(path) = input {
                if let Err(e) = std::fs::File::open(path) {
                    report.unreadable.push(format!("{}: {e}", path.display()));
                    continue;
                }
            }
            let file_report = match import_input(
                store,
                indexer.as_deref_mut(),
                input,
                options,
                progress,
                &mut report,
            ) {
                Ok(r) => r,
                Err(e) if e.chain().any(|c| c.downcast_ref::<NoList>().is_some()) => {
                    report.unreadable.push(format!("{}: {e}", input.display()));
                    continue;
                }
                Err(e) => return Err(e.context(format!("import of {} failed", input.display()))),
            };
            report.files += 1;
            report.details.push(file_report);
        }
        Ok(())
    })();
    if dry_run {
        store.end_dry_run()?;
    }
    if result.is_err() {
        // The import's own error is the one to report.
        let _ = store.stop_background_checkpoints();
    }
    result?;
    if !dry_run {
        store.checkpoint()?;
    }
    if let Some(ix) = indexer {
        ix.finish()?;
    }
    Ok(report)
}

/// How to read a file given what the store remembers of it.
enum Plan {
    Skip,
    Full,
    Resume { offset: u64, variant: Variant },
}

fn import_input(
    store: &mut Store,
    indexer: Option<&mut Indexer>,
    input: &Input,
    options: &Options,
    progress: ProgressFn<'_>,
    report: &mut Report,
) -> Result<FileReport> {
    let display = input.display();
    let mut file_report = FileReport {
        path: display.clone(),
        ..FileReport::default()
    };
    let list_key = options
        .list
        .as_ref()
        .map(|l| l.as_str().to_string())
        .unwrap_or_default();

    // Incremental imports: compare the file with what was recorded.
    let mut file_ref: Option<FileRef> = None;
    let mut known_list: Option<ListRef> = None;
    let mut plan = Plan::Full;
    if let Input::File(path) = input {
        let canonical = std::fs::canonicalize(path)
            .with_context(|| format!("cannot resolve {}", path.display()))?;
        let key_path = canonical.display().to_string();
        let size = std::fs::metadata(&canonical)?.len();
        let state = store.file_state(&key_path, &list_key)?;
        let current_fp = source::fingerprint(&canonical, size)?;
        if let Some(state) = state {
            let same_prefix = size >= state.size
                && state.fingerprint.as_deref()
                    == Some(source::fingerprint(&canonical, state.size)?.as_slice());
            let variant = variant_from_name(&state.variant);
            if same_prefix && state.complete && size == state.size {
                plan = Plan::Skip;
            } else if same_prefix && (state.done_offset == 0 || variant.is_some()) {
                plan = Plan::Resume {
                    offset: state.done_offset,
                    variant: variant.unwrap_or(Variant::Unknown),
                };
                store.resume_file(state.handle, size, &current_fp, state.done_offset)?;
            }
            known_list = state.list;
            file_ref = Some(state.handle);
        }
        if matches!(plan, Plan::Full) {
            file_ref = Some(store.begin_file(&key_path, &list_key, false, size, &current_fp)?);
        }
    }
    if matches!(plan, Plan::Skip) {
        file_report.note = Some("unchanged since the last import".into());
        return Ok(file_report);
    }
    let is_stdin = matches!(input, Input::Stdin);
    let opened = source::open(input)?;
    file_report.encoding = if opened.compressed { "gzip" } else { "plain" }.into();
    if let (Some(file), true) = (file_ref, opened.compressed) {
        store.set_file_compressed(file)?;
    }
    let (resume_offset, resume_variant) = match plan {
        Plan::Resume { offset, variant } if offset > 0 => {
            file_report.note = Some(format!("resumed at byte {offset}"));
            (offset, variant)
        }
        _ => (0, Variant::Unknown),
    };

    // A path without a folder (`a.mbox`, `./a.mbox`) names the folder it is in.
    let folder_list = match input {
        Input::File(path) => source::folder_list_name(path).or_else(|| {
            std::fs::canonicalize(path)
                .ok()
                .and_then(|c| source::folder_list_name(&c))
        }),
        Input::Stdin => None,
    };
    let mut session = FileSession {
        indexer,
        options,
        file: file_ref,
        list: known_list.filter(|_| resume_offset > 0),
        list_name: None,
        folder_list,
        footers: Vec::new(),
        report: &mut file_report,
        totals: report,
        min_date: None,
        max_date: None,
    };

    let threads = options.parse_threads.max(1);
    let level = options.compression_level;
    let max_bytes = options.max_message_bytes;
    let batch_size = options.batch_size.max(1);
    let split_stats = std::thread::scope(|scope| -> Result<(Variant, SplitStats)> {
        let (raw_tx, raw_rx) = bounded::<(u64, Vec<Item>, u64, Variant, u64)>(threads * 2);
        let (out_tx, out_rx) = bounded::<(u64, Result<Chunk>)>(threads * 2);
        let reader = std::thread::Builder::new()
            .name("archivist-split".into())
            .spawn_scoped(scope, move || -> Result<(Variant, SplitStats)> {
                let mut splitter = Splitter::new(opened.reader, max_bytes);
                if is_stdin {
                    // A stream ends where its writer ended it: nothing will be appended.
                    splitter.input_is_complete();
                }
                if resume_offset > 0 {
                    splitter
                        .resume_at(resume_offset, resume_variant)
                        .context("cannot skip to the recorded import position")?;
                }
                let mut seq = 0u64;
                let mut items = Vec::with_capacity(CHUNK_ITEMS);
                let mut end = resume_offset;
                let mut last_bytes = resume_offset;
                let mut chunk_bytes = 0;
                while let Some(item) = splitter.next() {
                    (end, chunk_bytes) = match &item {
                        Item::Message(m) => (m.offset + m.len, chunk_bytes + m.bytes.len()),
                        Item::Problem(p) => (p.offset + p.len, chunk_bytes + p.raw.len()),
                    };
                    items.push(item);
                    if items.len() >= CHUNK_ITEMS || chunk_bytes >= CHUNK_BYTES {
                        chunk_bytes = 0;
                        let bytes = splitter.stats().total_bytes - last_bytes;
                        last_bytes = splitter.stats().total_bytes;
                        let chunk = std::mem::replace(&mut items, Vec::with_capacity(CHUNK_ITEMS));
                        if raw_tx
                            .send((seq, chunk, end, splitter.variant(), bytes))
                            .is_err()
                        {
                            break;
                        }
                        seq += 1;
                    }
                }
                let bytes = splitter.stats().total_bytes - last_bytes;
                // The last chunk always goes out, even empty, so the end offset is recorded:
                // the end of the input, or the start of a message it cut off.
                let end = splitter
                    .resume_from()
                    .unwrap_or(end.max(splitter.stats().total_bytes));
                let _ = raw_tx.send((seq, items, end, splitter.variant(), bytes));
                Ok((splitter.variant(), splitter.stats().clone()))
            })
            .context("cannot start the reader thread")?;
        for _ in 0..threads {
            let raw_rx = raw_rx.clone();
            let out_tx = out_tx.clone();
            std::thread::Builder::new()
                .name("archivist-parse".into())
                .spawn_scoped(scope, move || {
                    // One compression context per worker: creating one per message cost more
                    // than the compression itself on small mails.
                    let mut zstd = match zstd::bulk::Compressor::new(level) {
                        Ok(c) => c,
                        Err(err) => {
                            let _ = out_tx.send((0, Err(anyhow!("zstd: {err}"))));
                            return;
                        }
                    };
                    for (seq, items, end_offset, variant, bytes) in raw_rx {
                        let chunk = prepare_chunk(items, end_offset, variant, bytes, &mut zstd);
                        if out_tx.send((seq, chunk)).is_err() {
                            break;
                        }
                    }
                })
                .context("cannot start a parser thread")?;
        }
        drop(raw_rx);
        drop(out_tx);

        // Chunks arrive out of order from the workers; put them back in file order.
        let mut waiting: BTreeMap<u64, Chunk> = BTreeMap::new();
        let mut next_seq = 0u64;
        let mut pending: Vec<Stage> = Vec::new();
        let mut pending_bytes = 0u64;
        let mut pending_end = resume_offset;
        let mut variant;
        let mut failure: Option<anyhow::Error> = None;
        for (seq, chunk) in &out_rx {
            match chunk {
                Ok(chunk) => {
                    waiting.insert(seq, chunk);
                }
                Err(err) => {
                    failure = Some(err);
                    break;
                }
            }
            while let Some(chunk) = waiting.remove(&next_seq) {
                next_seq += 1;
                progress(chunk.records, chunk.bytes);
                variant = chunk.variant;
                pending_end = chunk.end_offset;
                pending.extend(chunk.items);
                pending_bytes += chunk.bytes;
                let messages = pending
                    .iter()
                    .filter(|s| matches!(s, Stage::Message(_)))
                    .count();
                if messages >= batch_size || pending_bytes >= BATCH_BYTES {
                    pending_bytes = 0;
                    let batch = std::mem::take(&mut pending);
                    if let Err(err) = session.write(store, batch, pending_end, variant, false) {
                        failure = Some(err);
                        break;
                    }
                }
            }
            if failure.is_some() {
                break;
            }
        }
        // Stop the reader and workers before reporting a failure: dropping the receiver makes
        // their sends fail and they return.
        drop(out_rx);
        let split = reader
            .join()
            .map_err(|_| anyhow!("the mbox reader thread panicked"))??;
        if let Some(err) = failure {
            return Err(err);
        }
        session.write(store, pending, pending_end, split.0, true)?;
        Ok(split)
    })?;

    let (variant, stats) = split_stats;
    file_report.variant = variant.as_str().into();
    file_report.line_endings = match (stats.lf_lines, stats.crlf_lines) {
        (0, 0) => "none",
        (_, 0) => "lf",
        (0, _) => "crlf",
        _ => "mixed",
    }
    .into();
    file_report.suspicious_splits = stats.suspicious;
    file_report.body_from_lines = stats.body_from_lines;
    file_report.quoted_from_lines = stats.quoted_from_lines;
    report.bytes += stats.total_bytes.saturating_sub(resume_offset);
    Ok(file_report)
}

fn variant_from_name(name: &str) -> Option<Variant> {
    [
        Variant::Mbox,
        Variant::Pipermail,
        Variant::Single,
        Variant::Unknown,
    ]
    .into_iter()
    .find(|v| v.as_str() == name)
}

/// The parse stage for one chunk: parse, compress, and turn unparseable records into problems.
fn prepare_chunk(
    items: Vec<Item>,
    end_offset: u64,
    variant: Variant,
    bytes: u64,
    zstd: &mut zstd::bulk::Compressor<'static>,
) -> Result<Chunk> {
    let mut out = Vec::with_capacity(items.len());
    let mut records = 0;
    for item in items {
        match item {
            Item::Message(m) => {
                records += 1;
                let pipermail = variant == Variant::Pipermail;
                // mail-parser promises never to panic; if it ever does, the message becomes a
                // recorded problem instead of aborting the import.
                let parsed = std::panic::catch_unwind(|| {
                    parse::parse(&m.bytes, m.envelope.as_ref(), pipermail)
                });
                match parsed {
                    Ok(Ok(parsed)) => {
                        let content = store::pack_content(zstd, &m.bytes, &parsed.body)?;
                        out.push(Stage::Message(Box::new(Prepared {
                            offset: m.offset,
                            length: m.len,
                            size: m.bytes.len() as u64,
                            parsed,
                            content,
                        })));
                    }
                    Ok(Err(err)) => out.push(Stage::Problem(problem(
                        m.offset,
                        m.len,
                        ProblemKind::NoHeaders.as_str(),
                        err.to_string(),
                        &m.bytes,
                        zstd,
                    )?)),
                    Err(_) => out.push(Stage::Problem(problem(
                        m.offset,
                        m.len,
                        "parser-panic",
                        "the MIME parser failed on this message".into(),
                        &m.bytes,
                        zstd,
                    )?)),
                }
            }
            Item::Problem(p) => {
                if p.kind == ProblemKind::TooLarge {
                    records += 1;
                }
                out.push(Stage::Problem(problem(
                    p.offset,
                    p.len,
                    p.kind.as_str(),
                    p.detail,
                    &p.raw,
                    zstd,
                )?));
            }
        }
    }
    Ok(Chunk {
        items: out,
        end_offset,
        variant,
        records,
        bytes,
    })
}

fn problem(
    offset: u64,
    length: u64,
    kind: &str,
    detail: String,
    raw: &[u8],
    zstd: &mut zstd::bulk::Compressor<'static>,
) -> Result<store::NewProblem> {
    Ok(store::NewProblem {
        offset,
        length,
        kind: kind.into(),
        detail,
        raw_z: compress(zstd, raw)?,
    })
}

fn compress(zstd: &mut zstd::bulk::Compressor<'static>, bytes: &[u8]) -> Result<Vec<u8>> {
    zstd.compress(bytes).context("zstd compression failed")
}

/// The per-file state of the write stage.
struct FileSession<'a> {
    indexer: Option<&'a mut Indexer>,
    options: &'a Options,
    file: Option<FileRef>,
    list: Option<ListRef>,
    list_name: Option<String>,
    folder_list: Option<String>,
    footers: Vec<String>,
    report: &'a mut FileReport,
    totals: &'a mut Report,
    min_date: Option<i64>,
    max_date: Option<i64>,
}

/// A file whose messages cannot be given a list: passed over like an unreadable file (and
/// listed with it), so one oddly named folder does not stop a whole import.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct NoList(String);

impl FileSession<'_> {
    /// Decides the file's list on its first batch: `--list`, else the most common `List-Id`,
    /// else the folder's name.
    fn resolve_list(&mut self, store: &mut Store, stages: &[Stage]) -> Result<ListRef> {
        if let Some(list) = self.list {
            return Ok(list);
        }
        let (name, list_id) = if let Some(name) = &self.options.list {
            (name.clone(), None)
        } else {
            let mut votes: BTreeMap<String, (usize, String)> = BTreeMap::new();
            for stage in stages {
                if let Stage::Message(m) = stage {
                    if let Some(raw) = &m.parsed.list_id {
                        if let Some(name) = ListName::from_list_id(raw) {
                            let entry = votes
                                .entry(name.as_str().to_string())
                                .or_insert((0, raw.clone()));
                            entry.0 += 1;
                        }
                    }
                }
            }
            let best = votes
                .into_iter()
                .max_by(|a, b| a.1 .0.cmp(&b.1 .0).then(b.0.cmp(&a.0)));
            match best {
                Some((name, (_, raw))) => {
                    (ListName::parse(&name).map_err(|e| anyhow!(e))?, Some(raw))
                }
                None => {
                    let folder = self.folder_list.clone().ok_or_else(|| {
                        anyhow::Error::new(NoList(
                            "cannot tell which list these messages belong to (no List-Id \
                             header, and the folder's name makes no list name): pass --list NAME"
                                .into(),
                        ))
                    })?;
                    // A folder named like one of the site's own paths (`t/`) files into
                    // `t-list`, unless an older version already keeps a list `t`.
                    let name =
                        ListName::parse(&folder).map_err(|e| anyhow::Error::new(NoList(e)))?;
                    if name.is_reserved() && !store.list_exists(name.as_str())? {
                        (name.unreserved(), None)
                    } else {
                        (name, None)
                    }
                }
            }
        };
        // A new list may not take the name of one of the site's own pages; one an older
        // version stored under such a name keeps receiving its messages.
        if let Some(reason) = name.reserved_reason() {
            if !store.list_exists(name.as_str())? {
                return Err(anyhow!(reason));
            }
        }
        let list = store.ensure_list(&name, list_id.as_deref())?;
        if let Some(file) = self.file {
            store.set_file_list(file, list)?;
        }
        self.list = Some(list);
        Ok(list)
    }

    fn write(
        &mut self,
        store: &mut Store,
        stages: Vec<Stage>,
        end_offset: u64,
        variant: Variant,
        complete: bool,
    ) -> Result<()> {
        let list = self.resolve_list(store, &stages)?;
        if self.list_name.is_none() {
            self.list_name = Some(store.list_name(list)?);
            self.footers = store.footers(list)?;
            self.report.list = self.list_name.clone().unwrap_or_default();
        }
        let mut batch = Batch {
            progress: self.file.map(|_| FileProgress {
                done_offset: end_offset,
                complete,
                variant: variant.as_str().into(),
            }),
            ..Batch::default()
        };
        let mut messages: Vec<Prepared> = Vec::new();
        for stage in stages {
            match stage {
                Stage::Message(m) => messages.push(*m),
                Stage::Problem(p) => {
                    if p.kind == ProblemKind::Preamble.as_str()
                        || p.kind == ProblemKind::Truncated.as_str()
                    {
                        self.totals.framing_problems += 1;
                    } else {
                        self.report.messages += 1;
                        self.totals.messages_read += 1;
                    }
                    self.report.problems += 1;
                    self.totals.problems += 1;
                    batch.problems.push(p);
                }
            }
        }
        self.report.messages += messages.len() as u64;
        self.totals.messages_read += messages.len() as u64;

        // Learn this list's footer from the batch before computing keys with it.
        let bodies: Vec<&str> = messages.iter().map(|m| m.parsed.body.as_str()).collect();
        for footer in dedup::learn_footers(&bodies) {
            if !self.footers.contains(&footer) && self.footers.len() < dedup::MAX_FOOTERS_PER_LIST {
                self.footers.push(footer.clone());
                batch.footers.push(footer);
            }
        }
        // In the order the store reads them back, so a resumed import strips alike.
        self.footers.sort_unstable();
        let keys: Vec<dedup::Keys> = messages
            .iter()
            .map(|m| {
                let p = &m.parsed;
                dedup::Keys::of(&KeyInput {
                    from_addr: p.from.addr.as_deref(),
                    date: p.date,
                    subject: &p.subject,
                    body: dedup::strip_footer(&p.body, &self.footers),
                    attachments: &p.attachments,
                    attachment_digest: p.attachment_digest.as_ref(),
                })
            })
            .collect();
        // Identity look-up key per message: the header id, else the synthetic id.
        let lookups: Vec<(String, bool)> = messages
            .iter()
            .zip(&keys)
            .map(|(m, key)| match &m.parsed.message_id {
                Some(id) => (id.as_str().to_string(), true),
                None => (
                    dedup::synthetic_id(&key.legacy, 0).as_str().to_string(),
                    false,
                ),
            })
            .collect();
        let header_ids: Vec<&str> = lookups
            .iter()
            .filter(|l| l.1)
            .map(|l| l.0.as_str())
            .collect();
        // A message without a Message-ID is stored under one of its synthetic ids (the first
        // unless a hostile Message-ID took it): all are looked up, under the first.
        let mut synthetic_of: HashMap<String, String> = HashMap::new();
        for (m, key) in messages.iter().zip(&keys) {
            if m.parsed.message_id.is_none() {
                let base = dedup::synthetic_id(&key.legacy, 0).as_str().to_string();
                for v in 0..dedup::ID_VARIANTS {
                    synthetic_of.insert(
                        dedup::synthetic_id(&key.legacy, v).as_str().to_string(),
                        base.clone(),
                    );
                }
            }
        }
        let synthetic: Vec<&str> = synthetic_of.keys().map(String::as_str).collect();
        let stored = store.candidates(&header_ids, &synthetic)?;

        // The view of candidates, updated as this batch decides.
        let mut view: HashMap<String, Vec<(Option<store::MessageRef>, Candidate)>> = HashMap::new();
        let header_set: std::collections::HashSet<&str> = header_ids.iter().copied().collect();
        for (lookup, cands) in stored {
            let cands: Vec<(Option<store::MessageRef>, Candidate)> = cands
                .into_iter()
                .map(|c| {
                    let in_list = c.lists.contains(&list);
                    (
                        Some(c.handle),
                        Candidate {
                            id: c.id,
                            key: c.key,
                            in_list,
                        },
                    )
                })
                .collect();
            // A synthetic variant's rows count for the message without an id; the same text
            // may also be a message's own Message-ID (a hostile one), whose rows count for it.
            let base = synthetic_of.get(&lookup).filter(|b| **b != lookup).cloned();
            if let Some(base) = base {
                view.entry(base).or_default().extend(cands.iter().cloned());
                if !header_set.contains(lookup.as_str()) {
                    continue;
                }
            }
            view.entry(lookup).or_default().extend(cands);
        }
        // Ids of our own making (and Message-IDs that look like them) may be taken by a
        // message with another look-up key: those are checked against the whole archive.
        let mut in_batch: HashMap<&str, usize> = HashMap::new();
        for (lookup, _) in &lookups {
            *in_batch.entry(lookup.as_str()).or_default() += 1;
        }
        let mut maybe_taken: Vec<String> = Vec::new();
        for ((m, key), (lookup, _)) in messages.iter().zip(&keys).zip(&lookups) {
            let header = m.parsed.message_id.as_ref();
            let collides = view.get(lookup).is_some_and(|c| !c.is_empty())
                || in_batch.get(lookup.as_str()).is_some_and(|&n| n > 1);
            if header.is_none_or(|id| collides || dedup::in_own_namespace(id.as_str())) {
                maybe_taken.extend(
                    dedup::id_choices(header, &key.legacy)
                        .into_iter()
                        .filter(|id| dedup::in_own_namespace(id.as_str()))
                        .map(|id| id.as_str().to_string()),
                );
            }
        }
        maybe_taken.sort_unstable();
        maybe_taken.dedup();
        let wanted: Vec<&str> = maybe_taken.iter().map(String::as_str).collect();
        let mut taken_ids = store.taken_ids(&wanted)?;
        let mut new_messages: Vec<(Prepared, MessageId, ContentKey)> = Vec::new();
        let mut list_footers: HashMap<ListRef, Vec<String>> = HashMap::new();
        for ((m, key), (lookup, _)) in messages.into_iter().zip(keys).zip(lookups) {
            if m.parsed.message_id.is_none() {
                self.report.missing_ids += 1;
            }
            match m.parsed.date {
                Some(d) => {
                    self.min_date = Some(self.min_date.map_or(d, |x| x.min(d)));
                    self.max_date = Some(self.max_date.map_or(d, |x| x.max(d)));
                }
                None => self.report.undated += 1,
            }
            let entry = view.entry(lookup).or_default();
            let cands: Vec<Candidate> = entry.iter().map(|(_, c)| c.clone()).collect();
            let taken = |id: &MessageId| {
                cands.iter().any(|c| &c.id == id) || taken_ids.contains(id.as_str())
            };
            let mut verdict = dedup::decide(m.parsed.message_id.as_ref(), &key, &cands, &taken);
            if matches!(verdict, Verdict::New(_)) {
                if let Some(same) =
                    self.rematch(store, list, &m.parsed, entry, &mut list_footers)?
                {
                    verdict = if same.in_list {
                        Verdict::Duplicate(same.id)
                    } else {
                        Verdict::CrossPost(same.id)
                    };
                }
            }
            match verdict {
                Verdict::NoFreeId => {
                    let (raw, _) = store::unpack_content(&m.content)?;
                    batch.problems.push(store::NewProblem {
                        offset: m.offset,
                        length: m.length,
                        kind: "no-free-id".into(),
                        detail: format!(
                            "every id this message could be stored under ({}, ...) is taken by \
                             other messages",
                            dedup::id_choices(m.parsed.message_id.as_ref(), &key.legacy)[0]
                        ),
                        raw_z: zstd::bulk::compress(&raw, 3).context("zstd compression failed")?,
                    });
                    self.report.problems += 1;
                    self.totals.problems += 1;
                }
                Verdict::New(id) => {
                    taken_ids.insert(id.as_str().to_string());
                    entry.push((
                        None,
                        Candidate {
                            id: id.clone(),
                            key: key.key,
                            in_list: true,
                        },
                    ));
                    self.totals.messages_new += 1;
                    new_messages.push((m, id, key.key));
                }
                Verdict::CrossPost(id) => {
                    if let Some((handle, cand)) = entry.iter_mut().find(|(_, c)| c.id == id) {
                        cand.in_list = true;
                        if let Some(handle) = handle {
                            batch.cross_posts.push((*handle, m.offset));
                        }
                    }
                    self.totals.cross_posts += 1;
                }
                Verdict::Duplicate(id) => {
                    batch.copies.push(store::CopyPlace {
                        message: id,
                        offset: m.offset,
                        length: m.length,
                    });
                    self.totals.duplicates += 1;
                }
            }
        }

        let fresh = self.thread_and_fill(store, &mut batch, new_messages)?;
        self.report.first_date = self.min_date.map(rfc3339);
        self.report.last_date = self.max_date.map(rfc3339);
        store.write_batch(list, self.file, &batch)?;
        // The index follows SQLite, batch by batch, after the commit: new messages from
        // memory, other changes from the committed change feed.
        if let Some(ix) = self.indexer.as_deref_mut() {
            ix.follow(store, fresh)?;
        }
        Ok(())
    }

    /// A stored message with the incoming one's identity (Message-ID or synthetic id) whose
    /// stored key differs, but which is the same message once both keys are made again with
    /// the footers known now: a list learns footers as it goes, so a copy read after a footer
    /// was learnt is keyed without text that the stored copy's key still holds. Each
    /// candidate's key is made from its stored text and the footers of its lists and of this
    /// one, as is the incoming copy's. At most [`REMATCH_CANDIDATES`] are tried (a hostile
    /// archive can give one Message-ID to thousands of messages). Rare: only copies whose key
    /// matched no candidate get here.
    fn rematch(
        &self,
        store: &Store,
        list: ListRef,
        incoming: &Parsed,
        candidates: &[(Option<store::MessageRef>, Candidate)],
        list_footers: &mut HashMap<ListRef, Vec<String>>,
    ) -> Result<Option<Candidate>> {
        for (handle, candidate) in candidates
            .iter()
            .filter_map(|(h, c)| h.map(|h| (h, c)))
            .take(REMATCH_CANDIDATES)
        {
            let Some(source) = store.key_source(handle)? else {
                continue;
            };
            let mut footers = self.footers.clone();
            for other in store.lists_of(handle)? {
                if other == list {
                    continue;
                }
                let known = match list_footers.entry(other) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => e.insert(store.footers(other)?),
                };
                footers.extend(known.iter().cloned());
            }
            footers.sort_unstable();
            footers.dedup();
            // The stored copy's attachments, as its key counted them.
            let Ok(stored) = parse::parse(&source.raw, None, false) else {
                continue;
            };
            let stored_key = dedup::content_key(&KeyInput {
                from_addr: source.from_addr.as_deref(),
                date: source.date,
                subject: &source.subject,
                body: dedup::strip_footer(&source.text, &footers),
                attachments: &stored.attachments,
                attachment_digest: stored.attachment_digest.as_ref(),
            });
            let keys = dedup::Keys::of(&KeyInput {
                from_addr: incoming.from.addr.as_deref(),
                date: incoming.date,
                subject: &incoming.subject,
                body: dedup::strip_footer(&incoming.body, &footers),
                attachments: &incoming.attachments,
                attachment_digest: incoming.attachment_digest.as_ref(),
            });
            if keys.key == stored_key {
                return Ok(Some(candidate.clone()));
            }
        }
        Ok(None)
    }

    /// Assigns threads to the batch's new messages and turns them into rows and, when there is
    /// an index, into index documents (what the index would read back from those rows).
    fn thread_and_fill(
        &mut self,
        store: &mut Store,
        batch: &mut Batch,
        new_messages: Vec<(Prepared, MessageId, ContentKey)>,
    ) -> Result<Vec<IndexDoc>> {
        let mut docs = Vec::new();
        if new_messages.is_empty() {
            return Ok(docs);
        }
        // In the order the store reads them back, so both strip footers alike.
        let mut footers = self.footers.clone();
        footers.sort_unstable();
        let inputs: Vec<thread::NewMessage> = new_messages
            .iter()
            .map(|(m, id, _)| {
                let (key, is_reply) = thread::subject_key(&m.parsed.subject);
                thread::NewMessage {
                    message_id: id.as_str().to_string(),
                    refs: m
                        .parsed
                        .refs
                        .iter()
                        .map(|r| r.as_str().to_string())
                        .collect(),
                    joins_by_subject: is_reply
                        && !m.parsed.has_ref_headers
                        && thread::subject_is_distinctive(&key),
                    subject_key: (!key.is_empty()).then_some(key),
                    date: m.parsed.date,
                }
            })
            .collect();
        let mut wanted: Vec<&str> = Vec::new();
        for input in &inputs {
            wanted.push(&input.message_id);
            wanted.extend(input.refs.iter().map(String::as_str));
        }
        wanted.sort_unstable();
        wanted.dedup();
        let known = store.thread_keys(&wanted)?;
        // Each message's subject key, as `inputs` carry it (`None` when empty).
        let subject_keys: Vec<Option<String>> =
            inputs.iter().map(|i| i.subject_key.clone()).collect();
        let mut wanted_subjects: Vec<&str> =
            subject_keys.iter().flatten().map(String::as_str).collect();
        wanted_subjects.sort_unstable();
        wanted_subjects.dedup();
        // What the subject fallback may reach from the batch's dates: messages up to 30 days
        // before and 1 day after (to join), orphans up to 1 day before and 30 days after (to
        // adopt).
        let dates = inputs.iter().filter_map(|i| i.date);
        let stored = match (dates.clone().min(), dates.max()) {
            (Some(first), Some(last)) => store.stored_subjects(
                &wanted_subjects,
                first.saturating_sub(thread::SUBJECT_WINDOW_BEFORE_SECS),
                last.saturating_add(thread::SUBJECT_WINDOW_BEFORE_SECS),
            )?,
            _ => thread::StoredSubjects::default(),
        };
        let next = store.next_thread_id()?;
        let assignment = thread::assign(&inputs, &known, &stored, next);
        batch.thread_keys = assignment.keys;
        batch.merges = assignment.merges;
        batch.orphans = assignment.orphans;
        batch.adopted = assignment.adopted;

        for (((m, id, key), thread_id), subject_key) in new_messages
            .into_iter()
            .zip(assignment.thread_of)
            .zip(subject_keys)
        {
            let p = m.parsed;
            let recipients: Vec<[Option<&str>; 2]> =
                p.to.iter()
                    .chain(&p.cc)
                    .map(|a: &Address| [a.name.as_deref(), a.addr.as_deref()])
                    .collect();
            let refs: Vec<&str> = p.refs.iter().map(MessageId::as_str).collect();
            if self.indexer.is_some() {
                docs.push(IndexDoc {
                    message_id: id.as_str().to_string(),
                    thread: thread_id.0.max(0) as u64,
                    date: p.date,
                    subject: p.subject.clone(),
                    body: dedup::strip_footer(&p.body, &footers).to_string(),
                    from_name: p.from.name.clone(),
                    from_addr: p.from.addr.clone(),
                    recipients: recipients
                        .iter()
                        .filter_map(|[name, addr]| match (name, addr) {
                            (Some(n), Some(a)) => Some(format!("{n} <{a}>")),
                            (Some(n), None) => Some(n.to_string()),
                            (None, Some(a)) => Some(a.to_string()),
                            (None, None) => None,
                        })
                        .filter(|s| !s.is_empty())
                        .collect(),
                    lists: self.list_name.iter().cloned().collect(),
                    has_attachment: !p.attachments.is_empty(),
                    has_patch: p.has_patch,
                });
            }
            batch.messages.push(store::NewMessage {
                id,
                header_id: p.message_id.clone(),
                key,
                thread: thread_id,
                date: p.date,
                subject_key,
                from_name: p.from.name.clone(),
                from_addr: p.from.addr.clone(),
                subject: p.subject.clone(),
                recipients_json: serde_json::to_string(&recipients)?,
                refs_json: serde_json::to_string(&refs)?,
                has_patch: p.has_patch,
                html_only: p.html_only,
                size: m.size,
                content: m.content,
                attachments: p.attachments,
                offset: m.offset,
            });
        }
        Ok(docs)
    }
}

/// Formats Unix seconds as RFC 3339 UTC (`2023-05-01T09:12:44Z`); a time outside years
/// 0–9999, which RFC 3339 cannot write, as the number itself.
pub fn rfc3339(ts: i64) -> String {
    let mut out = String::with_capacity(20);
    match utc_fields(ts) {
        Some([y, mo, d, h, mi, s]) => {
            push_digits(&mut out, y, 4);
            for (sep, v) in [('-', mo), ('-', d), ('T', h), (':', mi), (':', s)] {
                out.push(sep);
                push_digits(&mut out, v, 2);
            }
            out.push('Z');
        }
        None => out.push_str(&ts.to_string()),
    }
    out
}

/// Year, month, day, hour, minute and second (UTC) of Unix seconds, for years 0–9999.
/// Pages format thousands of dates; the `time` crate's formatter was a visible share of a
/// thread page.
pub fn utc_fields(ts: i64) -> Option<[u32; 6]> {
    let t = time::OffsetDateTime::from_unix_timestamp(ts).ok()?;
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
    Some([
        year,
        u32::from(u8::from(t.month())),
        u32::from(t.day()),
        u32::from(t.hour()),
        u32::from(t.minute()),
        u32::from(t.second()),
    ])
}

/// Appends `v` as exactly `width` decimal digits (zero-padded; `v` must fit).
pub fn push_digits(out: &mut String, v: u32, width: u32) {
    for i in (0..width).rev() {
        let digit = (v / 10u32.pow(i)) % 10;
        out.push(char::from(b'0' + digit as u8));
    }
}
