//! Turns one raw message into the crate's own [`Parsed`] value. The only user of `mail_parser`:
//! its types never leave this file. Never panics on any input; what cannot be read becomes a
//! note or, for a message with no headers at all, an error the importer records as a problem.

use mail_parser::{Addr, HeaderValue, MessageParser, MimeHeaders, PartType};

use super::mbox::Envelope;
use crate::message::{Address, Attachment, MessageId};

/// The most body text kept per message for indexing and digests. A 5 MB log pasted into a
/// mail is still stored whole in the raw bytes; only the derived text is cut.
pub const MAX_BODY_TEXT: usize = 1 << 20;

/// Everything later stages need from a message, as plain owned values.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The Message-ID header, normalised; `None` if missing, empty or unusable.
    pub message_id: Option<MessageId>,
    /// References then In-Reply-To, normalised, duplicates and self-references removed.
    pub refs: Vec<MessageId>,
    /// Whether the message refers to any other message (`refs` is not empty): a reference
    /// to itself only, or headers with no usable id, count as none.
    pub has_ref_headers: bool,
    /// Decoded subject ("" when missing).
    pub subject: String,
    /// The sender, Pipermail obfuscation undone where it can be.
    pub from: Address,
    /// To recipients.
    pub to: Vec<Address>,
    /// Cc recipients.
    pub cc: Vec<Address>,
    /// Date as Unix seconds: the Date header, else the envelope date.
    pub date: Option<i64>,
    /// The `List-Id` header, raw.
    pub list_id: Option<String>,
    /// The text of the message: text parts, or HTML turned into text.
    pub body: String,
    /// Whether the body came from HTML only.
    pub html_only: bool,
    /// Attachments (name, type, size).
    pub attachments: Vec<Attachment>,
    /// BLAKE3 of the attachments' decoded contents, in order; `None` without attachments.
    /// Two messages that differ only in an attachment's bytes are two messages.
    pub attachment_digest: Option<[u8; 32]>,
    /// Whether the message carries a patch (inline diff or .patch/.diff attachment).
    pub has_patch: bool,
    /// Number of header fields.
    pub header_count: usize,
    /// Non-fatal oddities (bad encoding in a part, undated message, ...).
    pub notes: Vec<String>,
}

/// Why a message could not be parsed at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// No header was found: garbage between separators, or a body without its head.
    #[error("no message headers found")]
    NoHeaders,
}

