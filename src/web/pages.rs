//! The HTML pages: home, list (by activity and by month), thread (nested and flat), message,
//! raw, thread mbox, search and its help. Every value reaches the page through an
//! autoescaping template; bodies through `text`, which escapes them itself.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;

use actix_web::http::{header, Method};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::article::{self, Links};
use super::cache::{Rendered, Scope};
use super::render::{
    anchor, id_path, query_value, render, render_spliced, short_date, shown_subject, SafeHtml,
};
use super::{blocking, cached, obfuscate, respond, respond_with, Cost, State, WebError};
use crate::html::escape_into;
use crate::index::{SearchOptions, Sort};
use crate::message::{ListName, MessageId};
use crate::store::{FullMessage, OutlineMessage, Store, ThreadSummary};

/// Threads per list page.
const THREADS_PER_PAGE: usize = 50;
/// Hits per search page.
const HITS_PER_PAGE: usize = 20;
/// The deepest page anyone may ask for: deep paging is a crawler's game.
const MAX_PAGE: usize = 500;
/// The longest query whose facet values are links (see `search_page`).
const MAX_REFINED_QUERY: usize = 1024;
/// The longest query read: a longer one is searched by its start, with a notice.
pub const MAX_QUERY: usize = 16 * 1024;

type Page = Result<HttpResponse, WebError>;

const HTML: &str = "text/html; charset=utf-8";

fn html(req: &HttpRequest, body: String) -> HttpResponse {
    cached(req, HTML, body.into_bytes())
}

/// A rendered page whose newest content is from `last_modified`.
fn html_page(body: String, last_modified: Option<i64>) -> Rendered {
    Rendered::new(HTML, body.into_bytes(), last_modified)
}

/// `?page=N` (1-based).
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    page: Option<String>,
}

pub(crate) fn page_number(raw: Option<&str>) -> Result<usize, WebError> {
    page_number_upto(raw, MAX_PAGE)
}

/// The deepest page of a list's threads: every page a list links to must open (a list page
/// is one indexed range read, unlike a deep search).
pub(crate) const MAX_LIST_PAGE: usize = 1_000_000;

pub(crate) fn page_number_upto(raw: Option<&str>, max: usize) -> Result<usize, WebError> {
    match raw {
        None | Some("") => Ok(1),
        Some(p) => match p.parse::<usize>() {
            Ok(n) if (1..=max).contains(&n) => Ok(n),
            _ => Err(WebError::BadRequest(format!(
                "page must be a number from 1 to {max}, not {:?}",
                truncate(p, 50)
            ))),
        },
    }
}

pub(crate) fn parse_id(raw: &str) -> Result<MessageId, WebError> {
    MessageId::parse(raw).ok_or_else(|| {
        WebError::BadRequest(format!("{:?} is not a Message-ID", truncate(raw, 200)))
    })
}

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn not_found_message(id: &MessageId) -> WebError {
    WebError::NotFound {
        message: format!(
            "No message <{}> is in this archive. It may not have been imported, or the link is wrong.",
            truncate(id.as_str(), 300)
        ),
        search: Some(format!("msgid:{}", truncate(id.as_str(), 300))),
    }
}

fn thread_rows(state: &State, threads: &[ThreadSummary]) -> Vec<Value> {
    threads
        .iter()
        .map(|t| {
            json!({
                "root_path": id_path(t.root_id.as_str()),
                "subject": shown_subject(&t.subject),
                "from": obfuscate::label(state.obfuscate, &t.from),
                "messages": t.messages,
                "last": short_date(t.last),
            })
        })
        .collect()
}

fn pages_nav(base: &str, page: usize, total: u64, per_page: usize) -> Value {
    let count = (total as usize).div_ceil(per_page).max(1);
    let link = |p: usize| format!("{base}?page={p}");
    json!({
        "page": page,
        "count": count,
        // Past the end, "newer" goes to the last page rather than the empty one before.
        "prev": (page > 1).then(|| link((page - 1).min(count))),
        "next": (page < count).then(|| link(page + 1)),
    })
}

