//! The search query language, parsed leniently and without recursion: whatever can be
//! understood becomes a query tree (built bottom-up through [`Build`]), the rest a notice.

use super::schema::{normalize_list, normalize_msgid};

/// Parentheses nested deeper than this are ignored (with a notice), which bounds every walk
/// over the resulting tree.
pub(crate) const MAX_DEPTH: usize = 32;
/// Terms beyond this many are dropped: each expands into several field queries.
pub(crate) const MAX_TERMS: usize = 64;
/// Input beyond this many bytes is not read at all.
pub(crate) const MAX_QUERY_BYTES: usize = 64 * 1024;

/// Which text fields a word is searched in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scope {
    /// Subject, own text, quoted text, sender and recipients.
    Any,
    Subject,
    Body,
    From,
    To,
}

/// One searchable condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Leaf {
    /// Words; `phrase` when typed in quotes.
    Text {
        scope: Scope,
        text: String,
        phrase: bool,
    },
    List(String),
    Tag(String),
    /// A sender's facet key, as [`super::schema::sender_term`] makes it.
    Sender(String),
    MsgId(String),
    /// The thread of the message with this id (as [`normalize_msgid`] leaves it); an id made
    /// only of digits that names no message is read as the index's thread number.
    Thread(String),
    HasAttachment,
    HasPatch,
    /// Unix seconds, `start` inclusive, `end` exclusive.
    Date {
        start: Option<i64>,
        end: Option<i64>,
    },
}

/// Assembles the query tree bottom-up while the parser walks its input; the parser itself never
/// holds a tree, so it needs no recursion to build or drop one.
pub(crate) trait Build {
    type Out;
    /// A leaf, or `None` (after a notice) when it has nothing to search for.
    fn leaf(&mut self, leaf: Leaf, notices: &mut Notices) -> Option<Self::Out>;
    /// All clauses must hold; a `true` flag negates its clause. At least two clauses, or one
    /// negated clause.
    fn and(&mut self, clauses: Vec<(bool, Self::Out)>) -> Self::Out;
    /// At least one clause must hold; a `true` flag negates its clause. At least two clauses.
    fn or(&mut self, clauses: Vec<(bool, Self::Out)>) -> Self::Out;
}

/// Human-readable notices, each said once.
#[derive(Debug, Default)]
pub(crate) struct Notices(pub Vec<String>);

/// Notices quote what they are about; one longer than this many characters (a huge word
/// quoted) loses the middle of the quote, keeping its start and the explanation at its end.
const MAX_NOTICE_CHARS: usize = 240;

/// `notice`, shortened as [`MAX_NOTICE_CHARS`] says.
pub(crate) fn capped(notice: String) -> String {
    let n = notice.chars().count();
    if n <= MAX_NOTICE_CHARS {
        return notice;
    }
    let head: String = notice.chars().take(100).collect();
    let tail: String = notice.chars().skip(n - (MAX_NOTICE_CHARS - 101)).collect();
    format!("{head}…{tail}")
}

impl Notices {
    pub(crate) fn push(&mut self, notice: String) {
        let notice = capped(notice);
        if !self.0.contains(&notice) {
            self.0.push(notice);
        }
    }
}

/// Field prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kw {
    From,
    To,
    Subject,
    Body,
    List,
    Tag,
    Sender,
    MsgId,
    Thread,
    Has,
    Date,
    After,
    Before,
}

impl Kw {
    fn parse(prefix: &str) -> Option<Kw> {
        Some(match prefix.to_ascii_lowercase().as_str() {
            "from" => Kw::From,
            "to" => Kw::To,
            "subject" | "s" => Kw::Subject,
            "body" | "b" => Kw::Body,
            "list" | "l" => Kw::List,
            "tag" => Kw::Tag,
            "sender" => Kw::Sender,
            "msgid" => Kw::MsgId,
            "thread" => Kw::Thread,
            "has" => Kw::Has,
            "date" => Kw::Date,
            "after" => Kw::After,
            "before" => Kw::Before,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Kw::From => "from",
            Kw::To => "to",
            Kw::Subject => "subject",
            Kw::Body => "body",
            Kw::List => "list",
            Kw::Tag => "tag",
            Kw::Sender => "sender",
            Kw::MsgId => "msgid",
            Kw::Thread => "thread",
            Kw::Has => "has",
            Kw::Date => "date",
            Kw::After => "after",
            Kw::Before => "before",
        }
    }

    /// Whether `kw:( ... )` makes sense: the group's bare words take this field.
    fn scopes_groups(self) -> bool {
        matches!(
            self,
            Kw::From | Kw::To | Kw::Subject | Kw::Body | Kw::List | Kw::Tag
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    And,
    Or,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::And => "AND",
            Op::Or => "OR",
        }
    }
}

#[derive(Debug)]
enum Tok {
    Open {
        neg: bool,
        field: Option<Kw>,
    },
    Close,
    Op(Op),
    Not,
    Item {
        neg: bool,
        field: Option<Kw>,
        value: String,
        phrase: bool,
    },
}

/// Reads a phrase starting just after its opening quote; returns it and the index after it.
/// `\"` inside stands for a quote (a tag or a sender's name can hold one), `\\` for a
/// backslash (so a value can end with one).
fn read_phrase(chars: &[char], start: usize, notices: &mut Notices) -> (String, usize) {
    let mut text = String::new();
    let mut i = start;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('\\', Some(&c @ ('"' | '\\'))) => {
                text.push(c);
                i += 2;
            }
            ('"', _) => return (text, i + 1),
            (c, _) => {
                text.push(c);
                i += 1;
            }
        }
    }
    // A lone quote at the end is an empty phrase, which says so itself.
    if !text.trim().is_empty() {
        notices.push(format!(
            "Missing closing quote: searched for \"{}\" as a phrase.",
            text.trim()
        ));
    }
    (text, chars.len())
}

