//! Searching: parse and compile the query, count all matches in one fast-field pass that
//! keeps each segment's best candidates, rank and page them, cut snippets for the page, and
//! follow commits and rebuilds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use anyhow::{Context, Result};
use tantivy::schema::{Term, Value as _};
use tantivy::tokenizer::TextAnalyzer;
use tantivy::{DocAddress, Index, IndexReader, ReloadPolicy, Score, TantivyDocument};

use super::analysis;
use super::collect::{self, FacetDicts, Ids, MatchCollector};
use super::compile::{match_all, Compiled, Compiler, ThreadLookup};
use super::layout;
use super::query;
use super::schema::Fields;
use super::table::{DocTable, Tables};
use super::{Hit, SearchOptions, SearchResults, Sort};

/// Pages are capped at this many hits.
pub(crate) const MAX_LIMIT: usize = 1000;
/// Snippet length in characters.
const SNIPPET_CHARS: usize = 200;

/// The start of a text, cut at a word boundary, as escaped HTML: the snippet of a message whose
/// own text has no highlighted word.
fn leading_text(text: &str) -> String {
    let text = text.trim_start();
    let mut end = text.len();
    if let Some((i, _)) = text.char_indices().nth(SNIPPET_CHARS) {
        end = text[..i].rfind(char::is_whitespace).unwrap_or(i);
    }
    let mut out = crate::html::escape(text[..end].trim_end());
    if end < text.len() {
        out.push('…');
    }
    out
}

/// How much text around the first likely match is analysed for a snippet.
const WINDOW_BEFORE: usize = 300;
const WINDOW_BYTES: usize = 2500;
/// Longest stem prefix looked for when placing the window.
const MAX_PREFIX_BYTES: usize = 5;

/// Cuts snippets. Analysing a whole message for each hit is the dearest part of a search, so
/// only a window around the first place where a highlighted word may start is analysed, and
/// nothing at all when no such place exists.
///
/// The fragment is chosen and marked up exactly as tantivy's `SnippetGenerator` does (see
/// [`best_fragment`]), with one analyzer for the whole page instead of a clone per hit and
/// without a lowercased copy of every token.
struct Snippets {
    analyzer: TextAnalyzer,
    /// Highlighted stems and their weights.
    terms: Vec<(String, Score)>,
    /// Lowercase ASCII prefixes of the highlighted stems, or `None` when a prefix cannot be
    /// trusted to start every matching word (short or non-ASCII stems): then the whole text is
    /// analysed.
    prefixes: Option<Vec<Vec<u8>>>,
}

/// The best fragment of a text: byte range, score and highlighted ranges (absolute).
struct Fragment {
    start: usize,
    stop: usize,
    score: Score,
    highlighted: Vec<std::ops::Range<usize>>,
}

/// The weight of a token if it is a highlighted term. As tantivy's generator, it compares the
/// token lowercased; tokens are lowercase already, so an ASCII token without capitals is
/// compared as it is (lowercasing would give the same text).
fn term_weight(terms: &[(String, Score)], token: &str) -> Option<Score> {
    let find = |t: &str| terms.iter().find(|(k, _)| k == t).map(|&(_, w)| w);
    if token
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        find(token)
    } else {
        find(&token.to_lowercase())
    }
}

/// tantivy's `search_fragments` and `select_best_fragment_combination` in one pass: tokens are
/// gathered into fragments of at most `max_bytes` (tantivy counts bytes, though it calls them
/// characters); a fragment with a highlighted term is a candidate, and the highest score wins,
/// the earliest among equals.
fn best_fragment(
    analyzer: &mut TextAnalyzer,
    text: &str,
    terms: &[(String, Score)],
    max_bytes: usize,
) -> Option<Fragment> {
    let mut best: Option<Fragment> = None;
    let mut cur = Fragment {
        start: 0,
        stop: 0,
        score: 0.0,
        highlighted: Vec::new(),
    };
    let offer = |best: &mut Option<Fragment>, cur: &mut Fragment, next_start: usize| {
        let fresh = Fragment {
            start: next_start,
            stop: next_start,
            score: 0.0,
            highlighted: Vec::new(),
        };
        let done = std::mem::replace(cur, fresh);
        if done.score > 0.0 && best.as_ref().is_none_or(|b| done.score > b.score) {
            *best = Some(done);
        }
    };
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        let token = stream.token();
        if token.offset_to - cur.start > max_bytes {
            offer(&mut best, &mut cur, token.offset_from);
        }
        cur.stop = token.offset_to;
        if let Some(w) = term_weight(terms, &token.text) {
            cur.score += w;
            cur.highlighted.push(token.offset_from..token.offset_to);
        }
    }
    offer(&mut best, &mut cur, 0);
    best
}