/// `/`
pub async fn home(state: web::Data<State>, req: HttpRequest) -> Page {
    respond(&state, &req, Scope::Archive, |state, s| {
        let lists = s.lists_overview()?;
        let (threads, _) = s.threads_by_activity(None, None, 30, 0)?;
        let latest = lists.iter().filter_map(|l| l.latest).max();
        let lists: Vec<Value> = lists
            .iter()
            .map(|l| json!({"name": l.name, "messages": l.messages, "latest": short_date(l.latest)}))
            .collect();
        let body = render(
            "home.html",
            json!({"title": "Mailing lists", "lists": lists, "threads": thread_rows(state, &threads)}),
        )?;
        Ok(html_page(body, latest))
    })
    .await
}

/// `/help`
pub async fn help(req: HttpRequest) -> Page {
    Ok(html(
        &req,
        render("help.html", json!({"title": "How to search"}))?,
    ))
}

/// `/{list}`: the canonical list URL ends with a slash.
pub async fn list_redirect(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Page {
    let list = path.into_inner();
    let (list, exists) = blocking(&state, move |_, s| {
        let exists = s.list_exists(&list)?;
        Ok((list, exists))
    })
    .await?;
    if !exists {
        return Err(list_not_found(&list));
    }
    // The query string goes along: `/dev?page=2` is `/dev/?page=2`.
    let mut location = format!("/{}/", query_value(&list));
    if !req.query_string().is_empty() {
        location.push('?');
        location.push_str(req.query_string());
    }
    Ok(HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, location))
        .finish())
}

fn list_not_found(list: &str) -> WebError {
    WebError::NotFound {
        message: format!(
            "There is no list named {:?} in this archive.",
            truncate(list, 100)
        ),
        search: None,
    }
}

/// `/{list}/`
pub async fn list(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Page {
    let list = path.into_inner();
    let page = page_number_upto(query.page.as_deref(), MAX_LIST_PAGE)?;
    respond(&state, &req, Scope::Archive, move |state, s| {
        list_page(state, s, &list, None, page)
    })
    .await
}

/// `/{list}/{year}/{month}/`
pub async fn list_month(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    query: web::Query<PageQuery>,
) -> Page {
    let (list, year, month) = path.into_inner();
    // `/m/ID/raw/` and `/t/ID/atom/` land here: under the site's own paths a path that is not
    // a month names nothing, rather than being a month page with a bad parameter.
    let reserved = ListName::parse(&list).is_ok_and(|l| l.is_reserved());
    let bad = |message: String| {
        if reserved {
            WebError::NotFound {
                message: "There is no such page in this archive.".into(),
                search: None,
            }
        } else {
            WebError::BadRequest(message)
        }
    };
    let year: i32 = year
        .parse()
        .ok()
        .filter(|y| (0..=9999).contains(y))
        .ok_or_else(|| bad(format!("{year:?} is not a year")))?;
    let month: u32 = month
        .parse()
        .ok()
        .filter(|m| (1..=12).contains(m))
        .ok_or_else(|| bad(format!("{month:?} is not a month (01-12)")))?;
    let page = page_number_upto(query.page.as_deref(), MAX_LIST_PAGE)?;
    respond(&state, &req, Scope::Archive, move |state, s| {
        list_page(state, s, &list, Some((year, month)), page)
    })
    .await
}

fn month_range(year: i32, month: u32) -> (i64, i64) {
    let start = crate::ingest::mbox::days_from_civil(i64::from(year), month, 1) * 86_400;
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    let end = crate::ingest::mbox::days_from_civil(i64::from(ny), nm, 1) * 86_400;
    (start, end)
}

fn list_page(
    state: &State,
    s: &Store,
    list: &str,
    month: Option<(i32, u32)>,
    page: usize,
) -> Result<Rendered, WebError> {
    let range = month.map(|(y, m)| month_range(y, m));
    if !s.list_exists(list)? {
        return Err(list_not_found(list));
    }
    let (threads, total) = s.threads_by_activity(
        Some(list),
        range,
        THREADS_PER_PAGE,
        (page - 1) * THREADS_PER_PAGE,
    )?;
    let months = s.list_months(list)?;
    let latest = threads.iter().filter_map(|t| t.last).max();
    let base = match month {
        Some((y, m)) => format!("/{}/{y:04}/{m:02}/", query_value(list)),
        None => format!("/{}/", query_value(list)),
    };
    let months: Vec<Value> = months
        .iter()
        .map(|(y, m, _)| {
            json!({"year": format!("{y:04}"), "month": format!("{m:02}"),
                   "label": format!("{y:04}-{m:02}"), "current": month == Some((*y, *m))})
        })
        .collect();
    let month_label = month.map(|(y, m)| format!("{y:04}-{m:02}"));
    let body = render(
        "list.html",
        json!({
            "title": match &month_label { Some(l) => format!("{list} {l}"), None => list.to_string() },
            "list": list, "month_label": month_label, "months": months,
            "total": total, "threads": thread_rows(state, &threads),
            "pages": pages_nav(&base, page, total, THREADS_PER_PAGE),
        }),
    )?;
    Ok(html_page(body, latest))
}

/// The thread page's context (a struct, so the message views are not copied into JSON
/// values first).
#[derive(serde::Serialize)]
struct ThreadView<'a> {
    title: &'a str,
    subject: &'a str,
    root_path: String,
    count: usize,
    participants: usize,
    flat: bool,
    /// Set when the thread takes more than one page.
    pages: Option<ThreadPages>,
    /// The outline and every message's article, in display order: [`SafeHtml::body_mark`].
    body: SafeHtml,
}

