//! Import behaviour on small fixtures written by the tests: idempotence, incremental reads,
//! dry runs, stdin, exit codes, threads across imports.

use std::io::Write;
use std::process::Stdio;

use crate::support::{mboxrd, num, simple, Archive};

#[test]
fn reimport_adds_nothing_and_copies_are_duplicates() {
    let a = Archive::new();
    let file = a.dir.path().join("dev").join("2023-05.mbox");
    std::fs::create_dir_all(file.parent().expect("parent")).expect("mkdir");
    let msgs: Vec<Vec<u8>> = (0..5)
        .map(|i| simple(&format!("m{i}@x"), "hello", i, &[], "body\n"))
        .collect();
    std::fs::write(&file, mboxrd(&msgs)).expect("write");
    let first = a.import_paths(&[&file], &[]);
    assert_eq!(num(&first, "messages_new"), 5);
    assert_eq!(
        first["details"][0]["list"], "dev",
        "list from the folder name"
    );
    let again = a.import_paths(&[&file], &[]);
    assert_eq!(num(&again, "messages_new"), 0);
    assert_eq!(
        num(&again, "messages_read"),
        0,
        "unchanged file is not read again"
    );
    // The same bytes under another path are read, and every message is a duplicate.
    let copy = a.dir.path().join("dev").join("copy.mbox");
    std::fs::copy(&file, &copy).expect("copy");
    let dup = a.import_paths(&[&copy], &[]);
    assert_eq!(num(&dup, "messages_new"), 0);
    assert_eq!(num(&dup, "duplicates"), 5);
    assert_eq!(num(&a.stats(), "messages"), 5);
    // Each copy's place is kept: the first file's through memberships, the second's as copies
    // of the same messages at the same offsets.
    let first_places = places(&a, "memberships");
    let copy_places = places(&a, "copies");
    assert_eq!(first_places.len(), 5);
    assert!(first_places.iter().all(|p| p.0 == "2023-05.mbox"));
    assert!(copy_places.iter().all(|p| p.0 == "copy.mbox"));
    let at = |p: &[(String, String, Option<i64>)]| -> Vec<(String, Option<i64>)> {
        p.iter()
            .map(|(_, id, offset)| (id.clone(), *offset))
            .collect()
    };
    assert_eq!(at(&first_places), at(&copy_places));
    assert_eq!(num(&a.stats(), "copies"), 5);
}

/// A list learns footers as it reads: a copy read after its footer (or here, a signature
/// common enough to be taken for one) was learnt is still the message stored before, in the
/// same list and in another.
#[test]
fn a_copy_read_after_a_footer_was_learnt_is_the_stored_message() {
    let a = Archive::new();
    let sig = "\n-- \nJan de Leeuw; http://gifi.example.edu/sounds/nomatter.au\n";
    let early = simple("early@x", "loess", 1, &[], &format!("the question{sig}"));
    let write = |name: &str, msgs: &[Vec<u8>]| {
        let path = a.dir.path().join(name);
        std::fs::write(&path, mboxrd(msgs)).expect("write");
        path
    };
    let first = write("first.mbox", std::slice::from_ref(&early));
    a.import_paths(&[&first], &["--list", "rt"]);
    // Five more messages end the same way: the list learns that ending as a footer, and a
    // copy of the first message follows.
    let mut msgs: Vec<Vec<u8>> = (0..5)
        .map(|i| {
            simple(
                &format!("m{i}@x"),
                "loess",
                2 + i,
                &[],
                &format!("answer {i}{sig}"),
            )
        })
        .collect();
    msgs.push(early.clone());
    let second = write("second.mbox", &msgs);
    let report = a.import_paths(&[&second], &["--list", "rt"]);
    assert_eq!(num(&report, "messages_new"), 5, "{report}");
    assert_eq!(num(&report, "duplicates"), 1, "{report}");
    // In another list that learnt it too, the copy is a cross-post.
    let other = write("other.mbox", &msgs);
    let report = a.import_paths(&[&other], &["--list", "ops"]);
    assert_eq!(num(&report, "messages_new"), 0, "{report}");
    assert_eq!(num(&report, "cross_posts"), 6, "{report}");
    assert_eq!(num(&a.stats(), "messages"), 6);
}

