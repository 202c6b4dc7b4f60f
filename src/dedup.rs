//! Message identity and cross-post verdicts. Pure: values in, values out, no IO, no clock.
//!
//! A cross-posted message reaches the archive once per list, each copy with that list's own
//! envelope headers, subject prefix and footer. The content key leaves exactly those out, so
//! copies of one message share a key and different messages (even under one Message-ID) do not.

use crate::message::{Attachment, MessageId};

/// A 32-byte BLAKE3 digest of what makes a message itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentKey(pub [u8; 32]);

impl ContentKey {
    /// Lowercase hex of the first `n` bytes.
    pub fn hex(&self, n: usize) -> String {
        self.0[..n.min(32)]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The fields of a message that go into its content key.
#[derive(Debug, Clone, Copy)]
pub struct KeyInput<'a> {
    /// Sender address, compared case-insensitively.
    pub from_addr: Option<&'a str>,
    /// Date as Unix seconds.
    pub date: Option<i64>,
    /// Subject as decoded; list tags and reply prefixes are removed here.
    pub subject: &'a str,
    /// Body text with the footer already removed (see [`strip_footer`]).
    pub body: &'a str,
    /// Attachments (name, type and size count).
    pub attachments: &'a [Attachment],
    /// A digest of the attachments' contents (see [`legacy_key`] for keys made without it).
    pub attachment_digest: Option<&'a [u8; 32]>,
}

/// Computes the content key. `Received`, `List-*`, `Delivered-To`, `Return-Path`, ARC and DKIM
/// never enter it because only the fields above do.
pub fn content_key(input: &KeyInput<'_>) -> ContentKey {
    let mut h = blake3::Hasher::new();
    h.update(b"archivist-content-key-v1\0");
    h.update(
        input
            .from_addr
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_bytes(),
    );
    h.update(b"\0");
    h.update(&input.date.unwrap_or(i64::MIN).to_le_bytes());
    h.update(subject_core(input.subject).as_bytes());
    h.update(b"\0");
    // Lines with trailing white space removed and trailing blank lines dropped, so a list that
    // re-wraps line endings (CRLF) or trims spaces does not change the key.
    for line in input.body.trim_end().lines().map(str::trim_end) {
        if is_scrubbed_attachment_url(line) {
            continue;
        }
        h.update(line.as_bytes());
        h.update(b"\n");
    }
    h.update(b"\0");
    for a in input.attachments {
        h.update(a.filename.as_deref().unwrap_or_default().as_bytes());
        h.update(b"\0");
        h.update(a.content_type.as_bytes());
        h.update(&a.size.to_le_bytes());
    }
    if let Some(digest) = input.attachment_digest {
        h.update(b"attachments\0");
        h.update(digest);
    }
    ContentKey(*h.finalize().as_bytes())
}

/// The key as archives made it before attachment contents counted: the same as
/// [`content_key`] for a message without attachments. Stored messages may hold it, so an
/// incoming copy matches on either; synthetic and derived ids are made from it, so they stay
/// the ids they always were.
pub fn legacy_key(input: &KeyInput<'_>) -> ContentKey {
    content_key(&KeyInput {
        attachment_digest: None,
        ..*input
    })
}

/// The subject with every `[tag]` and every reply/forward prefix removed, whitespace collapsed
/// and lowercased. Lists add their `[prefix]` before or after `Re:`; removing all tags on both
/// copies is harmless because the key also holds the sender, date and body.
pub fn subject_core(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    let mut depth = 0usize;
    for c in subject.chars() {
        match c {
            '[' => depth += 1,
            ']' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    const PREFIXES: [&str; 8] = ["re:", "aw:", "fwd:", "fw:", "sv:", "antw:", "re", "fwd"];
    // Skipped, not removed one by one: a subject of a million `Re:` stays linear.
    let words: Vec<&str> = out
        .split_whitespace()
        .skip_while(|w| PREFIXES.iter().any(|p| w.eq_ignore_ascii_case(p)))
        .collect();
    words.join(" ").to_lowercase()
}

/// Pipermail replaces attachments with a block whose `URL:` line names the list
/// (`.../pipermail/r-devel/attachments/...`), so each list's copy differs there.
fn is_scrubbed_attachment_url(line: &str) -> bool {
    let lower = line.trim_start().to_ascii_lowercase();
    (lower.starts_with("url:") || lower.starts_with("url :")) && lower.contains("/attachments/")
}

/// The last `n` lines of `text` without trailing blank lines, oldest first, each with the byte
/// offset where it starts and its trailing white space (and `\r`) removed. Scans from the end,
/// so the cost does not grow with the body: footers live at the end.
fn tail_lines(text: &str, n: usize) -> Vec<(usize, &str)> {
    let trimmed = text.trim_end();
    let mut out = Vec::with_capacity(n);
    let mut end = trimmed.len();
    while out.len() < n {
        let start = trimmed[..end].rfind('\n').map_or(0, |i| i + 1);
        out.push((start, trimmed[start..end].trim_end()));
        if start == 0 {
            break;
        }
        end = start - 1;
    }
    out.reverse();
    out
}

/// Where the footers lists appended start, if there are any. `footers` are the list's
/// learned footers (see [`learn_footers`]); the generic rule catches the Mailman separator
/// (`_____` then a few lines naming the list) even before anything is learned. Footers are
/// removed repeatedly (a message relayed through two lists carries two), so every copy of a
/// message is cut at the same place whichever lists it passed. Returns the byte offset in
/// `body` at which the author's content ends.
pub fn footer_start(body: &str, footers: &[String]) -> Option<usize> {
    let mut end = body.len();
    let mut found = None;
    // Bounded: each round removes at least one line.
    for _ in 0..4 {
        match one_footer_start(&body[..end], footers) {
            Some(start) if start < end => {
                end = start;
                found = Some(start);
            }
            _ => break,
        }
    }
    found
}

fn one_footer_start(body: &str, footers: &[String]) -> Option<usize> {
    let trimmed = body.trim_end();
    for footer in footers {
        let f = footer.trim();
        if f.is_empty() {
            continue;
        }
        if let Some(start) = ends_with_normalised(trimmed, f) {
            return Some(start);
        }
    }
    // The generic list footer (Mailman 2's `_____` block, majordomo's `-----` one): the last
    // rule line, then at most 12 lines that name a list. A bare URL is not enough: Outlook
    // puts a `_____` line above the quoted original, which often holds links.
    let tail = tail_lines(trimmed, 14);
    let candidate = tail
        .iter()
        .rev()
        .find(|(_, line)| {
            let t = line.trim();
            t.len() >= 10 && t.chars().all(|c| matches!(c, '_' | '-' | '='))
        })
        .map(|(offset, _)| *offset);
    let start = candidate?;
    let tail = &trimmed[start..];
    let lines = tail.lines().count();
    let lower = tail.to_ascii_lowercase();
    let names_list = lower.contains("mailing list")
        || lower.contains("listinfo")
        || lower.contains("unsubscribe")
        || lower.contains("distributed by");
    (lines <= 13 && names_list).then_some(start)
}

/// If `body` ends with `footer` (compared line by line, ignoring trailing white space),
/// returns where the footer starts in `body`.
fn ends_with_normalised(body: &str, footer: &str) -> Option<usize> {
    let footer_lines: Vec<&str> = footer.lines().map(str::trim_end).collect();
    if footer_lines.is_empty() {
        return None;
    }
    let tail = tail_lines(body, footer_lines.len());
    let matches = tail.len() == footer_lines.len()
        && tail.iter().zip(&footer_lines).all(|((_, a), b)| a == b);
    matches.then(|| tail[0].0)
}

/// The body without its footer.
pub fn strip_footer<'a>(body: &'a str, footers: &[String]) -> &'a str {
    match footer_start(body, footers) {
        Some(start) => &body[..start],
        None => body,
    }
}

/// The fewest messages a trailing block must end before it is taken for a list footer.
const FOOTER_MIN_COUNT: usize = 3;
/// The longest footer we learn, in lines.
const FOOTER_MAX_LINES: usize = 15;
/// The longest footer learnt, in bytes. Real footers are a few hundred bytes; without a cap,
/// a batch of messages ending in a megabyte-long line after blank lines held that line once
/// per candidate block (15 MB a message, gigabytes a batch).
const FOOTER_MAX_BYTES: usize = 2048;
/// The most footers one list learns. Each is tried on every message of the list, so an
/// archive shaped to teach one per batch must not make that cost grow without end.
pub const MAX_FOOTERS_PER_LIST: usize = 32;

/// Learns footers from one list's messages: a trailing block of lines that ends at least 30%
/// (and at least 3) of the bodies, names the list (a URL, an address, "list" or "unsubscribe"),
/// and starts after a blank or separator line. The longest such block wins. Deterministic.
pub fn learn_footers(bodies: &[&str]) -> Vec<String> {
    if bodies.len() < FOOTER_MIN_COUNT {
        return Vec::new();
    }
    let threshold = FOOTER_MIN_COUNT.max(bodies.len().div_ceil(10) * 3);
    let mut counts: std::collections::BTreeMap<(usize, String), usize> = Default::default();
    for body in bodies {
        // One line more than the longest footer, to see what precedes it.
        let window = tail_lines(body, FOOTER_MAX_LINES + 1);
        let whole_body = window.first().is_some_and(|(offset, _)| *offset == 0);
        let lines: Vec<&str> = window.iter().map(|(_, l)| *l).collect();
        let mut bytes = 0;
        for k in 1..=FOOTER_MAX_LINES.min(lines.len()) {
            let start = lines.len() - k;
            bytes += lines[start].len() + 1;
            if bytes > FOOTER_MAX_BYTES {
                break;
            }
            if start == 0 && !whole_body {
                continue;
            }
            let at_boundary = start == 0
                || {
                    let before = lines[start - 1].trim();
                    before.is_empty() || is_separator_line(before)
                }
                || is_separator_line(lines[start].trim());
            if !at_boundary {
                continue;
            }
            let block = lines[start..].join("\n");
            *counts.entry((k, block)).or_default() += 1;
        }
    }
    let best = counts
        .into_iter()
        .filter(|((_, block), count)| *count >= threshold && names_a_list(block))
        .max_by(|((ka, a), ca), ((kb, b), cb)| ka.cmp(kb).then(ca.cmp(cb)).then(b.cmp(a)));
    best.map(|((_, block), _)| vec![block]).unwrap_or_default()
}

fn is_separator_line(line: &str) -> bool {
    line == "--"
        || (line.len() >= 5
            && line
                .chars()
                .all(|c| matches!(c, '_' | '-' | '=' | '*' | '~')))
}

fn names_a_list(block: &str) -> bool {
    let lower = block.to_ascii_lowercase();
    block.trim().len() >= 20
        && (lower.contains("http")
            || lower.contains('@')
            || lower.contains("list")
            || lower.contains("unsubscribe"))
}

/// How many ids [`synthetic_id`] and [`derived_id`] can make for one message. A message's
/// own Message-ID may already be one of them (a hostile sender can write any id), so each
/// has a few variants to fall back on; a message whose every variant is taken is recorded as
/// a problem instead of stored.
pub const ID_VARIANTS: u32 = 4;

/// The id given to a message that has no usable Message-ID: derived from its content, so the
/// same message imported twice (or through two lists) gets the same id. Variant 0 is the
/// usual one; the others stand in when another message's own Message-ID took it.
pub fn synthetic_id(key: &ContentKey, variant: u32) -> MessageId {
    MessageId::from_trusted(match variant {
        0 => format!("{}@archivist.invalid", key.hex(16)),
        v => format!("{}-{v}@archivist.invalid", key.hex(16)),
    })
}

/// The id given to a second, different message that reuses a Message-ID already taken
/// (as public-inbox does): stable, derived from the content, and still recognisable.
/// Variants as in [`synthetic_id`].
pub fn derived_id(original: &MessageId, key: &ContentKey, variant: u32) -> MessageId {
    MessageId::from_trusted(match variant {
        0 => format!("archivist-{}-{}", key.hex(8), original.as_str()),
        v => format!("archivist-{}-{v}-{}", key.hex(8), original.as_str()),
    })
}

/// Whether `id` looks like one this module makes, so that a message's own Message-ID may
/// collide with an id given to another message.
pub fn in_own_namespace(id: &str) -> bool {
    id.starts_with("archivist-") || id.ends_with("@archivist.invalid")
}

/// The ids a message may be stored under, in order of preference: its own Message-ID, then
/// its derived ids; or, without one, its synthetic ids.
pub fn id_choices(header_id: Option<&MessageId>, key: &ContentKey) -> Vec<MessageId> {
    match header_id {
        Some(id) => std::iter::once(id.clone())
            .chain((0..ID_VARIANTS).map(|v| derived_id(id, key, v)))
            .collect(),
        None => (0..ID_VARIANTS).map(|v| synthetic_id(key, v)).collect(),
    }
}

/// A stored message that shares the incoming message's Message-ID (or synthetic id).
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Its public id (possibly derived).
    pub id: MessageId,
    /// Its content key.
    pub key: ContentKey,
    /// Whether it is already a member of the incoming copy's list.
    pub in_list: bool,
}

