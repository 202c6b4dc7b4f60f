//! One message as an HTML `<article>`: subject, sender, date, lists ("also posted to"),
//! attachments, the body, and links to its neighbours. Message pages show one, thread pages a
//! hundred; written here in code rather than in a template because the template engine's
//! per-value work was a quarter of a thread page's cost.
//!
//! Every value taken from a message goes through [`escape_into`] (or is built from a safe
//! alphabet: anchors are hex, paths percent-encoded); the body comes from
//! [`text::write_body`], which escapes it itself.

use std::fmt::Write as _;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::render::{id_path, iso_date, short_date, shown_subject};
use super::{obfuscate, text};
use crate::html::escape_into;
use crate::store::FullMessage;

/// Links from a message to its neighbours on a thread page (anchors).
#[derive(Default)]
/// Where a message's parent, replies and next message are: links within the page
/// (`#anchor`), or to another page of a long thread (`?page=2#anchor`).
pub(crate) struct Links {
    pub parent: Option<String>,
    /// Replies: (link, sender).
    pub children: Vec<(String, String)>,
    pub next: Option<String>,
}

/// Characters escaped in a list name used as a path segment (`/LIST/`).
const LIST_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'.')
    .remove(b'-')
    .remove(b'_')
    .add(b' ');

/// A rough size of a message's article, to reserve output space once.
pub(crate) fn size_hint(m: &FullMessage) -> usize {
    1200 + m.body.len() + m.body.len() / 8
}

/// Appends the article of `m` to `out`, its subject as a heading of `level` (1 on a message
/// page, 2 on a thread page) and its element id `anchor` (`render::anchor` of its id). `hide`
/// writes addresses as `user at example.org`.
pub(crate) fn write(
    out: &mut String,
    m: &FullMessage,
    anchor: &str,
    links: &Links,
    level: u8,
    hide: bool,
) {
    let path = id_path(m.id.as_str());
    // `write!` into a String cannot fail.
    let _ = write!(
        out,
        "<article class=\"message\" id=\"{anchor}\" aria-labelledby=\"{anchor}-h\">\n<header>\n\
         <h{level} id=\"{anchor}-h\" class=\"subject\"><a href=\"/m/{path}\">"
    );
    let subject = shown_subject(&m.subject);
    escape_into(
        out,
        if subject.is_empty() {
            "(no subject)"
        } else {
            &subject
        },
    );
    let _ = write!(
        out,
        "</a></h{level}>\n<p class=\"meta\"><span class=\"from\">"
    );
    escape_into(out, &obfuscate::label(hide, &m.from));
    out.push_str("</span>");
    if let Some(addr) = m.from.addr.as_deref().filter(|a| !a.is_empty()) {
        out.push_str(" <span class=\"addr\">&lt;");
        escape_into(out, &obfuscate::maybe(hide, addr));
        out.push_str("&gt;</span>");
    }
    // An undated message's `<time>` has no `datetime` (an empty one is not a valid value).
    match m.date {
        Some(_) => {
            out.push_str(" · <time datetime=\"");
            escape_into(out, &iso_date(m.date));
            out.push_str("\">");
        }
        None => out.push_str(" · <time>"),
    }
    escape_into(out, &short_date(m.date));
    out.push_str("</time></p>\n<p class=\"meta\">Posted to ");
    let (first, also) = m.lists.split_at(m.lists.len().min(1));
    list_links(out, first);
    if !also.is_empty() {
        out.push_str(" <span class=\"also\">(also posted to ");
        list_links(out, also);
        out.push_str(")</span>");
    }
    out.push_str("</p>\n");
    if !m.attachments.is_empty() {
        out.push_str("<ul class=\"attachments\" aria-label=\"Attachments\">");
        for a in &m.attachments {
            out.push_str("<li>📎 ");
            escape_into(
                out,
                a.filename
                    .as_deref()
                    .filter(|f| !f.is_empty())
                    .unwrap_or("(unnamed)"),
            );
            out.push_str(" <span class=\"meta\">");
            escape_into(out, &a.content_type);
            let _ = write!(out, ", {} bytes</span></li>", a.size);
        }
        out.push_str("</ul>");
    }
    out.push_str("\n</header>\n<div class=\"body\">\n");
    text::write_body(out, &m.body, m.footer_at, hide);
    let _ = write!(
        out,
        "\n</div>\n<nav class=\"msgnav\" aria-label=\"Message links\"><a href=\"/m/{path}\">permalink</a> · \
         <a href=\"/m/{path}/raw\">raw</a> · <a href=\"/t/{path}#{anchor}\">thread</a>"
    );
    if let Some(parent) = &links.parent {
        out.push_str(" · <a href=\"");
        escape_into(out, parent);
        out.push_str("\" rel=\"up\">parent</a>");
    }
    if !links.children.is_empty() {
        out.push_str(" · <span class=\"replies\">replies: ");
        for (i, (child, from)) in links.children.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.push_str("<a href=\"");
            escape_into(out, child);
            out.push_str("\">");
            escape_into(out, from);
            out.push_str("</a>");
        }
        out.push_str("</span>");
    }
    if let Some(next) = &links.next {
        out.push_str(" · <a href=\"");
        escape_into(out, next);
        out.push_str("\">next</a>");
    }
    out.push_str("</nav>\n</article>");
}

