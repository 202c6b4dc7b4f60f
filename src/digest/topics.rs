//! Topic grouping (pure): a week's threads grouped by what they are about, a short label per
//! topic, and identity carried over from the previous week's topics. Values in, values out:
//! the same threads in the same order give the same topics, ties included. No clock, no IO,
//! no recursion.
//!
//! # How
//!
//! Each thread becomes a weighted feature vector built from every signal a technical list
//! offers (see [`Signals`]): subject tags (`[nova]`, kernel `nfsd:` prefixes), subject and
//! prose words of the authors' own text (quotes, signatures and footers are gone already;
//! attributions and trailers are dropped here), identifiers (`snake_case`, `CamelCase`,
//! `func()`), the paths a patch touches (`diff --git a/fs/nfsd/x.c` gives `fs/nfsd`), who takes
//! part, the lists, and last week's topics. Weights are sublinear term frequency × inverse
//! document frequency over the week × a per-signal factor; features seen in one thread only
//! are dropped (they cannot link two threads). Threads are then clustered by average linkage
//! over cosine similarity with a cut-off, using the nearest-neighbour chain algorithm
//! (`O(n²)` time and memory, no recursion). Last week's topics enter as *anchors*: pseudo-
//! threads holding each topic's centroid, which cannot link to each other, so a cluster that
//! absorbs an anchor continues that topic, with its label.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

/// One thread as grouping sees it.
#[derive(Debug, Clone)]
pub struct TopicThread<'a> {
    /// Stable identity across weeks (the root Message-ID).
    pub key: &'a str,
    /// Subject, tags included.
    pub subject: &'a str,
    /// The lists it reached.
    pub lists: &'a [String],
    /// The week's messages.
    pub messages: Vec<TopicMessage<'a>>,
}

/// One message of a [`TopicThread`].
#[derive(Debug, Clone, Copy)]
pub struct TopicMessage<'a> {
    /// Who wrote it (any stable key, e.g. a lowercased address; never shown).
    pub author: &'a str,
    /// Their display name: its words are people, not topics, wherever they appear in text.
    pub author_name: &'a str,
    /// The author's own text (quotes, signature and footers removed).
    pub text: &'a str,
}

/// A topic of an earlier week, as carried into the next one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorTopic {
    /// Its label, kept when the topic continues.
    pub label: String,
    /// Its centroid: feature keys and weights, heaviest first.
    pub centroid: Vec<(String, f32)>,
    /// Keys of its threads.
    pub threads: Vec<String>,
    /// Whether its label is a tag or directory name (kept while the topic continues) rather
    /// than a list of terms (kept only while they still describe it).
    #[serde(default)]
    pub strong: bool,
}

/// Which signals to use: all of them normally; fewer to measure what each contributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    /// Bracket tags and kernel-style `subsystem:` prefixes of the subject.
    pub tags: bool,
    /// Words of the subject and of the authors' prose.
    pub words: bool,
    /// Identifiers: `snake_case`, `CamelCase`, `func()`, `CONFIG_FOO`.
    pub identifiers: bool,
    /// Paths a patch touches and paths named in prose.
    pub paths: bool,
    /// Who writes in the thread.
    pub people: bool,
    /// The lists the thread reached.
    pub lists: bool,
    /// Last week's topics (anchors and continuing threads).
    pub history: bool,
}

impl Signals {
    /// Every signal.
    pub const ALL: Signals = Signals {
        tags: true,
        words: true,
        identifiers: true,
        paths: true,
        people: true,
        lists: true,
        history: true,
    };

    /// Parses a comma-separated subset such as `words,paths` (or `all`).
    pub fn parse(raw: &str) -> Result<Signals, String> {
        let mut s = Signals {
            tags: false,
            words: false,
            identifiers: false,
            paths: false,
            people: false,
            lists: false,
            history: false,
        };
        for name in raw.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "all" => s = Signals::ALL,
                "tags" => s.tags = true,
                "words" => s.words = true,
                "identifiers" => s.identifiers = true,
                "paths" => s.paths = true,
                "people" => s.people = true,
                "lists" => s.lists = true,
                "history" => s.history = true,
                other => {
                    return Err(format!(
                        "unknown signal {other:?}: use tags, words, identifiers, paths, people, lists, history or all"
                    ))
                }
            }
        }
        Ok(s)
    }
}

/// Tuning. The defaults were chosen on the kernel corpus with tags stripped (BENCHMARKS.md).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Params {
    /// Signals used.
    pub signals: Signals,
    /// Average-linkage similarity below which clusters are not joined.
    pub threshold: f32,
    /// Features kept per thread and kind (the heaviest).
    pub max_features: usize,
    /// Weight of each kind of feature: tags, words, identifiers, paths, people, lists, history.
    pub weights: [f32; 7],
    /// Content similarity (tags, words, identifiers, paths, history) two threads need before
    /// people and lists count at all.
    pub min_content: f32,
    /// A thread left alone joins the most similar topic when its average similarity reaches
    /// this fraction of `threshold`.
    pub attach: f32,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            signals: Signals::ALL,
            threshold: 0.3,
            max_features: 120,
            weights: [3.0, 1.0, 1.5, 2.0, 1.2, 0.8, 2.0],
            attach: 0.8,
            min_content: 0.0,
        }
    }
}

/// The week's grouping.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouping {
    /// Topics of two or more threads, most active first.
    pub topics: Vec<Topic>,
    /// Threads that belong to no topic, most active first (indices into the input).
    pub other: Vec<usize>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Topic {
    /// Short human label: the common tag, last week's label, or the most distinctive terms.
    pub label: String,
    /// The most distinctive terms, for people (no addresses, no list names).
    pub terms: Vec<String>,
    /// Indices into the input, most active first.
    pub threads: Vec<usize>,
    /// Whether it continues a topic of the prior.
    pub continued: bool,
    /// Centroid for the next week's prior.
    centroid: Vec<(String, f32)>,
    /// The common tag or directory name, if any.
    strong: Option<String>,
    /// Label candidates, lowercased.
    candidates: Vec<String>,
    /// Whether the label is a strong one carried over from the prior.
    inherited_strong: bool,
}

