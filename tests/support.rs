//! Helpers shared by the integration tests: running the real binary against a temporary
//! archive, finding the shared corpus, building mbox fixtures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The shared corpus (`../shared/corpus`), or `None` with a message when it is absent. Under
/// CI (`CI=true`) its absence is a failure, never a silent skip.
pub fn corpus() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus");
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but the shared corpus is missing at {}",
            dir.display()
        );
    }
    eprintln!(
        "skipping: the shared corpus is not at {} (tests that need it are skipped outside CI)",
        dir.display()
    );
    None
}

/// A temporary archive directory and the binary to run against it.
pub struct Archive {
    pub dir: tempfile::TempDir,
}

impl Archive {
    pub fn new() -> Archive {
        Archive {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn db(&self) -> PathBuf {
        self.data_dir().join("archive.sqlite3")
    }

    /// A command for the binary with this archive's data dir.
    pub fn cmd(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_archivist"));
        cmd.arg("--data-dir").arg(self.data_dir());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run archivist")
    }

    /// Runs `import --json` and returns the report; panics with stderr on failure.
    pub fn import(&self, args: &[&str]) -> Value {
        let mut all = vec!["import", "--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(
            out.status.success(),
            "import {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
        check_accounting(&report);
        report
    }

    pub fn import_paths(&self, paths: &[&Path], extra: &[&str]) -> Value {
        let mut args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.import(&refs)
    }

    pub fn stats(&self) -> Value {
        let out = self.run(&["stats", "--json"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("stats JSON")
    }

    pub fn raw(&self, id: &str) -> Vec<u8> {
        let out = self.run(&["raw", id]);
        assert!(
            out.status.success(),
            "raw {id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.db()).expect("open archive db")
    }
}

/// Every record read is accounted for: new, cross-post, duplicate, or a problem.
pub fn check_accounting(report: &Value) {
    let n = |k: &str| {
        report[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} missing in {report}"))
    };
    assert_eq!(
        n("messages_read"),
        n("messages_new") + n("cross_posts") + n("duplicates") + n("problems")
            - n("framing_problems"),
        "accounting: {}",
        summary(report)
    );
    assert!(report["seconds"].as_f64().is_some());
    assert!(n("files") >= 1 || n("messages_read") == 0);
}

/// The report without its per-file details, for assertion messages.
pub fn summary(report: &Value) -> Value {
    let mut short = report.clone();
    if let Some(obj) = short.as_object_mut() {
        obj.remove("details");
        obj.remove("skipped");
    }
    short
}

pub fn num(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

/// A minimal message with the given headers and body (LF line endings).
pub fn message(headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\n").as_bytes());
    }
    out.extend_from_slice(b"\n");
    out.extend_from_slice(body.as_bytes());
    out
}

/// mboxrd framing: envelope line, `>From ` quoting, blank line after each message.
pub fn mboxrd(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in messages {
        out.extend_from_slice(b"From test@example.org Mon May  1 09:12:44 2023\n");
        for line in m.split_inclusive(|&b| b == b'\n') {
            let depth = line.iter().take_while(|&&b| b == b'>').count();
            if line[depth..].starts_with(b"From ") {
                out.push(b'>');
            }
            out.extend_from_slice(line);
        }
        if !m.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

/// A simple message with an id, subject, date offset and optional references.
pub fn simple(id: &str, subject: &str, minute: u32, refs: &[&str], body: &str) -> Vec<u8> {
    let date = format!("Mon, 1 May 2023 10:{minute:02}:00 +0000");
    let mid = format!("<{id}>");
    let refs_value = refs
        .iter()
        .map(|r| format!("<{r}>"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut headers = vec![
        ("From", "Alice <alice@example.org>"),
        ("To", "dev@lists.example.org"),
        ("Subject", subject),
        ("Date", date.as_str()),
        ("Message-ID", mid.as_str()),
    ];
    if !refs.is_empty() {
        headers.push(("References", refs_value.as_str()));
    }
    message(&headers, body)
}
