//! The web archive and JSON API: the only module that uses `actix_web`. Read-only: it opens
//! the archive read-only and only ever reads the search index, so it serves while an import
//! runs in another process and sees new messages as the importer commits them.

mod api;
mod article;
mod cache;
mod digest;
mod error;
mod feeds;
mod limit;
mod obfuscate;
mod pages;
mod pool;
mod render;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_digest;
mod text;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use actix_web::http::header;
use actix_web::{middleware, web, App, HttpRequest, HttpResponse, HttpServer};
use anyhow::{Context, Result};

use crate::config::ServerConfig;
use crate::index::Searcher;
use crate::message::MessageId;
use crate::store::Store;
use cache::{Cache, Freshness, Rendered, Scope};
pub use digest::Digests;
pub use error::WebError;

/// The Content-Security-Policy of every response: no script at all, styles and images only
/// from this server, no framing, forms only to this server.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// Responses built at once per CPU, each on a blocking thread with its own read-only
/// connection. Building is mostly CPU work (decompressing, rendering, searching) with some
/// waiting on the disk, so two per CPU keep the CPUs busy; more would only take time from
/// the event loops answering from the cache, and grow memory (a thread, a connection and
/// a malloc arena each). Further requests wait, as futures, for a permit.
const BUILDERS_PER_CPU: usize = 2;

/// What every request handler shares: one per server, not per worker, so the connection
/// pool, the searcher and the response cache are shared by all workers.
pub struct State {
    data_dir: PathBuf,
    pool: pool::Pool,
    builders: tokio::sync::Semaphore,
    searcher: Mutex<Option<Arc<Searcher>>>,
    cache: Cache,
    freshness: Freshness,
    /// Show addresses as `user at example.org` (pages, API, feeds).
    obfuscate: bool,
    /// Build absolute links from a proxy's `Forwarded`/`X-Forwarded-*` headers.
    trust_proxy_headers: bool,
}

impl State {
    /// State over a data directory with the default server settings. Nothing is opened
    /// until a request needs it, so the server starts before the first import and picks the
    /// archive up when it appears.
    pub fn new(data_dir: &Path) -> State {
        State::with_config(data_dir, &ServerConfig::default())
    }

    /// State with the `[server]` settings.
    pub fn with_config(data_dir: &Path, config: &ServerConfig) -> State {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        State {
            data_dir: data_dir.to_path_buf(),
            pool: pool::Pool::new(data_dir, cpus * BUILDERS_PER_CPU),
            builders: tokio::sync::Semaphore::new(cpus * BUILDERS_PER_CPU),
            searcher: Mutex::new(None),
            cache: Cache::new(config.cache_mb.saturating_mul(1 << 20)),
            freshness: Freshness::new(&crate::indexer::index_dir(data_dir)),
            obfuscate: config.obfuscate_addresses,
            trust_proxy_headers: config.trust_proxy_headers,
        }
    }

    /// The searcher, opened on first use (an index may appear after the server started).
    fn searcher(&self) -> Result<Option<Arc<Searcher>>, WebError> {
        let mut guard = self
            .searcher
            .lock()
            .map_err(|_| anyhow::anyhow!("searcher poisoned"))?;
        if guard.is_none() {
            let dir = crate::indexer::index_dir(&self.data_dir);
            if !crate::index::schema_dir(&dir).exists() {
                return Ok(None);
            }
            // An index that cannot be opened (an older schema, damage) is the operator's to
            // fix: say so with a 503 rather than a 500, and keep the details in the log.
            let searcher = Searcher::open(&dir).map_err(|e| {
                eprintln!("archivist serve: cannot open the search index: {e:#}");
                WebError::Unavailable(
                    "Search is unavailable: the search index cannot be opened (it may have been \
                     built by an older version). Rebuilding it with `archivist reindex` fixes this."
                        .into(),
                )
            })?;
            *guard = Some(Arc::new(searcher));
        }
        Ok(guard.clone())
    }
}

/// Runs `f` with a pooled read-only connection on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &web::Data<State>,
    f: impl FnOnce(&State, &Store) -> Result<T, WebError> + Send + 'static,
) -> Result<T, WebError> {
    let _permit = state
        .builders
        .acquire()
        .await
        .map_err(|e| WebError::Internal(anyhow::anyhow!("the builder limit is closed: {e}")))?;
    let state = web::Data::clone(state);
    web::block(move || {
        let store = state.pool.get()?;
        store.snapshot(|s| f(&state, s))
    })
    .await
    .map_err(|e| WebError::Internal(anyhow::anyhow!("a blocking task failed: {e}")))?
}

