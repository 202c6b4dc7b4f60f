//! Weekly topic digests: what a set of lists talked about in an ISO week, grouped by topic.
//! [`build`] reads the week's threads from the store, groups them with the pure [`topics`]
//! (the previous weeks' topics as history), picks excerpts with [`excerpt`], and returns a
//! [`Digest`] value; `render` turns it into an email and `mailer` sends it.

pub mod excerpt;
pub mod mailer;
pub mod render;
pub mod schedule;
pub mod send;
pub mod service;
pub mod subscribe;
pub mod topics;

use std::collections::{BTreeSet, HashMap, HashSet};

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use crate::index::{SearchOptions, Searcher, Sort};
use crate::message::{IsoWeek, ListName, ZoneOffset};
use crate::store::{ActiveThread, Store};
use topics::{Grouping, Params, PriorTopic, TopicMessage, TopicThread};

/// How a digest is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BuildOptions {
    /// Where weeks start and end.
    pub zone: ZoneOffset,
    /// Earlier weeks grouped first, oldest to newest, each the prior of the next, so topics
    /// keep their labels from one week to the next. Zero: no history.
    pub history_weeks: u32,
    /// Grouping parameters.
    pub params: Params,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions {
            zone: ZoneOffset::UTC,
            history_weeks: 2,
            params: Params::default(),
        }
    }
}

/// One week's digest for a set of lists.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Digest {
    /// The week.
    pub week: IsoWeek,
    /// The lists covered, sorted.
    pub lists: Vec<String>,
    /// Header counts.
    pub totals: Totals,
    /// Topics, most active first.
    pub topics: Vec<DigestTopic>,
    /// Threads that belong to no topic, most active first.
    pub other_threads: Vec<DigestThread>,
    /// The saved search it was narrowed to, if any (see [`Digest::filtered`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
}

/// The digest's header counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Messages dated in the week.
    pub messages: u32,
    /// Active threads, each once.
    pub threads: u32,
    /// Threads that started in the week.
    pub new_threads: u32,
    /// Distinct senders in the week.
    pub participants: u32,
}

/// A topic of the digest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestTopic {
    /// Short label.
    pub label: String,
    /// Distinctive terms.
    pub terms: Vec<String>,
    /// Whether the topic continues from an earlier week.
    pub continued: bool,
    /// Its threads, most active first.
    pub threads: Vec<DigestThread>,
}

/// One thread entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DigestThread {
    /// The thread's identity and link target.
    pub root_message_id: String,
    /// The thread's subject.
    pub subject: String,
    /// Messages in the week.
    pub messages: u32,
    /// Messages in the thread by the week's end.
    pub messages_total: u32,
    /// Whether it started in the week.
    pub new: bool,
    /// Names of the week's senders (never addresses).
    pub participants: Vec<String>,
    /// Lists it reached.
    pub lists: Vec<String>,
    /// One or two sentences of the week's most substantive message.
    pub excerpt: String,
    /// Who wrote the excerpt.
    pub excerpt_author: String,
    /// Sender identities, for counting distinct participants; never shown.
    #[serde(skip)]
    participant_keys: Vec<String>,
    /// The week's messages, for matching saved searches.
    #[serde(skip)]
    message_ids: Vec<String>,
}

impl Digest {
    /// Whether nothing happened.
    pub fn is_empty(&self) -> bool {
        self.totals.threads == 0
    }

    /// Whether the week was quiet: few enough threads that the digest is a short list.
    pub fn is_quiet(&self) -> bool {
        self.totals.threads > 0 && self.totals.threads < 4
    }

    /// Every thread, topics first.
    pub fn threads(&self) -> impl Iterator<Item = &DigestThread> {
        self.topics
            .iter()
            .flat_map(|t| t.threads.iter())
            .chain(self.other_threads.iter())
    }

