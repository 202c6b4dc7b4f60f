//! One pass over all matches that reads only fast fields (ranking keys, facet ordinals), then
//! facet totals through interned per-generation dictionaries, and ranking with a stable
//! message-id tie-break.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::{Context, Result};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::StrColumn;
use tantivy::index::SegmentId;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::compile::{FacetFilter, FacetTerm};
use super::schema::{col, PART_SEPARATOR, SET_SEPARATOR};
use super::table::{DocTable, SegmentIds, NONE};
use super::{FacetCount, Facets, Sort};

/// Sender facet length.
const TOP_SENDERS: usize = 10;

/// One matching document (or, when folding, a thread's best so far), as the collector saw it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    score: Score,
    date: i64,
    thread: u64,
    doc: DocId,
    /// Matching messages the entry stands for: 1, or a thread's count when folding.
    hits: u32,
}

/// Better entries first, before the message-id tie-break (the order of [`cmp_key`]).
fn cmp_entry(sort: Sort, a: &Entry, b: &Entry) -> Ordering {
    match sort {
        Sort::Relevance => b.score.total_cmp(&a.score).then(b.date.cmp(&a.date)),
        Sort::Date => b.date.cmp(&a.date),
    }
}

/// A segment's best `k` entries and every entry tied with the k-th: no entry that could reach
/// the page (whose order breaks ties by message id, across segments) is dropped. Entries are
/// buffered and cut back to the best `k` whenever the buffer fills, so memory and ranking
/// work follow the page size, not the number of matches.
struct Best {
    k: usize,
    sort: Sort,
    entries: Vec<Entry>,
    /// The k-th entry at the last cut: anything strictly worse can never be kept.
    pivot: Option<Entry>,
    /// Buffer length that triggers the next cut.
    cut_at: usize,
}

impl Best {
    fn new(k: usize, sort: Sort) -> Best {
        Best {
            k,
            sort,
            entries: Vec::new(),
            pivot: None,
            cut_at: k.saturating_mul(2).max(64),
        }
    }

    #[inline]
    fn offer(&mut self, e: Entry) {
        if self.k == 0 {
            return;
        }
        if let Some(p) = &self.pivot {
            if cmp_entry(self.sort, &e, p) == Ordering::Greater {
                return;
            }
        }
        self.entries.push(e);
        if self.entries.len() >= self.cut_at {
            self.cut();
        }
    }

    fn cut(&mut self) {
        let (k, sort) = (self.k, self.sort);
        if self.entries.len() <= k {
            return;
        }
        self.entries
            .select_nth_unstable_by(k - 1, |a, b| cmp_entry(sort, a, b));
        let pivot = self.entries[k - 1];
        let mut i = k;
        while i < self.entries.len() {
            if cmp_entry(sort, &self.entries[i], &pivot) == Ordering::Equal {
                i += 1;
            } else {
                self.entries.swap_remove(i);
            }
        }
        self.pivot = Some(pivot);
        // Many entries tied with the pivot stay; cut again only when the buffer has doubled,
        // so ties never make this quadratic.
        self.cut_at = self.cut_at.max(self.entries.len().saturating_mul(2));
    }
}

thread_local! {
    /// Slot tables of finished folds, kept for the next: a table as large as a segment's (or the
    /// archive's) threads, allocated afresh for every query, is page-faulted in every time.
    static SPARE_SLOTS: RefCell<Vec<Vec<u32>>> = const { RefCell::new(Vec::new()) };
}

/// A table of `n` slots, all [`NONE`].
fn slot_table(n: usize) -> Vec<u32> {
    let mut t = SPARE_SLOTS
        .with(|s| s.borrow_mut().pop())
        .unwrap_or_default();
    t.clear();
    t.resize(n, NONE);
    t
}

/// Keeps a table from [`slot_table`] for a later fold on this thread.
fn spare_slot_table(t: Vec<u32>) {
    SPARE_SLOTS.with(|s| {
        let mut spare = s.borrow_mut();
        if spare.len() < 4 {
            spare.push(t);
        }
    });
}

