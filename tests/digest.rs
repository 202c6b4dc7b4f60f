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

/// Adjusted Rand index of `clusters` against `classes`: 0 for chance, 1 for identical; unlike
/// NMI it does not reward splitting into many small clusters.
pub fn adjusted_rand(clusters: &[String], classes: &[String]) -> f64 {
    let pairs = |n: f64| n * (n - 1.0) / 2.0;
    let mut joint: BTreeMap<(&str, &str), f64> = BTreeMap::new();
    let mut ca: BTreeMap<&str, f64> = BTreeMap::new();
    let mut cb: BTreeMap<&str, f64> = BTreeMap::new();
    for (c, t) in clusters.iter().zip(classes) {
        *joint.entry((c, t)).or_default() += 1.0;
        *ca.entry(c).or_default() += 1.0;
        *cb.entry(t).or_default() += 1.0;
    }
    let index: f64 = joint.values().map(|&n| pairs(n)).sum();
    let a: f64 = ca.values().map(|&n| pairs(n)).sum();
    let b: f64 = cb.values().map(|&n| pairs(n)).sum();
    let total = pairs(clusters.len() as f64);
    if total == 0.0 {
        return 1.0;
    }
    let expected = a * b / total;
    let max = (a + b) / 2.0;
    if max == expected {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

/// BCubed precision and recall: per item, the share of its cluster that shares its class, and
/// the share of its class that shares its cluster, averaged.
pub fn bcubed(clusters: &[String], classes: &[String]) -> (f64, f64) {
    let n = clusters.len();
    if n == 0 {
        return (1.0, 1.0);
    }
    let mut joint: HashMap<(&str, &str), f64> = HashMap::new();
    let mut ca: HashMap<&str, f64> = HashMap::new();
    let mut cb: HashMap<&str, f64> = HashMap::new();
    for (c, t) in clusters.iter().zip(classes) {
        *joint.entry((c, t)).or_default() += 1.0;
        *ca.entry(c).or_default() += 1.0;
        *cb.entry(t).or_default() += 1.0;
    }
    let (mut p, mut r) = (0.0, 0.0);
    for (c, t) in clusters.iter().zip(classes) {
        let both = joint[&(c.as_str(), t.as_str())];
        p += both / ca[c.as_str()];
        r += both / cb[t.as_str()];
    }
    (p / n as f64, r / n as f64)
}

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
    let (p, r) = bcubed(&s(&["a", "a", "a", "a"]), &s(&["x", "x", "y", "y"]));
    assert!((p - 0.5).abs() < 1e-9 && (r - 1.0).abs() < 1e-9);
    assert!(
        (adjusted_rand(&s(&["a", "a", "b", "b"]), &s(&["x", "x", "y", "y"])) - 1.0).abs() < 1e-9
    );
    assert!(adjusted_rand(&s(&["a", "b", "c", "d"]), &s(&["x", "x", "y", "y"])).abs() < 1e-9);
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
    pub ari: f64,
    pub classes: usize,
    pub nmi_singletons: f64,
    pub bcubed_p: f64,
    pub bcubed_r: f64,
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
    let ari = adjusted_rand(&clusters, &classes);
    let (bcubed_p, bcubed_r) = bcubed(&clusters, &classes);
    let singletons: Vec<String> = (0..classes.len()).map(|i| i.to_string()).collect();
    let (nmi_singletons, _) = agreement(&singletons, &classes);
    let distinct: BTreeSet<&String> = classes.iter().collect();
    WeekScore {
        week: w,
        threads: placed.len(),
        labelled: classes.len(),
        topics: digest["topics"].as_array().map_or(0, Vec::len),
        nmi,
        purity,
        nmi_other_as_one,
        ari,
        classes: distinct.len(),
        nmi_singletons,
        bcubed_p,
        bcubed_r,
    }
}

/// Thread-weighted means over the scored weeks.
#[derive(Debug, Default)]
pub struct Summary {
    pub nmi: f64,
    pub purity: f64,
    pub nmi_other_as_one: f64,
    pub ari: f64,
    pub nmi_singletons: f64,
    pub bcubed_p: f64,
    pub bcubed_r: f64,
    pub bcubed_f: f64,
}

/// Scores every busy week and prints a table; returns thread-weighted means.
pub fn score_all(
    a: &Archive,
    weeks: &[IsoWeek],
    truth: &HashMap<String, String>,
    extra: &[&str],
) -> Summary {
    let mut sum = Summary::default();
    let mut n = 0usize;
    for &week in weeks {
        let s = score_week(a, week, truth, extra);
        eprintln!(
            "{}  threads {:3} (with truth {:3}, {:2} prefixes)  topics {:2}  NMI {:.3}  ARI {:.3}  BCubed P {:.3} R {:.3}  purity {:.3}  NMI(other as one) {:.3}  NMI(all singletons) {:.3}",
            s.week, s.threads, s.labelled, s.classes, s.topics, s.nmi, s.ari, s.bcubed_p, s.bcubed_r, s.purity, s.nmi_other_as_one, s.nmi_singletons
        );
        let w = s.labelled as f64;
        sum.nmi += s.nmi * w;
        sum.purity += s.purity * w;
        sum.nmi_other_as_one += s.nmi_other_as_one * w;
        sum.ari += s.ari * w;
        sum.nmi_singletons += s.nmi_singletons * w;
        sum.bcubed_p += s.bcubed_p * w;
        sum.bcubed_r += s.bcubed_r * w;
        n += s.labelled;
    }
    let n = n.max(1) as f64;
    Summary {
        nmi: sum.nmi / n,
        purity: sum.purity / n,
        nmi_other_as_one: sum.nmi_other_as_one / n,
        ari: sum.ari / n,
        nmi_singletons: sum.nmi_singletons / n,
        bcubed_p: sum.bcubed_p / n,
        bcubed_r: sum.bcubed_r / n,
        bcubed_f: 2.0 * sum.bcubed_p * sum.bcubed_r / (sum.bcubed_p + sum.bcubed_r) / n,
    }
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
    let all = score_all(&a, &weeks, &truth, &[]);
    eprintln!("all signals: {all:.3?}");
    if std::env::var("ARCHIVIST_TOPIC_ABLATION").is_ok_and(|v| v == "1") {
        for signals in [
            "words",
            "words,identifiers",
            "words,identifiers,paths",
            "words,identifiers,paths,people",
            "words,identifiers,paths,people,lists",
            "words,identifiers,paths,people,lists,history",
        ] {
            let s = score_all(&a, &weeks, &truth, &["--signals", signals]);
            eprintln!("{signals}: {s:.3?}");
        }
    }
    // Chance-corrected agreement well above plain words (ARI 0.34 at their best cut-off).
    assert!(
        all.nmi >= 0.8 && all.ari >= 0.42 && all.bcubed_f >= 0.7,
        "{all:?}"
    );
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

/// A list's subject prefix (`[Rd]` on r-devel, `[R-pkg-devel]`) is not a topic: the R lists'
/// biggest "topics" used to be their prefixes, carried from week to week.
#[test]
fn list_subject_prefixes_are_not_topics_on_the_r_lists() {
    let Some(dir) = corpus() else { return };
    let a = Archive::new();
    a.import(&[&dir.join("r-mailing-lists-pipermail").display().to_string()]);
    let mut labels = Vec::new();
    for (week, list) in [
        ("2019-W24", "r-devel"),
        ("2019-W25", "r-devel"),
        ("2019-W24", "r-package-devel"),
        ("2019-W22", "r-package-devel"),
    ] {
        let digest = preview(&a, &["--week", week, "--lists", list]);
        for t in digest["topics"].as_array().expect("topics") {
            labels.push(t["label"].as_str().expect("label").to_string());
        }
    }
    assert!(!labels.is_empty());
    assert!(
        labels.iter().all(|l| l != "rd" && l != "r-pkg-devel"),
        "{labels:?}"
    );
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

// ---------------------------------------------------------------------------------------------
// Rendering: golden files

/// Compares `actual` with `tests/golden/<name>`; on a mismatch writes `<name>.actual` beside it
/// and fails. `ARCHIVIST_UPDATE_GOLDEN=1` rewrites the golden file instead.
pub fn check_golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let actual_path = path.with_file_name(format!("{name}.actual"));
    if std::env::var("ARCHIVIST_UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
        std::fs::write(&path, actual).expect("write golden");
        let _ = std::fs::remove_file(&actual_path);
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if expected != actual {
        std::fs::write(&actual_path, actual).expect("write .actual");
        panic!(
            "{} differs from the golden file; see {} (ARCHIVIST_UPDATE_GOLDEN=1 accepts it)",
            name,
            actual_path.display()
        );
    }
    let _ = std::fs::remove_file(&actual_path);
}

fn mail(
    id: &str,
    from: &str,
    subject: &str,
    date: &str,
    refs: &[&str],
    list: &str,
    body: &str,
) -> Vec<u8> {
    let mid = format!("<{id}>");
    let refs_value = refs
        .iter()
        .map(|r| format!("<{r}>"))
        .collect::<Vec<_>>()
        .join(" ");
    let list_id = format!("<{list}.lists.example.org>");
    let mut headers = vec![
        ("From", from),
        ("To", "dev@lists.example.org"),
        ("Subject", subject),
        ("Date", date),
        ("Message-ID", mid.as_str()),
        ("List-Id", list_id.as_str()),
        ("Content-Type", "text/plain; charset=utf-8"),
    ];
    if !refs.is_empty() {
        headers.push(("References", refs_value.as_str()));
    }
    crate::support::message(&headers, body)
}

/// A small archive for 2023-W20: two `[nova]` threads (one cross-posted to ops), an older
/// thread continuing this week, and a hostile thread (script in the subject, HTML in the
/// name and body, a Message-ID full of URL metacharacters).
pub fn render_fixture(a: &Archive) {
    let dev = vec![
        mail("sched-1@example.org", "Ann Example <ann@example.org>",
            "[nova] Scheduler ignores the weigher", "Mon, 15 May 2023 09:00:00 +0000", &[], "dev",
            "Hi all,\n\nThe scheduler ignores the RAM weigher when hosts are full. It picks the first host instead.\n\nThanks,\nAnn\n"),
        mail("sched-2@example.org", "Bob Builder <bob@example.org>",
            "Re: [nova] Scheduler ignores the weigher", "Mon, 15 May 2023 11:00:00 +0000", &["sched-1@example.org"], "dev",
            "On Mon, Ann wrote:\n> The scheduler ignores the RAM weigher\n\nThe weigher multiplier defaults to zero since the last release, so the scheduler skips it. Set ram_weight_multiplier to 1.0 to restore the old behaviour.\n"),
        mail("sched-3@example.org", "Ann Example <ann@example.org>",
            "Re: [nova] Scheduler ignores the weigher", "Tue, 16 May 2023 08:00:00 +0000", &["sched-1@example.org", "sched-2@example.org"], "dev",
            "That fixed it, thanks.\n"),
        mail("pin-1@example.org", "Cy Node <cy@example.org>",
            "[nova] Placement of pinned CPUs", "Wed, 17 May 2023 10:00:00 +0000", &[], "dev",
            "Pinned CPUs are counted twice by the scheduler when the weigher runs. Is this expected?\n"),
        mail("pin-2@example.org", "Ann Example <ann@example.org>",
            "Re: [nova] Placement of pinned CPUs", "Wed, 17 May 2023 12:00:00 +0000", &["pin-1@example.org"], "dev",
            "No: the scheduler should count pinned CPUs once. Please file a bug with your weigher settings.\n"),
        mail("old-1@example.org", "Dee Old <dee@example.org>",
            "Release schedule for Bobcat", "Mon, 8 May 2023 10:00:00 +0000", &[], "dev",
            "The release schedule for Bobcat is out.\n"),
        mail("old-2@example.org", "Eve Late <eve@example.org>",
            "Re: Release schedule for Bobcat", "Thu, 18 May 2023 10:00:00 +0000", &["old-1@example.org"], "dev",
            "Milestone 2 moves by one week. The final release date stays.\n"),
        mail("x\"y/z?a=1&b=2#f@evil.example", "Mallory <b>Bold</b> <mallory@evil.example>",
            "<script>alert(\"x\")</script> & \"quotes\"", "Fri, 19 May 2023 10:00:00 +0000", &[], "dev",
            "Click <a href=\"javascript:alert(1)\">here</a> \"><img src=x onerror=alert(1)> now & then.\n"),
    ];
    let ops = vec![mail(
        "pin-1@example.org",
        "Cy Node <cy@example.org>",
        "[nova] Placement of pinned CPUs",
        "Wed, 17 May 2023 10:00:00 +0000",
        &[],
        "ops",
        "Pinned CPUs are counted twice by the scheduler when the weigher runs. Is this expected?\n",
    )];
    let dir = a.dir.path().join("fixture");
    std::fs::create_dir_all(dir.join("dev")).expect("mkdir");
    std::fs::create_dir_all(dir.join("ops")).expect("mkdir");
    std::fs::write(dir.join("dev/2023-05.mbox"), crate::support::mboxrd(&dev)).expect("write");
    std::fs::write(dir.join("ops/2023-05.mbox"), crate::support::mboxrd(&ops)).expect("write");
    a.import(&[&dir.display().to_string()]);
}

fn preview_raw(a: &Archive, args: &[&str]) -> String {
    let mut all = vec!["digest", "preview"];
    all.extend_from_slice(args);
    let out = a.run(&all);
    assert!(
        out.status.success(),
        "digest preview {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// The text and HTML digests match their golden files, hostile input included.
#[test]
fn rendered_digests_match_golden_files() {
    let a = Archive::new();
    render_fixture(&a);
    let text = preview_raw(&a, &["--week", "2023-W20", "--text"]);
    let html = preview_raw(&a, &["--week", "2023-W20", "--html"]);
    check_golden("digest-2023-W20.txt", &text);
    check_golden("digest-2023-W20.html", &html);
    // Escaping: nothing the hostile sender wrote is live HTML.
    for live in [
        "<script",
        "<img",
        "<b>Bold",
        "javascript:alert(1)\">",
        "onerror=alert(1)>",
    ] {
        assert!(!html.contains(live), "{live:?} is live in the HTML");
    }
    assert!(html.contains("&lt;script&gt;alert("), "subject not escaped");
    assert!(
        !html.contains("<script") && !html.contains("src=\"http"),
        "scripts or remote images"
    );
    // The hostile Message-ID is percent-encoded in the link.
    assert!(
        html.contains("/t/x%22y%2Fz%3Fa%3D1%26b%3D2%23f@evil.example"),
        "{html}"
    );
    // Participants are names, never addresses.
    assert!(!text.contains("ann@example.org") && !html.contains("ann@example.org"));
    // An empty week says so.
    let empty = preview_raw(&a, &["--week", "2023-W30", "--text"]);
    check_golden("digest-empty.txt", &empty);
    // A quiet week (one thread) is short and says so.
    let quiet = preview_raw(&a, &["--week", "2023-W19", "--text"]);
    check_golden("digest-quiet.txt", &quiet);
}
