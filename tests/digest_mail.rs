//! Digest delivery against a real SMTP server: aiosmtpd (`tests/smtp_sink.py`) on 127.0.0.1,
//! started by each test and saving every message's exact bytes. Double opt-in through the
//! confirmation email, MIME structure and headers, exactly one digest per subscriber, a sender
//! killed mid-run and resumed, transient and permanent failures, one-click unsubscribe.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use mail_parser::MimeHeaders;
use serde_json::Value;

use crate::support::Archive;

const TOKEN_KEY: &str = "test-token-key-0123456789abcdef-0123456789";
const BASE: &str = "https://archive.example.org";

/// The SMTP sink, killed when dropped.
struct SmtpSink {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl SmtpSink {
    /// Starts the sink, or returns `None` (skipping the test) when aiosmtpd is not installed;
    /// under `CI=true` that is a failure.
    fn start(dir: &Path, args: &[&str]) -> Option<SmtpSink> {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_sink.py");
        let available = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .output()
            .is_ok_and(|o| o.status.success());
        if !available {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but python3 with aiosmtpd is missing (scripts/test installs it)");
            }
            eprintln!(
                "skipping: python3 -c 'import aiosmtpd' failed (run scripts/test to install it)"
            );
            return None;
        }
        let mut child = Command::new("python3")
            .arg(&script)
            .arg(dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP sink");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("read the sink's port");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected sink output {line:?}"));
        Some(SmtpSink {
            child,
            port,
            dir: dir.to_path_buf(),
        })
    }

    /// Every saved message, in arrival order: (envelope recipients, exact bytes).
    fn messages(&self) -> Vec<(Vec<String>, Vec<u8>)> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .expect("read sink dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|eml| {
                let envelope: Value = serde_json::from_slice(
                    &std::fs::read(eml.with_extension("json")).expect("envelope"),
                )
                .expect("envelope JSON");
                let rcpts = envelope["rcpt_tos"]
                    .as_array()
                    .expect("rcpt_tos")
                    .iter()
                    .filter_map(|v| v.as_str().map(str::to_lowercase))
                    .collect();
                (rcpts, std::fs::read(&eml).expect("eml"))
            })
            .collect()
    }

    /// The digests among the messages (they carry List-Unsubscribe; confirmations do not).
    fn digests(&self) -> Vec<(Vec<String>, Vec<u8>)> {
        self.messages()
            .into_iter()
            .filter(|(_, m)| header(m, "List-Unsubscribe").is_some())
            .collect()
    }
}

/// A header's unfolded value, from the raw bytes.
fn header(message: &[u8], name: &str) -> Option<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = head.split("\r\n").peekable();
    while let Some(line) = lines.next() {
        let Some((n, v)) = line.split_once(':') else {
            continue;
        };
        if n.eq_ignore_ascii_case(name) {
            let mut value = v.trim().to_string();
            while let Some(next) = lines.peek() {
                if next.starts_with([' ', '\t']) {
                    value.push(' ');
                    value.push_str(next.trim());
                    lines.next();
                } else {
                    break;
                }
            }
            return Some(value);
        }
    }
    None
}

fn write_config(a: &Archive, port: u16, rate: f64) -> PathBuf {
    let path = a.dir.path().join("archivist.toml");
    let text = format!(
        "[digest]\nfrom = \"Archive digests <digest@archive.example.org>\"\nbase_url = \"{BASE}\"\n\
         transport = \"smtp\"\n\n[digest.smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"plain\"\n\
         rate = {rate:.1}\nmax_attempts = 3\ntimeout_seconds = 10\n"
    );
    std::fs::write(&path, text).expect("write config");
    path
}

fn cmd(a: &Archive, config: &Path, args: &[&str]) -> Command {
    let mut c = a.cmd();
    c.arg("--config")
        .arg(config)
        .args(args)
        .env("ARCHIVIST_TOKEN_KEY", TOKEN_KEY);
    c
}