/// Parses a message. `pipermail` turns on undoing `user at host` obfuscation.
pub fn parse(
    raw: &[u8],
    envelope: Option<&Envelope>,
    pipermail: bool,
) -> Result<Parsed, ParseError> {
    let parser = MessageParser::default();
    let Some(msg) = parser.parse(raw) else {
        return Err(ParseError::NoHeaders);
    };
    let root_headers = msg.parts.first().map(|p| p.headers.len()).unwrap_or(0);
    if root_headers == 0 {
        return Err(ParseError::NoHeaders);
    }
    let mut out = Parsed {
        header_count: root_headers,
        ..Parsed::default()
    };

    // mail-parser stops a msg-id at its first `>`; a hostile id such as
    // `<"><script>...</script>@x>` would then be cut short and collide with others. Our own
    // reading (first `<` to last `>`) keeps it whole; both agree on ordinary ids.
    out.message_id = msg
        .header_raw("Message-ID")
        .filter(|raw| raw.trim_start().starts_with('<'))
        .and_then(MessageId::parse)
        .or_else(|| msg.message_id().and_then(MessageId::parse));
    if msg.message_id().is_none() && msg.header_raw("Message-ID").is_some() {
        out.notes.push("unusable Message-ID header".into());
    }
    out.subject = msg.subject().unwrap_or_default().to_string();
    out.from = msg
        .from()
        .and_then(|a| a.first())
        .map(to_address)
        .unwrap_or_default();
    if pipermail || out.from.addr.as_deref().is_none_or(|a| !a.contains('@')) {
        if let Some(raw_from) = msg.header_raw("From") {
            if let Some(fixed) = deobfuscate(raw_from, &out.from) {
                out.from = fixed;
            }
        }
    }
    out.to = msg
        .to()
        .map(|a| a.iter().map(to_address).collect())
        .unwrap_or_default();
    out.cc = msg
        .cc()
        .map(|a| a.iter().map(to_address).collect())
        .unwrap_or_default();
    // After the addresses: an address quoted in In-Reply-To is no message id.
    let addresses: Vec<String> = [&out.from]
        .into_iter()
        .chain(&out.to)
        .chain(&out.cc)
        .filter_map(|a| a.addr.as_deref())
        .map(str::to_ascii_lowercase)
        .collect();
    let mut refs = Vec::new();
    if let Some(raw) = msg.header_raw("References") {
        reference_ids(raw, RefHeader::References, &addresses, &mut refs);
    }
    if let Some(raw) = msg.header_raw("In-Reply-To") {
        reference_ids(raw, RefHeader::InReplyTo, &addresses, &mut refs);
    }
    out.refs = dedup_refs(refs, out.message_id.as_ref());
    out.has_ref_headers = !out.refs.is_empty();
    out.date = msg
        .date()
        .filter(|d| d.is_valid())
        .map(|d| d.to_timestamp())
        .or_else(|| envelope.and_then(|e| e.date));
    if out.date.is_none() {
        out.notes.push("no usable date".into());
    }
    out.list_id = match msg.list_id() {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(l) => l.first().map(|t| t.to_string()),
        _ => msg.header_raw("List-Id").map(|s| s.trim().to_string()),
    };

    let mut body = String::new();
    let mut all_html = msg.text_body_count() > 0;
    for (i, part_id) in msg.text_body.iter().enumerate() {
        let is_html = matches!(
            msg.parts.get(*part_id as usize).map(|p| &p.body),
            Some(PartType::Html(_))
        );
        all_html &= is_html;
        if let Some(text) = msg.body_text(i) {
            if !body.is_empty() && !body.ends_with('\n') {
                body.push('\n');
            }
            push_capped(&mut body, &text);
        }
    }
    out.html_only = all_html;
    if body.len() >= MAX_BODY_TEXT {
        out.notes.push(format!(
            "body text cut at {MAX_BODY_TEXT} bytes for indexing"
        ));
    }
    out.body = body;

    for (idx, part) in msg.parts.iter().enumerate() {
        if part.is_encoding_problem {
            out.notes
                .push(format!("encoding problem in MIME part {idx}"));
        }
    }
    let mut digest = blake3::Hasher::new();
    for part in msg.attachments() {
        let contents = part.contents();
        digest.update(&(contents.len() as u64).to_le_bytes());
        digest.update(contents);
        let content_type = part
            .content_type()
            .map(|ct| match &ct.c_subtype {
                Some(sub) => format!("{}/{}", ct.c_type, sub),
                None => ct.c_type.to_string(),
            })
            .unwrap_or_else(|| "application/octet-stream".into())
            .to_ascii_lowercase();
        out.attachments.push(Attachment {
            filename: part.attachment_name().map(str::to_string),
            content_type,
            size: part.len() as u64,
        });
    }
    if !out.attachments.is_empty() {
        out.attachment_digest = Some(*digest.finalize().as_bytes());
    }
    out.has_patch = looks_like_patch(&out.body)
        || out.attachments.iter().any(|a| {
            a.filename
                .as_deref()
                .is_some_and(|f| f.ends_with(".patch") || f.ends_with(".diff"))
                || a.content_type == "text/x-patch"
                || a.content_type == "text/x-diff"
        });
    Ok(out)
}

