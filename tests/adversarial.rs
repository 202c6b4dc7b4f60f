//! Hostile and broken input, each case from the import issue: huge parts and lines, deep MIME,
//! header floods, NUL bytes, invalid UTF-8, unknown charsets, missing or reused ids, reference
//! loops and huge References chains. Every message is stored byte-exact; nothing panics.

use crate::support::{mboxrd, message, num, simple, Archive};

fn pseudo_random(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len() * 4 / 3 + data.len() / 57 + 4);
    for (i, chunk) in data.chunks(3).enumerate() {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for j in 0..4 {
            if j <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * j)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
        if i % 19 == 18 {
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

fn hostile_messages() -> Vec<(&'static str, Vec<u8>)> {
    let mut cases = Vec::new();
    let big = base64(&pseudo_random(9 * 1024 * 1024));
    cases.push((
        "attach12mb@x",
        message(
            &[
                ("Message-ID", "<attach12mb@x>"),
                ("Subject", "a 12 MB attachment"),
                ("Content-Type", "multipart/mixed; boundary=\"b\""),
            ],
            &format!("--b\nContent-Type: text/plain\n\nsee attached\n--b\nContent-Type: application/octet-stream; name=\"blob.bin\"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename=\"blob.bin\"\n\n{big}--b--\n"),
        ),
    ));
    cases.push((
        "longline@x",
        message(
            &[("Message-ID", "<longline@x>"), ("Subject", "5 MB line")],
            &format!("{}\n", "x".repeat(5 * 1024 * 1024)),
        ),
    ));
    let mut nested = String::new();
    for i in 0..2000 {
        nested.push_str(&format!(
            "--n{i}\nContent-Type: multipart/mixed; boundary=\"n{}\"\n\n",
            i + 1
        ));
    }
    nested.push_str("--n2000\nContent-Type: text/plain\n\ndeep inside\n");
    for i in (0..=2000).rev() {
        nested.push_str(&format!("--n{i}--\n"));
    }
    cases.push((
        "nested@x",
        message(
            &[
                ("Message-ID", "<nested@x>"),
                ("Subject", "2000 nested multiparts"),
                ("Content-Type", "multipart/mixed; boundary=\"n0\""),
            ],
            &nested,
        ),
    ));
    let mut flood = b"Message-ID: <flood@x>\nSubject: 50000 headers\n".to_vec();
    for i in 0..50_000 {
        flood.extend_from_slice(format!("X-Flood-{i}: value {i}\n").as_bytes());
    }
    flood.extend_from_slice(b"\nbody\n");
    cases.push(("flood@x", flood));
    cases.push((
        "nul@x",
        b"Message-ID: <nul@x>\nSubject: NUL\x00bytes\n\nbefore\x00after\n".to_vec(),
    ));
    cases.push((
        "badutf8@x",
        b"Message-ID: <badutf8@x>\nSubject: caf\xe9 \xff\xfe\nContent-Type: text/plain; charset=utf-8\n\n\xc3\x28 invalid \xa0\xa1\n".to_vec(),
    ));
    cases.push((
        "unknowncharset@x",
        b"Message-ID: <unknowncharset@x>\nSubject: =?x-unknown-9000?Q?caf=E9?=\nContent-Type: text/plain; charset=x-unknown-9000\n\ncaf\xe9\n".to_vec(),
    ));
    cases
}

#[test]
fn hostile_messages_are_stored_byte_exact() {
    let a = Archive::new();
    let cases = hostile_messages();
    let file = a.dir.path().join("hostile.mbox");
    let bodies: Vec<Vec<u8>> = cases.iter().map(|(_, m)| m.clone()).collect();
    std::fs::write(&file, mboxrd(&bodies)).expect("write");
    let report = a.import_paths(&[&file], &["--list", "hostile"]);
    assert_eq!(num(&report, "messages_new"), cases.len() as u64, "{report}");
    assert_eq!(num(&report, "problems"), 0);
    for (id, bytes) in &cases {
        assert!(a.raw(id) == *bytes, "raw bytes of {id} differ");
    }
    let conn = a.sql();
    let attachments: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM attachments a JOIN messages m ON m.id = a.message
             WHERE m.message_id = 'attach12mb@x' AND a.filename = 'blob.bin' AND a.size = 9437184",
            [],
            |r| r.get(0),
        )
        .expect("query");
    assert_eq!(
        attachments, 1,
        "the 12 MB attachment is listed with its decoded size"
    );
}

#[test]
fn missing_empty_and_reused_message_ids() {
    let a = Archive::new();
    let no_id = message(
        &[
            ("Subject", "no id"),
            ("Date", "Mon, 1 May 2023 10:00:00 +0000"),
        ],
        "a\n",
    );
    let empty_id = message(&[("Subject", "empty id"), ("Message-ID", "")], "b\n");
    let angle_id = message(&[("Subject", "angle id"), ("Message-ID", "<>")], "c\n");
    let first = simple("reused@x", "first", 1, &[], "one content\n");
    let second = simple("reused@x", "second", 2, &[], "another content\n");
    let file = a.dir.path().join("ids.mbox");
    let all = vec![
        no_id.clone(),
        empty_id,
        angle_id,
        first.clone(),
        second.clone(),
    ];
    std::fs::write(&file, mboxrd(&all)).expect("write");
    let report = a.import_paths(&[&file], &["--list", "ids"]);
    assert_eq!(num(&report, "messages_new"), 5, "{report}");
    assert_eq!(report["details"][0]["missing_ids"], 3);
    // Synthetic ids are stable: importing the same bytes elsewhere finds them again.
    let copy = a.dir.path().join("ids-copy.mbox");
    std::fs::write(&copy, mboxrd(&all)).expect("write");
    let again = a.import_paths(&[&copy], &["--list", "ids"]);
    assert_eq!(num(&again, "duplicates"), 5, "{again}");
    // The reused Message-ID keeps both messages: the first under the id, the second derived.
    assert_eq!(a.raw("reused@x"), first);
    let conn = a.sql();
    let derived: String = conn
        .query_row(
            "SELECT message_id FROM messages WHERE header_message_id = 'reused@x' AND message_id <> 'reused@x'",
            [],
            |r| r.get(0),
        )
        .expect("derived id");
    assert!(derived.ends_with("-reused@x"), "{derived}");
    assert_eq!(a.raw(&derived), second);
    let synthetic: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM messages WHERE header_message_id IS NULL AND message_id LIKE '%@archivist.invalid'",
            [],
            |r| r.get(0),
        )
        .expect("synthetic");
    assert_eq!(synthetic, 3);
}