fn lex(input: &str, notices: &mut Notices) -> Vec<Tok> {
    let chars: Vec<char> = input.chars().collect();
    let n = chars.len();
    let mut toks = Vec::new();
    // `foo:` prefixes the language does not have, each once, in order.
    let mut unknown: Vec<String> = Vec::new();
    let mut i = 0;
    while i < n {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        match c {
            '(' => {
                toks.push(Tok::Open {
                    neg: false,
                    field: None,
                });
                i += 1;
                continue;
            }
            ')' => {
                toks.push(Tok::Close);
                i += 1;
                continue;
            }
            _ => {}
        }
        let mut neg = false;
        if c == '-' || c == '+' {
            let next = chars.get(i + 1).copied();
            match next {
                Some(nc) if !nc.is_whitespace() && nc != ')' && nc != '-' && nc != '+' => {
                    neg = c == '-';
                    i += 1;
                }
                _ => {
                    // A sign that binds to nothing (or a run of dashes) is just punctuation.
                    let run = chars[i..]
                        .iter()
                        .take_while(|&&ch| ch == '-' || ch == '+')
                        .count();
                    i += run;
                    continue;
                }
            }
        }
        match chars[i] {
            '(' => {
                toks.push(Tok::Open { neg, field: None });
                i += 1;
                continue;
            }
            '"' => {
                let (value, next) = read_phrase(&chars, i + 1, notices);
                i = next;
                toks.push(Tok::Item {
                    neg,
                    field: None,
                    value,
                    phrase: true,
                });
                continue;
            }
            _ => {}
        }
        let start = i;
        while i < n && !chars[i].is_whitespace() && !matches!(chars[i], '(' | ')' | '"') {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        if !neg {
            let op = match word.as_str() {
                "AND" | "&&" => Some(Tok::Op(Op::And)),
                "OR" | "||" => Some(Tok::Op(Op::Or)),
                "NOT" => Some(Tok::Not),
                _ => None,
            };
            if let Some(op) = op {
                toks.push(op);
                continue;
            }
        }
        let field = word
            .split_once(':')
            .and_then(|(prefix, rest)| Kw::parse(prefix).map(|kw| (kw, rest.to_string())));
        let Some((kw, rest)) = field else {
            // `foo:bar` looks like a field the language does not have: say how it was read
            // rather than quietly searching its words. Not a prefix: one letter (`C:\`),
            // digits (times), URL schemes and paths (`git://`, `std::mem`).
            if let Some((prefix, rest)) = word.split_once(':') {
                let looks_like_field = (2..=20).contains(&prefix.len())
                    && prefix.chars().all(|c| c.is_ascii_alphabetic())
                    && !rest.is_empty()
                    && !rest.starts_with([':', '/'])
                    && !matches!(
                        prefix.to_ascii_lowercase().as_str(),
                        "http" | "https" | "mailto"
                    );
                if looks_like_field && !unknown.iter().any(|u| u == prefix) {
                    unknown.push(prefix.to_string());
                }
            }
            toks.push(Tok::Item {
                neg,
                field: None,
                value: word,
                phrase: false,
            });
            continue;
        };
        if !rest.is_empty() {
            toks.push(Tok::Item {
                neg,
                field: Some(kw),
                value: rest,
                phrase: false,
            });
            continue;
        }
        match chars.get(i) {
            Some('"') => {
                let (value, next) = read_phrase(&chars, i + 1, notices);
                i = next;
                toks.push(Tok::Item {
                    neg,
                    field: Some(kw),
                    value,
                    phrase: true,
                });
            }
            Some('(') => {
                i += 1;
                toks.push(Tok::Open {
                    neg,
                    field: Some(kw),
                });
            }
            _ => notices.push(format!("\"{}:\" has no value; ignored it.", kw.name())),
        }
    }
    if !unknown.is_empty() {
        let shown: Vec<String> = unknown
            .iter()
            .take(3)
            .map(|p| format!("\"{p}:\""))
            .collect();
        let more = if unknown.len() > 3 { ", ..." } else { "" };
        notices.push(format!(
            "{}{more} {}, so searched as words. Prefixes: from: to: subject: body: list: \
             tag: sender: msgid: thread: has: date: after: before:.",
            shown.join(", "),
            if unknown.len() == 1 {
                "is not a search prefix"
            } else {
                "are not search prefixes"
            }
        ));
    }
    toks
}

/// A parenthesised group (or the whole query) being read.
struct Frame<T> {
    field: Option<Kw>,
    neg: bool,
    /// Clauses joined by AND (explicit or implied).
    and: Vec<(bool, T)>,
    /// The OR chain being read; OR binds tighter than AND, as in web and mail search.
    or_run: Vec<(bool, T)>,
    pending: Option<Op>,
    not: bool,
}

impl<T> Frame<T> {
    fn new(field: Option<Kw>, neg: bool) -> Self {
        Frame {
            field,
            neg,
            and: Vec::new(),
            or_run: Vec::new(),
            pending: None,
            not: false,
        }
    }

    fn is_empty(&self) -> bool {
        self.and.is_empty() && self.or_run.is_empty()
    }
}

fn flush_or<B: Build>(frame: &mut Frame<B::Out>, b: &mut B) {
    let run = std::mem::take(&mut frame.or_run);
    if run.len() > 1 {
        frame.and.push((false, b.or(run)));
    } else {
        frame.and.extend(run);
    }
}

fn push_operand<B: Build>(frame: &mut Frame<B::Out>, b: &mut B, neg: bool, out: B::Out) {
    let neg = neg ^ frame.not;
    frame.not = false;
    if frame.pending == Some(Op::Or) && !frame.or_run.is_empty() {
        frame.or_run.push((neg, out));
    } else {
        flush_or(frame, b);
        frame.or_run.push((neg, out));
    }
    frame.pending = None;
}

/// Closes a frame: its query, or `None` when it holds nothing.
fn reduce<B: Build>(mut frame: Frame<B::Out>, b: &mut B, notices: &mut Notices) -> Option<B::Out> {
    if let Some(op) = frame.pending {
        notices.push(format!("Ignored \"{}\" at the end of a group.", op.name()));
    }
    if frame.not {
        notices.push("Ignored \"NOT\" with nothing after it.".to_string());
    }
    flush_or(&mut frame, b);
    let mut and = frame.and;
    if and.len() == 1 && !and[0].0 {
        return and.pop().map(|(_, out)| out);
    }
    if and.is_empty() {
        return None;
    }
    Some(b.and(and))
}

/// The outcome of parsing: a query (`None` means "everything") and what the user should know.
#[derive(Debug)]
pub(crate) struct Parsed<T> {
    pub query: Option<T>,
    pub notices: Vec<String>,
}

/// Parses a query. Never fails: anything not understood is skipped with a notice.
pub(crate) fn parse<B: Build>(input: &str, b: &mut B) -> Parsed<B::Out> {
    let mut notices = Notices::default();
    let mut input = input;
    if input.len() > super::schema::truncate_at_char(input, MAX_QUERY_BYTES).len() {
        input = super::schema::truncate_at_char(input, MAX_QUERY_BYTES);
        notices.push(format!(
            "The query is longer than {MAX_QUERY_BYTES} bytes; read only the start."
        ));
    }
    let toks = lex(input, &mut notices);
    let mut stack: Vec<Frame<B::Out>> = vec![Frame::new(None, false)];
    // '(' beyond MAX_DEPTH are skipped, and so are as many ')'.
    let mut skipped_opens = 0usize;
    let mut terms = 0usize;
    for tok in toks {
        let depth = stack.len();
        let Some(frame) = stack.last_mut() else {
            break;
        };
        match tok {
            Tok::Open { neg, field } => {
                if depth > MAX_DEPTH {
                    skipped_opens += 1;
                    notices.push(format!(
                        "Parentheses nested deeper than {MAX_DEPTH} levels were ignored."
                    ));
                    continue;
                }
                let field = match field {
                    Some(kw) if !kw.scopes_groups() => {
                        notices.push(format!(
                            "\"{}:\" cannot apply to a group; searched the group normally.",
                            kw.name()
                        ));
                        frame.field
                    }
                    Some(kw) => Some(kw),
                    None => frame.field,
                };
                stack.push(Frame::new(field, neg));
            }
            Tok::Close => {
                if skipped_opens > 0 {
                    skipped_opens -= 1;
                    continue;
                }
                if depth == 1 {
                    notices.push("Ignored an unmatched \")\".".to_string());
                    continue;
                }
                let Some(done) = stack.pop() else {
                    break;
                };
                let neg = done.neg;
                let out = reduce(done, b, &mut notices);
                if let Some(parent) = stack.last_mut() {
                    match out {
                        Some(out) => push_operand(parent, b, neg, out),
                        None => notices.push("Ignored empty parentheses.".to_string()),
                    }
                }
            }
            Tok::Op(op) => {
                if frame.is_empty() {
                    notices.push(format!("Ignored \"{}\" with nothing before it.", op.name()));
                } else if let Some(prev) = frame.pending {
                    notices.push(format!(
                        "Ignored \"{}\" right after \"{}\".",
                        op.name(),
                        prev.name()
                    ));
                } else if frame.not {
                    notices.push(format!("Ignored \"{}\" right after \"NOT\".", op.name()));
                } else {
                    frame.pending = Some(op);
                }
            }
            Tok::Not => {
                if frame.not {
                    notices.push("Two \"NOT\" in a row cancel out.".to_string());
                }
                frame.not = !frame.not;
            }
            Tok::Item {
                neg,
                field,
                value,
                phrase,
            } => {
                let leaf = make_leaf(field.or(frame.field), &value, phrase, &mut notices);
                let out = match leaf {
                    Some(_) if terms >= MAX_TERMS => {
                        notices.push(format!(
                            "The query has more than {MAX_TERMS} terms; used the first {MAX_TERMS}."
                        ));
                        None
                    }
                    Some(leaf) => {
                        terms += 1;
                        b.leaf(leaf, &mut notices)
                    }
                    None => None,
                };
                match out {
                    Some(out) => push_operand(frame, b, neg, out),
                    None => {
                        // The operators around a dropped term have nothing to join.
                        frame.pending = None;
                        frame.not = false;
                    }
                }
            }
        }
    }
    if stack.len() > 1 {
        notices.push("Added missing \")\".".to_string());
    }
    while stack.len() > 1 {
        let Some(done) = stack.pop() else {
            break;
        };
        let neg = done.neg;
        let out = reduce(done, b, &mut notices);
        if let (Some(parent), Some(out)) = (stack.last_mut(), out) {
            push_operand(parent, b, neg, out);
        }
    }
    let query = stack.pop().and_then(|root| reduce(root, b, &mut notices));
    Parsed {
        query,
        notices: notices.0,
    }
}

/// Turns one `field:value` (or bare word) into a leaf, or a notice.
fn make_leaf(field: Option<Kw>, value: &str, phrase: bool, notices: &mut Notices) -> Option<Leaf> {
    let value = value.trim();
    if value.is_empty() {
        match field {
            Some(kw) => notices.push(format!("\"{}:\" has no value; ignored it.", kw.name())),
            None => notices.push("Ignored an empty phrase.".to_string()),
        }
        return None;
    }
    let text = |scope| Leaf::Text {
        scope,
        text: value.to_string(),
        phrase,
    };
    let Some(kw) = field else {
        return Some(text(Scope::Any));
    };
    match kw {
        Kw::From => Some(text(Scope::From)),
        Kw::To => Some(text(Scope::To)),
        Kw::Subject => Some(text(Scope::Subject)),
        Kw::Body => Some(text(Scope::Body)),
        Kw::List => Some(Leaf::List(normalize_list(value))),
        Kw::Tag => {
            let tag = value.trim_start_matches('[').trim_end_matches(']').trim();
            if tag.is_empty() {
                notices.push("\"tag:\" has no value; ignored it.".to_string());
                return None;
            }
            Some(Leaf::Tag(tag.to_lowercase()))
        }
        Kw::Sender => Some(Leaf::Sender(super::schema::sender_term(value))),
        Kw::MsgId | Kw::Thread => {
            let id = normalize_msgid(value);
            if id.is_empty() {
                notices.push(format!("\"{}:\" has no value; ignored it.", kw.name()));
                return None;
            }
            let id = id.to_string();
            Some(if kw == Kw::MsgId {
                Leaf::MsgId(id)
            } else {
                Leaf::Thread(id)
            })
        }
        Kw::Has => match value.to_ascii_lowercase().as_str() {
            "attachment" | "attachments" | "attach" => Some(Leaf::HasAttachment),
            "patch" | "patches" => Some(Leaf::HasPatch),
            _ => {
                notices.push(format!(
                    "Ignored \"has:{value}\": use has:attachment or has:patch."
                ));
                None
            }
        },
        Kw::Date | Kw::After | Kw::Before => date_leaf(kw, value, notices),
    }
}

/// Start (inclusive) and end (exclusive) of a day, month or year written `YYYY`, `YYYY-MM` or
/// `YYYY-MM-DD` (`/` also separates), in UTC Unix seconds.
fn parse_period(s: &str) -> Option<(i64, i64)> {
    use time::{Date, Month};
    let parts: Vec<&str> = s.split(['-', '/']).collect();
    let num = |p: &str, max_len: usize| -> Option<i32> {
        if p.is_empty() || p.len() > max_len || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let year = num(parts.first()?, 4)?;
    if !(1..=9998).contains(&year) {
        return None;
    }
    let secs = |d: Date| d.midnight().assume_utc().unix_timestamp();
    let month_of = |m: i32| u8::try_from(m).ok().and_then(|m| Month::try_from(m).ok());
    match parts.len() {
        1 => {
            let start = Date::from_calendar_date(year, Month::January, 1).ok()?;
            let end = Date::from_calendar_date(year + 1, Month::January, 1).ok()?;
            Some((secs(start), secs(end)))
        }
        2 => {
            let month = month_of(num(parts[1], 2)?)?;
            let start = Date::from_calendar_date(year, month, 1).ok()?;
            let (ny, nm) = if month == Month::December {
                (year + 1, Month::January)
            } else {
                (year, month.next())
            };
            let end = Date::from_calendar_date(ny, nm, 1).ok()?;
            Some((secs(start), secs(end)))
        }
        3 => {
            let month = month_of(num(parts[1], 2)?)?;
            let day = u8::try_from(num(parts[2], 2)?).ok()?;
            let start = Date::from_calendar_date(year, month, day).ok()?;
            let end = start.next_day()?;
            Some((secs(start), secs(end)))
        }
        _ => None,
    }
}

fn date_leaf(kw: Kw, value: &str, notices: &mut Notices) -> Option<Leaf> {
    let bad = |notices: &mut Notices, what: &str| {
        notices.push(format!(
            "Ignored \"{}:{value}\": \"{what}\" is not a date (use YYYY, YYYY-MM or YYYY-MM-DD).",
            kw.name()
        ));
    };
    let period = |notices: &mut Notices, s: &str| {
        let p = parse_period(s.trim());
        if p.is_none() {
            bad(notices, s);
        }
        p
    };
    let (start, end) = match kw {
        Kw::After => (Some(period(notices, value)?.0), None),
        Kw::Before => (None, Some(period(notices, value)?.0)),
        _ => match value.split_once("..") {
            Some((a, b)) => {
                if a.trim().is_empty() && b.trim().is_empty() {
                    bad(notices, value);
                    return None;
                }
                let start = if a.trim().is_empty() {
                    None
                } else {
                    Some(period(notices, a)?.0)
                };
                let end = if b.trim().is_empty() {
                    None
                } else {
                    Some(period(notices, b)?.1)
                };
                (start, end)
            }
            None => {
                let (s, e) = period(notices, value)?;
                (Some(s), Some(e))
            }
        },
    };
    if let (Some(s), Some(e)) = (start, end) {
        if s >= e {
            notices.push(format!(
                "Ignored \"{}:{value}\": the range ends before it starts.",
                kw.name()
            ));
            return None;
        }
    }
    Some(Leaf::Date { start, end })
}

/// How a rendered part of a query combines with what is around it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    Leaf,
    And,
    Or,
}

/// `field:value` (or `value` alone for an empty field) in the query language: quoted, with its
/// quotes escaped, unless it reads back as one bare word.
pub(crate) fn term(field: &str, value: &str) -> String {
    let bare = !value.is_empty()
        && !value.starts_with(['-', '+'])
        && !value.contains(|c: char| c.is_whitespace() || matches!(c, '(' | ')' | '"' | ':'))
        && !matches!(value, "AND" | "OR" | "NOT" | "&&" | "||");
    let prefix = if field.is_empty() {
        String::new()
    } else {
        format!("{field}:")
    };
    if bare {
        format!("{prefix}{value}")
    } else {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        format!("{prefix}\"{escaped}\"")
    }
}

/// Renders a query as it was understood, in the query language: it reads back as the same
/// tree with no notice, so a condition added after it (a facet link's filter, a digest's week)
/// cannot be swallowed by a trailing operator or an open quote of the original text.
pub(crate) struct Canonical;

impl Canonical {
    fn clauses(sep: &str, clauses: Vec<(bool, (String, Shape))>) -> String {
        let parts: Vec<String> = clauses
            .into_iter()
            .map(|(neg, (text, shape))| {
                let text = if shape == Shape::Leaf {
                    text
                } else {
                    format!("({text})")
                };
                if neg {
                    format!("-{text}")
                } else {
                    text
                }
            })
            .collect();
        parts.join(sep)
    }
}

impl Build for Canonical {
    type Out = (String, Shape);

    fn leaf(&mut self, leaf: Leaf, _notices: &mut Notices) -> Option<(String, Shape)> {
        let day = |t: i64| {
            time::OffsetDateTime::from_unix_timestamp(t)
                .map(|d| d.date().to_string())
                .unwrap_or_default()
        };
        let text = match leaf {
            Leaf::Text { scope, text, .. } => {
                let field = match scope {
                    Scope::Any => "",
                    Scope::Subject => "s",
                    Scope::Body => "b",
                    Scope::From => "from",
                    Scope::To => "to",
                };
                term(field, &text)
            }
            Leaf::List(l) => term("list", &l),
            Leaf::Tag(t) => term("tag", &t),
            Leaf::Sender(k) => term("sender", &k),
            Leaf::MsgId(m) => term("msgid", &m),
            Leaf::Thread(t) => term("thread", &t),
            Leaf::HasAttachment => "has:attachment".to_string(),
            Leaf::HasPatch => "has:patch".to_string(),
            // Days, `end` exclusive: `date:A..B` takes B whole.
            Leaf::Date { start, end } => format!(
                "date:{}..{}",
                start.map(day).unwrap_or_default(),
                end.map(|e| day(e - 86_400)).unwrap_or_default()
            ),
        };
        Some((text, Shape::Leaf))
    }

    fn and(&mut self, clauses: Vec<(bool, (String, Shape))>) -> (String, Shape) {
        (Canonical::clauses(" ", clauses), Shape::And)
    }

    fn or(&mut self, clauses: Vec<(bool, (String, Shape))>) -> (String, Shape) {
        (Canonical::clauses(" OR ", clauses), Shape::Or)
    }
}

/// `query` as understood, ready to be narrowed by conditions (see [`Narrower::narrow`]).
pub(crate) struct Narrower {
    /// The understood query, parenthesised if it is an `OR`, then a space; empty if nothing
    /// was understood.
    base: String,
}

impl Narrower {
    pub(crate) fn new(query: &str) -> Narrower {
        let base = match parse(query, &mut Canonical).query {
            None => String::new(),
            Some((q, Shape::Or)) => format!("({q}) "),
            Some((q, _)) => format!("{q} "),
        };
        Narrower { base }
    }

    /// The query narrowed by `condition` (query-language text of one term; see [`term`]).
    /// Notices about the query are not repeated: the search of the result says them. A
    /// condition the query already holds at its top level is not added again: a facet of a
    /// filter already applied links to the same query, not to ever longer ones.
    pub(crate) fn narrow(&self, condition: &str) -> String {
        // Compared as the query renders it (`date:2021` is `date:2021-01-01..2021-12-31`).
        let canonical = parse(condition, &mut Canonical)
            .query
            .map_or_else(|| condition.to_string(), |(q, _)| q);
        if self.holds(&canonical) {
            return self.base.trim_end().to_string();
        }
        format!("{}{condition}", self.base)
    }

    /// Whether `condition` is one of the understood query's top-level clauses: preceded by
    /// the start or a space and followed by a space, outside quotes. (An `OR` query is in
    /// parentheses, so none of its parts is found.)
    fn holds(&self, condition: &str) -> bool {
        let base = self.base.as_bytes();
        let mut from = 0;
        while let Some(i) = self.base[from..].find(condition) {
            let at = from + i;
            let end = at + condition.len();
            let starts = at == 0 || base[at - 1] == b' ';
            let ends = base.get(end) == Some(&b' ');
            if starts && ends && !inside_quotes(&base[..at]) {
                return true;
            }
            from = at + 1;
            while !self.base.is_char_boundary(from) {
                from += 1;
            }
        }
        false
    }
}

/// Whether the end of `text` (rendered query text, in which `\` escapes inside quotes) is
/// inside a quoted value.
fn inside_quotes(text: &[u8]) -> bool {
    let mut inside = false;
    let mut escaped = false;
    for &b in text {
        match b {
            _ if escaped => escaped = false,
            b'\\' if inside => escaped = true,
            b'"' => inside = !inside,
            _ => {}
        }
    }
    inside
}

/// Renders a query tree as text; used by tests to state expected parses compactly.
#[cfg(test)]
pub(crate) struct Render;

#[cfg(test)]
impl Render {
    fn clauses(name: &str, clauses: Vec<(bool, String)>) -> String {
        let mut s = format!("{name}(");
        for (i, (neg, c)) in clauses.into_iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            if neg {
                s.push('-');
            }
            s.push_str(&c);
        }
        s.push(')');
        s
    }
}