fn list_links(out: &mut String, lists: &[String]) {
    for (i, l) in lists.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str("<a href=\"/");
        escape_into(out, &utf8_percent_encode(l, LIST_SEGMENT).to_string());
        out.push_str("/\">");
        escape_into(out, l);
        out.push_str("</a>");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Address, Attachment, MessageId};

    /// Every field of the article carries hostile text; none of it may come out as markup.
    /// The only tags allowed are the article's own, and no attribute may be broken out of.
    #[test]
    fn every_field_is_escaped() {
        let evil = "\"'><script>alert(1)</script>&";
        let m = FullMessage {
            id: MessageId::from_trusted(format!("{evil}@x")),
            subject: format!("s{evil}"),
            from: Address {
                name: Some(format!("n{evil}")),
                addr: Some(format!("a{evil}@x")),
            },
            date: Some(0),
            lists: vec![format!("l{evil}"), format!("m{evil}")],
            refs: Vec::new(),
            body: format!("b{evil}\n> q{evil}\n-- \nsig{evil}\n"),
            footer_at: None,
            attachments: vec![Attachment {
                filename: Some(format!("f{evil}")),
                content_type: format!("t{evil}"),
                size: 1,
            }],
            html_only: false,
            has_patch: false,
            size: 0,
            thread: 1,
        };
        let links = Links {
            parent: Some(format!("p{evil}")),
            children: vec![(format!("c{evil}"), format!("r{evil}"))],
            next: Some(format!("x{evil}")),
        };
        for hide in [false, true] {
            let mut out = String::new();
            write(&mut out, &m, "m0123", &links, 2, hide);
            assert!(!out.contains("<script"), "{out}");
            assert!(!out.contains("'>"), "{out}");
            // Every tag is one of the article's own.
            let allowed = [
                "article", "header", "h2", "a", "p", "span", "time", "ul", "li", "div", "pre",
                "details", "summary", "nav",
            ];
            for tag in out.split('<').skip(1) {
                let name: String = tag
                    .trim_start_matches('/')
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric())
                    .collect();
                assert!(allowed.contains(&name.as_str()), "<{tag:.40}");
            }
            // Attribute values never hold a raw quote: every `="` closes at the next `"`,
            // after which only a blank, `>` or `/` may follow.
            for (i, _) in out.match_indices("=\"") {
                let rest = &out[i + 2..];
                let close = rest.find('"').expect("closed attribute");
                let after = rest[close + 1..].chars().next().unwrap_or('>');
                assert!(matches!(after, ' ' | '>' | '/'), "{:.80}", &out[i..]);
            }
            for field in ["s", "n", "l", "m", "b", "q", "sig", "f", "t", "r"] {
                assert!(
                    out.contains(&format!("{field}&quot;&#39;&gt;&lt;script&gt;")),
                    "{field} missing or not escaped (hide = {hide})"
                );
            }
        }
    }
}
