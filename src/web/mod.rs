//! The web archive and JSON API: the only module that uses `actix_web`. Read-only: it opens
//! the archive read-only and only ever reads the search index, so it serves while an import
//! runs in another process and sees new messages as the importer commits them.

mod api;
mod digest;
mod error;
mod feeds;
mod limit;
mod pages;
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

use crate::index::Searcher;
use crate::store::Store;
pub use digest::Digests;
pub use error::WebError;

/// The Content-Security-Policy of every response: no script at all, styles and images only
/// from this server, no framing, forms only to this server.
pub const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// What every request handler shares.
pub struct State {
    data_dir: PathBuf,
    store: Mutex<Option<Store>>,
    searcher: Mutex<Option<Arc<Searcher>>>,
}

impl State {
    /// State over a data directory. Nothing is opened until a request needs it, so the server
    /// starts before the first import and picks the archive up when it appears.
    pub fn new(data_dir: &Path) -> State {
        State {
            data_dir: data_dir.to_path_buf(),
            store: Mutex::new(None),
            searcher: Mutex::new(None),
        }
    }

    /// Runs `f` with the read-only archive connection.
    fn with_store<T>(&self, f: impl FnOnce(&Store) -> Result<T>) -> Result<T, WebError> {
        let mut guard = self
            .store
            .lock()
            .map_err(|_| anyhow::anyhow!("archive connection poisoned"))?;
        if guard.is_none() {
            let path = self.data_dir.join("archive.sqlite3");
            if !path.exists() {
                return Err(WebError::NotFound {
                    message: "The archive is empty: nothing has been imported yet.".into(),
                    search: None,
                });
            }
            *guard = Some(Store::open_read_only(&path)?);
        }
        match guard.as_ref() {
            Some(store) => Ok(f(store)?),
            None => Err(anyhow::anyhow!("archive connection missing").into()),
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
            if !dir.join("v1").exists() {
                return Ok(None);
            }
            *guard = Some(Arc::new(Searcher::open(&dir)?));
        }
        Ok(guard.clone())
    }
}

/// Registers every route; shared by the server and the tests.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(pages::home))
        .route("/static/style.css", web::get().to(style))
        .route("/help", web::get().to(pages::help))
        .route("/search", web::get().to(pages::search))
        .route("/search/atom", web::get().to(feeds::search))
        .route("/m/{id}", web::get().to(pages::message))
        .route("/m/{id}/raw", web::get().to(pages::raw))
        .route("/t/{id}/atom", web::get().to(feeds::thread))
        .route("/t/{id}", web::get().to(pages::thread))
        .route("/digest", web::get().to(digest_redirect))
        .route("/digest/", web::get().to(digest::subscribe_form))
        .route("/digest/subscribe", web::post().to(digest::subscribe))
        .route("/digest/atom", web::get().to(digest::feed))
        .route(
            "/digest/confirm/{token}",
            web::get().to(digest::confirm_page),
        )
        .route("/digest/confirm/{token}", web::post().to(digest::confirm))
        .route(
            "/digest/unsubscribe/{token}",
            web::get().to(digest::unsubscribe_page),
        )
        .route(
            "/digest/unsubscribe/{token}",
            web::post().to(digest::unsubscribe),
        )
        .route("/digest/manage/{token}", web::get().to(digest::manage_page))
        .route("/digest/manage/{token}", web::post().to(digest::manage))
        .route("/digest/{week}", web::get().to(digest::week))
        .service(
            web::scope("/api/v1")
                .route("/openapi.json", web::get().to(api::openapi))
                .route("/lists", web::get().to(api::lists))
                .route("/lists/{list}/threads", web::get().to(api::list_threads))
                .route("/threads/{id}", web::get().to(api::thread))
                .route("/messages/{id}", web::get().to(api::message))
                .route("/search", web::get().to(api::search)),
        )
        .route("/{list}/atom", web::get().to(feeds::list))
        .route("/{list}/", web::get().to(pages::list))
        .route("/{list}", web::get().to(pages::list_redirect))
        .route("/{list}/{year}/{month}/", web::get().to(pages::list_month))
        .default_service(web::to(pages::not_found));
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
pub fn serve(data_dir: &Path, bind: &str, digests: Digests) -> Result<()> {
    let data_dir = data_dir.to_path_buf();
    let bind = bind.to_string();
    let digests = web::Data::new(digests);
    actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(move || {
            // One archive connection and searcher per worker thread: no lock contention.
            App::new()
                .app_data(web::Data::new(State::new(&data_dir)))
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
pub(crate) fn cached(req: &HttpRequest, content_type: &str, body: Vec<u8>) -> HttpResponse {
    let etag = format!("\"{}\"", &blake3::hash(&body).to_hex()[..20]);
    let matches = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return HttpResponse::NotModified()
            .insert_header((header::ETAG, etag))
            .finish();
    }
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, "public, max-age=60"))
        .body(body)
}
