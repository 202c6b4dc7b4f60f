//! Splits an mbox-like byte stream into raw messages and problems, detecting the variant
//! (mboxrd/mboxo, Pipermail `.txt`, a lone `.eml`) from the data itself. Streaming: memory is
//! bounded by the largest message, never by the file.

use std::collections::VecDeque;
use std::io::{self, BufRead};

/// How the file frames its messages, detected from its first separator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// No message found yet (empty or whitespace-only input).
    Unknown,
    /// `From sender asctime` separators with `>From ` quoting (mboxrd; mboxo reads the same
    /// except for `>>From ` lines, see [`unquote`]).
    Mbox,
    /// Mailman 2 Pipermail archive: `From user at host  asctime`, body `From ` lines are not
    /// quoted, so a separator must follow a blank line.
    Pipermail,
    /// A single message with no separator (an `.eml` file, or an mbox that lost its first
    /// `From ` line). Later separators still split, but only after a blank line.
    Single,
}

impl Variant {
    /// Short name for reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Variant::Unknown => "empty",
            Variant::Mbox => "mbox",
            Variant::Pipermail => "pipermail",
            Variant::Single => "single-message",
        }
    }
}

/// One message as cut out of the stream, unquoted, without the separator line and without the
/// blank line the mbox format adds after it.
#[derive(Debug, Clone)]
pub struct RawMessage {
    /// Offset of the separator line (or of the first byte) in the (decompressed) stream.
    pub offset: u64,
    /// Length of the whole record in the stream, separator and trailing blank line included.
    pub len: u64,
    /// The envelope line's content after `From `, if there was one.
    pub envelope: Option<Envelope>,
    /// The message bytes.
    pub bytes: Vec<u8>,
    /// The separator did not follow a blank line (git mailsplit accepts this; we count it).
    pub suspicious: bool,
}

/// The parsed `From ` envelope line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// Sender as written (may be Pipermail-obfuscated).
    pub sender: String,
    /// The asctime date, as Unix seconds (UTC, or the zone given on the line).
    pub date: Option<i64>,
}

/// What went wrong with a byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// Non-blank text before the first separator.
    Preamble,
    /// A message larger than the configured limit; its first bytes are kept.
    TooLarge,
    /// The input ended in the middle (truncated gzip, read error).
    Truncated,
    /// The bytes hold no header at all.
    NoHeaders,
}

impl ProblemKind {
    /// Stable name stored in the database and shown in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Preamble => "preamble",
            ProblemKind::TooLarge => "too-large",
            ProblemKind::Truncated => "truncated",
            ProblemKind::NoHeaders => "no-headers",
        }
    }
}

/// A byte range that could not be made into a message.
#[derive(Debug, Clone)]
pub struct SplitProblem {
    /// Offset in the (decompressed) stream.
    pub offset: u64,
    /// Length of the range.
    pub len: u64,
    /// What kind of problem.
    pub kind: ProblemKind,
    /// A human-readable explanation.
    pub detail: String,
    /// The bytes (possibly cut at the size limit).
    pub raw: Vec<u8>,
}

/// What the splitter yields.
#[derive(Debug)]
pub enum Item {
    /// A message record.
    Message(RawMessage),
    /// A range that is not a message.
    Problem(SplitProblem),
}

/// Counters for the dry-run report and for the "every byte accounted for" check.
#[derive(Debug, Clone, Default)]
pub struct SplitStats {
    /// Lines ending in CRLF.
    pub crlf_lines: u64,
    /// Lines ending in a bare LF.
    pub lf_lines: u64,
    /// Separators taken.
    pub separators: u64,
    /// Separators taken that did not follow a blank line.
    pub suspicious: u64,
    /// Lines starting with `From ` kept inside a body (not separators).
    pub body_from_lines: u64,
    /// `>From ` lines unquoted (mbox only), and how many of those had two or more `>`.
    pub quoted_from_lines: u64,
    /// Of [`Self::quoted_from_lines`], those with two or more `>` (a sign of mboxrd).
    pub deep_quoted_from_lines: u64,
    /// Whitespace before the first message: framing, not content.
    pub framing_bytes: u64,
    /// Every byte read.
    pub total_bytes: u64,
}

