//! Handler tests of the digest pages: the whole subscription flow through the test service
//! (form, anti-forgery token, confirmation email, confirm, manage, one-click unsubscribe), the
//! refusals (no token, bad address, header injection, unknown list, bad week, rate limit) and
//! the public digest page and feed.

use std::path::Path;
use std::sync::Arc;

use actix_web::http::{header, StatusCode};
use actix_web::{test, web, App};

use super::tests::{archive, import};
use super::{configure, security_headers, Digests, State};
use crate::config::{Config, Secret, TransportKind};
use crate::digest::service::{build_options, Service};
use crate::store::Store;

const KEY: &str = "a test key that is at least thirty-two bytes long";

fn config(data: &Path) -> Config {
    let mut config = Config {
        data_dir: data.to_path_buf(),
        ..Config::default()
    };
    config.digest.transport = TransportKind::Directory;
    config.digest.base_url = "https://archive.example".into();
    config.digest.token_key = Secret::new(Some(KEY.into()));
    config
}

fn digests(config: &Config, enabled: bool) -> Digests {
    let service = if enabled {
        Ok(Arc::new(Service::new(config).expect("service")))
    } else {
        Err("no key".to_string())
    };
    Digests::new(
        config.data_dir.clone(),
        service,
        &config.digest.base_url,
        build_options(config),
    )
    .expect("digests")
}

macro_rules! app {
    ($config:expr, $enabled:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new(State::new(&$config.data_dir)))
                .app_data(web::Data::new(digests(&$config, $enabled)))
                .wrap(security_headers())
                .configure(configure),
        )
        .await
    };
}

