//! The page templates (embedded at build time, autoescaped) and the small formatting helpers
//! views share: dates, Message-ID path segments, anchors.

use std::sync::OnceLock;

use minijinja::Environment;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../../templates/web/base.html")),
    ("home.html", include_str!("../../templates/web/home.html")),
    (
        "threads.html",
        include_str!("../../templates/web/threads.html"),
    ),
    ("list.html", include_str!("../../templates/web/list.html")),
    (
        "message.html",
        include_str!("../../templates/web/message.html"),
    ),
    (
        "thread.html",
        include_str!("../../templates/web/thread.html"),
    ),
    (
        "search.html",
        include_str!("../../templates/web/search.html"),
    ),
    ("help.html", include_str!("../../templates/web/help.html")),
    ("error.html", include_str!("../../templates/web/error.html")),
    (
        "digest.html",
        include_str!("../../templates/web/digest.html"),
    ),
    (
        "digest_subscribe.html",
        include_str!("../../templates/web/digest_subscribe.html"),
    ),
    (
        "digest_manage.html",
        include_str!("../../templates/web/digest_manage.html"),
    ),
    (
        "digest_notice.html",
        include_str!("../../templates/web/digest_notice.html"),
    ),
];

/// The stylesheet, served at `/static/style.css`.
pub const STYLE: &str = include_str!("../../static/style.css");

/// The template environment, built once. Templates are compiled into the binary, so the
/// server needs no files at run time.
pub fn templates() -> &'static Environment<'static> {
    static ENV: OnceLock<Environment<'static>> = OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            // A broken template is a build bug; the test suite renders every one.
            if let Err(err) = env.add_template(name, source) {
                eprintln!("archivist: template {name} does not compile: {err}");
            }
        }
        env
    })
}

/// Renders a template with a serializable context.
pub fn render(name: &str, ctx: impl serde::Serialize) -> anyhow::Result<String> {
    let template = templates().get_template(name)?;
    Ok(template.render(ctx)?)
}

/// Renders template `name`, then puts `body` where the context's
/// [`SafeHtml::body_mark`] was: a thread page's hundred articles are copied once into the
/// page instead of through the template engine's values (a tenth of the page's cost).
pub fn render_spliced(
    name: &str,
    ctx: impl serde::Serialize,
    body: &str,
) -> anyhow::Result<String> {
    let page = render(name, ctx)?;
    // Escaped text cannot hold `<`: the first mark is the one the template wrote.
    let Some(at) = page.find(BODY_MARK) else {
        anyhow::bail!("template {name} did not write its body mark");
    };
    let mut out = String::with_capacity(page.len() - BODY_MARK.len() + body.len());
    out.push_str(&page[..at]);
    out.push_str(body);
    out.push_str(&page[at + BODY_MARK.len()..]);
    Ok(out)
}

/// See [`render_spliced`].
const BODY_MARK: &str = "<!--archivist:body-->";

/// HTML that is already safe (built and escaped by `article` and `text`): the templates
/// output it as is.
#[derive(Debug, Clone)]
pub struct SafeHtml(minijinja::Value);

impl SafeHtml {
    /// Marks `html` as safe: only for HTML this crate built and escaped itself.
    pub fn new(html: String) -> Self {
        SafeHtml(minijinja::Value::from_safe_string(html))
    }

    /// Where [`render_spliced`] puts its body.
    pub fn body_mark() -> Self {
        SafeHtml::new(BODY_MARK.to_string())
    }
}

impl serde::Serialize for SafeHtml {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // Inside a template context this keeps minijinja's "safe" mark (without copying the
        // text); anywhere else it is the plain string.
        self.0.serialize(serializer)
    }
}

/// Characters escaped in a Message-ID used as one URL path segment.
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'\\')
    .add(b'^')
    .add(b'|')
    .add(b'[')
    .add(b']')
    .add(b'\'')
    .add(b';')
    .add(b'+')
    .add(b'&')
    .add(b'=');