thread_local! {
    /// Entry and candidate buffers of finished searches, kept for the next on this thread. A
    /// fold's entries (one per thread met) and the candidates of a collapsed search grow to
    /// megabytes; allocated afresh for each query they came as newly mapped pages, zeroed by
    /// the kernel on first touch (3% of an uncached search page).
    static SPARE_ENTRIES: RefCell<Vec<Vec<Entry>>> = const { RefCell::new(Vec::new()) };
    static SPARE_CANDS: RefCell<Vec<Vec<Cand>>> = const { RefCell::new(Vec::new()) };
}

/// Buffers smaller than this are not worth keeping.
const SPARE_MIN: usize = 1024;

/// An empty buffer, from a finished search when there is one.
fn buffer<T>(spare: &'static std::thread::LocalKey<RefCell<Vec<Vec<T>>>>) -> Vec<T> {
    spare.with(|s| s.borrow_mut().pop()).unwrap_or_default()
}

/// Keeps `v` (emptied) for a later search on this thread; at most `keep` are kept.
fn spare<T>(
    spare: &'static std::thread::LocalKey<RefCell<Vec<Vec<T>>>>,
    mut v: Vec<T>,
    keep: usize,
) {
    if v.capacity() < SPARE_MIN {
        return;
    }
    v.clear();
    spare.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < keep {
            s.push(v);
        }
    });
}

/// Gives the candidates of a finished search back for reuse (see [`SPARE_CANDS`]).
pub(crate) fn spare_cands(cands: Vec<Cand>) {
    spare(&SPARE_CANDS, cands, 2);
}

/// Each thread's best match in one segment and its number of matches: a table from the
/// segment's dense thread numbers (see [`super::table::Row::thread_slot`]) into a list of entries
/// that grows with the threads met. While folding, an entry's `thread` is its slot; the
/// archive's thread numbers are looked up once per thread, in [`Folder::finish`].
struct Folder {
    sort: Sort,
    /// Per thread slot: index into `out`, or [`NONE`].
    at: Vec<u32>,
    out: Vec<Entry>,
}

impl Folder {
    fn new(sort: Sort, threads: usize) -> Folder {
        Folder {
            sort,
            at: slot_table(threads),
            out: buffer(&SPARE_ENTRIES),
        }
    }

    /// Counts `e` into the thread of slot `e.thread`; `ids` (the segment's message ids) settles
    /// ties.
    #[inline]
    fn offer(&mut self, e: Entry, ids: &SegmentIds) {
        let Some(at) = self.at.get_mut(e.thread as usize) else {
            return;
        };
        let Some(b) = self.out.get_mut(*at as usize) else {
            *at = self.out.len() as u32;
            self.out.push(e);
            return;
        };
        b.hits += 1;
        let better = match cmp_entry(self.sort, &e, b) {
            Ordering::Less => true,
            Ordering::Greater => false,
            Ordering::Equal => ids.cmp(e.doc, b.doc) == Ordering::Less,
        };
        if better {
            *b = Entry { hits: b.hits, ..e };
        }
    }

    /// The threads' entries, with the archive's thread numbers (`threads`, by slot).
    fn finish(self, threads: &[u64]) -> Vec<Entry> {
        let mut out = self.out;
        for e in &mut out {
            e.thread = threads.get(e.thread as usize).copied().unwrap_or(0);
        }
        spare_slot_table(self.at);
        out
    }
}

/// What one segment contributed.
pub(crate) struct SegmentFruit {
    segment: SegmentOrdinal,
    /// Live matches in the segment.
    pub(crate) count: u64,
    /// Each thread's best match when folding into threads, else the segment's best (see
    /// [`Best`]).
    entries: Vec<Entry>,
    /// Matches per ordinal of the facet column.
    facets: Vec<u32>,
    /// (year, matches) of the years with matches.
    years: Vec<(i64, u32)>,
}

impl Drop for SegmentFruit {
    fn drop(&mut self) {
        spare(&SPARE_ENTRIES, std::mem::take(&mut self.entries), 8);
    }
}