/// How much work building a page is, which decides where it is built. On the event loop a
/// page costs only its work; handed to a blocking thread and back it costs thread wake-ups
/// too, and on the two-CPU virtual machine of BENCHMARKS.md the CPUs then sat idle 15% of
/// the time: a 100-message thread page served 1,600 requests/s that way, 2,150 on the loop.
/// But while a loop builds, every other connection it serves waits: under a flood of
/// thread pages a message page's p50 goes from 0.2 ms to 14 ms. So the loop builds what is
/// cheap (one message) or known to be bounded (a thread of at most
/// [`INLINE_THREAD_MESSAGES`]); searches, whose cost anyone can raise with a broad query,
/// and pages that grow with the archive go to the blocking threads, keeping the rest of the
/// site quick under a search flood (a message page's p50 stays 0.2 ms, where building
/// searches on the loop made it 22 ms).
pub(crate) enum Cost {
    /// Bounded by one message (a message page, its raw bytes): built on the event loop.
    OneMessage,
    /// Searches, lists, feeds: built on a blocking thread.
    Unbounded,
    /// The thread holding this message: built on the event loop when it has at most
    /// [`INLINE_THREAD_MESSAGES`] (a count, asked there first), else on a blocking thread.
    Thread(MessageId),
}

/// Thread pages built on the event loop have at most this many messages: about 5 ms of
/// work on the machine of BENCHMARKS.md (100 messages take 0.8 ms).
const INLINE_THREAD_MESSAGES: u64 = 500;

/// Answers a GET from the response cache while the archive (and, for searches, the
/// index) is unchanged; otherwise builds the response with `build` (where, see [`Cost`])
/// and keeps it. Either way `If-None-Match` and `If-Modified-Since` are honoured.
pub(crate) async fn respond<E: From<WebError>>(
    state: &web::Data<State>,
    req: &HttpRequest,
    scope: Scope,
    build: impl FnOnce(&State, &Store) -> Result<Rendered, WebError> + Send + 'static,
) -> Result<HttpResponse, E> {
    respond_with(state, req, scope, Cost::Unbounded, build).await
}

/// [`respond`] for a page of the given [`Cost`].
pub(crate) async fn respond_with<E: From<WebError>>(
    state: &web::Data<State>,
    req: &HttpRequest,
    scope: Scope,
    cost: Cost,
    build: impl FnOnce(&State, &Store) -> Result<Rendered, WebError> + Send + 'static,
) -> Result<HttpResponse, E> {
    let searcher = match scope {
        Scope::Search => state.searcher()?,
        Scope::Archive => None,
    };
    let archive = state.data_dir.join("archive.sqlite3");
    let stamp = state.freshness.stamp(&archive, scope, searcher.as_deref());
    // The origin is part of the key: feeds carry absolute links.
    let key = format!("{}{}", origin(state, req), req.uri());
    if let Some(stamp) = stamp {
        if let Some(hit) = state.cache.get(&key, scope, stamp) {
            return Ok(conditional(req, &hit, Some(stamp.changed_at)));
        }
    }
    let inline = match cost {
        Cost::OneMessage => true,
        Cost::Unbounded => false,
        Cost::Thread(id) => contained(|| {
            state
                .pool
                .with_local(|store| Ok(store.thread_size_of(&id)? <= INLINE_THREAD_MESSAGES))
        })?,
    };
    let rendered = Arc::new(if inline {
        contained(|| {
            state
                .pool
                .with_local(|store| store.snapshot(|s| build(state, s)))
        })?
    } else {
        blocking(state, build).await?
    });
    if let Some(stamp) = stamp {
        state.cache.put(key, scope, stamp, Arc::clone(&rendered));
    }
    Ok(conditional(req, &rendered, stamp.map(|s| s.changed_at)))
}

/// Runs work on the event loop as a blocking thread would: a panic (a bug) becomes an error
/// answer for this request, as [`web::block`] makes it, instead of taking down the worker
/// and every connection it serves.
fn contained<T>(work: impl FnOnce() -> Result<T, WebError>) -> Result<T, WebError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|_| {
        Err(WebError::Internal(anyhow::anyhow!(
            "building the page panicked"
        )))
    })
}

