//! Compiles parsed queries into tantivy queries: words become per-field term or phrase
//! queries (text stemmed, sender and recipients not), filters become zero-score clauses.

use std::sync::Arc;

use tantivy::query::{
    AllQuery, BooleanQuery, BoostQuery, ConstScoreQuery, EmptyQuery, Occur, PhraseQuery, Query,
    TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption, Term};
use tantivy::tokenizer::{TextAnalyzer, TokenStream as _};
use tantivy::Score;
use tantivy::{DocSet as _, TERMINATED};

use super::analysis::pair_term;
use super::date_range::DateRange;
use super::query::{Build, Leaf, Notices, Scope};
use super::schema::{address_key, Fields};
use super::table::{DocTable, Tables};

/// Query-time weights. The subject says what a message is about; quoted text is someone
/// else's words, so it counts for less than the author's own.
const SUBJECT_BOOST: Score = 3.0;
const QUOTED_BOOST: Score = 0.3;
const RECIPIENT_BOOST: Score = 0.5;

/// A query plus the own-text terms worth highlighting (those of non-negated clauses).
pub(crate) struct Compiled {
    pub query: Box<dyn Query>,
    pub highlight: Vec<Term>,
    /// Whether any match can score above zero. A query made only of filters scores every
    /// match 0, so its relevance order is the date order, and it can be run without scores.
    pub scores: bool,
    /// `Some` when the query is one `list:` or `tag:` filter.
    pub facet: Option<FacetTerm>,
    /// The same matches and scores as `query`, with its top-level `list:`/`tag:` filters
    /// taken out into a [`FacetFilter`] that the pass over matches checks from each
    /// document's facet ordinal: an intersection with a long posting list (a whole list's
    /// messages) costs more than that check. Only when something else is left to find the
    /// matches (an `AND` holding at least one other clause that is not negated).
    pub lifted: Option<(Box<dyn Query>, FacetFilter)>,
}

/// A `list:` or `tag:` value, as indexed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FacetTerm {
    List(String),
    Tag(String),
}

/// Facet filters taken out of a query: a match must have every `all` and no `none`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FacetFilter {
    pub all: Vec<FacetTerm>,
    pub none: Vec<FacetTerm>,
}

/// Compiles parser leaves into tantivy queries.
pub(crate) struct Compiler {
    pub fields: Fields,
    pub stemmed: TextAnalyzer,
    pub plain: TextAnalyzer,
    /// For date ranges.
    pub tables: Arc<Tables>,
    /// The list names the query filters on, so that an unknown one can be pointed out.
    pub lists: Vec<String>,
    /// Where `thread:<message-id>` finds its thread; `None` leaves only thread numbers.
    pub threads: Option<ThreadLookup>,
}

/// Finds the thread of a message from the index itself: the message's document by its id, then
/// that document's thread in its segment's table.
pub(crate) struct ThreadLookup {
    pub searcher: tantivy::Searcher,
    /// By segment ordinal.
    pub tables: Vec<Arc<DocTable>>,
    pub msgid: Field,
}

impl ThreadLookup {
    fn thread_of(&self, id: &str) -> tantivy::Result<Option<u64>> {
        let term = Term::from_field_text(self.msgid, id);
        for (reader, table) in self.searcher.segment_readers().iter().zip(&self.tables) {
            let inverted = reader.inverted_index(self.msgid)?;
            let Some(mut postings) = inverted.read_postings(&term, IndexRecordOption::Basic)?
            else {
                continue;
            };
            let alive = reader.alive_bitset();
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if alive.is_none_or(|a| a.is_alive(doc)) {
                    return Ok(table
                        .rows
                        .get(doc as usize)
                        .and_then(|row| table.threads.get(row.thread_slot as usize))
                        .copied()
                        .filter(|&t| t != 0));
                }
                doc = postings.advance();
            }
        }
        Ok(None)
    }
}

/// Tokens of `text` with their positions (a dropped over-long word leaves a gap).
fn tokens(analyzer: &mut TextAnalyzer, text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        let t = stream.token();
        out.push((t.position, t.text.clone()));
    }
    out
}