/// Reads each match's ranking keys and facet ordinal from the segment's [`DocTable`]; never
/// touches the document store or a term dictionary.
pub(crate) struct MatchCollector {
    /// Whether to rank by score (otherwise scores are not even computed).
    pub scoring: bool,
    /// Date of the newest message, for the recency factor.
    pub newest: i64,
    /// Whether hits are folded into threads.
    pub threads: bool,
    /// The order of the page.
    pub sort: Sort,
    /// Candidates the page needs (offset + limit). Unless folding into threads, each segment
    /// keeps only its best this many (and those tied with them).
    pub keep: usize,
    /// Tables by segment ordinal.
    pub tables: Vec<Arc<DocTable>>,
    /// Lifted `list:`/`tag:` filters (see `Compiled::lifted`), if any.
    pub accept: Option<Accept>,
}

/// Which facet ordinals of each segment pass a [`FacetFilter`], by segment ordinal, and
/// whether a document without a facet value passes (only if nothing is required).
pub(crate) struct Accept {
    segments: Vec<Arc<Vec<bool>>>,
    without_value: bool,
}

/// Where a segment's matches go.
enum Sink {
    Best(Best),
    Threads(Folder),
}

pub(crate) struct MatchSegmentCollector {
    table: Arc<DocTable>,
    /// This segment's table of [`Accept`], and its answer for documents without a value.
    accept: Option<(Arc<Vec<bool>>, bool)>,
    /// Each document's recency factor when scoring; empty otherwise.
    recency: Arc<Vec<f32>>,
    facets: Vec<u32>,
    years: Vec<u32>,
    segment: SegmentOrdinal,
    count: u64,
    sink: Sink,
}

impl Collector for MatchCollector {
    type Fruit = Vec<SegmentFruit>;
    type Child = MatchSegmentCollector;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<MatchSegmentCollector> {
        let table = match self.tables.get(segment as usize) {
            Some(t) => Arc::clone(t),
            None => Arc::new(DocTable::build(reader)?),
        };
        let sink = if self.threads {
            Sink::Threads(Folder::new(self.sort, table.threads.len()))
        } else {
            Sink::Best(Best::new(self.keep, self.sort))
        };
        let accept = self.accept.as_ref().map(|a| {
            let table = a
                .segments
                .get(segment as usize)
                .cloned()
                .unwrap_or_default();
            (table, a.without_value)
        });
        Ok(MatchSegmentCollector {
            accept,
            recency: if self.scoring {
                table.recency(self.newest)
            } else {
                Arc::default()
            },
            facets: vec![0; table.facet_terms],
            years: vec![0; table.year_count],
            segment,
            count: 0,
            sink,
            table,
        })
    }

    fn requires_scoring(&self) -> bool {
        self.scoring
    }

    fn merge_fruits(&self, fruits: Vec<SegmentFruit>) -> tantivy::Result<Vec<SegmentFruit>> {
        Ok(fruits)
    }
}

impl MatchSegmentCollector {
    // Always: the per-match loop of `collect_block` must not make a call per match.
    #[inline(always)]
    fn record(&mut self, doc: DocId, score: Score) {
        let d = doc as usize;
        let t = &*self.table;
        let Some(&row) = t.rows.get(d) else {
            return;
        };
        if let Some((accept, without_value)) = &self.accept {
            let pass = if row.facet == NONE {
                *without_value
            } else {
                accept.get(row.facet as usize).copied().unwrap_or(false)
            };
            if !pass {
                return;
            }
        }
        self.count += 1;
        if let Some(n) = row.year_slot().and_then(|y| self.years.get_mut(y)) {
            *n += 1;
        }
        if let Some(n) = self.facets.get_mut(row.facet as usize) {
            *n += 1;
        }
        // Empty unless scoring.
        let score = self.recency.get(d).map_or(0.0, |f| score * f);
        match &mut self.sink {
            Sink::Best(best) => best.offer(Entry {
                score,
                date: row.date(),
                thread: 0,
                doc,
                hits: 1,
            }),
            Sink::Threads(folder) => folder.offer(
                Entry {
                    score,
                    date: row.date(),
                    thread: u64::from(row.thread_slot),
                    doc,
                    hits: 1,
                },
                &t.ids,
            ),
        }
    }
}

