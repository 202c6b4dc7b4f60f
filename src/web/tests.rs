//! Handler tests through actix's test service: every route, its 400/404 paths, escaping of
//! hostile mail, conditional requests, and golden snapshots of rendered pages.

use actix_web::http::{header, Method, StatusCode};
use actix_web::{test, web, App};

use super::{configure, security_headers, State, WebError, CSP};

const HOSTILE_ID: &str = "\"><script>alert(1)</script>@evil.example";

fn fixture() -> Vec<u8> {
    let big_subject = format!("Huge {}", "x".repeat(1_000_000));
    let messages: Vec<String> = vec![
        "From: Alice <alice@example.org>\nTo: dev@lists.example.org\nSubject: [nova] placement upgrade plan\nDate: Mon, 1 May 2023 10:00:00 +0000\nMessage-ID: <root@example.org>\nList-Id: <dev.lists.example.org>\n\nWe should upgrade placement first.\nSee https://review.example.org/c/1 for details.\n\n-- \nAlice\n".to_string(),
        "From: Bob <bob@example.org>\nTo: dev@lists.example.org\nSubject: Re: [nova] placement upgrade plan\nDate: Mon, 1 May 2023 11:00:00 +0000\nMessage-ID: <reply/with%odd#chars?@example.org>\nIn-Reply-To: <root@example.org>\nReferences: <root@example.org>\n\n> We should upgrade placement first.\nAgreed, placement goes first.\n".to_string(),
        format!("From: Mallory <mallory@evil.example>\nSubject: <script>window.__pwned=1</script>\nDate: Tue, 2 May 2023 10:00:00 +0000\nMessage-ID: <{HOSTILE_ID}>\nContent-Type: text/html\n\n<p onmouseover=\"x()\">hi</p><script>window.__pwned=1</script><a href=\"javascript:alert(1)\">click</a><img src=\"http://tracker.example/p.png\">\n"),
        format!("From: Long <long@example.org>\nSubject: {big_subject}\nDate: Wed, 3 May 2023 10:00:00 +0000\nMessage-ID: <huge@example.org>\n\nbody\n"),
    ];
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(b"From x@y Mon May  1 09:12:44 2023\n");
        out.extend_from_slice(m.as_bytes());
        out.extend_from_slice(b"\n");
    }
    out
}

pub(super) fn archive() -> tempfile::TempDir {
    let (dir, report) = archive_of("dev", &fixture());
    assert_eq!(report.messages_new, 4);
    dir
}

/// An archive in a temporary directory (data in `data/`) holding one mbox file in the folder
/// `list` (its list name), imported as `archivist import` would.
fn archive_of(list: &str, mbox: &[u8]) -> (tempfile::TempDir, crate::ingest::Report) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).expect("mkdir");
    let file = dir.path().join(list).join("2023-05.mbox");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, mbox).expect("write");
    let report = import(&data, file);
    (dir, report)
}

/// Imports one mbox file into `data` as `archivist import` would (index included).
pub(super) fn import(data: &std::path::Path, file: std::path::PathBuf) -> crate::ingest::Report {
    let mut store = crate::store::Store::open(&data.join("archive.sqlite3")).expect("store");
    let mut indexer = crate::indexer::Indexer::open(data).expect("index");
    let options = crate::ingest::Options {
        list: None,
        batch_size: 100,
        max_message_bytes: 1 << 24,
        compression_level: 1,
        parse_threads: 1,
    };
    crate::ingest::import(
        &mut store,
        Some(&mut indexer),
        &[file],
        &options,
        false,
        &|_, _| {},
    )
    .expect("import")
}

macro_rules! app {
    ($dir:expr) => {
        app!($dir, crate::config::ServerConfig::default())
    };
    ($dir:expr, $config:expr) => {
        test::init_service(
            App::new()
                .app_data(web::Data::new(State::with_config(
                    &$dir.path().join("data"),
                    &$config,
                )))
                .wrap(actix_web::middleware::Compress::default())
                .wrap(security_headers())
                .configure(configure),
        )
        .await
    };
}

/// GET a URI: (status, body as text, headers).
macro_rules! get {
    ($app:expr, $uri:expr) => {{
        let resp = test::call_service(&$app, test::TestRequest::get().uri($uri).to_request()).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = test::read_body(resp).await;
        (status, String::from_utf8_lossy(&body).into_owned(), headers)
    }};
}

fn path(id: &str) -> String {
    super::render::id_path(id)
}