/// `scheme://host` of a request, for the absolute links of feeds: the `Host` header (the
/// scheme is `http`: the server speaks no TLS itself), or, with `server.trust_proxy_headers`,
/// what a reverse proxy's `Forwarded`/`X-Forwarded-*` headers say. Only `http` or `https` is
/// taken as the scheme, and only a host made of what a host name and port can hold (lowercased);
/// anything else falls back to the server's own host, so no request can make a page link to
/// a site of its choosing.
pub(crate) fn origin(state: &State, req: &HttpRequest) -> String {
    let (scheme, host) = if state.trust_proxy_headers {
        let info = req.connection_info();
        let scheme = if info.scheme().eq_ignore_ascii_case("https") {
            "https"
        } else {
            "http"
        };
        (scheme, info.host().to_string())
    } else {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        ("http", host)
    };
    let plausible = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    let host = if plausible {
        host.to_ascii_lowercase()
    } else {
        req.app_config().host().to_string()
    };
    format!("{scheme}://{host}")
}

/// A route answering GET and HEAD (actix sends a HEAD answer's headers without its body), so
/// link checkers and feed readers that probe with HEAD find every page.
fn read() -> actix_web::Route {
    web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
}

/// A path taking POST (a digest form), whose other methods are answered with 405 and
/// `allow`, the methods its routes take.
fn form(path: &str, allow: &'static str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(move |req: HttpRequest| async move {
        Err::<HttpResponse, _>(WebError::MethodNotAllowed {
            message: format!("{} is not taken here.", req.method()),
            allow,
        })
    }))
}

/// Registers every route; shared by the server and the tests (which give it a `State`).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(query_error))
        .route("/", read().to(pages::home))
        .route("/static/style.css", read().to(style))
        .route("/help", read().to(pages::help))
        .route("/search", read().to(pages::search))
        .route("/search/atom", read().to(feeds::search))
        .route("/m/{id}", read().to(pages::message))
        .route("/m/{id}/raw", read().to(pages::raw))
        .route("/t/{id}/atom", read().to(feeds::thread))
        .route("/t/{id}", read().to(pages::thread))
        .route("/digest", read().to(digest_redirect))
        .route("/digest/", read().to(digest::subscribe_form))
        .service(form("/digest/subscribe", "POST").route(web::post().to(digest::subscribe)))
        .route("/digest/atom", read().to(digest::feed))
        .service(
            form("/digest/confirm/{token}", "GET, HEAD, POST")
                .route(read().to(digest::confirm_page))
                .route(web::post().to(digest::confirm)),
        )
        .service(
            form("/digest/unsubscribe/{token}", "GET, HEAD, POST")
                .route(read().to(digest::unsubscribe_page))
                .route(web::post().to(digest::unsubscribe)),
        )
        .service(
            form("/digest/manage/{token}", "GET, HEAD, POST")
                .route(read().to(digest::manage_page))
                .route(web::post().to(digest::manage)),
        )
        .route("/digest/{week}", read().to(digest::week))
        .service(
            web::scope("/api/v1")
                .route("/openapi.json", read().to(api::openapi))
                .route("/lists", read().to(api::lists))
                .route("/lists/{list}/threads", read().to(api::list_threads))
                .route("/threads/{id}", read().to(api::thread))
                .route("/messages/{id}", read().to(api::message))
                .route("/search", read().to(api::search))
                .default_service(web::to(api::not_found)),
        )
        .route("/{list}/atom", read().to(feeds::list))
        .route("/{list}/", read().to(pages::list))
        .route("/{list}", read().to(pages::list_redirect))
        .route("/{list}/{year}/{month}/", read().to(pages::list_month))
        .default_service(web::to(pages::not_found));
}

/// A query string the route's parameters cannot be read from (a parameter given twice, say):
/// a 400 saying why, as JSON under `/api/` and as a page elsewhere, like every other error.
fn query_error(err: actix_web::error::QueryPayloadError, req: &HttpRequest) -> actix_web::Error {
    let detail = match &err {
        actix_web::error::QueryPayloadError::Deserialize(e) => e.to_string(),
        other => other.to_string(),
    };
    let err = WebError::BadRequest(format!("cannot read the query string: {detail}"));
    if req.path().starts_with("/api/") {
        error::ApiError(err).into()
    } else {
        err.into()
    }
}

/// The headers every response carries.
pub fn security_headers() -> middleware::DefaultHeaders {
    middleware::DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CSP))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_FRAME_OPTIONS, "DENY"))
}

