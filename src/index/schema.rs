//! The tantivy schema (version 2) and the pure text helpers that shape what goes into it:
//! splitting a body into own and quoted text, and reading list tags out of a subject.

use tantivy::schema::{
    Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing, TextOptions, FAST,
    INDEXED, STORED, STRING,
};
use tantivy::TantivyDocument;

use super::IndexDoc;

/// Directory name under the caller's base directory; bump it whenever the schema changes so a
/// new binary builds a fresh index beside the old one instead of misreading it (an indexer then
/// finds no watermark and catches up from the start). v1 was the first draft of this schema;
/// v2 added the word-pair fields and the whole-address fields; v3 indexes words of 40 to 64
/// bytes (git commit ids), which v2 dropped, and the sender's facet key (`sender:`); v4
/// indexes Chinese, Japanese and Korean text as character pairs (see [`super::analysis`]).
pub(crate) const SCHEMA_DIR: &str = "v4";

/// Stemmed English analysis (`en_stem`, memoised) and plain lowercase words with no
/// stemming, so words of other languages are found exactly as written.
use super::analysis::{PAIRS, PLAIN, STEMMED};

/// Own text longer than this is still indexed in full but stored only up to here: the stored
/// copy exists only to cut snippets from, and snippets come from the first match anyway.
pub(crate) const STORED_TEXT_MAX_BYTES: usize = 32 * 1024;

/// The fields of the schema, resolved once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub msgid: Field,
    pub msgid_key: Field,
    pub thread: Field,
    pub date: Field,
    pub subject: Field,
    pub own: Field,
    pub own_stored: Field,
    pub quoted: Field,
    /// Adjacent word pairs of `subject`, `own` and `quoted` (see [`super::analysis::PAIRS`]).
    pub subject_pairs: Field,
    pub own_pairs: Field,
    pub quoted_pairs: Field,
    pub from: Field,
    pub to: Field,
    /// The sender's and the recipients' addresses whole, lowercased (see [`address_key`]).
    pub from_addr: Field,
    pub to_addr: Field,
    pub lists: Field,
    pub tags: Field,
    /// The key the sender facet counts under, lowercased ([`sender_term`]): `sender:` filters
    /// by it, so a facet's link finds exactly the messages it counted.
    pub sender: Field,
    pub facets: Field,
    pub has_attachment: Field,
    pub has_patch: Field,
}

/// Fast-field column names, used by the collector.
pub(crate) mod col {
    pub const MSGID: &str = "msgid";
    pub const MSGID_KEY: &str = "msgid_key";
    pub const THREAD: &str = "thread";
    pub const DATE: &str = "date";
    pub const FACETS: &str = "facets";
}

fn text(tokenizer: &str) -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(tokenizer)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    )
}

fn pairs() -> TextOptions {
    TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(PAIRS)
            .set_index_option(IndexRecordOption::WithFreqs),
    )
}