    /// The `archivist digest preview --json` contract:
    /// `{"week","lists","topics":[{"label","terms","threads":[..]}],"other_threads":[..]}` where
    /// a thread is `{"root_message_id","subject","messages","participants","lists"}` with
    /// `messages` the week's count and `participants` the number of the week's senders.
    pub fn preview_json(&self) -> serde_json::Value {
        let thread = |t: &DigestThread| {
            json!({
                "root_message_id": t.root_message_id,
                "subject": t.subject,
                "messages": t.messages,
                "participants": t.participants.len(),
                "lists": t.lists,
            })
        };
        json!({
            "week": self.week.to_string(),
            "lists": self.lists,
            "topics": self.topics.iter().map(|t| json!({
                "label": t.label,
                "terms": t.terms,
                "threads": t.threads.iter().map(thread).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "other_threads": self.other_threads.iter().map(thread).collect::<Vec<_>>(),
        })
    }

    /// The digest restricted to the threads whose root is in `keep`: those a subscriber's
    /// saved search `query` matches. Topics left with one thread move to the other threads;
    /// totals are recounted.
    pub fn filtered(&self, keep: &HashSet<String>, query: &str) -> Digest {
        let mut topics = Vec::new();
        let mut other: Vec<DigestThread> = Vec::new();
        for t in &self.topics {
            let threads: Vec<DigestThread> = t
                .threads
                .iter()
                .filter(|th| keep.contains(&th.root_message_id))
                .cloned()
                .collect();
            match threads.len() {
                0 => {}
                1 => other.extend(threads),
                _ => topics.push(DigestTopic {
                    threads,
                    ..t.clone()
                }),
            }
        }
        other.extend(
            self.other_threads
                .iter()
                .filter(|th| keep.contains(&th.root_message_id))
                .cloned(),
        );
        other.sort_by(|a, b| {
            b.messages
                .cmp(&a.messages)
                .then_with(|| a.root_message_id.cmp(&b.root_message_id))
        });
        let mut digest = Digest {
            week: self.week,
            lists: self.lists.clone(),
            totals: Totals::default(),
            topics,
            other_threads: other,
            query: Some(query.to_string()),
        };
        digest.totals = totals(digest.threads());
        digest
    }
}

/// The roots of the digest's threads with a week message matching `query` (a saved search),
/// through the search facade. The query is narrowed to the week's days so paging stays short;
/// the exact week boundaries come from intersecting with the week's messages.
pub fn matching_threads(
    store: &Store,
    searcher: &Searcher,
    query: &str,
    digest: &Digest,
    zone: ZoneOffset,
) -> Result<HashSet<String>> {
    let day = |t: i64| {
        crate::ingest::rfc3339(t)
            .chars()
            .take(10)
            .collect::<String>()
    };
    let (start, end) = (digest.week.start(zone), digest.week.end(zone) - 1);
    // Added to the query as understood: an open quote or a trailing operator in a saved
    // search must not take the week's dates in.
    let narrowed =
        crate::index::narrow_query(query, "date", &format!("{}..{}", day(start), day(end)));
    let mut root_of: HashMap<&str, &str> = HashMap::new();
    for t in digest.threads() {
        for m in &t.message_ids {
            root_of.insert(m.as_str(), t.root_message_id.as_str());
        }
    }
    let mut keep = HashSet::new();
    let mut options = SearchOptions {
        limit: 1000,
        offset: 0,
        sort: Sort::Date,
        collapse_threads: false,
    };
    // At most 20 pages: a saved search matching more than 20,000 messages in a week matches
    // everything that week anyway.
    for _ in 0..20 {
        let page = crate::search::search(store, searcher, &narrowed, &options)?;
        for hit in &page.hits {
            if let Some(root) = root_of.get(hit.message_id.as_str()) {
                keep.insert(root.to_string());
            }
        }
        options.offset += page.hits.len();
        if page.hits.is_empty() || options.offset as u64 >= page.total {
            break;
        }
    }
    Ok(keep)
}

fn totals<'a>(threads: impl Iterator<Item = &'a DigestThread>) -> Totals {
    let mut t = Totals::default();
    let mut people: BTreeSet<&str> = BTreeSet::new();
    for th in threads {
        t.messages += th.messages;
        t.threads += 1;
        t.new_threads += u32::from(th.new);
        people.extend(th.participant_keys.iter().map(String::as_str));
    }
    t.participants = people.len() as u32;
    t
}

/// The topic grouping's view of the store's threads.
pub fn topic_threads<'a>(
    threads: &'a [ActiveThread],
    subjects: &'a [String],
) -> Vec<TopicThread<'a>> {
    threads
        .iter()
        .zip(subjects)
        .map(|(t, subject)| TopicThread {
            key: t.root.as_str(),
            subject,
            lists: &t.lists,
            messages: t
                .messages
                .iter()
                .map(|m| TopicMessage {
                    author: &m.author.key,
                    author_name: &m.author.name,
                    text: &m.own_text,
                })
                .collect(),
        })
        .collect()
}

