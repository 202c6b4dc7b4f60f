//! Domain types shared by every module: message identity, list names, addresses, ISO weeks
//! and time zone offsets, subscriber email addresses.
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

    /// `encoded`, the percent-encoded `id`, as a URL path segment that reaches the id's own
    /// page: `.` and `..` are dot segments that browsers and HTTP clients remove from a path
    /// (`%2E` included, per the WHATWG URL standard), and an id ending in `.mbox.gz` reads as
    /// its thread's mbox, so such an id goes in angle brackets (`%3C..%3E`), which
    /// [`MessageId::parse`] takes off again.
    pub fn path_segment(id: &str, encoded: String) -> String {
        if id == "." || id == ".." || id.ends_with(".mbox.gz") {
            format!("%3C{encoded}%3E")
        } else {
            encoded
        }
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

/// First path segments of the web archive's own pages: no list may be named so.
pub const RESERVED_LIST_NAMES: &[&str] = &["api", "digest", "help", "m", "search", "static", "t"];

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
    /// becomes `linux-nfs`, the first label of the list identifier. A first label that names
    /// one of the web archive's own pages (see [`RESERVED_LIST_NAMES`]) takes the second one
    /// too: `<help.gnu.org>` becomes `help-gnu`.
    pub fn from_list_id(list_id: &str) -> Option<ListName> {
        let inner = match (list_id.rfind('<'), list_id.rfind('>')) {
            (Some(start), Some(end)) if start < end => &list_id[start + 1..end],
            _ => list_id.trim(),
        };
        let mut labels = inner.split('.').map(str::trim);
        let first = ListName::parse(labels.next()?).ok()?;
        if !first.is_reserved() {
            return Some(first);
        }
        let second = labels.next().filter(|l| !l.is_empty())?;
        ListName::parse(&format!("{}-{second}", first.0)).ok()
    }

    /// Whether the name is the first segment of one of the web archive's own paths, where a
    /// list's pages (`/NAME/`, `/NAME/atom`, `/NAME/2023/05/`) could not be reached.
    pub fn is_reserved(&self) -> bool {
        RESERVED_LIST_NAMES.contains(&self.0.as_str())
    }

    /// Why a new list may not take this name, if it is reserved.
    pub fn reserved_reason(&self) -> Option<String> {
        self.is_reserved().then(|| {
            format!(
                "the list name {:?} is taken by the web archive's own pages (/{}/): choose another with --list",
                self.0, self.0
            )
        })
    }

    /// The name a list found only by its folder gets when the folder's name is reserved:
    /// `t/` files into `t-list`.
    pub fn unreserved(self) -> ListName {
        if self.is_reserved() {
            ListName(format!("{}-list", self.0))
        } else {
            self
        }
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

/// An email address a digest can be sent to: `local@domain`, at most 254 bytes, no white
/// space, control characters, brackets, quotes, commas or semicolons, so it can never carry a
/// second address or a header into a message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Validates an address as typed into a form (surrounding blanks are ignored).
    pub fn parse(raw: &str) -> Result<EmailAddress, String> {
        let s = raw.trim();
        let bad = || format!("invalid email address {s:?}");
        if s.is_empty() || s.len() > 254 {
            return Err(bad());
        }
        let forbidden = |c: char| {
            c.is_whitespace()
                || c.is_control()
                || matches!(
                    c,
                    '<' | '>' | '(' | ')' | '[' | ']' | ',' | ';' | ':' | '"' | '\\'
                )
        };
        if s.chars().any(forbidden) {
            return Err(bad());
        }
        let (local, domain) = s.rsplit_once('@').ok_or_else(bad)?;
        let domain_ok = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        // An unquoted local part is a dot-atom: dots only between characters, never two in a
        // row (mail libraries, ours included, refuse `a..b@` and `.a@`).
        let dot_atom = !local.starts_with('.') && !local.ends_with('.') && !local.contains("..");
        if local.is_empty() || local.len() > 64 || local.contains('@') || !dot_atom || !domain_ok {
            return Err(bad());
        }
        Ok(EmailAddress(s.to_string()))
    }

    /// Wraps an address read back from the archive, where it was validated on the way in.
    pub(crate) fn trusted(raw: String) -> EmailAddress {
        EmailAddress(raw)
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The form used to tell subscribers apart: lowercased.
    pub fn key(&self) -> String {
        self.0.to_lowercase()
    }

    /// For logs: the first letter of the local part and the domain (`j…@example.org`), so
    /// logs never hold full addresses.
    pub fn masked(&self) -> String {
        let (local, domain) = self.0.rsplit_once('@').unwrap_or(("", &self.0));
        let first: String = local.chars().take(1).collect();
        format!("{first}…@{domain}")
    }
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A fixed offset from UTC, as the digest schedule and week boundaries use it: `UTC`, `Z`,
/// `+02:00`, `-05:30` or `+0200`. Daylight-saving rules are deliberately not modelled: a week
/// boundary that moves by an hour twice a year would make the same week mean two ranges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct ZoneOffset(i32);

impl ZoneOffset {
    /// UTC, the default.
    pub const UTC: ZoneOffset = ZoneOffset(0);

    /// Parses `UTC`, `Z`, `±HH:MM` or `±HHMM` (at most ±18:00, as RFC 3339 allows).
    pub fn parse(raw: &str) -> Result<ZoneOffset, String> {
        let s = raw.trim();
        if s.eq_ignore_ascii_case("utc") || s.eq_ignore_ascii_case("z") {
            return Ok(ZoneOffset::UTC);
        }
        let bad = || format!("invalid time zone offset {raw:?}: use UTC, +HH:MM or -HH:MM");
        let (sign, rest) = match s.as_bytes().first() {
            Some(b'+') => (1, &s[1..]),
            Some(b'-') => (-1, &s[1..]),
            _ => return Err(bad()),
        };
        let digits: String = rest.chars().filter(|&c| c != ':').collect();
        let colon_ok = rest.len() == 4 || (rest.len() == 5 && rest.as_bytes()[2] == b':');
        if digits.len() != 4 || !colon_ok || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let hours: i32 = digits[..2].parse().map_err(|_| bad())?;
        let minutes: i32 = digits[2..].parse().map_err(|_| bad())?;
        if minutes >= 60 || hours * 60 + minutes > 18 * 60 {
            return Err(bad());
        }
        Ok(ZoneOffset(sign * (hours * 3600 + minutes * 60)))
    }

    /// Seconds east of UTC.
    pub fn seconds(self) -> i32 {
        self.0
    }
}

impl fmt::Display for ZoneOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("UTC");
        }
        let sign = if self.0 < 0 { '-' } else { '+' };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60)
    }
}

