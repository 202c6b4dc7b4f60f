//! The shared corpus of real mailing-list data: every file imports, and counts are checked
//! against independent counts made here with plain string scanning, not with our splitter.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use archivist::ingest::mbox::{Item, Splitter};
use archivist::ingest::parse;

use crate::support::{corpus, num, summary, Archive};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let p = entry.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn read_maybe_gz(path: &Path) -> Vec<u8> {
    let bytes = std::fs::read(path).expect("read");
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(&bytes[..])
            .read_to_end(&mut out)
            .expect("gunzip");
        out
    } else {
        bytes
    }
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// `From <anything> Www Mmm dd hh:mm:ss yyyy` judged by hand, independent of the importer.
fn is_strict_separator(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("From ") else {
        return false;
    };
    let words: Vec<&str> = rest.split_whitespace().collect();
    let n = words.len();
    n >= 6
        && DAYS.contains(&words[n - 5])
        && words[n - 4].len() == 3
        && words[n - 2].len() == 8
        && words[n - 2].as_bytes()[2] == b':'
        && words[n - 1].len() == 4
        && words[n - 1].bytes().all(|b| b.is_ascii_digit())
}

/// Header fields (unfolded) of each record: the independent splitter for strict files.
fn records(text: &str, needs_from_header: bool) -> Vec<BTreeMap<String, String>> {
    let lines: Vec<&str> = text.split('\n').collect();
    let mut starts = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let next_is_header = lines.get(i + 1).is_some_and(|l| l.starts_with("From: "));
        if is_strict_separator(line) && (!needs_from_header || next_is_header) {
            starts.push(i);
        }
    }
    starts
        .iter()
        .map(|&s| {
            let mut headers = BTreeMap::new();
            let mut last: Option<String> = None;
            for line in &lines[s + 1..] {
                if line.is_empty() {
                    break;
                }
                if line.starts_with([' ', '\t']) {
                    if let Some(k) = &last {
                        if let Some(v) = headers.get_mut(k) {
                            let v: &mut String = v;
                            v.push(' ');
                            v.push_str(line.trim());
                        }
                    }
                    continue;
                }
                if let Some((k, v)) = line.split_once(':') {
                    let k = k.trim().to_ascii_lowercase();
                    headers
                        .entry(k.clone())
                        .or_insert_with(|| v.trim().to_string());
                    last = Some(k);
                }
            }
            headers
        })
        .collect()
}

