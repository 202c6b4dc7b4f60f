//! Excerpts (pure): which of a thread's messages says the most this week, and its first one or
//! two sentences of prose: no greetings, attributions, trailers, diffs or quoted text.

/// The longest excerpt, in characters.
pub const MAX_EXCERPT_CHARS: usize = 240;

/// The prose of an author's own text: lines before a patch's `---`/diff, without greetings,
/// attribution lines (`On ... wrote:`), trailers (`Signed-off-by:`) or blank runs, joined
/// with single spaces per paragraph and paragraphs separated by `\n`.
pub fn prose(own_text: &str) -> String {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut budget = 20_000usize;
    for line in own_text.lines() {
        let t = line.trim();
        if line == "---" || line.starts_with("diff --git ") || line.starts_with("--- a/") {
            break;
        }
        if budget < t.len() {
            break;
        }
        budget -= t.len();
        if t.is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            continue;
        }
        if is_closing(t) && !(paragraphs.is_empty() && current.is_empty()) {
            // "Thanks,\nJane": what follows a closing after some prose is a signature.
            break;
        }
        if is_noise(t) {
            continue;
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(t);
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs.join("\n")
}

/// Short closing lines: "Thanks,", "Best regards", "Cheers!".
pub(crate) fn is_closing(line: &str) -> bool {
    const CLOSINGS: &[&str] = &[
        "thanks",
        "thank you",
        "regards",
        "best regards",
        "kind regards",
        "cheers",
        "best",
        "thx",
        "many thanks",
        "br",
    ];
    let lower = line.to_lowercase();
    let first = lower.trim_end_matches([',', '!', '.', ':', ' ']);
    CLOSINGS.contains(&first)
}

/// Lines that are about the mail, not its content.
fn is_noise(line: &str) -> bool {
    let lower = line.to_lowercase();
    let words = lower.split_whitespace().count();
    const TRAILERS: &[&str] = &[
        "signed-off-by:",
        "reviewed-by:",
        "acked-by:",
        "tested-by:",
        "reported-by:",
        "suggested-by:",
        "co-developed-by:",
        "cc:",
        "link:",
        "fixes:",
        "closes:",
        "message-id:",
        "change-id:",
    ];
    const GREETINGS: &[&str] = &[
        "hi",
        "hello",
        "hey",
        "dear",
        "thanks",
        "thank you",
        "regards",
        "cheers",
        "best",
        "best regards",
        "kind regards",
        "greetings",
        "all",
        "folks",
        "everyone",
        "team",
    ];
    if TRAILERS.iter().any(|t| lower.starts_with(t)) {
        return true;
    }
    if lower.ends_with("wrote:") || (lower.starts_with("on ") && lower.contains(" wrote")) {
        return true;
    }
    // "Hi all," / "Thanks, Jane" / "Best regards,": short lines starting with a greeting.
    if words <= 4 {
        let first = lower.trim_end_matches([',', '!', '.', ':']);
        let greets = |g: &&str| {
            first == *g
                || first.starts_with(&format!("{g} "))
                || first.starts_with(&format!("{g},"))
        };
        if GREETINGS.iter().any(greets) {
            return true;
        }
    }
    // Lines of symbols (separators, ASCII art).
    !line.chars().any(char::is_alphanumeric)
}

/// How much a message says: its prose length, capped so one long essay does not always win over
/// a dense reply, plus a little for being a patch's description.
pub fn substance(own_text: &str) -> usize {
    prose(own_text).chars().count().min(4_000)
}

/// The first one or two sentences of `prose`, at most [`MAX_EXCERPT_CHARS`] characters, cut at
/// a word with an ellipsis when too long. Empty when there is no prose.
pub fn excerpt(own_text: &str) -> String {
    let prose = prose(own_text);
    let first_paragraph = prose
        .split('\n')
        .find(|p| p.split_whitespace().count() >= 4)
        .or_else(|| prose.split('\n').next())
        .unwrap_or("");
    let first_paragraph = strip_greeting(first_paragraph);
    let mut out = String::new();
    let mut sentences = 0;
    let mut rest = first_paragraph;
    while sentences < 2 && !rest.is_empty() {
        let end = sentence_end(rest);
        let (sentence, after) = rest.split_at(end);
        if !out.is_empty() && out.chars().count() + sentence.chars().count() > MAX_EXCERPT_CHARS {
            break;
        }
        out.push_str(sentence);
        sentences += 1;
        rest = after;
    }
    let out = out.trim();
    if out.chars().count() <= MAX_EXCERPT_CHARS {
        return out.to_string();
    }
    let mut cut: String = out.chars().take(MAX_EXCERPT_CHARS - 1).collect();
    if let Some(space) = cut.rfind(' ') {
        if space > MAX_EXCERPT_CHARS / 2 {
            cut.truncate(space);
        }
    }
    format!("{}…", cut.trim_end_matches([',', ';', ':', ' ']))
}

/// Drops a greeting that shares a line with the text ("Hello,With nested providers ...", as
/// HTML mail turned into text often has it).
fn strip_greeting(paragraph: &str) -> &str {
    const GREETINGS: &[&str] = &[
        "hi",
        "hello",
        "hey",
        "dear",
        "hi all",
        "hello all",
        "hi everyone",
    ];
    if let Some((head, rest)) = paragraph.split_once(',') {
        let head = head.trim().to_lowercase();
        let first_word = head.split_whitespace().next().unwrap_or("");
        if head.split_whitespace().count() <= 3 && GREETINGS.contains(&first_word) {
            return rest.trim_start();
        }
    }
    paragraph
}

/// The byte offset just after the first sentence of `text` (after its terminator and the
/// following space), or the whole length.
fn sentence_end(text: &str) -> usize {
    let bytes = text.as_bytes();
    // Where the current word starts: just after the last space seen (kept as the scan goes,
    // since looking back for it at every `.` was quadratic in text without spaces).
    let mut word_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b' ' {
            word_start = i + 1;
        }
        if matches!(b, b'.' | b'?' | b'!') {
            let next = bytes.get(i + 1);
            // "e.g." and "v2.1" are not ends: the terminator must be followed by a space and
            // preceded by something longer than a one-letter abbreviation.
            let word_len = i - word_start;
            if next == Some(&b' ') && word_len > 1 && !text[word_start..i].contains('.') {
                return i + 2;
            }
            if next.is_none() {
                return i + 1;
            }
        }
    }
    text.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cases() {
        let long = "word ".repeat(100);
        let cases: &[(&str, &str)] = &[
            ("Hi all,\n\nThe scheduler picks the wrong host. It ignores the weigher. And more.\n\nThanks,\nJane",
             "The scheduler picks the wrong host. It ignores the weigher."),
            ("On Mon, Bob wrote:\nI agree, e.g. the v2.1 format works. Ship it.\n", "I agree, e.g. the v2.1 format works. Ship it."),
            ("Fix the leak in nfsd4_close().\n\nSigned-off-by: A <a@x>\n---\n fs/x.c | 1 +\ndiff --git a/x b/x\n", "Fix the leak in nfsd4_close()."),
            ("Hello,With nested providers it breaks. More.", "With nested providers it breaks. More."),
            ("Hi Bob, the fix works.", "the fix works."),
            ("High load, again.", "High load, again."),
            ("ok", "ok"),
            ("", ""),
            ("-----\n=====\n", ""),
        ];
        for (text, want) in cases {
            assert_eq!(excerpt(text), *want, "{text:?}");
        }
        let got = excerpt(&long);
        assert!(
            got.ends_with('…') && got.chars().count() <= MAX_EXCERPT_CHARS,
            "{got}"
        );
        let multibyte = "é".repeat(500);
        assert!(excerpt(&multibyte).chars().count() <= MAX_EXCERPT_CHARS);
    }

    #[test]
    fn substance_prefers_prose() {
        assert!(substance("A real explanation of the bug and the fix.") > substance("+1"));
        assert!(substance("Thanks,\nJane") <= "Jane".len());
    }
}
