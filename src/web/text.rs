//! Message bodies as safe HTML: every byte escaped, quoted blocks folded, signatures and list
//! footers dimmed, URLs linked with `rel="nofollow noopener noreferrer"`. Pure functions; the
//! mail's own HTML is never rendered (its text form is shown), so no markup from a sender
//! reaches the page.

pub use crate::html::escape;
use crate::html::escape_into;

/// Escapes text and turns `http(s)://` URLs into links that send no referrer and pass no
/// ranking. Only http and https are linked: `javascript:` and friends stay text.
pub fn linkify(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 64);
    linkify_into(&mut out, text);
    out
}

/// [`linkify`], appended to `out`.
fn linkify_into(out: &mut String, text: &str) {
    let mut rest = text;
    while let Some(pos) = find_url(rest) {
        escape_into(out, &rest[..pos]);
        let url_len = rest[pos..]
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | '`'))
            .unwrap_or(rest.len() - pos);
        let mut url = &rest[pos..pos + url_len];
        // Trailing punctuation belongs to the sentence, not the URL.
        while let Some(last) = url.chars().last() {
            if matches!(last, '.' | ',' | ';' | ':' | '!' | '?' | ')' | ']') {
                url = &url[..url.len() - last.len_utf8()];
            } else {
                break;
            }
        }
        if url.len() <= "https://".len() {
            escape_into(out, url);
        } else {
            let e = escape(url);
            out.push_str("<a href=\"");
            out.push_str(&e);
            out.push_str("\" rel=\"nofollow noopener noreferrer\">");
            out.push_str(&e);
            out.push_str("</a>");
        }
        rest = &rest[pos + url.len()..];
    }
    escape_into(out, rest);
}

/// Where the first `http://` or `https://` of `text` starts. One pass: searching for each
/// scheme over the whole rest of the text, for every link, was quadratic in a body of
/// thousands of `http://` links and no `https://`.
fn find_url(text: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find("http") {
        let at = from + i;
        let after = &text[at + 4..];
        if after.starts_with("://") || after.starts_with("s://") {
            return Some(at);
        }
        from = at + 4;
    }
    None
}

/// What a block of a message body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The author's own text.
    Text,
    /// Lines quoted from earlier mail (`>`), folded on the page.
    Quote,
    /// The author's signature (after `-- `), dimmed.
    Signature,
    /// The list's footer, dimmed.
    Footer,
}

/// A run of lines of one kind, already rendered to safe HTML.
#[derive(Debug, Clone)]
pub struct Block {
    /// Kind.
    pub kind: Kind,
    /// Safe HTML.
    pub html: String,
    /// Lines in the block (to label folded quotes).
    pub lines: usize,
}

/// Appends a whole body to `out` as safe HTML: each block a `<pre>`, quoted blocks folded in a `<details>`
/// labelled with their line count, signatures and footers marked by class (dimmed by the
/// stylesheet). Built here rather than in the template: a thread page shows a hundred bodies,
/// and looping over their blocks in the template engine was a large part of its cost.
pub fn write_body(out: &mut String, body: &str, footer_at: Option<usize>, obfuscate: bool) {
    for b in &blocks(body, footer_at, obfuscate) {
        match b.kind {
            Kind::Quote => {
                let s = if b.lines == 1 { "" } else { "s" };
                out.push_str("<details class=\"quote\"><summary>");
                out.push_str(&format!("{} quoted line{s}", b.lines));
                out.push_str("</summary><pre>");
                out.push_str(&b.html);
                out.push_str("</pre></details>");
            }
            Kind::Text => {
                out.push_str("<pre>");
                out.push_str(&b.html);
                out.push_str("</pre>");
            }
            Kind::Signature | Kind::Footer => {
                let class = if b.kind == Kind::Signature {
                    "signature"
                } else {
                    "footer"
                };
                out.push_str("<pre class=\"");
                out.push_str(class);
                out.push_str("\">");
                out.push_str(&b.html);
                out.push_str("</pre>");
            }
        }
    }
}