/// Sends a request: (status, body, headers).
macro_rules! call {
    ($app:expr, $req:expr) => {{
        let resp = test::call_service(&$app, $req.to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = test::read_body(resp).await;
        (status, String::from_utf8_lossy(&body).into_owned(), headers)
    }};
}

fn form_post(uri: &str, cookie: Option<&str>, body: &str) -> test::TestRequest {
    let mut req = test::TestRequest::post()
        .uri(uri)
        .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
        .set_payload(body.to_string());
    if let Some(c) = cookie {
        req = req.insert_header((header::COOKIE, c.to_string()));
    }
    req
}

/// The value of `name="form_token"` in a page.
fn form_token(page: &str) -> String {
    let marker = "name=\"form_token\" value=\"";
    let start = page.find(marker).expect("form token in page") + marker.len();
    page[start..].split('"').next().expect("token").to_string()
}

/// `name=value` of the Set-Cookie header.
fn cookie(headers: &header::HeaderMap) -> String {
    let set = headers
        .get(header::SET_COOKIE)
        .expect("a cookie")
        .to_str()
        .expect("ascii");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    set.split(';').next().expect("pair").to_string()
}

/// The .eml files the directory transport wrote, decoded to their text.
fn outbox(config: &Config) -> Vec<String> {
    let dir = config.data_dir.join(&config.digest.directory);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .map(|f| {
            let raw = std::fs::read(f).expect("read eml");
            crate::ingest::parse::parse(&raw, None, false)
                .expect("parse eml")
                .body
        })
        .collect()
}

/// The path of the first `https://archive.example/digest/<what>/…` link in `text`.
fn link(text: &str, what: &str) -> String {
    let prefix = format!("https://archive.example/digest/{what}/");
    let start = text
        .find(&prefix)
        .unwrap_or_else(|| panic!("no {prefix} in {text}"));
    let token = text[start + prefix.len()..]
        .split(|c: char| c.is_whitespace() || c == '>' || c == '"')
        .next()
        .expect("token");
    format!("/digest/{what}/{token}")
}

fn subscriber_state(config: &Config) -> Vec<(bool, bool, bool, Vec<String>)> {
    let store = Store::open(&config.data_dir.join("archive.sqlite3")).expect("store");
    store
        .all_subscribers()
        .expect("subscribers")
        .into_iter()
        .map(|s| (s.confirmed, s.paused, s.unsubscribed, s.lists))
        .collect()
}

#[actix_web::test]
async fn subscribe_confirm_manage_and_unsubscribe_through_the_pages() {
    let dir = archive();
    let config = config(&dir.path().join("data"));
    let app = app!(config, true);

    // The form sets the anti-forgery cookie and never lets a cache keep the page.
    let (status, page, headers) = call!(app, test::TestRequest::get().uri("/digest/"));
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(headers.get(header::CACHE_CONTROL).expect("cc"), "no-store");
    assert!(page.contains("name=\"list\" value=\"dev\""), "{page}");
    let cookie = cookie(&headers);
    let token = form_token(&page);

    // Refusals: no cookie, a token for another browser, a bad address, header injection,
    // an unknown list, no list.
    let good = format!("form_token={token}&email=ann%40example.org&list=dev&query=tag%3Anova");
    let other = "archivist_form=0123456789abcdef0123456789abcdef";
    let refusals: Vec<(Option<&str>, String, StatusCode, &str)> = vec![
        (None, good.clone(), StatusCode::FORBIDDEN, "expired"),
        (Some(other), good.clone(), StatusCode::FORBIDDEN, "expired"),
        (
            Some(&cookie),
            format!("form_token={token}&email=not-an-address&list=dev"),
            StatusCode::BAD_REQUEST,
            "not usable",
        ),
        (
            Some(&cookie),
            format!(
                "form_token={token}&email=ann%40example.org%0D%0ABcc%3A+x%40evil.example&list=dev"
            ),
            StatusCode::BAD_REQUEST,
            "not usable",
        ),
        // Passes the form's check, but mail cannot be addressed to it (a zero-width space).
        (
            Some(&cookie),
            format!("form_token={token}&email=a%E2%80%8Bb%40example.org&list=dev"),
            StatusCode::BAD_REQUEST,
            "not usable",
        ),
        (
            Some(&cookie),
            format!("form_token={token}&email=ann%40example.org&list=nosuchlist"),
            StatusCode::BAD_REQUEST,
            "no list named",
        ),
        (
            Some(&cookie),
            format!("form_token={token}&email=ann%40example.org"),
            StatusCode::BAD_REQUEST,
            "at least one list",
        ),
        (
            Some(&cookie),
            format!("form_token={token}&email=ann%40example.org&list=dev&query=a%0D%0Ab"),
            StatusCode::BAD_REQUEST,
            "one line",
        ),
    ];
    for (cookie, body, status, needle) in refusals {
        let (got, page, _) = call!(app, form_post("/digest/subscribe", cookie, &body));
        assert_eq!(got, status, "{body}: {page}");
        assert!(page.contains(needle), "{body}: {page}");
    }
    assert!(outbox(&config).is_empty(), "a refused request sent mail");
    assert!(subscriber_state(&config).is_empty());

    // The request: a neutral answer, one confirmation email, nothing confirmed yet.
    let (status, page, _) = call!(app, form_post("/digest/subscribe", Some(&cookie), &good));
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("If this address can receive mail"), "{page}");
    assert!(
        !page.contains("ann@example.org"),
        "the page names the address"
    );
    let mails = outbox(&config);
    assert_eq!(mails.len(), 1);
    let confirm = link(&mails[0], "confirm");
    assert_eq!(
        subscriber_state(&config),
        [(false, false, false, vec!["dev".to_string()])]
    );

    // Asking again for the same address answers the same page (nothing to learn from it).
    let (_, again, _) = call!(app, form_post("/digest/subscribe", Some(&cookie), &good));
    assert_eq!(again, page);

    // GET of the confirmation link changes nothing; the button's POST confirms.
    let (status, page, _) = call!(app, test::TestRequest::get().uri(&confirm));
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("method=\"post\""), "{page}");
    assert!(subscriber_state(&config).iter().all(|s| !s.0));
    let (status, page, _) = call!(app, test::TestRequest::post().uri(&confirm));
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Subscription confirmed"), "{page}");
    let page = page.replace("&#x2f;", "/");
    let manage = {
        let marker = "href=\"/digest/manage/";
        let start = page
            .find(marker)
            .unwrap_or_else(|| panic!("manage link in {page}"))
            + "href=\"".len();
        page[start..].split('"').next().expect("path").to_string()
    };
    assert!(subscriber_state(&config).iter().any(|s| s.0 && !s.2));

    // A tampered or foreign token is a 400, not a 500.
    for bad in [
        "/digest/confirm/c.x.1.0.00",
        "/digest/unsubscribe/%3Cscript%3E",
        "/digest/manage/u.1.2.3.4",
    ] {
        let (status, page, _) = call!(app, test::TestRequest::get().uri(bad));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {page}");
    }

    // Manage: pause, then change lists, each with the form token.
    let (status, page, headers) = call!(
        app,
        test::TestRequest::get()
            .uri(&manage)
            .insert_header((header::COOKIE, cookie.clone()))
    );
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        headers.get(header::SET_COOKIE).is_none(),
        "the cookie is reused"
    );
    assert!(page.contains("a…@example.org"), "{page}");
    assert!(page.contains("value=\"tag:nova\""), "{page}");
    assert!(
        page.contains("name=\"q\" type=\"search\" value=\"\""),
        "the site's search box holds the saved search: {page}"
    );
    let token = form_token(&page);
    let pause_body = format!("form_token={token}&action=pause");
    let pause = || form_post(&manage, Some(&cookie), &pause_body);
    let (status, page, _) = call!(app, pause());
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(subscriber_state(&config).iter().any(|s| s.1));
    let (status, _, _) = call!(app, form_post(&manage, None, "action=resume"));
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, page, _) = call!(
        app,
        form_post(
            &manage,
            Some(&cookie),
            &format!("form_token={token}&action=bogus")
        )
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");

    // One-click unsubscribe: the link comes from the subscriber's digest links.
    let store = Store::open(&config.data_dir.join("archive.sqlite3")).expect("store");
    let subscriber = store
        .all_subscribers()
        .expect("read")
        .pop()
        .expect("subscriber");
    drop(store);
    let service = Service::new(&config).expect("service");
    let links = service.subscriptions().links(&subscriber);
    let unsubscribe = super::digest::local_path(&links.unsubscribe.expect("link"));
    let (status, page, _) = call!(app, test::TestRequest::get().uri(&unsubscribe));
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        subscriber_state(&config).iter().all(|s| !s.2),
        "GET unsubscribed"
    );
    let (status, page, _) = call!(
        app,
        test::TestRequest::post()
            .uri(&unsubscribe)
            .insert_header((header::CONTENT_TYPE, "application/x-www-form-urlencoded"))
            .set_payload("List-Unsubscribe=One-Click")
    );
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(
        subscriber_state(&config).iter().all(|s| s.2),
        "POST did not unsubscribe"
    );
    // Idempotent.
    let (status, _, _) = call!(app, test::TestRequest::post().uri(&unsubscribe));
    assert_eq!(status, StatusCode::OK);

    // Subscribed again, the old digests' links change nothing and say so.
    let (status, page, _) = call!(app, form_post("/digest/subscribe", Some(&cookie), &good));
    assert_eq!(status, StatusCode::OK, "{page}");
    let confirm = link(outbox(&config).last().expect("mail"), "confirm");
    let (status, page, _) = call!(app, test::TestRequest::post().uri(&confirm));
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(subscriber_state(&config).iter().all(|s| s.0 && !s.2));
    let (status, page, _) = call!(app, test::TestRequest::post().uri(&unsubscribe));
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    assert!(page.contains("earlier subscription"), "{page}");
    for old in [&unsubscribe, &manage] {
        let (status, page, _) = call!(app, test::TestRequest::get().uri(old));
        assert_eq!(status, StatusCode::NOT_FOUND, "{old}: {page}");
        assert!(page.contains("earlier subscription"), "{old}: {page}");
    }
    let (status, page, _) = call!(app, pause());
    assert_eq!(status, StatusCode::NOT_FOUND, "{page}");
    assert!(
        subscriber_state(&config)
            .iter()
            .all(|s| s.0 && !s.1 && !s.2),
        "an old link changed the new subscription"
    );
}

