//! Weekly digests through the real binary: topic grouping on the kernel corpus with subject
//! prefixes stripped (agreement with the stripped prefixes), every active thread exactly once,
//! determinism, the preview JSON contract on the sample archive.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Read;
use std::path::Path;

use archivist::message::{IsoWeek, ZoneOffset};
use serde_json::Value;

use crate::support::{corpus, Archive};

pub fn preview(a: &Archive, args: &[&str]) -> Value {
    let mut all = vec!["digest", "preview", "--json"];
    all.extend_from_slice(args);
    let out = a.run(&all);
    assert!(
        out.status.success(),
        "digest preview {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("preview JSON")
}

/// Every thread of a preview: (root id, topic index or None for "other").
fn placements(digest: &Value) -> Vec<(String, Option<usize>)> {
    let mut out = Vec::new();
    for (i, topic) in digest["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .enumerate()
    {
        for t in topic["threads"].as_array().expect("threads") {
            out.push((
                t["root_message_id"].as_str().expect("id").to_string(),
                Some(i),
            ));
        }
    }
    for t in digest["other_threads"].as_array().expect("other") {
        out.push((t["root_message_id"].as_str().expect("id").to_string(), None));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Stripping subject prefixes from the kernel corpus

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

/// Removes reply prefixes' companions from a subject: `[PATCH v2 3/7]` tags and kernel
/// `subsystem:` prefixes, keeping one `Re: ` when it was a reply. Returns the new subject and
/// the first prefix (lowercased, before any `/`), the ground truth. Encoded subjects are left
/// alone (no truth).
pub fn strip_subject(subject: &str) -> (String, Option<String>) {
    if subject.contains("=?") {
        return (subject.to_string(), None);
    }
    let mut rest = subject.trim();
    let mut reply = false;
    loop {
        let lower = rest.to_ascii_lowercase();
        if let Some(p) = ["re:", "fwd:", "fw:", "aw:"]
            .iter()
            .find(|p| lower.starts_with(*p))
        {
            reply = true;
            rest = rest[p.len()..].trim_start();
            continue;
        }
        if let Some(inner) = rest.strip_prefix('[') {
            if let Some(close) = inner.find(']') {
                rest = inner[close + 1..].trim_start();
                continue;
            }
        }
        break;
    }
    let mut truth = None;
    for _ in 0..4 {
        let Some(colon) = rest.find(':') else { break };
        let word = &rest[..colon];
        let after = &rest[colon + 1..];
        let valid = !word.is_empty()
            && word.len() <= 32
            && word.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.'))
            && after.starts_with([' ', '\t']);
        if !valid {
            break;
        }
        if truth.is_none() {
            let lower = word.to_ascii_lowercase();
            truth = Some(lower.split('/').next().unwrap_or(&lower).to_string());
        }
        rest = after.trim_start();
    }
    let new = if reply {
        format!("Re: {rest}")
    } else {
        rest.to_string()
    };
    (new, truth)
}

/// Copies the kernel lists into `out` with every subject stripped; returns Message-ID → truth.
pub fn strip_kernel_corpus(src: &Path, out: &Path) -> HashMap<String, String> {
    let mut truth = HashMap::new();
    for list in std::fs::read_dir(src).expect("read_dir") {
        let list = list.expect("entry").path();
        if !list.is_dir() {
            continue;
        }
        let name = list.file_name().expect("name").to_owned();
        std::fs::create_dir_all(out.join(&name)).expect("mkdir");
        for file in std::fs::read_dir(&list).expect("read_dir") {
            let file = file.expect("entry").path();
            let bytes = read_maybe_gz(&file);
            let stripped = strip_mbox(&bytes, &mut truth);
            let base = file
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .trim_end_matches(".gz")
                .to_string();
            std::fs::write(out.join(&name).join(base), stripped).expect("write");
        }
    }
    truth
}

fn strip_mbox(bytes: &[u8], truth: &mut HashMap<String, String>) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut in_headers = false;
    let lines: Vec<&[u8]> = bytes.split_inclusive(|&b| b == b'\n').collect();
    let mut i = 0;
    let mut msg_subject_truth: Option<String> = None;
    let mut msg_id: Option<String> = None;
    while i < lines.len() {
        let line = lines[i];
        if line.starts_with(b"From ") {
            in_headers = true;
            msg_subject_truth = None;
            msg_id = None;
            out.extend_from_slice(line);
            i += 1;
            continue;
        }
        if in_headers && (line == b"\n" || line == b"\r\n") {
            in_headers = false;
            if let (Some(id), Some(t)) = (msg_id.take(), msg_subject_truth.take()) {
                truth.insert(id, t);
            }
            out.extend_from_slice(line);
            i += 1;
            continue;
        }
        if !in_headers {
            out.extend_from_slice(line);
            i += 1;
            continue;
        }
        // A header field with its continuation lines.
        let mut j = i + 1;
        while j < lines.len() && (lines[j].starts_with(b" ") || lines[j].starts_with(b"\t")) {
            j += 1;
        }
        let field: Vec<u8> = lines[i..j].concat();
        let lower = String::from_utf8_lossy(&field[..field.len().min(12)]).to_ascii_lowercase();
        if lower.starts_with("subject:") {
            match std::str::from_utf8(&field) {
                Ok(text) => {
                    let value = text["subject:".len()..].replace(['\r', '\n'], "");
                    let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
                    let (new, t) = strip_subject(&value);
                    msg_subject_truth = t;
                    out.extend_from_slice(format!("Subject: {new}\n").as_bytes());
                }
                Err(_) => out.extend_from_slice(&field),
            }
        } else {
            if lower.starts_with("message-id:") {
                let text = String::from_utf8_lossy(&field);
                let value = text["message-id:".len()..].trim();
                msg_id = archivist::message::MessageId::parse(value).map(|m| m.to_string());
            }
            out.extend_from_slice(&field);
        }
        i = j;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Agreement

/// Normalised mutual information (arithmetic mean of the entropies, i.e. the V-measure) and
/// purity of `clusters` against `classes`, over the same items.
pub fn agreement(clusters: &[String], classes: &[String]) -> (f64, f64) {
    let n = clusters.len() as f64;
    if clusters.is_empty() {
        return (1.0, 1.0);
    }
    let mut joint: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    let mut ca: BTreeMap<&str, f64> = BTreeMap::new();
    let mut cb: BTreeMap<&str, f64> = BTreeMap::new();
    for (c, t) in clusters.iter().zip(classes) {
        *joint.entry((c, t)).or_default() += 1.0;
        *ca.entry(c).or_default() += 1.0;
        *cb.entry(t).or_default() += 1.0;
    }
    let h = |m: &BTreeMap<&str, f64>| -> f64 { m.values().map(|&c| -(c / n) * (c / n).ln()).sum() };
    let mut mi = 0.0;
    for (&(c, t), &nij) in &joint {
        mi += nij / n * ((nij * n) / (ca[c] * cb[t])).ln();
    }
    let (ha, hb) = (h(&ca), h(&cb));
    let nmi = if ha + hb == 0.0 {
        1.0
    } else {
        2.0 * mi / (ha + hb)
    };
    let mut best: BTreeMap<&str, f64> = BTreeMap::new();
    for (&(c, _), &nij) in &joint {
        let e = best.entry(c).or_default();
        if nij > *e {
            *e = nij;
        }
    }
    let purity = best.values().sum::<f64>() / n;
    (nmi, purity)
}

#[test]
fn agreement_known_values() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let (nmi, purity) = agreement(&s(&["a", "a", "b", "b"]), &s(&["x", "x", "y", "y"]));
    assert!((nmi - 1.0).abs() < 1e-9 && (purity - 1.0).abs() < 1e-9);
    let (nmi, purity) = agreement(&s(&["a", "a", "a", "a"]), &s(&["x", "x", "y", "y"]));
    assert!(nmi.abs() < 1e-9 && (purity - 0.5).abs() < 1e-9);
    let cases = [
        (
            "[PATCH v2 3/7] nfsd: fix a leak",
            "fix a leak",
            Some("nfsd"),
        ),
        (
            "Re: [PATCH] SUNRPC: xprtrdma: x y",
            "Re: x y",
            Some("sunrpc"),
        ),
        ("pNFS/flexfiles: z", "z", Some("pnfs")),
        ("Re: plain question", "Re: plain question", None),
        ("=?utf-8?q?nfsd=3A_x?=", "=?utf-8?q?nfsd=3A_x?=", None),
    ];
    for (subject, want, truth) in cases {
        let (got, t) = strip_subject(subject);
        assert_eq!((got.as_str(), t.as_deref()), (want, truth), "{subject}");
    }
}

/// Per-week agreement of the topics with the stripped prefixes.
pub struct WeekScore {
    pub week: String,
    pub threads: usize,
    pub labelled: usize,
    pub topics: usize,
    pub nmi: f64,
    pub purity: f64,
    pub nmi_other_as_one: f64,
}

/// Imports the stripped kernel corpus into `a`, returning the weeks worth scoring and the truth
/// of each thread (by root Message-ID).
pub fn stripped_kernel_archive(a: &Archive, dir: &Path) -> (Vec<IsoWeek>, HashMap<String, String>) {
    let stripped = a.dir.path().join("stripped");
    let truth = strip_kernel_corpus(&dir.join("vger-public-inbox"), &stripped);
    a.import(&[&stripped.display().to_string()]);
    let conn = a.sql();
    // Thread truth: the most common prefix among the thread's messages (ties: smallest).
    let mut stmt = conn
        .prepare("SELECT message_id, thread_id, date FROM messages")
        .expect("prepare");
    let rows: Vec<(String, i64, Option<i64>)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .expect("query")
        .collect::<Result<_, _>>()
        .expect("rows");
    let mut votes: HashMap<i64, BTreeMap<String, usize>> = HashMap::new();
    let mut weeks: BTreeMap<IsoWeek, usize> = BTreeMap::new();
    for (id, thread, date) in &rows {
        if let Some(t) = truth.get(id) {
            *votes
                .entry(*thread)
                .or_default()
                .entry(t.clone())
                .or_default() += 1;
        }
        if let Some(d) = date {
            *weeks
                .entry(IsoWeek::containing(*d, ZoneOffset::UTC))
                .or_default() += 1;
        }
    }
    let mut by_root = HashMap::new();
    for (id, thread, _) in &rows {
        if let Some(v) = votes.get(thread) {
            if let Some((t, _)) = v.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) {
                by_root.insert(id.clone(), t.clone());
            }
        }
    }
    let weeks = weeks
        .into_iter()
        .filter(|&(_, n)| n >= 100)
        .map(|(w, _)| w)
        .collect();
    (weeks, by_root)
}

pub fn score_week(
    a: &Archive,
    week: IsoWeek,
    truth: &HashMap<String, String>,
    extra: &[&str],
) -> WeekScore {
    let w = week.to_string();
    let mut args = vec!["--week", w.as_str()];
    args.extend_from_slice(extra);
    let digest = preview(a, &args);
    let placed = placements(&digest);
    let mut clusters = Vec::new();
    let mut clusters_one_other = Vec::new();
    let mut classes = Vec::new();
    for (root, topic) in &placed {
        let Some(t) = truth.get(root) else { continue };
        classes.push(t.clone());
        match topic {
            Some(i) => {
                clusters.push(format!("topic{i}"));
                clusters_one_other.push(format!("topic{i}"));
            }
            None => {
                clusters.push(format!("other:{root}"));
                clusters_one_other.push("other".to_string());
            }
        }
    }
    let (nmi, purity) = agreement(&clusters, &classes);
    let (nmi_other_as_one, _) = agreement(&clusters_one_other, &classes);
    WeekScore {
        week: w,
        threads: placed.len(),
        labelled: classes.len(),
        topics: digest["topics"].as_array().map_or(0, Vec::len),
        nmi,
        purity,
        nmi_other_as_one,
    }
}

/// Scores every busy week and prints a table; returns the thread-weighted mean NMI and purity.
pub fn score_all(
    a: &Archive,
    weeks: &[IsoWeek],
    truth: &HashMap<String, String>,
    extra: &[&str],
) -> (f64, f64, f64) {
    let mut weighted = (0.0, 0.0, 0.0, 0usize);
    for &week in weeks {
        let s = score_week(a, week, truth, extra);
        eprintln!(
            "{}  threads {:4}  with truth {:4}  topics {:3}  NMI {:.3}  purity {:.3}  NMI(other as one) {:.3}",
            s.week, s.threads, s.labelled, s.topics, s.nmi, s.purity, s.nmi_other_as_one
        );
        let w = s.labelled as f64;
        weighted.0 += s.nmi * w;
        weighted.1 += s.purity * w;
        weighted.2 += s.nmi_other_as_one * w;
        weighted.3 += s.labelled;
    }
    let n = weighted.3.max(1) as f64;
    (weighted.0 / n, weighted.1 / n, weighted.2 / n)
}

/// The grouping recovers the kernel lists' subsystem prefixes after they were removed from
/// every subject. Prints the per-week table (`--nocapture`); BENCHMARKS.md records it. Set
/// `ARCHIVIST_TOPIC_ABLATION=1` to also print each signal set's score.
#[test]
fn topics_recover_stripped_kernel_prefixes() {
    let Some(dir) = corpus() else { return };
    let a = Archive::new();
    let (weeks, truth) = stripped_kernel_archive(&a, &dir);
    assert!(weeks.len() >= 6, "weeks {weeks:?}");
    let (nmi, purity, nmi_one) = score_all(&a, &weeks, &truth, &[]);
    eprintln!("all signals: NMI {nmi:.3}  purity {purity:.3}  NMI(other as one) {nmi_one:.3}");
    if std::env::var("ARCHIVIST_TOPIC_ABLATION").is_ok_and(|v| v == "1") {
        for signals in [
            "words",
            "words,identifiers",
            "words,identifiers,paths",
            "words,identifiers,paths,people",
            "words,identifiers,paths,people,lists",
            "words,identifiers,paths,people,lists,history",
        ] {
            let (nmi, purity, nmi_one) = score_all(&a, &weeks, &truth, &["--signals", signals]);
            eprintln!(
                "{signals}: NMI {nmi:.3}  purity {purity:.3}  NMI(other as one) {nmi_one:.3}"
            );
        }
    }
    assert!(nmi >= 0.5, "NMI {nmi:.3} too low");
}

/// Every thread with a message in the week appears exactly once, cross-posts included, and the
/// same archive and week give the same digest.
#[test]
fn every_active_thread_once_and_deterministic() {
    let Some(dir) = corpus() else { return };
    let a = Archive::new();
    a.import(&[&dir.join("vger-public-inbox").display().to_string()]);
    let week = IsoWeek::parse("2024-W41").expect("week");
    let (start, end) = (week.start(ZoneOffset::UTC), week.end(ZoneOffset::UTC));
    let want: i64 = a
        .sql()
        .query_row(
            "SELECT COUNT(DISTINCT thread_id) FROM messages WHERE date >= ?1 AND date < ?2",
            [start, end],
            |r| r.get(0),
        )
        .expect("count");
    let first = preview(&a, &["--week", "2024-W41"]);
    let placed = placements(&first);
    let distinct: BTreeSet<&str> = placed.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(placed.len(), distinct.len(), "a thread appears twice");
    assert_eq!(placed.len() as i64, want);
    assert_eq!(
        preview(&a, &["--week", "2024-W41"]),
        first,
        "not deterministic"
    );
    // A list filter keeps only that list's threads.
    let nfs = preview(&a, &["--week", "2024-W41", "--lists", "linux-nfs"]);
    assert_eq!(nfs["lists"], serde_json::json!(["linux-nfs"]));
    for t in nfs["topics"]
        .as_array()
        .expect("topics")
        .iter()
        .flat_map(|t| t["threads"].as_array().expect("threads").iter())
        .chain(nfs["other_threads"].as_array().expect("other").iter())
    {
        let lists: Vec<&str> = t["lists"]
            .as_array()
            .expect("lists")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(lists.contains(&"linux-nfs"), "{t}");
    }
}

/// The preview JSON has exactly the documented shape.
#[test]
fn preview_json_contract_on_the_sample_archive() {
    let a = Archive::new();
    let sample = a.dir.path().join("sample");
    let out = a.run(&[
        "sample",
        "--out",
        &sample.display().to_string(),
        "--weeks",
        "3",
        "--per-week",
        "120",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    a.import(&[&sample.display().to_string()]);
    let digest = preview(&a, &["--week", "2023-W19", "--lists", "dev,operators"]);
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&digest), ["lists", "other_threads", "topics", "week"]);
    assert_eq!(digest["week"], "2023-W19");
    assert_eq!(digest["lists"], serde_json::json!(["dev", "operators"]));
    let topics = digest["topics"].as_array().expect("topics");
    assert!(topics.len() >= 3, "{digest:#}");
    for t in topics {
        assert_eq!(keys(t), ["label", "terms", "threads"]);
        assert!(t["threads"].as_array().expect("threads").len() >= 2);
        for th in t["threads"].as_array().expect("threads") {
            assert_eq!(
                keys(th),
                [
                    "lists",
                    "messages",
                    "participants",
                    "root_message_id",
                    "subject"
                ]
            );
            assert!(th["messages"].as_u64().expect("n") >= 1);
        }
    }
    // The sample's topics carry [tag] subjects: most topics are named by their tag.
    let labels: Vec<&str> = topics.iter().filter_map(|t| t["label"].as_str()).collect();
    let tagged = labels
        .iter()
        .filter(|l| {
            [
                "nova",
                "neutron",
                "placement",
                "tc",
                "kolla",
                "release",
                "ops",
                "i18n",
                "security-sig",
            ]
            .contains(l)
        })
        .count();
    assert!(tagged * 2 >= labels.len(), "{labels:?}");
    // Unknown lists and bad weeks are usage errors.
    let out = a.run(&["digest", "preview", "--week", "2023-W19", "--lists", "nope"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = a.run(&["digest", "preview", "--week", "2023-W99"]);
    assert_eq!(out.status.code(), Some(2));
}