/// (file name, message id, offset) of every row of `table`, by message id and offset.
fn places(a: &Archive, table: &str) -> Vec<(String, String, Option<i64>)> {
    let db = a.sql();
    let mut stmt = db
        .prepare(&format!(
            "SELECT f.path, m.message_id, t.offset FROM {table} t
             JOIN messages m ON m.id = t.message JOIN files f ON f.id = t.file
             ORDER BY 2, 3"
        ))
        .expect("prepare");
    let rows = stmt
        .query_map([], |r| {
            let path: String = r.get(0)?;
            let name = path.rsplit('/').next().unwrap_or_default().to_string();
            Ok((name, r.get(1)?, r.get(2)?))
        })
        .expect("query");
    rows.map(|r| r.expect("row")).collect()
}

#[test]
fn grown_file_reads_only_the_appended_part_and_rewritten_file_is_reread() {
    let a = Archive::new();
    let file = a.dir.path().join("live.mbox");
    let mut msgs: Vec<Vec<u8>> = (0..3)
        .map(|i| simple(&format!("g{i}@x"), "grow", i, &[], "text\n"))
        .collect();
    std::fs::write(&file, mboxrd(&msgs)).expect("write");
    a.import_paths(&[&file], &["--list", "live"]);
    msgs.push(simple("g3@x", "grow", 3, &[], "more\n"));
    msgs.push(simple("g4@x", "grow", 4, &[], "more\n"));
    std::fs::write(&file, mboxrd(&msgs)).expect("append");
    let grown = a.import_paths(&[&file], &["--list", "live"]);
    assert_eq!(num(&grown, "messages_read"), 2, "{grown}");
    assert_eq!(num(&grown, "messages_new"), 2);
    assert!(grown["details"][0]["note"]
        .as_str()
        .is_some_and(|n| n.starts_with("resumed at byte")));
    // A rewrite (first message changed) is read in full and still adds nothing twice.
    msgs[0] = simple("g0@x", "grow", 0, &[], "edited\n");
    std::fs::write(&file, mboxrd(&msgs)).expect("rewrite");
    let rewritten = a.import_paths(&[&file], &["--list", "live"]);
    assert_eq!(num(&rewritten, "messages_read"), 5);
    assert_eq!(num(&rewritten, "duplicates"), 4);
    assert_eq!(
        num(&rewritten, "messages_new"),
        1,
        "the edited copy is different content"
    );
    assert_eq!(num(&a.stats(), "messages"), 6);
    // The edit moved every later message by two bytes: the memberships point at the new
    // places, the replaced first version keeps its file without a place, and nothing is a
    // further copy.
    let offsets = |bytes: &[u8]| -> Vec<i64> {
        let mut at = vec![0];
        at.extend(
            bytes
                .windows(6)
                .enumerate()
                .filter(|(_, w)| w == b"\nFrom ")
                .map(|(i, _)| i as i64 + 1),
        );
        at
    };
    let now = offsets(&mboxrd(&msgs));
    let members = places(&a, "memberships");
    let placed: Vec<i64> = members.iter().filter_map(|p| p.2).collect();
    let mut placed_sorted = placed.clone();
    placed_sorted.sort_unstable();
    assert_eq!(placed_sorted, now, "{members:?}");
    assert_eq!(members.iter().filter(|p| p.2.is_none()).count(), 1);
    assert!(places(&a, "copies").is_empty());
}