/// Escapes as tantivy's snippets do (`htmlescape::encode_minimal`: `'` as `&#x27;`).
fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("&quot;"),
            '&' => out.push_str("&amp;"),
            '\'' => out.push_str("&#x27;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
}

/// A fragment as HTML, its highlighted words in `<b>`: tantivy's `Snippet::to_html`.
fn fragment_html(text: &str, f: &Fragment) -> String {
    let fragment = &text[f.start..f.stop];
    let relative: Vec<std::ops::Range<usize>> = f
        .highlighted
        .iter()
        .map(|r| r.start - f.start..r.end - f.start)
        .collect();
    let mut html = String::with_capacity(fragment.len() + 32);
    let mut from = 0;
    for item in tantivy::snippet::collapse_overlapped_ranges(&relative) {
        push_escaped(&mut html, &fragment[from..item.start]);
        html.push_str("<b>");
        push_escaped(&mut html, &fragment[item.clone()]);
        html.push_str("</b>");
        from = item.end;
    }
    push_escaped(&mut html, &fragment[from..]);
    html
}

/// English stemming changes at most the last letter of what it keeps of a word (`happy` →
/// `happi`, `hoping` → `hope`), so a word stemming to a stem of four letters or more starts
/// with the stem less its last letter. Shorter stems (`die` from `dying`) and non-ASCII ones
/// (whose upper case an ASCII search would miss) give no usable prefix.
fn window_prefixes<'a>(stems: impl Iterator<Item = &'a String>) -> Option<Vec<Vec<u8>>> {
    let mut prefixes = Vec::new();
    for stem in stems {
        if stem.len() < 4 || !stem.is_ascii() {
            return None;
        }
        let len = (stem.len() - 1).min(MAX_PREFIX_BYTES);
        prefixes.push(stem.as_bytes()[..len].to_vec());
    }
    Some(prefixes)
}

/// First position where a word starts with `prefix` (lowercase ASCII), ignoring ASCII case.
fn find_word_start(hay: &[u8], prefix: &[u8]) -> Option<usize> {
    if prefix.is_empty() || hay.len() < prefix.len() {
        return None;
    }
    (0..=hay.len() - prefix.len()).find(|&i| {
        (i == 0 || !hay[i - 1].is_ascii_alphanumeric())
            && hay[i..i + prefix.len()]
                .iter()
                .zip(prefix)
                .all(|(h, p)| h.to_ascii_lowercase() == *p)
    })
}

fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl Snippets {
    fn html(&mut self, text: &str) -> String {
        let window = match &self.prefixes {
            None => text,
            Some(prefixes) => {
                let first = prefixes
                    .iter()
                    .filter_map(|p| find_word_start(text.as_bytes(), p))
                    .min();
                let Some(pos) = first else {
                    return leading_text(text);
                };
                let start = floor_char(text, pos.saturating_sub(WINDOW_BEFORE));
                let end = floor_char(text, start + WINDOW_BYTES);
                &text[start..end]
            }
        };
        if let Some(f) = best_fragment(&mut self.analyzer, window, &self.terms, SNIPPET_CHARS) {
            return fragment_html(window, &f);
        }
        // The window held only a look-alike (`tesla` placed it for `test`): the match is
        // further on, so the whole (stored, capped) text is read. Rare, and bounded.
        if window.len() < text.len() {
            if let Some(f) = best_fragment(&mut self.analyzer, text, &self.terms, SNIPPET_CHARS) {
                return fragment_html(text, &f);
            }
        }
        leading_text(text)
    }
}