/// The id a scratch archive stores the one message matching `condition` under, after
/// importing `messages`: how a test learns the synthetic or derived id an attacker would take.
fn stored_id_of(messages: &[Vec<u8>], condition: &str) -> String {
    let probe = Archive::new();
    let file = probe.dir.path().join("probe.mbox");
    std::fs::write(&file, mboxrd(messages)).expect("write");
    probe.import_paths(&[&file], &["--list", "dev"]);
    probe
        .sql()
        .query_row(
            &format!("SELECT message_id FROM messages WHERE {condition}"),
            [],
            |r| r.get(0),
        )
        .expect("the stored id")
}

/// A hostile Message-ID can be any id the importer would make itself (a synthetic id for a
/// message without one, a derived id for a reused one): the import goes on, each message
/// under an id of its own, and importing the same files again adds nothing.
#[test]
fn message_ids_that_mimic_the_importers_own_ids() {
    let a = Archive::new();
    let no_id = message(
        &[
            ("Subject", "no id"),
            ("Date", "Mon, 1 May 2023 10:00:00 +0000"),
        ],
        "victim body\n",
    );
    let synthetic = stored_id_of(std::slice::from_ref(&no_id), "1 = 1");
    assert!(synthetic.ends_with("@archivist.invalid"), "{synthetic}");

    // Attackers take that id and the derived id of a reused Message-ID.
    let first = simple("reused@x", "first", 1, &[], "one content\n");
    let second = simple("reused@x", "second", 2, &[], "another content\n");
    let attackers = a.dir.path().join("attackers.mbox");
    let derived = stored_id_of(&[first.clone(), second.clone()], "message_id <> 'reused@x'");
    let attack_synthetic = simple(&synthetic, "attack", 3, &[], "attacker body\n");
    let attack_derived = simple(&derived, "attack", 4, &[], "attacker body 2\n");
    std::fs::write(
        &attackers,
        mboxrd(&[attack_synthetic.clone(), attack_derived.clone()]),
    )
    .expect("write");
    a.import_paths(&[&attackers], &["--list", "dev"]);

    let victims = a.dir.path().join("victims.mbox");
    let ok = simple("ok@x", "fine", 5, &[], "fine\n");
    std::fs::write(
        &victims,
        mboxrd(&[no_id.clone(), first.clone(), second.clone(), ok.clone()]),
    )
    .expect("write");
    let report = a.import_paths(&[&victims], &["--list", "dev"]);
    assert_eq!(num(&report, "messages_new"), 4, "{report}");
    assert_eq!(num(&report, "problems"), 0, "{report}");
    // The attackers keep the ids they came with; the victims get the next variants.
    assert_eq!(a.raw(&synthetic), attack_synthetic);
    assert_eq!(a.raw(&derived), attack_derived);
    assert_eq!(a.raw("reused@x"), first);
    assert_eq!(a.raw("ok@x"), ok);
    let conn = a.sql();
    let stored_under = |body: &str| -> String {
        conn.query_row(
            "SELECT message_id FROM messages WHERE subject = ?1",
            [body],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("{body}: {e}"))
    };
    let victim = stored_under("no id");
    assert_ne!(victim, synthetic);
    assert!(victim.ends_with("@archivist.invalid"), "{victim}");
    assert_eq!(a.raw(&victim), no_id);
    let second_id = stored_under("second");
    assert!(
        second_id.ends_with("-reused@x") && second_id != derived,
        "{second_id}"
    );
    assert_eq!(a.raw(&second_id), second);

    // The same messages read again from another file are found, not stored again.
    let copy = a.dir.path().join("victims-copy.mbox");
    std::fs::copy(&victims, &copy).expect("copy");
    let again = a.import_paths(&[&copy], &["--list", "dev"]);
    assert_eq!(num(&again, "messages_new"), 0, "{again}");
    assert_eq!(num(&again, "duplicates"), 4, "{again}");
}

