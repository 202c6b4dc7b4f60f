//! Searching: compiling parsed queries to tantivy queries, one pass over the matches that
//! reads only fast fields (ranking keys and facet counts), then paging, snippets and reloads.

use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::{Context, Result};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{Column, StrColumn};
use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, DisjunctionMaxQuery, Occur, PhraseQuery,
    Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Term, Value as _};
use tantivy::snippet::SnippetGenerator;
use tantivy::tokenizer::{TextAnalyzer, TokenStream as _};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, ReloadPolicy, Score, SegmentOrdinal, SegmentReader,
    TantivyDocument,
};

use super::layout;
use super::query::{self, Build, Leaf, Notices, Scope};
use super::schema::{col, Fields};
use super::{FacetCount, Facets, Hit, SearchOptions, SearchResults, Sort};

/// Query-time weights. The subject says what a message is about; quoted text is someone
/// else's words, so it counts for less than the author's own.
const SUBJECT_BOOST: Score = 3.0;
const QUOTED_BOOST: Score = 0.3;
const RECIPIENT_BOOST: Score = 0.5;
/// Relevance is multiplied by `1 + RECENCY_WEIGHT * 2^(-age / half-life)`, age counted back
/// from the newest message in the index (not the wall clock, so results do not drift): a mild
/// push that mostly orders near-equal scores.
const RECENCY_WEIGHT: f32 = 0.1;
const RECENCY_HALF_LIFE_DAYS: f32 = 365.0;
/// Pages are capped at this many hits.
pub(crate) const MAX_LIMIT: usize = 1000;
/// Sender facet length.
const TOP_SENDERS: usize = 10;
/// Snippet length in characters.
const SNIPPET_CHARS: usize = 200;

/// A query plus the own-text terms worth highlighting (those of non-negated clauses).
pub(crate) struct Compiled {
    query: Box<dyn Query>,
    highlight: Vec<Term>,
}

/// Compiles parser leaves into tantivy queries.
struct Compiler {
    fields: Fields,
    stemmed: TextAnalyzer,
    plain: TextAnalyzer,
}

fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        out.push(stream.token().text.clone());
    }
    out
}

/// A word is one term; several (a phrase, or a word with inner punctuation such as
/// `jane.doe@example.org`) must appear in order.
fn words_query(field: Field, words: &[String]) -> Option<Box<dyn Query>> {
    let terms: Vec<Term> = words
        .iter()
        .map(|w| Term::from_field_text(field, w))
        .collect();
    match terms.len() {
        0 => None,
        1 => {
            let term = terms.into_iter().next()?;
            Some(Box::new(TermQuery::new(term, IndexRecordOption::WithFreqs)))
        }
        _ => Some(Box::new(PhraseQuery::new(terms))),
    }
}

/// A filter: matches like its query but adds nothing to the score, so `list:` or a date range
/// never reorders results.
fn filter(q: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(q, 0.0))
}

fn match_all() -> Box<dyn Query> {
    filter(Box::new(AllQuery))
}

impl Compiler {
    fn text(&mut self, scope: Scope, text: &str, notices: &mut Notices) -> Option<Compiled> {
        let f = self.fields;
        // (stemmed field, plain field, boost); the plain twin finds words the English stemmer
        // would mangle, and the max of the two keeps English words from counting twice.
        let groups: &[(Option<Field>, Field, Score)] = match scope {
            Scope::Any => &[
                (Some(f.subject), f.subject_plain, SUBJECT_BOOST),
                (Some(f.own), f.own_plain, 1.0),
                (Some(f.quoted), f.quoted_plain, QUOTED_BOOST),
                (None, f.from, 1.0),
                (None, f.to, RECIPIENT_BOOST),
            ],
            Scope::Subject => &[(Some(f.subject), f.subject_plain, SUBJECT_BOOST)],
            Scope::Body => &[
                (Some(f.own), f.own_plain, 1.0),
                (Some(f.quoted), f.quoted_plain, QUOTED_BOOST),
            ],
            Scope::From => &[(None, f.from, 1.0)],
            Scope::To => &[(None, f.to, 1.0)],
        };
        let stemmed = tokens(&mut self.stemmed, text);
        let plain = tokens(&mut self.plain, text);
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut highlight = Vec::new();
        for &(stem_field, plain_field, boost) in groups {
            let mut alternatives = Vec::new();
            if let Some(sf) = stem_field {
                if let Some(q) = words_query(sf, &stemmed) {
                    alternatives.push(q);
                }
                if sf == f.own {
                    highlight.extend(stemmed.iter().map(|w| Term::from_field_text(f.own, w)));
                }
            }
            if let Some(q) = words_query(plain_field, &plain) {
                alternatives.push(q);
            }
            let q: Box<dyn Query> = match alternatives.len() {
                0 => continue,
                1 => alternatives.remove(0),
                _ => Box::new(DisjunctionMaxQuery::new(alternatives)),
            };
            let q = if boost == 1.0 {
                q
            } else {
                Box::new(BoostQuery::new(q, boost))
            };
            should.push((Occur::Should, q));
        }
        if should.is_empty() {
            notices.push(format!("Ignored \"{text}\": it has no searchable words."));
            return None;
        }
        let query = if should.len() == 1 {
            should.remove(0).1
        } else {
            Box::new(BooleanQuery::new(should))
        };
        Some(Compiled { query, highlight })
    }
}