impl SegmentCollector for MatchSegmentCollector {
    type Fruit = SegmentFruit;

    #[inline]
    fn collect(&mut self, doc: DocId, score: Score) {
        self.record(doc, score);
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        for &doc in docs {
            self.record(doc, 0.0);
        }
    }

    fn harvest(self) -> SegmentFruit {
        let entries = match self.sink {
            Sink::Best(best) => best.entries,
            Sink::Threads(folder) => folder.finish(&self.table.threads),
        };
        SegmentFruit {
            segment: self.segment,
            count: self.count,
            entries,
            years: self.table.years(&self.years),
            facets: self.facets,
        }
    }
}

/// Strings numbered in order of first sight.
#[derive(Default)]
struct Interner {
    names: Vec<String>,
    ids: HashMap<String, u32>,
}

impl Interner {
    fn id(&mut self, name: &[u8]) -> u32 {
        let name = String::from_utf8_lossy(name);
        if let Some(&id) = self.ids.get(name.as_ref()) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(name.to_string());
        self.ids.insert(name.into_owned(), id);
        id
    }

    /// The id of a sender value: values that differ only in case (a name written `Peter
    /// Dalgaard` in one message and `peter dalgaard` in another) share one, as `sender:`
    /// finds them together; it is shown as first seen (dictionary order puts capitals first).
    fn sender_id(&mut self, value: &[u8]) -> u32 {
        let value = String::from_utf8_lossy(value);
        let key = super::schema::sender_term(&value);
        if let Some(&id) = self.ids.get(&key) {
            return id;
        }
        let id = self.names.len() as u32;
        self.names.push(value.into_owned());
        self.ids.insert(key, id);
        id
    }
}

/// For one segment: term ordinal to the interned ids of its members, per facet field (a
/// sender value has one member, a list or tag set any number; the empty value none).
struct SegmentMaps {
    lists: Vec<Vec<u32>>,
    tags: Vec<Vec<u32>>,
    senders: Vec<Vec<u32>>,
}

#[derive(Default)]
struct Dicts {
    lists: Interner,
    tags: Interner,
    senders: Interner,
    segments: HashMap<SegmentId, Arc<SegmentMaps>>,
}

/// Splits one segment's facet dictionary into per-ordinal member ids of each facet.
fn segment_maps(column: Option<StrColumn>, d: &mut Dicts) -> Result<SegmentMaps> {
    let mut maps = SegmentMaps {
        lists: Vec::new(),
        tags: Vec::new(),
        senders: Vec::new(),
    };
    let Some(column) = column else {
        return Ok(maps);
    };
    let mut stream = column
        .dictionary()
        .stream()
        .context("cannot read a facet dictionary")?;
    let members = |part: &[u8], interner: &mut Interner| -> Vec<u32> {
        part.split(|&b| b == SET_SEPARATOR)
            .filter(|m| !m.is_empty())
            .map(|m| interner.id(m))
            .collect()
    };
    while stream.advance() {
        let mut parts = stream.key().splitn(3, |&b| b == PART_SEPARATOR);
        let (lists, tags, sender) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        maps.lists.push(members(lists, &mut d.lists));
        maps.tags.push(members(tags, &mut d.tags));
        maps.senders.push(if sender.is_empty() {
            Vec::new()
        } else {
            vec![d.senders.sender_id(sender)]
        });
    }
    Ok(maps)
}

/// Facet values of one index generation, interned. A segment's dictionaries are read once,
/// when a search first meets the segment (segments never change); every later search turns
/// its per-ordinal counts into totals with array lookups, without touching a term dictionary.
#[derive(Default)]
pub(crate) struct FacetDicts(RwLock<Dicts>);