impl Grouping {
    /// The prior to pass when grouping the following week.
    pub fn carry(&self, threads: &[TopicThread<'_>]) -> Vec<PriorTopic> {
        self.topics
            .iter()
            .map(|t| PriorTopic {
                label: t.label.clone(),
                centroid: t.centroid.clone(),
                threads: t
                    .threads
                    .iter()
                    .filter_map(|&i| threads.get(i).map(|th| th.key.to_string()))
                    .collect(),
                strong: t.strong.is_some() || t.inherited_strong,
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// Features

/// Kinds of feature, each with its weight factor. The key of a feature is its kind's prefix
/// and its normalised text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Tag,
    Word,
    Ident,
    Path,
    Person,
    List,
    Prior,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Tag => "t:",
            Kind::Word => "w:",
            Kind::Ident => "i:",
            Kind::Path => "p:",
            Kind::Person => "a:",
            Kind::List => "l:",
            Kind::Prior => "h:",
        }
    }

    fn of_key(key: &str) -> Kind {
        match key.get(..2) {
            Some("t:") => Kind::Tag,
            Some("i:") => Kind::Ident,
            Some("p:") => Kind::Path,
            Some("a:") => Kind::Person,
            Some("l:") => Kind::List,
            Some("h:") => Kind::Prior,
            _ => Kind::Word,
        }
    }

    /// How much a feature of this kind is worth in a label (0: never shown).
    fn label_weight(self) -> f32 {
        match self {
            Kind::Tag => 3.0,
            Kind::Ident | Kind::Path => 1.3,
            Kind::Word => 1.0,
            Kind::Person | Kind::List | Kind::Prior => 0.0,
        }
    }
}

/// Raw term counts of one thread, plus the surface form of each word stem.
#[derive(Debug, Default)]
struct Counts {
    counts: BTreeMap<String, f32>,
    /// Tags seen (normalised), for labels.
    tags: Vec<String>,
}

impl Counts {
    fn add(&mut self, kind: Kind, text: &str, n: f32) {
        let mut key = String::with_capacity(2 + text.len());
        key.push_str(kind.prefix());
        key.push_str(text);
        *self.counts.entry(key).or_insert(0.0) += n;
    }
}

/// Subject tags that say what kind of mail it is, not what it is about.
const GENERIC_TAGS: &[&str] = &[
    "patch",
    "rfc",
    "resend",
    "pull",
    "git",
    "ann",
    "announce",
    "announcement",
    "bug",
    "question",
    "discuss",
    "discussion",
    "wip",
    "draft",
    "fyi",
    "help",
    "urgent",
    "off-topic",
    "ot",
    "proposal",
    "review",
    "rfc patch",
    "cfp",
    "news",
    "info",
    "solved",
    "closed",
    "fwd",
    "fw",
    "re",
    "update",
    "ping",
    "net",
    "next",
    "net-next",
    "stable",
    "for-next",
];

/// English and mailing-list words too common to say anything about a topic.
const STOPWORDS: &[&str] = &[
    "a",
    "about",
    "above",
    "actually",
    "after",
    "again",
    "against",
    "all",
    "also",
    "although",
    "always",
    "am",
    "an",
    "and",
    "another",
    "any",
    "anyone",
    "anything",
    "anyway",
    "are",
    "around",
    "as",
    "ask",
    "at",
    "available",
    "back",
    "based",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "best",
    "better",
    "between",
    "both",
    "but",
    "by",
    "can",
    "cannot",
    "case",
    "cases",
    "change",
    "changed",
    "changes",
    "check",
    "code",
    "commit",
    "could",
    "current",
    "currently",
    "did",
    "do",
    "does",
    "doing",
    "done",
    "down",
    "during",
    "each",
    "either",
    "else",
    "end",
    "enough",
    "even",
    "ever",
    "every",
    "example",
    "fact",
    "few",
    "file",
    "find",
    "first",
    "fix",
    "fixed",
    "fixes",
    "following",
    "for",
    "found",
    "from",
    "further",
    "get",
    "gets",
    "getting",
    "give",
    "given",
    "go",
    "going",
    "good",
    "got",
    "had",
    "has",
    "have",
    "having",
    "he",
    "hello",
    "help",
    "her",
    "here",
    "hi",
    "him",
    "his",
    "how",
    "however",
    "i",
    "idea",
    "if",
    "in",
    "instead",
    "into",
    "is",
    "isn",
    "issue",
    "issues",
    "it",
    "its",
    "just",
    "keep",
    "kind",
    "know",
    "last",
    "later",
    "least",
    "less",
    "let",
    "like",
    "likely",
    "line",
    "lines",
    "look",
    "looks",
    "lot",
    "made",
    "make",
    "makes",
    "many",
    "may",
    "maybe",
    "me",
    "mean",
    "means",
    "might",
    "more",
    "most",
    "much",
    "must",
    "my",
    "need",
    "needed",
    "needs",
    "new",
    "next",
    "no",
    "not",
    "note",
    "now",
    "of",
    "off",
    "ok",
    "okay",
    "old",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "others",
    "otherwise",
    "our",
    "out",
    "over",
    "own",
    "part",
    "patch",
    "patches",
    "people",
    "perhaps",
    "please",
    "point",
    "possible",
    "pretty",
    "probably",
    "problem",
    "put",
    "quite",
    "rather",
    "really",
    "reason",
    "regards",
    "right",
    "same",
    "say",
    "see",
    "seems",
    "series",
    "set",
    "should",
    "since",
    "so",
    "some",
    "something",
    "still",
    "such",
    "sure",
    "take",
    "than",
    "thank",
    "thanks",
    "that",
    "the",
    "their",
    "them",
    "then",
    "there",
    "these",
    "they",
    "thing",
    "things",
    "think",
    "this",
    "those",
    "though",
    "through",
    "time",
    "to",
    "too",
    "true",
    "try",
    "two",
    "under",
    "until",
    "up",
    "us",
    "use",
    "used",
    "uses",
    "using",
    "version",
    "very",
    "via",
    "want",
    "wants",
    "was",
    "way",
    "we",
    "well",
    "were",
    "what",
    "when",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "why",
    "will",
    "with",
    "without",
    "work",
    "works",
    "would",
    "wrote",
    "yes",
    "yet",
    "you",
    "your",
    "don",
    "doesn",
    "didn",
    "won",
    "wouldn",
    "shouldn",
    "couldn",
    "aren",
    "wasn",
    "ll",
    "ve",
    "re",
    "thx",
    "cheers",
    "best",
    "anything",
    "everything",
    "nothing",
    "someone",
    "everyone",
    "sorry",
    "agree",
    "agreed",
    "looking",
    "looked",
    "add",
    "added",
    "adds",
    "adding",
    "remove",
    "removed",
    "removes",
    "call",
    "called",
    "calls",
    "return",
    "returns",
    "value",
    "values",
    "true",
    "false",
    "null",
    "void",
    "int",
    "struct",
    "static",
    "const",
    "unsigned",
    "long",
    "char",
    "bool",
    "else",
    "goto",
    "sizeof",
    "default",
    "break",
    "continue",
    "while",
    "for",
    "https",
    "http",
    "www",
    "com",
    "org",
    "net",
    "html",
    "htm",
    "mailto",
    "link",
    "below",
    "above",
    "signed",
    "reviewed",
    "acked",
    "tested",
    "reported",
    "suggested",
    "cc",
    "fixes",
    "linux",
    "kernel",
    "thread",
    "message",
    "mail",
    "email",
    "list",
    "reply",
    "question",
    "answer",
    "week",
    "today",
    "yesterday",
    "tomorrow",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "mon",
    "tue",
    "wed",
    "thu",
    "fri",
    "sat",
    "sun",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Body lines that are trailers or pasted headers: people and commit subjects, not content.
const TRAILERS: &[&str] = &[
    "signed-off-by:",
    "reviewed-by:",
    "acked-by:",
    "tested-by:",
    "reported-by:",
    "suggested-by:",
    "co-developed-by:",
    "reported-and-tested-by:",
    "cc:",
    "to:",
    "from:",
    "subject:",
    "date:",
    "link:",
    "closes:",
    "fixes:",
    "message-id:",
    "change-id:",
    "in-reply-to:",
    "references:",
    "base-commit:",
];

/// [`STOPWORDS`] as a set: every token is looked up, so this must not be a linear scan.
static STOPWORD_SET: std::sync::LazyLock<std::collections::HashSet<&'static str>> =
    std::sync::LazyLock::new(|| STOPWORDS.iter().copied().collect());

fn is_stopword(w: &str) -> bool {
    STOPWORD_SET.contains(w)
}

/// A light English stemmer: plural and verb endings, so `delegations`/`delegation` and
/// `mounted`/`mounting`/`mount` meet. Never shown: labels use the most frequent surface form.
fn stem(word: &str) -> String {
    let w = word;
    let n = w.len();
    if n > 4 && w.ends_with("ies") {
        return format!("{}y", &w[..n - 3]);
    }
    if n > 6 && w.ends_with("ing") {
        return w[..n - 3].to_string();
    }
    if n > 5 && w.ends_with("ed") && !w.ends_with("eed") {
        return w[..n - 2].to_string();
    }
    if n > 4 && w.ends_with('s') && !w.ends_with("ss") && !w.ends_with("us") && !w.ends_with("is") {
        return w[..n - 1].to_string();
    }
    w.to_string()
}

/// The bracket tags that are a list's subject prefix rather than a topic (`[Rd]` on r-devel,
/// `[R-pkg-devel]`), from `(list, subject)` pairs of the lists' recent messages: the tags on
/// at least 3 in 5 of a list's subjects, given at least 10 of them. As features they would
/// only repeat the lists signal, and as labels they would name a topic after a list; callers
/// take them out of the subjects they group.
pub fn list_prefix_tags<'a>(
    subjects: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> std::collections::HashSet<String> {
    let mut per_list: HashMap<&str, (usize, HashMap<String, usize>)> = HashMap::new();
    for (list, subject) in subjects {
        let (n, counts) = per_list.entry(list).or_default();
        *n += 1;
        let mut tags = crate::index::subject_tags(subject);
        tags.sort_unstable();
        tags.dedup();
        for tag in tags {
            *counts.entry(tag).or_default() += 1;
        }
    }
    per_list
        .into_values()
        .filter(|(n, _)| *n >= 10)
        .flat_map(|(n, counts)| {
            counts
                .into_iter()
                .filter(move |&(_, c)| c * 5 >= n * 3)
                .map(|(tag, _)| tag)
        })
        .collect()
}

/// Strips reply prefixes and bracket tags from a subject; returns the tags and the rest.
fn split_subject(subject: &str) -> (Vec<String>, &str) {
    let tags = crate::index::subject_tags(subject);
    let mut rest = subject.trim_start();
    // Each step consumes at least one byte: terminates in linear time.
    loop {
        let reply = ["re:", "fwd:", "fw:", "aw:", "sv:", "antw:", "re :"]
            .iter()
            .find(|p| {
                rest.get(..p.len())
                    .is_some_and(|r| r.eq_ignore_ascii_case(p))
            });
        if let Some(p) = reply {
            rest = rest[p.len()..].trim_start();
            continue;
        }
        if let Some(inner) = rest.strip_prefix('[') {
            if let Some(close) = inner.find(']') {
                rest = inner[close + 1..].trim_start();
                continue;
            }
        }
        break;
    }
    (tags, rest)
}

/// Kernel-style `subsystem:` prefixes at the start of a (tag-free) subject: `nfsd: fix` gives
/// `nfsd`; `SUNRPC: xprtrdma: x` gives `sunrpc`, `xprtrdma`; `pNFS/flexfiles:` gives `pnfs`
/// and `pnfs/flexfiles`. Returns the prefixes and the rest.
fn subject_prefixes(subject: &str) -> (Vec<String>, &str) {
    let mut out = Vec::new();
    let mut rest = subject;
    for _ in 0..3 {
        let Some(colon) = rest.find(':') else { break };
        let word = &rest[..colon];
        let after = &rest[colon + 1..];
        let valid = !word.is_empty()
            && word.len() <= 32
            && word.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.'))
            && after.starts_with([' ', '\t']);
        let lower = word.to_ascii_lowercase();
        if !valid || matches!(lower.as_str(), "re" | "fwd" | "fw" | "aw" | "sv" | "antw") {
            break;
        }
        if let Some((head, _)) = lower.split_once('/') {
            out.push(head.to_string());
        }
        out.push(lower);
        rest = after.trim_start();
    }
    (out, rest)
}

/// Whether a token looks like an identifier rather than a word: it starts like a C
/// identifier and has an underscore, inner capitals (`CamelCase`) or a call's parenthesis.
fn identifier_kind(token: &str, followed_by_paren: bool) -> bool {
    let b = token.as_bytes();
    let starts_ok = b
        .first()
        .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_');
    if !starts_ok
        || !token.is_ascii()
        || !b.iter().any(u8::is_ascii_alphabetic)
        || is_hex_like(token)
    {
        return false;
    }
    if token.contains('_') || followed_by_paren {
        return true;
    }
    // CamelCase: a lowercase letter followed by an uppercase one.
    b.windows(2)
        .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
}

/// `0x1f0`, `deadbeef`, `a1b2c3d4e5`: addresses, offsets and hashes, not names.
fn is_hex_like(token: &str) -> bool {
    let t = token
        .strip_prefix("0x")
        .or_else(|| token.strip_prefix("0X"))
        .unwrap_or(token);
    let hex = !t.is_empty() && t.bytes().all(|b| b.is_ascii_hexdigit());
    hex && (token.len() != t.len() || t.bytes().any(|b| b.is_ascii_digit()) && t.len() >= 7)
}

/// Lines that are machine output (stack traces, kernel logs, hex dumps): they name functions
/// of every subsystem at once and say nothing about the topic.
fn is_machine_output(line: &str) -> bool {
    let t = line.trim_start();
    if line.contains("+0x") || t.starts_with("RIP:") || t.starts_with("Call Trace") {
        return true;
    }
    // "[  123.456789] ..." kernel log time stamps.
    if let Some(rest) = t.strip_prefix('[') {
        let inside: String = rest.chars().take_while(|&c| c != ']').collect();
        if !inside.is_empty()
            && inside
                .chars()
                .all(|c| c.is_ascii_digit() || c == '.' || c == ' ')
        {
            return true;
        }
    }
    false
}

/// Words of people's names and address local parts (`chuck.lever` gives `chuck`, `lever`):
/// greetings and sign-offs name people, who are a signal of their own.
pub(crate) fn name_words(name: &str) -> impl Iterator<Item = String> + '_ {
    let local = name.split('@').next().unwrap_or(name);
    local
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| w.chars().count() >= 3)
        .map(str::to_lowercase)
}

/// Turns text into features. Holds what is shared across the week's threads: the signals in
/// use, the words of people's names, and the surface forms for labels.
struct Extractor<'a> {
    signals: Signals,
    names: &'a std::collections::HashSet<String>,
    surface: SurfaceForms,
}