impl Build for Compiler {
    type Out = Compiled;

    fn leaf(&mut self, leaf: Leaf, notices: &mut Notices) -> Option<Compiled> {
        let f = self.fields;
        let exact = |field: Field, value: &str| -> Box<dyn Query> {
            filter(Box::new(TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            )))
        };
        let query: Box<dyn Query> = match leaf {
            Leaf::Text { scope, text, .. } => return self.text(scope, &text, notices),
            Leaf::List(l) => exact(f.lists, &l),
            Leaf::Tag(t) => exact(f.tags, &t),
            Leaf::MsgId(m) => exact(f.msgid, &m),
            Leaf::Thread(t) => filter(Box::new(TermQuery::new(
                Term::from_field_u64(f.thread, t),
                IndexRecordOption::Basic,
            ))),
            Leaf::HasAttachment | Leaf::HasPatch => {
                let field = if leaf == Leaf::HasPatch {
                    f.has_patch
                } else {
                    f.has_attachment
                };
                filter(Box::new(TermQuery::new(
                    Term::from_field_bool(field, true),
                    IndexRecordOption::Basic,
                )))
            }
            Leaf::Date { start, end } => {
                let lower = start.map_or(Bound::Unbounded, |s| {
                    Bound::Included(Term::from_field_i64(f.date, s))
                });
                let upper = end.map_or(Bound::Unbounded, |e| {
                    Bound::Excluded(Term::from_field_i64(f.date, e))
                });
                if start.is_none() && end.is_none() {
                    match_all()
                } else {
                    filter(Box::new(RangeQuery::new(lower, upper)))
                }
            }
        };
        Some(Compiled {
            query,
            highlight: Vec::new(),
        })
    }

    fn and(&mut self, clauses: Vec<(bool, Compiled)>) -> Compiled {
        let mut subs: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(clauses.len() + 1);
        let mut highlight = Vec::new();
        for (neg, c) in clauses {
            if neg {
                subs.push((Occur::MustNot, c.query));
            } else {
                highlight.extend(c.highlight);
                subs.push((Occur::Must, c.query));
            }
        }
        // tantivy matches nothing for a query made only of exclusions.
        if !subs.iter().any(|(o, _)| *o == Occur::Must) {
            subs.push((Occur::Must, match_all()));
        }
        Compiled {
            query: Box::new(BooleanQuery::new(subs)),
            highlight,
        }
    }

    fn or(&mut self, clauses: Vec<(bool, Compiled)>) -> Compiled {
        let mut subs: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(clauses.len());
        let mut highlight = Vec::new();
        for (neg, c) in clauses {
            if neg {
                let not: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
                    (Occur::Must, match_all()),
                    (Occur::MustNot, c.query),
                ]));
                subs.push((Occur::Should, not));
            } else {
                highlight.extend(c.highlight);
                subs.push((Occur::Should, c.query));
            }
        }
        Compiled {
            query: Box::new(BooleanQuery::new(subs)),
            highlight,
        }
    }
}

/// One matching document, as the collector saw it.
#[derive(Debug, Clone, Copy)]
struct Entry {
    score: Score,
    date: i64,
    thread: u64,
    doc: DocId,
}