/// The streaming splitter. Iterate it for [`Item`]s; read [`Splitter::stats`] and
/// [`Splitter::variant`] afterwards.
pub struct Splitter<R> {
    reader: R,
    max_message_bytes: usize,
    variant: Variant,
    stats: SplitStats,
    pos: u64,
    line: Vec<u8>,
    current: Option<Current>,
    preamble: Option<Current>,
    prev_blank: bool,
    pending: VecDeque<Item>,
    held: Option<Held>,
    done: bool,
    /// Where the next import of this file, once it has grown, must start reading again: the
    /// offset of a last message cut off by the end of the input (see [`Splitter::resume_from`]).
    resume_from: Option<u64>,
    /// Whether the input may still grow (a file), so that a cut-off last message is held back.
    may_grow: bool,
}

/// A `From ` line with a date that may or may not be a separator, waiting for the next line.
struct Held {
    line: Vec<u8>,
    start: u64,
    consumed: u64,
    envelope: Envelope,
}

struct Current {
    offset: u64,
    len: u64,
    envelope: Option<Envelope>,
    bytes: Vec<u8>,
    suspicious: bool,
    oversized: bool,
}

impl<R: BufRead> Splitter<R> {
    /// A splitter that keeps at most `max_message_bytes` of any one message.
    pub fn new(reader: R, max_message_bytes: usize) -> Self {
        Splitter {
            reader,
            max_message_bytes: max_message_bytes.max(1024),
            variant: Variant::Unknown,
            stats: SplitStats::default(),
            pos: 0,
            line: Vec::with_capacity(256),
            current: None,
            preamble: None,
            prev_blank: true,
            pending: VecDeque::new(),
            held: None,
            done: false,
            resume_from: None,
            may_grow: true,
        }
    }

    /// The variant detected so far.
    pub fn variant(&self) -> Variant {
        self.variant
    }

    /// Counters so far.
    pub fn stats(&self) -> &SplitStats {
        &self.stats
    }