/// A message whose own Message-ID is a further variant of another message's synthetic id,
/// in the same file as that message: read again, both are found, nothing is added.
#[test]
fn a_message_id_that_is_a_synthetic_variant_is_found_again() {
    let a = Archive::new();
    let no_id = message(
        &[
            ("From", "A <a@x.org>"),
            ("Subject", "no id"),
            ("Date", "Mon, 1 Jan 2024 00:00:00 +0000"),
        ],
        "I have no id\n",
    );
    let synthetic = stored_id_of(std::slice::from_ref(&no_id), "1 = 1");
    let variant = synthetic.replace("@archivist.invalid", "-1@archivist.invalid");
    let hostile = simple(&variant, "hostile s1", 2, &[], "hostile\n");
    let file = a.dir.path().join("m.mbox");
    std::fs::write(&file, mboxrd(&[no_id, hostile])).expect("write");
    assert_eq!(
        num(
            &a.import_paths(&[&file], &["--list", "dev"]),
            "messages_new"
        ),
        2
    );
    for (copy, list, counter) in [
        ("m2.mbox", "dev", "duplicates"),
        ("m3.mbox", "ops", "cross_posts"),
    ] {
        let copy = a.dir.path().join(copy);
        std::fs::copy(&file, &copy).expect("copy");
        let again = a.import_paths(&[&copy], &["--list", list]);
        assert_eq!(num(&again, "messages_new"), 0, "{again}");
        assert_eq!(num(&again, counter), 2, "{again}");
    }
    assert_eq!(num(&a.stats(), "messages"), 2);
}

/// Two messages under one Message-ID, alike but for an attachment's bytes (same name, type
/// and size), are two messages: both stored, the second under a derived id.
#[test]
fn messages_differing_only_in_attachment_bytes_are_both_kept() {
    let a = Archive::new();
    let with = |fill: char| {
        message(
            &[
                ("Message-ID", "<same@example.org>"),
                ("From", "A <a@example.org>"),
                ("Subject", "config"),
                ("Date", "Mon, 1 May 2023 10:00:00 +0000"),
                ("Content-Type", "multipart/mixed; boundary=\"b\""),
            ],
            &format!(
                "--b\nContent-Type: text/plain\n\nsee attached\n--b\nContent-Type: \
                 application/octet-stream; name=\"fix.bin\"\nContent-Disposition: attachment; \
                 filename=\"fix.bin\"\n\n{}\n--b--\n",
                fill.to_string().repeat(64)
            ),
        )
    };
    let (first, second) = (with('A'), with('B'));
    let file = a.dir.path().join("att.mbox");
    std::fs::write(&file, mboxrd(&[first.clone(), second.clone()])).expect("write");
    let report = a.import_paths(&[&file], &["--list", "dev"]);
    assert_eq!(num(&report, "messages_new"), 2, "{report}");
    assert_eq!(a.raw("same@example.org"), first);
    let derived: String = a
        .sql()
        .query_row(
            "SELECT message_id FROM messages WHERE message_id <> 'same@example.org'",
            [],
            |r| r.get(0),
        )
        .expect("derived id");
    assert_eq!(a.raw(&derived), second);
    // Each is found again, in another list as a cross-post of itself.
    let copy = a.dir.path().join("att-ops.mbox");
    std::fs::copy(&file, &copy).expect("copy");
    let again = a.import_paths(&[&copy], &["--list", "ops"]);
    assert_eq!(num(&again, "messages_new"), 0, "{again}");
    assert_eq!(num(&again, "cross_posts"), 2, "{again}");
}

