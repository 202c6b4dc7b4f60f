//! Digest and confirmation emails from the templates in `templates/digest/` (subject, plain text
//! and HTML, each a template, embedded in the binary). HTML is autoescaped; every value is
//! stripped of control characters first, and the subject is forced onto one line, so nothing a
//! sender wrote can break out of a header, a tag or an attribute. The only user of minijinja.

use anyhow::{Context, Result};
use minijinja::{Environment, UndefinedBehavior};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;

use super::{Digest, DigestThread, Totals};

/// Everything in a path segment is encoded except the unreserved characters and `@`, which
/// Message-IDs are full of and which a path segment may hold (RFC 3986 `pchar`).
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'@');

/// A query-string value: unreserved characters and `,` (list separators stay readable).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b',');

/// Percent-encodes one URL path segment (a Message-ID, a token).
pub fn path_segment(raw: &str) -> String {
    utf8_percent_encode(raw, SEGMENT).to_string()
}

/// The web archive's thread page: `{base_url}/t/<root-message-id>`.
pub fn thread_url(base_url: &str, root_message_id: &str) -> String {
    let segment =
        crate::message::MessageId::path_segment(root_message_id, path_segment(root_message_id));
    format!("{base_url}/t/{segment}")
}

/// The public page of a week's digest: `{base_url}/digest/2023-W20?lists=a,b`, with `&q=` for
/// a digest narrowed to a saved search, so the page shows what the email did.
pub fn digest_url(base_url: &str, digest: &Digest) -> String {
    let lists = utf8_percent_encode(&digest.lists.join(","), QUERY_VALUE).to_string();
    let mut url = format!("{base_url}/digest/{}?lists={lists}", digest.week);
    if let Some(q) = &digest.query {
        url.push_str("&q=");
        url.extend(utf8_percent_encode(q, QUERY_VALUE));
    }
    url
}

/// An email stays readable (and under the ~100 KB at which some clients clip it) however busy
/// the week: at most this many topics, threads per topic and other threads are shown; the rest
/// is counted and linked to the digest's web page.
pub const MAX_TOPICS: usize = 12;
/// See [`MAX_TOPICS`].
pub const MAX_THREADS_PER_TOPIC: usize = 5;
/// See [`MAX_TOPICS`].
pub const MAX_OTHER_THREADS: usize = 10;

/// A rendered email body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// One line, no control characters.
    pub subject: String,
    /// The text/plain part.
    pub text: String,
    /// The text/html part.
    pub html: String,
}

/// A subscriber's personal links, absent in previews.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Links {
    /// One-click unsubscribe (RFC 8058): `POST` unsubscribes, `GET` shows a confirmation page.
    pub unsubscribe: Option<String>,
    /// Manage the subscription (lists, pause).
    pub manage: Option<String>,
}

/// The parsed templates.
pub struct Renderer {
    env: Environment<'static>,
    base_url: String,
}

const TEMPLATES: &[(&str, &str)] = &[
    (
        "subject.txt",
        include_str!("../../templates/digest/subject.txt"),
    ),
    ("text.txt", include_str!("../../templates/digest/text.txt")),
    (
        "thread.txt",
        include_str!("../../templates/digest/thread.txt"),
    ),
    (
        "html.html",
        include_str!("../../templates/digest/html.html"),
    ),
    (
        "thread.html",
        include_str!("../../templates/digest/thread.html"),
    ),
    (
        "confirm_subject.txt",
        include_str!("../../templates/digest/confirm_subject.txt"),
    ),
    (
        "confirm.txt",
        include_str!("../../templates/digest/confirm.txt"),
    ),
    (
        "confirm.html",
        include_str!("../../templates/digest/confirm.html"),
    ),
];

