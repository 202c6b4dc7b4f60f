//! The digest pages: the subscription form, the double opt-in confirmation, the manage page,
//! one-click unsubscribe (RFC 8058), each week's digest and the Atom feed of digests.
//!
//! These are the only pages that write. They open the archive read-write per request, off the
//! event loop, and only touch the subscription tables. Forms carry an anti-forgery token bound
//! to a `SameSite=Strict` cookie; the one-click unsubscribe `POST` needs none (mail clients
//! send it without cookies: the signed token in its URL is the authority). Pages that hold
//! tokens are never cached and say nothing about whether an address is subscribed.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::cache::{Rendered, Scope};
use super::limit::RateLimit;
use super::render::{id_path, iso_date, query_value, render};
use super::{respond, State, WebError};
use crate::digest::render::{Links, Renderer};
use crate::digest::service::{now, Service};
use crate::digest::subscribe::ConfirmOutcome;
use crate::digest::{self, BuildOptions, Digest};
use crate::message::{EmailAddress, IsoWeek, ListName};
use crate::store::Store;

/// The cookie holding a browser's anti-forgery nonce.
const FORM_COOKIE: &str = "archivist_form";
/// Weeks in the Atom feed of digests.
const FEED_WEEKS: u32 = 6;
/// Threads outside the topics listed on a digest page; a week of 24,000 threads made an
/// 11 MB page. The rest are counted, and the lists' pages have them.
const WEB_OTHER_THREADS: usize = 200;
/// Longest saved search accepted.
const MAX_SAVED_QUERY: usize = 1000;

/// What the digest pages share across workers.
pub struct Digests {
    service: Option<Arc<Service>>,
    /// Why subscriptions are off, when they are.
    off: String,
    renderer: Renderer,
    build: BuildOptions,
    data_dir: PathBuf,
    per_client: RateLimit,
    per_address: RateLimit,
}

impl Digests {
    /// The digest pages over `data_dir`. Without a service (no token key configured) the
    /// digests can be read but nobody can subscribe; `off` says why.
    pub fn new(
        data_dir: PathBuf,
        service: Result<Arc<Service>, String>,
        base_url: &str,
        build: BuildOptions,
    ) -> anyhow::Result<Digests> {
        let (service, off) = match service {
            Ok(s) => (Some(s), String::new()),
            Err(why) => (None, why),
        };
        Ok(Digests {
            service,
            off,
            renderer: Renderer::new(base_url)?,
            build,
            data_dir,
            // Form posts per client per hour; confirmation emails per address per day.
            per_client: RateLimit::new(20, 3600),
            per_address: RateLimit::new(3, 86_400),
        })
    }

    fn service(&self) -> Result<&Service, WebError> {
        self.service.as_deref().ok_or_else(|| {
            WebError::Unavailable(format!(
                "Subscriptions are not enabled on this server: {}",
                self.off
            ))
        })
    }

    /// The archive, read-only, for one request.
    fn read_store(&self) -> Result<Store, WebError> {
        let path = self.data_dir.join("archive.sqlite3");
        if !path.exists() {
            return Err(WebError::NotFound {
                message: "The archive is empty: nothing has been imported yet.".into(),
                search: None,
            });
        }
        Ok(Store::open_read_only(&path)?)
    }

    /// The archive, read-write, for one request's subscription change.
    fn store(&self) -> Result<Store, WebError> {
        let path = self.data_dir.join("archive.sqlite3");
        if !path.exists() {
            return Err(WebError::Unavailable(
                "The archive is empty: nothing has been imported yet.".into(),
            ));
        }
        Ok(Store::open(&path)?)
    }
}

/// Runs blocking work (SQLite writes, SMTP) on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    web::block(f)
        .await
        .map_err(|e| WebError::Internal(anyhow::anyhow!("blocking task failed: {e}")))?
}