#[cfg(test)]
impl Build for Render {
    type Out = String;

    fn leaf(&mut self, leaf: Leaf, _notices: &mut Notices) -> Option<String> {
        use std::fmt::Write as _;
        let mut s = String::new();
        let _ = match leaf {
            Leaf::Text {
                scope,
                text,
                phrase,
            } => {
                let scope = match scope {
                    Scope::Any => "",
                    Scope::Subject => "subject:",
                    Scope::Body => "body:",
                    Scope::From => "from:",
                    Scope::To => "to:",
                };
                if phrase {
                    write!(s, "{scope}\"{text}\"")
                } else {
                    write!(s, "{scope}{text}")
                }
            }
            Leaf::List(l) => write!(s, "list:{l}"),
            Leaf::Tag(t) => write!(s, "tag:{t}"),
            Leaf::Sender(k) => write!(s, "sender:\"{k}\""),
            Leaf::MsgId(m) => write!(s, "msgid:{m}"),
            Leaf::Thread(t) => write!(s, "thread:{t}"),
            Leaf::HasAttachment => write!(s, "has:attachment"),
            Leaf::HasPatch => write!(s, "has:patch"),
            Leaf::Date { start, end } => {
                let day = |t: Option<i64>| {
                    t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
                        .map(|d| d.date().to_string())
                        .unwrap_or_default()
                };
                write!(s, "date:[{}..{})", day(start), day(end))
            }
        };
        Some(s)
    }