/// Counts per term ordinal of one string column.
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

    #[inline]
    fn add_all(&mut self, doc: DocId) {
        if let Some(c) = &self.column {
            for ord in c.term_ords(doc) {
                if let Some(slot) = self.counts.get_mut(ord as usize) {
                    *slot += 1;
                }
            }
        }
    }

    #[inline]
    fn add_first(&mut self, doc: DocId) {
        if let Some(c) = &self.column {
            if let Some(ord) = c.ords().first(doc) {
                if let Some(slot) = self.counts.get_mut(ord as usize) {
                    *slot += 1;
                }
            }
        }
    }

    /// Adds the counts, keyed by term text, into `into`.
    fn merge_into(&self, into: &mut HashMap<String, u64>) -> Result<()> {
        let Some(column) = &self.column else {
            return Ok(());
        };
        let ords: Vec<u64> = (0u64..)
            .zip(&self.counts)
            .filter(|(_, &n)| n > 0)
            .map(|(ord, _)| ord)
            .collect();
        let mut counts = ords.iter().map(|&o| self.counts[o as usize]);
        column
            .dictionary()
            .sorted_ords_to_term_cb(&ords, |bytes| {
                let n = counts.next().unwrap_or(0);
                *into
                    .entry(String::from_utf8_lossy(bytes).into_owned())
                    .or_default() += u64::from(n);
            })
            .context("cannot read facet terms")?;
        Ok(())
    }
}

struct SegmentFruit {
    segment: SegmentOrdinal,
    entries: Vec<Entry>,
    msgid: Option<StrColumn>,
    lists: OrdCounts,
    tags: OrdCounts,
    senders: OrdCounts,
    year_min: i64,
    years: Vec<u32>,
}

/// Reads each match's ranking keys and facet values from fast fields; never touches the
/// document store.
struct MatchCollector {
    scoring: bool,
    newest: i64,
}

struct MatchSegmentCollector {
    scoring: bool,
    newest: i64,
    date: Option<Column<i64>>,
    thread: Option<Column<u64>>,
    year: Option<Column<i64>>,
    fruit: SegmentFruit,
}

fn recency_factor(newest: i64, date: i64) -> f32 {
    let age_days = (newest.saturating_sub(date)).max(0) as f32 / 86_400.0;
    1.0 + RECENCY_WEIGHT * (-age_days / RECENCY_HALF_LIFE_DAYS).exp2()
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
        let year: Option<Column<i64>> = ff.column_opt(col::YEAR)?;
        let (year_min, year_span) = match &year {
            // Years come from validated dates, so the span is at most a few thousand.
            Some(y) => (
                y.min_value(),
                (y.max_value() - y.min_value()).clamp(0, 20_000) + 1,
            ),
            None => (0, 0),
        };
        Ok(MatchSegmentCollector {
            scoring: self.scoring,
            newest: self.newest,
            date: ff.column_opt(col::DATE)?,
            thread: ff.column_opt(col::THREAD)?,
            year,
            fruit: SegmentFruit {
                segment,
                entries: Vec::new(),
                msgid: ff.str(col::MSGID)?,
                lists: OrdCounts::new(ff.str(col::LISTS)?),
                tags: OrdCounts::new(ff.str(col::TAGS)?),
                senders: OrdCounts::new(ff.str(col::SENDER)?),
                year_min,
                years: vec![0; year_span as usize],
            },
        })
    }

    fn requires_scoring(&self) -> bool {
        self.scoring
    }

    fn merge_fruits(&self, fruits: Vec<SegmentFruit>) -> tantivy::Result<Vec<SegmentFruit>> {
        Ok(fruits)
    }
}

impl SegmentCollector for MatchSegmentCollector {
    type Fruit = SegmentFruit;

    #[inline]
    fn collect(&mut self, doc: DocId, score: Score) {
        let date = self.date.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
        let thread = self.thread.as_ref().and_then(|c| c.first(doc)).unwrap_or(0);
        let score = if self.scoring {
            score * recency_factor(self.newest, date)
        } else {
            0.0
        };
        self.fruit.entries.push(Entry {
            score,
            date,
            thread,
            doc,
        });
        let f = &mut self.fruit;
        f.lists.add_all(doc);
        f.tags.add_all(doc);
        f.senders.add_first(doc);
        if let Some(year) = self.year.as_ref().and_then(|c| c.first(doc)) {
            if let Some(slot) = f.years.get_mut((year - f.year_min) as usize) {
                *slot += 1;
            }
        }
    }

    fn harvest(self) -> SegmentFruit {
        self.fruit
    }
}

/// A ranking candidate: a message, or a thread's best message with its count.
#[derive(Debug, Clone, Copy)]
struct Cand {
    score: Score,
    date: i64,
    thread: u64,
    segment: SegmentOrdinal,
    doc: DocId,
    hits: u32,
}