/// Messages per list whose subjects decide its subject prefixes (see [`list_prefixes`]).
const PREFIX_SAMPLE: usize = 200;

/// The bracket tags that are the subject prefix of one of `lists` (every list when empty),
/// from each list's latest messages (see [`topics::list_prefix_tags`]). Decided per list over
/// its recent history, so a week with a few untagged threads, or a week before the list had
/// many, still knows the prefix.
pub fn list_prefixes(store: &Store, lists: &[ListName]) -> Result<HashSet<String>> {
    let subjects = store.recent_subjects(lists, PREFIX_SAMPLE)?;
    Ok(topics::list_prefix_tags(
        subjects.iter().map(|(l, s)| (l.as_str(), s.as_str())),
    ))
}

/// The threads' subjects as topic grouping reads them: without the lists' subject prefixes
/// (pages and emails still show the subjects whole).
pub fn topic_subjects(threads: &[ActiveThread], prefixes: &HashSet<String>) -> Vec<String> {
    threads
        .iter()
        .map(|t| without_tags(&t.subject, prefixes))
        .collect()
}

/// `subject` without its `[tag]`s that are in `tags` (compared lowercased, trimmed).
fn without_tags(subject: &str, tags: &HashSet<String>) -> String {
    if tags.is_empty() {
        return subject.to_string();
    }
    let mut out = String::with_capacity(subject.len());
    let mut rest = subject;
    while let Some(open) = rest.find('[') {
        let Some(len) = rest[open..].find(']') else {
            break;
        };
        let inner = &rest[open + 1..open + len];
        out.push_str(&rest[..open]);
        if tags.contains(&inner.trim().to_lowercase()) {
            rest = rest[open + len + 1..].trim_start();
        } else {
            out.push_str(&rest[open..=open + len]);
            rest = &rest[open + len + 1..];
        }
    }
    out.push_str(rest);
    out
}

/// Builds the digest of `week` for `lists` (every list when empty): [`history`], then the
/// week's threads, [`topics::group`] and [`assemble`].
pub fn build(
    store: &Store,
    week: IsoWeek,
    lists: &[ListName],
    options: &BuildOptions,
) -> Result<Digest> {
    let prefixes = list_prefixes(store, lists)?;
    let prior = history(store, week, lists, &prefixes, options)?;
    let zone = options.zone;
    let threads = store.active_threads(week.start(zone), week.end(zone), lists)?;
    let subjects = topic_subjects(&threads, &prefixes);
    let inputs = topic_threads(&threads, &subjects);
    let grouping = topics::group(&inputs, &prior, &options.params);
    Ok(assemble(
        week,
        list_names(store, lists)?,
        &threads,
        &grouping,
    ))
}

/// The prior for `week`: the earlier weeks grouped oldest first, each with the one before as
/// its prior. A loop over a fixed number of weeks, so the cost is bounded and nothing recurses.
pub fn history(
    store: &Store,
    week: IsoWeek,
    lists: &[ListName],
    prefixes: &HashSet<String>,
    options: &BuildOptions,
) -> Result<Vec<PriorTopic>> {
    let zone = options.zone;
    let mut prior: Vec<PriorTopic> = Vec::new();
    if !options.params.signals.history {
        return Ok(prior);
    }
    let mut earlier = Vec::new();
    let mut w = week;
    for _ in 0..options.history_weeks {
        w = w.prev();
        earlier.push(w);
    }
    for w in earlier.into_iter().rev() {
        let threads = store.active_threads(w.start(zone), w.end(zone), lists)?;
        let subjects = topic_subjects(&threads, prefixes);
        let inputs = topic_threads(&threads, &subjects);
        let grouping = topics::group(&inputs, &prior, &options.params);
        prior = grouping.carry(&inputs);
    }
    Ok(prior)
}