impl FacetDicts {
    /// Which facet ordinals of each segment of `searcher` pass `filter`: those whose lists
    /// and tags hold every `all` and no `none`.
    pub(crate) fn accepting(
        &self,
        searcher: &tantivy::Searcher,
        filter: &FacetFilter,
    ) -> Result<Accept> {
        let maps = self.maps(searcher)?;
        let dicts = self.0.read().unwrap_or_else(PoisonError::into_inner);
        // (is a list, interned id); a value no segment holds is `None`.
        let id = |t: &FacetTerm| match t {
            FacetTerm::List(v) => dicts.lists.ids.get(v).map(|&i| (true, i)),
            FacetTerm::Tag(v) => dicts.tags.ids.get(v).map(|&i| (false, i)),
        };
        let all: Option<Vec<(bool, u32)>> = filter.all.iter().map(id).collect();
        let none: Vec<(bool, u32)> = filter.none.iter().filter_map(id).collect();
        let segments = maps
            .iter()
            .map(|m| {
                let n = m.lists.len();
                let Some(all) = &all else {
                    // A required value no document holds: nothing passes.
                    return Arc::new(vec![false; n]);
                };
                let has = |o: usize, &(is_list, i): &(bool, u32)| {
                    let set = if is_list { &m.lists } else { &m.tags };
                    set.get(o).is_some_and(|ids| ids.contains(&i))
                };
                Arc::new(
                    (0..n)
                        .map(|o| all.iter().all(|t| has(o, t)) && !none.iter().any(|t| has(o, t)))
                        .collect(),
                )
            })
            .collect();
        Ok(Accept {
            segments,
            without_value: filter.all.is_empty(),
        })
    }

    /// The maps of every segment of `searcher`, by segment ordinal.
    fn maps(&self, searcher: &tantivy::Searcher) -> Result<Vec<Arc<SegmentMaps>>> {
        let readers = searcher.segment_readers();
        {
            let dicts = self.0.read().unwrap_or_else(PoisonError::into_inner);
            let known: Option<Vec<_>> = readers
                .iter()
                .map(|r| dicts.segments.get(&r.segment_id()).cloned())
                .collect();
            if let Some(maps) = known {
                return Ok(maps);
            }
        }
        let mut dicts = self.0.write().unwrap_or_else(PoisonError::into_inner);
        // Forget merged-away segments.
        dicts
            .segments
            .retain(|id, _| readers.iter().any(|r| r.segment_id() == *id));
        let mut maps = Vec::with_capacity(readers.len());
        for r in readers {
            if let Some(m) = dicts.segments.get(&r.segment_id()) {
                maps.push(Arc::clone(m));
                continue;
            }
            let d = &mut *dicts;
            let m = Arc::new(segment_maps(r.fast_fields().str(col::FACETS)?, d)?);
            d.segments.insert(r.segment_id(), Arc::clone(&m));
            maps.push(m);
        }
        Ok(maps)
    }

    /// Facet totals over all matches.
    pub(crate) fn facets(
        &self,
        searcher: &tantivy::Searcher,
        fruits: &[SegmentFruit],
    ) -> Result<Facets> {
        let maps = self.maps(searcher)?;
        let dicts = self.0.read().unwrap_or_else(PoisonError::into_inner);
        // Totals by interned id; only the values returned are cloned, and for senders only the
        // top few are ordered.
        let total = |names: &Interner, map_of: fn(&SegmentMaps) -> &[Vec<u32>], limit: usize| {
            let mut totals = vec![0u64; names.names.len()];
            for f in fruits {
                let Some(map) = maps.get(f.segment as usize) else {
                    continue;
                };
                for (&n, ids) in f.facets.iter().zip(map_of(map)) {
                    if n == 0 {
                        continue;
                    }
                    for &id in ids {
                        if let Some(t) = totals.get_mut(id as usize) {
                            *t += u64::from(n);
                        }
                    }
                }
            }
            let mut found: Vec<(u64, usize)> = totals
                .into_iter()
                .enumerate()
                .filter(|&(_, n)| n > 0)
                .map(|(id, n)| (n, id))
                .collect();
            let name = |id: usize| names.names.get(id).map_or("", String::as_str);
            let order = |a: &(u64, usize), b: &(u64, usize)| {
                b.0.cmp(&a.0).then_with(|| name(a.1).cmp(name(b.1)))
            };
            if found.len() > limit {
                found.select_nth_unstable_by(limit - 1, order);
                found.truncate(limit);
            }
            found.sort_unstable_by(order);
            found
                .into_iter()
                .map(|(count, id)| FacetCount {
                    value: name(id).to_string(),
                    count,
                })
                .collect::<Vec<_>>()
        };
        let lists = total(&dicts.lists, |m| &m.lists, usize::MAX);
        let tags = total(&dicts.tags, |m| &m.tags, usize::MAX);
        let senders = total(&dicts.senders, |m| &m.senders, TOP_SENDERS);
        let mut years: BTreeMap<i64, u64> = BTreeMap::new();
        for f in fruits {
            for &(year, n) in &f.years {
                *years.entry(year).or_default() += u64::from(n);
            }
        }
        Ok(Facets {
            lists,
            years: years
                .into_iter()
                .rev()
                .map(|(y, count)| FacetCount {
                    value: y.to_string(),
                    count,
                })
                .collect(),
            tags,
            senders,
        })
    }
}