#[derive(serde::Serialize)]
struct ThreadPages {
    page: usize,
    count: usize,
    prev: Option<String>,
    next: Option<String>,
}

/// `/m/{id}`
pub async fn message(state: web::Data<State>, req: HttpRequest, path: web::Path<String>) -> Page {
    let id = parse_id(&path.into_inner())?;
    respond_with(
        &state,
        &req,
        Scope::Archive,
        Cost::OneMessage,
        move |state, s| {
            let m = s.message(&id)?.ok_or_else(|| not_found_message(&id))?;
            let thread_count = s.thread_size(m.thread)?;
            let mut html = String::with_capacity(article::size_hint(&m));
            article::write(
                &mut html,
                &m,
                &anchor(m.id.as_str()),
                &Links::default(),
                1,
                state.obfuscate,
            );
            // A struct, not a JSON value: the article is marked safe, and a JSON value would lose
            // the mark (it would be escaped twice).
            #[derive(serde::Serialize)]
            struct Context<'a> {
                title: std::borrow::Cow<'a, str>,
                article: SafeHtml,
                path: String,
                thread_count: u64,
            }
            let body = render(
                "message.html",
                Context {
                    title: shown_subject(&m.subject),
                    article: SafeHtml::new(html),
                    path: id_path(m.id.as_str()),
                    thread_count,
                },
            )?;
            Ok(html_page(body, m.date))
        },
    )
    .await
}

/// `/m/{id}/raw`: the stored bytes, exactly as received (never obfuscated: it is the
/// record of what arrived).
pub async fn raw(state: web::Data<State>, req: HttpRequest, path: web::Path<String>) -> Page {
    let id = parse_id(&path.into_inner())?;
    respond_with(
        &state,
        &req,
        Scope::Archive,
        Cost::OneMessage,
        move |_, s| {
            let bytes = s.raw_message(&id)?.ok_or_else(|| not_found_message(&id))?;
            // Mail in UTF-8 (or ASCII) says so, or browsers read it as windows-1252; other
            // bytes are left to the reader's choice of encoding, as any would be a guess.
            let content_type = if std::str::from_utf8(&bytes).is_ok() {
                "text/plain; charset=utf-8"
            } else {
                "text/plain"
            };
            Ok(Rendered::new(content_type, bytes, None))
        },
    )
    .await
}

/// `?view=flat`
#[derive(Debug, Deserialize)]
pub struct ThreadQuery {
    view: Option<String>,
    page: Option<String>,
}

/// Messages on one page of a thread. A thread of 100,000 replies made a 91 MB page (and a
/// gigabyte of server memory for four readers); longer threads are paged, each page built
/// from the outline of the whole thread and the full text of its own messages only.
pub(crate) const THREAD_PAGE_MESSAGES: usize = 500;