/// The names a digest shows for `lists`: those given, or every list of the archive.
pub fn list_names(store: &Store, lists: &[ListName]) -> Result<Vec<String>> {
    if lists.is_empty() {
        return store.list_names();
    }
    let mut names: Vec<String> = lists.iter().map(|l| l.as_str().to_string()).collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// Puts the grouping and the threads together.
pub fn assemble(
    week: IsoWeek,
    lists: Vec<String>,
    threads: &[ActiveThread],
    grouping: &Grouping,
) -> Digest {
    let entry = |i: usize| thread_entry(&threads[i]);
    let topics: Vec<DigestTopic> = grouping
        .topics
        .iter()
        .map(|t| DigestTopic {
            label: t.label.clone(),
            terms: t.terms.clone(),
            continued: t.continued,
            threads: t.threads.iter().map(|&i| entry(i)).collect(),
        })
        .collect();
    let other_threads: Vec<DigestThread> = grouping.other.iter().map(|&i| entry(i)).collect();
    let mut digest = Digest {
        week,
        lists,
        totals: Totals::default(),
        topics,
        other_threads,
        query: None,
    };
    digest.totals = totals(digest.threads());
    digest
}

/// The longest subject a digest shows, in characters: one message's subject is in every
/// subscriber's mail, and a hostile one is a megabyte long.
pub const SUBJECT_CHARS: usize = 300;

/// A subject as digests show it: control characters dropped (a page or mail part must not
/// carry NUL or ESC), at most [`SUBJECT_CHARS`] characters, an ellipsis marking a cut.
fn shown_subject(subject: &str) -> String {
    let mut out: String = subject
        .chars()
        .filter(|c| !c.is_control())
        .take(SUBJECT_CHARS + 1)
        .collect();
    if out.chars().count() > SUBJECT_CHARS {
        let cut = out
            .char_indices()
            .nth(SUBJECT_CHARS)
            .map_or(out.len(), |(i, _)| i);
        out.truncate(cut);
        out.push('…');
    }
    out
}

fn thread_entry(t: &ActiveThread) -> DigestThread {
    // The most substantive message: the most prose; the earliest on ties.
    let best = t
        .messages
        .iter()
        .enumerate()
        .max_by(|(ia, a), (ib, b)| {
            excerpt::substance(&a.own_text)
                .cmp(&excerpt::substance(&b.own_text))
                .then_with(|| ib.cmp(ia))
        })
        .map(|(_, m)| m);
    DigestThread {
        root_message_id: t.root.as_str().to_string(),
        subject: shown_subject(&t.subject),
        messages: t.messages_week,
        messages_total: t.messages_total,
        new: t.new,
        // One name once: two addresses of one person are two participants, one name.
        participants: t.participants.iter().fold(Vec::new(), |mut names, p| {
            if !names.contains(&p.name) {
                names.push(p.name.clone());
            }
            names
        }),
        lists: t.lists.clone(),
        excerpt: best
            .map(|m| excerpt::excerpt(&m.own_text))
            .unwrap_or_default(),
        excerpt_author: best.map(|m| m.author.name.clone()).unwrap_or_default(),
        participant_keys: t.participants.iter().map(|p| p.key.clone()).collect(),
        message_ids: t
            .messages
            .iter()
            .map(|m| m.id.as_str().to_string())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_subjects_are_cut_and_lose_control_characters() {
        assert_eq!(shown_subject("plain"), "plain");
        assert_eq!(shown_subject("a\u{0}b\u{1b}[31mc"), "ab[31mc");
        let long = "é".repeat(1_000_000);
        let shown = shown_subject(&long);
        assert_eq!(shown.chars().count(), SUBJECT_CHARS + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(
            shown_subject(&"x".repeat(SUBJECT_CHARS)),
            "x".repeat(SUBJECT_CHARS)
        );
    }

    #[test]
    fn list_prefixes_are_taken_out_of_subjects_for_grouping() {
        let tags: HashSet<String> = ["rd", "r-pkg-devel"].map(String::from).into();
        let cases = [
            ("[Rd] head with n", "head with n"),
            ("Re: [R-pkg-devel] [nova] x", "Re: [nova] x"),
            ("[nova] [ Rd ] y", "[nova] y"),
            ("no tags", "no tags"),
            ("[unclosed Rd", "[unclosed Rd"),
            ("a [rd]", "a "),
        ];
        for (subject, want) in cases {
            assert_eq!(without_tags(subject, &tags), want, "{subject}");
        }
        assert_eq!(without_tags("[Rd] x", &HashSet::new()), "[Rd] x");
    }
}