#[actix_web::test]
async fn every_route_answers_and_bad_input_is_4xx() {
    let dir = archive();
    let app = app!(dir);
    let reply = path("reply/with%odd#chars?@example.org");
    let cases: Vec<(String, StatusCode, &str)> = vec![
        ("/".into(), StatusCode::OK, "placement upgrade plan"),
        (
            "/static/style.css".into(),
            StatusCode::OK,
            "prefers-color-scheme",
        ),
        ("/help".into(), StatusCode::OK, "How to search"),
        (
            "/search?q=placement".into(),
            StatusCode::OK,
            "<b>placement</b>",
        ),
        ("/search?q=".into(), StatusCode::OK, "Type a query"),
        (
            "/search?q=%22unclosed".into(),
            StatusCode::OK,
            "class=\"notice\"",
        ),
        (
            "/search?q=placement&sort=date&collapse=1".into(),
            StatusCode::OK,
            "matching",
        ),
        (
            "/search?q=x&sort=bogus".into(),
            StatusCode::BAD_REQUEST,
            "sort must be",
        ),
        (
            "/search?q=x&page=0".into(),
            StatusCode::BAD_REQUEST,
            "page must be",
        ),
        (
            "/search?q=x&collapse=maybe".into(),
            StatusCode::BAD_REQUEST,
            "collapse must be",
        ),
        // A query longer than the web reads is searched by its start, with a notice.
        (
            format!("/search?q={}", "a".repeat(20_000)),
            StatusCode::OK,
            "first 16384 bytes only",
        ),
        (
            format!("/api/v1/search?q={}", "a".repeat(20_000)),
            StatusCode::OK,
            "first 16384 bytes only",
        ),
        ("/search/atom?q=placement".into(), StatusCode::OK, "<feed"),
        (
            "/search/atom?q=placement&page=abc".into(),
            StatusCode::BAD_REQUEST,
            "page must be",
        ),
        (
            "/search/atom?q=placement&collapse=zz".into(),
            StatusCode::BAD_REQUEST,
            "collapse must be",
        ),
        (
            "/m/root@example.org".into(),
            StatusCode::OK,
            "We should upgrade placement",
        ),
        (
            format!("/m/{reply}"),
            StatusCode::OK,
            "Agreed, placement goes first",
        ),
        (
            "/m/root@example.org/raw".into(),
            StatusCode::OK,
            "Message-ID: <root@example.org>",
        ),
        (
            "/m/nobody@example.org".into(),
            StatusCode::NOT_FOUND,
            "msgid%3Anobody%40example.org",
        ),
        (
            "/m/%3C%3E".into(),
            StatusCode::BAD_REQUEST,
            "not a Message-ID",
        ),
        (
            "/m/nobody@example.org/raw".into(),
            StatusCode::NOT_FOUND,
            "No message",
        ),
        ("/t/root@example.org".into(), StatusCode::OK, "2 messages"),
        (format!("/t/{reply}"), StatusCode::OK, "2 messages"),
        (
            "/t/root@example.org?view=flat".into(),
            StatusCode::OK,
            "nested view",
        ),
        (
            "/t/root@example.org?view=sideways".into(),
            StatusCode::BAD_REQUEST,
            "view must be",
        ),
        (
            "/t/nobody@example.org".into(),
            StatusCode::NOT_FOUND,
            "No message",
        ),
        ("/t/root@example.org/atom".into(), StatusCode::OK, "<entry>"),
        ("/dev/".into(), StatusCode::OK, "placement upgrade plan"),
        ("/dev/2023/05/".into(), StatusCode::OK, "2023-05"),
        (
            "/dev/2023/13/".into(),
            StatusCode::BAD_REQUEST,
            "not a month",
        ),
        (
            "/dev/year/05/".into(),
            StatusCode::BAD_REQUEST,
            "not a year",
        ),
        (
            "/dev/?page=zero".into(),
            StatusCode::BAD_REQUEST,
            "page must be",
        ),
        ("/dev/atom".into(), StatusCode::OK, "<feed"),
        // Past the last page: said so, and "newer"/"previous" lead to the last page.
        (
            "/dev/?page=50".into(),
            StatusCode::OK,
            "Page 50 is past the last page.</li>",
        ),
        (
            "/dev/?page=50".into(),
            StatusCode::OK,
            "href=\"&#x2f;dev&#x2f;?page=1\">← newer",
        ),
        (
            "/search?q=placement&page=40".into(),
            StatusCode::OK,
            "Page 40 is past the last page of results.",
        ),
        (
            "/search?q=placement&page=40".into(),
            StatusCode::OK,
            "<a rel=\"prev\" href=\"&#x2f;search?q=placement\">← previous",
        ),
        // A parameter given twice: a 400 page, as JSON under /api/.
        (
            "/search?q=a&q=b".into(),
            StatusCode::BAD_REQUEST,
            "cannot read the query string: duplicate field",
        ),
        (
            "/dev/?page=1&page=2".into(),
            StatusCode::BAD_REQUEST,
            "<title>Bad request",
        ),
        (
            "/api/v1/search?q=a&q=b".into(),
            StatusCode::BAD_REQUEST,
            "{\"error\":\"cannot read the query string: duplicate field",
        ),
        // A slash too many after the site's own paths names nothing (not a bad month).
        (
            "/m/root@example.org/raw/".into(),
            StatusCode::NOT_FOUND,
            "no such page",
        ),
        (
            "/t/root@example.org/atom/".into(),
            StatusCode::NOT_FOUND,
            "no such page",
        ),
        ("/nolist/".into(), StatusCode::NOT_FOUND, "no list named"),
        (
            "/nolist/atom".into(),
            StatusCode::NOT_FOUND,
            "no list named",
        ),
        ("/a/b/c/d/e".into(), StatusCode::NOT_FOUND, "Nothing lives"),
        ("/api/v1/lists".into(), StatusCode::OK, "\"name\":\"dev\""),
        (
            "/api/v1/lists/dev/threads".into(),
            StatusCode::OK,
            "root_message_id",
        ),
        (
            "/api/v1/lists/nope/threads".into(),
            StatusCode::NOT_FOUND,
            "\"error\"",
        ),
        (
            "/api/v1/lists/dev/threads?page=-1".into(),
            StatusCode::BAD_REQUEST,
            "\"error\"",
        ),
        (
            "/api/v1/threads/root@example.org".into(),
            StatusCode::OK,
            "\"messages\"",
        ),
        (
            "/api/v1/threads/nope@x".into(),
            StatusCode::NOT_FOUND,
            "\"error\"",
        ),
        (
            "/api/v1/messages/root@example.org".into(),
            StatusCode::OK,
            "\"subject\"",
        ),
        (
            "/api/v1/messages/nope@x".into(),
            StatusCode::NOT_FOUND,
            "\"error\"",
        ),
        (
            "/api/v1/search?q=placement".into(),
            StatusCode::OK,
            "\"total\"",
        ),
        (
            "/api/v1/search?q=x&sort=no".into(),
            StatusCode::BAD_REQUEST,
            "\"error\"",
        ),
        ("/api/v1/openapi.json".into(), StatusCode::OK, "\"openapi\""),
    ];
    for (uri, status, needle) in &cases {
        let (got, body, headers) = get!(app, uri);
        assert_eq!(got, *status, "{uri:.80}: {body:.300}");
        assert!(
            body.contains(needle),
            "{uri:.80} lacks {needle:?}: {body:.300}"
        );
        assert_eq!(
            headers
                .get(header::CONTENT_SECURITY_POLICY)
                .and_then(|v| v.to_str().ok()),
            Some(CSP),
            "{uri:.80}"
        );
    }
    let (_, dev, _) = get!(app, "/dev");
    assert!(dev.is_empty());
    let (status, _, headers) = get!(app, "/dev");
    assert_eq!(status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(
        headers.get(header::LOCATION).and_then(|v| v.to_str().ok()),
        Some("/dev/")
    );
    let (_, _, headers) = get!(app, "/dev?page=2&x=%20");
    assert_eq!(
        headers.get(header::LOCATION).and_then(|v| v.to_str().ok()),
        Some("/dev/?page=2&x=%20")
    );
    let (_, spec, _) = get!(app, "/api/v1/openapi.json");
    serde_json::from_str::<serde_json::Value>(&spec).expect("OpenAPI document is JSON");
    let (status, mbox, headers) = get!(app, "/t/root@example.org.mbox.gz");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("application/gzip")
    );
    assert!(!mbox.is_empty());
}