/// `/t/{id}` and `/t/{id}.mbox.gz`
pub async fn thread(
    state: web::Data<State>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<ThreadQuery>,
) -> Page {
    let raw_id = path.into_inner();
    if let Some(id) = raw_id.strip_suffix(".mbox.gz") {
        let id = parse_id(id)?;
        return respond(&state, &req, Scope::Archive, move |_, s| {
            thread_mbox(s, &id)
        })
        .await;
    }
    let flat = match query.view.as_deref() {
        None | Some("nested") => false,
        Some("flat") => true,
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "view must be nested or flat, not {:?}",
                truncate(other, 50)
            )))
        }
    };
    let id = parse_id(&raw_id)?;
    let page = match query.page.as_deref() {
        None | Some("") => None,
        raw => Some(page_number_upto(raw, MAX_LIST_PAGE)?),
    };
    respond_with(
        &state,
        &req,
        Scope::Archive,
        Cost::Thread(id.clone()),
        move |state, s| {
            let outline = s
                .thread_outline(&id)?
                .ok_or_else(|| not_found_message(&id))?;
            thread_page(state, s, &id, outline, flat, page)
        },
    )
    .await
}

/// The thread page: an outline of the tree, then every message with links to its parent,
/// its replies and the next message. A thread of more than [`THREAD_PAGE_MESSAGES`] is paged
/// in display order; without `?page=` the page holding the asked-for message is shown, so
/// `/t/<id>#anchor` always lands on its message. Links to a message on another page carry
/// that page's number.
fn thread_page(
    state: &State,
    s: &Store,
    id: &MessageId,
    mut outline: Vec<OutlineMessage>,
    flat: bool,
    page: Option<usize>,
) -> Result<Rendered, WebError> {
    // The tree takes the references over: nothing else on the page shows them.
    let tree = crate::thread::tree(
        &outline
            .iter_mut()
            .map(|m| crate::thread::TreeInput {
                message_id: m.id.as_str().to_string(),
                refs: std::mem::take(&mut m.refs),
                date: m.date.unwrap_or(0),
            })
            .collect::<Vec<_>>(),
    );
    let by_id: HashMap<&str, usize> = outline
        .iter()
        .enumerate()
        .map(|(i, m)| (m.id.as_str(), i))
        .collect();
    let node_of: HashMap<&str, usize> = tree
        .iter()
        .enumerate()
        .map(|(i, n)| (n.message_id.as_str(), i))
        .collect();
    let anchors: Vec<String> = tree.iter().map(|n| anchor(&n.message_id)).collect();
    let senders: Vec<Option<String>> = tree
        .iter()
        .map(|n| {
            by_id
                .get(n.message_id.as_str())
                .map(|&m| obfuscate::label(state.obfuscate, &outline[m].from))
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); tree.len()];
    for (i, n) in tree.iter().enumerate() {
        if let Some(p) = n.parent.filter(|&p| p < tree.len()) {
            children[p].push(i);
        }
    }
    let present = |i: &usize| !tree[*i].is_ghost && senders[*i].is_some();
    // Messages in display order, as outline indices: the tree's pre-order (nested) or by
    // date (flat).
    let ordered: Vec<usize> = if flat {
        (0..outline.len()).collect()
    } else {
        tree.iter()
            .filter(|n| !n.is_ghost)
            .filter_map(|n| by_id.get(n.message_id.as_str()).copied())
            .collect()
    };
    let per_page = THREAD_PAGE_MESSAGES;
    let pages = ordered.len().div_ceil(per_page).max(1);
    let page = match page {
        Some(p) => p,
        None => by_id
            .get(id.as_str())
            .and_then(|m| ordered.iter().position(|o| o == m))
            .map_or(1, |at| at / per_page + 1),
    };
    if page > pages {
        return Err(WebError::NotFound {
            message: format!("This thread has {pages} page(s), not {page}."),
            search: None,
        });
    }
    let shown = &ordered[(page - 1) * per_page..(page * per_page).min(ordered.len())];
    // Which page each outline message is on, for links that leave this one.
    let mut page_of = vec![0usize; outline.len()];
    for (at, &m) in ordered.iter().enumerate() {
        page_of[m] = at / per_page + 1;
    }
    let view = if flat { "&view=flat" } else { "" };
    let href_to = |node: usize| -> String {
        match by_id.get(tree[node].message_id.as_str()) {
            Some(&m) if page_of[m] != 0 && page_of[m] != page => {
                format!("?page={}{view}#{}", page_of[m], anchors[node])
            }
            _ => format!("#{}", anchors[node]),
        }
    };
    let rows: Vec<i64> = shown.iter().map(|&m| outline[m].row).collect();
    let full = s.full_messages_of(&rows)?;
    let full_by_id: HashMap<&str, &FullMessage> = full.iter().map(|m| (m.id.as_str(), m)).collect();

    // The outline of this page's part of the tree (all of it for a thread of one page), then
    // every article: written here, and put into the page's template in one piece (see
    // `render_spliced`).
    let nodes: Vec<usize> = if pages == 1 {
        (0..tree.len()).collect()
    } else {
        let mut on_page: Vec<usize> = shown
            .iter()
            .filter_map(|&m| node_of.get(outline[m].id.as_str()).copied())
            .collect();
        on_page.sort_unstable();
        match (flat, on_page.first(), on_page.last()) {
            // Nested: the page is one stretch of the pre-order, placeholders included: it
            // starts just after the previous page's last message, so a placeholder between
            // two pages opens the later one.
            (false, Some(&first), Some(&last)) => {
                let first = match (page - 1) * per_page {
                    0 => 0,
                    start => node_of
                        .get(outline[ordered[start - 1]].id.as_str())
                        .map_or(first, |&previous| (previous + 1).min(first)),
                };
                let last = if page == pages { tree.len() - 1 } else { last };
                (first..=last).collect()
            }
            _ => on_page,
        }
    };
    let mut body = String::with_capacity(
        nodes.len() * 200 + full.iter().map(article::size_hint).sum::<usize>(),
    );
    body.push_str("<ol class=\"tree\">\n");
    for &i in &nodes {
        let n = &tree[i];
        let _ = write!(body, "<li class=\"d{}\">", n.depth.min(12));
        match by_id.get(n.message_id.as_str()).filter(|_| !n.is_ghost) {
            None => body.push_str("<span class=\"ghost\">[message not in the archive]</span>"),
            Some(&m) => {
                let m = &outline[m];
                body.push_str("<a href=\"");
                escape_into(&mut body, &href_to(i));
                body.push_str("\">");
                let subject = shown_subject(&m.subject);
                escape_into(
                    &mut body,
                    if subject.is_empty() {
                        "(no subject)"
                    } else {
                        &subject
                    },
                );
                body.push_str("</a> <span class=\"meta\">");
                escape_into(&mut body, senders[i].as_deref().unwrap_or(""));
                body.push_str(" · ");
                escape_into(&mut body, &short_date(m.date));
                body.push_str("</span>");
            }
        }
        body.push_str("</li>\n");
    }
    body.push_str("</ol>\n");
    for (at, &o) in shown.iter().enumerate() {
        let Some(m) = full_by_id.get(outline[o].id.as_str()) else {
            continue;
        };
        let node = node_of.get(m.id.as_str()).copied();
        let position = (page - 1) * per_page + at;
        let links = Links {
            parent: node
                .and_then(|n| tree[n].parent)
                .filter(present)
                .map(href_to),
            children: node
                .map(|n| {
                    children[n]
                        .iter()
                        .filter(|c| present(c))
                        .map(|&c| (href_to(c), senders[c].clone().unwrap_or_default()))
                        .collect()
                })
                .unwrap_or_default(),
            next: ordered
                .get(position + 1)
                .map(|&n| match node_of.get(outline[n].id.as_str()) {
                    Some(&node) => href_to(node),
                    None => format!("#{}", anchor(outline[n].id.as_str())),
                }),
        };
        let own = node.map_or_else(|| anchor(m.id.as_str()), |n| anchors[n].clone());
        article::write(&mut body, m, &own, &links, 2, state.obfuscate);
    }
    let participants: std::collections::BTreeSet<&str> =
        outline.iter().map(|m| m.from.label()).collect();
    let root = ordered.first().or((!outline.is_empty()).then_some(&0));
    let subject = root
        .map(|&m| shown_subject(&outline[m].subject).into_owned())
        .unwrap_or_default();
    let latest = outline.iter().filter_map(|m| m.date).max();
    let pager = (pages > 1).then(|| ThreadPages {
        page,
        count: pages,
        prev: (page > 1).then(|| format!("?page={}{view}", page - 1)),
        next: (page < pages).then(|| format!("?page={}{view}", page + 1)),
    });
    let title = if pages > 1 {
        format!("{subject} (page {page} of {pages})")
    } else {
        subject.clone()
    };
    let body = render_spliced(
        "thread.html",
        ThreadView {
            title: &title,
            subject: &subject,
            root_path: id_path(id.as_str()),
            count: outline.len(),
            participants: participants.len(),
            flat,
            pages: pager,
            body: SafeHtml::body_mark(),
        },
        &body,
    )?;
    Ok(html_page(body, latest))
}