/// Builds the schema and the resolved field handles.
pub(crate) fn build() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let fast: NumericOptions = FAST.into();
    let fast_indexed: NumericOptions = NumericOptions::from(FAST) | INDEXED;
    let fields = Fields {
        msgid: b.add_text_field(col::MSGID, STRING | STORED | FAST),
        // The id's first 8 bytes as a number: orders ties without a dictionary lookup.
        msgid_key: b.add_u64_field(col::MSGID_KEY, fast.clone()),
        thread: b.add_u64_field(col::THREAD, fast_indexed.clone()),
        // Fast only: date ranges run on the column, which beats a term range over one term per
        // distinct second.
        date: b.add_i64_field(col::DATE, fast),
        // Text is indexed once, stemmed: the query is analysed the same way, so a word is
        // found as written whatever the stemmer makes of it (plain-word twins of these fields
        // matched nothing more and doubled the text indexed).
        subject: b.add_text_field("subject", text(STEMMED)),
        own: b.add_text_field("own", text(STEMMED)),
        // Stored only, capped: the text snippets are cut from.
        own_stored: b.add_text_field("own_stored", STORED),
        quoted: b.add_text_field("quoted", text(STEMMED)),
        // Two-word phrases are single terms here; longer ones use them to skip documents
        // before positions are read. Frequencies only: a pair is its own position.
        subject_pairs: b.add_text_field("subject_pairs", pairs()),
        own_pairs: b.add_text_field("own_pairs", pairs()),
        quoted_pairs: b.add_text_field("quoted_pairs", pairs()),
        from: b.add_text_field("from", text(PLAIN)),
        to: b.add_text_field("to", text(PLAIN)),
        // `from:jane@example.org` is one term here instead of a phrase of three words.
        from_addr: b.add_text_field("from_addr", STRING),
        to_addr: b.add_text_field("to_addr", STRING),
        lists: b.add_text_field("lists", STRING),
        tags: b.add_text_field("tags", STRING),
        sender: b.add_text_field("sender", STRING),
        // Every facet of a message in one value (see `facet_value`), so the collector reads one
        // dense single-valued column per match, not one per facet; values are split again
        // once per segment dictionary, when counts are totalled.
        facets: b.add_text_field(col::FACETS, FAST),
        has_attachment: b.add_bool_field("has_attachment", INDEXED),
        has_patch: b.add_bool_field("has_patch", INDEXED),
    };
    (b.build(), fields)
}

/// Resolves the field handles of an index opened from disk; `None` when it carries another
/// schema.
pub(crate) fn fields_of(schema: &Schema) -> Option<Fields> {
    let (expected, fields) = build();
    (schema == &expected).then_some(fields)
}

/// Message-IDs are compared without their angle brackets and surrounding blanks.
pub(crate) fn normalize_msgid(id: &str) -> &str {
    let id = id.trim();
    let id = id.strip_prefix('<').unwrap_or(id);
    let id = id.strip_suffix('>').unwrap_or(id);
    id.trim()
}

/// The first 8 bytes of a message id, big-endian and zero-padded, so that comparing keys
/// agrees with comparing the ids whenever the keys differ.
pub(crate) fn msgid_key(id: &str) -> u64 {
    let mut b = [0u8; 8];
    for (dst, src) in b.iter_mut().zip(id.bytes()) {
        *dst = src;
    }
    u64::from_be_bytes(b)
}

/// Joins the members of a list or tag set in one fast-field value. A control character (ASCII
/// unit separator), so it occurs in no list name or tag (both are cleaned of them).
pub(crate) const SET_SEPARATOR: u8 = 0x1f;

/// Separates the parts of a facet value (ASCII record separator).
pub(crate) const PART_SEPARATOR: u8 = 0x1e;

/// One message's facets as one column value: its list set, tag set and sender, each set's
/// members joined by [`SET_SEPARATOR`], the parts by [`PART_SEPARATOR`]. Lists and tags hold
/// no control characters; they are dropped from the sender here.
fn facet_value(lists: &[String], tags: &[String], sender: &str) -> String {
    let set = char::from(SET_SEPARATOR).to_string();
    let mut v = lists.join(&set);
    v.push(char::from(PART_SEPARATOR));
    v.push_str(&tags.join(&set));
    v.push(char::from(PART_SEPARATOR));
    v.extend(sender.chars().filter(|c| !c.is_control()));
    v
}

/// How an address is indexed and looked up whole: trimmed, without angle brackets,
/// lowercased; `None` unless it looks like one address (`local@domain`, no blanks).
pub(crate) fn address_key(addr: &str) -> Option<String> {
    let a = addr.trim();
    let a = a.strip_prefix('<').unwrap_or(a);
    let a = a.strip_suffix('>').unwrap_or(a);
    let (local, domain) = a.split_once('@')?;
    let plain = |s: &str| {
        !s.is_empty() && !s.contains(['@', '<', '>', '"']) && !s.contains(char::is_whitespace)
    };
    (plain(local) && plain(domain)).then(|| a.to_lowercase())
}

/// The address in a recipient as the import writes it: `Name <addr>`, or a bare address.
fn recipient_address(r: &str) -> &str {
    match (r.rfind('<'), r.rfind('>')) {
        (Some(open), Some(close)) if open < close => &r[open + 1..close],
        _ => r,
    }
}