/// Better candidates first, before the message-id tie-break.
fn cmp_key(sort: Sort, a: &Cand, b: &Cand) -> Ordering {
    match sort {
        Sort::Relevance => b.score.total_cmp(&a.score).then(b.date.cmp(&a.date)),
        Sort::Date => b.date.cmp(&a.date),
    }
}

/// Looks message ids up in the per-segment fast-field dictionaries.
struct MsgIds<'a> {
    fruits: &'a [SegmentFruit],
}

impl MsgIds<'_> {
    fn column(&self, segment: SegmentOrdinal) -> Option<&StrColumn> {
        self.fruits
            .iter()
            .find(|f| f.segment == segment)
            .and_then(|f| f.msgid.as_ref())
    }

    fn one(&self, c: &Cand) -> Result<String> {
        let mut s = String::new();
        if let Some(col) = self.column(c.segment) {
            if let Some(ord) = col.ords().first(c.doc) {
                col.ord_to_str(ord, &mut s)
                    .context("cannot read a message id")?;
            }
        }
        Ok(s)
    }

    /// Ids of many candidates, one sequential dictionary pass per segment.
    fn many(&self, cands: &[Cand]) -> Result<Vec<String>> {
        let mut out = vec![String::new(); cands.len()];
        let mut by_segment: BTreeMap<SegmentOrdinal, Vec<(u64, usize)>> = BTreeMap::new();
        for (i, c) in cands.iter().enumerate() {
            if let Some(ord) = self
                .column(c.segment)
                .and_then(|col| col.ords().first(c.doc))
            {
                by_segment.entry(c.segment).or_default().push((ord, i));
            }
        }
        for (segment, mut pairs) in by_segment {
            let Some(col) = self.column(segment) else {
                continue;
            };
            pairs.sort_unstable();
            let ords: Vec<u64> = pairs.iter().map(|&(o, _)| o).collect();
            let mut slots = pairs.iter().map(|&(_, i)| i);
            col.dictionary()
                .sorted_ords_to_term_cb(&ords, |bytes| {
                    if let Some(i) = slots.next() {
                        out[i] = String::from_utf8_lossy(bytes).into_owned();
                    }
                })
                .context("cannot read message ids")?;
        }
        Ok(out)
    }
}

/// The best `k` candidates in full order (key, then message id ascending), with their ids.
/// Only candidates that can reach the top `k` have their ids read: those strictly better than
/// the k-th, and those tied with it.
fn top_k(
    mut cands: Vec<Cand>,
    k: usize,
    sort: Sort,
    ids: &MsgIds<'_>,
) -> Result<Vec<(Cand, String)>> {
    if k == 0 || cands.is_empty() {
        return Ok(Vec::new());
    }
    if cands.len() > k {
        cands.select_nth_unstable_by(k - 1, |a, b| cmp_key(sort, a, b));
        let pivot = cands[k - 1];
        let (head, tail) = cands.split_at_mut(k);
        let mut kept: Vec<Cand> = head.to_vec();
        kept.extend(
            tail.iter()
                .filter(|c| cmp_key(sort, c, &pivot) == Ordering::Equal),
        );
        cands = kept;
    }
    let names = ids.many(&cands)?;
    let mut ranked: Vec<(Cand, String)> = cands.into_iter().zip(names).collect();
    ranked.sort_by(|(a, an), (b, bn)| cmp_key(sort, a, b).then_with(|| an.cmp(bn)));
    ranked.truncate(k);
    Ok(ranked)
}

/// A fast hasher for thread ids (plain integers chosen by the caller, not by an attacker who
/// could aim at collisions across a search).
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(5) ^ u64::from(b)).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ (n >> 29)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        self.0 ^= self.0 >> 32;
    }
}

/// Folds messages into their threads: each thread's best message (by key, then message id)
/// and how many of its messages matched.
fn collapse(fruits: &[SegmentFruit], sort: Sort, ids: &MsgIds<'_>) -> Result<Vec<Cand>> {
    let mut threads: HashMap<u64, Cand, BuildHasherDefault<IdHasher>> = HashMap::default();
    for f in fruits {
        for e in &f.entries {
            let c = Cand {
                score: e.score,
                date: e.date,
                thread: e.thread,
                segment: f.segment,
                doc: e.doc,
                hits: 1,
            };
            match threads.get_mut(&e.thread) {
                None => {
                    threads.insert(e.thread, c);
                }
                Some(best) => {
                    let hits = best.hits + 1;
                    let better = match cmp_key(sort, &c, best) {
                        Ordering::Less => true,
                        Ordering::Greater => false,
                        // Rare: an exact tie on the key. Within one segment the doc order is
                        // not the id order, so read both ids.
                        Ordering::Equal => ids.one(&c)? < ids.one(best)?,
                    };
                    if better {
                        *best = c;
                    }
                    best.hits = hits;
                }
            }
        }
    }
    Ok(threads.into_values().collect())
}