fn push_capped(body: &mut String, text: &str) {
    let room = MAX_BODY_TEXT.saturating_sub(body.len());
    if text.len() <= room {
        body.push_str(text);
    } else {
        let mut cut = room;
        while cut > 0 && !text.is_char_boundary(cut) {
            cut -= 1;
        }
        body.push_str(&text[..cut]);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefHeader {
    References,
    InReplyTo,
}

/// The message ids of a `References` or `In-Reply-To` value, read as mailers really write
/// them. An id is what stands in angle brackets and has an `@`: `<unknown>` and `<(null)>`
/// are no ids, and would glue unrelated threads together. Old mailers write In-Reply-To as
/// prose (`Message from Alice <alice@example.org> of "Mon, 3 May" <id@host>`, `Your message
/// of ...`): an address of the message's own sender or recipients, or one followed by `of`
/// or `'s`, is no id, and prose without brackets holds none. Without any brackets, a
/// References of bare ids (`a@x b@y`) gives those; an In-Reply-To only when it is one id.
fn reference_ids(raw: &str, header: RefHeader, addresses: &[String], out: &mut Vec<MessageId>) {
    let usable = |id: &MessageId| {
        let s = id.as_str();
        s.contains('@') && !addresses.iter().any(|a| a.eq_ignore_ascii_case(s))
    };
    let mut rest = raw;
    let mut bracketed = false;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find(['<', '>']) else {
            break;
        };
        if after.as_bytes()[close] == b'<' {
            // `<<id>` or a stray `<`: read on from the inner one.
            rest = &after[close..];
            continue;
        }
        bracketed = true;
        let tail = after[close + 1..].trim_start();
        let prose_address = header == RefHeader::InReplyTo
            && (tail.starts_with('\'')
                || tail.starts_with('’')
                || tail.get(..3).is_some_and(|w| w.eq_ignore_ascii_case("of ")));
        if !prose_address {
            if let Some(id) = MessageId::parse(&after[..close]).filter(&usable) {
                out.push(id);
            }
        }
        rest = &after[close + 1..];
    }
    if bracketed {
        return;
    }
    let words: Vec<&str> = raw.split_whitespace().collect();
    if header == RefHeader::InReplyTo && words.len() != 1 {
        return;
    }
    out.extend(
        words
            .into_iter()
            .filter_map(MessageId::parse)
            .filter(|id| usable(id) && !id.as_str().contains(['"', '(', ')', ',', ';'])),
    );
}

/// Keeps the first occurrence of each id, in order, and drops the message's own id (a
/// self-reference would make it its own parent).
fn dedup_refs(refs: Vec<MessageId>, own: Option<&MessageId>) -> Vec<MessageId> {
    let mut seen = std::collections::HashSet::with_capacity(refs.len());
    let mut out = Vec::with_capacity(refs.len());
    // The last occurrence decides the position, so In-Reply-To (appended last) stays last
    // even when References already listed it.
    for id in refs.into_iter().rev() {
        if Some(&id) != own && seen.insert(id.clone()) {
            out.push(id);
        }
    }
    out.reverse();
    out
}

fn to_address(addr: &Addr<'_>) -> Address {
    Address {
        name: addr
            .name
            .as_ref()
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty()),
        addr: addr
            .address
            .as_ref()
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty()),
    }
}

/// Undoes Pipermail's `user at host (Full Name)` where the address is recoverable. The
/// 2018+ style (`c@@rdi @ending from gm@il`) is not: then only the name is kept.
fn deobfuscate(raw: &str, parsed: &Address) -> Option<Address> {
    let raw = raw.trim();
    let (addr_part, name_part) = match (raw.find('('), raw.rfind(')')) {
        (Some(open), Some(close)) if open < close => {
            (raw[..open].trim(), Some(raw[open + 1..close].trim()))
        }
        _ => (raw, None),
    };
    let name = parsed
        .name
        .clone()
        .filter(|n| !n.contains(" at ") && Some(n.as_str()) != Some(addr_part))
        .or_else(|| name_part.map(|n| unfold(&decode_words(n))))
        .filter(|n| !n.is_empty());
    let words: Vec<&str> = addr_part.split_whitespace().collect();
    match words.as_slice() {
        [user, "at", host] if !user.contains('@') && !host.contains('@') && host.contains('.') => {
            Some(Address {
                name,
                addr: Some(format!("{user}@{host}")),
            })
        }
        _ if addr_part.contains("@end") || addr_part.contains(" at ") => {
            Some(Address { name, addr: None })
        }
        _ => None,
    }
}

