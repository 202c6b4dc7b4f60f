//! Full-text search over the archive: a tantivy index derived from SQLite (never the source of
//! truth), its writer and rebuild, and a searcher with a lenient query language, facets and
//! thread collapsing. Only this module knows tantivy; its public API uses the plain types below.
//!
//! # On disk
//!
//! The caller passes a base directory; the index lives in `<base>/vN/` (the schema version).
//! Inside, generations `g00000001/`, `g00000002/`, ... each hold a complete tantivy index and
//! the file `CURRENT` names the live one. [`rebuild`] builds the next generation and replaces
//! `CURRENT` by an atomic rename; a [`Searcher`] notices on its next search and reopens (the
//! generation before the live one is kept until the next rebuild, for searchers in other
//! processes). Each commit records a caller-chosen *watermark* (say, the last SQLite row
//! indexed), read back by [`IndexWriter::watermark`] so an indexer can catch up after a crash.
//! A generation left by an earlier draft of the schema is replaced by an empty one when a writer
//! opens it (no watermark, so the indexer starts over); until then searchers report it.
//! One writer at a time: [`IndexWriter`] holds tantivy's writer lock on the live generation, and
//! [`rebuild`] takes the same lock, so either fails fast instead of racing the other.
//!
//! # Query language
//!
//! - Words are ANDed: `nova boot`. `OR` binds tighter than AND, as in web and mail search:
//!   `a b OR c` means `a AND (b OR c)`. `AND`, `OR`, `NOT` must be upper case; `-word`,
//!   `-"phrase"` and `-(group)` negate. Parentheses group (up to 32 deep).
//! - `"a phrase"`. Words are matched stemmed (English), the query analysed like the text, so
//!   `upgrading` finds `upgrade`, and words of other languages (`Größe`, `привет`) are found
//!   as written.
//! - Fields: `from:` (sender name or address), `to:` (recipients), `subject:`/`s:`,
//!   `body:`/`b:`, `list:`/`l:`, `tag:` (subject tags like `[nova]`), `msgid:`, `thread:N`
//!   (a thread number), `has:attachment`, `has:patch`. Values may be quoted (`from:"Jane Doe"`)
//!   and text fields may take a group (`subject:(nova OR neutron)`).
//! - Dates (UTC): `date:2023-01-01..2023-03-31` (both ends inclusive), `date:2023-05` (the
//!   month), `date:2023` (the year), open ranges `date:2023-01..` and `date:..2023-03`;
//!   `after:D` is from the start of D on, `before:D` is strictly before D.
//! - The subject weighs 3×, quoted text 0.3×. Filters (`list:`, `tag:`, `date:`, `has:`, ...)
//!   never change scores.
//! - Parsing never fails: what cannot be understood is skipped and explained in
//!   [`SearchResults::notices`]. A query with nothing searchable matches everything, newest
//!   first.
//!
//! # How a search runs
//!
//! One pass over every match reads only per-segment arrays copied once from the fast fields
//! (`table`): date, year, dense thread number and the ordinal of the facet column (list set,
//! tag set and sender in one value), plus the BM25 score times a mild recency factor
//! (cached per document). When collapsing, each segment folds its matches into threads as
//! it goes. Date ranges binary-search each segment's documents sorted by date
//! (`date_range`). Ranking then selects the page (ties broken by message id, read from an
//! 8-byte prefix column and, only on equal prefixes, the full id), and only the page's
//! documents are loaded, for their snippets. Facet ordinals become names through dictionaries
//! interned once per segment.
//!
//! Module map: `schema` (fields, body splitting, subject tags), `analysis` (memoised `en_stem`),
//! `query` (the parser), `compile` (parser output to tantivy queries), `collect` (the pass over
//! matches, facets, ranking), `table` (per-segment arrays), `date_range` (date filters),
//! `search` ([`Searcher`], snippets), `writer` ([`IndexWriter`], [`rebuild`]), `layout`
//! (generations and the `CURRENT` pointer).

