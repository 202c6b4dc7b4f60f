//! Atom feeds for lists, threads and searches: newest first, each entry linking to its
//! message page, every text escaped.

use actix_web::{web, HttpRequest, HttpResponse};

use super::cache::{Rendered, Scope};
use super::pages::{parse_id, run_search, search_params, SearchQuery};
use super::render::{id_path, iso_date, shown_subject};
use super::text::escape;
use super::{obfuscate, respond, State, WebError};
use crate::index::Sort;

/// Entries per feed.
const FEED_ENTRIES: usize = 50;

pub(crate) struct Entry {
    /// The entry's page, a path on this server (also its Atom id).
    pub path: String,
    pub title: String,
    pub author: String,
    pub updated: String,
    pub summary: Summary,
}

/// An entry's summary: plain text, or HTML that is already safe (a search snippet with its
/// highlighted words), sent as Atom `type="html"` so readers show it as HTML, not as tags.
pub(crate) enum Summary {
    Text(String),
    Html(String),
}

/// Where a feed is served: its absolute links need the scheme and host asked for.
pub(crate) struct Origin {
    base: String,
    self_path: String,
}

impl Origin {
    pub(crate) fn of(state: &State, req: &HttpRequest) -> Origin {
        let self_path = match req.query_string() {
            "" => req.path().to_string(),
            q => format!("{}?{q}", req.path()),
        };
        Origin {
            base: super::origin(state, req),
            self_path,
        }
    }
}

/// Escaped for XML, with the characters XML 1.0 forbids (control characters other than tab
/// and line ends, U+FFFE, U+FFFF; a mail's subject or a query may hold any of them) made
/// U+FFFD: one of them makes a whole feed unreadable to a strict reader.
fn xml_text(text: &str) -> String {
    let allowed = |c: char| !matches!(c, '\0'..='\x08' | '\x0b' | '\x0c' | '\x0e'..='\x1f' | '\u{fffe}' | '\u{ffff}');
    if text.chars().all(allowed) {
        return escape(text);
    }
    let clean: String = text
        .chars()
        .map(|c| if allowed(c) { c } else { '\u{fffd}' })
        .collect();
    escape(&clean)
}

/// Atom's `updated` for what has no date: the epoch, since the element is required.
const UNDATED: &str = "1970-01-01T00:00:00Z";

pub(crate) fn feed(
    origin: &Origin,
    title: &str,
    entries: &[Entry],
    last_modified: Option<i64>,
) -> Rendered {
    let base = &origin.base;
    let self_path = &origin.self_path;
    let dated = |e: &Entry| {
        if e.updated.is_empty() {
            UNDATED.to_string()
        } else {
            e.updated.clone()
        }
    };
    let updated = entries
        .iter()
        .map(dated)
        .max()
        .unwrap_or(UNDATED.to_string());
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n<title>{}</title>\n<id>{}</id>\n<link rel=\"self\" href=\"{}\"/>\n<updated>{}</updated>\n",
        xml_text(title),
        xml_text(&format!("{base}{self_path}")),
        xml_text(&format!("{base}{self_path}")),
        xml_text(&updated)
    );
    for e in entries {
        let link = format!("{base}{}", e.path);
        let (kind, summary) = match &e.summary {
            Summary::Text(t) => ("text", t),
            Summary::Html(h) => ("html", h),
        };
        xml.push_str(&format!(
            "<entry>\n<title>{}</title>\n<id>{}</id>\n<link href=\"{}\"/>\n<author><name>{}</name></author>\n<updated>{}</updated>\n<summary type=\"{kind}\">{}</summary>\n</entry>\n",
            xml_text(&e.title),
            xml_text(&link),
            xml_text(&link),
            xml_text(&e.author),
            xml_text(&dated(e)),
            xml_text(summary)
        ));
    }
    xml.push_str("</feed>\n");
    Rendered::new(
        "application/atom+xml; charset=utf-8",
        xml.into_bytes(),
        last_modified,
    )
}

fn excerpt(body: &str) -> String {
    let own: String = body
        .lines()
        .filter(|l| !l.starts_with('>'))
        .take(12)
        .collect::<Vec<_>>()
        .join("\n");
    own.chars().take(600).collect()
}