/// One generation of the index, opened for reading.
struct Live {
    generation: String,
    reader: IndexReader,
    index: Index,
    fields: Fields,
    facets: FacetDicts,
    tables: Arc<Tables>,
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
            facets: FacetDicts::default(),
            tables: Arc::default(),
        })
    }

    /// A compiler for queries run on `searcher`, whose segments' tables are `tables`.
    fn compiler(&self, searcher: &tantivy::Searcher, tables: &[Arc<DocTable>]) -> Result<Compiler> {
        let analyzer = |field| {
            self.index
                .tokenizer_for_field(field)
                .context("the index lacks a tokenizer")
        };
        Ok(Compiler {
            fields: self.fields,
            stemmed: analyzer(self.fields.own)?,
            plain: analyzer(self.fields.from)?,
            tables: Arc::clone(&self.tables),
            lists: Vec::new(),
            threads: Some(ThreadLookup {
                searcher: searcher.clone(),
                tables: tables.to_vec(),
                msgid: self.fields.msgid,
            }),
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
    /// Opens the index under `<base>/vN/`, creating an empty one if there is none yet.
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
        self.run(&live, &searcher, query, opts, notices)
    }

    fn run(
        &self,
        live: &Live,
        searcher: &tantivy::Searcher,
        query: &str,
        opts: &SearchOptions,
        mut notices: Vec<String>,
    ) -> Result<SearchResults> {
        let tables = live
            .tables
            .of(searcher)
            .context("cannot read the index's columns")?;
        let mut compiler = live.compiler(searcher, &tables)?;
        let parsed = query::parse(query, &mut compiler);
        notices.extend(parsed.notices);
        compiler.lists.sort_unstable();
        compiler.lists.dedup();
        for list in &compiler.lists {
            let term = Term::from_field_text(live.fields.lists, list);
            if searcher
                .doc_freq(&term)
                .context("cannot read term statistics")?
                == 0
            {
                notices.push(query::capped(format!(
                    "No message is in a list named \"{list}\"."
                )));
            }
        }
        let (mut compiled, sort) = match parsed.query {
            Some(c) => (c, opts.sort),
            // Nothing to rank by: everything, newest first.
            None => (
                Compiled {
                    query: match_all(),
                    highlight: Vec::new(),
                    scores: false,
                    facet: None,
                    lifted: None,
                },
                Sort::Date,
            ),
        };
        // Top-level list:/tag: filters are checked from each match's facet ordinal.
        let (query, accept) = match compiled.lifted.take() {
            Some((query, filter)) => (query, Some(live.facets.accepting(searcher, &filter)?)),
            None => (compiled.query, None),
        };
        // Filters alone score every match 0, and relevance then falls back to the date: rank
        // by date without computing scores (the order, and the scores reported, are the same).
        let rank = if compiled.scores { sort } else { Sort::Date };

        let newest = tables.iter().map(|t| t.max_date).max().unwrap_or(0);
        let limit = opts.limit.min(MAX_LIMIT);
        let keep = opts.offset.saturating_add(limit);
        let collector = MatchCollector {
            scoring: rank == Sort::Relevance,
            newest,
            threads: opts.collapse_threads,
            sort: rank,
            keep,
            tables: tables.clone(),
            accept,
        };
        let fruits = searcher
            .search(&*query, &collector)
            .context("search failed")?;

        let ids = Ids::new(&tables);
        let cands = if opts.collapse_threads {
            collect::threads(&fruits, rank, &ids)?
        } else {
            collect::messages(&fruits)
        };
        let total = if opts.collapse_threads {
            cands.len() as u64
        } else {
            fruits.iter().map(|f| f.count).sum()
        };
        let ranked = if opts.offset as u64 >= total {
            // Past the end: nothing to rank.
            collect::spare_cands(cands);
            Vec::new()
        } else {
            collect::top_k(cands, keep, rank, &ids)?
        };

        let mut hits = Vec::with_capacity(ranked.len().saturating_sub(opts.offset));
        if ranked.len() > opts.offset {
            let mut snippets = self.snippet_generator(searcher, &compiled.highlight)?;
            for c in &ranked[opts.offset..] {
                let doc: TantivyDocument = searcher
                    .doc(DocAddress::new(c.segment, c.doc))
                    .context("cannot read a stored message")?;
                let stored = |field| doc.get_first(field).and_then(|v| v.as_str());
                let text = stored(live.fields.own_stored).unwrap_or("");
                let snippet = snippets.html(text);
                hits.push(Hit {
                    message_id: stored(live.fields.msgid).unwrap_or("").to_string(),
                    score: c.score,
                    thread: if opts.collapse_threads {
                        c.thread
                    } else {
                        ids.thread(c)
                    },
                    date: c.date,
                    thread_hits: c.hits,
                    snippet,
                });
            }
        }
        collect::spare_cands(ranked);
        let facets = live.facets.facets(searcher, &fruits)?;
        Ok(SearchResults {
            total,
            hits,
            facets,
            notices,
            sort,
        })
    }

    fn snippet_generator(
        &self,
        searcher: &tantivy::Searcher,
        highlight: &[Term],
    ) -> Result<Snippets> {
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
        let mut initials: Vec<char> = terms.keys().filter_map(|t| t.chars().next()).collect();
        initials.sort_unstable();
        initials.dedup();
        let prefixes = window_prefixes(terms.keys());
        Ok(Snippets {
            analyzer: analysis::snippet_analyzer(initials),
            terms: terms.into_iter().collect(),
            prefixes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_prefixes_only_when_safe() {
        let stems = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = window_prefixes(stems(&["upgrad", "nova", "capacitor"]).iter());
        assert_eq!(
            got,
            Some(vec![b"upgra".to_vec(), b"nov".to_vec(), b"capac".to_vec()])
        );
        assert_eq!(window_prefixes(stems(&["upgrad", "die"]).iter()), None);
        assert_eq!(window_prefixes(stems(&["größe"]).iter()), None);
        assert_eq!(window_prefixes(stems(&[]).iter()), Some(vec![]));
    }

    /// The snippet code follows tantivy's `SnippetGenerator` exactly: same fragment, same
    /// marks, same escaping.
    #[test]
    fn snippets_match_tantivys_generator() {
        let long = "Placement is here. ".repeat(40);
        let texts = [
            "The placement service handles placements; PLACEMENT <api> & 'quotes' \"too\".",
            "nothing to see",
            "",
            "Upgrading nova: the upgrade of nova-compute, then upgrades of placement.",
            "Größe placement über alles, Placement's fine",
            long.as_str(),
            "placement\n> quoted placement\nplacement placement placement at the very end",
        ];
        let term_sets: [&[(&str, Score)]; 3] = [
            &[("placement", 0.5)],
            &[("upgrad", 0.2), ("nova", 0.7)],
            &[("placement", 0.1), ("größe", 0.9)],
        ];
        for terms in term_sets {
            let map: BTreeMap<String, Score> =
                terms.iter().map(|&(t, w)| (t.to_string(), w)).collect();
            let mut initials: Vec<char> = map.keys().filter_map(|t| t.chars().next()).collect();
            initials.sort_unstable();
            initials.dedup();
            let generator = tantivy::snippet::SnippetGenerator::new(
                map.clone(),
                analysis::snippet_analyzer(initials.clone()),
                tantivy::schema::Field::from_field_id(0),
                SNIPPET_CHARS,
            );
            let mut analyzer = analysis::snippet_analyzer(initials);
            let list: Vec<(String, Score)> = map.into_iter().collect();
            for text in texts {
                let want = generator.snippet(text);
                let got = best_fragment(&mut analyzer, text, &list, SNIPPET_CHARS);
                match got {
                    None => assert!(want.is_empty(), "{text}"),
                    Some(f) => assert_eq!(fragment_html(text, &f), want.to_html(), "{text}"),
                }
            }
        }
    }

    #[test]
    fn word_start_search() {
        let cases: &[(&str, &str, Option<usize>)] = &[
            ("We are Upgrading", "upg", Some(7)),
            ("reupgrade upgrade", "upg", Some(10)),
            ("(upgrade)", "upg", Some(1)),
            ("nothing here", "upg", None),
            ("up", "upg", None),
            ("", "upg", None),
        ];
        for (hay, prefix, want) in cases {
            assert_eq!(
                find_word_start(str::as_bytes(hay), str::as_bytes(prefix)),
                *want,
                "{hay}"
            );
        }
    }

    #[test]
    fn leading_text_is_escaped_and_cut_at_a_word() {
        assert_eq!(
            leading_text("  <a> & 'b' \"c\""),
            "&lt;a&gt; &amp; &#39;b&#39; &quot;c&quot;"
        );
        let long = "word ".repeat(100);
        let cut = leading_text(&long);
        assert!(cut.ends_with("word…"), "{cut}");
        assert!(cut.chars().count() <= SNIPPET_CHARS + 1);
        assert_eq!(
            leading_text("ü".repeat(300).as_str()).chars().count(),
            SNIPPET_CHARS + 1
        );
    }
}