fn clean_id(raw: &str) -> String {
    raw.trim()
        .trim_start_matches('<')
        .split('>')
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn every_corpus_file_imports_without_panic_and_accounts_for_every_record() {
    let Some(dir) = corpus() else { return };
    let a = Archive::new();
    let files = files_under(&dir);
    assert!(
        files.len() > 500,
        "corpus looks incomplete: {} files",
        files.len()
    );
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let report = a.import_paths(&refs, &["--list", "corpus"]);
    assert_eq!(num(&report, "files"), files.len() as u64);
    assert!(
        num(&report, "messages_new") > 5000,
        "{}",
        report["messages_new"]
    );
    // Every record is found again by file and offset: the first copy of a message in the list
    // by its membership, every further copy (the kernel cross-posts, imported here under one
    // list, and the R lists' messages archived twice) in `copies`, the rest as problems.
    let db = a.sql();
    let places = |sql: &str| -> BTreeMap<String, BTreeSet<i64>> {
        let mut out: BTreeMap<String, BTreeSet<i64>> = BTreeMap::new();
        let mut stmt = db.prepare(sql).expect("prepare");
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
            .expect("query");
        for row in rows {
            let (path, offset) = row.expect("row");
            assert!(
                out.entry(path.clone()).or_default().insert(offset),
                "{path} offset {offset} recorded twice"
            );
        }
        out
    };
    let mut stored = places(
        "SELECT f.path, m.offset FROM memberships m JOIN files f ON f.id = m.file
         UNION ALL SELECT f.path, c.offset FROM copies c JOIN files f ON f.id = c.file
         UNION ALL SELECT f.path, p.offset FROM problems p JOIN files f ON f.id = p.file",
    );
    let total: usize = stored.values().map(BTreeSet::len).sum();
    assert_eq!(
        total as u64,
        num(&report, "messages_read") + num(&report, "framing_problems"),
        "{}",
        summary(&report)
    );
    let copies: i64 = db
        .query_row("SELECT count(*) FROM copies", [], |r| r.get(0))
        .expect("count copies");
    let copies = copies as u64;
    assert_eq!(copies, num(&report, "duplicates"), "{}", summary(&report));
    assert!(copies > 0, "the corpus holds copies: {}", summary(&report));
    for detail in report["details"].as_array().expect("details") {
        let path = std::fs::canonicalize(detail["path"].as_str().expect("path")).expect("path");
        let found = stored
            .remove(path.to_str().expect("utf-8 path"))
            .unwrap_or_default();
        assert!(
            found.len() as u64 >= num(detail, "messages"),
            "{}: {} places recorded, {} messages read",
            path.display(),
            found.len(),
            detail["messages"]
        );
    }
    assert!(stored.is_empty(), "places of unknown files: {stored:?}");
    // A second run over the same files reads nothing and adds nothing.
    let again = a.import_paths(&refs, &["--list", "corpus"]);
    assert_eq!(num(&again, "messages_new"), 0);
    assert_eq!(num(&again, "problems"), 0);
}

#[test]
fn kernel_cross_posts_are_stored_once_with_all_their_lists() {
    let Some(dir) = corpus() else { return };
    let root = dir.join("vger-public-inbox");
    let a = Archive::new();
    let report = a.import(&[&root.display().to_string()]);
    // Independent count: records per file, distinct (Message-ID, From, Date) overall.
    let mut records_total = 0u64;
    let mut lists_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut versions: BTreeMap<String, BTreeSet<(String, String)>> = BTreeMap::new();
    for file in files_under(&root) {
        let name = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if !(name.ends_with(".mbox") || name.ends_with(".mbox.gz")) {
            continue;
        }
        let list = file
            .parent()
            .and_then(Path::file_name)
            .and_then(|n| n.to_str())
            .expect("list folder")
            .to_string();
        let text = String::from_utf8_lossy(&read_maybe_gz(&file)).into_owned();
        for headers in records(&text, false) {
            records_total += 1;
            let id = clean_id(
                headers
                    .get("message-id")
                    .expect("every kernel mail has an id"),
            );
            lists_of.entry(id.clone()).or_default().insert(list.clone());
            versions.entry(id).or_default().insert((
                headers.get("from").cloned().unwrap_or_default(),
                headers.get("date").cloned().unwrap_or_default(),
            ));
        }
    }
    let distinct: u64 = versions.values().map(|v| v.len() as u64).sum();
    assert_eq!(records_total, 3465);
    assert_eq!(num(&report, "messages_read"), records_total);
    assert_eq!(num(&report, "messages_new"), distinct);
    assert_eq!(num(&a.stats(), "messages"), distinct);
    let expected_cross: u64 = lists_of.values().map(|l| l.len() as u64 - 1).sum();
    assert_eq!(num(&report, "cross_posts"), expected_cross);
    // Every Message-ID is filed under exactly the lists whose archives hold it.
    let conn = a.sql();
    let mut stmt = conn
        .prepare(
            "SELECT m.header_message_id, l.name FROM messages m
             JOIN memberships ms ON ms.message = m.id JOIN lists l ON l.id = ms.list",
        )
        .expect("prepare");
    let mut stored: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .expect("query");
    for row in rows {
        let (id, list) = row.expect("row");
        stored.entry(id).or_default().insert(list);
    }
    assert_eq!(stored, lists_of);
    let in_all_four = stored.values().filter(|l| l.len() == 4).count();
    assert_eq!(
        in_all_four, 8,
        "1 id in all four lists in 2021-06, 7 in 2024-10"
    );
}

#[test]
fn pipermail_files_split_on_real_separators_only() {
    let Some(dir) = corpus() else { return };
    let root = dir.join("r-mailing-lists-pipermail");
    let a = Archive::new();
    let report = a.import(&[&root.display().to_string()]);
    let mut lists_of: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for detail in report["details"].as_array().expect("details") {
        let path = PathBuf::from(detail["path"].as_str().expect("path"));
        let text = String::from_utf8_lossy(&std::fs::read(&path).expect("read")).into_owned();
        let recs = records(&text, true);
        assert_eq!(
            num(detail, "messages"),
            recs.len() as u64,
            "{}",
            path.display()
        );
        assert_eq!(detail["variant"], "pipermail");
        for headers in recs {
            let id = clean_id(headers.get("message-id").expect("id"));
            lists_of
                .entry(id)
                .or_default()
                .insert(detail["list"].as_str().expect("list").to_string());
        }
    }
    let expected_cross: u64 = lists_of.values().map(|l| l.len() as u64 - 1).sum();
    assert_eq!(expected_cross, 48, "the corpus documents 48 shared ids");
    assert_eq!(num(&report, "cross_posts"), expected_cross);
    assert_eq!(num(&report, "problems"), 0);
    // Pipermail's `user at host` is undone where recoverable.
    let conn = a.sql();
    let hornik: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE from_addr = 'hornik@ci.tuwien.ac.at' AND from_name = 'Kurt Hornik'",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert!(
        hornik > 0,
        "`hornik at ci.tuwien.ac.at (Kurt Hornik)` is recovered"
    );
}