    /// Skips the first `offset` bytes of the stream without splitting them, for resuming an
    /// import at a message boundary recorded earlier. The variant must be given again since
    /// the separator that revealed it is not re-read.
    pub fn resume_at(&mut self, offset: u64, variant: Variant) -> io::Result<()> {
        let mut left = offset;
        while left > 0 {
            let avail = self.reader.fill_buf()?;
            if avail.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file is shorter than the recorded import position",
                ));
            }
            let take = avail.len().min(usize::try_from(left).unwrap_or(usize::MAX));
            self.reader.consume(take);
            left -= take as u64;
        }
        self.pos = offset;
        self.stats.total_bytes = offset;
        self.variant = variant;
        self.prev_blank = true;
        Ok(())
    }

    fn step(&mut self) {
        let mut line = std::mem::take(&mut self.line);
        line.clear();
        match read_line(&mut self.reader, &mut line, self.max_message_bytes) {
            Ok(0) => {
                if let Some(held) = self.held.take() {
                    self.stats.body_from_lines += 1;
                    self.append(&held.line, held.start, held.consumed);
                }
                self.hold_back_cut_off_message();
                self.finish_current();
                self.finish_preamble();
                self.done = true;
            }
            Ok(consumed) => self.on_line(&line, consumed as u64),
            Err(err) => {
                let detail = if err.kind() == io::ErrorKind::UnexpectedEof {
                    format!("input ends early at byte {} ({err})", self.pos)
                } else {
                    format!("read error at byte {}: {err}", self.pos)
                };
                self.abort(detail);
                self.done = true;
            }
        }
        self.line = line;
    }

    fn on_line(&mut self, line: &[u8], consumed: u64) {
        let start = self.pos;
        self.pos += consumed;
        self.stats.total_bytes = self.pos;
        if line.ends_with(b"\r\n") {
            self.stats.crlf_lines += 1;
        } else if line.ends_with(b"\n") {
            self.stats.lf_lines += 1;
        }
        // A separator candidate held back from the previous line is decided by this one.
        if let Some(held) = self.held.take() {
            if looks_like_header(line) {
                self.start_message(held.envelope, held.start, held.consumed, true);
            } else {
                self.stats.body_from_lines += 1;
                self.append(&held.line, held.start, held.consumed);
            }
        }

        if line.starts_with(b"From ") {
            if let Some(envelope) = parse_envelope(line) {
                let nothing_yet = self.current.is_none() && self.preamble.is_none();
                let strict = matches!(self.variant, Variant::Pipermail | Variant::Single);
                if !strict || self.prev_blank || nothing_yet {
                    if self.variant == Variant::Unknown {
                        self.variant = if sender_looks_pipermail(&envelope.sender) {
                            Variant::Pipermail
                        } else {
                            Variant::Mbox
                        };
                    }
                    let suspicious = !self.prev_blank && !nothing_yet;
                    self.start_message(envelope, start, consumed, suspicious);
                    return;
                }
                // Pipermail does not quote body `From ` lines, and scrubbed attachments leave
                // real separators right after an `Url:` line. Only the next line can tell:
                // a real separator is followed by a header.
                self.held = Some(Held {
                    line: line.to_vec(),
                    start,
                    consumed,
                    envelope,
                });
                self.prev_blank = false;
                return;
            }
            if self.current.is_some() {
                self.stats.body_from_lines += 1;
            }
        }
        self.append(line, start, consumed);
    }

    fn start_message(&mut self, envelope: Envelope, start: u64, consumed: u64, suspicious: bool) {
        self.finish_current();
        self.finish_preamble();
        self.stats.separators += 1;
        if suspicious {
            self.stats.suspicious += 1;
        }
        self.current = Some(Current {
            offset: start,
            len: consumed,
            envelope: Some(envelope),
            bytes: Vec::new(),
            suspicious,
            oversized: false,
        });
        self.prev_blank = false;
    }

    /// Adds a line to the current message (or to the preamble before the first one).
    fn append(&mut self, line: &[u8], start: u64, consumed: u64) {
        let blank = is_blank(line);
        if self.current.is_none() && self.preamble.is_none() {
            if self.variant == Variant::Unknown && looks_like_header(line) {
                // No separator but headers: a lone message (.eml) or an mbox missing its
                // first envelope line.
                self.variant = Variant::Single;
                self.current = Some(Current {
                    offset: start,
                    len: 0,
                    envelope: None,
                    bytes: Vec::new(),
                    suspicious: false,
                    oversized: false,
                });
            } else if blank || line.iter().all(u8::is_ascii_whitespace) {
                self.stats.framing_bytes += consumed;
                self.prev_blank = true;
                return;
            } else {
                self.preamble = Some(Current {
                    offset: start,
                    len: 0,
                    envelope: None,
                    bytes: Vec::new(),
                    suspicious: false,
                    oversized: false,
                });
            }
        }

        let unquote_mbox = self.variant == Variant::Mbox;
        let max = self.max_message_bytes;
        let target = match (self.current.as_mut(), self.preamble.as_mut()) {
            (Some(cur), _) => cur,
            (None, Some(pre)) => pre,
            (None, None) => return,
        };
        target.len += consumed;
        let body_line = if unquote_mbox {
            match unquote(line) {
                Some((unquoted, depth)) => {
                    self.stats.quoted_from_lines += 1;
                    if depth > 1 {
                        self.stats.deep_quoted_from_lines += 1;
                    }
                    unquoted
                }
                None => line,
            }
        } else {
            line
        };
        if target.bytes.len() + body_line.len() > max || consumed as usize > line.len() {
            target.oversized = true;
            let room = max.saturating_sub(target.bytes.len());
            target
                .bytes
                .extend_from_slice(&body_line[..room.min(body_line.len())]);
        } else {
            target.bytes.extend_from_slice(body_line);
        }
        self.prev_blank = blank;
    }

    fn finish_current(&mut self) {
        let Some(mut cur) = self.current.take() else {
            return;
        };
        if cur.oversized {
            self.pending.push_back(Item::Problem(SplitProblem {
                offset: cur.offset,
                len: cur.len,
                kind: ProblemKind::TooLarge,
                detail: format!(
                    "message of {} bytes exceeds the limit of {} bytes; the first bytes are kept",
                    cur.len, self.max_message_bytes
                ),
                raw: cur.bytes,
            }));
            return;
        }
        // The mbox format adds one blank line after each message; it is not the message's.
        if cur.bytes.ends_with(b"\r\n\r\n") {
            cur.bytes.truncate(cur.bytes.len() - 2);
        } else if cur.bytes.ends_with(b"\n\n") {
            cur.bytes.truncate(cur.bytes.len() - 1);
        }
        self.pending.push_back(Item::Message(RawMessage {
            offset: cur.offset,
            len: cur.len,
            envelope: cur.envelope,
            bytes: cur.bytes,
            suspicious: cur.suspicious,
        }));
    }

    /// An mbox ends every message with a newline; a last message whose last line is
    /// unfinished was cut off by the end of the input, typically a file still being appended
    /// to (a live Mailman mbox) or a partial download. Stored, it would stay cut off, and the
    /// rest, once the file grew, would be read as text before a separator. It is recorded as a
    /// problem instead, and the file's import position stays at its start, so the next import
    /// reads it whole. A cut that falls at the end of a line cannot be told from a message's
    /// end (a last message of headers only, with no blank line, occurs in real files).
    fn hold_back_cut_off_message(&mut self) {
        if !self.may_grow || self.variant == Variant::Single {
            return;
        }
        let Some(cur) = self
            .current
            .take_if(|c| !c.oversized && !c.bytes.ends_with(b"\n"))
        else {
            return;
        };
        self.resume_from = Some(cur.offset);
        // A file of old Mac line ends (CR only) is one unfinished line to a reader of lines.
        let detail = if self.stats.lf_lines == 0 && self.stats.crlf_lines == 0 {
            format!(
                "the whole input ({} bytes) is one line without a line feed: if it has old Mac \
                 OS line endings (CR only), which are not read as mail, convert them \
                 (`tr '\\r' '\\n'`) and import again; if it is still being written, an \
                 import after it grows reads it again",
                cur.len
            )
        } else {
            format!(
                "the input ends inside this message ({} bytes, its last line unfinished); an \
                 import after the file grows reads it again",
                cur.len
            )
        };
        self.pending.push_back(Item::Problem(SplitProblem {
            offset: cur.offset,
            len: cur.len,
            kind: ProblemKind::Truncated,
            detail,
            raw: cur.bytes,
        }));
    }

    /// Declares the input complete (a stream such as stdin, which nothing appends to): its
    /// last message is kept as it is, however it ends.
    pub fn input_is_complete(&mut self) {
        self.may_grow = false;
    }

    /// The offset a later import of this file must read again from, when the input ended
    /// inside its last message; `None` when it ended cleanly.
    pub fn resume_from(&self) -> Option<u64> {
        self.resume_from
    }

    fn finish_preamble(&mut self) {
        if let Some(pre) = self.preamble.take() {
            self.pending.push_back(Item::Problem(SplitProblem {
                offset: pre.offset,
                len: pre.len,
                kind: ProblemKind::Preamble,
                detail: format!(
                    "{} bytes of text before the first message separator",
                    pre.len
                ),
                raw: pre.bytes,
            }));
        }
    }

    fn abort(&mut self, detail: String) {
        if let Some(held) = self.held.take() {
            self.append(&held.line, held.start, held.consumed);
        }
        let partial = self.current.take().or_else(|| self.preamble.take());
        let (offset, len, raw) = match partial {
            Some(cur) => (cur.offset, cur.len, cur.bytes),
            None => (self.pos, 0, Vec::new()),
        };
        // A gzip file still being downloaded or written ends early: once it is whole, the
        // next import reads the cut message again from its start, as after an unfinished
        // line (see `hold_back_cut_off_message`).
        if self.may_grow {
            self.resume_from = Some(offset);
        }
        self.pending.push_back(Item::Problem(SplitProblem {
            offset,
            len,
            kind: ProblemKind::Truncated,
            detail,
            raw,
        }));
    }
}