#[actix_web::test]
async fn hostile_mail_renders_harmlessly() {
    let dir = archive();
    let app = app!(dir);
    let hostile = path(HOSTILE_ID);
    for uri in [
        format!("/m/{hostile}"),
        format!("/t/{hostile}"),
        "/".to_string(),
        "/dev/".to_string(),
    ] {
        let (status, body, _) = get!(app, &uri);
        assert_eq!(
            status,
            StatusCode::OK,
            "{uri}: {}",
            &body[body.find("<h1>").unwrap_or(0)..]
        );
        assert!(!body.contains("<script>"), "{uri}: raw script tag");
        assert!(!body.contains("onmouseover=\""), "{uri}: event handler");
        assert!(
            !body.contains("href=\"javascript:"),
            "{uri}: javascript link"
        );
        assert!(
            !body.contains("<img src=\"http://tracker"),
            "{uri}: remote image"
        );
    }
    let (_, body, _) = get!(app, &format!("/m/{hostile}"));
    assert!(
        body.contains("&lt;script&gt;window.__pwned=1&lt;"),
        "subject escaped"
    );
    // The thread outline, written in code, escapes the subject and the sender too.
    let (_, body, _) = get!(app, &format!("/t/{hostile}"));
    assert!(
        body.contains(
            "\">&lt;script&gt;window.__pwned=1&lt;/script&gt;</a> <span class=\"meta\">Mallory · "
        ),
        "outline row escaped"
    );
    let (status, body, _) = get!(app, "/search?q=pwned");
    assert_eq!(status, StatusCode::OK);
    assert!(!body.contains("<script>"));
    // The 1 MB subject renders without trouble, cut to a readable length.
    let (status, body, _) = get!(app, "/m/huge@example.org");
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&format!("Huge {}…", "x".repeat(993))));
    // The raw bytes are served as plain text, never as HTML.
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri(&format!("/m/{hostile}/raw"))
            .to_request(),
    )
    .await;
    assert_eq!(
        resp.headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok()),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(
        resp.headers()
            .get(header::X_CONTENT_TYPE_OPTIONS)
            .and_then(|v| v.to_str().ok()),
        Some("nosniff")
    );
}

#[actix_web::test]
async fn etags_give_304s() {
    let dir = archive();
    let app = app!(dir);
    get!(app, "/");
    next_second().await;
    let (_, _, headers) = get!(app, "/m/root@example.org");
    let etag = headers.get(header::ETAG).expect("etag").clone();
    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/m/root@example.org")
            .insert_header((header::IF_NONE_MATCH, etag))
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::NOT_MODIFIED);
    assert!(headers.get(header::LAST_MODIFIED).is_some());
}

/// Golden snapshots: a mismatch writes `<name>.actual` beside the expectation.
#[actix_web::test]
async fn rendered_pages_match_their_snapshots() {
    let dir = archive();
    let app = app!(dir);
    let golden = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/web");
    std::fs::create_dir_all(&golden).expect("golden dir");
    let pages = [
        ("message.html", format!("/m/{}", path("root@example.org"))),
        ("hostile.html", format!("/m/{}", path(HOSTILE_ID))),
        ("thread.html", "/t/root@example.org".to_string()),
        ("search.html", "/search?q=placement".to_string()),
    ];
    let mut mismatches = Vec::new();
    for (name, uri) in pages {
        let (_, body, _) = get!(app, &uri);
        let expected_path = golden.join(name);
        match std::fs::read_to_string(&expected_path) {
            Ok(expected) if expected == body => {}
            Ok(_) | Err(_) if std::env::var("UPDATE_GOLDEN").is_ok() => {
                std::fs::write(&expected_path, &body).expect("write golden");
            }
            _ => {
                std::fs::write(golden.join(format!("{name}.actual")), &body).expect("write actual");
                mismatches.push(name);
            }
        }
    }
    assert!(
        mismatches.is_empty(),
        "pages differ from tests/golden/web (see *.actual; UPDATE_GOLDEN=1 accepts): {mismatches:?}"
    );
}

/// GET with extra request headers: (status, headers).
macro_rules! get_with {
    ($app:expr, $uri:expr, $headers:expr) => {{
        let mut req = test::TestRequest::get().uri($uri);
        for (name, value) in $headers {
            req = req.insert_header((name.clone(), *value));
        }
        let resp = test::call_service(&$app, req.to_request()).await;
        (resp.status(), resp.headers().clone())
    }};
}

/// Parses a `Last-Modified` header into Unix seconds.
fn http_secs(headers: &actix_web::http::header::HeaderMap) -> i64 {
    let date: header::HttpDate = headers
        .get(header::LAST_MODIFIED)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Last-Modified date");
    std::time::SystemTime::from(date)
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64
}