/// A Message-ID as a URL path segment; in angle brackets where it could not stand alone (see
/// [`crate::message::MessageId::path_segment`]).
pub fn id_path(id: &str) -> String {
    crate::message::MessageId::path_segment(id, utf8_percent_encode(id, SEGMENT).to_string())
}

/// A query-string value.
pub fn query_value(value: &str) -> String {
    utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// A stable HTML anchor for a message: its id may hold any character.
pub fn anchor(id: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let hash = blake3::hash(id.as_bytes());
    let mut out = String::with_capacity(13);
    out.push('m');
    // The first 12 hex digits of the hash.
    for b in &hash.as_bytes()[..6] {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
    out
}

/// Longest subject shown on a page; a longer one (hostile, or broken mail) is cut there.
const SUBJECT_SHOWN_CHARS: usize = 998;

/// A subject as pages show it: cut at [`SUBJECT_SHOWN_CHARS`] characters with an ellipsis.
pub fn shown_subject(subject: &str) -> std::borrow::Cow<'_, str> {
    match subject.char_indices().nth(SUBJECT_SHOWN_CHARS) {
        None => std::borrow::Cow::Borrowed(subject),
        Some((end, _)) => std::borrow::Cow::Owned(format!("{}…", &subject[..end])),
    }
}

/// `2023-05-01 09:12` (UTC) for pages.
pub fn short_date(ts: Option<i64>) -> String {
    use crate::ingest::push_digits;
    let Some(t) = ts else {
        return "undated".into();
    };
    let Some([y, mo, d, h, mi, _]) = crate::ingest::utc_fields(t) else {
        // Beyond year 9999 (or before year 0): rare enough for the general formatter.
        return time::OffsetDateTime::from_unix_timestamp(t)
            .map_or_else(|_| "undated".into(), short_date_general);
    };
    let mut out = String::with_capacity(16);
    push_digits(&mut out, y, 4);
    for (sep, v) in [('-', mo), ('-', d), (' ', h), (':', mi)] {
        out.push(sep);
        push_digits(&mut out, v, 2);
    }
    out
}

/// [`short_date`] through the `time` crate's formatting, for the years it cannot write
/// digit by digit.
fn short_date_general(d: time::OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}",
        d.year(),
        u8::from(d.month()),
        d.day(),
        d.hour(),
        d.minute()
    )
}

/// RFC 3339 for `<time datetime>` and feeds.
pub fn iso_date(ts: Option<i64>) -> String {
    ts.map(crate::ingest::rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    /// The hand-written date formats say what the `time` crate's formatters said.
    #[test]
    fn dates_match_the_general_formatters() {
        use time::format_description::well_known::Rfc3339;
        let day = 86_400;
        let mut stamps = vec![
            0,
            1,
            -1,
            59,
            951_782_400,
            1_682_932_364,
            253_402_300_799,
            253_402_300_800,
            -62_167_219_200,
            -62_167_219_201,
            i64::MIN,
            i64::MAX,
        ];
        stamps.extend((0..400).map(|i| i * 97 * day + i * 3_601));
        for ts in stamps {
            let general = time::OffsetDateTime::from_unix_timestamp(ts).ok();
            let rfc = general
                .and_then(|d| d.format(&Rfc3339).ok())
                .unwrap_or_else(|| ts.to_string());
            assert_eq!(crate::ingest::rfc3339(ts), rfc, "rfc3339 of {ts}");
            let short = general.map_or_else(|| "undated".to_string(), super::short_date_general);
            assert_eq!(super::short_date(Some(ts)), short, "short date of {ts}");
        }
        assert_eq!(super::short_date(None), "undated");
    }

    /// Anchors are stable: links into thread pages must keep working across versions.
    #[test]
    fn anchors_are_the_first_twelve_hex_digits_of_the_id_hash() {
        for id in [
            "root@example.org",
            "",
            "ü\"<>@x",
            "long-thread-0@bench.example",
        ] {
            let want = format!("m{}", &blake3::hash(id.as_bytes()).to_hex()[..12]);
            assert_eq!(super::anchor(id), want, "{id:?}");
        }
    }
}