impl TryFrom<String> for ZoneOffset {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        ZoneOffset::parse(&value)
    }
}

impl<'de> serde::Deserialize<'de> for ZoneOffset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        ZoneOffset::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// An ISO 8601 week such as `2023-W20`: Monday 00:00 to the next Monday 00:00 in a given
/// [`ZoneOffset`]. Digests are made per week, so this is their identity (ledger keys, URLs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IsoWeek {
    year: i32,
    week: u8,
}

/// Seconds in a week.
const WEEK_SECONDS: i64 = 7 * 86_400;

impl IsoWeek {
    /// Parses `YYYY-Www` (`2023-W20`; a lowercase `w` is accepted). The week must exist in that
    /// ISO year (week 53 only in long years).
    pub fn parse(raw: &str) -> Result<IsoWeek, String> {
        let bad = || format!("invalid ISO week {raw:?}: use YYYY-Www, e.g. 2023-W20");
        let s = raw.trim();
        let (year, week) = s.split_once(['W', 'w']).ok_or_else(bad)?;
        let year = year.strip_suffix('-').ok_or_else(bad)?;
        if year.len() != 4 || week.len() != 2 {
            return Err(bad());
        }
        if !year.bytes().chain(week.bytes()).all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let year: i32 = year.parse().map_err(|_| bad())?;
        let week: u8 = week.parse().map_err(|_| bad())?;
        IsoWeek::new(year, week).ok_or_else(|| format!("{raw:?}: {year} has no ISO week {week}"))
    }