/// Waits for the clock's next second: a page changed in the current second has no
/// `Last-Modified` yet.
async fn next_second() {
    let now = unix_now();
    while unix_now() <= now {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn last_modified_and_if_modified_since() {
    let dir = archive();
    let started = unix_now();
    let app = app!(dir);
    // The server sees the archive change now: until the second is over, its pages carry no
    // date (another change within the second would keep it).
    for uri in ["/", "/search?q=placement"] {
        let before = unix_now();
        let (status, headers) = get_with!(app, uri, &[] as &[(header::HeaderName, &str)]);
        assert_eq!(status, StatusCode::OK, "{uri}");
        if unix_now() == before {
            assert!(headers.get(header::LAST_MODIFIED).is_none(), "{uri}");
        }
    }
    next_second().await;
    // Every page's content dates from 2023, but the archive was written just now: a page is
    // "last modified" when the archive last changed as this server saw it, never earlier.
    let cases = [
        "/m/root@example.org",
        "/t/root@example.org",
        "/t/root@example.org/atom",
        "/api/v1/messages/root@example.org",
        "/dev/",
        "/dev/atom",
        "/search/atom?q=placement",
    ];
    for uri in cases {
        let (status, headers) = get_with!(app, uri, &[] as &[(header::HeaderName, &str)]);
        assert_eq!(status, StatusCode::OK, "{uri}");
        let modified = http_secs(&headers);
        assert!(
            (started..=unix_now()).contains(&modified),
            "{uri}: {modified}"
        );
        let date = headers
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .expect("last-modified");
        let etag = headers
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .expect("etag");
        let checks: [(&[(header::HeaderName, &str)], StatusCode); 5] = [
            (
                &[(header::IF_MODIFIED_SINCE, date)],
                StatusCode::NOT_MODIFIED,
            ),
            (
                &[(header::IF_MODIFIED_SINCE, "Tue, 01 Jan 2999 00:00:00 GMT")],
                StatusCode::NOT_MODIFIED,
            ),
            // The newest content's date is not enough: the page changed after it.
            (
                &[(header::IF_MODIFIED_SINCE, "Wed, 03 May 2023 10:00:00 GMT")],
                StatusCode::OK,
            ),
            (&[(header::IF_MODIFIED_SINCE, "not a date")], StatusCode::OK),
            // An ETag that does not match wins over a date that does (RFC 9110 13.1.3).
            (
                &[
                    (header::IF_NONE_MATCH, "\"other\""),
                    (header::IF_MODIFIED_SINCE, date),
                ],
                StatusCode::OK,
            ),
        ];
        for (request, expected) in checks {
            let (status, _) = get_with!(app, uri, request);
            assert_eq!(status, expected, "{uri} {request:?}");
        }
        // A 304 says what the 200 said about caching.
        let (status, headers) = get_with!(app, uri, &[(header::IF_NONE_MATCH, etag)]);
        assert_eq!(status, StatusCode::NOT_MODIFIED, "{uri}");
        for name in [
            header::LAST_MODIFIED,
            header::ETAG,
            header::CACHE_CONTROL,
            header::VARY,
        ] {
            assert!(headers.get(&name).is_some(), "{uri}: 304 without {name}");
        }
    }
}

#[actix_web::test]
async fn thread_page_links_parent_replies_and_next() {
    let dir = archive();
    let app = app!(dir);
    let (_, body, _) = get!(app, "/t/root@example.org");
    let root = super::render::anchor("root@example.org");
    let reply = super::render::anchor("reply/with%odd#chars?@example.org");
    assert!(
        body.contains(&format!("replies: <a href=\"#{reply}\">Bob</a>")),
        "{body}"
    );
    assert!(body.contains(&format!("<a href=\"#{reply}\">next</a>")));
    assert!(body.contains(&format!("<a href=\"#{root}\" rel=\"up\">parent</a>")));
}

#[actix_web::test]
async fn obfuscation_hides_addresses_outside_raw() {
    let dir = archive();
    let config = crate::config::ServerConfig {
        obfuscate_addresses: true,
        ..Default::default()
    };
    let app = app!(dir, config);
    for uri in [
        "/m/root@example.org",
        "/t/root@example.org",
        "/api/v1/messages/root@example.org",
        "/api/v1/threads/root@example.org",
        "/api/v1/search?q=placement",
        "/search?q=placement",
        "/dev/atom",
        "/",
    ] {
        let (status, body, _) = get!(app, uri);
        assert_eq!(status, StatusCode::OK, "{uri}");
        for address in [
            "alice@example.org",
            "bob@example.org",
            "mallory@evil.example",
        ] {
            assert!(!body.contains(address), "{uri} shows {address}");
        }
    }
    let (_, page, _) = get!(app, "/m/root@example.org");
    assert!(page.contains("&lt;alice at example.org&gt;"), "{page}");
    let (_, api, _) = get!(app, "/api/v1/messages/root@example.org");
    let api: serde_json::Value = serde_json::from_str(&api).expect("json");
    assert_eq!(api["from"]["address"], "alice at example.org");
    let (_, search, _) = get!(app, "/search?q=placement");
    assert!(
        !search.contains("Senders"),
        "the sender facet links to addresses"
    );
    // The raw message is the record of what arrived, byte for byte.
    let (_, raw, _) = get!(app, "/m/root@example.org/raw");
    assert!(raw.contains("alice@example.org"));
    // Off by default.
    let plain = app!(dir);
    let (_, page, _) = get!(plain, "/m/root@example.org");
    assert!(page.contains("&lt;alice@example.org&gt;"));
}

#[actix_web::test]
async fn cached_pages_follow_a_new_import() {
    let dir = archive();
    let app = app!(dir);
    for _ in 0..2 {
        let (_, body, _) = get!(app, "/t/root@example.org");
        assert!(body.contains("2 messages"));
        let (_, body, _) = get!(app, "/search?q=zeppelin");
        assert!(body.contains("No messages match"), "{body}");
    }
    let file = dir.path().join("dev").join("2023-06.mbox");
    std::fs::write(
        &file,
        "From x@y Mon May  1 09:12:44 2023\nFrom: Carol <carol@example.org>\nSubject: Re: [nova] placement upgrade plan\nDate: Tue, 2 May 2023 12:00:00 +0000\nMessage-ID: <late@example.org>\nIn-Reply-To: <root@example.org>\nReferences: <root@example.org>\n\nA zeppelin would be faster.\n\n",
    )
    .expect("write");
    let (_, _, before) = get!(app, "/dev/");
    let imported = unix_now();
    assert_eq!(import(&dir.path().join("data"), file).messages_new, 1);
    let (_, body, _) = get!(app, "/t/root@example.org");
    assert!(
        body.contains("3 messages"),
        "the cached thread page went stale"
    );
    next_second().await;
    let (_, _, headers) = get!(app, "/t/root@example.org");
    assert!(http_secs(&headers) >= imported);
    // The list page shows nothing newer than before (the new message is from 2 May, the
    // list's newest from 3 May), but it changed: its date moves on.
    let (_, _, after) = get!(app, "/dev/");
    assert!(http_secs(&after) >= imported);
    assert_ne!(before.get(header::ETAG), after.get(header::ETAG));
    let (_, body, _) = get!(app, "/search?q=zeppelin");
    assert!(
        body.contains("late@example.org"),
        "the cached search went stale: {body}"
    );
}

#[actix_web::test]
async fn message_pages_built_on_the_event_loop_see_each_new_import() {
    let dir = archive();
    let uncached = crate::config::ServerConfig {
        cache_mb: 0,
        ..Default::default()
    };
    for app in [app!(dir), app!(dir, uncached)] {
        let (status, body, _) = get!(app, "/m/root@example.org");
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("Whole thread (2 messages)"), "{body}");
        let (status, _, _) = get!(app, "/m/later@example.org");
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    // The test thread's own connection is open now (message pages use it); an import
    // through another connection must show on the next request, not after a restart.
    let file = dir.path().join("dev").join("2023-06.mbox");
    std::fs::write(
        &file,
        "From x@y Mon May  1 09:12:44 2023\nFrom: Carol <carol@example.org>\nSubject: Re: [nova] placement upgrade plan\nDate: Tue, 2 May 2023 12:00:00 +0000\nMessage-ID: <later@example.org>\nIn-Reply-To: <root@example.org>\nReferences: <root@example.org>\n\nOne more.\n\n",
    )
    .expect("write");
    assert_eq!(import(&dir.path().join("data"), file).messages_new, 1);
    let uncached = crate::config::ServerConfig {
        cache_mb: 0,
        ..Default::default()
    };
    for app in [app!(dir), app!(dir, uncached)] {
        let (status, body, _) = get!(app, "/m/later@example.org");
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.contains("One more."), "{body}");
        let (status, body, _) = get!(app, "/api/v1/messages/later@example.org");
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, body, _) = get!(app, "/m/root@example.org");
        assert!(body.contains("Whole thread (3 messages)"), "{body}");
        let (_, raw, _) = get!(app, "/m/later@example.org/raw");
        assert!(raw.contains("One more."));
    }
}