    fn and(&mut self, clauses: Vec<(bool, String)>) -> String {
        Render::clauses("AND", clauses)
    }

    fn or(&mut self, clauses: Vec<(bool, String)>) -> String {
        Render::clauses("OR", clauses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(q: &str) -> (String, Vec<String>) {
        let parsed = parse(q, &mut Render);
        (
            parsed.query.unwrap_or_else(|| "ALL".to_string()),
            parsed.notices,
        )
    }

    /// (query, expected rendering, expected notice fragments; empty means no notice at all)
    const CASES: &[(&str, &str, &[&str])] = &[
        ("", "ALL", &[]),
        ("   ", "ALL", &[]),
        ("nova", "nova", &[]),
        ("nova boot", "AND(nova, boot)", &[]),
        ("nova AND boot", "AND(nova, boot)", &[]),
        ("nova OR neutron", "OR(nova, neutron)", &[]),
        ("a b OR c", "AND(a, OR(b, c))", &[]),
        ("a OR b c", "AND(OR(a, b), c)", &[]),
        ("a OR b OR c", "OR(a, b, c)", &[]),
        ("nova -boot", "AND(nova, -boot)", &[]),
        ("nova NOT boot", "AND(nova, -boot)", &[]),
        ("-boot", "AND(-boot)", &[]),
        ("+nova", "nova", &[]),
        ("a OR -b", "OR(a, -b)", &[]),
        ("\"live migration\"", "\"live migration\"", &[]),
        ("-\"live migration\" x", "AND(-\"live migration\", x)", &[]),
        ("(a OR b) c", "AND(OR(a, b), c)", &[]),
        ("-(a b) c", "AND(-AND(a, b), c)", &[]),
        ("NOT (a OR b)", "AND(-OR(a, b))", &[]),
        ("((a))", "a", &[]),
        ("co-op e-mail", "AND(co-op, e-mail)", &[]),
        ("a - b", "AND(a, b)", &[]),
        ("from:jane", "from:jane", &[]),
        ("from:\"Jane Doe\"", "from:\"Jane Doe\"", &[]),
        ("From:jane@example.org", "from:jane@example.org", &[]),
        ("to:dev@lists.example.org", "to:dev@lists.example.org", &[]),
        (
            "subject:upgrade s:nova",
            "AND(subject:upgrade, subject:nova)",
            &[],
        ),
        (
            "body:crash b:\"kernel panic\"",
            "AND(body:crash, body:\"kernel panic\")",
            &[],
        ),
        (
            "subject:(nova OR neutron)",
            "OR(subject:nova, subject:neutron)",
            &[],
        ),
        (
            "list:Openstack-Discuss l:nova",
            "AND(list:openstack-discuss, list:nova)",
            &[],
        ),
        ("tag:[TC]", "tag:tc", &[]),
        ("msgid:<abc@example.org>", "msgid:abc@example.org", &[]),
        ("thread:42", "thread:42", &[]),
        (
            "has:attachment has:patch",
            "AND(has:attachment, has:patch)",
            &[],
        ),
        (
            "date:2023-01-01..2023-03-31",
            "date:[2023-01-01..2023-04-01)",
            &[],
        ),
        ("date:2023-05", "date:[2023-05-01..2023-06-01)", &[]),
        ("date:2023-12", "date:[2023-12-01..2024-01-01)", &[]),
        ("date:2023", "date:[2023-01-01..2024-01-01)", &[]),
        ("date:2024-02-29", "date:[2024-02-29..2024-03-01)", &[]),
        ("date:2023..", "date:[2023-01-01..)", &[]),
        ("date:..2023-02", "date:[..2023-03-01)", &[]),
        ("after:2023-01-01", "date:[2023-01-01..)", &[]),
        ("before:2023-02-01", "date:[..2023-02-01)", &[]),
        (
            "sender:\"Duncan Murdoch\"",
            "sender:\"duncan murdoch\"",
            &[],
        ),
        ("sender:Bob@Example.ORG", "sender:\"bob@example.org\"", &[]),
        ("date:2023/05/07", "date:[2023-05-07..2023-05-08)", &[]),
        ("http://example.org/x", "http://example.org/x", &[]),
        // Malformed input: what can be understood, plus notices.
        ("date:2023-13-45 nova", "nova", &["not a date"]),
        ("date:2023-02-30", "ALL", &["not a date"]),
        ("date:2023-03..2023-01", "ALL", &["ends before it starts"]),
        ("date:..", "ALL", &["not a date"]),
        ("after:yesterday", "ALL", &["not a date"]),
        (
            "\"unclosed phrase",
            "\"unclosed phrase\"",
            &["Missing closing quote"],
        ),
        (
            "nova \"live mig",
            "AND(nova, \"live mig\")",
            &["Missing closing quote"],
        ),
        ("AND OR", "ALL", &["nothing before it"]),
        ("a AND OR b", "AND(a, b)", &["\"OR\" right after \"AND\""]),
        ("a OR", "a", &["at the end"]),
        ("OR a", "a", &["nothing before it"]),
        ("a NOT", "a", &["\"NOT\" with nothing after it"]),
        ("NOT NOT a", "a", &["cancel out"]),
        ("(a b", "AND(a, b)", &["missing \")\""]),
        ("a b)", "AND(a, b)", &["unmatched"]),
        ("()", "ALL", &["empty parentheses"]),
        ("\"\"", "ALL", &["empty phrase"]),
        ("from:", "ALL", &["no value"]),
        ("thread:abc", "thread:abc", &[]),
        (
            "(THREAD:<a@b> OR thread:c@d)",
            "OR(thread:a@b, thread:c@d)",
            &[],
        ),
        ("has:cheese", "ALL", &["has:attachment or has:patch"]),
        ("date:(2023)", "2023", &["cannot apply to a group"]),
        ("a OR date:bad", "a", &["not a date"]),
    ];

    #[test]
    fn parse_cases() {
        for (input, want, notice_parts) in CASES {
            let (got, notices) = render(input);
            assert_eq!(&got, want, "query {input:?}, notices {notices:?}");
            if notice_parts.is_empty() {
                assert!(
                    notices.is_empty(),
                    "query {input:?}: unexpected {notices:?}"
                );
            }
            for part in *notice_parts {
                assert!(
                    notices.iter().any(|n| n.contains(part)),
                    "query {input:?}: no notice containing {part:?} in {notices:?}"
                );
            }
        }
    }

    #[test]
    fn unknown_prefixes_are_searched_as_words_with_a_notice() {
        let (_, notices) = render("foo:bar nova");
        assert!(
            notices
                .iter()
                .any(|n| n.contains("\"foo:\" is not a search prefix")),
            "{notices:?}"
        );
        let many = (0..500)
            .map(|i| format!("ab:{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let (_, notices) = render(&format!("{many} cd:x ef:y gh:z"));
        let prefix_notices: Vec<_> = notices.iter().filter(|n| n.contains("prefix")).collect();
        assert_eq!(prefix_notices.len(), 1, "{notices:?}");
        assert!(
            prefix_notices[0].contains("\"ab:\", \"cd:\", \"ef:\", ... are not search prefixes"),
            "{notices:?}"
        );
        for input in [
            "Re: nova",
            "https://example.org/x",
            "git://example.org/x",
            "std::mem::swap",
            "at 10:30",
            "a:b",
        ] {
            let (_, notices) = render(input);
            assert!(notices.is_empty(), "{input:?}: {notices:?}");
        }
    }

    #[test]
    fn deep_nesting_is_capped_not_recursed() {
        for input in [
            "(".repeat(10 * 1024),
            ")".repeat(10 * 1024),
            format!("{}nova{}", "(".repeat(10 * 1024), ")".repeat(10 * 1024)),
            "(a ".repeat(5000),
            "-(".repeat(5000),
            "\"".repeat(10 * 1024),
            "a:(".repeat(3000),
        ] {
            let (got, notices) = render(&input);
            assert!(!notices.is_empty(), "no notice for {} bytes", input.len());
            assert!(got.len() < 100_000);
        }
        let (got, notices) = render(&format!("{}nova{}", "(".repeat(10_000), ")".repeat(10_000)));
        assert_eq!(got, "nova");
        assert!(notices.iter().any(|n| n.contains("deeper than 32")));
    }

    #[test]
    fn canonical_text_reads_back_as_the_same_query_without_notices() {
        let inputs = [
            "nova",
            "nova boot OR neutron",
            "(a OR b) -(c d) NOT e",
            "from:(jane doe) s:\"live migration\" b:x",
            "tag:\"foo(bar)\" tag:x)y",
            "sender:\"jean \\\"jj\\\" doe\" list:Dev",
            "date:2023-05 after:2020 before:2021-02-03 date:2019..2020-06",
            "has:patch has:attachment msgid:<a(b)@c> thread:<x y@z>",
            "jane.doe@example.org C:\\ foo:bar \"AND\" \"-x\"",
        ];
        for input in inputs {
            let (text, _) = parse(input, &mut Canonical).query.expect("a query");
            let again = parse(&text, &mut Canonical);
            assert!(
                again.notices.is_empty(),
                "{input} -> {text}: {:?}",
                again.notices
            );
            assert_eq!(again.query.expect("a query").0, text, "{input}");
            // The same tree, but for words with punctuation now quoted: a phrase, which the
            // search reads exactly as the bare word (its words in order).
            let unquote = |q: &str| render(q).0.replace('"', "");
            assert_eq!(unquote(&text), unquote(input), "{input} -> {text}");
        }
        // A trailing operator or an open quote does not swallow what is added.
        let cases = [
            ("threadword NOT", "threadword list:x"),
            ("threadword OR", "threadword list:x"),
            ("\"threadword", "threadword list:x"),
            ("a OR b", "(a OR b) list:x"),
            ("AND OR", "list:x"),
            ("", "list:x"),
            // A filter the query already holds is not added twice...
            ("list:x", "list:x"),
            ("nova list:x", "nova list:x"),
            ("list:x nova", "list:x nova"),
            // ...but one inside a phrase, an OR, a group or a negation is another condition.
            ("\"a list:x b\"", "\"a list:x b\" list:x"),
            ("a OR list:x", "(a OR list:x) list:x"),
            ("-list:x", "-list:x list:x"),
            ("list:xy", "list:xy list:x"),
        ];
        for (query, want) in [
            ("date:2021 nfs", "date:2021-01-01..2021-12-31 nfs"),
            (
                "nfs date:2021-01-01..2021-12-31",
                "nfs date:2021-01-01..2021-12-31",
            ),
            ("nfs date:2020", "nfs date:2020-01-01..2020-12-31 date:2021"),
        ] {
            assert_eq!(Narrower::new(query).narrow("date:2021"), want, "{query}");
        }
        for (query, want) in cases {
            assert_eq!(
                Narrower::new(query).narrow(&term("list", "x")),
                want,
                "{query}"
            );
        }
        assert_eq!(term("tag", "a\"b"), "tag:\"a\\\"b\"");
        assert_eq!(render(&term("tag", "a\"b")).0, "tag:a\"b");
    }

    #[test]
    fn term_count_is_capped() {
        let input = (0..200)
            .map(|i| format!("w{i}"))
            .collect::<Vec<_>>()
            .join(" ");
        let (got, notices) = render(&input);
        assert_eq!(got.matches('w').count(), MAX_TERMS);
        assert!(notices.iter().any(|n| n.contains("more than 64 terms")));
    }

    #[test]
    fn long_input_is_cut() {
        let input = "x".repeat(MAX_QUERY_BYTES + 10);
        let (_, notices) = render(&input);
        assert!(notices.iter().any(|n| n.contains("longer than")));
        // A lone quote at the end is said once.
        assert_eq!(render("nfs\"").1, ["Ignored an empty phrase."]);
        // A notice quoting a huge unclosed phrase keeps the quote's start and its own end.
        let (_, notices) = render(&format!("\"{}", "é".repeat(60_000)));
        assert!(notices
            .iter()
            .any(|n| n.starts_with("Missing closing quote") && n.ends_with("as a phrase.")));
        assert!(
            notices
                .iter()
                .all(|n| n.chars().count() <= MAX_NOTICE_CHARS),
            "{notices:?}"
        );
    }
}