fn thread_of(a: &Archive, id: &str) -> i64 {
    a.sql()
        .query_row(
            "SELECT thread_id FROM messages WHERE message_id = ?1",
            [id],
            |r| r.get(0),
        )
        .unwrap_or_else(|e| panic!("thread of {id}: {e}"))
}

#[test]
fn reference_loops_self_references_and_huge_chains() {
    let a = Archive::new();
    let huge: Vec<String> = (0..20_000).map(|i| format!("chain{i}@x")).collect();
    let huge_refs: Vec<&str> = huge.iter().map(String::as_str).collect();
    let msgs = vec![
        simple("loop-a@x", "loop", 1, &["loop-b@x"], "a\n"),
        simple("loop-b@x", "loop", 2, &["loop-a@x"], "b\n"),
        simple("self@x", "self", 3, &["self@x"], "me\n"),
        simple("huge@x", "huge", 4, &huge_refs, "end of a long chain\n"),
        simple(
            "after-huge@x",
            "huge",
            5,
            &["chain0@x"],
            "joins via the first ghost\n",
        ),
    ];
    let file = a.dir.path().join("loops.mbox");
    std::fs::write(&file, mboxrd(&msgs)).expect("write");
    let report = a.import_paths(&[&file], &["--list", "loops"]);
    assert_eq!(num(&report, "messages_new"), 5);
    assert_eq!(thread_of(&a, "loop-a@x"), thread_of(&a, "loop-b@x"));
    assert_ne!(thread_of(&a, "self@x"), thread_of(&a, "loop-a@x"));
    assert_eq!(thread_of(&a, "huge@x"), thread_of(&a, "after-huge@x"));
    assert_eq!(num(&a.stats(), "threads"), 3);
}

#[test]
fn thread_ids_are_stable_when_ghosts_fill_in_and_threads_join() {
    let a = Archive::new();
    let write = |name: &str, msgs: Vec<Vec<u8>>| {
        let path = a.dir.path().join(name);
        std::fs::write(&path, mboxrd(&msgs)).expect("write");
        a.import_paths(&[&path], &["--list", "threads"]);
    };
    // A reply arrives before its parent: the parent is a ghost until it is imported.
    write(
        "1.mbox",
        vec![simple(
            "reply@x",
            "Re: quota usage question",
            5,
            &["parent@x"],
            "r\n",
        )],
    );
    let t_reply = thread_of(&a, "reply@x");
    write(
        "2.mbox",
        vec![simple("parent@x", "quota usage question", 1, &[], "p\n")],
    );
    assert_eq!(
        thread_of(&a, "parent@x"),
        t_reply,
        "filling a ghost keeps its thread"
    );
    // Two unrelated threads, later joined by a message referencing both.
    write(
        "3.mbox",
        vec![simple("other@x", "Re: z", 6, &["ghost-z@x"], "o\n")],
    );
    let t_other = thread_of(&a, "other@x");
    assert_ne!(t_other, t_reply);
    write(
        "4.mbox",
        vec![simple(
            "joiner@x",
            "Re: both",
            7,
            &["parent@x", "ghost-z@x"],
            "j\n",
        )],
    );
    let survivor = t_reply.min(t_other);
    for id in ["reply@x", "parent@x", "other@x", "joiner@x"] {
        assert_eq!(thread_of(&a, id), survivor, "{id} is in the older thread");
    }
    // Subject fallback: a reply with no reference headers joins the recent same-subject thread.
    write(
        "5.mbox",
        vec![simple(
            "noref@x",
            "Re: quota usage question",
            9,
            &[],
            "late reply\n",
        )],
    );
    assert_eq!(thread_of(&a, "noref@x"), survivor);
    // ...but not one whose subject says too little to be sure of ("Re: help").
    write(
        "5b.mbox",
        vec![
            simple("help@x", "help", 9, &[], "a question\n"),
            simple("help-re@x", "Re: help", 10, &[], "another question\n"),
        ],
    );
    assert_ne!(thread_of(&a, "help@x"), thread_of(&a, "help-re@x"));
    // Re-importing changes nothing.
    write(
        "6.mbox",
        vec![simple(
            "reply@x",
            "Re: quota usage question",
            5,
            &["parent@x"],
            "r\n",
        )],
    );
    assert_eq!(thread_of(&a, "reply@x"), survivor);
    // The joined thread and the two "help" threads.
    assert_eq!(num(&a.stats(), "threads"), 3);
}