#[actix_web::test]
async fn attachments_are_listed_per_message_in_order() {
    let dir = archive();
    let file = dir.path().join("dev").join("2023-07.mbox");
    let part = |name: &str, body: &str| {
        format!("--b\nContent-Type: text/x-patch\nContent-Disposition: attachment; filename=\"{name}\"\n\n{body}\n")
    };
    let message = |id: &str, reply: &str, files: &[(&str, &str)]| {
        let parts: String = files.iter().map(|(n, b)| part(n, b)).collect();
        format!("From x@y Mon May  1 09:12:44 2023\nFrom: Dora <dora@example.org>\nSubject: patches\nDate: Thu, 4 May 2023 10:00:00 +0000\nMessage-ID: <{id}>\n{reply}MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: text/plain\n\nSee attached.\n{parts}--b--\n\n")
    };
    let mbox = message(
        "att1@example.org",
        "",
        &[("one.patch", "a"), ("two.patch", "bb")],
    ) + &message(
        "att2@example.org",
        "In-Reply-To: <att1@example.org>\n",
        &[("three.patch", "ccc")],
    );
    std::fs::write(&file, mbox).expect("write");
    assert_eq!(import(&dir.path().join("data"), file).messages_new, 2);
    let app = app!(dir);
    let (status, body, _) = get!(app, "/api/v1/threads/att1@example.org");
    assert_eq!(status, StatusCode::OK);
    let thread: serde_json::Value = serde_json::from_str(&body).expect("json");
    let names: Vec<Vec<&str>> = thread["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| {
            m["attachments"]
                .as_array()
                .expect("attachments")
                .iter()
                .filter_map(|a| a["filename"].as_str())
                .collect()
        })
        .collect();
    assert_eq!(
        names,
        vec![vec!["one.patch", "two.patch"], vec!["three.patch"]]
    );
    let (_, page, _) = get!(app, "/t/att1@example.org");
    assert!(page.contains("three.patch") && page.contains("two.patch"));
}

#[actix_web::test]
async fn an_unreadable_index_is_a_503_with_advice_not_a_500() {
    let dir = archive();
    let data = dir.path().join("data");
    let current = crate::index::schema_dir(&crate::indexer::index_dir(&data)).join("CURRENT");
    std::fs::write(&current, "g99999999\n").expect("point CURRENT at nothing");
    let app = app!(dir);
    for uri in ["/search?q=placement", "/api/v1/search?q=placement"] {
        let (status, body, _) = get!(app, uri);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{uri}: {body}");
        assert!(body.contains("archivist reindex"), "{uri}: {body}");
    }
    // Pages that need no index still work.
    let (status, _, _) = get!(app, "/m/root@example.org");
    assert_eq!(status, StatusCode::OK);
}