/// The thread as an mboxrd file, gzipped; byte-exact messages (never obfuscated).
fn thread_mbox(s: &Store, id: &MessageId) -> Result<Rendered, WebError> {
    let messages = s.thread_raw(id)?.ok_or_else(|| not_found_message(id))?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let write = |gz: &mut flate2::write::GzEncoder<Vec<u8>>| -> std::io::Result<()> {
        for (date, raw) in &messages {
            writeln!(gz, "From archivist {}", asctime(*date))?;
            // mboxrd: every line matching ^>*From gains one more '>'.
            for line in raw.split_inclusive(|&b| b == b'\n') {
                let depth = line.iter().take_while(|&&b| b == b'>').count();
                if line[depth..].starts_with(b"From ") {
                    gz.write_all(b">")?;
                }
                gz.write_all(line)?;
            }
            if !raw.ends_with(b"\n") {
                gz.write_all(b"\n")?;
            }
            gz.write_all(b"\n")?;
        }
        Ok(())
    };
    write(&mut gz).map_err(|e| WebError::Internal(e.into()))?;
    let bytes = gz.finish().map_err(|e| WebError::Internal(e.into()))?;
    let latest = messages.iter().filter_map(|(date, _)| *date).max();
    let mut rendered = Rendered::new("application/gzip", bytes, latest);
    rendered.disposition = Some("attachment; filename=\"thread.mbox.gz\"");
    Ok(rendered)
}