fn facets(fruits: &[SegmentFruit]) -> Result<Facets> {
    let mut lists = HashMap::new();
    let mut tags = HashMap::new();
    let mut senders = HashMap::new();
    let mut years: BTreeMap<i64, u64> = BTreeMap::new();
    for f in fruits {
        f.lists.merge_into(&mut lists)?;
        f.tags.merge_into(&mut tags)?;
        f.senders.merge_into(&mut senders)?;
        for (year, &n) in (f.year_min..).zip(&f.years) {
            if n > 0 {
                *years.entry(year).or_default() += u64::from(n);
            }
        }
    }
    let by_count = |m: HashMap<String, u64>| {
        let mut v: Vec<FacetCount> = m
            .into_iter()
            .map(|(value, count)| FacetCount { value, count })
            .collect();
        v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        v
    };
    let mut senders = by_count(senders);
    senders.truncate(TOP_SENDERS);
    Ok(Facets {
        lists: by_count(lists),
        years: years
            .into_iter()
            .rev()
            .map(|(y, count)| FacetCount {
                value: y.to_string(),
                count,
            })
            .collect(),
        tags: by_count(tags),
        senders,
    })
}

/// Minimal HTML escaping for text shown outside tantivy's snippet (which escapes its own).
fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// The start of a text, cut at a word boundary, as escaped HTML: the snippet of a message whose
/// own text has no highlighted word.
fn leading_text(text: &str) -> String {
    let text = text.trim_start();
    let mut end = text.len();
    if let Some((i, _)) = text.char_indices().nth(SNIPPET_CHARS) {
        end = text[..i].rfind(char::is_whitespace).unwrap_or(i);
    }
    let mut out = escape_html(text[..end].trim_end());
    if end < text.len() {
        out.push('…');
    }
    out
}

/// One generation of the index, opened for reading.
struct Live {
    generation: String,
    reader: IndexReader,
    index: Index,
    fields: Fields,
}

impl Live {
    fn open(base: &Path) -> Result<Live> {
        let generation = layout::ensure_index(base)?;
        Self::open_generation(base, generation)
    }

    fn open_generation(base: &Path, generation: String) -> Result<Live> {
        let (index, fields) = layout::open_index(base, &generation)?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()
            .context("cannot open an index reader")?;
        Ok(Live {
            generation,
            reader,
            index,
            fields,
        })
    }

    fn compiler(&self) -> Result<Compiler> {
        let analyzer = |field| {
            self.index
                .tokenizer_for_field(field)
                .context("the index lacks a tokenizer")
        };
        Ok(Compiler {
            fields: self.fields,
            stemmed: analyzer(self.fields.own)?,
            plain: analyzer(self.fields.own_plain)?,
        })
    }
}

/// Read-only access to the index. Sees new commits within about a second (or at once after
/// [`Searcher::refresh`]) and follows a rebuild to the new generation on the next search.
/// Cheap to share between threads.
pub struct Searcher {
    base: PathBuf,
    live: RwLock<Arc<Live>>,
}

impl Searcher {
    /// Opens the index under `<base>/v1/`, creating an empty one if there is none yet.
    pub fn open(base: &Path) -> Result<Self> {
        let live = Live::open(base)?;
        Ok(Searcher {
            base: base.to_path_buf(),
            live: RwLock::new(Arc::new(live)),
        })
    }

    /// Picks up commits and rebuilds right away instead of within the reload delay.
    pub fn refresh(&self) -> Result<()> {
        let mut notices = Vec::new();
        let live = self.current(&mut notices)?;
        if let Some(n) = notices.pop() {
            anyhow::bail!("{n}");
        }
        live.reader
            .reload()
            .context("cannot reload the index reader")
    }

