//! Search through the real binary: known answers on the kernel corpus and on fixtures,
//! lenient parsing of malformed queries, reindex while searching, catch-up after a crash.

use serde_json::Value;

use crate::support::{corpus, mboxrd, message, num, simple, Archive};

fn search(a: &Archive, args: &[&str]) -> Value {
    let mut all = vec!["search", "--json"];
    all.extend_from_slice(args);
    let out = a.run(&all);
    assert!(
        out.status.success(),
        "search {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("search JSON")
}

fn count(a: &Archive, sql: &str) -> u64 {
    a.sql()
        .query_row(sql, [], |r| r.get::<_, i64>(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}")) as u64
}

#[test]
fn known_answers_on_the_kernel_corpus() {
    let Some(dir) = corpus() else { return };
    let a = Archive::new();
    a.import(&[&dir.join("vger-public-inbox").display().to_string()]);

    // list: filters exactly, and a cross-posted message is one hit however many lists.
    for list in ["linux-nfs", "selinux"] {
        let page = search(&a, &["--limit", "0", &format!("list:{list}")]);
        let want = count(
            &a,
            &format!(
                "SELECT COUNT(*) FROM memberships ms JOIN lists l ON l.id = ms.list WHERE l.name = '{list}'"
            ),
        );
        assert_eq!(num(&page, "total"), want, "list:{list}");
    }
    let crossed: String = a
        .sql()
        .query_row(
            "SELECT m.message_id FROM messages m JOIN memberships ms ON ms.message = m.id
             GROUP BY m.id HAVING COUNT(*) = 4 ORDER BY m.message_id LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a message in all four lists");
    let page = search(&a, &[&format!("msgid:{crossed}")]);
    assert_eq!(num(&page, "total"), 1);
    assert_eq!(page["hits"][0]["lists"].as_array().map(Vec::len), Some(4));
    // Over several lists, each cross-posted message still counts once.
    let page = search(
        &a,
        &[
            "--limit",
            "0",
            "list:linux-nfs OR list:selinux OR list:linux-integrity",
        ],
    );
    let want = count(
        &a,
        "SELECT COUNT(DISTINCT ms.message) FROM memberships ms JOIN lists l ON l.id = ms.list
         WHERE l.name IN ('linux-nfs', 'selinux', 'linux-integrity')",
    );
    let copies = count(
        &a,
        "SELECT COUNT(*) FROM memberships ms JOIN lists l ON l.id = ms.list
         WHERE l.name IN ('linux-nfs', 'selinux', 'linux-integrity')",
    );
    assert!(
        copies > want,
        "the corpus has cross-posts among these lists"
    );
    assert_eq!(num(&page, "total"), want);
    // Matched through two of its lists at once, it is still one hit.
    let page = search(
        &a,
        &[&format!(
            "(list:linux-nfs OR list:selinux OR list:linux-integrity) msgid:{crossed}"
        )],
    );
    assert_eq!(num(&page, "total"), 1);
    assert_eq!(page["hits"].as_array().map(Vec::len), Some(1));

    // from: filters exactly.
    let sender: String = a
        .sql()
        .query_row(
            "SELECT from_addr FROM messages WHERE from_addr IS NOT NULL
             GROUP BY from_addr ORDER BY COUNT(*) DESC, from_addr LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a frequent sender");
    let page = search(&a, &["--limit", "0", &format!("from:{sender}")]);
    let want = count(
        &a,
        &format!("SELECT COUNT(*) FROM messages WHERE lower(from_addr) = lower('{sender}')"),
    );
    assert_eq!(num(&page, "total"), want, "from:{sender}");

    // after: is inclusive, before: exclusive, both whole UTC days.
    let page = search(&a, &["--limit", "0", "after:2021-06-01 before:2021-06-16"]);
    let want = count(
        &a,
        "SELECT COUNT(*) FROM messages WHERE date >= 1622505600 AND date < 1623801600",
    );
    assert!(want > 0);
    assert_eq!(num(&page, "total"), want);

    // Date ranges are inclusive whole UTC days.
    let page = search(&a, &["--limit", "0", "date:2021-06-01..2021-06-15"]);
    let want = count(
        &a,
        "SELECT COUNT(*) FROM messages WHERE date >= 1622505600 AND date < 1623801600",
    );
    assert_eq!(num(&page, "total"), want);
    let page = search(&a, &["--limit", "0", "date:2024-10"]);
    let want = count(
        &a,
        "SELECT COUNT(*) FROM messages WHERE date >= 1727740800 AND date < 1730419200",
    );
    assert_eq!(num(&page, "total"), want);

    // A distinctive phrase finds its message first: four consecutive words of a patch
    // subject that no other subject holds (in that order), searched in the subject and
    // anywhere.
    let subjects: Vec<(String, String)> = {
        let conn = a.sql();
        let mut stmt = conn
            .prepare(
                "SELECT message_id, subject FROM messages
                 WHERE subject LIKE '%[PATCH%' AND length(subject) > 40 ORDER BY message_id",
            )
            .expect("prepare");
        let rows = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("query");
        rows.collect::<Result<_, _>>().expect("rows")
    };
    let (id, words) = subjects
        .iter()
        .find_map(|(id, subject)| {
            let after_tag = subject.rsplit(']').next().unwrap_or_default();
            // Four neighbouring words, each of three letters or more.
            let all: Vec<String> = after_tag
                .split(|c: char| !c.is_alphanumeric())
                .filter(|w| !w.is_empty())
                .map(str::to_lowercase)
                .collect();
            let words: Vec<String> = all
                .windows(4)
                .find(|w| w.iter().all(|x| x.len() > 2))
                .map(<[String]>::to_vec)
                .unwrap_or_default();
            let pattern = format!("%{}%", words.join("%"));
            let holders = a
                .sql()
                .query_row(
                    "SELECT COUNT(*) FROM messages WHERE lower(subject) LIKE ?1",
                    [&pattern],
                    |r| r.get::<_, i64>(0),
                )
                .expect("count");
            (words.len() == 4 && holders == 1).then(|| (id.clone(), words))
        })
        .expect("a patch subject no other subject repeats");
    for scope in ["s:", ""] {
        let phrase = format!("{scope}\"{}\"", words.join(" "));
        let page = search(&a, &[&phrase]);
        assert_eq!(
            page["hits"][0]["message_id"].as_str(),
            Some(id.as_str()),
            "{phrase}: {page}"
        );
    }
    // Facets cover the whole result set.
    let page = search(&a, &["--limit", "1", "list:linux-integrity"]);
    let lists = page["facets"]["lists"].as_array().expect("list facet");
    assert!(lists.iter().any(|f| f["value"] == "linux-integrity"));
}

/// An import indexes the messages it has just stored from memory, and reads back from SQLite
/// only cross-posts and merged threads; a reindex reads everything from SQLite. Both must give
/// the same documents: same totals, hits, lists, snippets and facets for every query. (Sorted
/// by date: relevance scores legitimately differ, since replaced documents count in term
/// statistics until their segments merge.)
#[test]
fn import_indexes_what_a_reindex_would() {
    let Some(dir) = corpus() else { return };
    let a = Archive::new();
    a.import(&[&dir.join("vger-public-inbox").display().to_string()]);
    let queries = [
        "nfs",
        "patch",
        "\"memory leak\"",
        "list:selinux",
        "tag:patch fix",
        "date:2024-10 b:kernel",
        "to:linux",
        "",
    ];
    let run = |q: &str| search(&a, &["--limit", "100", "--sort", "date", q]);
    let before: Vec<Value> = queries.iter().map(|q| run(q)).collect();
    let out = a.run(&["reindex"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (q, want) in queries.iter().zip(&before) {
        let got = run(q);
        assert!(num(&got, "total") > 0, "{q:?} matches nothing");
        assert_eq!(got["total"], want["total"], "{q:?}");
        assert_eq!(got["facets"], want["facets"], "{q:?}");
        let hits = |v: &Value| v["hits"].as_array().cloned().unwrap_or_default();
        for (g, w) in hits(&got).iter().zip(&hits(want)) {
            assert_eq!(g, w, "{q:?}");
        }
    }
}

#[test]
fn stemming_non_english_words_and_malformed_queries() {
    let a = Archive::new();
    let msgs = vec![
        simple(
            "upgrade@x",
            "[nova] placement",
            1,
            &[],
            "We will upgrade the placement service.\n",
        ),
        simple(
            "german@x",
            "Größe",
            2,
            &[],
            "Die Größe der Datenbank wächst.\n",
        ),
        simple(
            "russian@x",
            "привет",
            3,
            &[],
            "привет всем, обновление готово\n",
        ),
        message(
            &[
                ("Message-ID", "<hostile@x>"),
                ("Subject", "<script>alert(1)</script>"),
                ("Date", "Mon, 1 May 2023 10:09:00 +0000"),
            ],
            "hostile <b>markup</b> & friends\n",
        ),
    ];
    let file = a.dir.path().join("words.mbox");
    std::fs::write(&file, mboxrd(&msgs)).expect("write");
    a.import_paths(&[&file], &["--list", "dev"]);
    let ids = |page: &Value| -> Vec<String> {
        page["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|h| h["message_id"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    assert_eq!(ids(&search(&a, &["upgrading"])), vec!["upgrade@x"]);
    assert_eq!(ids(&search(&a, &["Größe"])), vec!["german@x"]);
    assert_eq!(ids(&search(&a, &["привет"])), vec!["russian@x"]);
    assert_eq!(ids(&search(&a, &["tag:nova"])), vec!["upgrade@x"]);
    let hostile = search(&a, &["markup"]);
    let snippet = hostile["hits"][0]["snippet"].as_str().unwrap_or_default();
    assert!(
        !snippet.contains("<b>markup</b> &"),
        "snippet HTML is escaped: {snippet}"
    );
    assert!(
        snippet.contains("&lt;b&gt;") || snippet.contains("&amp;"),
        "{snippet}"
    );

    let parens = "(".repeat(10_000);
    for bad in [
        "\"unclosed",
        "AND OR",
        "date:2023-13-45",
        parens.as_str(),
        "list:nolist",
        "foo:bar",
    ] {
        let page = search(&a, &[bad]);
        let notices = page["notices"].as_array().map(Vec::len).unwrap_or(0);
        assert!(notices > 0, "{bad:.20}: expected a notice, got {page}");
    }
    // A reader that goes away (`| head`) ends the output quietly, not with a panic.
    for args in [
        &["search", "--json", "upgrade"][..],
        &["search", "upgrade"],
        &["stats"],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_archivist"))
            .arg("--data-dir")
            .arg(a.data_dir())
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{args:?}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A data directory holding no archive is an error, not a new empty archive.
    let missing = a.dir.path().join("no-such-archive");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_archivist"))
        .arg("--data-dir")
        .arg(&missing)
        .args(["search", "--json", "upgrade"])
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no archive in"));
    assert!(!missing.exists());

    // Options may follow the query; a query starting with -word follows `--`.
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_archivist"))
            .arg("--data-dir")
            .arg(a.data_dir())
            .args(args)
            .output()
            .expect("run")
    };
    let out = run(&["search", "upgrade", "--json", "--limit", "1"]);
    let page: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON after the query");
    assert_eq!(page["hits"].as_array().map(Vec::len), Some(1), "{page}");
    let out = run(&["search", "--json", "--", "-upgrade", "upgrade"]);
    let page: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(num(&page, "total"), 0, "{page}");
    // thread:<message-id> is resolved through the archive.
    let page = search(&a, &["thread:upgrade@x"]);
    assert_eq!(ids(&page), vec!["upgrade@x"]);
    let page = search(&a, &["thread:nobody@x"]);
    assert_eq!(num(&page, "total"), 0);
}

#[test]
fn reindex_while_searching_and_catch_up_after_a_crash() {
    let a = Archive::new();
    let batch = |tag: &str, n: u32| -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| {
                simple(
                    &format!("{tag}{i}@x"),
                    &format!("{tag} topic"),
                    i % 60,
                    &[],
                    &format!("{tag} body {i}\n"),
                )
            })
            .collect()
    };
    let first = a.dir.path().join("first.mbox");
    // Enough messages that a rebuild takes longer than one search.
    std::fs::write(&first, mboxrd(&batch("alpha", 3000))).expect("write");
    a.import_paths(&[&first], &["--list", "dev"]);
    assert_eq!(num(&search(&a, &["--limit", "0", "alpha"]), "total"), 3000);

    // Searches keep answering while the index is rebuilt beside them.
    let bin = env!("CARGO_BIN_EXE_archivist");
    let data = a.data_dir();
    let mut reindex = std::process::Command::new(bin)
        .arg("--data-dir")
        .arg(&data)
        .arg("reindex")
        .spawn()
        .expect("spawn reindex");
    let mut during = 0;
    while reindex.try_wait().expect("reindex").is_none() {
        assert_eq!(num(&search(&a, &["--limit", "0", "alpha"]), "total"), 3000);
        during += 1;
    }
    assert!(reindex.wait().expect("reindex").success());
    assert!(during > 0, "no search ran while the index was rebuilt");
    assert_eq!(num(&search(&a, &["--limit", "0", "alpha"]), "total"), 3000);

    // Simulate a crash between the SQLite commit and the index commit: import more, then put
    // the older index back. The next import (with nothing new to read) catches up.
    let index = data.join("index");
    let saved = a.dir.path().join("index-before");
    copy_dir(&index, &saved);
    let second = a.dir.path().join("second.mbox");
    std::fs::write(&second, mboxrd(&batch("beta", 200))).expect("write");
    a.import_paths(&[&second], &["--list", "dev"]);
    std::fs::remove_dir_all(&index).expect("remove index");
    copy_dir(&saved, &index);
    assert_eq!(
        num(&search(&a, &["--limit", "0", "beta"]), "total"),
        0,
        "index is behind"
    );
    let again = a.import_paths(&[&first], &["--list", "dev"]);
    assert_eq!(num(&again, "messages_new"), 0);
    assert_eq!(num(&search(&a, &["--limit", "0", "beta"]), "total"), 200);
    assert_eq!(num(&search(&a, &["--limit", "0", "alpha"]), "total"), 3000);
}

#[test]
fn an_older_schemas_index_is_removed_once_the_new_one_has_caught_up() {
    let a = Archive::new();
    let mbox = a.dir.path().join("one.mbox");
    let messages: Vec<Vec<u8>> = (0..5)
        .map(|i| simple(&format!("old{i}@x"), "upgrade notes", i, &[], "kept body\n"))
        .collect();
    std::fs::write(&mbox, mboxrd(&messages)).expect("write");
    a.import_paths(&[&mbox], &["--list", "dev"]);
    let index = a.data_dir().join("index");
    let current = schema_dir(&a.data_dir());
    let number: u32 = current
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n[1..].parse().ok())
        .expect("numbered");
    // What a binary of the previous schema left behind, and a newer one's (left alone).
    let older = index.join(format!("v{}", number - 1));
    let newer = index.join(format!("v{}", number + 1));
    for dir in [&older, &newer] {
        std::fs::create_dir_all(dir.join("g00000001")).expect("mkdir");
        std::fs::write(dir.join("CURRENT"), "g00000001\n").expect("pointer");
    }
    // An import with nothing new still ends with the index caught up.
    let again = a.import_paths(&[&mbox], &["--list", "dev"]);
    assert_eq!(num(&again, "messages_new"), 0);
    assert!(!older.exists(), "the older schema's index is still there");
    assert!(newer.exists(), "a newer schema's index was removed");
    assert_eq!(num(&search(&a, &["--limit", "0", "upgrade"]), "total"), 5);
    // A rebuild cleans up too.
    std::fs::create_dir_all(older.join("g00000001")).expect("mkdir");
    let out = a.run(&["reindex"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!older.exists(), "reindex left the older schema's index");
    assert_eq!(num(&search(&a, &["--limit", "0", "upgrade"]), "total"), 5);
}

/// The index's one schema directory (`DATA/index/vN`).
fn schema_dir(data: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(data.join("index"))
        .expect("index dir")
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().starts_with('v'))
        .expect("a schema directory")
        .path()
}

/// Documents the live index generation still carries for replaced messages, from tantivy's
/// `meta.json`.
fn deleted_in_index(data: &std::path::Path) -> u64 {
    let schema = schema_dir(data);
    let generation = std::fs::read_to_string(schema.join("CURRENT")).expect("CURRENT");
    let meta = std::fs::read_to_string(schema.join(generation.trim()).join("meta.json"))
        .expect("meta.json");
    let meta: serde_json::Value = serde_json::from_str(&meta).expect("json");
    meta["segments"]
        .as_array()
        .expect("segments")
        .iter()
        .map(|s| s["deletes"]["num_deleted_docs"].as_u64().unwrap_or(0))
        .sum()
}

#[test]
fn an_import_waits_for_the_merge_that_purges_replaced_documents() {
    let a = Archive::new();
    let messages: Vec<Vec<u8>> = (0..2000)
        .map(|i| {
            simple(
                &format!("cross{i}@x"),
                "shared topic",
                i % 60,
                &[],
                &format!("words {i}\n"),
            )
        })
        .collect();
    let first = a.dir.path().join("dev.mbox");
    let second = a.dir.path().join("ops.mbox");
    std::fs::write(&first, mboxrd(&messages)).expect("write");
    // A quarter of them again, cross-posted to a second list: those documents are replaced,
    // which leaves the first import's segment a quarter deleted, past the merge threshold.
    std::fs::write(&second, mboxrd(&messages[..500])).expect("write");
    a.import_paths(&[&first], &["--list", "dev"]);
    let report = a.import_paths(&[&second], &["--list", "ops"]);
    assert_eq!(num(&report, "cross_posts"), 500);
    assert_eq!(
        deleted_in_index(&a.data_dir()),
        0,
        "the import ended before its merges did: replaced documents stay in the index"
    );
    assert_eq!(
        num(&search(&a, &["--limit", "0", "list:ops"]), "total"),
        500
    );
    assert_eq!(num(&search(&a, &["--limit", "0", "shared"]), "total"), 2000);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    let mut stack = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((src, dst)) = stack.pop() {
        std::fs::create_dir_all(&dst).expect("mkdir");
        for entry in std::fs::read_dir(&src).expect("read_dir") {
            let entry = entry.expect("entry");
            let target = dst.join(entry.file_name());
            if entry.file_type().expect("type").is_dir() {
                stack.push((entry.path(), target));
            } else {
                std::fs::copy(entry.path(), &target).expect("copy");
            }
        }
    }
}