/// Serves the archive in `data_dir` on `bind` until the process is stopped; `digests` serves
/// the digest pages and subscriptions.
pub fn serve(data_dir: &Path, bind: &str, config: &ServerConfig, digests: Digests) -> Result<()> {
    let state = web::Data::new(State::with_config(data_dir, config));
    let bind = bind.to_string();
    let digests = web::Data::new(digests);
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::clone(&state))
                .app_data(digests.clone())
                .wrap(middleware::Compress::default())
                .wrap(security_headers())
                .configure(configure)
        })
        .bind(&bind)
        .with_context(|| format!("cannot listen on {bind}"))?;
        eprintln!("archivist: serving on http://{bind}/");
        server.run().await.context("the web server failed")
    })
}

async fn digest_redirect() -> HttpResponse {
    HttpResponse::MovedPermanently()
        .insert_header((header::LOCATION, "/digest/"))
        .finish()
}

async fn style(req: HttpRequest) -> HttpResponse {
    cached(
        &req,
        "text/css; charset=utf-8",
        render::STYLE.as_bytes().to_vec(),
    )
}

/// A 200 response with an ETag over its body; a matching `If-None-Match` gets a 304.
pub(crate) fn cached(req: &HttpRequest, content_type: &'static str, body: Vec<u8>) -> HttpResponse {
    conditional(req, &Rendered::new(content_type, body, None), None)
}

/// The response for a rendered body: 304 when the client's copy is current (by ETag, else
/// by date: `If-Modified-Since` counts only without `If-None-Match`, RFC 9110 13.1.3), else
/// 200 with `ETag` and, where the page has a date, `Last-Modified`: the newest content's date,
/// but never before `changed_at` (when the archive last changed, see
/// [`cache::Stamp::changed_at`]), since an import can change a page without adding anything
/// newer to it. A date in the current second (or later: a mail's date in the future) is no
/// `Last-Modified`: HTTP dates have whole seconds, so a second import within the same second
/// would keep the date, and a client revalidating by date alone would be told its stale copy
/// is current (RFC 9110 8.8.2.2 advises against such dates for this reason).
fn conditional(req: &HttpRequest, r: &Rendered, changed_at: Option<i64>) -> HttpResponse {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let modified = match (r.last_modified, changed_at) {
        (Some(content), Some(changed)) => Some(content.max(changed)),
        (content, _) => content,
    }
    .filter(|&m| m < now);
    let last_modified = modified.and_then(http_date);
    let headers = req.headers();
    let not_modified = match headers.get(header::IF_NONE_MATCH) {
        Some(v) => v
            .to_str()
            .is_ok_and(|v| v.split(',').any(|t| weak_match(t.trim(), &r.etag))),
        None => match (modified, headers.get(header::IF_MODIFIED_SINCE)) {
            (Some(modified), Some(since)) => since
                .to_str()
                .ok()
                .and_then(|s| s.parse::<header::HttpDate>().ok())
                .and_then(|since| {
                    std::time::SystemTime::from(since)
                        .duration_since(std::time::UNIX_EPOCH)
                        .ok()
                })
                .is_some_and(|since| modified <= since.as_secs() as i64),
            _ => false,
        },
    };
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, r.etag.as_str()))
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"));
    if let Some(date) = last_modified {
        response.insert_header((header::LAST_MODIFIED, date));
    }
    if not_modified {
        // A 304 carries what the 200 would have said about caching (RFC 9110 15.4.5),
        // `Vary` included: the compression layer adds that only to bodies it compresses.
        if r.content_type != "application/gzip" {
            response.insert_header((header::VARY, "Accept-Encoding"));
        }
        return response.finish();
    }
    response.insert_header((header::CONTENT_TYPE, r.content_type));
    if let Some(disposition) = r.disposition {
        response.insert_header((header::CONTENT_DISPOSITION, disposition));
    }
    if r.content_type == "application/gzip" {
        // Already compressed: `identity` keeps the compression middleware from gzipping it
        // a second time.
        response.insert_header((header::CONTENT_ENCODING, "identity"));
    }
    response.body(r.body.clone())
}

/// `If-None-Match` compares entity tags weakly (RFC 9110 13.1.2): a tag a proxy or the
/// compression layer marked weak (`W/"…"`) still matches.
fn weak_match(theirs: &str, ours: &str) -> bool {
    fn strip(t: &str) -> &str {
        t.strip_prefix("W/").unwrap_or(t)
    }
    theirs == "*" || strip(theirs) == strip(ours)
}

/// Unix seconds as an HTTP date; dates before 1970 have none.
fn http_date(ts: i64) -> Option<header::HttpDate> {
    let secs = u64::try_from(ts).ok()?;
    Some(header::HttpDate::from(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs),
    ))
}