/// List names are matched case-insensitively, and never contain control characters.
pub(crate) fn normalize_list(list: &str) -> String {
    folded(list)
}

/// Trimmed, without control characters, lowercased: how names are matched in any case.
fn folded(s: &str) -> String {
    s.trim()
        .chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .to_lowercase()
}

/// The key senders are counted under: the lowercased address, or the name when there is none.
pub(crate) fn sender_key(name: Option<&str>, addr: Option<&str>) -> Option<String> {
    let addr = addr.map(str::trim).filter(|a| !a.is_empty());
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    match (addr, name) {
        (Some(a), _) => Some(a.to_lowercase()),
        (None, Some(n)) => Some(n.to_string()),
        (None, None) => None,
    }
}

/// How a sender key (as the facet shows it) is indexed and looked up by `sender:`: without
/// control characters (as in the facet column) and lowercased.
pub(crate) fn sender_term(key: &str) -> String {
    folded(key)
}

/// Calendar year (UTC) of a Unix time; out-of-range times count as 1970 rather than failing.
pub(crate) fn year_of(secs: i64) -> i64 {
    time::OffsetDateTime::from_unix_timestamp(secs)
        .map(|t| i64::from(t.year()))
        .unwrap_or(1970)
}

/// Longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(crate) fn truncate_at_char(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Turns a caller's document into a tantivy document.
pub(crate) fn to_document(f: &Fields, doc: &IndexDoc) -> TantivyDocument {
    let mut d = TantivyDocument::new();
    let msgid = normalize_msgid(&doc.message_id);
    d.add_text(f.msgid, msgid);
    d.add_u64(f.msgid_key, msgid_key(msgid));
    d.add_u64(f.thread, doc.thread);
    if let Some(date) = doc.date {
        d.add_i64(f.date, date);
    }
    d.add_text(f.subject, &doc.subject);
    d.add_text(f.subject_pairs, &doc.subject);

    let body = split_body(&doc.body);
    d.add_text(f.own, &body.own);
    d.add_text(f.own_pairs, &body.own);
    d.add_text(
        f.own_stored,
        truncate_at_char(&body.own, STORED_TEXT_MAX_BYTES),
    );
    if !body.quoted.is_empty() {
        d.add_text(f.quoted, &body.quoted);
        d.add_text(f.quoted_pairs, &body.quoted);
    }

    for part in [doc.from_name.as_deref(), doc.from_addr.as_deref()]
        .into_iter()
        .flatten()
    {
        d.add_text(f.from, part);
    }
    if let Some(a) = doc.from_addr.as_deref().and_then(address_key) {
        d.add_text(f.from_addr, a);
    }
    for r in &doc.recipients {
        d.add_text(f.to, r);
        if let Some(a) = address_key(recipient_address(r)) {
            d.add_text(f.to_addr, a);
        }
    }
    let mut lists: Vec<String> = doc
        .lists
        .iter()
        .map(|l| normalize_list(l))
        .filter(|l| !l.is_empty())
        .collect();
    lists.sort();
    lists.dedup();
    for l in &lists {
        d.add_text(f.lists, l);
    }
    let tags = subject_tags(&doc.subject);
    for t in &tags {
        d.add_text(f.tags, t);
    }
    let sender = sender_key(doc.from_name.as_deref(), doc.from_addr.as_deref());
    if let Some(key) = &sender {
        d.add_text(f.sender, sender_term(key));
    }
    d.add_text(
        f.facets,
        facet_value(&lists, &tags, sender.as_deref().unwrap_or("")),
    );
    d.add_bool(f.has_attachment, doc.has_attachment);
    d.add_bool(f.has_patch, doc.has_patch);
    d
}

/// A body split into what the author wrote and what they quoted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BodyParts {
    /// Lines not starting with `>`, signature removed.
    pub own: String,
    /// Quoted lines with their `>` markers removed.
    pub quoted: String,
}

