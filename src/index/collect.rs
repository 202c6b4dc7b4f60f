//! One pass over all matches that reads only fast fields (ranking keys, facet ordinals), then
//! facet totals through interned per-generation dictionaries, and ranking with a stable
//! message-id tie-break.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::{Context, Result};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::index::SegmentId;
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::schema::{col, year_of, PART_SEPARATOR, SET_SEPARATOR};
use super::{FacetCount, Facets, Sort};

/// Relevance is multiplied by `1 + RECENCY_WEIGHT * 2^(-age / half-life)`, age counted back
/// from the newest message in the index (not the wall clock, so results do not drift): a mild
/// push that mostly orders near-equal scores.
const RECENCY_WEIGHT: f32 = 0.1;
const RECENCY_HALF_LIFE_DAYS: f32 = 365.0;
/// Sender facet length.
const TOP_SENDERS: usize = 10;

fn recency_factor(newest: i64, date: i64) -> f32 {
    let age_days = (newest.saturating_sub(date)).max(0) as f32 / 86_400.0;
    1.0 + RECENCY_WEIGHT * (-age_days / RECENCY_HALF_LIFE_DAYS).exp2()
}

/// One matching document, as the collector saw it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    score: Score,
    date: i64,
    thread: u64,
    doc: DocId,
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

    /// Whether the k-th entry kept so far scores strictly more than `score` (relevance order),
    /// so an entry scoring at most `score` can never be kept.
    #[inline]
    fn beats(&self, score: Score) -> bool {
        self.pivot.as_ref().is_some_and(|p| score < p.score)
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

/// The calendar years (UTC) a segment's dates span, so a match's year is a search in a short
/// table instead of a calendar conversion or a column read.
struct YearTable {
    first: i64,
    /// Start of each year after the first, in Unix seconds.
    starts: Vec<i64>,
}

impl YearTable {
    fn new(date: Option<&Column<i64>>) -> YearTable {
        let Some(c) = date else {
            return YearTable {
                first: 0,
                starts: Vec::new(),
            };
        };
        let (first, last) = (year_of(c.min_value()), year_of(c.max_value()));
        // Years come from validated dates, so the span is at most a few thousand.
        let starts = (first + 1..=last.min(first + 20_000))
            .filter_map(year_start)
            .collect();
        YearTable { first, starts }
    }

    /// Number of year slots.
    fn len(&self) -> usize {
        self.starts.len() + 1
    }

    fn slot(&self, date: i64) -> usize {
        self.starts.partition_point(|&s| s <= date)
    }

    /// Counts by slot to (year, count), leaving out empty years.
    fn years(&self, counts: Vec<u32>) -> Vec<(i64, u32)> {
        (self.first..).zip(counts).filter(|&(_, n)| n > 0).collect()
    }
}

fn year_start(year: i64) -> Option<i64> {
    let y = i32::try_from(year).ok()?;
    let date = time::Date::from_calendar_date(y, time::Month::January, 1).ok()?;
    Some(date.midnight().assume_utc().unix_timestamp())
}

/// Counts per term ordinal of one single-valued string fast field in one segment.
struct OrdCounts {
    column: Option<StrColumn>,
    counts: Vec<u32>,
}

impl OrdCounts {
    fn new(column: Option<StrColumn>) -> Self {
        let n = column.as_ref().map_or(0, |c| c.num_terms());
        OrdCounts {
            column,
            counts: vec![0; n],
        }
    }

    /// Counts the values of a batch of documents.
    fn add(&mut self, docs: &[DocId], buf: &mut [Option<u64>; BATCH]) {
        let Some(c) = &self.column else {
            return;
        };
        let buf = &mut buf[..docs.len()];
        c.ords().first_vals(docs, buf);
        for ord in buf.iter().flatten() {
            if let Some(slot) = self.counts.get_mut(*ord as usize) {
                *slot += 1;
            }
        }
    }
}

/// Documents are handled in batches: one call per column and batch instead of one per
/// document keeps the per-match cost low on large result sets.
const BATCH: usize = 64;

/// What one segment contributed.
pub(crate) struct SegmentFruit {
    segment: SegmentOrdinal,
    /// Live matches in the segment.
    pub(crate) count: u64,
    /// Every match when folding into threads, else the segment's best (see [`Best`]).
    entries: Vec<Entry>,
    /// Matches per ordinal of the facet column.
    facets: Vec<u32>,
    /// (year, matches) of the years with matches.
    years: Vec<(i64, u32)>,
}

/// Reads each match's ranking keys and facet ordinals from fast fields; never touches the
/// document store or a term dictionary.
pub(crate) struct MatchCollector {
    /// Whether to rank by score (otherwise scores are not even computed).
    pub scoring: bool,
    /// Date of the newest message, for the recency factor.
    pub newest: i64,
    /// Whether hits are folded into threads (otherwise the thread column is read only for
    /// the page).
    pub threads: bool,
    /// The order of the page.
    pub sort: Sort,
    /// Candidates the page needs (offset + limit). Unless folding into threads, which needs
    /// every match, each segment keeps only its best this many (and those tied with them).
    pub keep: usize,
}

pub(crate) struct MatchSegmentCollector {
    scoring: bool,
    newest: i64,
    /// The largest recency factor of the segment (that of its newest message).
    max_factor: f32,
    date: Option<Column<i64>>,
    thread: Option<Column<u64>>,
    years_of: YearTable,
    facets: OrdCounts,
    years: Vec<u32>,
    segment: SegmentOrdinal,
    count: u64,
    /// Every entry when folding into threads.
    entries: Vec<Entry>,
    /// The best entries otherwise.
    best: Option<Best>,
    pending_docs: Vec<DocId>,
    pending_scores: Vec<Score>,
}

impl Collector for MatchCollector {
    type Fruit = Vec<SegmentFruit>;
    type Child = MatchSegmentCollector;

    fn for_segment(
        &self,
        segment: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<MatchSegmentCollector> {
        let ff = reader.fast_fields();
        let date: Option<Column<i64>> = ff.column_opt(col::DATE)?;
        let years_of = YearTable::new(date.as_ref());
        Ok(MatchSegmentCollector {
            scoring: self.scoring,
            newest: self.newest,
            max_factor: recency_factor(self.newest, date.as_ref().map_or(0, |d| d.max_value())),
            thread: if self.threads {
                ff.column_opt(col::THREAD)?
            } else {
                None
            },
            date,
            years: vec![0; years_of.len()],
            years_of,
            facets: OrdCounts::new(ff.str(col::FACETS)?),
            segment,
            count: 0,
            entries: Vec::new(),
            best: (!self.threads).then(|| Best::new(self.keep, self.sort)),
            pending_docs: Vec::with_capacity(BATCH),
            pending_scores: Vec::with_capacity(BATCH),
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
    /// Records a batch of at most `BATCH` documents; `scores` is empty when not scoring.
    fn flush_batch(&mut self, docs: &[DocId], scores: &[Score]) {
        let n = docs.len();
        self.count += n as u64;
        let mut dates = [None; BATCH];
        let mut threads = [None; BATCH];
        if let Some(c) = &self.date {
            c.first_vals(docs, &mut dates[..n]);
        }
        if let Some(c) = &self.thread {
            c.first_vals(docs, &mut threads[..n]);
        }
        for i in 0..n {
            if let Some(date) = dates[i] {
                if let Some(slot) = self.years.get_mut(self.years_of.slot(date)) {
                    *slot += 1;
                }
            }
            let score = match scores.get(i) {
                Some(&s) if self.scoring => {
                    // Most matches cannot reach the page even with the segment's largest
                    // recency factor: skip computing their own.
                    if self
                        .best
                        .as_ref()
                        .is_some_and(|b| b.beats(s * self.max_factor))
                    {
                        continue;
                    }
                    s * recency_factor(self.newest, dates[i].unwrap_or(0))
                }
                _ => 0.0,
            };
            let e = Entry {
                score,
                date: dates[i].unwrap_or(0),
                thread: threads[i].unwrap_or(0),
                doc: docs[i],
            };
            match &mut self.best {
                Some(best) => best.offer(e),
                None => self.entries.push(e),
            }
        }
        let mut ords = [None; BATCH];
        self.facets.add(docs, &mut ords);
    }

    fn flush_pending(&mut self) {
        let docs = std::mem::take(&mut self.pending_docs);
        let scores = std::mem::take(&mut self.pending_scores);
        self.flush_batch(&docs, &scores);
        self.pending_docs = docs;
        self.pending_docs.clear();
        self.pending_scores = scores;
        self.pending_scores.clear();
    }
}

impl SegmentCollector for MatchSegmentCollector {
    type Fruit = SegmentFruit;

    #[inline]
    fn collect(&mut self, doc: DocId, score: Score) {
        self.pending_docs.push(doc);
        self.pending_scores.push(score);
        if self.pending_docs.len() == BATCH {
            self.flush_pending();
        }
    }

    fn collect_block(&mut self, docs: &[DocId]) {
        for chunk in docs.chunks(BATCH) {
            self.flush_batch(chunk, &[]);
        }
    }

    fn harvest(mut self) -> SegmentFruit {
        if !self.pending_docs.is_empty() {
            self.flush_pending();
        }
        SegmentFruit {
            segment: self.segment,
            count: self.count,
            entries: match self.best {
                Some(best) => best.entries,
                None => self.entries,
            },
            facets: self.facets.counts,
            years: self.years_of.years(self.years),
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
            vec![d.senders.id(sender)]
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

/// Message ids for tie-breaks: the 8-byte prefix column orders almost every pair, and the
/// full id (from the string column's dictionary) settles the rest.
pub(crate) struct Ids {
    columns: Vec<(Option<Column<u64>>, Option<StrColumn>)>,
    /// Thread columns, for the page's hits when they were not read for every match.
    threads: Vec<Option<Column<u64>>>,
}

impl Ids {
    pub(crate) fn new(searcher: &tantivy::Searcher) -> Result<Ids> {
        let columns = searcher
            .segment_readers()
            .iter()
            .map(|r| {
                let ff = r.fast_fields();
                Ok((ff.column_opt(col::MSGID_KEY)?, ff.str(col::MSGID)?))
            })
            .collect::<tantivy::Result<_>>()
            .context("cannot open the message id columns")?;
        let threads = searcher
            .segment_readers()
            .iter()
            .map(|r| r.fast_fields().column_opt(col::THREAD))
            .collect::<tantivy::Result<_>>()
            .context("cannot open the thread columns")?;
        Ok(Ids { columns, threads })
    }

    /// The thread of a candidate.
    pub(crate) fn thread(&self, c: &Cand) -> u64 {
        self.threads
            .get(c.segment as usize)
            .and_then(Option::as_ref)
            .and_then(|t| t.first(c.doc))
            .unwrap_or(0)
    }

    fn key(&self, c: &Cand) -> u64 {
        self.columns
            .get(c.segment as usize)
            .and_then(|(k, _)| k.as_ref())
            .and_then(|k| k.first(c.doc))
            .unwrap_or(0)
    }

    fn full(&self, c: &Cand) -> Result<String> {
        let mut s = String::new();
        if let Some((_, Some(col))) = self.columns.get(c.segment as usize) {
            if let Some(ord) = col.ords().first(c.doc) {
                col.ord_to_str(ord, &mut s)
                    .context("cannot read a message id")?;
            }
        }
        Ok(s)
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
    let mut cands = Vec::with_capacity(n);
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
            hits: 1,
            idkey: 0,
        })
    })
}

/// Counts `c` into its thread's entry `b`, keeping the better message.
fn fold_into(b: &mut Cand, c: Cand, sort: Sort, ids: &Ids) -> Result<()> {
    let hits = b.hits + 1;
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
pub(crate) fn threads(fruits: &[SegmentFruit], sort: Sort, ids: &Ids) -> Result<Vec<Cand>> {
    let matches: usize = fruits.iter().map(|f| f.entries.len()).sum();
    let max_thread = each_cand(fruits).map(|c| c.thread).max().unwrap_or(0);
    // Thread numbers are small dense integers from the archive's threading, so a table indexed
    // by thread beats hashing every match, unless the numbers are sparse for this result set.
    let dense_limit = matches.saturating_mul(16).max(1 << 16);
    if usize::try_from(max_thread).is_ok_and(|m| m < dense_limit) {
        let mut slot = vec![u32::MAX; max_thread as usize + 1];
        let mut out: Vec<Cand> = Vec::new();
        for c in each_cand(fruits) {
            let s = &mut slot[c.thread as usize];
            match out.get_mut(*s as usize) {
                Some(b) => fold_into(b, c, sort, ids)?,
                None => {
                    *s = out.len() as u32;
                    out.push(c);
                }
            }
        }
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
pub(crate) fn top_k(mut cands: Vec<Cand>, k: usize, sort: Sort, ids: &Ids) -> Result<Vec<Cand>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recency_is_mild_and_monotonic() {
        let now = 1_700_000_000;
        let day = 86_400;
        assert!((recency_factor(now, now) - 1.1).abs() < 1e-6);
        assert!((recency_factor(now, now - 365 * day) - 1.05).abs() < 1e-3);
        assert!(recency_factor(now, now - 10 * day) > recency_factor(now, now - 20 * day));
        assert!(recency_factor(now, 0) >= 1.0);
        // Messages "from the future" count as newest, not more.
        assert_eq!(recency_factor(now, now + day), recency_factor(now, now));
    }
}