/// A ranking candidate: a message, or a thread's best message with its count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cand {
    pub score: Score,
    pub date: i64,
    pub thread: u64,
    pub segment: SegmentOrdinal,
    pub doc: DocId,
    /// Matching messages this candidate stands for (1 unless collapsed).
    pub hits: u32,
    /// First bytes of the message id, filled in only when ranking needs them.
    idkey: u64,
}

/// Better candidates first, before the message-id tie-break.
fn cmp_key(sort: Sort, a: &Cand, b: &Cand) -> Ordering {
    match sort {
        Sort::Relevance => b.score.total_cmp(&a.score).then(b.date.cmp(&a.date)),
        Sort::Date => b.date.cmp(&a.date),
    }
}

/// Message ids and threads of every segment (from their tables), for tie-breaks across
/// segments and for the page's hits.
pub(crate) struct Ids<'a> {
    tables: &'a [Arc<DocTable>],
}

impl<'a> Ids<'a> {
    /// `tables` by segment ordinal.
    pub(crate) fn new(tables: &'a [Arc<DocTable>]) -> Ids<'a> {
        Ids { tables }
    }

    /// The thread of a candidate.
    pub(crate) fn thread(&self, c: &Cand) -> u64 {
        self.tables
            .get(c.segment as usize)
            .map_or(0, |t| t.thread(c.doc))
    }

    fn key(&self, c: &Cand) -> u64 {
        self.tables
            .get(c.segment as usize)
            .map_or(0, |t| t.ids.key(c.doc))
    }

    fn full(&self, c: &Cand) -> Result<String> {
        match self.tables.get(c.segment as usize) {
            Some(t) => t.ids.full(c.doc),
            None => Ok(String::new()),
        }
    }

    /// Total order on message ids of two candidates.
    fn cmp(&self, a: &Cand, b: &Cand) -> Result<Ordering> {
        match self.key(a).cmp(&self.key(b)) {
            Ordering::Equal => Ok(self.full(a)?.cmp(&self.full(b)?)),
            other => Ok(other),
        }
    }
}

/// Candidates from every segment's matches, one per message.
pub(crate) fn messages(fruits: &[SegmentFruit]) -> Vec<Cand> {
    let n = fruits.iter().map(|f| f.entries.len()).sum();
    let mut cands = buffer(&SPARE_CANDS);
    cands.reserve(n);
    cands.extend(each_cand(fruits));
    cands
}

/// A fast hasher for thread ids (integers from the caller's threading, not chosen by users).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        let x = (n ^ (n >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        self.0 = x ^ (x >> 32);
    }
}

/// Every match as a candidate, segment by segment.
fn each_cand(fruits: &[SegmentFruit]) -> impl Iterator<Item = Cand> + '_ {
    fruits.iter().flat_map(|f| {
        f.entries.iter().map(|e| Cand {
            score: e.score,
            date: e.date,
            thread: e.thread,
            segment: f.segment,
            doc: e.doc,
            hits: e.hits,
            idkey: 0,
        })
    })
}