/// Splits a body into own and quoted text and drops signatures and quoted list footers.
///
/// A line is quoted when it starts with `>` after optional blanks; a top-posted reply's
/// original (see `crate::quote`) is quoted text too, one level deeper than its own `>` marks.
/// The author's signature (from a line that is exactly `-- `, the RFC 3676 separator) is
/// dropped up to the next quoted line or the original: a reply may quote below its signature.
/// A quoted signature (`-- `, or `--` since many mailers lose its blank) or Mailman footer
/// (a line of underscores) is dropped for at most `QUOTED_TAIL_LINES` (8) lines at its quote
/// depth, and no further than a change of depth: quoted patches and older quoted mail often
/// follow such a line, and the message's own list footer is the caller's business.
pub fn split_body(body: &str) -> BodyParts {
    let mut parts = BodyParts::default();
    // A quoted signature or footer being dropped: its depth and the lines it may still take.
    let mut tail: Option<(usize, usize)> = None;
    let mut in_signature = false;
    let original = crate::quote::original_start(body).unwrap_or(body.len());
    for (offset, line) in crate::quote::lines_with_offsets(body) {
        let trimmed = line.trim_start();
        let marks = trimmed
            .chars()
            .take_while(|c| *c == '>' || *c == ' ')
            .filter(|c| *c == '>')
            .count();
        let depth = marks + usize::from(offset >= original);
        if depth == 0 {
            tail = None;
            if line == "-- " {
                in_signature = true;
            }
            if !in_signature {
                parts.own.push_str(line);
                parts.own.push('\n');
            }
            continue;
        }
        in_signature = false;
        let rest = if marks > 0 {
            trimmed.trim_start_matches(['>', ' '])
        } else {
            trimmed
        };
        tail = match tail {
            Some((d, left)) if d == depth && left > 0 => Some((d, left - 1)),
            _ => None,
        };
        if tail.is_none() && (rest == "-- " || rest == "--" || is_footer_rule(rest)) {
            tail = Some((depth, QUOTED_TAIL_LINES));
        }
        if tail.is_some() {
            continue;
        }
        parts.quoted.push_str(rest);
        parts.quoted.push('\n');
    }
    let own_len = parts.own.trim_end().len();
    parts.own.truncate(own_len);
    let quoted_len = parts.quoted.trim_end().len();
    parts.quoted.truncate(quoted_len);
    parts
}

/// How many lines after a quoted signature separator or footer rule are dropped at most
/// (the separator not counted): signatures are meant to be four lines, Mailman's footers take
/// three to six.
pub const QUOTED_TAIL_LINES: usize = 8;

/// The rule Mailman puts above its footer: a line of 47 underscores (40 or more here; Outlook's
/// reply separator, 32 of them above `From:`, is not one).
fn is_footer_rule(line: &str) -> bool {
    let line = line.trim_end();
    line.len() >= 40 && line.bytes().all(|b| b == b'_')
}

/// Reply and forward prefixes in the languages seen on lists (`Re:`, `Fwd:`, `AW:`, ...).
const REPLY_PREFIXES: &[&str] = &[
    "re", "fw", "fwd", "aw", "sv", "vs", "wg", "antw", "tr", "ref",
];
/// A bracket with more words than this (after dropping version and numbering words) is prose,
/// not tags.
const MAX_WORDS_PER_BRACKET: usize = 4;
const MAX_TAG_LEN: usize = 40;

/// Strips one reply prefix such as `Re:`, `RE[2]:` or `Fwd:` from the start of `s`.
fn strip_reply_prefix(s: &str) -> Option<&str> {
    let letters = s
        .char_indices()
        .find(|(_, c)| !c.is_ascii_alphabetic())
        .map_or(s.len(), |(i, _)| i);
    let word = s[..letters].to_ascii_lowercase();
    if !REPLY_PREFIXES.contains(&word.as_str()) {
        return None;
    }
    let mut rest = &s[letters..];
    // Counted forms: "Re[2]:", "Re(2):", "Re^2:".
    for (open, close) in [('[', Some(']')), ('(', Some(')')), ('^', None)] {
        if let Some(after) = rest.strip_prefix(open) {
            let digits = after.chars().take_while(char::is_ascii_digit).count();
            if digits > 0 {
                let after = &after[digits..];
                match close {
                    Some(c) => {
                        if let Some(a) = after.strip_prefix(c) {
                            rest = a;
                        }
                    }
                    None => rest = after,
                }
            }
        }
    }
    rest.strip_prefix(':').or_else(|| rest.strip_prefix('：'))
}