    /// The week, if it exists.
    pub fn new(year: i32, week: u8) -> Option<IsoWeek> {
        time::Date::from_iso_week_date(year, week, time::Weekday::Monday).ok()?;
        Some(IsoWeek { year, week })
    }

    /// The week holding `instant` (Unix seconds) as seen in `zone`.
    pub fn containing(instant: i64, zone: ZoneOffset) -> IsoWeek {
        let local = instant.saturating_add(i64::from(zone.seconds()));
        let days = local.div_euclid(86_400);
        // Clamp to the dates `time` supports; archives never hold dates outside ±9999 years.
        let date = time::Date::from_julian_day(
            (days + 2_440_588).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32,
        )
        .unwrap_or(time::Date::MIN);
        let (year, week, _) = date.to_iso_week_date();
        IsoWeek { year, week }
    }

    /// ISO week-numbering year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// Week number, 1 to 53.
    pub fn week(self) -> u8 {
        self.week
    }

    /// Monday 00:00 local time, in Unix seconds.
    pub fn start(self, zone: ZoneOffset) -> i64 {
        let monday = time::Date::from_iso_week_date(self.year, self.week, time::Weekday::Monday)
            .unwrap_or(time::Date::MIN);
        (i64::from(monday.to_julian_day()) - 2_440_588) * 86_400 - i64::from(zone.seconds())
    }

    /// The next Monday 00:00 local time (exclusive end), in Unix seconds.
    pub fn end(self, zone: ZoneOffset) -> i64 {
        self.start(zone) + WEEK_SECONDS
    }

    /// The week before.
    pub fn prev(self) -> IsoWeek {
        IsoWeek::containing(self.start(ZoneOffset::UTC) - 1, ZoneOffset::UTC)
    }

    /// The week after.
    pub fn next(self) -> IsoWeek {
        IsoWeek::containing(self.end(ZoneOffset::UTC), ZoneOffset::UTC)
    }

    /// The Monday as `YYYY-MM-DD`, for people.
    pub fn monday(self) -> String {
        let monday = time::Date::from_iso_week_date(self.year, self.week, time::Weekday::Monday)
            .unwrap_or(time::Date::MIN);
        format!(
            "{:04}-{:02}-{:02}",
            monday.year(),
            u8::from(monday.month()),
            monday.day()
        )
    }
}

impl fmt::Display for IsoWeek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-W{:02}", self.year, self.week)
    }
}

impl serde::Serialize for IsoWeek {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_addresses() {
        let cases: &[(&str, bool)] = &[
            ("jane@example.org", true),
            ("  Jane.Doe+digest@Example.ORG ", true),
            ("jane@localhost", true),
            ("jane@exämple.org", true),
            ("jane", false),
            ("@example.org", false),
            ("jane@", false),
            ("jane@@example.org", false),
            ("jane@example..org", false),
            ("a..b@example.org", false),
            (".a@example.org", false),
            ("a.@example.org", false),
            ("jane@-example.org", false),
            ("jane@example.org\r\nBcc: x@y", false),
            ("jane@example.org, x@y", false),
            ("Jane <jane@example.org>", false),
            ("\"a b\"@example.org", false),
            ("", false),
        ];
        for (input, ok) in cases {
            assert_eq!(EmailAddress::parse(input).is_ok(), *ok, "{input:?}");
        }
        let long = format!("{}@example.org", "a".repeat(65));
        assert!(EmailAddress::parse(&long).is_err());
        let e = EmailAddress::parse("Jane@Example.org").expect("valid");
        assert_eq!(e.key(), "jane@example.org");
        assert_eq!(e.masked(), "J…@Example.org");
    }

