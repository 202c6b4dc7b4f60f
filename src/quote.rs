//! Where a top-posted reply's quoted original begins. Outlook, and the webmail and phone
//! clients that imitate it, do not quote line by line with `>`: they put the whole earlier
//! message under the reply, after a separator line and a short header block:
//!
//! ```text
//! ________________________________
//! From: Jane Doe <jane@example.org>
//! Sent: Friday, June 23, 2023 1:36 PM
//! To: dev@lists.example.org
//! Subject: Re: [nova] ...
//! ```
//!
//! or `-----Original Message-----` above the same headers. Pages fold that original like a
//! `>` quote, and the search index files it as quoted text. Pure functions on text.

/// Header names Outlook writes above a quoted original, in the languages most often seen on
/// open-source lists (the sender, then the sending date).
const FROM: &[&str] = &["From:", "Von:", "De:", "De :", "Da:", "Van:", "Od:", "От:"];
const SENT: &[&str] = &[
    "Sent:",
    "Gesendet:",
    "Envoyé :",
    "Envoyé:",
    "Enviado:",
    "Enviado el:",
    "Inviato:",
    "Verzonden:",
    "Wysłano:",
    "Отправлено:",
];

/// Markers Outlook writes on a line of their own above a quoted original.
const ORIGINAL_MESSAGE: &[&str] = &[
    "original message",
    "ursprüngliche nachricht",
    "message d'origine",
    "mensaje original",
    "messaggio originale",
    "oorspronkelijk bericht",
    "mensagem original",
];

/// Underscores in Outlook's separator line (it writes 32).
const MIN_RULE: usize = 20;

/// Lines after a separator within which the `From:` header must follow.
const HEADER_WITHIN: usize = 2;

/// Lines a bare header block (no separator line) may span from `From:` to `Sent:`.
const SENT_WITHIN: usize = 4;

/// The byte offset of the line where a quoted original begins, if the body has one: a line
/// of underscores or an "Original Message" marker followed by a `From:` header, or a header
/// block of `From:` then `Sent:` (Outlook's word: RFC 822's `Date:` would also match headers
/// pasted on purpose) that starts a paragraph. Lines already quoted with `>` are not looked at.
pub fn original_start(body: &str) -> Option<usize> {
    let lines: Vec<(usize, &str)> = lines_with_offsets(body).collect();
    let header_follows = |i: usize, names: &[&str], within: usize| {
        lines
            .iter()
            .skip(i + 1)
            .filter(|(_, l)| !l.trim().is_empty())
            .take(within)
            .any(|(_, l)| starts_with_any(l.trim_start(), names))
    };
    for (i, &(offset, line)) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with('>') {
            continue;
        }
        let rule = t.len() >= MIN_RULE && t.bytes().all(|b| b == b'_');
        if (rule || is_original_marker(t)) && header_follows(i, FROM, HEADER_WITHIN) {
            return Some(offset);
        }
        let paragraph_start = i == 0 || lines[i - 1].1.trim().is_empty();
        if paragraph_start && starts_with_any(t, FROM) && header_follows(i, SENT, SENT_WITHIN) {
            return Some(offset);
        }
    }
    None
}

/// `-----Original Message-----` and its translations, with any number of dashes and blanks.
fn is_original_marker(line: &str) -> bool {
    let inner = line.trim_matches(|c: char| c == '-' || c.is_whitespace());
    line.starts_with("--")
        && line.ends_with("--")
        && ORIGINAL_MESSAGE
            .iter()
            .any(|m| inner.eq_ignore_ascii_case(m) || inner.to_lowercase() == *m)
}

fn starts_with_any(line: &str, names: &[&str]) -> bool {
    names.iter().any(|n| line.starts_with(n))
}

/// Each line of `text` (without its `\n` or `\r\n`) with the byte offset where it starts.
pub fn lines_with_offsets(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut offset = 0;
    text.split_inclusive('\n').map(move |raw| {
        let start = offset;
        offset += raw.len();
        let line = raw.strip_suffix('\n').unwrap_or(raw);
        (start, line.strip_suffix('\r').unwrap_or(line))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_where_the_quoted_original_begins() {
        // (body, the text from the offset found on, or None)
        let cases: &[(&str, Option<&str>)] = &[
            (
                "Thanks!\n\n________________________________\nFrom: Jane <j@x.org>\nSent: Friday\nTo: dev\nSubject: Re: x\n\nold text",
                Some("________________________________\nFrom: Jane"),
            ),
            (
                "Agreed.\r\n\r\n-----Original Message-----\r\nFrom: Jane\r\nSent: Friday\r\n\r\nold",
                Some("-----Original Message-----\r\nFrom: Jane"),
            ),
            (
                "Ja.\n\n----- Ursprüngliche Nachricht -----\nVon: Jane\nGesendet: Freitag\nold",
                Some("----- Ursprüngliche Nachricht -----"),
            ),
            // A bare header block opening a paragraph.
            (
                "Sounds good.\n\nFrom: Jane Doe <j@x.org>\nSent: Friday, June 23, 2023 1:36 PM\nTo: dev\nold",
                Some("From: Jane Doe"),
            ),
            (
                "Oui.\n\nDe : Jean\nEnvoyé : vendredi\nÀ : dev\nold",
                Some("De : Jean"),
            ),
            // Pasted RFC 822 headers say Date:, not Sent:.
            ("The bounce said:\n\nFrom: MAILER-DAEMON\nDate: Mon\nSubject: failure", None),
            // A header line inside a paragraph is the author's text.
            ("I wrote a rule matching\nFrom: x\nSent: y\nlines", None),
            // Mailman's footer rule is followed by the list's name, not a header.
            (
                "reply\n_______________________________________________\ndev mailing list\ndev@x",
                None,
            ),
            // Already quoted with '>': the '>' rules apply.
            ("reply\n> ________________________________\n> From: Jane\n> Sent: Fri", None),
            ("a line of ___ and From: in the middle", None),
            ("", None),
        ];
        for (body, want) in cases {
            let got = original_start(body).map(|at| &body[at..]);
            match (got, want) {
                (Some(g), Some(w)) => assert!(g.starts_with(w), "{body:?}: found {g:?}"),
                (None, None) => {}
                _ => panic!("{body:?}: found {got:?}, wanted {want:?}"),
            }
        }
    }

    #[test]
    fn lines_keep_their_offsets() {
        let text = "a\r\nbc\n\nd";
        let got: Vec<(usize, &str)> = lines_with_offsets(text).collect();
        assert_eq!(got, vec![(0, "a"), (3, "bc"), (6, ""), (7, "d")]);
        // The same lines as `str::lines`.
        assert!(got.iter().map(|l| l.1).eq(text.lines()));
    }
}