/// What the first outside audit found: HEAD answered 404, a proxy header could point every
/// feed link elsewhere (and the poisoned feed was cached for everyone), weak ETags never
/// matched, API paths that do not exist answered HTML, the thread mbox was gzipped twice,
/// search feed summaries were escaped twice, and list pages past 500 were out of reach.
#[actix_web::test]
async fn http_conventions_and_proxy_headers() {
    let dir = archive();
    let app = app!(dir);

    let head = |uri: &str| {
        test::TestRequest::default()
            .method(actix_web::http::Method::HEAD)
            .uri(uri)
            .to_request()
    };
    for uri in [
        "/",
        "/dev/",
        "/m/root@example.org",
        "/m/root@example.org/raw",
        "/api/v1/lists",
        "/static/style.css",
        "/dev/atom",
    ] {
        let resp = test::call_service(&app, head(uri)).await;
        assert_eq!(resp.status(), StatusCode::OK, "HEAD {uri}");
    }

    // Feed links: by default only the Host header counts (lowercased; an implausible one
    // falls back to the server's own); proxy headers any client can send are ignored, and
    // nothing a request sends reaches the cached feed other readers get.
    // `/dev/atom` asked with the given headers: the body.
    macro_rules! feed_with {
        ($app:expr, $headers:expr) => {{
            let mut req = test::TestRequest::get().uri("/dev/atom");
            for h in $headers {
                req = req.insert_header(*h);
            }
            test::read_body(test::call_service(&$app, req.to_request()).await).await
        }};
    }
    let feed_id = |body: &[u8]| -> String {
        let body = String::from_utf8_lossy(body);
        let start = body.find("<id>").map_or(0, |i| i + 4);
        let end = body[start..].find("</id>").map_or(start, |e| start + e);
        body[start..end].to_string()
    };
    for (headers, want) in [
        (
            vec![("X-Forwarded-Proto", "https://evil.example/?")],
            "http://localhost:8080/dev/atom",
        ),
        (
            vec![
                ("X-Forwarded-Host", "evil.example"),
                ("X-Forwarded-Proto", "https"),
            ],
            "http://localhost:8080/dev/atom",
        ),
        (
            vec![("Forwarded", "host=evil.example;proto=https")],
            "http://localhost:8080/dev/atom",
        ),
        (
            vec![("Host", "evil\"><x")],
            "http://localhost:8080/dev/atom",
        ),
        (
            vec![("Host", "Archive.Example.org:8443")],
            "http://archive.example.org:8443/dev/atom",
        ),
    ] {
        let body = feed_with!(app, &headers);
        assert_eq!(feed_id(&body), want, "{headers:?}");
        assert!(
            !String::from_utf8_lossy(&body).contains("://evil"),
            "{headers:?}"
        );
    }
    let (_, feed, _) = get!(app, "/dev/atom");
    assert_eq!(feed_id(feed.as_bytes()), "http://localhost:8080/dev/atom");

    // Behind a proxy that sets them (`server.trust_proxy_headers`), they are believed, but
    // only `http`/`https` as the scheme.
    let trusting = crate::config::ServerConfig {
        trust_proxy_headers: true,
        ..Default::default()
    };
    let proxied = app!(dir, trusting);
    for (headers, want) in [
        (
            vec![
                ("X-Forwarded-Proto", "https"),
                ("X-Forwarded-Host", "lists.example.org"),
            ],
            "https://lists.example.org/dev/atom",
        ),
        (
            vec![
                ("X-Forwarded-Proto", "https://evil.example/?"),
                ("X-Forwarded-Host", "lists.example.org"),
            ],
            "http://lists.example.org/dev/atom",
        ),
        (
            vec![("X-Forwarded-Host", "evil\"><x")],
            "http://localhost:8080/dev/atom",
        ),
    ] {
        let body = feed_with!(proxied, &headers);
        assert_eq!(feed_id(&body), want, "{headers:?}");
    }

    // Weak comparison for If-None-Match.
    let (_, _, headers) = get!(app, "/m/root@example.org");
    let etag = headers
        .get(header::ETAG)
        .expect("etag")
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(etag.starts_with("W/\""), "{etag}");
    let req = test::TestRequest::get()
        .uri("/m/root@example.org")
        .insert_header((header::IF_NONE_MATCH, etag.trim_start_matches("W/")))
        .to_request();
    assert_eq!(
        test::call_service(&app, req).await.status(),
        StatusCode::NOT_MODIFIED
    );

    for uri in ["/", "/m/root@example.org", "/api/v1/lists", "/nothing/here"] {
        let req = test::TestRequest::post().uri(uri).to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED, "POST {uri}");
        assert_eq!(
            resp.headers().get(header::ALLOW).expect("Allow"),
            "GET, HEAD"
        );
    }

    // Digest paths take POST where their forms post, and say so.
    for (method, uri, allow) in [
        (Method::PUT, "/digest/2026-W01", "GET, HEAD"),
        (Method::POST, "/digest/atom", "GET, HEAD"),
        (Method::PUT, "/digest/subscribe", "POST"),
        (Method::GET, "/digest/subscribe", "POST"),
        (
            Method::DELETE,
            "/digest/manage/some-token",
            "GET, HEAD, POST",
        ),
        (Method::POST, "/digest/a/b/c", "GET, HEAD"),
    ] {
        let req = test::TestRequest::default()
            .method(method.clone())
            .uri(uri)
            .to_request();
        let resp = test::call_service(&app, req).await;
        assert_eq!(
            resp.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {uri}"
        );
        assert_eq!(
            resp.headers().get(header::ALLOW).expect("Allow"),
            allow,
            "{method} {uri}"
        );
    }

    let (status, body, headers) = get!(app, "/api/v1/nothing");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        headers
            .get(header::CONTENT_TYPE)
            .expect("type")
            .to_str()
            .expect("ascii")
            .starts_with("application/json"),
        "{body}"
    );

    let (status, _, headers) = get!(app, "/t/root@example.org.mbox.gz");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get(header::CONTENT_ENCODING).expect("encoding"),
        "identity"
    );

    let (_, feed, _) = get!(app, "/search/atom?q=placement");
    assert!(feed.contains("<summary type=\"html\">"), "{feed}");
    assert!(feed.contains("&lt;b&gt;placement&lt;/b&gt;"), "{feed}");
    let (status, _, _) = get!(app, "/search/atom?q=placement&sort=foo");
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Past page 500 a list page answers as any page past the end does (the fixture has one).
    for base in ["/dev/", "/api/v1/lists/dev/threads"] {
        let (past_end, _, _) = get!(app, &format!("{base}?page=2"));
        let (deep, body, _) = get!(app, &format!("{base}?page=501"));
        assert_eq!(deep, past_end, "{base}: {body}");
        assert!(!body.contains("page must be"), "{base}: {body}");
    }

    // A very long query still answers, without repeating itself in every facet link.
    // Pages are compressed for clients that ask; a 1 MB subject is cut on the page.
    let req = test::TestRequest::get()
        .uri("/m/root@example.org")
        .insert_header((header::ACCEPT_ENCODING, "gzip"))
        .to_request();
    let resp = test::call_service(&app, req).await;
    assert_eq!(
        resp.headers()
            .get(header::CONTENT_ENCODING)
            .expect("encoding"),
        "gzip"
    );
    for uri in ["/m/huge@example.org", "/t/huge@example.org", "/dev/"] {
        let (status, body, _) = get!(app, uri);
        assert_eq!(status, StatusCode::OK, "{uri}");
        assert!(
            body.len() < 50_000 && body.contains("Huge xxx"),
            "{uri}: {} bytes",
            body.len()
        );
    }

    let (_, short, _) = get!(app, "/search?q=placement");
    assert!(short.contains("list%3Adev"), "{short}");
    let long = format!("placement+-{}", "x".repeat(2000));
    let (status, body, _) = get!(app, &format!("/search?q={long}"));
    assert_eq!(status, StatusCode::OK);
    assert!(
        body.contains("<b>placement</b>") && body.contains("Lists"),
        "{body}"
    );
    assert!(
        !body.contains("list%3Adev"),
        "facet links repeat the long query"
    );
}

/// Every field of a message article is escaped: sender name and address, attachment name
/// and type, list name, subject (the article is written in code, not by the template engine).
#[actix_web::test]
async fn every_article_field_is_escaped() {
    let mail = "From x@y Mon May  1 09:12:44 2023\n\
From: \"<img src=x onerror=alert(1)>\" <\"<i>\"@evil.example>\n\
Subject: <svg onload=alert(2)>\n\
Date: Mon, 1 May 2023 10:00:00 +0000\n\
Message-ID: <fields@evil.example>\n\
MIME-Version: 1.0\n\
Content-Type: multipart/mixed; boundary=b\n\
\n\
--b\n\
Content-Type: text/plain\n\
\n\
body <u>text</u>\n\
--b\n\
Content-Type: text/x-<script>; name=\"<script>alert(3)</script>.txt\"\n\
Content-Disposition: attachment; filename=\"<script>alert(3)</script>.txt\"\n\
\n\
data\n\
--b--\n\n";
    let (dir, _) = archive_of("x<b>'\"&list", mail.as_bytes());
    let app = app!(dir);
    for uri in ["/m/fields@evil.example", "/t/fields@evil.example"] {
        let (status, body, _) = get!(app, uri);
        assert_eq!(status, StatusCode::OK, "{uri}");
        for raw in ["<img", "<svg", "<script", "<i>", "<u>", "<b>'"] {
            assert!(!body.contains(raw), "{uri}: {raw} unescaped");
        }
        for escaped in [
            "&lt;img src=x",
            "&lt;svg onload",
            "&lt;script&gt;alert(3)",
            "&lt;u&gt;text",
        ] {
            assert!(body.contains(escaped), "{uri}: no {escaped}");
        }
    }
}