fn split_file(path: &Path) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).expect("read");
    Splitter::new(&bytes[..], 1 << 26)
        .map(|item| match item {
            Item::Message(m) => m.bytes,
            Item::Problem(p) => panic!("unexpected problem in {}: {p:?}", path.display()),
        })
        .collect()
}

fn body_of(message: &[u8]) -> &[u8] {
    let pos = message
        .windows(2)
        .position(|w| w == b"\n\n")
        .expect("header/body separator");
    &message[pos + 2..]
}

/// What `git mailinfo` does to a subject: leading `Re:` and `[tags]` go.
fn git_cleanup(subject: &str) -> &str {
    let mut s = subject.trim();
    loop {
        if s.len() >= 3 && s[..3].eq_ignore_ascii_case("re:") {
            s = s[3..].trim_start();
        } else if let (true, Some(end)) = (s.starts_with('['), s.find(']')) {
            s = s[end + 1..].trim_start();
        } else {
            return s;
        }
    }
}

#[test]
fn git_t5100_splits_as_git_expects() {
    let Some(dir) = corpus() else { return };
    let t = dir.join("git-mailinfo-t5100/t/t5100");
    assert_eq!(split_file(&t.join("sample.mbox")).len(), 18);
    assert_eq!(split_file(&t.join("rfc2047-samples.mbox")).len(), 11);
    // mboxrd: bodies equal git's split output. git keeps the blank line that ends each mbox
    // record; we strip it (as public-inbox does), so compare without it.
    let rd = split_file(&t.join("sample.mboxrd"));
    assert_eq!(rd.len(), 2);
    for (message, expected) in rd.iter().zip(["0001mboxrd", "0002mboxrd"]) {
        let want = std::fs::read(t.join(expected)).expect("expected file");
        let want = want.strip_suffix(b"\n").unwrap_or(&want);
        assert_eq!(
            String::from_utf8_lossy(body_of(message)),
            String::from_utf8_lossy(want),
            "{expected}"
        );
    }
    // RFC 2047 words decode as git decodes them.
    let samples = split_file(&t.join("rfc2047-samples.mbox"));
    let mut mismatches = Vec::new();
    for (i, raw) in samples.iter().enumerate() {
        let info = std::fs::read_to_string(t.join(format!("rfc2047-info-{:04}", i + 1)))
            .expect("info file");
        let parsed = parse::parse(raw, None, false).expect("parses");
        for line in info.lines() {
            if let Some(subject) = line.strip_prefix("Subject: ") {
                // RFC 2047 section 8's `(=?..?=)` examples: encoded words are only allowed
                // inside parentheses in comments, which Subject has none of, so mail-parser
                // keeps a space between the parenthesis and the decoded word where git does
                // not. Everything else must match exactly.
                let ours = git_cleanup(&parsed.subject)
                    .replace("( ", "(")
                    .replace(" )", ")");
                if ours != subject.trim() {
                    mismatches.push((i + 1, parsed.subject.clone(), subject.to_string()));
                }
            }
            if let Some(author) = line.strip_prefix("Author: ") {
                assert_eq!(
                    parsed.from.name.as_deref().map(str::trim),
                    Some(author.trim()),
                    "sample {}",
                    i + 1
                );
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:?}");
}

#[test]
fn stalwart_eml_files_parse_like_mail_parser_expects() {
    let Some(dir) = corpus() else { return };
    let root = dir.join("stalwart-mail-parser/resources/eml");
    let mut checked = 0;
    for file in files_under(&root) {
        if file.extension().is_none_or(|e| e != "eml") {
            continue;
        }
        let raw = std::fs::read(&file).expect("read");
        let lf: Vec<u8> = raw.iter().copied().filter(|&b| b != b'\r').collect();
        let expected: serde_json::Value = serde_json::from_slice(
            &std::fs::read(file.with_extension("json")).expect("expected json"),
        )
        .expect("json");
        let headers = expected["parts"][0]["headers"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let parsed = match parse::parse(&lf, None, false) {
            Ok(p) => p,
            Err(err) => {
                assert!(headers.is_empty(), "{} failed: {err}", file.display());
                continue;
            }
        };
        for h in &headers {
            match (h["name"].as_str(), h["value"]["Text"].as_str()) {
                (Some("subject"), Some(subject))
                    if headers.iter().filter(|x| x["name"] == "subject").count() == 1 =>
                {
                    assert_eq!(parsed.subject, subject, "{}", file.display());
                }
                (Some("message_id"), Some(id)) => {
                    let want = archivist::message::MessageId::parse(id);
                    if parsed.message_id.is_some() {
                        assert_eq!(parsed.message_id, want, "{}", file.display());
                    }
                }
                _ => {}
            }
        }
        checked += 1;
    }
    assert!(checked >= 100, "only {checked} .eml files checked");
}