/// Splits a body into blocks. `footer_at` is where the list footer starts, if known;
/// `obfuscate` writes addresses as `user at example.org`.
pub fn blocks(body: &str, footer_at: Option<usize>, obfuscate: bool) -> Vec<Block> {
    let cut = footer_at.filter(|&f| f <= body.len() && body.is_char_boundary(f));
    let (main, footer) = match cut {
        Some(f) => (&body[..f], Some(&body[f..])),
        None => (body, None),
    };
    // A top-posted reply's original, below the reply and its signature, is folded whole.
    let original = crate::quote::original_start(main).unwrap_or(main.len());
    let mut out: Vec<(Kind, Vec<&str>)> = Vec::new();
    let mut in_signature = false;
    for (offset, line) in crate::quote::lines_with_offsets(main) {
        // The signature separator is exactly "-- " (RFC 3676 4.3).
        if line == "-- " {
            in_signature = true;
        }
        let kind = if offset >= original {
            Kind::Quote
        } else if in_signature {
            Kind::Signature
        } else if line.starts_with('>') {
            Kind::Quote
        } else {
            Kind::Text
        };
        match out.last_mut() {
            Some((k, lines)) if *k == kind => lines.push(line),
            _ => out.push((kind, vec![line])),
        }
    }
    if let Some(f) = footer {
        let lines: Vec<&str> = f.lines().collect();
        if !lines.is_empty() {
            out.push((Kind::Footer, lines));
        }
    }
    out.into_iter()
        .map(|(kind, lines)| {
            let text = lines.join("\n");
            let html = if obfuscate {
                linkify(&super::obfuscate::text(&text))
            } else {
                linkify(&text)
            };
            Block {
                kind,
                lines: lines.len(),
                html,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_and_links() {
        let cases = [
            ("a < b & \"c\"", "a &lt; b &amp; &quot;c&quot;"),
            (
                "see https://x.org/a?b=1&c=2.",
                "see <a href=\"https://x.org/a?b=1&amp;c=2\" rel=\"nofollow noopener noreferrer\">https://x.org/a?b=1&amp;c=2</a>.",
            ),
            ("javascript:alert(1)", "javascript:alert(1)"),
            (
                "<https://x.org/\"onmouseover=alert(1)>",
                "&lt;<a href=\"https://x.org/\" rel=\"nofollow noopener noreferrer\">https://x.org/</a>&quot;onmouseover=alert(1)&gt;",
            ),
            ("http://", "http://"),
            // The earlier of the two schemes wins, whichever it is; `httpx://` is no link.
            (
                "httpx://a http://b.org https://c.org",
                "httpx://a <a href=\"http://b.org\" rel=\"nofollow noopener noreferrer\">http://b.org</a> <a href=\"https://c.org\" rel=\"nofollow noopener noreferrer\">https://c.org</a>",
            ),
            (
                "https://c.org http://b.org",
                "<a href=\"https://c.org\" rel=\"nofollow noopener noreferrer\">https://c.org</a> <a href=\"http://b.org\" rel=\"nofollow noopener noreferrer\">http://b.org</a>",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(linkify(input), expected, "{input}");
        }
    }

    /// Each block's kind and line count.
    fn kinds(body: &str, footer_at: Option<usize>) -> Vec<(Kind, usize)> {
        blocks(body, footer_at, false)
            .iter()
            .map(|b| (b.kind, b.lines))
            .collect()
    }

    #[test]
    fn blocks_split_quotes_signature_and_footer() {
        let body = "Hi,\n> quoted\n> more\nanswer\n-- \nAlice\n____\nlist footer\n";
        assert_eq!(
            kinds(body, body.find("____")),
            vec![
                (Kind::Text, 1),
                (Kind::Quote, 2),
                (Kind::Text, 1),
                (Kind::Signature, 2),
                (Kind::Footer, 2)
            ]
        );
        assert!(blocks("<script>", None, false)[0]
            .html
            .contains("&lt;script&gt;"));
    }

    /// A top-posted reply's original (Outlook's separator and headers) is folded whole, its
    /// signature and quotes included, and the list footer after it stays a footer.
    #[test]
    fn a_top_posted_original_is_folded() {
        let body = "Agreed.\n-- \nBob\n\n________________________________\nFrom: Jane\n\
                    Sent: Friday\nSubject: x\n\nold text\n> older\n-- \nJane\n____\nlist footer\n";
        let footer_at = body.find("\n____\n").map(|at| at + 1);
        assert_eq!(
            kinds(body, footer_at),
            vec![
                (Kind::Text, 1),
                (Kind::Signature, 3),
                (Kind::Quote, 9),
                (Kind::Footer, 2)
            ]
        );
        let mut page = String::new();
        write_body(&mut page, body, footer_at, false);
        assert!(page.contains("<details class=\"quote\"><summary>9 quoted lines</summary>"));
    }
}
