//! Address obfuscation for public deployments (`[server] obfuscate_addresses`): every
//! `user@example.org` in pages, message bodies, search results, feeds and the JSON API is
//! written `user at example.org`, as Pipermail does, which harvesters looking for `@` miss
//! while people still read it. Raw messages and mbox downloads stay byte-exact on purpose:
//! they are the archive's record, not a presentation.

use std::borrow::Cow;

use crate::message::Address;
use crate::search::SearchPage;

/// `text` with each address-like `local@domain.tld` written `local at domain.tld`: the `@`
/// must follow a non-space character and be followed by a domain with a dot in it.
pub fn text(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut out: Option<String> = None;
    let mut copied = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b != b'@' || i == 0 || bytes[i - 1].is_ascii_whitespace() {
            continue;
        }
        let domain = bytes[i + 1..]
            .iter()
            .take_while(|&&c| c.is_ascii_alphanumeric() || c >= 0x80 || matches!(c, b'-' | b'.'))
            .count();
        let domain = &bytes[i + 1..i + 1 + domain];
        let dotted = domain
            .windows(2)
            .any(|w| w[0] == b'.' && w[1].is_ascii_alphanumeric());
        if !dotted
            || !domain
                .first()
                .is_some_and(|&c| c.is_ascii_alphanumeric() || c >= 0x80)
        {
            continue;
        }
        let out = out.get_or_insert_with(|| String::with_capacity(text.len() + 16));
        out.push_str(&text[copied..i]);
        out.push_str(" at ");
        copied = i + 1;
    }
    match out {
        Some(mut out) => {
            out.push_str(&text[copied..]);
            Cow::Owned(out)
        }
        None => Cow::Borrowed(text),
    }
}

/// `text` when `on`, else the value unchanged.
pub fn maybe(on: bool, value: &str) -> String {
    if on {
        text(value).into_owned()
    } else {
        value.to_string()
    }
}

/// The sender as shown (name, else address), obfuscated when `on`.
pub fn label(on: bool, from: &Address) -> String {
    maybe(on, from.label())
}

/// A search page with its senders, snippets and sender facet obfuscated.
pub fn search_page(page: &mut SearchPage) {
    for hit in &mut page.hits {
        hit.from = text(&hit.from).into_owned();
        hit.from_addr = hit.from_addr.as_deref().map(|a| text(a).into_owned());
        hit.snippet = text(&hit.snippet).into_owned();
    }
    for facet in &mut page.facets.senders {
        facet.value = text(&facet.value).into_owned();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_written_with_at() {
        let cases = [
            ("alice@example.org", "alice at example.org"),
            (
                "Alice <alice.b+x@mail.example.org> wrote:",
                "Alice <alice.b+x at mail.example.org> wrote:",
            ),
            ("<b>alice</b>@example.org", "<b>alice</b> at example.org"),
            ("a@b.c and d@e.f", "a at b.c and d at e.f"),
            ("no address @ here", "no address @ here"),
            ("@handle", "@handle"),
            ("user@localhost", "user@localhost"),
            ("trailing@", "trailing@"),
            ("x@.org", "x@.org"),
            ("naïve@exämple.org", "naïve at ex\u{e4}mple.org"),
        ];
        for (input, expected) in cases {
            assert_eq!(text(input), expected, "{input}");
        }
    }
}