/// A page with tokens in it: never stored by caches or the browser's history cache.
fn private_page(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, "text/html; charset=utf-8"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// The browser's anti-forgery nonce from its cookie, if it has a well-formed one.
fn form_nonce(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == FORM_COOKIE)
        .map(|(_, value)| value.to_string())
        .filter(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// A fresh random nonce.
fn new_nonce() -> Result<String, WebError> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| WebError::Internal(anyhow::anyhow!("cannot read /dev/urandom: {e}")))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The form token for this browser, and the cookie to set when it had none.
fn form_token(req: &HttpRequest, service: &Service) -> Result<(String, Option<String>), WebError> {
    let (nonce, fresh) = match form_nonce(req) {
        Some(n) => (n, false),
        None => (new_nonce()?, true),
    };
    let secure = if req.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    };
    let cookie = fresh.then(|| {
        format!(
            "{FORM_COOKIE}={nonce}; Path=/digest; HttpOnly; SameSite=Strict; Max-Age=86400{secure}"
        )
    });
    Ok((service.subscriptions().form_token(&nonce), cookie))
}

fn with_cookie(mut response: HttpResponse, cookie: Option<String>) -> HttpResponse {
    if let Some(c) = cookie {
        if let Ok(value) = header::HeaderValue::from_str(&c) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// Fails unless the form carries the token bound to this browser's cookie.
fn check_form(req: &HttpRequest, service: &Service, form: &Form) -> Result<(), WebError> {
    let token = form.first("form_token").unwrap_or_default();
    match form_nonce(req) {
        Some(nonce) if service.subscriptions().check_form_token(&nonce, token) => Ok(()),
        _ => Err(WebError::Forbidden(
            "This form has expired or was not sent from this site. Reload the page and try again (cookies must be enabled)."
                .into(),
        )),
    }
}

/// A decoded `application/x-www-form-urlencoded` body (repeated names kept).
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &[u8]) -> Form {
        Form(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn first(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The client's identity for rate limits: its IP address.
fn client_key(req: &HttpRequest) -> String {
    req.peer_addr()
        .map_or_else(|| "unknown".to_string(), |a| a.ip().to_string())
}

/// The lists named in a form, each checked against the archive's lists.
fn chosen_lists<'a>(
    names: impl Iterator<Item = &'a str>,
    known: &[String],
) -> Result<Vec<ListName>, WebError> {
    let mut lists = Vec::new();
    for raw in names {
        let list = ListName::parse(raw).map_err(WebError::BadRequest)?;
        if !known.iter().any(|k| k == list.as_str()) {
            return Err(WebError::BadRequest(format!(
                "There is no list named {:?} in this archive.",
                list.as_str()
            )));
        }
        if !lists.contains(&list) {
            lists.push(list);
        }
    }
    if lists.is_empty() {
        return Err(WebError::BadRequest("Choose at least one list.".into()));
    }
    Ok(lists)
}

/// A saved search from a form: one line, bounded; empty means none.
fn saved_query(raw: Option<&str>) -> Result<Option<String>, WebError> {
    let q = raw.map(str::trim).unwrap_or_default();
    if q.is_empty() {
        return Ok(None);
    }
    if q.len() > MAX_SAVED_QUERY || q.chars().any(char::is_control) {
        return Err(WebError::BadRequest(format!(
            "The saved search must be one line of at most {MAX_SAVED_QUERY} characters."
        )));
    }
    Ok(Some(q.to_string()))
}

/// Runs `f` over a read-only connection of its own on the blocking pool: digests take tens
/// of milliseconds to build on a large archive, which must not stall an event loop.
async fn reading<T: Send + 'static>(
    digests: &web::Data<Digests>,
    f: impl FnOnce(&Store, &Digests) -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    let d = digests.clone();
    blocking(move || {
        let store = d.read_store()?;
        f(&store, &d)
    })
    .await
}

/// What a notice page offers: a button that posts, or a plain link.
enum Next<'a> {
    Nothing,
    Button(&'a str, &'a str),
    Link(&'a str, &'a str),
}

fn notice(title: &str, message: &str, next: Next<'_>) -> Result<String, WebError> {
    let (action, link) = match next {
        Next::Nothing => (None, None),
        Next::Button(url, label) => (Some(json!({"url": url, "label": label})), None),
        Next::Link(url, label) => (None, Some(json!({"url": url, "label": label}))),
    };
    Ok(render(
        "digest_notice.html",
        json!({"title": title, "message": message, "action": action, "link": link}),
    )?)
}

/// `GET /digest/`: the subscription form and the latest digests.
pub async fn subscribe_form(
    digests: web::Data<Digests>,
    req: HttpRequest,
) -> Result<HttpResponse, WebError> {
    let (lists, recent) = reading(&digests, |s, d| {
        Ok((s.list_names()?, weeks_with_mail(s, d, &[], FEED_WEEKS)?))
    })
    .await?;
    let (token, cookie) = match digests.service.as_deref() {
        Some(service) => {
            let (t, c) = form_token(&req, service)?;
            (Some(t), c)
        }
        None => (None, None),
    };
    let body = render(
        "digest_subscribe.html",
        json!({
            "title": "Weekly digests",
            "lists": lists,
            "form_token": token,
            "off": digests.off,
            "latest": recent.first().map(ToString::to_string),
            "recent": recent.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
    )?;
    Ok(with_cookie(private_page(body), cookie))
}

/// `POST /digest/subscribe`: records the request and mails the confirmation link. The answer
/// is the same whether or not the address was known, and whether or not a mail was sent.
pub async fn subscribe(
    digests: web::Data<Digests>,
    req: HttpRequest,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    let service = digests.service()?;
    let form = Form::parse(&body);
    check_form(&req, service, &form)?;
    let now = now();
    if !digests.per_client.allow(&client_key(&req), now) {
        return Err(WebError::TooManyRequests(
            "Too many subscription requests from your network. Try again in an hour.".into(),
        ));
    }
    let email = EmailAddress::parse(form.first("email").unwrap_or_default())
        .and_then(|e| digest::mailer::deliverable(&e).map(|()| e))
        .map_err(|e| WebError::BadRequest(format!("That email address is not usable: {e}.")))?;
    let names: Vec<String> = form.all("list").map(str::to_string).collect();
    let query = saved_query(form.first("query"))?;
    let d = digests.clone();
    blocking(move || {
        let service = d.service()?;
        let mut store = d.store()?;
        let lists = chosen_lists(names.iter().map(String::as_str), &store.list_names()?)?;
        let masked = email.masked();
        if !d.per_address.allow(&email.key(), now) {
            eprintln!("archivist serve: confirmation for {masked} not sent: address limit reached");
            return Ok(());
        }
        service
            .request_subscription(&mut store, &email, &lists, query.as_deref(), now)
            .map_err(|e| {
                eprintln!("archivist serve: subscription request for {masked}: {e:#}");
                WebError::Unavailable(
                    "The confirmation email could not be sent right now. Please try again later."
                        .into(),
                )
            })
    })
    .await?;
    Ok(private_page(notice(
        "Check your mailbox",
        "If this address can receive mail, a confirmation link is on its way. Nothing else is sent until the link is opened; it expires in a couple of days.",
        Next::Nothing,
    )?))
}

/// `GET /digest/confirm/{token}`: a page with a button; a link preview or a mail scanner
/// following the link confirms nothing.
pub async fn confirm_page(
    digests: web::Data<Digests>,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let service = digests.service()?;
    let token = path.into_inner();
    service
        .subscriptions()
        .check_confirm(&token, now())
        .map_err(|e| WebError::BadRequest(format!("This confirmation link is not valid: {e}.")))?;
    Ok(private_page(notice(
        "Confirm your subscription",
        "Press the button to start receiving the weekly digest.",
        Next::Button(&format!("/digest/confirm/{token}"), "Confirm subscription"),
    )?))
}

/// `POST /digest/confirm/{token}`: confirms.
pub async fn confirm(
    digests: web::Data<Digests>,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    digests.service()?;
    let token = path.into_inner();
    let d = digests.clone();
    let outcome = blocking(move || {
        let mut store = d.store()?;
        let service = d.service()?;
        let outcome = service.subscriptions().confirm(&mut store, &token, now())?;
        Ok(match outcome {
            ConfirmOutcome::Confirmed(s) => {
                Ok((s.lists.join(", "), service.subscriptions().links(&s)))
            }
            ConfirmOutcome::Gone => {
                Err("This subscription was cancelled or replaced by a newer request.".to_string())
            }
            ConfirmOutcome::Replaced => Err(REPLACED_REQUEST.to_string()),
            ConfirmOutcome::Invalid(e) => Err(format!("This confirmation link is not valid: {e}.")),
        })
    })
    .await?
    .map_err(WebError::BadRequest)?;
    let (lists, links) = outcome;
    let manage = links.manage.as_deref().map(local_path);
    Ok(private_page(notice(
        "Subscription confirmed",
        &format!("You will receive the weekly digest of {lists}. Every digest carries links to change lists, pause or unsubscribe."),
        manage.as_deref().map_or(Next::Nothing, |m| {
            Next::Link(m, "Manage your subscription")
        }),
    )?))
}

/// The path of one of our own absolute links, so forms post to the server that served them.
pub(super) fn local_path(url: &str) -> String {
    match url.find("/digest/") {
        Some(i) => url[i..].to_string(),
        None => url.to_string(),
    }
}

/// `GET /digest/unsubscribe/{token}`: asks; changes nothing (mail scanners follow GET links).
pub async fn unsubscribe_page(
    digests: web::Data<Digests>,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let service = digests.service()?;
    let token = path.into_inner();
    let checked = service
        .subscriptions()
        .check_unsubscribe(&token, now())
        .map_err(|e| WebError::BadRequest(format!("This unsubscribe link is not valid: {e}.")))?;
    // A link of an earlier subscription would change nothing: say so now, not after the
    // button.
    let current = reading(&digests, move |store, _| {
        Ok(store
            .subscriber(&checked.handle)?
            .is_some_and(|s| s.generation == checked.generation))
    })
    .await?;
    if !current {
        return Err(ended_subscription());
    }
    Ok(private_page(notice(
        "Unsubscribe",
        "Press the button to stop the weekly digest. Nothing changes until you do.",
        Next::Button(&format!("/digest/unsubscribe/{token}"), "Unsubscribe"),
    )?))
}

/// `POST /digest/unsubscribe/{token}`: RFC 8058 one-click unsubscribe, immediate and
/// idempotent; also the target of the confirmation page's button.
pub async fn unsubscribe(
    digests: web::Data<Digests>,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    digests.service()?;
    let token = path.into_inner();
    let d = digests.clone();
    let current = blocking(move || {
        let mut store = d.store()?;
        Ok(d.service()?
            .subscriptions()
            .unsubscribe(&mut store, &token, now())?)
    })
    .await?
    .map_err(|e| WebError::BadRequest(format!("This unsubscribe link is not valid: {e}.")))?;
    if !current {
        return Err(ended_subscription());
    }
    Ok(private_page(notice(
        "Unsubscribed",
        "You will not receive the weekly digest any more. You can subscribe again at any time.",
        Next::Nothing,
    )?))
}

/// A confirmation link whose request was asked over since (other lists or saved search).
const REPLACED_REQUEST: &str = "This address was asked for again, with other lists or another \
     saved search, after this link was sent, so it no longer applies: nothing was changed. \
     Only the link in the latest confirmation email applies.";

/// A validly signed link of a subscription that has ended since: the address unsubscribed
/// and subscribed again (a new subscription, with links of its own), or the subscriber left.
/// Nothing was changed, and the page says so instead of claiming success.
fn ended_subscription() -> WebError {
    WebError::NotFound {
        message: "This link belongs to an earlier subscription of this address, which has \
                  ended; nothing was changed. The latest digest you received carries the \
                  links of your current subscription."
            .into(),
        search: None,
    }
}

/// `GET /digest/manage/{token}`: lists, saved search, pause, unsubscribe.
pub async fn manage_page(
    digests: web::Data<Digests>,
    req: HttpRequest,
    path: web::Path<String>,
) -> Result<HttpResponse, WebError> {
    let service = digests.service()?;
    let token = path.into_inner();
    let t = token.clone();
    let (known, subscriber) = reading(&digests, move |store, d| {
        let found = d.service()?.subscriptions().manage(store, &t, now())?;
        Ok((store.list_names()?, found))
    })
    .await?;
    let subscriber = subscriber
        .map_err(|e| WebError::BadRequest(format!("This link is not valid any more: {e}.")))?
        .ok_or_else(ended_subscription)?;
    let (form_token, cookie) = form_token(&req, service)?;
    let lists: Vec<Value> = known
        .iter()
        .map(|l| json!({"name": l, "checked": subscriber.lists.contains(l)}))
        .collect();
    let body = render(
        "digest_manage.html",
        json!({
            "title": "Your weekly digest",
            "action": format!("/digest/manage/{token}"),
            "address": subscriber.email.masked(),
            "lists": lists,
            "saved_query": subscriber.query,
            "paused": subscriber.paused,
            "confirmed": subscriber.confirmed,
            "form_token": form_token,
        }),
    )?;
    Ok(with_cookie(private_page(body), cookie))
}

/// `POST /digest/manage/{token}`: `action` = `save` | `pause` | `resume` | `unsubscribe`.
pub async fn manage(
    digests: web::Data<Digests>,
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, WebError> {
    let service = digests.service()?;
    let form = Form::parse(&body);
    check_form(&req, service, &form)?;
    let token = path.into_inner();
    let action = form.first("action").unwrap_or("save").to_string();
    let change = match action.as_str() {
        "save" => Some((
            form.all("list").map(str::to_string).collect::<Vec<_>>(),
            saved_query(form.first("query"))?,
        )),
        "pause" | "resume" | "unsubscribe" => None,
        other => {
            return Err(WebError::BadRequest(format!(
                "Unknown action {:?}.",
                other.chars().take(40).collect::<String>()
            )))
        }
    };
    let d = digests.clone();
    let t = token.clone();
    let a = action.clone();
    let current = blocking(move || {
        let mut store = d.store()?;
        let subs = d.service()?.subscriptions();
        let now = now();
        Ok(match (a.as_str(), change) {
            ("save", Some((names, query))) => {
                let lists = chosen_lists(names.iter().map(String::as_str), &store.list_names()?)?;
                subs.update(&mut store, &t, &lists, query.as_deref(), now)?
            }
            ("pause", _) => subs.set_paused(&mut store, &t, true, now)?,
            ("resume", _) => subs.set_paused(&mut store, &t, false, now)?,
            _ => subs.unsubscribe_managed(&mut store, &t, now)?,
        })
    })
    .await?
    .map_err(|e| WebError::BadRequest(format!("This link is not valid any more: {e}.")))?;
    if !current {
        return Err(ended_subscription());
    }
    let (title, message) = match action.as_str() {
        "save" => ("Saved", "Your digest settings are saved."),
        "pause" => (
            "Paused",
            "No digests are sent until you resume. Your settings are kept.",
        ),
        "resume" => ("Resumed", "The weekly digest will be sent again."),
        _ => (
            "Unsubscribed",
            "You will not receive the weekly digest any more.",
        ),
    };
    let back = (action != "unsubscribe").then(|| format!("/digest/manage/{token}"));
    Ok(private_page(notice(
        title,
        message,
        back.as_deref()
            .map_or(Next::Nothing, |b| Next::Link(b, "Back to your settings")),
    )?))
}

/// `?lists=a,b` on the public digest pages.
#[derive(Debug, Deserialize)]
pub struct ListsQuery {
    lists: Option<String>,
}

/// `?lists=a,b&q=...` on a week's digest page.
#[derive(Debug, Deserialize)]
pub struct WeekQuery {
    lists: Option<String>,
    /// A saved search the digest is narrowed to.
    q: Option<String>,
}

fn lists_param(raw: Option<&str>, known: &[String]) -> Result<Vec<ListName>, WebError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(Vec::new()),
        Some(s) => chosen_lists(s.split(',').map(str::trim), known),
    }
}

/// The latest `n` weeks holding mail of `lists` (all lists when empty), newest first,
/// ignoring dates more than a day ahead (spam and broken clocks date mail decades into the
/// future). Weeks without mail are passed over: a list quiet for months still shows its last
/// digests.
fn weeks_with_mail(
    store: &Store,
    digests: &Digests,
    lists: &[ListName],
    n: u32,
) -> Result<Vec<IsoWeek>, WebError> {
    let zone = digests.build.zone;
    let mut weeks = Vec::new();
    let mut limit = now() + 86_400;
    while weeks.len() < n as usize {
        let Some(latest) = store.latest_date(limit, lists)? else {
            break;
        };
        let week = IsoWeek::containing(latest, zone);
        weeks.push(week);
        limit = week.start(zone) - 1;
    }
    Ok(weeks)
}

fn build(
    store: &Store,
    digests: &Digests,
    week: IsoWeek,
    lists: &[ListName],
) -> Result<Digest, WebError> {
    Ok(digest::build(store, week, lists, &digests.build)?)
}

fn lists_suffix(lists: &[ListName]) -> String {
    if lists.is_empty() {
        return String::new();
    }
    let names: Vec<&str> = lists.iter().map(ListName::as_str).collect();
    format!("?lists={}", query_value(&names.join(",")))
}

fn thread_json(t: &digest::DigestThread) -> Value {
    json!({
        "path": id_path(&t.root_message_id),
        "subject": t.subject,
        "messages": t.messages,
        "messages_total": t.messages_total,
        "new": t.new,
        "participants": t.participants,
        "lists": t.lists,
        "excerpt": t.excerpt,
        "excerpt_author": t.excerpt_author,
    })
}

/// `GET /digest/{week}?lists=a,b[&q=saved search]`: the digest of a week, as subscribers
/// received it (narrowed to their saved search, when their email's link carries one).
pub async fn week(
    state: web::Data<State>,
    digests: web::Data<Digests>,
    req: HttpRequest,
    path: web::Path<String>,
    query: web::Query<WeekQuery>,
) -> Result<HttpResponse, WebError> {
    let raw = path.into_inner();
    let week = IsoWeek::parse(&raw).map_err(|e| {
        WebError::BadRequest(format!(
            "{:?} is not an ISO week such as 2023-W20: {e}",
            raw.chars().take(40).collect::<String>()
        ))
    })?;
    let WeekQuery {
        lists: raw_lists,
        q,
    } = query.into_inner();
    let saved = saved_query(q.as_deref())?;
    // Built like the archive's other pages: on a blocking thread under the server's limit of
    // builders, and kept in the response cache (a week's digest groups every thread of the
    // week, the most expensive page the site has).
    let scope = if saved.is_some() {
        Scope::Search
    } else {
        Scope::Archive
    };
    let d = web::Data::clone(&digests);
    respond(&state, &req, scope, move |state, s| {
        let lists = lists_param(raw_lists.as_deref(), &s.list_names()?)?;
        let mut digest = build(s, &d, week, &lists)?;
        if let Some(q) = &saved {
            let searcher = state.searcher()?.ok_or_else(|| {
                WebError::Unavailable("The search index has not been built yet.".into())
            })?;
            let keep = digest::matching_threads(s, &searcher, q, &digest, d.build.zone)?;
            digest = digest.filtered(&keep, q);
        }
        let subject = d.renderer.digest(&digest, &Links::default())?.subject;
        let mut suffix = lists_suffix(&lists);
        // The feed of digests is the lists' (it takes no saved search).
        let feed = format!("/digest/atom{suffix}");
        if let Some(q) = &saved {
            suffix.push(if suffix.is_empty() { '?' } else { '&' });
            suffix.push_str("q=");
            suffix.push_str(&query_value(q));
        }
        let topics: Vec<Value> = digest
            .topics
            .iter()
            .map(|t| {
                json!({
                    "label": t.label,
                    "terms": t.terms,
                    "continued": t.continued,
                    "messages": t.threads.iter().map(|x| x.messages).sum::<u32>(),
                    "threads": t.threads.iter().map(thread_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        let body = render(
            "digest.html",
            json!({
                "title": subject,
                "week": week.to_string(),
                "monday": week.monday(),
                "lists": digest.lists,
                "saved_query": saved,
                "totals": digest.totals,
                "empty": digest.is_empty(),
                "quiet": digest.is_quiet(),
                "topics": topics,
                "other_threads": digest
                    .other_threads
                    .iter()
                    .take(WEB_OTHER_THREADS)
                    .map(thread_json)
                    .collect::<Vec<_>>(),
                "other_more": digest.other_threads.len().saturating_sub(WEB_OTHER_THREADS),
                "prev": neighbour(week.prev()).map(|w| format!("/digest/{w}{suffix}")),
                "next": neighbour(week.next()).map(|w| format!("/digest/{w}{suffix}")),
                "feed": feed,
            }),
        )?;
        Ok(Rendered::new(
            "text/html; charset=utf-8",
            body.into_bytes(),
            None,
        ))
    })
    .await
}

/// A week next to a digest page's, if a page can be asked for it: `/digest/YYYY-Www` takes
/// years 0000 to 9999, and beyond them the neighbour is no page (the week numbers wrapped to
/// `-001-W52` and `-9999-W01`).
fn neighbour(week: IsoWeek) -> Option<IsoWeek> {
    (0..=9999).contains(&week.year()).then_some(week)
}

/// `GET /digest/atom?lists=a,b`: the digests of the archive's latest weeks.
pub async fn feed(
    state: web::Data<State>,
    digests: web::Data<Digests>,
    req: HttpRequest,
    query: web::Query<ListsQuery>,
) -> Result<HttpResponse, WebError> {
    let raw_lists = query.into_inner().lists;
    let origin = super::feeds::Origin::of(&state, &req);
    let d = web::Data::clone(&digests);
    respond(&state, &req, Scope::Archive, move |_, s| {
        let lists = lists_param(raw_lists.as_deref(), &s.list_names()?)?;
        let mut weeks = Vec::new();
        for week in weeks_with_mail(s, &d, &lists, FEED_WEEKS)? {
            weeks.push(build(s, &d, week, &lists)?);
        }
        let suffix = lists_suffix(&lists);
        let mut entries = Vec::new();
        for digest in weeks.iter().filter(|d| !d.is_empty()) {
            let week = digest.week;
            let subject = d.renderer.digest(digest, &Links::default())?.subject;
            let labels: Vec<&str> = digest.topics.iter().map(|t| t.label.as_str()).collect();
            let summary = if labels.is_empty() {
                format!("{} threads", digest.totals.threads)
            } else {
                format!("Topics: {}", labels.join("; "))
            };
            entries.push(super::feeds::Entry {
                path: format!("/digest/{week}{suffix}"),
                title: subject,
                author: "Archivist".into(),
                updated: iso_date(Some(week.end(d.build.zone))),
                summary: super::feeds::Summary::Text(summary),
            });
        }
        let latest = weeks
            .iter()
            .filter(|w| !w.is_empty())
            .map(|w| w.week.end(d.build.zone))
            .max();
        Ok(super::feeds::feed(
            &origin,
            "Weekly digests",
            &entries,
            latest,
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_keep_repeated_names_and_decode() {
        let f = Form::parse(
            b"list=dev&list=operators&email=a%40b.example&query=tag%3Anova+OR+s%3Aplacement",
        );
        assert_eq!(f.all("list").collect::<Vec<_>>(), ["dev", "operators"]);
        assert_eq!(f.first("email"), Some("a@b.example"));
        assert_eq!(f.first("query"), Some("tag:nova OR s:placement"));
        assert_eq!(f.first("missing"), None);
    }

    #[test]
    fn lists_and_queries_are_checked() {
        let known = vec!["dev".to_string(), "operators".to_string()];
        let ok = chosen_lists(["dev", "dev", "operators"].into_iter(), &known).expect("lists");
        assert_eq!(ok.len(), 2);
        for bad in [&[][..], &["sigs"][..], &["dev\r\nBcc: x@y"][..]] {
            assert!(matches!(
                chosen_lists(bad.iter().copied(), &known),
                Err(WebError::BadRequest(_))
            ));
        }
        assert_eq!(saved_query(Some("  ")).expect("empty"), None);
        assert!(saved_query(Some("tag:nova\r\nBcc: x@y")).is_err());
        assert!(saved_query(Some(&"x".repeat(1001))).is_err());
    }
}