/// `/{list}/atom`
pub async fn list(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let list = path.into_inner();
    let origin = Origin::of(&state, &req);
    respond(&state, &req, Scope::Archive, move |state, s| {
        if !s.list_exists(&list)? {
            return Err(WebError::NotFound {
                message: format!("There is no list named {list:?}."),
                search: None,
            });
        }
        let (threads, _) = s.threads_by_activity(Some(&list), None, FEED_ENTRIES, 0)?;
        let mut messages = Vec::new();
        for t in threads {
            if let Some(m) = s.message(&t.root_id)? {
                messages.push((m, t.last));
            }
        }
        let entries: Vec<Entry> = messages
            .iter()
            .map(|(m, last)| Entry {
                path: format!("/m/{}", id_path(m.id.as_str())),
                title: shown_subject(&m.subject).into_owned(),
                author: obfuscate::label(state.obfuscate, &m.from),
                updated: iso_date(last.or(m.date)),
                summary: Summary::Text(obfuscate::maybe(state.obfuscate, &excerpt(&m.body))),
            })
            .collect();
        let latest = messages
            .iter()
            .filter_map(|(m, last)| last.or(m.date))
            .max();
        Ok(feed(
            &origin,
            &format!("{list}: latest threads"),
            &entries,
            latest,
        ))
    })
    .await
}

/// `/t/{id}/atom`
pub async fn thread(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = parse_id(&path.into_inner())?;
    let origin = Origin::of(&state, &req);
    respond(&state, &req, Scope::Archive, move |state, s| {
        let messages = s.thread_messages(&id)?.ok_or_else(|| WebError::NotFound {
            message: format!("No message <{id}> is in this archive."),
            search: Some(format!("msgid:{id}")),
        })?;
        let title = messages
            .first()
            .map(|m| shown_subject(&m.subject).into_owned())
            .unwrap_or_default();
        let entries: Vec<Entry> = messages
            .iter()
            .rev()
            .take(FEED_ENTRIES)
            .map(|m| Entry {
                path: format!("/m/{}", id_path(m.id.as_str())),
                title: shown_subject(&m.subject).into_owned(),
                author: obfuscate::label(state.obfuscate, &m.from),
                updated: iso_date(m.date),
                summary: Summary::Text(obfuscate::maybe(state.obfuscate, &excerpt(&m.body))),
            })
            .collect();
        let latest = messages.iter().filter_map(|m| m.date).max();
        Ok(feed(&origin, &title, &entries, latest))
    })
    .await
}

/// `/search/atom?q=`: the newest matching messages.
pub async fn search(
    state: web::Data<State>,
    req: HttpRequest,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, WebError> {
    // The feed is always newest first, but a bad `sort` is refused as on the search page;
    // `page` and `collapse` mean what they mean there (older entries, a thread once).
    let mut p = search_params(
        query.q.as_deref(),
        query.sort.as_deref(),
        query.page.as_deref(),
        query.collapse.as_deref(),
        FEED_ENTRIES,
    )?;
    p.sort = Sort::Date;
    p.options.sort = Sort::Date;
    let origin = Origin::of(&state, &req);
    respond(&state, &req, Scope::Search, move |state, s| {
        let results = run_search(state, s, &p)?;
        let entries: Vec<Entry> = results
            .hits
            .iter()
            .map(|h| Entry {
                path: format!("/m/{}", id_path(&h.message_id)),
                title: shown_subject(&h.subject).into_owned(),
                author: h.from.clone(),
                updated: h.date.clone().unwrap_or_default(),
                summary: Summary::Html(h.snippet.clone()),
            })
            .collect();
        let newest = results
            .hits
            .iter()
            .filter_map(|h| h.date.as_deref())
            .filter_map(|d| {
                time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|d| d.unix_timestamp())
            .max();
        Ok(feed(
            &origin,
            &format!("search: {}", p.query),
            &entries,
            newest,
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_xml_forbids_are_replaced_and_undated_entries_get_the_epoch() {
        let origin = Origin {
            base: "http://h".into(),
            self_path: "/search/atom?q=%01".into(),
        };
        let entries = [Entry {
            path: "/m/x".into(),
            title: "a\u{1}b\u{ffff}c\u{0}<d>\te".into(),
            author: "\u{1b}[31mEve".into(),
            updated: String::new(),
            summary: Summary::Text("line\u{c}feed\r\nok".into()),
        }];
        let feed = feed(&origin, "search: \u{1}", &entries, None);
        let xml = String::from_utf8(feed.body.to_vec()).expect("utf-8");
        let forbidden = |c: char| matches!(c, '\0'..='\x08' | '\x0b' | '\x0c' | '\x0e'..='\x1f' | '\u{fffe}' | '\u{ffff}');
        assert!(!xml.chars().any(forbidden), "{xml:?}");
        assert!(
            xml.contains("<title>a\u{fffd}b\u{fffd}c\u{fffd}&lt;d&gt;\te</title>"),
            "{xml}"
        );
        assert!(xml.contains("<title>search: \u{fffd}</title>"), "{xml}");
        assert!(xml.contains("line\u{fffd}feed\r\nok"), "{xml}");
        assert_eq!(
            xml.matches("<updated>1970-01-01T00:00:00Z</updated>")
                .count(),
            2,
            "{xml}"
        );
        assert!(!xml.contains("<updated></updated>"));
    }
}