/// What to do with an incoming copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A message not stored before, to be stored under this id.
    New(MessageId),
    /// The same message already stored from another list: add a membership.
    CrossPost(MessageId),
    /// The same message already stored for this list: nothing to do.
    Duplicate(MessageId),
    /// A new message whose every possible id (see [`id_choices`]) is taken by other
    /// messages: only hostile Message-IDs do this; the importer records a problem.
    NoFreeId,
}

/// The content keys of an incoming copy: [`content_key`] and [`legacy_key`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keys {
    /// What it is stored under.
    pub key: ContentKey,
    /// What an older archive stored it under; what its ids are made from.
    pub legacy: ContentKey,
}

impl Keys {
    /// Both keys of `input`.
    pub fn of(input: &KeyInput<'_>) -> Keys {
        let key = content_key(input);
        let legacy = if input.attachment_digest.is_some() {
            legacy_key(input)
        } else {
            key
        };
        Keys { key, legacy }
    }

    /// Whether a stored message with `stored` as its key is this message.
    pub fn matches(&self, stored: &ContentKey) -> bool {
        *stored == self.key || *stored == self.legacy
    }
}

/// Decides about an incoming copy given the stored messages that share its identity and the
/// set of public ids already taken. Never merges copies whose content keys differ.
pub fn decide(
    header_id: Option<&MessageId>,
    keys: &Keys,
    candidates: &[Candidate],
    id_taken: &dyn Fn(&MessageId) -> bool,
) -> Verdict {
    let key = &keys.legacy;
    if let Some(same) = candidates.iter().find(|c| keys.matches(&c.key)) {
        return if same.in_list {
            Verdict::Duplicate(same.id.clone())
        } else {
            Verdict::CrossPost(same.id.clone())
        };
    }
    id_choices(header_id, key)
        .into_iter()
        .find(|id| !id_taken(id))
        .map_or(Verdict::NoFreeId, Verdict::New)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FOOTER: &str = "_______________________________________________\noperators mailing list\noperators@lists.example.org\nhttps://lists.example.org/mailman/listinfo/operators\n";

    fn key(subject: &str, body: &str, footers: &[String]) -> ContentKey {
        content_key(&KeyInput {
            from_addr: Some("Alice@Example.org"),
            date: Some(1_700_000_000),
            subject,
            body: strip_footer(body, footers),
            attachments: &[],
            attachment_digest: None,
        })
    }

    #[test]
    fn subject_cores() {
        let cases = [
            (
                "[Operators] Re: [nova] Placement upgrade",
                "placement upgrade",
            ),
            (
                "Re: [Operators] [nova] Placement upgrade",
                "placement upgrade",
            ),
            ("RE:  Re: x  y", "x y"),
            ("[unclosed tag", ""),
            ("", ""),
            ("Grüße [tc]", "grüße"),
        ];
        for (input, expected) in cases {
            assert_eq!(subject_core(input), expected, "{input:?}");
        }
    }

    #[test]
    fn cross_post_copies_share_a_key() {
        let body = "Hello all,\n\nthe placement upgrade is done.\n\n-- \nAlice\n";
        let with_footer = format!("{body}{FOOTER}");
        let plain = key("[nova] placement", body, &[]);
        // Generic Mailman footer rule, nothing learned yet.
        assert_eq!(
            plain,
            key("[Operators] [nova] placement", &with_footer, &[])
        );
        // CRLF and trailing spaces do not matter.
        assert_eq!(
            plain,
            key("[nova] placement", &body.replace('\n', "  \r\n"), &[])
        );
        // A different body is a different message.
        assert_ne!(
            plain,
            key("[nova] placement", "Hello all,\n\nnot done.\n", &[])
        );
    }

    #[test]
    fn pipermail_copies_differ_only_in_list_specific_lines() {
        let a = "Hi\n-------------- next part --------------\nName: x.tar.gz\nURL: <https://stat.ethz.ch/pipermail/r-devel/attachments/20190514/c7/attachment.bin>\n";
        let b = a.replace("/r-devel/", "/r-package-devel/");
        assert_eq!(key("[Rd] x", a, &[]), key("[R-pkg-devel] x", &b, &[]));
        let relayed = "Any feedback is appreciated.\n--\nEdzer\n--------------------------------------------------------------------\nThis message was distributed by s-news at lists.example.edu.  To\nunsubscribe send e-mail to s-news-request\n";
        assert_eq!(
            key("x", "Any feedback is appreciated.\n--\nEdzer\n", &[]),
            key("[S] x", relayed, &[])
        );
    }

    #[test]
    fn tail_lines_scan_from_the_end() {
        let text = "a\r\nbb  \r\nccc\r\n\r\n  \n";
        assert_eq!(tail_lines(text, 2), vec![(3, "bb"), (9, "ccc")]);
        assert_eq!(tail_lines(text, 9), vec![(0, "a"), (3, "bb"), (9, "ccc")]);
        assert_eq!(tail_lines("", 3), vec![(0, "")]);
        assert_eq!(tail_lines("\n\nx", 5), vec![(0, ""), (1, ""), (2, "x")]);
    }

    #[test]
    fn outlook_rule_line_is_not_a_footer() {
        let reply = "Sounds good.\n\n________________________________\nFrom: Ravi <ravi@example.com>\nSent: Wednesday\n\nSee https://review.example.org/c/1\n";
        assert_eq!(footer_start(reply, &[]), None);
        let relayed = format!("{reply}{FOOTER}");
        assert_eq!(footer_start(&relayed, &[]), Some(reply.len()));
        assert_eq!(key("x", reply, &[]), key("[Operators] x", &relayed, &[]));
    }

    #[test]
    fn learned_footer_is_stripped() {
        let footer = "--\nYou received this because you subscribed to sigs.\nManage: https://example.org/sigs\n";
        let bodies: Vec<String> = (0..10)
            .map(|i| format!("message number {i}\n\n{footer}"))
            .collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        let learned = learn_footers(&refs);
        assert_eq!(learned.len(), 1, "{learned:?}");
        assert!(learned[0].starts_with("--\nYou received"), "{learned:?}");
        assert_eq!(
            strip_footer(&bodies[3], &learned).trim_end(),
            "message number 3"
        );
        // Bodies that merely share a signature-less ending are not a footer.
        let plain: Vec<String> = (0..10).map(|i| format!("text {i}\n\nThanks\n")).collect();
        let refs: Vec<&str> = plain.iter().map(String::as_str).collect();
        assert!(learn_footers(&refs).is_empty());
        // A huge last line is no footer, however many messages end with it.
        let huge = format!(
            "https://lists.example.org/{}\n",
            "x".repeat(FOOTER_MAX_BYTES)
        );
        let bodies: Vec<String> = (0..10).map(|i| format!("text {i}\n\n\n{huge}")).collect();
        let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
        assert!(learn_footers(&refs).is_empty());
    }

    #[test]
    fn attachment_contents_count_and_old_keys_still_match() {
        let attachments = [Attachment {
            filename: Some("fix.bin".into()),
            content_type: "application/octet-stream".into(),
            size: 64,
        }];
        let input = |digest| KeyInput {
            from_addr: Some("a@x"),
            date: Some(1_700_000_000),
            subject: "s",
            body: "see attached\n",
            attachments: &attachments,
            attachment_digest: digest,
        };
        let (a, b) = ([b'A'; 32], [b'B'; 32]);
        let ka = Keys::of(&input(Some(&a)));
        let kb = Keys::of(&input(Some(&b)));
        // Same text, same attachment name, type and size, other bytes: two messages.
        assert_ne!(ka.key, kb.key);
        assert!(!ka.matches(&kb.key) && !kb.matches(&ka.key));
        // Both have the key an older archive gave them, and match a message stored under it.
        assert_eq!(ka.legacy, kb.legacy);
        assert_eq!(ka.legacy, content_key(&input(None)));
        assert!(ka.matches(&ka.legacy));
        // Without attachments the key is what it always was.
        let none = KeyInput {
            attachments: &[],
            ..input(None)
        };
        let k = Keys::of(&none);
        assert_eq!(k.key, k.legacy);
        // Ids come from the legacy key, so they stay what archives already hold.
        let id = MessageId::parse("<x@y>").expect("id");
        let stored = Candidate {
            id: id.clone(),
            key: ka.key,
            in_list: true,
        };
        let taken = |m: &MessageId| *m == id;
        assert_eq!(
            decide(Some(&id), &kb, &[stored], &taken),
            Verdict::New(derived_id(&id, &kb.legacy, 0))
        );
    }

    #[test]
    fn verdicts() {
        let id = MessageId::parse("<a@x>").expect("id");
        let (k1, k2) = (ContentKey([1; 32]), ContentKey([2; 32]));
        let plain = |key| Keys { key, legacy: key };
        let (k1, k2) = (plain(k1), plain(k2));
        let taken = |m: &MessageId| m.as_str() == "a@x";
        let free = |_: &MessageId| false;
        assert_eq!(decide(Some(&id), &k1, &[], &free), Verdict::New(id.clone()));
        let stored = Candidate {
            id: id.clone(),
            key: k1.key,
            in_list: false,
        };
        assert_eq!(
            decide(Some(&id), &k1, std::slice::from_ref(&stored), &taken),
            Verdict::CrossPost(id.clone())
        );
        let in_list = Candidate {
            in_list: true,
            ..stored.clone()
        };
        assert_eq!(
            decide(Some(&id), &k1, &[in_list], &taken),
            Verdict::Duplicate(id.clone())
        );
        // Same Message-ID, different content: kept as a new message under a derived id.
        match decide(Some(&id), &k2, &[stored], &taken) {
            Verdict::New(new_id) => {
                assert_ne!(new_id, id);
                assert!(new_id.as_str().ends_with("-a@x"));
            }
            other => panic!("expected new, got {other:?}"),
        }
        assert_eq!(
            decide(None, &k2, &[], &free),
            Verdict::New(synthetic_id(&k2.key, 0))
        );
        // Ids another message took (a hostile Message-ID can be any of them) are passed
        // over, in order; with every one taken the message cannot be stored.
        let first_two =
            |m: &MessageId| *m == synthetic_id(&k2.key, 0) || *m == synthetic_id(&k2.key, 1);
        assert_eq!(
            decide(None, &k2, &[], &first_two),
            Verdict::New(synthetic_id(&k2.key, 2))
        );
        let derived = derived_id(&id, &k2.key, 0);
        let own_and_derived = |m: &MessageId| *m == id || *m == derived;
        assert_eq!(
            decide(Some(&id), &k2, &[], &own_and_derived),
            Verdict::New(derived_id(&id, &k2.key, 1))
        );
        let all = |_: &MessageId| true;
        assert_eq!(decide(None, &k2, &[], &all), Verdict::NoFreeId);
        assert_eq!(decide(Some(&id), &k2, &[], &all), Verdict::NoFreeId);
        // Variant 0 keeps the ids archives already hold.
        assert!(synthetic_id(&k2.key, 0)
            .as_str()
            .ends_with("@archivist.invalid"));
        assert!(!synthetic_id(&k2.key, 0).as_str().contains('-'));
        assert_eq!(
            derived_id(&id, &k2.key, 0).as_str(),
            format!("archivist-{}-a@x", k2.key.hex(8))
        );
        assert!(in_own_namespace(synthetic_id(&k2.key, 3).as_str()));
        assert!(in_own_namespace(derived_id(&id, &k2.key, 3).as_str()));
        assert!(!in_own_namespace("a@x"));
    }
}