/// Version and numbering words inside tag brackets: `v2`, `3/7`, `01/12`, `5`.
fn is_numbering(word: &str) -> bool {
    let w = word.trim_start_matches(['v', 'V']);
    !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_digit() || c == '/' || c == '.')
}

/// Subject tags: the bracketed words at the start of a subject, lowercased without brackets,
/// in order and without duplicates. Reply prefixes between them are skipped, and numbering is
/// dropped, so `Re: [nova][tc] [PATCH v2 3/7] fix` gives `nova`, `tc`, `patch`.
pub fn subject_tags(subject: &str) -> Vec<String> {
    let mut tags: Vec<String> = Vec::new();
    let mut s = subject;
    loop {
        s = s.trim_start();
        if let Some(rest) = strip_reply_prefix(s) {
            s = rest;
            continue;
        }
        let Some(inner) = s.strip_prefix('[') else {
            break;
        };
        let Some(close) = inner.find(']') else {
            break;
        };
        let words: Vec<String> = inner[..close]
            .split_whitespace()
            // `[PATCH - for -next]`: a lone dash is punctuation, and `-next` names `next`.
            .map(|w| w.trim_matches([':', ',', ';', '-']).to_lowercase())
            .filter(|w| {
                w.chars().any(char::is_alphanumeric)
                    && !is_numbering(w)
                    && w.len() <= MAX_TAG_LEN
                    && !w.chars().any(char::is_control)
            })
            .collect();
        if words.len() <= MAX_WORDS_PER_BRACKET {
            for w in words {
                if !tags.contains(&w) {
                    tags.push(w);
                }
            }
        }
        s = &inner[close + 1..];
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_keys() {
        let cases: &[(&str, Option<&str>)] = &[
            ("Jane.Doe@Example.ORG", Some("jane.doe@example.org")),
            (" <jane@example.org> ", Some("jane@example.org")),
            ("jane", None),
            ("example.org", None),
            ("@example.org", None),
            ("jane@", None),
            ("jane doe@example.org", None),
            ("a@b@c", None),
        ];
        for (addr, want) in cases {
            assert_eq!(address_key(addr).as_deref(), *want, "{addr}");
        }
        assert_eq!(
            recipient_address("Jane <jane@example.org>"),
            "jane@example.org"
        );
        assert_eq!(recipient_address("jane@example.org"), "jane@example.org");
    }

    #[test]
    fn subject_tag_cases() {
        let cases: &[(&str, &[&str])] = &[
            ("[nova] boot fails", &["nova"]),
            ("Re: [nova][tc] boot fails", &["nova", "tc"]),
            ("RE: Fwd: [Nova] [TC] x", &["nova", "tc"]),
            ("[PATCH v2 3/7] nova: fix", &["patch"]),
            (
                "Re[2]: [openstack-dev] [RFC PATCH 0/3] x",
                &["openstack-dev", "rfc", "patch"],
            ),
            ("[nova] Re: [nova] dup", &["nova"]),
            ("[PATCH - for -next] x", &["patch", "for", "next"]),
            ("[--] [:] x", &[]),
            ("AW: [Größe] über", &["größe"]),
            ("plain subject [not] a tag", &[]),
            ("[unclosed bracket", &[]),
            ("[] empty", &[]),
            ("[this bracket holds a whole sentence of prose] x", &[]),
            ("Reply to [nova]", &[]),
            ("", &[]),
        ];
        for (subject, want) in cases {
            let got = subject_tags(subject);
            assert_eq!(got, want.to_vec(), "subject {subject:?}");
        }
    }

    #[test]
    fn split_body_cases() {
        let cases: &[(&str, &str, &str)] = &[
            ("hello\nworld", "hello\nworld", ""),
            (
                "On Mon, A wrote:\n> quoted\n>> deeper\nmine",
                "On Mon, A wrote:\nmine",
                "quoted\ndeeper",
            ),
            // A reply may quote below its own signature, and answer below that.
            (
                "text\n-- \nJane\n> quoted below\nanswer",
                "text\nanswer",
                "quoted below",
            ),
            // A quoted signature ends where the quote goes deeper, and after a few lines.
            (
                "> q1\n> --\n> Carol\n> > older\nown",
                "own",
                "q1\nolder",
            ),
            (
                "> Signed-off-by: A\n> --\n> v6: fixed\n> 2\n> 3\n> 4\n> 5\n> 6\n> 7\n> 8\n> diff --git a/x b/x",
                "",
                "Signed-off-by: A\ndiff --git a/x b/x",
            ),
            ("text\r\n-- \r\nsig", "text", ""),
            ("  > indented quote\nown", "own", "indented quote"),
            ("a -- b\n--\nstill own", "a -- b\n--\nstill own", ""),
            ("> only quote", "", "only quote"),
            (
                "> q1\n> -- \n> Alice\n> _______________________________________________\n> list-leave@x\nown\n> q2",
                "own",
                "q1\nq2",
            ),
            // A deeper quote's signature ends where the quote becomes shallower again.
            (
                "> > A\n> > -- \n> > sig\n>\n> B's reply\nown",
                "own",
                "A\n\nB's reply",
            ),
            // Outlook's reply separator is not a footer.
            (
                "> ________________________________\n> From: Jane\n> old text",
                "",
                "________________________________\nFrom: Jane\nold text",
            ),
            // A top-posted reply: the original below it is quoted text, up to its signature.
            (
                "Agreed.\n\n________________________________\nFrom: Jane\nSent: Friday\n\nold text\n-- \nJane's sig",
                "Agreed.",
                "________________________________\nFrom: Jane\nSent: Friday\n\nold text",
            ),
            (
                "Yes.\r\n-----Original Message-----\r\nFrom: Jane\r\n> older\r\n_______________________________________________\r\ndev mailing list",
                "Yes.",
                "-----Original Message-----\nFrom: Jane\nolder",
            ),
            (
                "> a\n>\n> _______________________________________________\n> usrp-users mailing list\n> usrp-users-leave@lists.x\nreply",
                "reply",
                "a",
            ),
            ("> a -- b\n> __ not a rule\n> c", "", "a -- b\n__ not a rule\nc"),
            ("", "", ""),
        ];
        for (body, own, quoted) in cases {
            let got = split_body(body);
            assert_eq!(got.own, *own, "own of {body:?}");
            assert_eq!(got.quoted, *quoted, "quoted of {body:?}");
        }
    }

    #[test]
    fn helpers() {
        assert_eq!(normalize_msgid(" <a@b> "), "a@b");
        assert_eq!(normalize_msgid("a@b"), "a@b");
        let ids = ["", "a", "a@b", "abcdefgh", "abcdefgh1", "abcdefgi", "b"];
        for a in ids {
            for b in ids {
                let (ka, kb) = (msgid_key(a), msgid_key(b));
                if ka != kb {
                    assert_eq!(ka.cmp(&kb), a.cmp(b), "{a} vs {b}");
                }
            }
        }
        assert_eq!(
            sender_key(Some("Jane"), Some("Jane@X.org")).as_deref(),
            Some("jane@x.org")
        );
        assert_eq!(
            sender_key(Some(" Jane "), Some(" ")).as_deref(),
            Some("Jane")
        );
        assert_eq!(sender_key(None, None), None);
        assert_eq!(year_of(0), 1970);
        assert_eq!(year_of(1_700_000_000), 2023);
        assert_eq!(year_of(-1), 1969);
        assert_eq!(truncate_at_char("größe", 3), "gr");
        assert_eq!(truncate_at_char("abc", 10), "abc");
    }
}