/// Every field the API answers with is declared in its OpenAPI document (resolving `$ref`s),
/// so clients generated from the document see the whole answer.
#[actix_web::test]
async fn openapi_declares_every_field_the_api_answers() {
    use serde_json::Value;
    let dir = archive();
    let app = app!(dir);
    let (_, spec, _) = get!(app, "/api/v1/openapi.json");
    let spec: Value = serde_json::from_str(&spec).expect("JSON");
    fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(r) => {
                let name = r.rsplit('/').next().unwrap_or_default();
                &spec["components"]["schemas"][name]
            }
            None => schema,
        }
    }
    fn check(spec: &Value, schema: &Value, value: &Value, at: &str) {
        let schema = resolve(spec, schema);
        match value {
            Value::Object(map) => {
                let props = &schema["properties"];
                if props.is_null() {
                    return; // a free-form object (facets)
                }
                for (k, v) in map {
                    assert!(props.get(k).is_some(), "{at}.{k} is not in the document");
                    check(spec, &props[k], v, &format!("{at}.{k}"));
                }
            }
            Value::Array(items) => {
                for v in items {
                    check(spec, &schema["items"], v, &format!("{at}[]"));
                }
            }
            _ => {}
        }
    }
    for (path, uri) in [
        ("/api/v1/lists", "/api/v1/lists".to_string()),
        (
            "/api/v1/lists/{list}/threads",
            "/api/v1/lists/dev/threads".to_string(),
        ),
        (
            "/api/v1/threads/{message_id}",
            "/api/v1/threads/root@example.org".to_string(),
        ),
        (
            "/api/v1/messages/{message_id}",
            "/api/v1/messages/root@example.org".to_string(),
        ),
        ("/api/v1/search", "/api/v1/search?q=placement".to_string()),
    ] {
        let (status, body, _) = get!(app, &uri);
        assert_eq!(status, StatusCode::OK, "{uri}");
        let value: Value = serde_json::from_str(&body).expect("JSON");
        let schema = &spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]
            ["schema"];
        assert!(!schema.is_null(), "{path} has no response schema");
        check(&spec, schema, &value, path);
    }
}

/// Pages built on the event loop keep the blocking threads' containment: a bug that panics
/// answers this request with an error instead of ending the worker's every connection.
#[actix_web::test]
async fn a_panic_while_building_is_an_error_answer() {
    let out: Result<(), WebError> = super::contained(|| panic!("a bug"));
    assert!(matches!(out, Err(WebError::Internal(_))), "{out:?}");
    let fine: Result<u8, WebError> = super::contained(|| Ok(7));
    assert!(matches!(fine, Ok(7)));
}

#[actix_web::test]
async fn message_ids_that_are_dot_segments_or_end_in_mbox_gz_are_linked_in_brackets() {
    let ids = [".", "..", "trailing.mbox.gz"];
    let mut mbox = String::new();
    for (i, id) in ids.iter().enumerate() {
        mbox.push_str(&format!(
            "From x@y Mon May  1 09:12:44 2023\nFrom: Odd <odd@example.org>\nSubject: odd id {i}\nDate: Mon, 1 May 2023 1{i}:00:00 +0000\nMessage-ID: <{id}>\n\nbody {i}\n\n"
        ));
    }
    let (dir, report) = archive_of("odd", mbox.as_bytes());
    assert_eq!(report.messages_new, 3);
    let app = app!(dir);
    let (_, list, _) = get!(app, "/odd/");
    for (i, id) in ids.iter().enumerate() {
        let href = format!("/t/{}", path(id));
        assert!(
            href.starts_with("/t/%3C") && href.ends_with("%3E"),
            "{href}"
        );
        assert!(
            list.contains(&format!("href=\"{href}\"")),
            "{href} in {list}"
        );
        let subject = format!("odd id {i}");
        for uri in [href.clone(), format!("/m/{}", path(id))] {
            let (status, body, _) = get!(app, &uri);
            assert_eq!(status, StatusCode::OK, "{uri}");
            assert!(body.contains(&subject), "{uri}");
        }
        let (status, raw, _) = get!(app, &format!("/m/{}/raw", path(id)));
        assert_eq!(status, StatusCode::OK);
        assert!(raw.contains(&format!("Message-ID: <{id}>")), "{raw}");
        let (status, _, headers) = get!(app, &format!("{href}.mbox.gz"));
        assert_eq!(status, StatusCode::OK, "{href}.mbox.gz");
        assert_eq!(
            headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok()),
            Some("application/gzip")
        );
    }
}

/// Mail dated before 1970 (a zero Date in a zone west of Greenwich is common): its month
/// has a page, and its thread's mbox export imports again whole.
#[actix_web::test]
async fn messages_before_1970_have_month_pages_and_export_whole() {
    let mbox = "From x@y Mon May  1 09:12:44 2023\nFrom: Old <old@example.org>\nSubject: epoch\nDate: Thu, 1 Jan 1970 00:00:00 +0100\nMessage-ID: <epoch@x>\n\nfirst\n\nFrom x@y Mon May  1 09:12:44 2023\nFrom: Old <old@example.org>\nSubject: Re: epoch\nDate: Mon, 1 May 2023 10:00:00 +0000\nMessage-ID: <reply@x>\nIn-Reply-To: <epoch@x>\n\nsecond\n\n";
    let (dir, report) = archive_of("old", mbox.as_bytes());
    assert_eq!(report.messages_new, 2);
    let app = app!(dir);
    let (_, list, _) = get!(app, "/old/");
    assert!(list.contains("href=\"/old/1969/12/\""), "{list}");
    let (status, month, _) = get!(app, "/old/1969/12/");
    assert_eq!(status, StatusCode::OK, "{month}");
    assert!(month.contains("epoch"), "{month}");

    let resp = test::call_service(
        &app,
        test::TestRequest::get()
            .uri("/t/epoch@x.mbox.gz")
            .to_request(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let gz = test::read_body(resp).await;
    let mut exported = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut exported)
        .expect("gunzip");
    assert!(
        String::from_utf8_lossy(&exported).contains("From archivist Wed Dec 31 23:00:00 1969\n"),
        "{}",
        String::from_utf8_lossy(&exported)
    );
    let (_again, report) = archive_of("again", &exported);
    assert_eq!(report.messages_new, 2);
    assert_eq!(report.problems, 0);
}

/// An undated message is "undated" everywhere, never 1970-01-01: search hits (JSON `null`),
/// the search page, its `<time>`, and no date query or year facet takes it for 1970.
#[actix_web::test]
async fn an_undated_message_is_undated_in_search_and_pages() {
    let eml = "From: Nobody <nobody@example.org>\nSubject: timeless quokka\nMessage-ID: <nodate@x>\n\nno date here\n";
    let (dir, report) = archive_of("undated", eml.as_bytes());
    assert_eq!(report.messages_new, 1);
    let app = app!(dir);
    let (_, json, _) = get!(app, "/api/v1/search?q=quokka");
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["total"], 1, "{v}");
    assert!(v["hits"][0]["date"].is_null(), "{v}");
    assert_eq!(v["facets"]["years"], serde_json::json!([]), "{v}");
    for q in ["quokka%20date:1970", "quokka%20before:1971-01-01"] {
        let (_, json, _) = get!(app, &format!("/api/v1/search?q={q}"));
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(v["total"], 0, "{q}: {v}");
    }
    let (_, page, _) = get!(app, "/search?q=quokka");
    assert!(page.contains("· undated ·"), "{page}");
    assert!(!page.contains("1970"), "{page}");
    let (_, message, _) = get!(app, "/m/nodate@x");
    assert!(message.contains("<time>undated</time>"), "{message}");
}