mod analysis;
mod collect;
mod compile;
mod date_range;
mod layout;
mod query;
mod schema;
mod search;
mod table;
mod writer;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub(crate) use layout::{remove_older_schemas, schema_dir};
pub use schema::{split_body, subject_tags, BodyParts};
pub use search::Searcher;
pub use writer::{rebuild, rebuild_with, IndexWriter, WriterConfig};

/// `query` narrowed by `field:value` (a facet's filter, a digest's week), as query text: the
/// query as it was understood, then the condition, quoted as needed. Adding the condition to
/// the raw text instead lets a trailing `NOT` or `OR`, or an open quote, take it in.
pub fn narrow_query(query: &str, field: &str, value: &str) -> String {
    QueryNarrower::new(query).narrow(field, value)
}

/// [`narrow_query`] for many conditions on one query (a page's facet links), which is parsed
/// once.
pub struct QueryNarrower(query::Narrower);

impl QueryNarrower {
    /// Parses `query` once.
    pub fn new(query: &str) -> QueryNarrower {
        QueryNarrower(query::Narrower::new(query))
    }

    /// The query narrowed by `field:value`.
    pub fn narrow(&self, field: &str, value: &str) -> String {
        self.0.narrow(&query::term(field, value))
    }
}

/// One message as the index sees it. A cross-posted message is one document with several
/// lists, so it is found and counted once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexDoc {
    /// The Message-ID, with or without angle brackets; the identity of the document.
    pub message_id: String,
    /// Thread id, as the caller's threading assigned it.
    pub thread: u64,
    /// Unix seconds, UTC; `None` for an undated message (no date value: no date query, year
    /// facet or feed takes it for 1970).
    pub date: Option<i64>,
    /// Subject as decoded; tags such as `[nova]` are read from it by [`subject_tags`].
    pub subject: String,
    /// Body text with list footers removed. Quotes and signature are split off here
    /// (see [`split_body`]).
    pub body: String,
    pub from_name: Option<String>,
    pub from_addr: Option<String>,
    /// To and Cc addresses (and names, if wanted).
    pub recipients: Vec<String>,
    /// Every list the message was posted to; matched case-insensitively.
    pub lists: Vec<String>,
    pub has_attachment: bool,
    pub has_patch: bool,
}

/// Result order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// BM25 with a mild preference for recent messages.
    #[default]
    Relevance,
    /// Newest first.
    Date,
}

/// What to return. Ties are always broken by message id, so pages are stable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SearchOptions {
    /// Hits per page, at most 1000. Zero returns only `total` and facets.
    pub limit: usize,
    /// Hits (or threads) to skip.
    pub offset: usize,
    pub sort: Sort,
    /// One hit per thread: its best message, with `thread_hits` counting the thread's matches.
    pub collapse_threads: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            limit: 20,
            offset: 0,
            sort: Sort::Relevance,
            collapse_threads: false,
        }
    }
}

/// One result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hit {
    /// Without angle brackets.
    pub message_id: String,
    /// Relevance including the recency factor; 0 when sorted by date.
    pub score: f32,
    pub thread: u64,
    /// Unix seconds.
    pub date: i64,
    /// Matching messages in this thread: 1 unless threads are collapsed.
    pub thread_hits: u32,
    /// A passage of the author's own text as HTML: escaped text with matches in `<b>`.
    pub snippet: String,
}

/// A facet value and how many matching messages have it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FacetCount {
    pub value: String,
    pub count: u64,
}

/// Counts over all matching messages (not just the page, and messages even when threads are
/// collapsed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facets {
    /// Most frequent first. A cross-posted message counts once under each of its lists.
    pub lists: Vec<FacetCount>,
    /// Newest year first.
    pub years: Vec<FacetCount>,
    /// Subject tags, most frequent first.
    pub tags: Vec<FacetCount>,
    /// The ten most frequent senders, by lowercased address (or name when there is none).
    pub senders: Vec<FacetCount>,
}

/// A page of results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    /// Matching messages, or matching threads when collapsed.
    pub total: u64,
    pub hits: Vec<Hit>,
    pub facets: Facets,
    /// What the parser skipped or guessed, for the user.
    pub notices: Vec<String>,
    /// The order actually used: `Date` when the query had nothing to rank by.
    pub sort: Sort,
}