#[derive(Serialize)]
struct View {
    subject: String,
    week: String,
    week_range: String,
    lists_joined: String,
    /// The saved search the digest was filtered by, if any.
    query: Option<String>,
    totals: Totals,
    quiet: bool,
    empty: bool,
    topics: Vec<TopicView>,
    /// All topics, shown or not.
    topic_count: usize,
    /// Topics not shown, and their threads.
    more_topics: usize,
    more_topic_threads: usize,
    other_threads: Vec<ThreadView>,
    /// Other threads not shown.
    more_other: usize,
    base_url: String,
    digest_url: String,
    unsubscribe_url: Option<String>,
    manage_url: Option<String>,
}

#[derive(Serialize)]
struct TopicView {
    label: String,
    terms: Vec<String>,
    thread_count: usize,
    messages: u32,
    threads: Vec<ThreadView>,
    /// Threads of the topic not shown.
    more: usize,
}

#[derive(Serialize)]
struct ThreadView {
    subject: String,
    url: String,
    messages: u32,
    messages_total: u32,
    new: bool,
    people: String,
    lists_joined: String,
    excerpt: String,
    excerpt_author: String,
}

#[derive(Serialize)]
struct ConfirmView {
    lists_joined: String,
    base_url: String,
    query: Option<String>,
    confirm_url: String,
    valid_hours: u32,
}