impl<R: BufRead> Iterator for Splitter<R> {
    type Item = Item;

    fn next(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.done {
                return None;
            }
            self.step();
        }
    }
}

/// Reads one line (through `\n`) into `buf`, keeping at most `cap` bytes of it so a 1 GB line
/// cannot exhaust memory. Returns the number of bytes consumed from the stream.
fn read_line<R: BufRead>(reader: &mut R, buf: &mut Vec<u8>, cap: usize) -> io::Result<usize> {
    let mut consumed = 0;
    loop {
        let avail = match reader.fill_buf() {
            Ok(avail) => avail,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if avail.is_empty() {
            return Ok(consumed);
        }
        let (take, found) = match memchr::memchr(b'\n', avail) {
            Some(i) => (i + 1, true),
            None => (avail.len(), false),
        };
        let room = cap.saturating_sub(buf.len());
        buf.extend_from_slice(&avail[..take.min(room)]);
        reader.consume(take);
        consumed += take;
        if found {
            return Ok(consumed);
        }
    }
}

fn is_blank(line: &[u8]) -> bool {
    line == b"\n" || line == b"\r\n"
}

/// `>From ` and `>>From ` lines lose one `>` (mboxrd). Returns the unquoted line and how many
/// `>` it had. mboxo readers unquote only one level; the two agree except on `>>From `, which
/// mboxo writers never produce from an ordinary line, so treating every mbox as mboxrd is the
/// reading that is right for public-inbox, lore and Mailman 3 exports.
pub fn unquote(line: &[u8]) -> Option<(&[u8], usize)> {
    let depth = line.iter().take_while(|&&b| b == b'>').count();
    if depth > 0 && line[depth..].starts_with(b"From ") {
        Some((&line[1..], depth))
    } else {
        None
    }
}

/// A header line: a field name of printable characters then a colon (RFC 822's obsolete
/// syntax allows white space before the colon, and broken mailers use it).
pub fn looks_like_header(line: &[u8]) -> bool {
    let Some(colon) = line.iter().position(|&b| b == b':') else {
        return false;
    };
    let name = line[..colon].trim_ascii_end();
    !name.is_empty() && colon < 80 && name.iter().all(|&b| (33..=126).contains(&b))
}

/// A Pipermail envelope sender is obfuscated with spaces (`user at host`,
/// `c@@rdi @ending from gm@il`), an mbox one is a single token.
fn sender_looks_pipermail(sender: &str) -> bool {
    sender.split_whitespace().count() >= 2
}

const WEEKDAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses `From sender Www Mmm dd hh:mm:ss [zone] yyyy [zone]`. A line without a plausible
/// asctime date is not a separator: this is what keeps `From the CRAN policies` in a body.
pub fn parse_envelope(line: &[u8]) -> Option<Envelope> {
    let text = String::from_utf8_lossy(line);
    let rest = text.strip_prefix("From ")?.trim_end();
    let tokens: Vec<&str> = rest.split_whitespace().collect();
    for i in 0..tokens.len() {
        if let Some(date) = asctime_at(&tokens[i..]) {
            let sender = tokens[..i].join(" ");
            return Some(Envelope {
                sender,
                date: Some(date),
            });
        }
    }
    None
}

fn asctime_at(tokens: &[&str]) -> Option<i64> {
    if tokens.len() < 5 {
        return None;
    }
    let weekday = tokens[0].to_ascii_lowercase();
    if !WEEKDAYS.contains(&weekday.trim_end_matches(',')) {
        return None;
    }
    let month_name = tokens[1].to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| *m == month_name)? as u32 + 1;
    let day: u32 = tokens[2].parse().ok().filter(|d| (1..=31).contains(d))?;
    let mut hms = tokens[3].split(':');
    let hour: i64 = hms.next()?.parse().ok().filter(|h| (0..24).contains(h))?;
    let minute: i64 = hms.next()?.parse().ok().filter(|m| (0..60).contains(m))?;
    let second: i64 = match hms.next() {
        Some(s) => s.parse().ok().filter(|s| (0..=60).contains(s))?,
        None => 0,
    };
    // The year follows the time, possibly after a zone (`Mon Jan 1 00:00:00 +0000 2001`).
    let (year_token, zone_token) = match tokens[4].parse::<i64>() {
        Ok(_) if tokens[4].len() == 4 => (tokens[4], tokens.get(5).copied()),
        _ => (*tokens.get(5)?, Some(tokens[4])),
    };
    // Dates before 1970 occur (a zero Date in a zone west of Greenwich, mailers' bogus
    // years), and Archivist's own thread exports write them as they are.
    let year: i64 = year_token
        .parse()
        .ok()
        .filter(|y| (1900..=9999).contains(y))?;
    let offset = zone_token.and_then(zone_offset_seconds).unwrap_or(0);
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn zone_offset_seconds(zone: &str) -> Option<i64> {
    let (sign, digits) = match zone.as_bytes().first()? {
        b'+' => (1, &zone[1..]),
        b'-' => (-1, &zone[1..]),
        _ => return None,
    };
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i64 = digits.parse().ok()?;
    Some(sign * ((value / 100) * 3600 + (value % 100) * 60))
}

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8]) -> (Vec<Item>, SplitStats, Variant) {
        let mut splitter = Splitter::new(input, 1 << 20);
        let items: Vec<Item> = splitter.by_ref().collect();
        (items, splitter.stats().clone(), splitter.variant())
    }

    fn messages(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .filter_map(|i| match i {
                Item::Message(m) => Some(String::from_utf8_lossy(&m.bytes).into_owned()),
                Item::Problem(_) => None,
            })
            .collect()
    }

    /// Every byte of the input is in a message record, a problem, or leading framing.
    fn assert_accounted(input: &[u8], items: &[Item], stats: &SplitStats) {
        let covered: u64 = items
            .iter()
            .map(|i| match i {
                Item::Message(m) => m.len,
                Item::Problem(p) => p.len,
            })
            .sum();
        assert_eq!(covered + stats.framing_bytes, input.len() as u64);
        assert_eq!(stats.total_bytes, input.len() as u64);
    }

    #[test]
    fn envelope_dates() {
        let cases: &[(&str, Option<(&str, i64)>)] = &[
            (
                "From alice@example.org Mon May  1 09:12:44 2023\n",
                Some(("alice@example.org", 1_682_932_364)),
            ),
            (
                "From ripley at stats.ox.ac.uk  Tue Mar  1 15:57:11 2005\n",
                Some(("ripley at stats.ox.ac.uk", 1_109_692_631)),
            ),
            (
                "From nobody Mon Sep 17 00:00:00 2001\r\n",
                Some(("nobody", 1_000_684_800)),
            ),
            (
                "From x Mon Jan  1 00:00:00 +0100 2001\n",
                Some(("x", 978_303_600)),
            ),
            // Before 1970 (Archivist's own exports of a zero Date west of Greenwich).
            (
                "From archivist Wed Dec 31 23:00:00 1969\n",
                Some(("archivist", -3600)),
            ),
            ("From x Mon Jan  1 00:00:00 1899\n", None),
            ("From the CRAN policies\n", None),
            ("From R >=2.7.0, it seems you should\n", None),
            ("From x Mon Foo  1 00:00:00 2001\n", None),
            ("From x Mon Jan 41 00:00:00 2001\n", None),
            ("From x Mon Jan  1 25:00:00 2001\n", None),
        ];
        for (line, expected) in cases {
            let got = parse_envelope(line.as_bytes());
            assert_eq!(
                got.map(|e| (e.sender, e.date.unwrap_or_default())),
                expected.map(|(s, d)| (s.to_string(), d)),
                "{line:?}"
            );
        }
    }

    #[test]
    fn mboxrd_unquotes_one_level() {
        let input = b"From a@b Mon May  1 09:12:44 2023\nSubject: x\n\n>From here\n>>From there\n\nFrom c@d Mon May  1 09:12:45 2023\nSubject: y\n\nbody\n\n";
        let (items, stats, variant) = split(input);
        assert_eq!(variant, Variant::Mbox);
        assert_eq!(
            messages(&items),
            vec![
                "Subject: x\n\nFrom here\n>From there\n",
                "Subject: y\n\nbody\n"
            ]
        );
        assert_eq!(stats.deep_quoted_from_lines, 1);
        assert_accounted(input, &items, &stats);
    }

    #[test]
    fn pipermail_needs_blank_line_before_separator() {
        let input = b"From alice at example.org  Mon May  1 09:12:44 2023\nFrom: alice at example.org (Alice)\nSubject: x\n\nquoted:\nFrom bob at example.org  Mon May  1 09:12:44 2023\n>From stays\n\nFrom bob at example.org  Tue May  2 09:12:44 2023\nFrom: bob at example.org (Bob)\n\nhi\n";
        let (items, stats, variant) = split(input);
        assert_eq!(variant, Variant::Pipermail);
        let msgs = messages(&items);
        assert_eq!(msgs.len(), 2);
        assert!(msgs[0].contains("\nFrom bob at example.org  Mon May"));
        assert!(
            msgs[0].contains("\n>From stays\n"),
            "pipermail does not unquote"
        );
        assert_eq!(stats.body_from_lines, 1);
        assert_accounted(input, &items, &stats);
    }

    #[test]
    fn crlf_and_preamble_and_single() {
        let input = b"junk before\r\n\r\nFrom a@b Mon May  1 09:12:44 2023\r\nSubject: x\r\n\r\nbody\r\n\r\n";
        let (items, stats, _) = split(input);
        assert!(
            matches!(&items[0], Item::Problem(p) if p.kind == ProblemKind::Preamble && p.offset == 0)
        );
        assert_eq!(messages(&items), vec!["Subject: x\r\n\r\nbody\r\n"]);
        assert_eq!(stats.crlf_lines, 7);
        assert_accounted(input, &items, &stats);

        let eml = b"Subject: lone\nFrom: a@b\n\nbody\nFrom nobody Mon Sep 17 00:00:00 2001\n";
        let (items, stats, variant) = split(eml);
        assert_eq!(variant, Variant::Single);
        assert_eq!(
            messages(&items).len(),
            1,
            "in a lone message a From line needs a blank line before it"
        );
        assert_accounted(eml, &items, &stats);
    }

    #[test]
    fn oversized_message_becomes_problem_and_split_continues() {
        let mut input = b"From a@b Mon May  1 09:12:44 2023\nSubject: big\n\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', 5000));
        input.extend_from_slice(b"\n\nFrom a@b Mon May  1 09:12:45 2023\nSubject: small\n\nok\n");
        let mut splitter = Splitter::new(&input[..], 1024);
        let items: Vec<Item> = splitter.by_ref().collect();
        assert!(
            matches!(&items[0], Item::Problem(p) if p.kind == ProblemKind::TooLarge && p.raw.len() == 1024)
        );
        assert_eq!(messages(&items), vec!["Subject: small\n\nok\n"]);
        assert_accounted(&input, &items, splitter.stats());
    }

    #[test]
    fn whitespace_only_and_empty() {
        for input in [&b""[..], b"\n\n  \n"] {
            let (items, stats, variant) = split(input);
            assert!(items.is_empty());
            assert_eq!(variant, Variant::Unknown);
            assert_accounted(input, &items, &stats);
        }
    }

    #[test]
    fn resume_skips_bytes() {
        let first = b"From a@b Mon May  1 09:12:44 2023\nSubject: x\n\nbody\n\n";
        let mut input = first.to_vec();
        input.extend_from_slice(b"From c@d Mon May  1 09:12:45 2023\nSubject: y\n\nnew\n\n");
        let mut splitter = Splitter::new(&input[..], 1 << 20);
        splitter
            .resume_at(first.len() as u64, Variant::Mbox)
            .expect("resume");
        let items: Vec<Item> = splitter.by_ref().collect();
        assert_eq!(messages(&items), vec!["Subject: y\n\nnew\n"]);
        match &items[0] {
            Item::Message(m) => assert_eq!(m.offset, first.len() as u64),
            Item::Problem(p) => panic!("unexpected problem {p:?}"),
        }
    }

    #[test]
    fn a_last_message_cut_mid_line_is_held_back_unless_the_input_is_complete() {
        let first = b"From a@b Mon May  1 09:12:44 2023\nSubject: x\n\nbody\n\n".to_vec();
        let mut input = first.clone();
        input.extend_from_slice(b"From c@d Mon May  1 09:12:45 2023\nSubject: y\n\nhalf a li");
        let mut splitter = Splitter::new(&input[..], 1 << 20);
        let items: Vec<Item> = splitter.by_ref().collect();
        assert_eq!(messages(&items).len(), 1);
        assert!(
            matches!(items.last(), Some(Item::Problem(p)) if p.kind == ProblemKind::Truncated
                && p.offset == first.len() as u64 && p.len == (input.len() - first.len()) as u64),
            "{items:?}"
        );
        assert_eq!(splitter.resume_from(), Some(first.len() as u64));
        // Ending at a line's end, or a stream nothing appends to: the message is kept.
        let whole = [&input[..], b"ne\n"].concat();
        assert_eq!(messages(&split(&whole).0).len(), 2);
        let mut complete = Splitter::new(&input[..], 1 << 20);
        complete.input_is_complete();
        let items: Vec<Item> = complete.by_ref().collect();
        assert_eq!(messages(&items).len(), 2);
        assert_eq!(complete.resume_from(), None);
    }

    /// A reader that fails like a gzip stream cut short after `n` bytes.
    struct EndsEarly<'a>(&'a [u8]);

    impl io::Read for EndsEarly<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "stream cut short",
                ));
            }
            let n = buf.len().min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn a_stream_cut_short_is_read_again_from_its_cut_message() {
        let first = b"From a@b Mon May  1 09:12:44 2023\nSubject: x\n\nbody\n\n".to_vec();
        let mut input = first.clone();
        input.extend_from_slice(b"From c@d Mon May  1 09:12:45 2023\nSubject: y\n\nwhole line\n");
        let mut splitter = Splitter::new(io::BufReader::new(EndsEarly(&input)), 1 << 20);
        let items: Vec<Item> = splitter.by_ref().collect();
        assert_eq!(messages(&items).len(), 1);
        assert!(
            matches!(items.last(), Some(Item::Problem(p)) if p.kind == ProblemKind::Truncated
                && p.offset == first.len() as u64),
            "{items:?}"
        );
        assert_eq!(splitter.resume_from(), Some(first.len() as u64));
    }

    #[test]
    fn a_file_of_carriage_returns_only_says_so() {
        let input = b"From a@b Mon May  1 09:12:44 2023\rSubject: x\r\rbody\r\r";
        let (items, _, _) = split(input);
        assert!(
            matches!(items.as_slice(), [Item::Problem(p)] if p.kind == ProblemKind::Truncated
                && p.len == input.len() as u64 && p.detail.contains("CR only")),
            "{items:?}"
        );
    }
}