/// A word is one term; several (a phrase, or a word with inner punctuation such as
/// `jane.doe@example.org`) must appear in order. With the field's word-pair field (`pairs`),
/// two neighbouring words are one pair term, and a longer phrase reads positions only in
/// documents that hold all of its pairs: the same matches, far fewer positions decoded.
fn words_query(
    field: Field,
    pairs: Option<Field>,
    words: &[(usize, String)],
) -> Option<Box<dyn Query>> {
    let term = |field, text: &str, record| -> Box<dyn Query> {
        Box::new(TermQuery::new(Term::from_field_text(field, text), record))
    };
    let neighbours: Vec<String> = words
        .windows(2)
        .filter(|w| w[0].0 + 1 == w[1].0)
        .map(|w| pair_term(&w[0].1, &w[1].1))
        .collect();
    match (words, pairs) {
        ([], _) => None,
        ([(_, w)], _) => Some(term(field, w, IndexRecordOption::WithFreqs)),
        ([_, _], Some(pairs)) if neighbours.len() == 1 => {
            Some(term(pairs, &neighbours[0], IndexRecordOption::WithFreqs))
        }
        _ => {
            let first = words[0].0;
            let terms = words
                .iter()
                .map(|(pos, w)| (pos.saturating_sub(first), Term::from_field_text(field, w)))
                .collect();
            let phrase: Box<dyn Query> = Box::new(PhraseQuery::new_with_offset(terms));
            let Some(pairs) = pairs.filter(|_| !neighbours.is_empty()) else {
                return Some(phrase);
            };
            let mut clauses = vec![(Occur::Must, phrase)];
            clauses.extend(neighbours.iter().map(|p| {
                (
                    Occur::Must,
                    filter(term(pairs, p, IndexRecordOption::Basic)),
                )
            }));
            Some(Box::new(BooleanQuery::new(clauses)))
        }
    }
}

/// A filter: matches like its query but adds nothing to the score, so `list:` or a date range
/// never reorders results.
fn filter(q: Box<dyn Query>) -> Box<dyn Query> {
    Box::new(ConstScoreQuery::new(q, 0.0))
}

pub(crate) fn match_all() -> Box<dyn Query> {
    filter(Box::new(AllQuery))
}

