//! Atom feeds for lists, threads and searches: newest first, each entry linking to its
//! message page, every text escaped.

use actix_web::{web, HttpRequest, HttpResponse};

use super::pages::{parse_id, run_search, search_params, SearchQuery};
use super::render::{id_path, iso_date};
use super::text::escape;
use super::{cached, State, WebError};

/// Entries per feed.
const FEED_ENTRIES: usize = 50;

pub(crate) struct Entry {
    /// The entry's page, a path on this server (also its Atom id).
    pub path: String,
    pub title: String,
    pub author: String,
    pub updated: String,
    pub summary: String,
}

pub(crate) fn feed(
    req: &HttpRequest,
    title: &str,
    self_path: &str,
    entries: &[Entry],
) -> HttpResponse {
    let host = req.connection_info().host().to_string();
    let scheme = req.connection_info().scheme().to_string();
    let base = format!("{scheme}://{host}");
    let updated = entries
        .iter()
        .map(|e| e.updated.as_str())
        .max()
        .unwrap_or("1970-01-01T00:00:00Z");
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n<title>{}</title>\n<id>{}</id>\n<link rel=\"self\" href=\"{}\"/>\n<updated>{}</updated>\n",
        escape(title),
        escape(&format!("{base}{self_path}")),
        escape(&format!("{base}{self_path}")),
        escape(updated)
    );
    for e in entries {
        let link = format!("{base}{}", e.path);
        xml.push_str(&format!(
            "<entry>\n<title>{}</title>\n<id>{}</id>\n<link href=\"{}\"/>\n<author><name>{}</name></author>\n<updated>{}</updated>\n<summary type=\"text\">{}</summary>\n</entry>\n",
            escape(&e.title),
            escape(&link),
            escape(&link),
            escape(&e.author),
            escape(&e.updated),
            escape(&e.summary)
        ));
    }
    xml.push_str("</feed>\n");
    cached(req, "application/atom+xml; charset=utf-8", xml.into_bytes())
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
    let messages = state.with_store(|s| {
        if !s.list_exists(&list)? {
            return Ok(None);
        }
        let (threads, _) = s.threads_by_activity(Some(&list), None, FEED_ENTRIES, 0)?;
        let mut out = Vec::new();
        for t in threads {
            if let Some(m) = s.message(&t.root_id)? {
                out.push((m, t.last));
            }
        }
        Ok(Some(out))
    })?;
    let messages = messages.ok_or_else(|| WebError::NotFound {
        message: format!("There is no list named {list:?}."),
        search: None,
    })?;
    let entries: Vec<Entry> = messages
        .iter()
        .map(|(m, last)| Entry {
            path: format!("/m/{}", id_path(m.id.as_str())),
            title: m.subject.clone(),
            author: m.from.label().to_string(),
            updated: iso_date(last.or(m.date)),
            summary: excerpt(&m.body),
        })
        .collect();
    Ok(feed(
        &req,
        &format!("{list}: latest threads"),
        req.path(),
        &entries,
    ))
}

/// `/t/{id}/atom`
pub async fn thread(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let id = parse_id(&path.into_inner())?;
    let messages = state
        .with_store(|s| s.thread_messages(&id))?
        .ok_or_else(|| WebError::NotFound {
            message: format!("No message <{id}> is in this archive."),
            search: Some(format!("msgid:{id}")),
        })?;
    let title = messages
        .first()
        .map(|m| m.subject.clone())
        .unwrap_or_default();
    let entries: Vec<Entry> = messages
        .iter()
        .rev()
        .take(FEED_ENTRIES)
        .map(|m| Entry {
            path: format!("/m/{}", id_path(m.id.as_str())),
            title: m.subject.clone(),
            author: m.from.label().to_string(),
            updated: iso_date(m.date),
            summary: excerpt(&m.body),
        })
        .collect();
    Ok(feed(&req, &title, req.path(), &entries))
}

/// `/search/atom?q=`: the newest matching messages.
pub async fn search(
    state: web::Data<State>,
    req: HttpRequest,
    query: web::Query<SearchQuery>,
) -> Result<HttpResponse, WebError> {
    let p = search_params(query.q.as_deref(), Some("date"), None, None, FEED_ENTRIES)?;
    let results = run_search(&state, &p)?;
    let entries: Vec<Entry> = results
        .hits
        .iter()
        .map(|h| Entry {
            path: format!("/m/{}", id_path(&h.message_id)),
            title: h.subject.clone(),
            author: h.from.clone(),
            updated: h.date.clone().unwrap_or_default(),
            summary: h.snippet.replace("<b>", "").replace("</b>", ""),
        })
        .collect();
    let self_path = format!("{}?{}", req.path(), req.query_string());
    Ok(feed(
        &req,
        &format!("search: {}", p.query),
        &self_path,
        &entries,
    ))
}
