//! Search as people see it: the index's hits joined with the archive's summaries (subject,
//! sender, lists, thread size). The CLI, the web server and saved-search digests all search
//! through here.

use std::collections::HashMap;

use anyhow::Result;
use serde::Serialize;

use crate::index::{Facets, SearchOptions, Searcher, Sort};
use crate::store::Store;

/// One page of results. The first fields are the `archivist search --json` contract.
#[derive(Debug, Clone, Serialize)]
pub struct SearchPage {
    /// Matching messages (threads when collapsed).
    pub total: u64,
    /// The page.
    pub hits: Vec<SearchHit>,
    /// Counts over the whole result set.
    pub facets: Facets,
    /// What the query parser skipped or guessed.
    pub notices: Vec<String>,
    /// The order used.
    pub sort: Sort,
}

/// One result.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    /// Message-ID without brackets.
    pub message_id: String,
    /// Decoded subject.
    pub subject: String,
    /// Sender label (name, else address).
    pub from: String,
    /// Sender address, when known.
    pub from_addr: Option<String>,
    /// RFC 3339 date.
    pub date: Option<String>,
    /// Every list the message reached.
    pub lists: Vec<String>,
    /// Messages in its thread.
    pub thread_size: u64,
    /// Matching messages in its thread (1 unless collapsed).
    pub thread_hits: u32,
    /// HTML: escaped text with matches in `<b>`.
    pub snippet: String,
    /// Relevance score (0 when sorted by date).
    #[serde(serialize_with = "shortest_f32")]
    pub score: f32,
}

/// An `f32` as its shortest decimal form, whether serialized directly (the CLI) or through a
/// `serde_json::Value` (the API), which would otherwise widen `8.648527` to
/// `8.648527145385742`.
fn shortest_f32<S: serde::Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(v.to_string().parse().unwrap_or(f64::from(*v)))
}

/// Runs a query and fills in each hit from the archive.
pub fn search(
    store: &Store,
    searcher: &Searcher,
    query: &str,
    options: &SearchOptions,
) -> Result<SearchPage> {
    let results = searcher.search(query, options)?;
    let ids: Vec<&str> = results.hits.iter().map(|h| h.message_id.as_str()).collect();
    let summaries: HashMap<String, crate::store::Summary> = store
        .summaries(&ids)?
        .into_iter()
        .map(|s| (s.message_id.as_str().to_string(), s))
        .collect();
    let hits = results
        .hits
        .into_iter()
        .map(|h| {
            let summary = summaries.get(&h.message_id);
            SearchHit {
                subject: summary.map(|s| s.subject.clone()).unwrap_or_default(),
                from: summary
                    .map(|s| s.from.label().to_string())
                    .unwrap_or_default(),
                from_addr: summary.and_then(|s| s.from.addr.clone()),
                // The stored date; an undated message has none (its row's date reads 0).
                date: match summary {
                    Some(s) => s.date,
                    None => (h.date != 0).then_some(h.date),
                }
                .map(crate::ingest::rfc3339),
                lists: summary.map(|s| s.lists.clone()).unwrap_or_default(),
                thread_size: summary.map_or(1, |s| s.thread_size),
                thread_hits: h.thread_hits,
                snippet: h.snippet,
                score: h.score,
                message_id: h.message_id,
            }
        })
        .collect();
    Ok(SearchPage {
        total: results.total,
        hits,
        facets: results.facets,
        notices: results.notices,
        sort: results.sort,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_serialize_alike_directly_and_through_a_value() {
        let hit = SearchHit {
            message_id: "a@b".into(),
            subject: String::new(),
            from: String::new(),
            from_addr: None,
            date: None,
            lists: Vec::new(),
            thread_size: 1,
            thread_hits: 1,
            snippet: String::new(),
            score: 8.648_527,
        };
        let direct = serde_json::to_string(&hit).expect("json");
        let value = serde_json::to_value(&hit).expect("json");
        assert!(direct.ends_with("\"score\":8.648527}"), "{direct}");
        assert_eq!(value["score"].to_string(), "8.648527");
    }
}