#[actix_web::test]
async fn the_client_limit_answers_429() {
    let dir = archive();
    let config = config(&dir.path().join("data"));
    let app = app!(config, true);
    let (_, page, headers) = call!(app, test::TestRequest::get().uri("/digest/"));
    let cookie = cookie(&headers);
    let token = form_token(&page);
    let mut statuses = Vec::new();
    for i in 0..22 {
        let body = format!("form_token={token}&email=p{i}%40example.org&list=dev");
        let (status, _, _) = call!(app, form_post("/digest/subscribe", Some(&cookie), &body));
        statuses.push(status);
    }
    assert!(
        statuses[..20].iter().all(|s| *s == StatusCode::OK),
        "{statuses:?}"
    );
    assert_eq!(statuses[20], StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(outbox(&config).len(), 20);
}

#[actix_web::test]
async fn digest_pages_and_feed() {
    let dir = archive();
    let config = config(&dir.path().join("data"));
    let app = app!(config, false);
    let cases: Vec<(&str, StatusCode, &str)> = vec![
        ("/digest/2023-W18", StatusCode::OK, "placement upgrade plan"),
        (
            "/digest/2023-W18?lists=dev",
            StatusCode::OK,
            "Weekly digest 2023-W18",
        ),
        ("/digest/2023-W30", StatusCode::OK, "Nothing was posted"),
        (
            "/digest/2023-W18?lists=nope",
            StatusCode::BAD_REQUEST,
            "no list named",
        ),
        (
            "/digest/2023-W99",
            StatusCode::BAD_REQUEST,
            "not an ISO week",
        ),
        (
            "/digest/%3Cscript%3E",
            StatusCode::BAD_REQUEST,
            "not an ISO week",
        ),
        ("/digest/atom", StatusCode::OK, "/digest/2023-W18"),
        ("/digest/", StatusCode::OK, "not enabled on this server"),
    ];
    for (uri, status, needle) in cases {
        let (got, page, _) = call!(app, test::TestRequest::get().uri(uri));
        assert_eq!(got, status, "{uri}: {page}");
        assert!(page.contains(needle), "{uri}: {needle:?} not in {page}");
        assert!(!page.contains("<script>"), "{uri}: unescaped markup");
    }
    // A saved search's "read online" link shows the digest its email did.
    let (status, page, _) = call!(
        app,
        test::TestRequest::get().uri("/digest/2023-W18?lists=dev&q=placement")
    );
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("placement upgrade plan"), "{page}");
    assert!(
        page.contains("threads matching <code>placement</code>"),
        "{page}"
    );
    assert!(!page.contains("Huge xxx"), "{page}");
    assert!(
        page.contains("name=\"q\" type=\"search\" value=\"\""),
        "the site's search box holds the saved search: {page}"
    );
    assert!(
        page.contains("2023-W17?lists=dev&amp;q=placement\" rel=\"prev\""),
        "{page}"
    );
    // The feed of digests takes no saved search: its link carries only the lists.
    assert!(page.contains("atom?lists=dev\">Atom</a>"), "{page}");
    assert!(!page.contains("atom?lists=dev&amp;q="), "{page}");
    let (_, page, _) = call!(
        app,
        test::TestRequest::get().uri("/digest/2023-W18?q=%22unclosed")
    );
    assert!(page.contains("No thread of this week matches"), "{page}");
    // Week links stop at the weeks a URL can name, instead of wrapping to negative years.
    let (_, page, _) = call!(app, test::TestRequest::get().uri("/digest/2023-W18"));
    assert!(page.contains("2023-W17\" rel=\"prev\""), "{page}");
    assert!(page.contains("2023-W19\" rel=\"next\""), "{page}");
    let (_, page, _) = call!(app, test::TestRequest::get().uri("/digest/9999-W52"));
    assert!(page.contains("9999-W51\" rel=\"prev\""), "{page}");
    assert!(!page.contains("rel=\"next\""), "{page}");
    let (_, page, _) = call!(app, test::TestRequest::get().uri("/digest/0000-W01"));
    assert!(!page.contains("rel=\"prev\""), "{page}");
    assert!(page.contains("0000-W02\" rel=\"next\""), "{page}");
    let (status, page, _) = call!(
        app,
        form_post("/digest/subscribe", None, "email=a%40b.example&list=dev")
    );
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
}