/// A live mbox read while a message is being appended: the message the end of the file cut
/// off is a problem until the file grows, then it is stored whole, as a clean import of the
/// final file stores it.
#[test]
fn a_message_cut_off_by_the_end_of_a_growing_file_is_read_whole_later() {
    let msgs: Vec<Vec<u8>> = (0..3)
        .map(|i| {
            simple(
                &format!("c{i}@x"),
                "cut",
                i,
                &[],
                "a body line\nand another\n",
            )
        })
        .collect();
    let full = mboxrd(&msgs);
    let second = full
        .windows(5)
        .enumerate()
        .filter(|(_, w)| *w == b"From ")
        .map(|(i, _)| i)
        .nth(1)
        .expect("a second separator");
    let headers_end = second
        + full[second..]
            .windows(2)
            .position(|w| w == b"\n\n")
            .expect("blank");
    // Cut inside a header line and inside a body line. (A cut at the end of a line cannot be
    // told from a complete message.)
    for cut in [second + 50, headers_end + 5] {
        let a = Archive::new();
        let file = a.dir.path().join("live.mbox");
        std::fs::write(&file, &full[..cut]).expect("write");
        let first = a.import_paths(&[&file], &["--list", "live"]);
        assert_eq!(num(&first, "messages_new"), 1, "cut at {cut}: {first}");
        assert_eq!(num(&first, "problems"), 1, "cut at {cut}: {first}");
        let out = a.run(&["problems", "--json"]);
        let problems: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(problems[0]["kind"], "truncated", "{problems}");
        assert_eq!(problems[0]["offset"].as_u64(), Some(second as u64));

        std::fs::write(&file, &full).expect("grow");
        let grown = a.import_paths(&[&file], &["--list", "live"]);
        assert_eq!(num(&grown, "messages_new"), 2, "cut at {cut}: {grown}");
        let stats = a.stats();
        assert_eq!(num(&stats, "messages"), 3);
        assert_eq!(
            num(&stats, "problems"),
            0,
            "the cut-off record is stored now"
        );
        assert_eq!(a.raw("c1@x"), msgs[1], "cut at {cut}");
        // Unchanged since: nothing more.
        let again = a.import_paths(&[&file], &["--list", "live"]);
        assert_eq!(num(&again, "messages_read"), 0);
    }
}