/// A message of a monthly archive: no reference headers when `reply`, as some mailers send.
fn dated(id: &str, subject: &str, date: &str) -> Vec<u8> {
    let mid = format!("<{id}>");
    message(
        &[
            ("From", "Alice <alice@example.org>"),
            ("Subject", subject),
            ("Date", date),
            ("Message-ID", mid.as_str()),
        ],
        "text\n",
    )
}

/// Which messages share a thread, whatever the ids.
fn partition(a: &Archive) -> Vec<Vec<String>> {
    let conn = a.sql();
    let mut stmt = conn
        .prepare(
            "SELECT group_concat(message_id, ' ') FROM
                 (SELECT message_id, thread_id FROM messages ORDER BY message_id)
             GROUP BY thread_id",
        )
        .expect("prepare");
    let mut groups: Vec<Vec<String>> = stmt
        .query_map([], |r| r.get::<_, String>(0))
        .expect("query")
        .map(|g| g.expect("row").split(' ').map(str::to_owned).collect())
        .collect();
    groups.sort();
    groups
}

#[test]
fn threads_do_not_depend_on_the_order_monthly_files_are_imported_in() {
    // A folder is walked in name order: February, January, March. Replies without reference
    // headers join by subject whichever month's file came first. (Not covered, since merges
    // are never undone: an orphan reply near two recurring posts is adopted by whichever
    // arrives first.)
    let months = [
        (
            "2019-January.mbox",
            vec![
                dated(
                    "jan-post@x",
                    "Placement API upgrade plan",
                    "Mon, 28 Jan 2019 10:00:00 +0000",
                ),
                dated(
                    "meet-1@x",
                    "Weekly meeting agenda items",
                    "Tue, 29 Jan 2019 10:00:00 +0000",
                ),
            ],
        ),
        (
            "2019-February.mbox",
            vec![
                dated(
                    "feb-re@x",
                    "Re: Placement API upgrade plan",
                    "Sat, 2 Feb 2019 10:00:00 +0000",
                ),
                dated(
                    "meet-1-re@x",
                    "Re: Weekly meeting agenda items",
                    "Wed, 30 Jan 2019 09:00:00 +0000",
                ),
                dated(
                    "meet-2@x",
                    "Weekly meeting agenda items",
                    "Tue, 26 Feb 2019 10:00:00 +0000",
                ),
            ],
        ),
        (
            "2019-March.mbox",
            vec![
                dated(
                    "mar-re@x",
                    "Re: Weekly meeting agenda items",
                    "Tue, 5 Mar 2019 12:00:00 +0000",
                ),
                dated(
                    "mar-re2@x",
                    "Re: Placement API upgrade plan",
                    "Fri, 1 Mar 2019 10:00:00 +0000",
                ),
            ],
        ),
    ];
    let one_by_one = |order: &[usize]| {
        let a = Archive::new();
        for &i in order {
            let (name, msgs) = &months[i];
            let path = a.dir.path().join(name);
            std::fs::write(&path, mboxrd(msgs)).expect("write");
            a.import_paths(&[&path], &["--list", "dev"]);
        }
        partition(&a)
    };
    let want = one_by_one(&[0, 1, 2]);
    let group = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(
        want.contains(&group(&["feb-re@x", "jan-post@x", "mar-re2@x"])),
        "{want:?}"
    );
    assert!(
        want.contains(&group(&["meet-1-re@x", "meet-1@x"])),
        "{want:?}"
    );
    assert!(want.contains(&group(&["mar-re@x", "meet-2@x"])), "{want:?}");
    for order in [[1, 0, 2], [2, 1, 0], [2, 0, 1], [1, 2, 0], [0, 2, 1]] {
        assert_eq!(one_by_one(&order), want, "files in order {order:?}");
    }
    // One folder import (name order) gives the same threads.
    let a = Archive::new();
    let folder = a.dir.path().join("dev");
    std::fs::create_dir(&folder).expect("mkdir");
    for (name, msgs) in &months {
        std::fs::write(folder.join(name), mboxrd(msgs)).expect("write");
    }
    a.import_paths(&[&folder], &[]);
    assert_eq!(partition(&a), want);
}