impl Compiler {
    fn text(&mut self, scope: Scope, text: &str, notices: &mut Notices) -> Option<Compiled> {
        let f = self.fields;
        // A whole address is one term of the address fields, not a phrase of its words.
        let whole = match scope {
            Scope::From => Some(f.from_addr),
            Scope::To => Some(f.to_addr),
            _ => None,
        };
        // Every message from one address would score the same: it is a filter.
        if let Some((field, key)) = whole.zip(address_key(text)) {
            return Some(Compiled {
                query: filter(Box::new(TermQuery::new(
                    Term::from_field_text(field, &key),
                    IndexRecordOption::Basic,
                ))),
                highlight: Vec::new(),
                scores: false,
                facet: None,
                lifted: None,
            });
        }
        // (field, its word pairs, stemmed?, boost): text fields are stemmed and paired,
        // sender and recipients neither.
        let subject = (f.subject, Some(f.subject_pairs), true, SUBJECT_BOOST);
        let own = (f.own, Some(f.own_pairs), true, 1.0);
        let quoted = (f.quoted, Some(f.quoted_pairs), true, QUOTED_BOOST);
        let groups: &[(Field, Option<Field>, bool, Score)] = match scope {
            Scope::Any => &[
                subject,
                own,
                quoted,
                (f.from, None, false, 1.0),
                (f.to, None, false, RECIPIENT_BOOST),
            ],
            Scope::Subject => &[subject],
            Scope::Body => &[own, quoted],
            Scope::From => &[(f.from, None, false, 1.0)],
            Scope::To => &[(f.to, None, false, 1.0)],
        };
        let stemmed = tokens(&mut self.stemmed, text);
        if let Some((_, lone)) = stemmed.iter().find(|(_, w)| super::analysis::lone_cjk(w)) {
            notices.push(format!(
                "\"{lone}\" alone matches only where it stands apart: Chinese, Japanese and \
                 Korean text is indexed by pairs of characters, so search for two or more."
            ));
        }
        let plain = if groups.iter().any(|g| !g.2) {
            tokens(&mut self.plain, text)
        } else {
            Vec::new()
        };
        let mut should: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut highlight = Vec::new();
        for &(field, pairs, is_stemmed, boost) in groups {
            let words = if is_stemmed { &stemmed } else { &plain };
            if field == f.own {
                highlight.extend(words.iter().map(|(_, w)| Term::from_field_text(f.own, w)));
            }
            let Some(q) = words_query(field, pairs, words) else {
                continue;
            };
            let q = if boost == 1.0 {
                q
            } else {
                Box::new(BoostQuery::new(q, boost))
            };
            should.push((Occur::Should, q));
        }
        if should.is_empty() {
            let long = text
                .split(|c: char| !c.is_alphanumeric())
                .any(|w| w.len() > super::analysis::MAX_WORD_BYTES);
            notices.push(if long {
                format!(
                    "Ignored \"{text}\": words longer than {} bytes are not indexed.",
                    super::analysis::MAX_WORD_BYTES
                )
            } else {
                format!("Ignored \"{text}\": it has no searchable words.")
            });
            return None;
        }
        let query = if should.len() == 1 {
            should.remove(0).1
        } else {
            Box::new(BooleanQuery::new(should))
        };
        Some(Compiled {
            query,
            highlight,
            scores: true,
            facet: None,
            lifted: None,
        })
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
        let mut facet = None;
        let query: Box<dyn Query> = match leaf {
            Leaf::Text { scope, text, .. } => return self.text(scope, &text, notices),
            Leaf::List(l) => {
                self.lists.push(l.clone());
                let q = exact(f.lists, &l);
                facet = Some(FacetTerm::List(l));
                q
            }
            Leaf::Tag(t) => {
                let q = exact(f.tags, &t);
                facet = Some(FacetTerm::Tag(t));
                q
            }
            Leaf::MsgId(m) => exact(f.msgid, &m),
            Leaf::Sender(k) => exact(f.sender, &k),
            Leaf::Thread(id) => {
                let found = match &self.threads {
                    Some(lookup) => lookup.thread_of(&id).unwrap_or_else(|e| {
                        notices.push(format!("Could not look up the thread of {id:?}: {e}."));
                        None
                    }),
                    None => None,
                };
                match found.or_else(|| id.parse::<u64>().ok()) {
                    Some(t) => filter(Box::new(TermQuery::new(
                        Term::from_field_u64(f.thread, t),
                        IndexRecordOption::Basic,
                    ))),
                    None => {
                        notices.push(format!(
                            "No message {id:?} in the archive, so thread: matches nothing."
                        ));
                        filter(Box::new(EmptyQuery))
                    }
                }
            }
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
                if start.is_none() && end.is_none() {
                    match_all()
                } else {
                    filter(Box::new(DateRange {
                        tables: Arc::clone(&self.tables),
                        start,
                        end,
                    }))
                }
            }
        };
        Some(Compiled {
            query,
            highlight: Vec::new(),
            scores: false,
            facet,
            lifted: None,
        })
    }

    fn and(&mut self, clauses: Vec<(bool, Compiled)>) -> Compiled {
        let mut subs: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(clauses.len() + 1);
        let mut highlight = Vec::new();
        let mut scores = false;
        // The clauses other than facet filters, and the facet filters, for `lifted`.
        let mut rest: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut filter = FacetFilter::default();
        for (neg, c) in clauses {
            let occur = if neg { Occur::MustNot } else { Occur::Must };
            match c.facet {
                Some(term) if neg => filter.none.push(term),
                Some(term) => filter.all.push(term),
                None => rest.push((occur, c.query.box_clone())),
            }
            if !neg {
                highlight.extend(c.highlight);
                scores |= c.scores;
            }
            subs.push((occur, c.query));
        }
        // tantivy matches nothing for a query made only of exclusions.
        if !subs.iter().any(|(o, _)| *o == Occur::Must) {
            subs.push((Occur::Must, match_all()));
        }
        let lifted = (filter != FacetFilter::default()
            && rest.iter().any(|(o, _)| *o == Occur::Must))
        .then(|| {
            let query: Box<dyn Query> = if rest.len() == 1 {
                rest.remove(0).1
            } else {
                Box::new(BooleanQuery::new(rest))
            };
            (query, filter)
        });
        Compiled {
            query: Box::new(BooleanQuery::new(subs)),
            highlight,
            scores,
            facet: None,
            lifted,
        }
    }

    fn or(&mut self, clauses: Vec<(bool, Compiled)>) -> Compiled {
        let mut subs: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(clauses.len());
        let mut highlight = Vec::new();
        let mut scores = false;
        for (neg, c) in clauses {
            if neg {
                let not: Box<dyn Query> = Box::new(BooleanQuery::new(vec![
                    (Occur::Must, match_all()),
                    (Occur::MustNot, c.query),
                ]));
                subs.push((Occur::Should, not));
            } else {
                highlight.extend(c.highlight);
                scores |= c.scores;
                subs.push((Occur::Should, c.query));
            }
        }
        Compiled {
            query: Box::new(BooleanQuery::new(subs)),
            highlight,
            scores,
            facet: None,
            lifted: None,
        }
    }
}