impl Extractor<'_> {
    /// Adds a path's features: each directory prefix of depth two or more, the file itself and
    /// its stem as an identifier.
    fn add_path(&mut self, counts: &mut Counts, raw: &str, n: f32) {
        let path = raw.trim_matches(|c: char| c == '/' || c == '.' || c == ',' || c == ':');
        let path_is_dir = raw.trim_end_matches(['.', ',', ':']).ends_with('/');
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        if parts.is_empty() || parts.iter().any(|p| *p == ".." || p.len() > 64) {
            return;
        }
        if self.signals.paths {
            // Directories end in `/` (`fs/nfsd/`), so labels can tell them from files.
            let mut prefix = String::new();
            for (i, part) in parts.iter().enumerate() {
                if i > 0 {
                    prefix.push('/');
                }
                prefix.push_str(part);
                let is_dir = i + 1 < parts.len() || path_is_dir;
                if i >= 1 || parts.len() == 1 {
                    let key = prefix.to_ascii_lowercase();
                    if is_dir {
                        counts.add(Kind::Path, &format!("{key}/"), n);
                    } else {
                        counts.add(Kind::Path, &key, n);
                    }
                }
            }
        }
        if self.signals.identifiers {
            if let Some(file) = parts.last() {
                let stem = file.split('.').next().unwrap_or(file);
                if stem.len() >= 3 && identifier_like_stem(stem) {
                    counts.add(Kind::Ident, &stem.to_ascii_lowercase(), n);
                }
            }
        }
    }

    /// Feeds one message's own text into `counts`: prose words and identifiers, paths, and for
    /// a patch the files it touches and the identifiers of its changed lines.
    fn add_text(&mut self, counts: &mut Counts, text: &str) {
        #[derive(PartialEq)]
        enum Zone {
            Prose,
            Diffstat,
            Diff,
            /// After "Thanks," or "Regards": a signature, even without the `-- ` line.
            Signature,
        }
        let mut seen_prose = false;
        let mut zone = Zone::Prose;
        // Bound the work per message: a 5 MB patch says no more about its topic than its
        // first 200 KB.
        let mut budget: usize = 200_000;
        for line in text.lines() {
            if budget < line.len() {
                break;
            }
            budget -= line.len();
            let trimmed = line.trim();
            if let Some(rest) = line.strip_prefix("diff --git ") {
                zone = Zone::Diff;
                if let Some(a) = rest.split_whitespace().next() {
                    self.add_path(counts, a.strip_prefix("a/").unwrap_or(a), 1.0);
                }
                continue;
            }
            if line.starts_with("--- a/") || line.starts_with("+++ b/") {
                zone = Zone::Diff;
                continue;
            }
            if line == "---" && zone == Zone::Prose {
                zone = Zone::Diffstat;
                continue;
            }
            if is_machine_output(line) {
                continue;
            }
            match zone {
                Zone::Diffstat => {
                    if let Some((path, stat)) = line.split_once('|') {
                        if stat.trim_start().starts_with(|c: char| c.is_ascii_digit())
                            || stat.contains("Bin")
                        {
                            self.add_path(counts, path.trim(), 1.0);
                        }
                    }
                }
                Zone::Diff => {
                    if let Some(ctx) = line.strip_prefix("@@") {
                        // The hunk header's context names the function being changed.
                        if let Some((_, func)) = ctx.split_once("@@") {
                            self.add_tokens(counts, func, true);
                        }
                    } else if line.starts_with('+') || line.starts_with('-') {
                        self.add_tokens(counts, &line[1..], true);
                    }
                }
                Zone::Signature => {}
                Zone::Prose => {
                    if seen_prose && super::excerpt::is_closing(trimmed) {
                        zone = Zone::Signature;
                        continue;
                    }
                    seen_prose |= !trimmed.is_empty();
                    let lower = trimmed.to_ascii_lowercase();
                    if TRAILERS.iter().any(|t| lower.starts_with(t))
                        || lower.ends_with("wrote:")
                        || lower.ends_with("écrit :")
                        || lower.starts_with("on ") && lower.contains(" wrote")
                    {
                        continue;
                    }
                    self.add_tokens(counts, trimmed, false);
                }
            }
        }
    }

    /// Tokenises a line into words, identifiers and paths. `code` lines (changed lines of a
    /// diff) contribute identifiers and paths only: C keywords and variable names say little.
    fn add_tokens(&mut self, counts: &mut Counts, line: &str, code: bool) {
        // Email addresses name people, who are a signal of their own.
        let without_addresses;
        let line = if line.contains('@') {
            without_addresses = line
                .split_whitespace()
                .filter(|w| !w.contains('@'))
                .collect::<Vec<_>>()
                .join(" ");
            without_addresses.as_str()
        } else {
            line
        };
        let bytes = line.as_bytes();
        // Bytes of non-ASCII characters count as letters, so `Göttsche` stays one word; every
        // run boundary is then an ASCII byte, hence a character boundary.
        let is_tok = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80;
        let is_path = |b: u8| is_tok(b) || matches!(b, b'/' | b'.' | b'-');
        let mut i = 0;
        while i < bytes.len() {
            if !is_tok(bytes[i]) && bytes[i] != b'/' {
                i += 1;
                continue;
            }
            // Longest run of path characters, then decide what it is. The run is ASCII, so
            // slicing at its ends never splits a character.
            let start = i;
            while i < bytes.len() && is_path(bytes[i]) {
                i += 1;
            }
            let run = line[start..i].trim_end_matches(['.', '-']);
            // A URL: skip its remainder too.
            if i + 2 < bytes.len() && bytes[i] == b':' && bytes[i + 1] == b'/' {
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                    i += 1;
                }
                continue;
            }
            if looks_like_path(run) {
                self.add_path(counts, run, 1.0);
                continue;
            }
            // Split the run at path punctuation into tokens.
            let mut offset = 0;
            for piece in run.split(['/', '.', '-']) {
                let piece_end = start + offset + piece.len();
                offset += piece.len() + 1;
                if piece.is_empty() || piece.len() > 64 {
                    continue;
                }
                let paren = bytes.get(piece_end) == Some(&b'(');
                if identifier_kind(piece, paren) {
                    if self.signals.identifiers && piece.len() >= 3 {
                        let trimmed = piece.trim_matches('_');
                        let lower = trimmed.to_ascii_lowercase();
                        if lower.len() >= 3 && !is_stopword(&lower) {
                            self.surface.note(&format!("i:{lower}"), trimmed);
                            counts.add(Kind::Ident, &lower, 1.0);
                        }
                    }
                    continue;
                }
                if code || !self.signals.words {
                    continue;
                }
                if piece.chars().count() < 3
                    || !piece.chars().next().is_some_and(char::is_alphabetic)
                {
                    continue;
                }
                // Words with digits are versions, sizes and hashes unless short ("nfs4").
                let digits = piece.bytes().filter(u8::is_ascii_digit).count();
                if digits > 1 || is_hex_like(piece) {
                    continue;
                }
                let lower = piece.to_lowercase();
                if is_stopword(&lower) || self.names.contains(&lower) {
                    continue;
                }
                let stemmed = stem(&lower);
                if is_stopword(&stemmed) {
                    continue;
                }
                self.surface.note(&format!("w:{stemmed}"), &lower);
                counts.add(Kind::Word, &stemmed, 1.0);
            }
        }
    }

    /// The features of one thread, before weighting.
    fn thread_counts(&mut self, thread: &TopicThread<'_>) -> Counts {
        let signals = self.signals;
        let mut counts = Counts::default();
        let (bracket_tags, rest) = split_subject(thread.subject);
        let (prefixes, rest) = subject_prefixes(rest);
        let lists_lower: Vec<String> = thread.lists.iter().map(|l| l.to_lowercase()).collect();
        let mut tags: Vec<String> = Vec::new();
        for t in bracket_tags.into_iter().chain(prefixes) {
            let generic = GENERIC_TAGS.contains(&t.as_str())
                || lists_lower
                    .iter()
                    .any(|l| *l == t || l.split(['-', '.']).next() == Some(t.as_str()))
                || t.split_whitespace().count() > 1;
            if !generic && !tags.contains(&t) {
                tags.push(t);
            }
        }
        if signals.tags {
            for t in &tags {
                counts.add(Kind::Tag, t, 1.0);
            }
            counts.tags = tags;
        }
        // The subject says what the thread is about more densely than any body: count it
        // thrice.
        let mut subject_counts = Counts::default();
        self.add_tokens(&mut subject_counts, rest, false);
        for (k, v) in subject_counts.counts {
            *counts.counts.entry(k).or_insert(0.0) += 3.0 * v;
        }
        for m in &thread.messages {
            self.add_text(&mut counts, m.text);
            if signals.people && !m.author.is_empty() {
                counts.add(Kind::Person, &m.author.to_lowercase(), 1.0);
            }
        }
        if signals.lists {
            for l in &lists_lower {
                counts.add(Kind::List, l, 1.0);
            }
        }
        counts
    }
}