fn asctime(ts: Option<i64>) -> String {
    const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let d = ts
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[d.weekday().number_days_from_monday() as usize],
        MONTHS[usize::from(u8::from(d.month()) - 1)],
        d.day(),
        d.hour(),
        d.minute(),
        d.second(),
        d.year()
    )
}

/// `/search` parameters.
#[derive(Debug, Deserialize)]
pub struct SearchQuery {
    pub(crate) q: Option<String>,
    pub(crate) sort: Option<String>,
    pub(crate) page: Option<String>,
    pub(crate) collapse: Option<String>,
}

/// Parsed search parameters, shared by the page, the feed and the API.
pub(crate) struct SearchParams {
    pub query: String,
    /// Said about the parameters before the search's own notices (a query cut short).
    pub notices: Vec<String>,
    pub options: SearchOptions,
    pub page: usize,
    pub collapse: bool,
    pub sort: Sort,
}

pub(crate) fn search_params(
    q: Option<&str>,
    sort: Option<&str>,
    page: Option<&str>,
    collapse: Option<&str>,
    per_page: usize,
) -> Result<SearchParams, WebError> {
    // A query is never refused for its length (the language promises notices, not errors):
    // only its start is read, as the CLI reads only the start of a longer one.
    let mut query = q.unwrap_or_default();
    let mut notices = Vec::new();
    if query.len() > MAX_QUERY {
        notices.push(format!(
            "The query is {} bytes long; searched for its first {MAX_QUERY} bytes only.",
            query.len()
        ));
        query = truncate_bytes(query, MAX_QUERY);
    }
    let query = query.to_string();
    let sort = match sort {
        None | Some("") | Some("relevance") => Sort::Relevance,
        Some("date") => Sort::Date,
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "sort must be relevance or date, not {:?}",
                truncate(other, 50)
            )))
        }
    };
    let collapse = match collapse {
        None | Some("") | Some("0") | Some("false") => false,
        Some("1") | Some("true") => true,
        Some(other) => {
            return Err(WebError::BadRequest(format!(
                "collapse must be 0 or 1, not {:?}",
                truncate(other, 50)
            )))
        }
    };
    let page = page_number(page)?;
    Ok(SearchParams {
        options: SearchOptions {
            limit: per_page,
            offset: (page - 1) * per_page,
            sort,
            collapse_threads: collapse,
        },
        query,
        notices,
        page,
        collapse,
        sort,
    })
}

