//! Crash safety: an import killed (SIGKILL) at random moments and re-run ends in the same
//! archive as one uninterrupted run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use crate::support::{corpus, num, Archive};

/// The archive's content, independent of row and thread ids: every message with its lists
/// and raw-bytes hash, and the threads as sets of Message-IDs.
/// Message-ID → (content key, lists), and the threads as sorted id lists.
type Snapshot = (BTreeMap<String, (Vec<u8>, String)>, BTreeSet<Vec<String>>);

fn snapshot(a: &Archive) -> Snapshot {
    let conn = a.sql();
    let mut stmt = conn
        .prepare(
            "SELECT m.message_id, m.content_key, m.thread_id,
                    (SELECT group_concat(name, ',') FROM (SELECT l.name FROM memberships ms
                       JOIN lists l ON l.id = ms.list WHERE ms.message = m.id ORDER BY l.name))
             FROM messages m",
        )
        .expect("prepare");
    let mut messages = BTreeMap::new();
    let mut threads: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .expect("query");
    for row in rows {
        let (id, key, thread, lists) = row.expect("row");
        threads.entry(thread).or_default().push(id.clone());
        messages.insert(id, (key, lists));
    }
    let threads = threads
        .into_values()
        .map(|mut ids| {
            ids.sort();
            ids
        })
        .collect();
    (messages, threads)
}

fn small_batches(a: &Archive) -> std::path::PathBuf {
    let path = a.dir.path().join("config.toml");
    std::fs::write(&path, "[import]\nbatch_size = 150\n").expect("config");
    path
}

#[test]
fn killed_imports_resume_to_the_same_archive() {
    let Some(dir) = corpus() else { return };
    let input = dir.join("vger-public-inbox");
    let clean = Archive::new();
    let config = small_batches(&clean);
    let out = clean
        .cmd()
        .arg("--config")
        .arg(&config)
        .args(["import", "--json"])
        .arg(&input)
        .output()
        .expect("clean run");
    assert!(out.status.success());
    let expected = snapshot(&clean);
    assert_eq!(expected.0.len() as u64, num(&clean.stats(), "messages"));

    // Kill points spread over the run, different each time but reproducible per seed.
    let mut seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    for round in 0..4 {
        let a = Archive::new();
        let config = small_batches(&a);
        let mut kills = 0;
        for attempt in 0..3 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let delay = Duration::from_millis(100 + (seed >> 33) % 900);
            let mut child = a
                .cmd()
                .arg("--config")
                .arg(&config)
                .args(["import", "--json"])
                .arg(&input)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("spawn");
            std::thread::sleep(delay);
            if child.try_wait().expect("try_wait").is_none() {
                child.kill().expect("SIGKILL");
                kills += 1;
            }
            let _ = child.wait();
            let _ = attempt;
        }
        finish(&a, &config, &input);
        let got = snapshot(&a);
        assert_eq!(
            got.0.len(),
            expected.0.len(),
            "round {round} ({kills} kills): message count"
        );
        assert!(
            got == expected,
            "round {round} ({kills} kills): archive differs from a clean run"
        );
    }
}

fn finish(a: &Archive, config: &Path, input: &Path) {
    let out = a
        .cmd()
        .arg("--config")
        .arg(config)
        .args(["import", "--json"])
        .arg(input)
        .output()
        .expect("final run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