#[test]
fn an_archive_from_before_the_subject_history_gets_it_when_opened() {
    let a = Archive::new();
    let path = a.dir.path().join("old.mbox");
    std::fs::write(
        &path,
        mboxrd(&[dated(
            "old-post@x",
            "Placement API upgrade plan",
            "Mon, 28 Jan 2019 10:00:00 +0000",
        )]),
    )
    .expect("write");
    a.import_paths(&[&path], &["--list", "dev"]);
    // Back to schema version 4, as an archive written by an older archivist.
    a.sql()
        .execute_batch(
            "DROP TABLE subject_activity; DROP TABLE subject_orphans; PRAGMA user_version = 4;",
        )
        .expect("downgrade");
    let later = a.dir.path().join("later.mbox");
    std::fs::write(
        &later,
        mboxrd(&[dated(
            "later-re@x",
            "Re: Placement API upgrade plan",
            "Sat, 2 Feb 2019 10:00:00 +0000",
        )]),
    )
    .expect("write");
    a.import_paths(&[&later], &["--list", "dev"]);
    let rows: i64 = a
        .sql()
        .query_row("SELECT count(*) FROM subject_activity", [], |r| r.get(0))
        .expect("count");
    assert_eq!(rows, 2);
    assert_eq!(thread_of(&a, "later-re@x"), thread_of(&a, "old-post@x"));
}

#[test]
fn preamble_truncated_gzip_and_garbage_are_problems_with_offsets() {
    let a = Archive::new();
    let noise: String = pseudo_random(30_000)
        .iter()
        .map(|b| (b'a' + b % 26) as char)
        .collect();
    let first = mboxrd(&[simple("gz1@x", "gz", 1, &[], "one\n")]);
    let good = mboxrd(&[
        simple("gz1@x", "gz", 1, &[], "one\n"),
        simple("gz2@x", "gz", 2, &[], &noise),
    ]);
    let mut gz = Vec::new();
    {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(&mut gz, flate2::Compression::default());
        enc.write_all(&good).expect("gzip");
        enc.finish().expect("gzip");
    }
    let truncated = &gz[..gz.len() * 2 / 3];
    let file = a.dir.path().join("cut.mbox.gz");
    std::fs::write(&file, truncated).expect("write");
    let report = a.import_paths(&[&file], &["--list", "cut"]);
    assert_eq!(num(&report, "messages_new"), 1, "{report}");
    assert_eq!(num(&report, "problems"), 1);
    let mut pre = b"this is not mail\n\n".to_vec();
    pre.extend_from_slice(b"From x@y Mon May  1 09:12:44 2023\n\nno headers at all\n\n");
    pre.extend_from_slice(&mboxrd(&[simple("after@x", "ok", 3, &[], "fine\n")]));
    let file2 = a.dir.path().join("pre.mbox");
    std::fs::write(&file2, &pre).expect("write");
    let report = a.import_paths(&[&file2], &["--list", "cut"]);
    assert_eq!(num(&report, "messages_new"), 1, "{report}");
    assert_eq!(num(&report, "problems"), 2);
    let out = a.run(&["problems", "--json"]);
    let problems: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let kinds: Vec<(String, u64)> = problems
        .as_array()
        .expect("array")
        .iter()
        .map(|p| {
            (
                p["kind"].as_str().unwrap_or_default().to_string(),
                p["offset"].as_u64().unwrap_or(u64::MAX),
            )
        })
        .collect();
    assert!(
        kinds.contains(&("truncated".to_string(), first.len() as u64)),
        "the truncated second message is recorded at its offset: {kinds:?}"
    );
    assert!(kinds.contains(&("preamble".to_string(), 0)), "{kinds:?}");
    assert!(kinds.contains(&("no-headers".to_string(), 18)), "{kinds:?}");
    // Each problem is a byte range: the preamble is the 18 bytes before the first separator,
    // the headerless record runs up to the next one.
    let length = |kind: &str| {
        problems
            .as_array()
            .expect("array")
            .iter()
            .find(|p| p["kind"] == kind)
            .and_then(|p| p["length"].as_u64())
    };
    assert_eq!(length("preamble"), Some(18));
    let headerless = b"From x@y Mon May  1 09:12:44 2023\n\nno headers at all\n\n".len() as u64;
    assert_eq!(length("no-headers"), Some(headerless));
}