/// The longest start of `s` of at most `max` bytes that ends on a character boundary.
fn truncate_bytes(s: &str, max: usize) -> &str {
    let mut end = max.min(s.len());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn search_href(query: &str, sort: Sort, collapse: bool, page: usize) -> String {
    let mut href = format!("/search?q={}", query_value(query));
    if sort == Sort::Date {
        href.push_str("&sort=date");
    }
    if collapse {
        href.push_str("&collapse=1");
    }
    if page > 1 {
        href.push_str(&format!("&page={page}"));
    }
    href
}

/// Runs a search for a page, feed or API call, addresses obfuscated if configured; a notice
/// when there is no index yet.
pub(crate) fn run_search(
    state: &State,
    store: &Store,
    params: &SearchParams,
) -> Result<crate::search::SearchPage, WebError> {
    let Some(searcher) = state.searcher()? else {
        return Ok(crate::search::SearchPage {
            total: 0,
            hits: Vec::new(),
            facets: Default::default(),
            notices: vec![
                "The search index has not been built yet (or was built by an older version): \
                 run an import or `archivist reindex`."
                    .into(),
            ],
            sort: params.sort,
        });
    };
    let mut page = crate::search::search(store, &searcher, &params.query, &params.options)?;
    page.notices.splice(0..0, params.notices.iter().cloned());
    if state.obfuscate {
        obfuscate::search_page(&mut page);
    }
    Ok(page)
}

/// `/search`
pub async fn search(
    state: web::Data<State>,
    req: HttpRequest,
    query: web::Query<SearchQuery>,
) -> Page {
    let p = search_params(
        query.q.as_deref(),
        query.sort.as_deref(),
        query.page.as_deref(),
        query.collapse.as_deref(),
        HITS_PER_PAGE,
    )?;
    if p.query.trim().is_empty() {
        return Ok(html(
            &req,
            render("search.html", json!({"title": "Search", "query": ""}))?,
        ));
    }
    respond(&state, &req, Scope::Search, move |state, s| {
        search_page(state, s, &p)
    })
    .await
}

/// One hit of the search page.
#[derive(serde::Serialize)]
struct HitView<'a> {
    path: String,
    subject: std::borrow::Cow<'a, str>,
    from: &'a str,
    date: Option<String>,
    lists: &'a [String],
    thread_hits: u32,
    thread_size: u64,
    snippet: &'a str,
}

/// One facet of the search page: its values, each with a link that refines the query.
#[derive(serde::Serialize)]
struct FacetView<'a> {
    title: &'static str,
    values: Vec<FacetValueView<'a>>,
}

#[derive(serde::Serialize)]
struct FacetValueView<'a> {
    value: &'a str,
    count: u64,
    /// `None` for a query too long to repeat in every link (see `search_page`).
    href: Option<String>,
}

#[derive(serde::Serialize)]
struct PagesView {
    page: usize,
    prev: Option<String>,
    next: Option<String>,
}

#[derive(serde::Serialize)]
struct SearchLinks {
    relevance: String,
    date: String,
    collapse: String,
    uncollapse: String,
}

/// The search page's context: serialized structs rather than `serde_json` values, which were
/// built (a map and a key string per field) only to be converted again into template values.
#[derive(serde::Serialize)]
struct SearchView<'a> {
    title: String,
    query: &'a str,
    total: u64,
    hits: Vec<HitView<'a>>,
    facets: Vec<FacetView<'a>>,
    notices: &'a [String],
    collapse: bool,
    sort: &'static str,
    pages: PagesView,
    links: SearchLinks,
}