/// Counts `c` (a thread's best in one segment) into its thread's entry `b`, keeping the
/// better message.
fn fold_into(b: &mut Cand, c: Cand, sort: Sort, ids: &Ids<'_>) -> Result<()> {
    let hits = b.hits + c.hits;
    let better = match cmp_key(sort, &c, b) {
        Ordering::Less => true,
        Ordering::Greater => false,
        Ordering::Equal => ids.cmp(&c, b)? == Ordering::Less,
    };
    if better {
        *b = c;
    }
    b.hits = hits;
    Ok(())
}

/// Folds messages into threads: each thread's best message (by key, then message id) and how
/// many of its messages matched.
pub(crate) fn threads(fruits: &[SegmentFruit], sort: Sort, ids: &Ids<'_>) -> Result<Vec<Cand>> {
    // Each segment's entries are already one per thread.
    let mut with_entries = fruits.iter().filter(|f| !f.entries.is_empty());
    if let (Some(only), None) = (with_entries.next(), with_entries.next()) {
        return Ok(messages(std::slice::from_ref(only)));
    }
    let matches: usize = fruits.iter().map(|f| f.entries.len()).sum();
    let max_thread = each_cand(fruits).map(|c| c.thread).max().unwrap_or(0);
    // Thread numbers are small dense integers from the archive's threading, so a table indexed
    // by thread beats hashing every match, unless the numbers are sparse for this result set.
    let dense_limit = matches.saturating_mul(16).max(1 << 16);
    if usize::try_from(max_thread).is_ok_and(|m| m < dense_limit) {
        let mut slot = slot_table(max_thread as usize + 1);
        let mut out: Vec<Cand> = buffer(&SPARE_CANDS);
        out.reserve(matches);
        for c in each_cand(fruits) {
            let Some(s) = slot.get_mut(c.thread as usize) else {
                continue;
            };
            match out.get_mut(*s as usize) {
                Some(b) => fold_into(b, c, sort, ids)?,
                None => {
                    *s = out.len() as u32;
                    out.push(c);
                }
            }
        }
        spare_slot_table(slot);
        return Ok(out);
    }
    let mut best: HashMap<u64, Cand, BuildHasherDefault<IdHasher>> = HashMap::default();
    for c in each_cand(fruits) {
        match best.get_mut(&c.thread) {
            None => {
                best.insert(c.thread, c);
            }
            Some(b) => fold_into(b, c, sort, ids)?,
        }
    }
    Ok(best.into_values().collect())
}

/// The best `k` candidates in full order: key, then message id ascending. Only candidates
/// that can reach the top `k` are looked at closely: those better than the k-th, and those
/// tied with it.
pub(crate) fn top_k(
    mut cands: Vec<Cand>,
    k: usize,
    sort: Sort,
    ids: &Ids<'_>,
) -> Result<Vec<Cand>> {
    if k == 0 || cands.is_empty() {
        return Ok(Vec::new());
    }
    if cands.len() > k {
        cands.select_nth_unstable_by(k - 1, |a, b| cmp_key(sort, a, b));
        let pivot = cands[k - 1];
        let tied: Vec<Cand> = cands
            .drain(k..)
            .filter(|c| cmp_key(sort, c, &pivot) == Ordering::Equal)
            .collect();
        cands.extend(tied);
    }
    for c in &mut cands {
        c.idkey = ids.key(c);
    }
    cands.sort_by(|a, b| cmp_key(sort, a, b).then(a.idkey.cmp(&b.idkey)));
    // Rare: equal keys and equal id prefixes; order those runs by full id.
    let mut start = 0;
    while start < cands.len() {
        let mut end = start + 1;
        while end < cands.len()
            && cmp_key(sort, &cands[start], &cands[end]) == Ordering::Equal
            && cands[start].idkey == cands[end].idkey
        {
            end += 1;
        }
        if end - start > 1 {
            let mut run: Vec<(String, Cand)> = cands[start..end]
                .iter()
                .map(|c| Ok((ids.full(c)?, *c)))
                .collect::<Result<_>>()?;
            run.sort_by(|a, b| a.0.cmp(&b.0));
            for (slot, (_, c)) in cands[start..end].iter_mut().zip(run) {
                *slot = c;
            }
        }
        start = end;
    }
    cands.truncate(k);
    Ok(cands)
}