/// A list's feed holds its own latest digests, however much newer mail other lists have; the
/// form page lists the latest weeks that have mail, not the empty weeks before the newest.
#[actix_web::test]
async fn a_quiet_list_keeps_its_digests_in_its_feed() {
    let dir = archive();
    let data = dir.path().join("data");
    let later = dir.path().join("late").join("2023-10.mbox");
    std::fs::create_dir_all(later.parent().expect("parent")).expect("mkdir");
    std::fs::write(
        &later,
        "From x@y Mon Oct  2 09:00:00 2023\nFrom: Zed <zed@example.org>\nSubject: autumn news\n\
         Date: Mon, 2 Oct 2023 10:00:00 +0000\nMessage-ID: <late@example.org>\n\nnews\n\n",
    )
    .expect("write");
    assert_eq!(import(&data, later).messages_new, 1);
    let config = config(&data);
    let app = app!(config, true);
    let (status, feed, _) = call!(app, test::TestRequest::get().uri("/digest/atom?lists=dev"));
    assert_eq!(status, StatusCode::OK, "{feed}");
    assert!(feed.contains("/digest/2023-W18?lists=dev"), "{feed}");
    assert!(!feed.contains("1970-01-01"), "{feed}");
    let (_, page, _) = call!(app, test::TestRequest::get().uri("/digest/"));
    assert!(page.contains("2023-W40"), "{page}");
    assert!(page.contains("2023-W18"), "{page}");
    assert!(!page.contains("2023-W39"), "{page}");
}