/// Most frequent surface form of each word stem and identifier, for labels.
#[derive(Debug, Default)]
struct SurfaceForms {
    forms: HashMap<String, BTreeMap<String, u32>>,
}

impl SurfaceForms {
    fn note(&mut self, key: &str, form: &str) {
        let entry = self.forms.entry(key.to_string()).or_default();
        if entry.len() < 8 || entry.contains_key(form) {
            *entry.entry(form.to_string()).or_insert(0) += 1;
        }
    }

    fn best(&self, key: &str) -> Option<&str> {
        let forms = self.forms.get(key)?;
        // Most frequent; ties by the lexically smallest, so the choice is deterministic.
        forms
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(f, _)| f.as_str())
    }
}

/// A file stem worth an identifier feature: starts with a letter, not a number or a hash.
fn identifier_like_stem(stem: &str) -> bool {
    stem.as_bytes()[0].is_ascii_alphabetic() && !is_hex_like(stem)
}

/// Whether a token is a path worth a feature: slashes between name-like parts (each starting
/// with a letter, `_` or `.`), not a URL, an address, a date, a size or an offset pair.
fn looks_like_path(token: &str) -> bool {
    if !token.contains('/') || token.contains("://") || token.contains('@') {
        return false;
    }
    let parts: Vec<&str> = token.split('/').filter(|p| !p.is_empty()).collect();
    // "and/or", "read/write": prose, unless a part looks like a file or a name.
    let plain = |p: &str| p.bytes().all(|b| b.is_ascii_lowercase());
    if parts.len() == 2 && parts.iter().all(|p| plain(p)) && parts.iter().any(|p| is_stopword(p)) {
        return false;
    }
    parts.len() >= 2
        && parts.iter().all(|p| {
            p.as_bytes()
                .first()
                .is_some_and(|&c| c.is_ascii_alphabetic() || c == b'_' || c == b'.')
                && !is_hex_like(p)
        })
}

// ---------------------------------------------------------------------------------------------
// Vectors

/// Feature ids in order of first appearance, so the numbering (and everything after it) is
/// deterministic.
#[derive(Debug, Default)]
struct Vocabulary {
    ids: HashMap<String, u32>,
    keys: Vec<String>,
}

impl Vocabulary {
    fn id(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.keys.len() as u32;
        self.ids.insert(key.to_string(), id);
        self.keys.push(key.to_string());
        id
    }
}

/// A sparse unit vector, sorted by feature id.
type Vector = Vec<(u32, f32)>;