/// Replaces control characters (CR, LF, NUL, bidi overrides stay harmless as text) with spaces
/// and collapses runs of white space.
pub fn clean(s: &str) -> String {
    let replaced: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    replaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "Ann, Bob, Cy and 4 others".
fn people(names: &[String]) -> String {
    let shown: Vec<String> = names.iter().take(4).map(|n| clean(n)).collect();
    let rest = names.len().saturating_sub(4);
    match (shown.len(), rest) {
        (0, _) => "someone".into(),
        (1, 0) => shown[0].clone(),
        (n, 0) => format!("{} and {}", shown[..n - 1].join(", "), shown[n - 1]),
        (_, 1) => format!("{} and 1 other", shown.join(", ")),
        (_, r) => format!("{} and {r} others", shown.join(", ")),
    }
}

/// "15–21 May 2023", "29 May – 4 June 2023", "25 Dec 2023 – 1 Jan 2024".
fn week_range(digest: &Digest) -> String {
    let week = digest.week;
    let monday =
        time::Date::from_iso_week_date(week.year(), week.week(), time::Weekday::Monday).ok();
    let sunday = monday.and_then(|m| m.checked_add(time::Duration::days(6)));
    let (Some(a), Some(b)) = (monday, sunday) else {
        return week.to_string();
    };
    let month = |d: time::Date| d.month().to_string();
    if a.year() != b.year() {
        format!(
            "{} {} {} – {} {} {}",
            a.day(),
            month(a),
            a.year(),
            b.day(),
            month(b),
            b.year()
        )
    } else if a.month() != b.month() {
        format!(
            "{} {} – {} {} {}",
            a.day(),
            month(a),
            b.day(),
            month(b),
            b.year()
        )
    } else {
        format!("{}–{} {} {}", a.day(), b.day(), month(b), b.year())
    }
}

impl Renderer {
    /// Parses the embedded templates. `base_url` is the web archive's address.
    pub fn new(base_url: &str) -> Result<Renderer> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_keep_trailing_newline(true);
        // Autoescape by extension: `.html` is HTML-escaped, `.txt` is not.
        env.set_auto_escape_callback(|name| {
            if name.ends_with(".html") {
                minijinja::AutoEscape::Html
            } else {
                minijinja::AutoEscape::None
            }
        });
        env.add_filter("plural", |n: i64| if n == 1 { "" } else { "s" });
        // URLs are ours (validated base URL, percent-encoded ids and tokens); in an attribute
        // they need only the HTML metacharacters escaped, not `/` as autoescape does.
        env.add_filter("url", |u: String| {
            minijinja::Value::from_safe_string(crate::html::escape(&u))
        });
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .with_context(|| format!("template {name} does not parse"))?;
        }
        Ok(Renderer {
            env,
            base_url: base_url.trim_end_matches('/').to_string(),
        })
    }

    fn render<S: Serialize>(&self, name: &str, view: &S) -> Result<String> {
        let template = self
            .env
            .get_template(name)
            .with_context(|| format!("no template {name}"))?;
        template
            .render(view)
            .with_context(|| format!("cannot render {name}"))
    }

    fn thread_view(&self, t: &DigestThread) -> ThreadView {
        ThreadView {
            subject: clean(&t.subject),
            url: thread_url(&self.base_url, &t.root_message_id),
            messages: t.messages,
            messages_total: t.messages_total,
            new: t.new,
            people: people(&t.participants),
            lists_joined: t.lists.join(", "),
            excerpt: clean(&t.excerpt),
            excerpt_author: clean(&t.excerpt_author),
        }
    }

    /// Renders a digest, with a subscriber's links or without (a preview).
    pub fn digest(&self, digest: &Digest, links: &Links) -> Result<Rendered> {
        let topics: Vec<TopicView> = digest
            .topics
            .iter()
            .take(MAX_TOPICS)
            .map(|t| TopicView {
                label: clean(&t.label),
                terms: t.terms.iter().map(|s| clean(s)).collect(),
                thread_count: t.threads.len(),
                messages: t.threads.iter().map(|th| th.messages).sum(),
                threads: t
                    .threads
                    .iter()
                    .take(MAX_THREADS_PER_TOPIC)
                    .map(|th| self.thread_view(th))
                    .collect(),
                more: t.threads.len().saturating_sub(MAX_THREADS_PER_TOPIC),
            })
            .collect();
        let hidden = digest.topics.iter().skip(MAX_TOPICS);
        let more_topic_threads = hidden.clone().map(|t| t.threads.len()).sum();
        let mut view = View {
            subject: String::new(),
            week: digest.week.to_string(),
            week_range: week_range(digest),
            lists_joined: digest.lists.join(", "),
            query: digest.query.as_deref().map(clean),
            totals: digest.totals,
            quiet: digest.is_quiet(),
            empty: digest.is_empty(),
            topics,
            topic_count: digest.topics.len(),
            more_topics: hidden.count(),
            more_topic_threads,
            other_threads: digest
                .other_threads
                .iter()
                .take(MAX_OTHER_THREADS)
                .map(|th| self.thread_view(th))
                .collect(),
            more_other: digest.other_threads.len().saturating_sub(MAX_OTHER_THREADS),
            base_url: self.base_url.clone(),
            digest_url: digest_url(&self.base_url, digest),
            unsubscribe_url: links.unsubscribe.clone(),
            manage_url: links.manage.clone(),
        };
        let subject = clean(&self.render("subject.txt", &view)?);
        view.subject = subject.clone();
        Ok(Rendered {
            subject,
            text: self.render("text.txt", &view)?,
            html: self.render("html.html", &view)?,
        })
    }

    /// Renders the double opt-in confirmation email.
    pub fn confirmation(
        &self,
        lists: &[String],
        query: Option<&str>,
        confirm_url: &str,
        valid_hours: u32,
    ) -> Result<Rendered> {
        let view = ConfirmView {
            lists_joined: lists.join(", "),
            base_url: self.base_url.clone(),
            query: query.map(clean),
            confirm_url: confirm_url.to_string(),
            valid_hours,
        };
        Ok(Rendered {
            subject: clean(&self.render("confirm_subject.txt", &view)?),
            text: self.render("confirm.txt", &view)?,
            html: self.render("confirm.html", &view)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_encoded() {
        let cases = [
            ("abc@example.org", "abc@example.org"),
            ("a/b?c#d@x", "a%2Fb%3Fc%23d@x"),
            ("<x y>@z", "%3Cx%20y%3E@z"),
            ("ü@x", "%C3%BC@x"),
            ("a\"onmouseover=1@x", "a%22onmouseover%3D1@x"),
        ];
        for (id, want) in cases {
            assert_eq!(path_segment(id), want, "{id}");
        }
        assert_eq!(
            thread_url("https://a.example", "x/y@z"),
            "https://a.example/t/x%2Fy@z"
        );
    }

    #[test]
    fn people_lists() {
        let n = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(people(&n(&[])), "someone");
        assert_eq!(people(&n(&["A"])), "A");
        assert_eq!(people(&n(&["A", "B"])), "A and B");
        assert_eq!(people(&n(&["A", "B", "C"])), "A, B and C");
        assert_eq!(
            people(&n(&["A", "B", "C", "D", "E"])),
            "A, B, C, D and 1 other"
        );
        assert_eq!(
            people(&n(&["A", "B", "C", "D", "E", "F"])),
            "A, B, C, D and 2 others"
        );
    }

    #[test]
    fn clean_removes_line_breaks() {
        assert_eq!(clean("a\r\nBcc: x\u{0}y  z"), "a Bcc: x y z");
    }

    #[test]
    fn attribute_escaping() {
        assert_eq!(
            crate::html::escape("https://x/a?b=1&c=\"'<>"),
            "https://x/a?b=1&amp;c=&quot;&#39;&lt;&gt;"
        );
    }

    fn thread(i: usize) -> DigestThread {
        DigestThread {
            root_message_id: format!("t{i}@x"),
            subject: format!("thread {i}"),
            messages: 1,
            messages_total: 1,
            new: true,
            participants: vec!["Ann".into()],
            lists: vec!["dev".into()],
            excerpt: "Words.".into(),
            excerpt_author: "Ann".into(),
            participant_keys: vec!["ann@x".into()],
            message_ids: vec![format!("t{i}@x")],
        }
    }

    #[test]
    fn busy_weeks_are_capped_and_linked() {
        let mut n = 0;
        let mut next = || {
            n += 1;
            thread(n)
        };
        let topics = (0..MAX_TOPICS + 5)
            .map(|i| super::super::DigestTopic {
                label: format!("topic {i}"),
                terms: vec![],
                continued: false,
                threads: (0..MAX_THREADS_PER_TOPIC + 2).map(|_| next()).collect(),
            })
            .collect();
        let other = (0..MAX_OTHER_THREADS + 8).map(|_| next()).collect();
        let digest = Digest {
            week: crate::message::IsoWeek::parse("2023-W20").expect("week"),
            lists: vec!["dev".into()],
            totals: Totals {
                messages: 200,
                threads: 200,
                new_threads: 200,
                participants: 1,
            },
            topics,
            other_threads: other,
            query: None,
        };
        let r = Renderer::new("https://x.example")
            .expect("templates")
            .digest(&digest, &Links::default())
            .expect("render");
        // A digest narrowed to a saved search links to the same narrowing online.
        assert_eq!(
            digest_url("https://x.example", &digest),
            "https://x.example/digest/2023-W20?lists=dev"
        );
        let narrowed = Digest {
            query: Some("tag:nova \"x y\"".into()),
            ..digest.clone()
        };
        assert_eq!(
            digest_url("https://x.example", &narrowed),
            "https://x.example/digest/2023-W20?lists=dev&q=tag%3Anova%20%22x%20y%22"
        );
        // ...and says so, at the top and where it says what was subscribed to.
        let n = Renderer::new("https://x.example")
            .expect("templates")
            .digest(&narrowed, &Links::default())
            .expect("render");
        assert!(
            n.text.contains("Threads matching: tag:nova \"x y\""),
            "{}",
            n.text
        );
        assert!(
            n.html.contains("threads matching <code>tag:nova"),
            "{}",
            n.html
        );
        assert!(!r.text.contains("matching"), "{}", r.text);
        for text in [&r.text, &r.html] {
            assert!(
                text.contains("… and 2 more threads on this topic"),
                "{text}"
            );
            let hidden = format!(
                "… and 5 more topics ({} threads)",
                5 * (MAX_THREADS_PER_TOPIC + 2)
            );
            assert!(text.contains(&hidden), "{text}");
            assert!(text.contains("… and 8 more threads"), "{text}");
            assert!(!text.contains(&format!("topic {MAX_TOPICS}")));
        }
        assert!(
            r.subject.contains(&format!("{} topics", MAX_TOPICS + 5)),
            "{}",
            r.subject
        );
    }
}