/// Text taken from a raw header with its line folds (and any other run of blanks) made one
/// space: `Health Science\n\tCenter` is `Health Science Center`.
fn unfold(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Decodes RFC 2047 encoded words (`=?utf-8?B?...?=`) in text taken from the raw header,
/// such as the name Pipermail writes in a comment (`zoe at example.net (=?utf-8?B?...?=)`),
/// which RFC 2047 allows and the address parser leaves alone. Text without encoded words is
/// returned as it is.
fn decode_words(text: &str) -> String {
    if !text.contains("=?") {
        return text.to_string();
    }
    // Decoded as the subject of a message holding only that header; line breaks would end
    // the header, so they become spaces first.
    let one_line: String = text
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    let header = format!("Subject: {one_line}\r\n\r\n");
    MessageParser::default()
        .parse(header.as_bytes())
        .and_then(|m| m.subject().map(|s| s.trim().to_string()))
        .filter(|s| !s.is_empty())
        .unwrap_or(one_line)
}

/// An inline diff: `diff --git`, or a unified diff's `--- a/` `+++ b/` `@@` header lines.
pub fn looks_like_patch(body: &str) -> bool {
    body.contains("\ndiff --git ")
        || body.starts_with("diff --git ")
        || (body.contains("\n--- ") && body.contains("\n+++ ") && body.contains("\n@@ -"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipermail_from_is_recovered() {
        let raw = b"From: ripley at stats.ox.ac.uk (Prof Brian Ripley)\nSubject: [Rd] x\nMessage-ID: <a@b>\nDate: Tue, 1 Mar 2005 15:57:11 +0000\n\nbody\n";
        let p = parse(raw, None, true).expect("parses");
        assert_eq!(p.from.addr.as_deref(), Some("ripley@stats.ox.ac.uk"));
        assert_eq!(p.from.name.as_deref(), Some("Prof Brian Ripley"));
        assert_eq!(p.message_id.as_ref().map(MessageId::as_str), Some("a@b"));
    }

    /// Pipermail keeps the sender's name as a comment, where encoded words may stand.
    #[test]
    fn pipermail_names_in_encoded_words_are_decoded() {
        let raw =
            b"From: zoe at example.net (=?utf-8?B?Wm/DqyDDmGRlZ2FhcmQ=?=)\nSubject: x\n\nbody\n";
        let p = parse(raw, None, true).expect("parses");
        assert_eq!(p.from.addr.as_deref(), Some("zoe@example.net"));
        assert_eq!(p.from.name.as_deref(), Some("Zo\u{eb} \u{d8}degaard"));
        for (text, want) in [
            ("Plain Name", "Plain Name"),
            ("=?iso-8859-1?Q?Andr=E9?= Smith", "Andr\u{e9} Smith"),
            ("=?bogus", "=?bogus"),
            ("a\r\nBcc: x =?utf-8?B?eA==?=", "a  Bcc: x x"),
        ] {
            assert_eq!(decode_words(text), want, "{text:?}");
        }
    }

    /// A long comment is folded like any header line (r-devel, 2003-June).
    #[test]
    fn pipermail_names_are_unfolded() {
        let raw = b"From: listserv at example.edu (L-Soft list server at University of North Texas Health Science\n\tCenter (1.8d))\nSubject: x\n\nbody\n";
        let p = parse(raw, None, true).expect("parses");
        assert_eq!(p.from.addr.as_deref(), Some("listserv@example.edu"));
        assert_eq!(
            p.from.name.as_deref(),
            Some("L-Soft list server at University of North Texas Health Science Center (1.8d)")
        );
    }

    #[test]
    fn modern_pipermail_obfuscation_keeps_name_only() {
        let raw =
            b"From: d@rocz|g @end|ng |rom r@pporter@net (Dirk Eddelbuettel)\nSubject: x\n\nbody\n";
        let p = parse(raw, None, true).expect("parses");
        assert_eq!(p.from.addr, None);
        assert_eq!(p.from.name.as_deref(), Some("Dirk Eddelbuettel"));
    }

    #[test]
    fn refs_are_deduplicated_and_own_id_dropped() {
        let raw = b"Message-ID: <c@x>\nReferences: <a@x> <b@x> <c@x> <a@x>\nIn-Reply-To: <b@x>\nSubject: Re: y\n\nhi\n";
        let p = parse(raw, None, false).expect("parses");
        let refs: Vec<&str> = p.refs.iter().map(MessageId::as_str).collect();
        assert_eq!(refs, vec!["a@x", "b@x"]);
        assert!(p.has_ref_headers);
    }

    #[test]
    fn references_as_mailers_write_them() {
        // (headers, expected refs)
        let cases: &[(&str, &[&str])] = &[
            (
                "References: <a@x>\n <b@x>\nIn-Reply-To: <b@x>",
                &["a@x", "b@x"],
            ),
            // Prose without brackets holds no id; junk ids without `@` are none.
            ("In-Reply-To: your message", &[]),
            (
                "In-Reply-To: Your message of \"Mon, 13 Nov 2023 10:00:00 +0100\"",
                &[],
            ),
            ("In-Reply-To: <unknown>", &[]),
            ("References: <(null)> <a@x>", &["a@x"]),
            // A bare id alone is an id; bare References ids too.
            ("In-Reply-To: j3@x", &["j3@x"]),
            ("In-Reply-To: junk j3@x", &[]),
            ("References: a@x b@x", &["a@x", "b@x"]),
            // Addresses quoted in In-Reply-To prose are no ids.
            (
                "In-Reply-To: Message from Alice <alice@example.org> of \"Mon, 1 May\" <x0@x>",
                &["x0@x"],
            ),
            (
                "In-Reply-To: <x0@x> (Bob's message of Mon, 1 May)",
                &["x0@x"],
            ),
            (
                "In-Reply-To: Carol <carol@example.org>'s message <x1@x>",
                &["x1@x"],
            ),
            // The sender's or a recipient's own address is no id either.
            (
                "To: Dave <DAVE@example.org>\nIn-Reply-To: <dave@example.org> <x2@x>",
                &["x2@x"],
            ),
            ("In-Reply-To: <<x3@x>>", &["x3@x"]),
            // An unclosed bracket still holds an id.
            ("References: <a@x", &["a@x"]),
        ];
        for (headers, want) in cases {
            let raw = format!("Message-ID: <self@x>\nSubject: Re: y\n{headers}\n\nhi\n");
            let p = parse(raw.as_bytes(), None, false).expect("parses");
            let refs: Vec<&str> = p.refs.iter().map(MessageId::as_str).collect();
            assert_eq!(refs, *want, "{headers}");
            assert_eq!(p.has_ref_headers, !want.is_empty(), "{headers}");
        }
    }

    #[test]
    fn no_headers_is_an_error() {
        assert_eq!(
            parse(b"\n\njust text\n", None, false).err(),
            Some(ParseError::NoHeaders)
        );
        assert_eq!(parse(b"", None, false).err(), Some(ParseError::NoHeaders));
    }

    #[test]
    fn html_only_becomes_text() {
        let raw = b"Subject: h\nContent-Type: text/html; charset=utf-8\n\n<p>Hello <b>world</b></p><script>x()</script>\n";
        let p = parse(raw, None, false).expect("parses");
        assert!(p.html_only);
        assert!(p.body.contains("Hello"), "{:?}", p.body);
        assert!(!p.body.contains("<p>"));
    }

    #[test]
    fn patch_detection() {
        assert!(looks_like_patch("intro\ndiff --git a/x b/x\n"));
        assert!(looks_like_patch("x\n--- a/f\n+++ b/f\n@@ -1 +1 @@\n"));
        assert!(!looks_like_patch("I think --- this +++ is fine"));
    }
}