/// A thread longer than a page is paged: each page holds its share of the messages and of
/// the outline, `/t/<id>` opens the page holding that message, and links to messages on
/// other pages carry their page.
#[actix_web::test]
async fn long_threads_are_paged() {
    use super::pages::THREAD_PAGE_MESSAGES as PER_PAGE;
    let total = 2 * PER_PAGE + 100;
    let mut mbox = String::new();
    for i in 0..total {
        let refs = if i == 0 {
            String::new()
        } else {
            format!("In-Reply-To: <c{}@x>\n", i - 1)
        };
        mbox.push_str(&format!(
            "From x@y Mon May  1 09:12:44 2023\nFrom: P{} <p{}@example.org>\nSubject: Re: chain\nDate: Mon, 1 May 2023 00:00:00 +0000\nMessage-ID: <c{i}@x>\n{refs}\nmessage marker-{i}-end\n\n",
            i % 7,
            i % 7
        ));
    }
    let (dir, report) = archive_of("chain", mbox.as_bytes());
    assert_eq!(report.messages_new as usize, total);
    // Two replies to a message missing from the archive (a placeholder with two children),
    // starting where the first page ends: the placeholder opens the second page (every
    // node is on exactly one page).
    let (ghosted, _) = archive_of(
        "ghost",
        mbox.replace(
            &format!("In-Reply-To: <c{}@x>\n", PER_PAGE - 1),
            "References: <c0@x> <missing@x>\n",
        )
        .replace(
            &format!("In-Reply-To: <c{PER_PAGE}@x>\n"),
            "References: <c0@x> <missing@x>\n",
        )
        .as_bytes(),
    );
    let app = app!(dir);
    let articles = |body: &str| body.matches("<article").count();
    let outline = |body: &str| body.matches("<li class=\"d").count();

    let (status, first, _) = get!(app, "/t/c0@x");
    assert_eq!(status, StatusCode::OK);
    assert!(first.contains("page 1 of 3"), "no pager");
    assert!(first.contains(&format!("{total} messages")));
    assert_eq!(articles(&first), PER_PAGE);
    assert_eq!(outline(&first), PER_PAGE);
    assert!(first.contains("marker-0-end"));
    assert!(!first.contains(&format!("marker-{PER_PAGE}-end")));
    // The last message of the page leads on to the next page.
    let next = format!(
        "?page=2#{}",
        super::render::anchor(&format!("c{PER_PAGE}@x"))
    );
    assert!(first.contains(&format!("href=\"{next}\"")), "{next}");

    // Without ?page=, a message's thread link opens its own page.
    let middle = PER_PAGE + 7;
    let (_, second, _) = get!(app, &format!("/t/c{middle}@x"));
    assert!(second.contains("page 2 of 3"));
    assert!(second.contains(&format!(
        "id=\"{}\"",
        super::render::anchor(&format!("c{middle}@x"))
    )));
    assert_eq!(articles(&second), PER_PAGE);
    assert_eq!(outline(&second), PER_PAGE);
    // Its first message's parent is on page 1.
    let parent = format!(
        "?page=1#{}",
        super::render::anchor(&format!("c{}@x", PER_PAGE - 1))
    );
    assert!(second.contains(&format!("href=\"{parent}\"")), "{parent}");

    let (_, last, _) = get!(app, "/t/c0@x?page=3");
    assert!(last.contains("page 3 of 3"));
    assert_eq!(articles(&last), 100);
    let (status, _, _) = get!(app, "/t/c0@x?page=4");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = get!(app, "/t/c0@x?page=0");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    // The flat view pages too, and its links stay flat.
    let (_, flat, _) = get!(app, "/t/c0@x?view=flat&page=2");
    assert!(flat.contains("page 2 of 3"));
    assert_eq!(articles(&flat), PER_PAGE);
    assert!(
        flat.contains("href=\"?page=3&amp;view=flat\""),
        "flat pager"
    );

    let ghost_app = app!(ghosted);
    let mut nodes = 0;
    let mut placeholders = 0;
    for page in 1..=3 {
        let (status, body, _) = get!(ghost_app, &format!("/t/c0@x?page={page}"));
        assert_eq!(status, StatusCode::OK);
        nodes += outline(&body);
        placeholders += body.matches("[message not in the archive]").count();
    }
    assert_eq!((nodes, placeholders), (total + 1, 1));

    // The API pages a thread by a thousand messages, oldest first.
    let (_, api, _) = get!(app, "/api/v1/threads/c5@x");
    let v: serde_json::Value = serde_json::from_str(&api).expect("json");
    assert_eq!(v["total"], total);
    assert_eq!(v["page"], 1);
    assert_eq!(v["pages"], 2);
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(1000));
    assert_eq!(v["messages"][0]["message_id"], "c0@x");
    let (_, api, _) = get!(app, "/api/v1/threads/c5@x?page=2");
    let v: serde_json::Value = serde_json::from_str(&api).expect("json");
    assert_eq!(v["messages"].as_array().map(Vec::len), Some(total - 1000));
    let (status, _, _) = get!(app, "/api/v1/threads/c5@x?page=3");
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body, _) = get!(app, "/api/v1/messages/nosuch@x");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("\"search\":\"msgid:nosuch@x\""), "{body}");
}

/// Before the first import the archive is empty, not missing: lists and searches answer
/// with nothing in them, and the first import shows at once.
#[actix_web::test]
async fn a_server_started_before_any_import_answers_empty_then_serves_the_import() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("data")).expect("mkdir");
    let app = app!(dir);
    let (status, home, _) = get!(app, "/");
    assert_eq!(status, StatusCode::OK);
    assert!(home.contains("Nothing imported yet"), "{home}");
    let (status, lists, _) = get!(app, "/api/v1/lists");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(lists, "{\"lists\":[]}");
    let (status, search, _) = get!(app, "/api/v1/search?q=placement");
    assert_eq!(status, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&search).expect("json");
    assert_eq!(v["total"], 0);
    let (status, _, _) = get!(app, "/dev/");
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nothing was written by the server.
    assert!(!dir.path().join("data").join("archive.sqlite3").exists());

    let file = dir.path().join("dev").join("2023-05.mbox");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    std::fs::write(&file, fixture()).expect("write");
    import(&dir.path().join("data"), file);
    let (_, lists, _) = get!(app, "/api/v1/lists");
    assert!(lists.contains("\"name\":\"dev\""), "{lists}");
    let (_, search, _) = get!(app, "/api/v1/search?q=placement");
    let v: serde_json::Value = serde_json::from_str(&search).expect("json");
    assert!(v["total"].as_u64().is_some_and(|n| n > 0), "{search}");
}