#[test]
fn dry_run_reports_exactly_and_writes_nothing() {
    let a = Archive::new();
    let file = a.dir.path().join("d.mbox");
    let msgs: Vec<Vec<u8>> = (0..4)
        .map(|i| simple(&format!("d{i}@x"), "dry", i, &[], "b\n"))
        .collect();
    std::fs::write(&file, mboxrd(&msgs)).expect("write");
    let dry = a.import_paths(&[&file], &["--list", "d", "--dry-run"]);
    assert_eq!(num(&dry, "messages_new"), 4);
    assert!(!a.db().exists(), "a dry run created the archive");
    assert_eq!(dry["details"][0]["variant"], "mbox");
    assert_eq!(dry["details"][0]["first_date"], "2023-05-01T10:00:00Z");
    let real = a.import_paths(&[&file], &["--list", "d"]);
    assert_eq!(
        num(&real, "messages_new"),
        4,
        "dry run left no file record behind"
    );
    // Human-readable dry run names the detected variant.
    let out = a.run(&[
        "import",
        "--dry-run",
        "--list",
        "d",
        &file.display().to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dry run: nothing was written"), "{text}");
}

#[test]
fn stdin_needs_a_list_or_list_id() {
    let a = Archive::new();
    let data = mboxrd(&[simple("s1@x", "stdin", 1, &[], "b\n")]);
    let run = |args: &[&str]| {
        let mut child = a
            .cmd()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // A refused command may exit before reading its input: a broken pipe is no failure.
        let _ = child.stdin.take().expect("stdin").write_all(&data);
        child.wait_with_output().expect("wait")
    };
    let out = run(&["import", "-"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--list"));
    // The names of the web archive's own pages are not list names.
    let out = run(&["import", "--list", "search", "-"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"search\" is taken"), "{err}");
    assert_eq!(num(&a.stats(), "messages"), 0);
    // A folder of that name files its messages into `<name>-list` instead.
    let folder = a.dir.path().join("t");
    std::fs::create_dir_all(&folder).expect("mkdir");
    std::fs::write(
        folder.join("x.mbox"),
        mboxrd(&[simple("t1@x", "in folder t", 2, &[], "b\n")]),
    )
    .expect("write");
    a.import_paths(&[&a.dir.path().join("t")], &[]);
    assert_eq!(a.stats()["lists"]["t-list"], 1);
    let out = run(&["import", "--json", "--list", "ops", "-"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(num(&a.stats(), "messages"), 2);
}

/// Standard input has no file to key its problems by: the same stream imported again still
/// records each problem once.
#[test]
fn stdin_imported_twice_records_its_problems_once() {
    let a = Archive::new();
    let mut data = b"junk before the first message\n".to_vec();
    data.extend(mboxrd(&[simple("s1@x", "stdin", 1, &[], "b\n")]));
    for _ in 0..3 {
        let mut child = a
            .cmd()
            .args(["import", "--json", "--list", "ops", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(&data)
            .expect("write");
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stats = a.stats();
    assert_eq!(num(&stats, "messages"), 1, "{stats}");
    assert_eq!(num(&stats, "problems"), 1, "{stats}");
}

/// A file whose list cannot be named (no List-Id, a folder name with no letters) is passed
/// over and reported with the unreadable ones; the rest of the folder is imported. A path
/// given without a folder names the folder it is in.
#[test]
fn a_file_without_a_list_name_is_passed_over_and_a_bare_path_names_its_folder() {
    let a = Archive::new();
    let root = a.dir.path().join("walk");
    for (folder, id) in [("!!", "a1@x"), ("good", "g1@x")] {
        std::fs::create_dir_all(root.join(folder)).expect("mkdir");
        std::fs::write(
            root.join(folder).join("a.mbox"),
            mboxrd(&[simple(id, "one", 1, &[], "b\n")]),
        )
        .expect("write");
    }
    let out = a.run(&["import", "--json", root.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1), "an input was passed over");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    assert_eq!(num(&report, "messages_new"), 1, "{report}");
    let unreadable = report["unreadable"].to_string();
    assert!(
        unreadable.contains("a.mbox") && unreadable.contains("--list"),
        "{unreadable}"
    );
    assert_eq!(a.stats()["lists"]["good"], 1);

    let import_in = |folder: &str, args: &[&str]| {
        let out = a
            .cmd()
            .current_dir(root.join(folder))
            .args(args)
            .output()
            .expect("run");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    import_in("good", &["import", "--json", "--", "a.mbox"]);
    import_in("!!", &["import", "--json", "--list", "bang", "a.mbox"]);
    assert_eq!(a.stats()["lists"]["bang"], 1);
}

/// A reader that goes away (`archivist ... | head -1`) ends a command quietly: no panic.
#[test]
fn output_to_a_closed_pipe_is_no_panic() {
    let a = Archive::new();
    let sample = a.dir.path().join("sample.mbox");
    std::fs::write(&sample, mboxrd(&[simple("p@x", "hello", 1, &[], "body\n")])).expect("write");
    for args in [
        vec!["config", "--example"],
        vec![
            "import",
            "--dry-run",
            sample.to_str().expect("path"),
            "--list",
            "dev",
        ],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = a
            .cmd()
            .args(&args)
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn exit_codes_and_errors_name_the_file() {
    let a = Archive::new();
    let out = a.run(&["import", "/nonexistent/archive.mbox"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/archive.mbox"));
    let out = a.run(&["import", "--list", "../etc", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = a.run(&["import", "--no-such-flag", "x"]);
    assert_eq!(out.status.code(), Some(2));
    let out = a.run(&["import"]);
    assert_eq!(out.status.code(), Some(2));
    let out = a.run(&["raw", "<missing@x>"]);
    assert_eq!(out.status.code(), Some(1));
    let out = a.run(&["config", "--example"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("[import]"));
}

#[test]
fn list_id_header_names_the_list_and_cross_posts_merge() {
    let a = Archive::new();
    let body = "Please review the placement change.\n";
    let copy = |list: &str, prefix: &str, footer: &str| {
        let subject = format!("{prefix}[nova] placement");
        let list_id = format!("<{list}.lists.example.org>");
        let delivered = format!("{list}@lists.example.org");
        crate::support::message(
            &[
                ("Return-Path", delivered.as_str()),
                ("Delivered-To", delivered.as_str()),
                ("From", "Bob <bob@example.org>"),
                ("Subject", subject.as_str()),
                ("Date", "Tue, 2 May 2023 09:00:00 +0000"),
                ("Message-ID", "<xpost@example.org>"),
                ("List-Id", list_id.as_str()),
            ],
            &format!("{body}{footer}"),
        )
    };
    let dev = a.dir.path().join("dev.mbox");
    let ops = a.dir.path().join("ops.mbox");
    std::fs::write(&dev, mboxrd(&[copy("dev", "", "")])).expect("write");
    std::fs::write(
        &ops,
        mboxrd(&[copy(
            "operators",
            "[Operators] ",
            "_______________________________________________\noperators mailing list\nhttps://lists.example.org/listinfo/operators\n",
        )]),
    )
    .expect("write");
    a.import_paths(&[&dev], &[]);
    let second = a.import_paths(&[&ops], &[]);
    assert_eq!(num(&second, "cross_posts"), 1, "{second}");
    let stats = a.stats();
    assert_eq!(num(&stats, "messages"), 1);
    assert_eq!(stats["lists"]["dev"], 1);
    assert_eq!(stats["lists"]["operators"], 1);
}

#[test]
fn generated_sample_dedups_every_cross_post() {
    let a = Archive::new();
    let out_dir = a.dir.path().join("sample");
    let out = a.run(&[
        "sample",
        "--out",
        &out_dir.display().to_string(),
        "--weeks",
        "5",
        "--per-week",
        "120",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = a.import(&[&out_dir.display().to_string()]);
    // The generator's ground truth: weeks x per-week distinct messages, every other copy a
    // cross-post (operators copies carry a subject prefix and a Mailman footer).
    assert_eq!(num(&report, "messages_new"), 5 * 120);
    assert_eq!(
        num(&report, "cross_posts"),
        num(&report, "messages_read") - 5 * 120
    );
    assert_eq!(num(&report, "problems"), 0);
    let variants: std::collections::BTreeSet<String> = report["details"]
        .as_array()
        .expect("details")
        .iter()
        .map(|d| format!("{}/{}/{}", d["variant"], d["encoding"], d["line_endings"]))
        .collect();
    let expected: std::collections::BTreeSet<String> = [
        "\"mbox\"/\"plain\"/\"lf\"",
        "\"mbox\"/\"plain\"/\"crlf\"",
        "\"pipermail\"/\"gzip\"/\"lf\"",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(variants, expected);
}

#[test]
fn a_walk_follows_links_names_what_it_passes_over_and_goes_past_what_it_cannot_read() {
    let a = Archive::new();
    let root = a.dir.path().join("walk");
    let outside = a.dir.path().join("outside");
    for d in [root.join("dev"), outside.join("ops")] {
        std::fs::create_dir_all(&d).expect("mkdir");
    }
    let one = |id: &str| mboxrd(&[simple(id, id, 1, &[], "b\n")]);
    std::fs::write(root.join("dev").join("a.mbox"), one("a@x")).expect("write");
    std::fs::write(outside.join("b.mbox"), one("b@x")).expect("write");
    std::fs::write(outside.join("ops").join("c.mbox"), one("c@x")).expect("write");
    std::fs::write(root.join("dev").join(".hidden.mbox"), one("h@x")).expect("write");
    let link = |target: &std::path::Path, name: &str| {
        std::os::unix::fs::symlink(target, root.join("dev").join(name)).expect("symlink")
    };
    link(&outside.join("b.mbox"), "b.mbox");
    link(&outside.join("ops"), "ops-link");
    link(&a.dir.path().join("nowhere.mbox"), "dangling.mbox");
    link(&root, "loop");

    let out = a.run(&[
        "import",
        "--json",
        "--list",
        "dev",
        root.to_str().expect("utf-8"),
    ]);
    // What could be read is imported and reported; the exit status says the rest was not.
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("dangling.mbox"));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(num(&report, "messages_new"), 3, "{report}");
    let listed = |key: &str| -> Vec<String> {
        report[key]
            .as_array()
            .expect("an array")
            .iter()
            .map(|v| v.as_str().expect("a string").to_string())
            .collect()
    };
    let unreadable = listed("unreadable");
    assert_eq!(unreadable.len(), 1, "{unreadable:?}");
    assert!(unreadable[0].contains("dangling.mbox"), "{unreadable:?}");
    assert!(
        listed("skipped")
            .iter()
            .any(|s| s.ends_with(".hidden.mbox")),
        "{report}"
    );
    assert_eq!(num(&a.stats(), "messages"), 3);
}