fn normalise(v: &mut Vector) {
    let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
    if norm > 0.0 {
        for (_, w) in v.iter_mut() {
            *w /= norm;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Grouping

/// The most threads one week's grouping compares. Clustering holds a similarity for every
/// pair of threads (two `n²` matrices of `f32`): 2,000 threads take 32 MB and well under a
/// second, while 24,000 took 4.7 GB. A week with more threads (a huge archive's busiest
/// lists together, or an attack) groups its most active 2,000 and lists the rest, all
/// less active, after them under the other threads.
pub const MAX_GROUPED_THREADS: usize = 2_000;

/// Groups a week's threads into topics. `prior` is the previous week's [`Grouping::carry`]
/// (empty when there is no history). Beyond [`MAX_GROUPED_THREADS`], the less active threads
/// go to [`Grouping::other`] ungrouped.
pub fn group(threads: &[TopicThread<'_>], prior: &[PriorTopic], params: &Params) -> Grouping {
    group_at_most(threads, prior, params, MAX_GROUPED_THREADS)
}

fn group_at_most(
    threads: &[TopicThread<'_>],
    prior: &[PriorTopic],
    params: &Params,
    max: usize,
) -> Grouping {
    if threads.len() <= max {
        return group_all(threads, prior, params);
    }
    // Most active first, then by key: the order `other` is listed in.
    let mut order: Vec<usize> = (0..threads.len()).collect();
    order.sort_by(|&a, &b| {
        threads[b]
            .messages
            .len()
            .cmp(&threads[a].messages.len())
            .then_with(|| threads[a].key.cmp(threads[b].key))
    });
    let (kept, rest) = order.split_at(max);
    let mut kept = kept.to_vec();
    kept.sort_unstable();
    let subset: Vec<TopicThread<'_>> = kept.iter().map(|&i| threads[i].clone()).collect();
    let mut grouping = group_all(&subset, prior, params);
    for t in &mut grouping.topics {
        for i in &mut t.threads {
            *i = kept[*i];
        }
    }
    for i in &mut grouping.other {
        *i = kept[*i];
    }
    // Every grouped thread comes before every one left out in that order, so appending
    // keeps `other` most active first.
    grouping.other.extend_from_slice(rest);
    grouping
}

fn group_all(threads: &[TopicThread<'_>], prior: &[PriorTopic], params: &Params) -> Grouping {
    let n = threads.len();
    let signals = params.signals;
    let prior: &[PriorTopic] = if signals.history { prior } else { &[] };
    let mut names: std::collections::HashSet<String> = std::collections::HashSet::new();
    for t in threads {
        for m in &t.messages {
            names.extend(name_words(m.author));
            names.extend(name_words(m.author_name));
        }
    }
    let mut extractor = Extractor {
        signals,
        names: &names,
        surface: SurfaceForms::default(),
    };
    let mut all_counts: Vec<Counts> = threads.iter().map(|t| extractor.thread_counts(t)).collect();
    let surface = extractor.surface;

    // Continuing threads carry the label of last week's topic as a feature.
    let mut prior_of: HashMap<&str, usize> = HashMap::new();
    for (p, topic) in prior.iter().enumerate() {
        for key in &topic.threads {
            prior_of.entry(key.as_str()).or_insert(p);
        }
    }
    for (t, counts) in threads.iter().zip(all_counts.iter_mut()) {
        if let Some(&p) = prior_of.get(t.key) {
            counts.add(Kind::Prior, &prior_label_key(p, &prior[p].label), 1.0);
        }
    }

    // Vocabulary and document frequencies.
    let mut vocab = Vocabulary::default();
    let mut df: Vec<u32> = Vec::new();
    let mut raw: Vec<Vec<(u32, f32)>> = Vec::with_capacity(n);
    for counts in &all_counts {
        let mut v = Vec::with_capacity(counts.counts.len());
        for (key, &tf) in &counts.counts {
            let id = vocab.id(key);
            if df.len() <= id as usize {
                df.resize(id as usize + 1, 0);
            }
            df[id as usize] += 1;
            v.push((id, tf));
        }
        raw.push(v);
    }
    let docs = n as f32;
    let idf = |d: u32| (1.0 + docs / d as f32).ln();
    // Each kind of feature is weighted and normalised as a block, then the blocks are scaled
    // by their kind's weight: a patch with hundreds of identifiers must not drown the paths it
    // touches or the people who discuss it.
    let mut vectors: Vec<Vector> = raw
        .iter()
        .map(|v| {
            let mut blocks: BTreeMap<Kind, Vector> = BTreeMap::new();
            for &(id, tf) in v {
                let kind = Kind::of_key(&vocab.keys[id as usize]);
                // A feature of one thread links nothing, except a continuing thread's marker,
                // which its topic's anchor also holds.
                if df[id as usize] < 2 && kind != Kind::Prior {
                    continue;
                }
                blocks
                    .entry(kind)
                    .or_default()
                    .push((id, (1.0 + tf.ln()) * idf(df[id as usize])));
            }
            let mut out: Vector = Vec::new();
            for (kind, mut block) in blocks {
                if block.len() > params.max_features {
                    block.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                    block.truncate(params.max_features);
                }
                normalise(&mut block);
                let w = params.weights[kind as usize];
                out.extend(block.into_iter().map(|(id, x)| (id, x * w)));
            }
            out.sort_by_key(|&(id, _)| id);
            normalise(&mut out);
            out
        })
        .collect();

    // Anchors: last week's topics as pseudo-threads over this week's vocabulary.
    let anchors_from = vectors.len();
    for (p, topic) in prior.iter().enumerate() {
        // Built like a thread's vector: the centroid's content as one unit block, the marker
        // of the topic as the history block, each scaled by its weight.
        let mut v: Vector = topic
            .centroid
            .iter()
            .filter_map(|(key, w)| vocab.ids.get(key).map(|&id| (id, *w)))
            .filter(|&(id, _)| (id as usize) < df.len())
            .collect();
        v.sort_by_key(|&(id, _)| id);
        v.dedup_by_key(|(id, _)| *id);
        normalise(&mut v);
        let own = prior_label_key(p, &topic.label);
        if let Some(&id) = vocab.ids.get(&format!("{}{own}", Kind::Prior.prefix())) {
            v.push((id, params.weights[Kind::Prior as usize]));
            v.sort_by_key(|&(id, _)| id);
        }
        normalise(&mut v);
        vectors.push(v);
    }

    let total = vectors.len();
    let context: Vec<bool> = vocab
        .keys
        .iter()
        .map(|k| matches!(Kind::of_key(k), Kind::Person | Kind::List))
        .collect();
    let mut sim = similarities(&vectors, total, &context, params.min_content);
    // Anchors never link to each other: two of last week's topics stay two.
    for a in anchors_from..total {
        for b in anchors_from..total {
            if a != b {
                sim[a * total + b] = -1e3;
            }
        }
    }
    let cluster_of = average_linkage(&mut sim, total, params.threshold);

    // Collect clusters: members (threads) and their anchor, if any.
    let mut members: BTreeMap<usize, (Vec<usize>, Option<usize>)> = BTreeMap::new();
    for (i, &c) in cluster_of.iter().enumerate() {
        let entry = members.entry(c).or_default();
        if i < anchors_from {
            entry.0.push(i);
        } else {
            entry.1 = Some(i - anchors_from);
        }
    }

    let activity = |i: usize| threads[i].messages.len();
    let mut clusters: Vec<(Vec<usize>, Option<usize>)> = members
        .into_values()
        .filter(|(l, _)| !l.is_empty())
        .collect();
    attach_singletons(&mut clusters, &vectors, params.attach * params.threshold);

    let mut topics: Vec<Topic> = Vec::new();
    let mut other: Vec<usize> = Vec::new();
    for (mut list, anchor) in clusters {
        list.sort_by(|&a, &b| {
            activity(b)
                .cmp(&activity(a))
                .then_with(|| threads[a].key.cmp(threads[b].key))
        });
        if list.len() < 2 {
            other.extend(list);
            continue;
        }
        let d = describe(&list, &vectors, &vocab, &df, &surface, &all_counts);
        let fresh = d.strong.clone().unwrap_or_else(|| {
            if d.terms.is_empty() {
                subject_label(threads[list[0]].subject)
            } else {
                terms_label(&d.terms)
            }
        });
        let (label, continued) = match anchor {
            // A continuing topic keeps its label while the label still describes it; a topic
            // that drifted away from its old name gets a new one (and keeps its identity).
            Some(p)
                if d.strong.is_none()
                    && (prior[p].strong || still_describes(&prior[p].label, &d.candidates)) =>
            {
                (prior[p].label.clone(), true)
            }
            Some(p) if prior[p].label == fresh => (fresh, true),
            Some(_) => (fresh, true),
            None => (fresh, false),
        };
        let inherited_strong = anchor.is_some_and(|p| prior[p].strong && prior[p].label == label);
        topics.push(Topic {
            label,
            terms: d.terms,
            threads: list,
            continued,
            centroid: d.centroid,
            strong: d.strong,
            candidates: d.candidates,
            inherited_strong,
        });
    }

    // Clusters without an anchor may still continue a topic whose anchor went unused: match
    // by centroid similarity, best pairs first.
    match_unanchored(&mut topics, prior);

    // Two topics must not share a label: the later one gets its terms added.
    topics.sort_by(|a, b| {
        topic_activity(b, threads)
            .cmp(&topic_activity(a, threads))
            .then_with(|| b.threads.len().cmp(&a.threads.len()))
            .then_with(|| a.label.cmp(&b.label))
            .then_with(|| threads[a.threads[0]].key.cmp(threads[b.threads[0]].key))
    });
    let mut seen: Vec<String> = Vec::new();
    for t in &mut topics {
        if seen.contains(&t.label) {
            let extra = t
                .terms
                .iter()
                .find(|term| !t.label.contains(term.as_str()))
                .cloned()
                .unwrap_or_else(|| format!("{}", t.threads.len()));
            t.label = format!("{} ({extra})", t.label);
        }
        seen.push(t.label.clone());
    }
    other.sort_by(|&a, &b| {
        activity(b)
            .cmp(&activity(a))
            .then_with(|| threads[a].key.cmp(threads[b].key))
    });
    Grouping { topics, other }
}

fn topic_activity(t: &Topic, threads: &[TopicThread<'_>]) -> usize {
    t.threads.iter().map(|&i| threads[i].messages.len()).sum()
}

/// The feature text that marks threads continuing prior topic `p`.
fn prior_label_key(p: usize, label: &str) -> String {
    format!("{p}:{}", label.to_lowercase())
}

/// Cosine similarities of unit vectors as a dense row-major matrix, accumulated through an
/// inverted index so the cost follows the shared features, not `n²` dot products.
fn similarities(vectors: &[Vector], n: usize, context: &[bool], min_content: f32) -> Vec<f32> {
    let mut postings: Vec<Vec<(u32, f32)>> = vec![Vec::new(); context.len()];
    for (doc, v) in vectors.iter().enumerate() {
        for &(id, w) in v {
            postings[id as usize].push((doc as u32, w));
        }
    }
    let mut sim = vec![0.0f32; n * n];
    let mut content = vec![0.0f32; n * n];
    for (id, list) in postings.iter().enumerate() {
        let target = if context[id] { &mut sim } else { &mut content };
        for (x, &(a, wa)) in list.iter().enumerate() {
            for &(b, wb) in &list[x + 1..] {
                let s = wa * wb;
                target[a as usize * n + b as usize] += s;
                target[b as usize * n + a as usize] += s;
            }
        }
    }
    // Who takes part and where only strengthen a link that the content makes: two threads by
    // the same maintainer about different things stay apart.
    for (s, c) in sim.iter_mut().zip(&content) {
        *s = if *c > min_content { *s + *c } else { 0.0 };
    }
    sim
}

/// Average-linkage agglomerative clustering by the nearest-neighbour chain algorithm, stopping
/// below `threshold`. `sim` is the dense similarity matrix (overwritten). Returns the cluster of
/// each item, named by its smallest member. Deterministic: ties go to the smaller index.
///
/// Average linkage is reducible (joining two clusters never brings the result closer to a third
/// than the nearer of the two was), so a cluster whose best similarity is below the threshold
/// can never be joined later, and the chain finds exactly the merges of the classic algorithm.
fn average_linkage(sim: &mut [f32], n: usize, threshold: f32) -> Vec<usize> {
    let mut size = vec![1usize; n];
    let mut alive = vec![true; n]; // not merged into another cluster
    let mut done = vec![false; n]; // cannot merge any more
    let mut parent: Vec<usize> = (0..n).collect();
    let mut chain: Vec<usize> = Vec::new();
    let mut next_start = 0usize;
    loop {
        if chain.is_empty() {
            while next_start < n && (!alive[next_start] || done[next_start]) {
                next_start += 1;
            }
            if next_start >= n {
                break;
            }
            chain.push(next_start);
        }
        let a = chain[chain.len() - 1];
        let prev = if chain.len() >= 2 {
            Some(chain[chain.len() - 2])
        } else {
            None
        };
        let row = &sim[a * n..(a + 1) * n];
        let mut best: Option<(usize, f32)> = prev.map(|p| (p, row[p]));
        for (k, &s) in row.iter().enumerate() {
            if k == a || !alive[k] || done[k] {
                continue;
            }
            match best {
                Some((_, bs)) if s <= bs => {}
                _ => best = Some((k, s)),
            }
        }
        match best {
            Some((b, s)) if s >= threshold => {
                if Some(b) == prev {
                    chain.pop();
                    chain.pop();
                    // Merge b into a's slot, whichever is smaller keeps the name.
                    let (keep, gone) = if a < b { (a, b) } else { (b, a) };
                    let (sk, sg) = (size[keep] as f32, size[gone] as f32);
                    for k in 0..n {
                        if !alive[k] || k == keep || k == gone {
                            continue;
                        }
                        let v = (sk * sim[keep * n + k] + sg * sim[gone * n + k]) / (sk + sg);
                        sim[keep * n + k] = v;
                        sim[k * n + keep] = v;
                    }
                    size[keep] += size[gone];
                    alive[gone] = false;
                    parent[gone] = keep;
                } else {
                    chain.push(b);
                }
            }
            _ => {
                // Nothing close enough to the top of the chain, hence to anything below it.
                for &c in &chain {
                    done[c] = true;
                }
                chain.clear();
            }
        }
    }
    // Resolve merges iteratively: parents always point to a smaller or equal index.
    (0..n)
        .map(|i| {
            let mut r = i;
            while parent[r] != r {
                r = parent[r];
            }
            r
        })
        .collect()
}

/// Terms, centroid and common tag of a cluster.
fn describe(
    members: &[usize],
    vectors: &[Vector],
    vocab: &Vocabulary,
    df: &[u32],
    surface: &SurfaceForms,
    counts: &[Counts],
) -> Description {
    let size = members.len() as f32;
    let mut sum: BTreeMap<u32, (f32, u32)> = BTreeMap::new();
    for &m in members {
        for &(id, w) in &vectors[m] {
            let e = sum.entry(id).or_insert((0.0, 0));
            e.0 += w;
            e.1 += 1;
        }
    }
    let mut centroid: Vec<(String, f32)> = sum
        .iter()
        .map(|(&id, &(w, _))| (vocab.keys[id as usize].clone(), w / size))
        .collect();
    centroid.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    centroid.truncate(60);
    // Keep the centroid free of the week-local prior markers.
    centroid.retain(|(k, _)| Kind::of_key(k) != Kind::Prior);

    // Label candidates: present in at least two of the cluster's threads (or all, for a pair),
    // scored by coverage × distinctiveness × kind.
    let mut scored: Vec<(f32, String)> = Vec::new();
    for (&id, &(_, in_cluster)) in &sum {
        let key = &vocab.keys[id as usize];
        let kind = Kind::of_key(key);
        if kind.label_weight() == 0.0 || in_cluster < 2 {
            continue;
        }
        let coverage = in_cluster as f32 / size;
        let outside = df[id as usize].saturating_sub(in_cluster) as f32;
        let distinct = (in_cluster as f32 / (in_cluster as f32 + outside)).sqrt();
        let score = coverage * distinct * kind.label_weight();
        let shown = match kind {
            Kind::Word | Kind::Ident => surface.best(key).unwrap_or(&key[2..]).to_string(),
            _ => key[2..].trim_end_matches('/').to_string(),
        };
        scored.push((score, shown));
    }
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let candidates: Vec<String> = scored
        .iter()
        .take(15)
        .map(|(_, t)| t.to_lowercase())
        .collect();
    let mut terms: Vec<String> = Vec::new();
    for (_, term) in scored {
        let lower = term.to_lowercase();
        let overlaps = terms.iter().any(|t| {
            let t = t.to_lowercase();
            // `AT_HANDLE_FID` and `AT_HANDLE_MNT_ID` say the same thing twice.
            let common = t
                .bytes()
                .zip(lower.bytes())
                .take_while(|(a, b)| a == b)
                .count();
            t.contains(&lower)
                || lower.contains(&t)
                || common >= 6 && common * 2 >= t.len().min(lower.len())
        });
        if !overlaps {
            terms.push(term);
        }
        if terms.len() == 5 {
            break;
        }
    }

    // A tag carried by at least half the threads names the topic.
    let mut tag_count: BTreeMap<&str, usize> = BTreeMap::new();
    for &m in members {
        for t in &counts[m].tags {
            *tag_count.entry(t.as_str()).or_insert(0) += 1;
        }
    }
    let tag = tag_count
        .iter()
        .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
        .filter(|(_, &c)| c * 2 >= members.len())
        .map(|(t, _)| t.to_string());
    Description {
        terms,
        candidates,
        centroid,
        strong: tag.or_else(|| directory_label(members, counts)),
    }
}

/// What [`describe`] says about a cluster.
struct Description {
    /// The five most distinctive terms, for people.
    terms: Vec<String>,
    /// The fifteen best label candidates, lowercased.
    candidates: Vec<String>,
    /// Centroid for the next week's prior.
    centroid: Vec<(String, f32)>,
    /// A common tag or directory name, when there is one.
    strong: Option<String>,
}

/// Whether an earlier label still fits a cluster: one of its words is among the cluster's
/// label candidates.
fn still_describes(label: &str, candidates: &[String]) -> bool {
    label
        .split([',', ' ', '(', ')'])
        .map(str::trim)
        .filter(|w| w.len() >= 3)
        .any(|w| {
            let w = w.to_lowercase();
            candidates.contains(&w)
        })
}

/// Attaches each thread left alone to the cluster it is most similar to on average, when that
/// similarity reaches `threshold`: a second, looser pass that keeps "Other threads" for what
/// really fits nowhere. One pass, so the order of attachments cannot matter.
fn attach_singletons(
    clusters: &mut [(Vec<usize>, Option<usize>)],
    vectors: &[Vector],
    threshold: f32,
) {
    let groups: Vec<usize> = (0..clusters.len())
        .filter(|&c| clusters[c].0.len() >= 2)
        .collect();
    // Sum of each group's unit vectors: the dot product with it, divided by the group's size,
    // is the average cosine similarity.
    let sums: Vec<HashMap<u32, f32>> = groups
        .iter()
        .map(|&c| {
            let mut sum: HashMap<u32, f32> = HashMap::new();
            for &m in &clusters[c].0 {
                for &(id, w) in &vectors[m] {
                    *sum.entry(id).or_insert(0.0) += w;
                }
            }
            sum
        })
        .collect();
    let mut moves: Vec<(usize, usize)> = Vec::new();
    for (c, (list, anchor)) in clusters.iter().enumerate() {
        if list.len() != 1 || anchor.is_some() {
            continue;
        }
        let t = list[0];
        let mut best: Option<(usize, f32)> = None;
        for (g, sum) in groups.iter().zip(&sums) {
            let dot: f32 = vectors[t]
                .iter()
                .filter_map(|(id, w)| sum.get(id).map(|s| s * w))
                .sum();
            let avg = dot / clusters[*g].0.len() as f32;
            if avg >= threshold && best.is_none_or(|(_, b)| avg > b) {
                best = Some((*g, avg));
            }
        }
        if let Some((g, _)) = best {
            moves.push((c, g));
        }
    }
    for (from, to) in moves {
        let moved = std::mem::take(&mut clusters[from].0);
        clusters[to].0.extend(moved);
    }
}

/// Directory names too general to name a topic.
const GENERIC_DIRS: &[&str] = &[
    "include",
    "linux",
    "uapi",
    "src",
    "lib",
    "tools",
    "testing",
    "selftests",
    "documentation",
    "drivers",
    "fs",
    "net",
    "arch",
    "kernel",
    "scripts",
    "utils",
    "tests",
    "test",
    "doc",
    "docs",
    "common",
    "core",
    "misc",
    "usr",
    "etc",
    "var",
    "tmp",
    "home",
    "dev",
    "proc",
    "sys",
    "bin",
    "man",
    "po",
    "build",
    "debian",
    "config",
    "examples",
    "samples",
    "trace",
    "events",
];

/// The name of the deepest directory that at least half of the cluster's threads touch or
/// mention (`fs/nfsd` names the topic `nfsd`, `libselinux/src` names it `libselinux`), the
/// way subsystems are named after their directories.
fn directory_label(members: &[usize], counts: &[Counts]) -> Option<String> {
    let mut coverage: BTreeMap<&str, usize> = BTreeMap::new();
    for &m in members {
        for key in counts[m].counts.keys() {
            let Some(path) = key.strip_prefix(Kind::Path.prefix()) else {
                continue;
            };
            // Directories only: a file is too narrow a name.
            if let Some(dir) = path.strip_suffix('/') {
                *coverage.entry(dir).or_insert(0) += 1;
            }
        }
    }
    let (path, _) = coverage
        .iter()
        .filter(|&(_, &c)| c * 2 >= members.len() && c >= 2)
        .max_by(|a, b| {
            let depth = |p: &str| p.matches('/').count();
            depth(a.0)
                .cmp(&depth(b.0))
                .then(a.1.cmp(b.1))
                .then_with(|| b.0.cmp(a.0))
        })?;
    path.rsplit('/')
        .find(|part| !GENERIC_DIRS.contains(part) && part.len() >= 3)
        .map(str::to_string)
}

/// A label from the most distinctive terms.
fn terms_label(terms: &[String]) -> String {
    terms.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
}

/// A label from a subject when the threads share no distinctive term: its first words, tags
/// and reply prefixes removed.
fn subject_label(subject: &str) -> String {
    let (_, rest) = split_subject(subject);
    let words: Vec<&str> = rest.split_whitespace().take(5).collect();
    if words.is_empty() {
        "misc".to_string()
    } else {
        words.join(" ")
    }
}

/// Gives unanchored topics the label of an unused prior topic they resemble (cosine of
/// centroids ≥ 0.3), best pairs first, one to one.
fn match_unanchored(topics: &mut [Topic], prior: &[PriorTopic]) {
    let used: Vec<&str> = topics
        .iter()
        .filter(|t| t.continued)
        .map(|t| t.label.as_str())
        .collect();
    let free: Vec<usize> = (0..prior.len())
        .filter(|&p| !used.contains(&prior[p].label.as_str()))
        .collect();
    let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
    for (t, topic) in topics.iter().enumerate() {
        if topic.continued {
            continue;
        }
        let mine: HashMap<&str, f32> = topic
            .centroid
            .iter()
            .map(|(k, w)| (k.as_str(), *w))
            .collect();
        let norm_a = topic
            .centroid
            .iter()
            .map(|(_, w)| w * w)
            .sum::<f32>()
            .sqrt();
        for &p in &free {
            let dot: f32 = prior[p]
                .centroid
                .iter()
                .filter_map(|(k, w)| mine.get(k.as_str()).map(|m| m * w))
                .sum();
            let norm_b = prior[p]
                .centroid
                .iter()
                .map(|(_, w)| w * w)
                .sum::<f32>()
                .sqrt();
            if norm_a > 0.0 && norm_b > 0.0 {
                let cos = dot / (norm_a * norm_b);
                if cos >= 0.3 {
                    pairs.push((cos, t, p));
                }
            }
        }
    }
    pairs.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut topic_done = vec![false; topics.len()];
    let mut prior_done = vec![false; prior.len()];
    for (_, t, p) in pairs {
        if topic_done[t] || prior_done[p] {
            continue;
        }
        topic_done[t] = true;
        prior_done[p] = true;
        topics[t].continued = true;
        if topics[t].strong.is_none()
            && (prior[p].strong || still_describes(&prior[p].label, &topics[t].candidates))
        {
            topics[t].label = prior[p].label.clone();
            topics[t].inherited_strong = prior[p].strong;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread<'a>(key: &'a str, subject: &'a str, msgs: &[(&'a str, &'a str)]) -> TopicThread<'a> {
        TopicThread {
            key,
            subject,
            lists: &[],
            messages: msgs
                .iter()
                .map(|&(author, text)| TopicMessage {
                    author,
                    author_name: author,
                    text,
                })
                .collect(),
        }
    }

    #[test]
    fn subject_prefix_cases() {
        let cases: &[(&str, &[&str], &str)] = &[
            ("nfsd: fix a leak", &["nfsd"], "fix a leak"),
            ("SUNRPC: xprtrdma: x", &["sunrpc", "xprtrdma"], "x"),
            ("pNFS/flexfiles: y", &["pnfs", "pnfs/flexfiles"], "y"),
            ("Re: no prefix here", &[], "Re: no prefix here"),
            ("time: 10:30 meeting", &["time"], "10:30 meeting"),
            ("a b: not a prefix", &[], "a b: not a prefix"),
            ("http://x", &[], "http://x"),
        ];
        for (subject, want, rest) in cases {
            let (got, r) = subject_prefixes(subject);
            assert_eq!(got, want.to_vec(), "{subject}");
            assert_eq!(r, *rest, "{subject}");
        }
        let (tags, rest) = split_subject("Re: [PATCH v2 3/7] nfsd: fix");
        assert_eq!((tags, rest), (vec!["patch".to_string()], "nfsd: fix"));
    }

    #[test]
    fn stems() {
        for (word, want) in [
            ("delegations", "delegation"),
            ("policies", "policy"),
            ("mounting", "mount"),
            ("mounted", "mount"),
            ("process", "process"),
            ("status", "status"),
            ("bus", "bus"),
        ] {
            assert_eq!(stem(word), want, "{word}");
        }
    }

    #[test]
    fn patch_features() {
        let text = "Avoid a use-after-free in nfsd4_close().\n\nSigned-off-by: A <a@x>\n---\n fs/nfsd/nfs4state.c | 3 ++-\n 1 file changed\n\ndiff --git a/fs/nfsd/nfs4state.c b/fs/nfsd/nfs4state.c\n@@ -1,3 +1,3 @@ static void nfsd4_close_open(struct nfs4_ol_stateid *s)\n-\tput_stateid(s);\n+\tnfs4_put_stid(&s->st_stid);\n";
        let mut counts = Counts::default();
        let names = std::collections::HashSet::new();
        let mut extractor = Extractor {
            signals: Signals::ALL,
            names: &names,
            surface: SurfaceForms::default(),
        };
        extractor.add_text(&mut counts, text);
        let keys: Vec<&str> = counts.counts.keys().map(String::as_str).collect();
        for want in [
            "p:fs/nfsd/",
            "p:fs/nfsd/nfs4state.c",
            "i:nfs4state",
            "i:nfsd4_close",
            "i:nfs4_put_stid",
            "i:nfsd4_close_open",
            "w:avoid",
        ] {
            assert!(keys.contains(&want), "{want} missing from {keys:?}");
        }
        for unwanted in ["w:signed", "i:a@x", "w:static", "w:struct"] {
            assert!(!keys.contains(&unwanted), "{unwanted} in {keys:?}");
        }
    }

    #[test]
    fn groups_by_content_and_leaves_singletons_out() {
        let threads = vec![
            thread("a", "delegation recall hangs", &[("chuck", "nfsd4_cb_recall never returns when the lease breaks; fs/nfsd/nfs4callback.c")]),
            thread("b", "Re: lease break during delegation return", &[("chuck", "the callback path in fs/nfsd/nfs4callback.c holds nfsd4_cb_recall")]),
            thread("c", "policy load fails with new kernel", &[("paul", "security_load_policy returns EINVAL for the selinux policy; security/selinux/ss/services.c")]),
            thread("d", "Re: selinux policy capability", &[("paul", "add a policy capability in security/selinux/ss/services.c for security_load_policy")]),
            thread("e", "unrelated hardware question", &[("zed", "my laptop fan is loud")]),
        ];
        let g = group(&threads, &[], &Params::default());
        let sets: Vec<Vec<usize>> = g
            .topics
            .iter()
            .map(|t| {
                let mut v = t.threads.clone();
                v.sort_unstable();
                v
            })
            .collect();
        assert!(sets.contains(&vec![0, 1]), "{g:?}");
        assert!(sets.contains(&vec![2, 3]), "{g:?}");
        assert_eq!(g.other, vec![4]);
        // Every thread exactly once.
        let mut all: Vec<usize> = g.topics.iter().flat_map(|t| t.threads.clone()).collect();
        all.extend(&g.other);
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3, 4]);
        // Deterministic.
        assert_eq!(group(&threads, &[], &Params::default()), g);
    }

    #[test]
    fn beyond_the_cap_the_most_active_threads_are_grouped_and_the_rest_listed() {
        let mut threads = vec![
            thread("a", "delegation recall hangs", &[("chuck", "nfsd4_cb_recall never returns when the lease breaks; fs/nfsd/nfs4callback.c"), ("x", "same")]),
            thread("b", "Re: lease break during delegation return", &[("chuck", "the callback path in fs/nfsd/nfs4callback.c holds nfsd4_cb_recall"), ("y", "same")]),
            thread("c", "policy load fails with new kernel", &[("paul", "security_load_policy returns EINVAL for the selinux policy; security/selinux/ss/services.c")]),
            thread("d", "Re: selinux policy capability", &[("paul", "add a policy capability in security/selinux/ss/services.c for security_load_policy")]),
        ];
        threads.insert(
            1,
            thread(
                "e",
                "unrelated hardware question",
                &[
                    ("zed", "my laptop fan is loud"),
                    ("z", "so loud"),
                    ("w", "very"),
                ],
            ),
        );
        // Grouped: the three most active (e, a, b); c and d, less active, are only listed.
        let g = group_at_most(&threads, &[], &Params::default(), 3);
        let grouped: Vec<Vec<usize>> = g.topics.iter().map(|t| t.threads.clone()).collect();
        assert_eq!(grouped, vec![vec![0, 2]], "{g:?}");
        assert_eq!(g.other, vec![1, 3, 4]);
        // Under the cap nothing changes.
        let all = group_at_most(&threads, &[], &Params::default(), 5);
        assert_eq!(all, group(&threads, &[], &Params::default()));
        assert_eq!(all.topics.len(), 2, "{all:?}");
    }

    #[test]
    fn tags_name_topics_and_labels_carry_over() {
        let week1 = vec![
            thread(
                "a",
                "[nova] scheduler weigher",
                &[("x", "the weigher picks hosts")],
            ),
            thread(
                "b",
                "Re: [nova] scheduler filters",
                &[("y", "filters run before the weigher")],
            ),
        ];
        let g1 = group(&week1, &[], &Params::default());
        assert_eq!(g1.topics.len(), 1, "{g1:?}");
        assert_eq!(g1.topics[0].label, "nova");
        let prior = g1.carry(&week1);
        // Next week: no tags, but the same words and one continuing thread.
        let week2 = vec![
            thread(
                "b",
                "Re: scheduler filters",
                &[("y", "the weigher and the filters again")],
            ),
            thread(
                "c",
                "scheduler weigher for hosts",
                &[("x", "the scheduler filters and the weigher pick hosts")],
            ),
        ];
        let g2 = group(&week2, &prior, &Params::default());
        assert_eq!(g2.topics.len(), 1, "{g2:?}");
        assert_eq!(g2.topics[0].label, "nova");
        assert!(g2.topics[0].continued);
    }

    #[test]
    fn list_prefixes_are_tags_on_most_of_a_lists_subjects() {
        // r-devel puts `[Rd]` on nearly every subject; `[nova]` on some of dev's is a topic;
        // a list with too few messages decides nothing.
        let mut subjects: Vec<(&str, String)> = Vec::new();
        for i in 0..12 {
            let devel = if i < 9 { "[Rd] x" } else { "Re: y" };
            subjects.push(("r-devel", devel.to_string()));
            let dev = if i < 5 { "[nova] z" } else { "w" };
            subjects.push(("dev", dev.to_string()));
        }
        subjects.extend((0..9).map(|_| ("small", "[sm] v".to_string())));
        let tags = list_prefix_tags(subjects.iter().map(|(l, s)| (*l, s.as_str())));
        assert_eq!(tags.into_iter().collect::<Vec<_>>(), ["rd"]);
    }

    #[test]
    fn empty_and_single() {
        let g = group(&[], &[], &Params::default());
        assert!(g.topics.is_empty() && g.other.is_empty());
        let one = vec![thread("a", "hello", &[("x", "text")])];
        let g = group(&one, &[], &Params::default());
        assert_eq!(g.other, vec![0]);
    }

    #[test]
    fn linkage_merges_reciprocal_neighbours() {
        // Items 0,1 close; 2,3 close; 4 far from all.
        let n = 5;
        let mut sim = vec![0.0f32; n * n];
        let mut set = |a: usize, b: usize, s: f32| {
            sim[a * n + b] = s;
            sim[b * n + a] = s;
        };
        set(0, 1, 0.9);
        set(2, 3, 0.8);
        set(1, 2, 0.2);
        set(0, 4, 0.05);
        let c = average_linkage(&mut sim, n, 0.3);
        assert_eq!(c, vec![0, 0, 2, 2, 4]);
        let mut sim2 = vec![0.0f32; n * n];
        for a in 0..n {
            for b in 0..n {
                if a != b {
                    sim2[a * n + b] = 0.5;
                }
            }
        }
        assert_eq!(average_linkage(&mut sim2, n, 0.3), vec![0; 5]);
    }
}