    /// The live generation, switching to a new one if a rebuild published it. A failed switch
    /// keeps the old generation answering and says so in a notice.
    fn current(&self, notices: &mut Vec<String>) -> Result<Arc<Live>> {
        let live = Arc::clone(&self.live.read().unwrap_or_else(PoisonError::into_inner));
        let pointed = match layout::read_current(&self.base) {
            Ok(Some(g)) => g,
            Ok(None) => return Ok(live),
            Err(e) => {
                notices.push(format!(
                    "The search index could not be checked for updates: {e:#}"
                ));
                return Ok(live);
            }
        };
        if pointed == live.generation {
            return Ok(live);
        }
        match Live::open_generation(&self.base, pointed) {
            Ok(new) => {
                let new = Arc::new(new);
                let mut slot = self.live.write().unwrap_or_else(PoisonError::into_inner);
                *slot = Arc::clone(&new);
                Ok(new)
            }
            Err(e) => {
                notices.push(format!(
                    "The rebuilt search index could not be opened yet: {e:#}"
                ));
                Ok(live)
            }
        }
    }

    /// Runs a query (see the module docs for the language). Never fails on query syntax: what
    /// could not be understood is skipped and explained in `notices`.
    pub fn search(&self, query: &str, opts: &SearchOptions) -> Result<SearchResults> {
        let mut notices = Vec::new();
        let live = self.current(&mut notices)?;
        let searcher = live.reader.searcher();
        let mut compiler = live.compiler()?;
        let parsed = query::parse(query, &mut compiler);
        notices.extend(parsed.notices);
        let (compiled, sort) = match parsed.query {
            Some(c) => (c, opts.sort),
            // Nothing to rank by: everything, newest first.
            None => (
                Compiled {
                    query: match_all(),
                    highlight: Vec::new(),
                },
                Sort::Date,
            ),
        };

        let newest = searcher
            .segment_readers()
            .iter()
            .filter_map(|r| r.fast_fields().column_opt::<i64>(col::DATE).ok().flatten())
            .map(|c| c.max_value())
            .max()
            .unwrap_or(0);
        let collector = MatchCollector {
            scoring: sort == Sort::Relevance,
            newest,
        };
        let fruits = searcher
            .search(&*compiled.query, &collector)
            .context("search failed")?;

        let ids = MsgIds { fruits: &fruits };
        let cands: Vec<Cand> = if opts.collapse_threads {
            collapse(&fruits, sort, &ids)?
        } else {
            fruits
                .iter()
                .flat_map(|f| {
                    f.entries.iter().map(|e| Cand {
                        score: e.score,
                        date: e.date,
                        thread: e.thread,
                        segment: f.segment,
                        doc: e.doc,
                        hits: 1,
                    })
                })
                .collect()
        };
        let total = cands.len() as u64;
        let limit = opts.limit.min(MAX_LIMIT);
        let ranked = top_k(cands, opts.offset.saturating_add(limit), sort, &ids)?;

        let page: Vec<(Cand, String)> = ranked.into_iter().skip(opts.offset).collect();
        let mut hits = Vec::with_capacity(page.len());
        if !page.is_empty() {
            let snippets = self.snippet_generator(&searcher, &live, &compiled.highlight)?;
            for (c, message_id) in page {
                let doc: TantivyDocument = searcher
                    .doc(DocAddress::new(c.segment, c.doc))
                    .context("cannot read a stored message")?;
                let text = doc
                    .get_first(live.fields.own_stored)
                    .and_then(|v| v.as_str())
                    .unwrap_or("");
                let snippet = snippets.snippet(text);
                let snippet = if snippet.is_empty() {
                    leading_text(text)
                } else {
                    snippet.to_html()
                };
                hits.push(Hit {
                    message_id,
                    score: c.score,
                    thread: c.thread,
                    date: c.date,
                    thread_hits: c.hits,
                    snippet,
                });
            }
        }
        Ok(SearchResults {
            total,
            hits,
            facets: facets(&fruits)?,
            notices,
            sort,
        })
    }

    fn snippet_generator(
        &self,
        searcher: &tantivy::Searcher,
        live: &Live,
        highlight: &[Term],
    ) -> Result<SnippetGenerator> {
        let mut terms = BTreeMap::new();
        for term in highlight {
            let value = term.value();
            let Some(text) = value.as_str() else {
                continue;
            };
            let freq = searcher
                .doc_freq(term)
                .context("cannot read term statistics")?;
            if freq > 0 {
                // Rarer words make the better snippet, as in tantivy's own generator.
                terms.insert(text.to_string(), 1.0 / (1.0 + freq as Score));
            }
        }
        let analyzer = live
            .index
            .tokenizer_for_field(live.fields.own)
            .context("the index lacks a tokenizer")?;
        Ok(SnippetGenerator::new(
            terms,
            analyzer,
            live.fields.own_stored,
            SNIPPET_CHARS,
        ))
    }
}
