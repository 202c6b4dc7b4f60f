//! Domain types shared by every module: message identity, list names, addresses.
//!
//! They are plain values with `parse` constructors, so bad input is rejected once, at the edge.

use std::fmt;

/// The longest Message-ID we accept as an identity. RFC 5322 caps a line at 998 bytes; anything
/// longer is hostile or broken and is treated as missing (the message then gets a synthetic id).
pub const MAX_MESSAGE_ID_LEN: usize = 998;

/// A normalised Message-ID: no angle brackets, no whitespace, case kept (the local part is
/// case-sensitive). This is the public identity of a message: URLs and emails use it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(String);

impl MessageId {
    /// Normalises a header value such as ` <abc@example.org>` into `abc@example.org`.
    /// Returns `None` for an empty or oversized id, or one with control characters.
    pub fn parse(raw: &str) -> Option<MessageId> {
        let trimmed = raw.trim();
        // `<id>` as in headers, or a bare id as in URLs and on the command line. A bare id may
        // itself hold `<` and `>` (hostile ids do), so only a leading `<` means brackets.
        let inner = match (trimmed.strip_prefix('<'), trimmed.rfind('>')) {
            (Some(_), Some(end)) if end > 0 => &trimmed[1..end],
            (Some(rest), None) => rest,
            _ => trimmed,
        };
        let id: String = inner.chars().filter(|c| !c.is_whitespace()).collect();
        let id = id.trim_matches(|c| c == '<' || c == '>').to_string();
        if id.is_empty() || id.len() > MAX_MESSAGE_ID_LEN || id.chars().any(|c| c.is_control()) {
            return None;
        }
        Some(MessageId(id))
    }

    /// Wraps an id this crate made itself (synthetic or derived); callers guarantee the shape.
    pub(crate) fn from_trusted(id: String) -> MessageId {
        MessageId(id)
    }

    /// The id without angle brackets.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A mailing-list name as used in URLs and on the command line: lowercase ASCII letters,
/// digits, `-`, `_` and `.`, starting with a letter or digit, at most 64 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListName(String);

impl ListName {
    /// Validates and lowercases a list name.
    pub fn parse(raw: &str) -> Result<ListName, String> {
        let name = raw.trim().to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if valid {
            Ok(ListName(name))
        } else {
            Err(format!(
                "invalid list name {raw:?}: use letters, digits, '-', '_' or '.' (at most 64)"
            ))
        }
    }

    /// Derives a list name from a `List-Id` header value: `Foo <linux-nfs.vger.kernel.org>`
    /// becomes `linux-nfs`, the first label of the list identifier.
    pub fn from_list_id(list_id: &str) -> Option<ListName> {
        let inner = match (list_id.rfind('<'), list_id.rfind('>')) {
            (Some(start), Some(end)) if start < end => &list_id[start + 1..end],
            _ => list_id.trim(),
        };
        let label = inner.split('.').next()?.trim();
        ListName::parse(label).ok()
    }

    /// The name as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ListName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sender or recipient: either part may be missing (Pipermail hides addresses).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Address {
    /// Display name, decoded.
    pub name: Option<String>,
    /// The address itself, as written.
    pub addr: Option<String>,
}

impl Address {
    /// The best short label for a person: the name, else the address, else "unknown".
    pub fn label(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.trim().is_empty())
            .or(self.addr.as_deref())
            .unwrap_or("unknown")
    }
}

/// An attachment as listed on message pages: never the content itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// File name as given by the sender (decoded), if any.
    pub filename: Option<String>,
    /// `type/subtype`, lowercase.
    pub content_type: String,
    /// Decoded size in bytes.
    pub size: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_id_normalisation() {
        let cases: &[(&str, Option<&str>)] = &[
            ("<abc@example.org>", Some("abc@example.org")),
            ("  <abc@example.org>  ", Some("abc@example.org")),
            ("abc@example.org", Some("abc@example.org")),
            ("<abc@\r\n example.org>", Some("abc@example.org")),
            ("<CaSe@Example.org>", Some("CaSe@Example.org")),
            ("<>", None),
            ("", None),
            ("   ", None),
            ("<a\u{0}b@x>", None),
            (
                "\"><script>x</script>@evil",
                Some("\"><script>x</script>@evil"),
            ),
            (
                "<\"><script>x</script>@evil>",
                Some("\"><script>x</script>@evil"),
            ),
        ];
        for (input, expected) in cases {
            let got = MessageId::parse(input);
            assert_eq!(
                got.as_ref().map(|m| m.as_str()),
                *expected,
                "input {input:?}"
            );
        }
        assert!(MessageId::parse(&format!("<{}@x>", "a".repeat(2000))).is_none());
    }

    #[test]
    fn list_names() {
        assert_eq!(ListName::parse("Dev").map(|l| l.0), Ok("dev".to_string()));
        assert!(ListName::parse("../etc").is_err());
        assert!(ListName::parse("").is_err());
        assert!(ListName::parse("a b").is_err());
        let cases = [
            ("<linux-nfs.vger.kernel.org>", Some("linux-nfs")),
            (
                "\"Discussion\" <usrp-users.lists.ettus.com>",
                Some("usrp-users"),
            ),
            ("dev.lists.example.org", Some("dev")),
            ("<>", None),
        ];
        for (input, expected) in cases {
            assert_eq!(
                ListName::from_list_id(input).map(|l| l.0),
                expected.map(String::from),
                "{input}"
            );
        }
    }
}