fn run(a: &Archive, config: &Path, args: &[&str]) -> Output {
    cmd(a, config, args).output().expect("run archivist")
}

fn ok(a: &Archive, config: &Path, args: &[&str]) -> String {
    let out = run(a, config, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sample_archive(a: &Archive) {
    let sample = a.dir.path().join("sample");
    let out = a.run(&[
        "sample",
        "--out",
        &sample.display().to_string(),
        "--weeks",
        "3",
        "--per-week",
        "60",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.import(&[&sample.display().to_string()]);
}

/// The link after `prefix` in a message's text part.
fn link_token(message: &[u8], prefix: &str) -> String {
    let parsed = mail_parser::MessageParser::default()
        .parse(message)
        .expect("parse email");
    let text = parsed.body_text(0).expect("text part").into_owned();
    let start = text
        .find(prefix)
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
    text[start + prefix.len()..]
        .split_whitespace()
        .next()
        .expect("token")
        .to_string()
}

/// Subscribes and confirms through the confirmation email; returns the confirmation's bytes.
fn subscribe_and_confirm(a: &Archive, config: &Path, sink: &SmtpSink, email: &str, extra: &[&str]) {
    let before = sink.messages().len();
    let mut args = vec!["digest", "subscribe", email];
    args.extend_from_slice(extra);
    let out = ok(a, config, &args);
    assert!(!out.contains(email), "the full address is printed: {out}");
    let messages = sink.messages();
    assert_eq!(messages.len(), before + 1, "one confirmation email");
    let (rcpts, confirmation) = &messages[before];
    assert_eq!(rcpts, &vec![email.to_string()]);
    let token = link_token(confirmation, &format!("{BASE}/digest/confirm/"));
    ok(a, config, &["digest", "confirm", &token]);
}

fn send(a: &Archive, config: &Path, week: &str) -> Value {
    let out = ok(a, config, &["digest", "send", "--week", week, "--json"]);
    serde_json::from_str(&out).expect("send report")
}

fn per_recipient(digests: &[(Vec<String>, Vec<u8>)]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for (rcpts, _) in digests {
        for r in rcpts {
            *out.entry(r.clone()).or_insert(0) += 1;
        }
    }
    out
}

#[test]
fn digests_reach_a_real_smtp_server_once_per_subscriber() {
    let a = Archive::new();
    let Some(sink) = SmtpSink::start(&a.dir.path().join("mailbox"), &[]) else {
        return;
    };
    sample_archive(&a);
    let config = write_config(&a, sink.port, 0.0);
    // Secrets come from the environment and are never printed.
    let shown = ok(&a, &config, &["config", "--show"]);
    assert!(
        shown.contains("token_key: [redacted]") && !shown.contains(TOKEN_KEY),
        "{shown}"
    );

    subscribe_and_confirm(&a, &config, &sink, "ann@example.org", &["--lists", "dev"]);
    subscribe_and_confirm(
        &a,
        &config,
        &sink,
        "bob@example.org",
        &["--lists", "dev,operators"],
    );
    subscribe_and_confirm(
        &a,
        &config,
        &sink,
        "cy@example.org",
        &["--lists", "dev", "--query", "tag:nova"],
    );
    // Dan never confirms: nothing may reach him but the confirmation.
    ok(
        &a,
        &config,
        &["digest", "subscribe", "dan@example.org", "--lists", "dev"],
    );
    // A tampered token confirms nothing.
    let (_, dan_confirmation) = sink.messages().pop().expect("dan's confirmation");
    let token = link_token(&dan_confirmation, &format!("{BASE}/digest/confirm/"));
    let flipped = if token.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &token[..token.len() - 1]);
    let out = run(&a, &config, &["digest", "confirm", &tampered]);
    assert_eq!(out.status.code(), Some(1), "tampered token accepted");
    // Header injection through the address is refused before anything is stored.
    let out = run(
        &a,
        &config,
        &[
            "digest",
            "subscribe",
            "eve@example.org\r\nBcc: x@example.org",
            "--lists",
            "dev",
        ],
    );
    assert_eq!(out.status.code(), Some(2));

    let report = send(&a, &config, "2023-W19");
    assert_eq!(report["sent"], 3, "{report}");
    assert_eq!(report["completed"], true, "{report}");
    let digests = sink.digests();
    let counts = per_recipient(&digests);
    assert_eq!(
        counts,
        BTreeMap::from([
            ("ann@example.org".to_string(), 1),
            ("bob@example.org".to_string(), 1),
            ("cy@example.org".to_string(), 1),
        ])
    );
    let mut ids = BTreeSet::new();
    for (rcpts, m) in &digests {
        let to = &rcpts[0];
        let h = |n: &str| header(m, n).unwrap_or_else(|| panic!("no {n} header for {to}"));
        assert_eq!(
            h("From"),
            "\"Archive digests\" <digest@archive.example.org>"
        );
        assert_eq!(h("To"), *to);
        // The em dash is an RFC 2047 encoded word; the raw header is ASCII.
        let raw_subject = h("Subject");
        assert!(
            raw_subject.is_ascii() && raw_subject.contains("=?utf-8?"),
            "{raw_subject}"
        );
        assert!(h("Date").ends_with("+0000"), "{}", h("Date"));
        let id = h("Message-ID");
        assert!(id.starts_with("<digest.2023-W19.") && id.ends_with("@archive.example.org>"));
        assert!(ids.insert(id), "duplicate Message-ID");
        assert_eq!(h("List-Id"), "Weekly digest <digest.archive.example.org>");
        assert!(h("List-Unsubscribe").starts_with(&format!("<{BASE}/digest/unsubscribe/")));
        assert_eq!(h("List-Unsubscribe-Post"), "List-Unsubscribe=One-Click");
        assert_eq!(h("Auto-Submitted"), "auto-generated");
        assert!(h("Content-Type").starts_with("multipart/alternative"));
        let parsed = mail_parser::MessageParser::default()
            .parse(m)
            .expect("parse digest");
        let subject = parsed.subject().expect("subject");
        assert!(subject.starts_with("Weekly digest 2023-W19: "), "{subject}");
        let lists = if to.starts_with("bob") {
            "dev, operators"
        } else {
            "dev"
        };
        assert!(subject.ends_with(&format!(" — {lists}")), "{subject}");
        // Exactly a text part and an HTML part.
        let types: Vec<String> = parsed
            .parts
            .iter()
            .skip(1)
            .map(|p| {
                p.content_type()
                    .map(|c| format!("{}/{}", c.c_type, c.subtype().unwrap_or("")))
                    .unwrap_or_default()
            })
            .collect();
        assert_eq!(types, ["text/plain", "text/html"], "{to}");
        let text = parsed.body_text(0).expect("text").into_owned();
        let html = parsed.body_html(0).expect("html").into_owned();
        assert!(text.contains(&format!("{BASE}/t/")), "{text}");
        assert!(html.contains(&format!("href=\"{BASE}/t/")), "{html}");
        assert!(text.contains(&format!("{BASE}/digest/manage/")));
        assert!(!html.contains("<script") && !html.contains("<img"));
        if to.starts_with("cy") {
            // The saved search keeps only [nova] threads.
            let subjects: Vec<&str> = text.lines().filter(|l| l.starts_with("* ")).collect();
            assert!(!subjects.is_empty(), "{text}");
            for s in subjects {
                assert!(s.to_lowercase().contains("nova"), "{s}");
            }
        }
    }

    // Re-running a completed week sends nothing.
    let report = send(&a, &config, "2023-W19");
    assert_eq!(report["already_completed"], true, "{report}");
    assert_eq!(sink.digests().len(), 3);

    // One-click unsubscribe with the token of Bob's List-Unsubscribe header.
    let (_, bobs) = digests
        .iter()
        .find(|(r, _)| r[0].starts_with("bob"))
        .expect("bob's digest");
    let url = header(bobs, "List-Unsubscribe").expect("header");
    let token = url
        .trim_matches(['<', '>'])
        .rsplit('/')
        .next()
        .expect("token")
        .to_string();
    ok(&a, &config, &["digest", "unsubscribe", &token]);
    let report = send(&a, &config, "2023-W20");
    assert_eq!(report["sent"], 2, "{report}");
    let counts = per_recipient(&sink.digests());
    assert_eq!(counts.get("bob@example.org"), Some(&1), "{counts:?}");
    assert_eq!(counts.get("ann@example.org"), Some(&2), "{counts:?}");
    assert_eq!(counts.get("dan@example.org"), None);
}

#[test]
fn a_killed_sender_resumes_without_duplicates() {
    let a = Archive::new();
    let Some(sink) = SmtpSink::start(&a.dir.path().join("mailbox"), &[]) else {
        return;
    };
    sample_archive(&a);
    // Ten messages a second: the sender spends most of its time waiting between messages,
    // which is where it gets killed.
    let config = write_config(&a, sink.port, 10.0);
    let people: Vec<String> = (0..10).map(|i| format!("u{i}@example.org")).collect();
    for p in &people {
        subscribe_and_confirm(&a, &config, &sink, p, &["--lists", "dev"]);
    }
    let mut child = cmd(&a, &config, &["digest", "send", "--week", "2023-W19"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start sender");
    let started = Instant::now();
    while sink.digests().len() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the sender made no progress"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // The server has the 4th message; let the sender record it, then SIGKILL it.
    std::thread::sleep(Duration::from_millis(40));
    child.kill().expect("kill -9 the sender");
    child.wait().expect("reap");
    let before = sink.digests().len();
    assert!(
        before < people.len(),
        "the sender finished before it was killed"
    );
    let sent: i64 = a
        .sql()
        .query_row(
            "SELECT COUNT(*) FROM digest_outbox WHERE week = '2023-W19' AND state = 'sent'",
            [],
            |r| r.get(0),
        )
        .expect("count");
    assert_eq!(sent as usize, before, "ledger and mailbox disagree");

    let report = send(&a, &config, "2023-W19");
    assert_eq!(report["completed"], true, "{report}");
    assert_eq!(report["sent"], (people.len() - before) as u64, "{report}");
    let digests = sink.digests();
    let counts = per_recipient(&digests);
    assert_eq!(counts.len(), people.len(), "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
    let ids: BTreeSet<String> = digests
        .iter()
        .map(|(_, m)| header(m, "Message-ID").expect("id"))
        .collect();
    assert_eq!(ids.len(), people.len());
    // And once more: nothing.
    let report = send(&a, &config, "2023-W19");
    assert_eq!(report["already_completed"], true);
    assert_eq!(sink.digests().len(), people.len());
}

#[test]
fn transient_failures_are_retried_and_permanent_ones_recorded() {
    let a = Archive::new();
    sample_archive(&a);
    {
        let Some(sink) = SmtpSink::start(&a.dir.path().join("mailbox1"), &[]) else {
            return;
        };
        let config = write_config(&a, sink.port, 0.0);
        subscribe_and_confirm(&a, &config, &sink, "ok@example.org", &["--lists", "dev"]);
        subscribe_and_confirm(&a, &config, &sink, "gone@example.org", &["--lists", "dev"]);
    }
    // A server that defers the first message (451) and refuses one mailbox (550).
    let Some(sink) = SmtpSink::start(
        &a.dir.path().join("mailbox2"),
        &["--transient", "1", "--reject", "gone@example.org"],
    ) else {
        return;
    };
    let config = write_config(&a, sink.port, 0.0);
    let report = send(&a, &config, "2023-W19");
    assert_eq!(report["sent"], 1, "{report}");
    assert_eq!(report["failed"], 1, "{report}");
    assert_eq!(report["completed"], true, "{report}");
    assert_eq!(
        per_recipient(&sink.digests()),
        BTreeMap::from([("ok@example.org".to_string(), 1)])
    );
    let (state, attempts, error): (String, i64, String) = a
        .sql()
        .query_row(
            "SELECT o.state, o.attempts, o.last_error FROM digest_outbox o
             JOIN digest_subscribers s ON s.id = o.subscriber WHERE s.email = 'gone@example.org'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .expect("ledger row");
    assert_eq!(state, "failed");
    assert!(
        error.starts_with("permanent") && error.contains("550"),
        "{error}"
    );
    let ok_attempts: i64 = a
        .sql()
        .query_row(
            "SELECT o.attempts FROM digest_outbox o
             JOIN digest_subscribers s ON s.id = o.subscriber WHERE s.email = 'ok@example.org'",
            [],
            |r| r.get(0),
        )
        .expect("ledger row");
    // The first attempt of whichever went first was deferred; a permanent refusal is tried once.
    assert!(attempts == 1 || attempts == 2, "{attempts}");
    assert!(ok_attempts + attempts == 3, "{ok_attempts} + {attempts}");
    // A failed row is not retried forever: the week is complete.
    let report = send(&a, &config, "2023-W19");
    assert_eq!(report["already_completed"], true);
    // A dry run says what a real run would do: nothing.
    let out = ok(
        &a,
        &config,
        &[
            "digest",
            "send",
            "--week",
            "2023-W19",
            "--dry-run",
            "--json",
        ],
    );
    let dry: Value = serde_json::from_str(&out).expect("dry run report");
    assert_eq!(dry["already_completed"], true, "{dry}");
    assert_eq!(dry["digests"], serde_json::json!([]), "{dry}");
}

/// A mail server down for a whole run loses nothing: the run fails (exit 1) with the week
/// left open, and the run after the server is back sends every digest once.
#[test]
fn a_mail_server_down_during_a_run_delays_the_week_and_loses_nothing() {
    let a = Archive::new();
    sample_archive(&a);
    {
        let Some(sink) = SmtpSink::start(&a.dir.path().join("mailbox1"), &[]) else {
            return;
        };
        let config = write_config(&a, sink.port, 0.0);
        subscribe_and_confirm(&a, &config, &sink, "one@example.org", &["--lists", "dev"]);
        subscribe_and_confirm(&a, &config, &sink, "two@example.org", &["--lists", "dev"]);
    }
    // A port nobody listens on: every connection is refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let config = write_config(&a, closed, 0.0);
    // A week not over yet is refused (its digest would be partial, and the week closed).
    let out = run(&a, &config, &["digest", "send", "--week", "2999-W01"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("has not ended yet"),
        "{out:?}"
    );
    let runs: i64 = a
        .sql()
        .query_row("SELECT count(*) FROM digest_runs", [], |r| r.get(0))
        .expect("count runs");
    assert_eq!(runs, 0);
    let out = run(
        &a,
        &config,
        &["digest", "send", "--week", "2023-W19", "--json"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(stdout.trim()).expect("send report");
    assert_eq!(report["deferred"], 2, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    assert_eq!(report["completed"], false, "{report}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("again later"),
        "{out:?}"
    );
    // A server that wants a login refuses every message alike (530): that is the server's
    // configuration, not the subscribers', so the week waits as above.
    {
        let Some(sink) = SmtpSink::start(&a.dir.path().join("mailbox-auth"), &["--auth-required"])
        else {
            return;
        };
        let config = write_config(&a, sink.port, 0.0);
        let out = run(
            &a,
            &config,
            &["digest", "send", "--week", "2023-W19", "--json"],
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let report: Value =
            serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("report");
        assert_eq!(report["deferred"], 2, "{report}");
        assert_eq!(report["failed"], 0, "{report}");
        assert_eq!(report["completed"], false, "{report}");
        let error: String = a
            .sql()
            .query_row("SELECT max(last_error) FROM digest_outbox", [], |r| {
                r.get(0)
            })
            .expect("ledger");
        assert!(
            error.contains("refused the session") && error.contains("530"),
            "{error}"
        );
    }
    let Some(sink) = SmtpSink::start(&a.dir.path().join("mailbox2"), &[]) else {
        return;
    };
    let config = write_config(&a, sink.port, 0.0);
    let report = send(&a, &config, "2023-W19");
    assert_eq!(report["sent"], 2, "{report}");
    assert_eq!(report["completed"], true, "{report}");
    assert_eq!(
        per_recipient(&sink.digests()),
        BTreeMap::from([
            ("one@example.org".to_string(), 1),
            ("two@example.org".to_string(), 1)
        ])
    );
}

/// `archivist serve` runs the weekly schedule itself: started after the send time it sends
/// the missed week once; restarted, it sends nothing more.
#[test]
fn serve_sends_a_missed_week_once_and_never_twice() {
    let a = Archive::new();
    let Some(sink) = SmtpSink::start(&a.dir.path().join("mailbox"), &[]) else {
        return;
    };
    // One thread in the previous ISO week (the week due, with the send time Monday 00:00).
    let week_ago = time::OffsetDateTime::now_utc() - time::Duration::days(7);
    let date = week_ago
        .format(&time::format_description::well_known::Rfc2822)
        .expect("date");
    let mbox = a.dir.path().join("dev").join("recent.mbox");
    std::fs::create_dir_all(mbox.parent().expect("parent")).expect("mkdir");
    let msg = crate::support::message(
        &[
            ("From", "Alice <alice@example.org>"),
            ("Subject", "placement upgrade plan"),
            ("Date", date.as_str()),
            ("Message-ID", "<recent@example.org>"),
        ],
        "We should upgrade the placement service first.\n",
    );
    std::fs::write(&mbox, crate::support::mboxrd(&[msg])).expect("write mbox");
    a.import(&[&mbox.display().to_string()]);
    let config = write_config(&a, sink.port, 0.0);
    let text = std::fs::read_to_string(&config).expect("config");
    std::fs::write(
        &config,
        text.replace(
            "transport = \"smtp\"\n",
            "transport = \"smtp\"\nweekday = \"monday\"\nhour = 0\n",
        ),
    )
    .expect("config");
    subscribe_and_confirm(&a, &config, &sink, "ann@example.org", &["--lists", "dev"]);

    let serve = |log: &str| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        cmd(
            &a,
            &config,
            &["serve", "--bind", &format!("127.0.0.1:{port}")],
        )
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(a.dir.path().join(log)).expect("log"))
        .spawn()
        .expect("start serve")
    };
    let log = |name: &str| std::fs::read_to_string(a.dir.path().join(name)).unwrap_or_default();

    let mut first = serve("serve1.log");
    let deadline = Instant::now() + Duration::from_secs(60);
    while sink.digests().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    // Wait for the run to record itself before stopping the server.
    while !log("serve1.log").contains("archivist serve: digest ") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = first.kill();
    let _ = first.wait();
    let digests = sink.digests();
    assert_eq!(
        digests.len(),
        1,
        "serve did not send the missed week: {}",
        log("serve1.log")
    );
    assert_eq!(digests[0].0, vec!["ann@example.org".to_string()]);
    let subject = header(&digests[0].1, "Subject").expect("subject");
    let expected = format!(
        "Weekly digest {}-W{:02}",
        week_ago.to_iso_week_date().0,
        week_ago.iso_week()
    );
    assert!(subject.starts_with(&expected), "{subject} vs {expected}");

    // Restarted: the start-up check finds the week completed and sends nothing.
    let mut second = serve("serve2.log");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log("serve2.log").contains("serving on") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    let _ = second.kill();
    let _ = second.wait();
    assert_eq!(sink.digests().len(), 1, "a restart sent the week again");
    assert!(
        !log("serve2.log").contains("archivist serve: digest "),
        "{}",
        log("serve2.log")
    );
}