    #[test]
    fn iso_weeks() {
        // (input, Monday, start in UTC)
        let cases: &[(&str, Option<(&str, i64)>)] = &[
            ("2023-W20", Some(("2023-05-15", 1_684_108_800))),
            ("2023-w01", Some(("2023-01-02", 1_672_617_600))),
            ("2020-W53", Some(("2020-12-28", 1_609_113_600))),
            ("2021-W53", None),
            ("2023-W00", None),
            ("2023-W54", None),
            ("2023W20", None),
            ("2023-20", None),
            ("23-W20", None),
            ("2023-W2", None),
            ("２023-W20", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = IsoWeek::parse(input).ok();
            match (got, want) {
                (Some(week), Some((monday, start))) => {
                    assert_eq!(week.monday(), *monday, "{input}");
                    assert_eq!(week.start(ZoneOffset::UTC), *start, "{input}");
                    assert_eq!(week.end(ZoneOffset::UTC), start + 7 * 86_400, "{input}");
                    assert_eq!(IsoWeek::parse(&week.to_string()), Ok(week), "{input}");
                }
                (None, None) => {}
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn iso_week_boundaries_follow_the_zone() {
        let week = IsoWeek::parse("2023-W20").expect("week");
        let plus2 = ZoneOffset::parse("+02:00").expect("zone");
        let minus5 = ZoneOffset::parse("-0500").expect("zone");
        assert_eq!(week.start(plus2), week.start(ZoneOffset::UTC) - 7200);
        assert_eq!(week.start(minus5), week.start(ZoneOffset::UTC) + 5 * 3600);
        let start = week.start(plus2);
        assert_eq!(IsoWeek::containing(start, plus2), week);
        assert_eq!(IsoWeek::containing(start - 1, plus2), week.prev());
        assert_eq!(IsoWeek::containing(week.end(plus2) - 1, plus2), week);
        assert_eq!(IsoWeek::containing(week.end(plus2), plus2), week.next());
        // Across a year with 53 weeks and back.
        let w53 = IsoWeek::parse("2020-W53").expect("week");
        assert_eq!(w53.next().to_string(), "2021-W01");
        assert_eq!(w53.next().prev(), w53);
        assert_eq!(
            IsoWeek::parse("2023-W01").expect("week").prev().to_string(),
            "2022-W52"
        );
        assert_eq!(
            IsoWeek::containing(-1, ZoneOffset::UTC).to_string(),
            "1970-W01"
        );
    }

    #[test]
    fn zone_offsets() {
        let cases: &[(&str, Option<i32>)] = &[
            ("UTC", Some(0)),
            ("z", Some(0)),
            ("+02:00", Some(7200)),
            ("-05:30", Some(-19_800)),
            ("+0100", Some(3600)),
            ("+18:00", Some(64_800)),
            ("+18:01", None),
            ("+1:00", None),
            ("02:00", None),
            ("+02:60", None),
            ("+02:0x", None),
            ("", None),
        ];
        for (input, want) in cases {
            let got = ZoneOffset::parse(input).ok().map(ZoneOffset::seconds);
            assert_eq!(got, *want, "{input}");
        }
        assert_eq!(
            ZoneOffset::parse("-05:30").map(|z| z.to_string()),
            Ok("-05:30".into())
        );
        assert_eq!(ZoneOffset::UTC.to_string(), "UTC");
    }

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
        // Names of the site's own pages: refused for new lists, worked around from List-Id.
        for reserved in RESERVED_LIST_NAMES {
            let name = ListName::parse(reserved).expect("a valid name");
            assert!(name.is_reserved(), "{reserved}");
            assert!(name
                .reserved_reason()
                .is_some_and(|r| r.contains("is taken")));
        }
        assert_eq!(
            ListName::from_list_id("GNU help <help.gnu.org>").map(|l| l.0),
            Some("help-gnu".to_string())
        );
        assert_eq!(ListName::from_list_id("<t>"), None);
        assert_eq!(
            ListName::parse("t").map(|l| l.unreserved().0),
            Ok("t-list".to_string())
        );
        assert_eq!(
            ListName::parse("dev").map(|l| l.unreserved().0),
            Ok("dev".to_string())
        );
        assert_eq!(
            ListName::from_list_id("<helpers.example.org>").map(|l| l.0),
            Some("helpers".to_string())
        );
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