fn facet_view<'a>(
    title: &'static str,
    field: &str,
    values: &'a [crate::index::FacetCount],
    refine: &dyn Fn(&str, &str) -> Option<String>,
) -> FacetView<'a> {
    FacetView {
        title,
        values: values
            .iter()
            .map(|f| FacetValueView {
                value: &f.value,
                count: f.count,
                href: refine(field, &f.value),
            })
            .collect(),
    }
}

fn search_page(state: &State, s: &Store, p: &SearchParams) -> Result<Rendered, WebError> {
    let results = run_search(state, s, p)?;
    let hits: Vec<HitView> = results
        .hits
        .iter()
        .map(|h| HitView {
            path: id_path(&h.message_id),
            subject: shown_subject(&h.subject),
            from: &h.from,
            date: h
                .date
                .as_deref()
                .map(|d| d.replace('T', " ").trim_end_matches('Z').to_string()),
            lists: &h.lists,
            thread_hits: h.thread_hits,
            thread_size: h.thread_size,
            snippet: &h.snippet,
        })
        .collect();
    // Each facet value links to the query narrowed by it; a very long query (hostile, or
    // pasted by mistake) would be repeated in every link, so its facets are shown unlinked.
    let narrower =
        (p.query.len() <= MAX_REFINED_QUERY).then(|| crate::index::QueryNarrower::new(&p.query));
    let refine = |field: &str, value: &str| -> Option<String> {
        let narrower = narrower.as_ref()?;
        Some(search_href(
            &narrower.narrow(field, value),
            p.sort,
            p.collapse,
            1,
        ))
    };
    let facet = |title, field, values| facet_view(title, field, values, &refine);
    let mut facets = vec![
        facet("Lists", "list", &results.facets.lists),
        facet("Years", "date", &results.facets.years),
        facet("Tags", "tag", &results.facets.tags),
    ];
    // A sender filter links to a query holding the address, so it goes when addresses are
    // hidden. `sender:` takes exactly the key the facet counted by (the address, or the name
    // of a sender without one), where `from:` would also find that name beside addresses.
    if !state.obfuscate {
        facets.push(facet("Senders", "sender", &results.facets.senders));
    }
    let more = (p.page * HITS_PER_PAGE) < results.total as usize && p.page < MAX_PAGE;
    let pages = PagesView {
        page: p.page,
        // Past the last page of hits, "previous" goes to that last page.
        prev: (p.page > 1).then(|| {
            let last = (results.total as usize)
                .div_ceil(HITS_PER_PAGE)
                .clamp(1, MAX_PAGE);
            search_href(&p.query, p.sort, p.collapse, (p.page - 1).min(last))
        }),
        next: more.then(|| search_href(&p.query, p.sort, p.collapse, p.page + 1)),
    };
    let sort = if results.sort == Sort::Date {
        "date"
    } else {
        "relevance"
    };
    let body = render(
        "search.html",
        SearchView {
            title: format!("{} — search", truncate(&p.query, 80)),
            query: &p.query,
            total: results.total,
            hits,
            facets,
            notices: &results.notices,
            collapse: p.collapse,
            sort,
            pages,
            links: SearchLinks {
                relevance: search_href(&p.query, Sort::Relevance, p.collapse, 1),
                date: search_href(&p.query, Sort::Date, p.collapse, 1),
                collapse: search_href(&p.query, p.sort, true, 1),
                uncollapse: search_href(&p.query, p.sort, false, 1),
            },
        },
    )?;
    Ok(html_page(body, None))
}

/// Anything else.
pub async fn not_found(req: HttpRequest) -> Page {
    // The digest forms take POST on their own resources (see `web::configure`); everywhere
    // else the archive is read-only.
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(WebError::MethodNotAllowed {
            message: format!(
                "{} is not taken at {}: this archive is read-only.",
                req.method(),
                truncate(req.path(), 300)
            ),
            allow: "GET, HEAD",
        });
    }
    Err(WebError::NotFound {
        message: format!("Nothing lives at {}.", truncate(req.path(), 300)),
        search: None,
    })
}
