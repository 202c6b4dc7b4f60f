//! Known-answer tests on a small corpus in a temporary directory: filters, stemming, other
//! languages, facets, collapsing, paging, snippets, rebuild and watermarks.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::schema::SCHEMA_DIR;
use super::*;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("archivist-index-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ts(s: &str) -> i64 {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::PrimitiveDateTime::parse(s, &fmt)
        .expect("test step")
        .assume_utc()
        .unix_timestamp()
}

#[allow(clippy::too_many_arguments)]
fn doc(
    id: &str,
    thread: u64,
    date: &str,
    subject: &str,
    body: &str,
    from: (&str, Option<&str>),
    lists: &[&str],
    flags: (bool, bool),
) -> IndexDoc {
    IndexDoc {
        message_id: format!("<{id}@example.org>"),
        thread,
        date: Some(ts(date)),
        subject: subject.to_string(),
        body: body.to_string(),
        from_name: Some(from.0.to_string()),
        from_addr: from.1.map(str::to_string),
        recipients: lists
            .iter()
            .map(|l| format!("{l}@lists.example.org"))
            .collect(),
        lists: lists.iter().map(|l| l.to_string()).collect(),
        has_attachment: flags.0,
        has_patch: flags.1,
    }
}

const ALICE: (&str, Option<&str>) = ("Alice Archer", Some("alice@example.org"));
const BOB: (&str, Option<&str>) = ("Bob Baker", Some("Bob@Example.org"));
const CAROL: (&str, Option<&str>) = ("Carol Cook", Some("carol@example.net"));
const DAVE: (&str, Option<&str>) = ("Dave Dev", Some("dave@kernel.example"));
const EVE: (&str, Option<&str>) = ("Eve", None);

/// Number of identical "zebra" messages used to test tie-breaking and paging.
const TIES: usize = 25;

fn corpus() -> Vec<IndexDoc> {
    let mut docs = vec![
        doc(
            "m1",
            1,
            "2023-01-10 09:00:00",
            "[nova] Upgrade to Zed fails",
            "We are upgrading the compute nodes and the scheduler dies with a flux capacitor \
             overload.\n-- \nAlice, signature words quokka",
            ALICE,
            &["openstack-discuss"],
            (false, false),
        ),
        doc(
            "m2",
            1,
            "2023-01-11 10:00:00",
            "Re: [nova] Upgrade to Zed fails",
            "> We are upgrading the compute nodes\n> flux capacitor overload\nTry the checker \
             first.",
            BOB,
            &["openstack-discuss"],
            (false, false),
        ),
        doc(
            "m3",
            2,
            "2023-02-15 12:00:00",
            "[neutron][nova] cross-posted announcement",
            "Die Größe der Datenbank wächst schnell. 東京都のメーリングリストを検索する。",
            CAROL,
            &["openstack-discuss", "OpenStack-Dev"],
            (false, false),
        ),
        doc(
            "m4",
            3,
            "2023-05-20 08:00:00",
            "[PATCH v2 3/7] fix quota",
            "привет всем, this patch fixes quota handling",
            DAVE,
            &["kernel-dev"],
            (true, true),
        ),
        doc(
            "m5",
            1,
            "2023-03-01 18:30:00",
            "Re: [nova] Upgrade to Zed fails",
            "Still failing after the upgrade.",
            ALICE,
            &["openstack-discuss"],
            (false, false),
        ),
        doc(
            "m6",
            4,
            "2022-12-31 23:59:59",
            "year end",
            "<script>alert('x')</script> & the flux of things",
            EVE,
            &["misc"],
            (false, false),
        ),
    ];
    for i in 0..TIES {
        docs.push(doc(
            &format!("tie{i:02}"),
            100 + i as u64,
            "2021-06-01 00:00:00",
            "identical",
            "identical filler text zebra",
            ("Zed Zebra", Some("zed@zoo.example")),
            &["zoo"],
            (false, false),
        ));
    }
    docs
}

fn built(name: &str) -> (TempDir, Searcher) {
    let dir = TempDir::new(name);
    let n = rebuild(dir.path(), corpus(), 1).expect("test step");
    assert_eq!(n, (6 + TIES) as u64);
    let searcher = Searcher::open(dir.path()).expect("test step");
    (dir, searcher)
}

fn opts(limit: usize) -> SearchOptions {
    SearchOptions {
        limit,
        ..SearchOptions::default()
    }
}

fn ids(r: &SearchResults) -> Vec<&str> {
    r.hits
        .iter()
        .map(|h| h.message_id.trim_end_matches("@example.org"))
        .collect()
}

fn sorted_ids(r: &SearchResults) -> Vec<&str> {
    let mut v = ids(r);
    v.sort_unstable();
    v
}

#[test]
fn known_answers() {
    let (_dir, s) = built("known");
    // (query, expected ids in any order)
    let cases: &[(&str, &[&str])] = &[
        ("from:bob", &["m2"]),
        ("from:alice@example.org", &["m1", "m5"]),
        // A whole address is matched whole, in any case; a longer one is another address.
        ("from:BOB@example.ORG", &["m2"]),
        ("from:alice@example.org.au", &[]),
        ("from:example.org", &["m1", "m2", "m5"]),
        ("to:KERNEL-dev@lists.example.org", &["m4"]),
        ("from:\"Alice Archer\"", &["m1", "m5"]),
        ("from:example.net", &["m3"]),
        ("list:openstack-dev", &["m3"]),
        ("list:OpenStack-Discuss", &["m1", "m2", "m3", "m5"]),
        ("l:kernel-dev", &["m4"]),
        ("date:2023-01", &["m1", "m2"]),
        ("date:2023-01-01..2023-02-15", &["m1", "m2", "m3"]),
        ("date:2023-01-11", &["m2"]),
        ("after:2023-02-16", &["m4", "m5"]),
        ("before:2023-01-01 -list:zoo", &["m6"]),
        ("date:2022", &["m6"]),
        ("upgrading", &["m1", "m2", "m5"]),
        ("upgrade -from:bob", &["m1", "m5"]),
        ("Größe", &["m3"]),
        ("größe wächst", &["m3"]),
        ("привет", &["m4"]),
        // Japanese has no spaces: any word of two characters or more inside a run is found.
        ("東京", &["m3"]),
        ("京都", &["m3"]),
        ("メーリングリスト", &["m3"]),
        ("b:\"リストを検索\"", &["m3"]),
        ("東京 -datenbank", &[]),
        ("京", &[]),
        ("has:patch", &["m4"]),
        ("has:attachment", &["m4"]),
        ("tag:patch", &["m4"]),
        ("tag:nova", &["m1", "m2", "m3", "m5"]),
        ("tag:neutron", &["m3"]),
        ("msgid:<m3@example.org>", &["m3"]),
        ("msgid:m3@example.org", &["m3"]),
        ("thread:1", &["m1", "m2", "m5"]),
        ("thread:m2@example.org", &["m1", "m2", "m5"]),
        (
            "(THREAD:<m5@example.org> OR thread:m4@example.org) -b:checker",
            &["m1", "m4", "m5"],
        ),
        ("thread:nosuch@example.org", &[]),
        ("s:upgrade", &["m1", "m2", "m5"]),
        ("subject:(neutron OR quota)", &["m3", "m4"]),
        ("b:checker", &["m2"]),
        ("to:kernel-dev@lists.example.org", &["m4"]),
        ("flux OR quota -list:misc", &["m1", "m2", "m4"]),
        ("quokka", &[]),
        ("(nova OR neutron) AND date:2023-02", &["m3"]),
        ("nova date:2023-13-45", &["m1", "m2", "m3", "m5"]),
    ];
    for (q, want) in cases {
        let r = s.search(q, &opts(100)).expect("test step");
        assert_eq!(
            sorted_ids(&r),
            want.to_vec(),
            "query {q:?} notices {:?}",
            r.notices
        );
        assert_eq!(r.total, want.len() as u64, "total of {q:?}");
    }
}

#[test]
fn distinctive_phrase_ranks_its_message_first() {
    let (_dir, s) = built("phrase");
    let r = s
        .search("\"flux capacitor overload\"", &opts(10))
        .expect("test step");
    // m2 quotes the phrase; the author's own use must win.
    assert_eq!(ids(&r), ["m1", "m2"]);
    assert!(r.hits[0].score > r.hits[1].score);
    assert!(
        r.hits[0].snippet.contains("<b>flux</b> <b>capacitor</b>"),
        "{}",
        r.hits[0].snippet
    );
    // Subject matches outweigh body matches.
    let r = s
        .search("announcement OR schnell", &opts(10))
        .expect("test step");
    assert_eq!(ids(&r), ["m3"]);
}

#[test]
fn notices_and_malformed_queries() {
    let (_dir, s) = built("notices");
    let r = s
        .search("nova date:2023-13-45", &opts(10))
        .expect("test step");
    assert_eq!(r.total, 4);
    assert!(
        r.notices.iter().any(|n| n.contains("2023-13-45")),
        "{:?}",
        r.notices
    );

    let r = s.search("\"flux capacitor", &opts(10)).expect("test step");
    assert_eq!(sorted_ids(&r), ["m1", "m2"]);
    assert!(!r.notices.is_empty());

    let r = s.search("AND OR", &opts(5)).expect("test step");
    assert_eq!(r.total, (6 + TIES) as u64);
    assert!(!r.notices.is_empty());

    // A lone CJK character is indexed only where it stands alone: said, not silently empty.
    let r = s.search("京", &opts(5)).expect("test step");
    assert_eq!(r.total, 0);
    assert!(
        r.notices.iter().any(|n| n.contains("two or more")),
        "{:?}",
        r.notices
    );

    let deep = format!("{}quota{}", "(".repeat(10 * 1024), ")".repeat(10 * 1024));
    let r = s.search(&deep, &opts(5)).expect("test step");
    assert_eq!(ids(&r), ["m4"]);
    assert!(!r.notices.is_empty());

    let r = s
        .search(&"(".repeat(10 * 1024), &opts(5))
        .expect("test step");
    assert_eq!(r.total, (6 + TIES) as u64);

    let r = s.search("---", &opts(5)).expect("test step");
    assert_eq!(r.total, (6 + TIES) as u64);
    let r = s.search("@@@ ...", &opts(5)).expect("test step");
    assert!(
        r.notices.iter().any(|n| n.contains("no searchable words")),
        "{:?}",
        r.notices
    );
}

#[test]
fn empty_query_lists_everything_newest_first() {
    let (_dir, s) = built("empty");
    let r = s.search("", &opts(6)).expect("test step");
    assert_eq!(r.sort, Sort::Date);
    assert_eq!(r.total, (6 + TIES) as u64);
    assert_eq!(ids(&r), ["m4", "m5", "m3", "m2", "m1", "m6"]);
    assert!(r.notices.is_empty());
}

#[test]
fn sort_by_date() {
    let (_dir, s) = built("bydate");
    let o = SearchOptions {
        sort: Sort::Date,
        ..opts(10)
    };
    let r = s.search("nova", &o).expect("test step");
    assert_eq!(ids(&r), ["m5", "m3", "m2", "m1"]);
    assert!(r.hits.windows(2).all(|w| w[0].date >= w[1].date));
}

#[test]
fn cross_posted_message_counts_once_with_every_list() {
    let (_dir, s) = built("crosspost");
    let r = s.search("announcement", &opts(10)).expect("test step");
    assert_eq!(r.total, 1);
    let lists: Vec<(&str, u64)> = r
        .facets
        .lists
        .iter()
        .map(|f| (f.value.as_str(), f.count))
        .collect();
    assert_eq!(lists, [("openstack-dev", 1), ("openstack-discuss", 1)]);

    let r = s
        .search("list:openstack-discuss OR list:openstack-dev", &opts(10))
        .expect("test step");
    assert_eq!(r.total, 4);
}

#[test]
fn facets_cover_all_matches_not_just_the_page() {
    let (_dir, s) = built("facets");
    let r = s.search("-list:zoo", &opts(1)).expect("test step");
    assert_eq!(r.hits.len(), 1);
    assert_eq!(r.total, 6);
    let f = &r.facets;
    let pairs = |v: &[FacetCount]| -> Vec<(String, u64)> {
        v.iter().map(|f| (f.value.clone(), f.count)).collect()
    };
    assert_eq!(
        pairs(&f.lists),
        [
            ("openstack-discuss".to_string(), 4),
            ("kernel-dev".to_string(), 1),
            ("misc".to_string(), 1),
            ("openstack-dev".to_string(), 1),
        ]
    );
    assert_eq!(
        pairs(&f.years),
        [("2023".to_string(), 5), ("2022".to_string(), 1)]
    );
    assert_eq!(
        f.tags[0],
        FacetCount {
            value: "nova".to_string(),
            count: 4
        }
    );
    assert!(f.tags.contains(&FacetCount {
        value: "patch".to_string(),
        count: 1
    }));
    assert_eq!(
        f.senders[0],
        FacetCount {
            value: "alice@example.org".to_string(),
            count: 2
        }
    );
    assert!(f.senders.contains(&FacetCount {
        value: "bob@example.org".to_string(),
        count: 1
    }));
    assert!(f.senders.contains(&FacetCount {
        value: "Eve".to_string(),
        count: 1
    }));

    let r = s.search("zebra", &opts(0)).expect("test step");
    assert!(r.hits.is_empty());
    assert_eq!(r.total, TIES as u64);
    assert_eq!(r.facets.senders.len(), 1);
    assert_eq!(r.facets.senders[0].count, TIES as u64);
}

#[test]
fn collapse_threads() {
    let (_dir, s) = built("collapse");
    let o = SearchOptions {
        collapse_threads: true,
        ..opts(10)
    };
    let r = s.search("upgrade OR announcement", &o).expect("test step");
    assert_eq!(r.total, 2);
    let thread1 = r.hits.iter().find(|h| h.thread == 1).expect("test step");
    assert_eq!(thread1.thread_hits, 3);
    let thread2 = r.hits.iter().find(|h| h.thread == 2).expect("test step");
    assert_eq!(thread2.thread_hits, 1);
    // Facets still count messages.
    assert_eq!(
        r.facets.lists[0],
        FacetCount {
            value: "openstack-discuss".into(),
            count: 4
        }
    );

    let o = SearchOptions {
        collapse_threads: true,
        sort: Sort::Date,
        ..opts(10)
    };
    let r = s.search("thread:1", &o).expect("test step");
    assert_eq!(ids(&r), ["m5"]);
    assert_eq!(r.hits[0].thread_hits, 3);
}

#[test]
fn pagination_is_stable_and_ties_break_by_message_id() {
    let (_dir, s) = built("paging");
    let all: Vec<String> = (0..TIES).map(|i| format!("tie{i:02}")).collect();
    for sort in [Sort::Relevance, Sort::Date] {
        for collapse_threads in [false, true] {
            let mut seen = Vec::new();
            for page in 0..4 {
                let o = SearchOptions {
                    limit: 7,
                    offset: page * 7,
                    sort,
                    collapse_threads,
                };
                let r = s.search("zebra", &o).expect("test step");
                assert_eq!(r.total, TIES as u64);
                seen.extend(ids(&r).into_iter().map(str::to_string));
            }
            assert_eq!(seen, all, "sort {sort:?} collapse {collapse_threads}");
        }
    }
    let r = s
        .search(
            "zebra",
            &SearchOptions {
                offset: 100,
                ..opts(10)
            },
        )
        .expect("test step");
    assert!(r.hits.is_empty());
    assert_eq!(r.total, TIES as u64);
}

#[test]
fn snippets_are_escaped_html() {
    let (_dir, s) = built("snippets");
    let r = s.search("flux list:misc", &opts(5)).expect("test step");
    assert_eq!(ids(&r), ["m6"]);
    let snip = &r.hits[0].snippet;
    assert!(snip.contains("&lt;script&gt;"), "{snip}");
    assert!(snip.contains("<b>flux</b>"), "{snip}");
    assert!(!snip.contains("<script>"), "{snip}");

    // A subject-only match still gets the start of the text, escaped.
    let r = s.search("s:\"year end\"", &opts(5)).expect("test step");
    assert!(
        r.hits[0].snippet.starts_with("&lt;script&gt;"),
        "{}",
        r.hits[0].snippet
    );

    // Negated words are not highlighted; the signature is not indexed or shown.
    let r = s
        .search("upgrading -quokka from:alice", &opts(5))
        .expect("test step");
    assert!(r.hits.iter().all(|h| !h.snippet.contains("quokka")));
    let r = s.search("upgrading", &opts(5)).expect("test step");
    assert!(r
        .hits
        .iter()
        .any(|h| h.snippet.contains("<b>upgrading</b>")));
}

#[test]
fn writer_upserts_commits_and_records_the_watermark() {
    let dir = TempDir::new("writer");
    assert_eq!(IndexWriter::watermark(dir.path()).expect("test step"), None);
    let s = Searcher::open(dir.path()).expect("test step");
    assert_eq!(s.search("", &opts(5)).expect("test step").total, 0);

    let mut w = IndexWriter::open(dir.path()).expect("test step");
    // One writer at a time, and no rebuild under an open writer.
    assert!(IndexWriter::open(dir.path()).is_err());
    assert!(rebuild(dir.path(), Vec::new(), 0).is_err());

    let docs = corpus();
    w.upsert(&docs[..3]).expect("test step");
    w.commit(3).expect("test step");
    assert_eq!(
        IndexWriter::watermark(dir.path()).expect("test step"),
        Some(3)
    );
    s.refresh().expect("test step");
    assert_eq!(s.search("", &opts(5)).expect("test step").total, 3);

    // Replacing a message by id: the old words go away, the count stays.
    let mut changed = docs[0].clone();
    changed.body = "rewritten body about kangaroos".to_string();
    w.upsert(&[changed, docs[3].clone()]).expect("test step");
    w.delete(&["<m2@example.org>"]).expect("test step");
    w.commit(u64::MAX).expect("test step");
    assert_eq!(
        IndexWriter::watermark(dir.path()).expect("test step"),
        Some(u64::MAX)
    );
    s.refresh().expect("test step");
    assert_eq!(s.search("", &opts(5)).expect("test step").total, 3);
    assert_eq!(
        ids(&s.search("kangaroos", &opts(5)).expect("test step")),
        ["m1"]
    );
    assert_eq!(s.search("capacitor", &opts(5)).expect("test step").total, 0);

    // Uncommitted work is not visible and can be dropped.
    w.upsert(&docs[4..5]).expect("test step");
    w.rollback().expect("test step");
    drop(w);
    assert_eq!(
        IndexWriter::watermark(dir.path()).expect("test step"),
        Some(u64::MAX)
    );

    // After the writer is gone a rebuild may run, and it sets its own watermark.
    assert_eq!(
        rebuild(dir.path(), corpus(), 7).expect("test step"),
        (6 + TIES) as u64
    );
    assert_eq!(
        IndexWriter::watermark(dir.path()).expect("test step"),
        Some(7)
    );
    let mut w = IndexWriter::open(dir.path()).expect("test step");
    w.commit(8).expect("test step");
    assert_eq!(
        IndexWriter::watermark(dir.path()).expect("test step"),
        Some(8)
    );
    assert_eq!(
        s.search("", &opts(5)).expect("test step").total,
        (6 + TIES) as u64
    );
}

#[test]
fn rebuild_while_searching_keeps_answering() {
    let (dir, s) = built("rebuild");
    let s = Arc::new(s);
    assert_eq!(s.search("quota", &opts(5)).expect("test step").total, 1);

    let stop = Arc::new(AtomicBool::new(false));
    let searches = {
        let (s, stop) = (Arc::clone(&s), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) || n == 0 {
                let r = s.search("quota OR wombat", &opts(5)).expect("test step");
                assert_eq!(r.total, 1, "{:?}", r.notices);
                n += 1;
            }
            n
        })
    };
    for round in 0..3 {
        let mut docs = corpus();
        // The new generation: "quota" gone from m4, "wombat" added elsewhere.
        docs[3].body = "no q-word here".to_string();
        docs[3].subject = "fix".to_string();
        docs[0].body = format!("wombat {round}");
        rebuild(dir.path(), docs, 10 + round).expect("test step");
    }
    stop.store(true, Ordering::Relaxed);
    assert!(searches.join().expect("test step") > 0);

    let r = s.search("wombat", &opts(5)).expect("test step");
    assert_eq!(ids(&r), ["m1"]);
    assert_eq!(s.search("quota", &opts(5)).expect("test step").total, 0);
    assert_eq!(
        IndexWriter::watermark(dir.path()).expect("test step"),
        Some(12)
    );
    // Only the live generation and the one before it are kept.
    let gens = std::fs::read_dir(dir.path().join(SCHEMA_DIR))
        .expect("test step")
        .filter(|e| {
            e.as_ref()
                .expect("test step")
                .file_name()
                .to_string_lossy()
                .starts_with('g')
        })
        .count();
    assert_eq!(gens, 2);
}

#[test]
fn a_second_searcher_sees_new_generations() {
    let dir = TempDir::new("second");
    let a = Searcher::open(dir.path()).expect("test step");
    rebuild(dir.path(), corpus(), 1).expect("test step");
    let b = Searcher::open(dir.path()).expect("test step");
    assert_eq!(a.search("quota", &opts(5)).expect("test step").total, 1);
    assert_eq!(b.search("quota", &opts(5)).expect("test step").total, 1);
}

#[test]
fn long_messages_snippets_and_odd_values() {
    let dir = TempDir::new("long");
    let filler = "lorem ipsum dolor sit amet ".repeat(800); // about 21 KB
    let mut deep = corpus()[0].clone();
    deep.message_id = "<deep@example.org>".to_string();
    deep.thread = 50;
    deep.body = format!("{filler}\nthe hippopotamus escaped\n{filler}");
    let mut past_cap = deep.clone();
    past_cap.message_id = "<pastcap@example.org>".to_string();
    past_cap.thread = 51;
    past_cap.body = format!("{filler}{filler}\nthe rhinoceros escaped");
    let mut odd = corpus()[1].clone();
    odd.message_id = "<odd@example.org>".to_string();
    odd.thread = 52;
    odd.lists = vec![" Weird\u{1f}List ".to_string(), "weirdlist".to_string()];
    odd.from_name = None;
    odd.from_addr = None;
    rebuild(dir.path(), vec![deep, past_cap, odd], 1).expect("rebuild");
    let s = Searcher::open(dir.path()).expect("open");

    let r = s.search("hippopotamus", &opts(5)).expect("search");
    assert_eq!(ids(&r), ["deep"]);
    assert!(
        r.hits[0].snippet.contains("<b>hippopotamus</b>"),
        "{}",
        r.hits[0].snippet
    );
    // Indexed in full, stored only in part: found, with the start of the text as snippet.
    let r = s.search("rhinoceros", &opts(5)).expect("search");
    assert_eq!(ids(&r), ["pastcap"]);
    assert!(r.hits[0].snippet.starts_with("lorem ipsum"));

    // Control characters are dropped from list names, and duplicates merge.
    let r = s.search("list:weirdlist", &opts(5)).expect("search");
    assert_eq!(ids(&r), ["odd"]);
    assert_eq!(
        r.facets.lists,
        [FacetCount {
            value: "weirdlist".to_string(),
            count: 1
        }]
    );
    // No sender: no sender facet entry.
    assert!(r.facets.senders.is_empty());
}

/// A copy of the corpus's "flux" message under another id and thread.
fn flux(id: &str, thread: u64) -> IndexDoc {
    let mut d = corpus()[5].clone();
    d.message_id = format!("<{id}@example.org>");
    d.thread = thread;
    d
}

#[test]
fn collapsed_thread_picks_its_best_message_by_id_on_ties() {
    let dir = TempDir::new("threadties");
    let mut docs = Vec::new();
    for id in ["c", "a", "b"] {
        docs.push(flux(id, 9));
    }
    rebuild(dir.path(), docs, 1).expect("rebuild");
    let s = Searcher::open(dir.path()).expect("open");
    for sort in [Sort::Relevance, Sort::Date] {
        let o = SearchOptions {
            collapse_threads: true,
            sort,
            ..opts(5)
        };
        let r = s.search("flux", &o).expect("search");
        assert_eq!(ids(&r), ["a"]);
        assert_eq!(r.hits[0].thread_hits, 3);
    }
}

/// An undated message has no date value: no date query, year facet or date sort takes it
/// for 1970-01-01, and words still find it.
#[test]
fn an_undated_message_is_found_by_words_and_by_no_date() {
    let dir = TempDir::new("undated");
    let mut undated = flux("undated", 9);
    undated.date = None;
    let dated = Some(ts("1970-01-01 00:00:00"));
    let mut epoch = flux("epoch", 10);
    epoch.date = dated;
    rebuild(dir.path(), vec![undated, epoch], 1).expect("rebuild");
    let s = Searcher::open(dir.path()).expect("open");
    let r = s.search("flux", &opts(5)).expect("search");
    assert_eq!(r.total, 2);
    let years: Vec<(String, u64)> = r
        .facets
        .years
        .iter()
        .map(|f| (f.value.clone(), f.count))
        .collect();
    assert_eq!(years, [("1970".to_string(), 1)]);
    for query in [
        "flux date:1970",
        "flux date:1970-01-01",
        "flux before:1971-01-01",
    ] {
        let r = s.search(query, &opts(5)).expect("search");
        assert_eq!(ids(&r), ["epoch"], "{query}");
    }
    let o = SearchOptions {
        sort: Sort::Date,
        ..opts(5)
    };
    let r = s.search("flux", &o).expect("search");
    assert_eq!(ids(&r), ["epoch", "undated"]);
}

#[test]
fn commits_become_visible_without_refresh() {
    let dir = TempDir::new("autoreload");
    let s = Searcher::open(dir.path()).expect("open");
    assert_eq!(s.search("quota", &opts(5)).expect("search").total, 0);
    let mut w = IndexWriter::open(dir.path()).expect("writer");
    w.upsert(&corpus()[3..4]).expect("upsert");
    w.commit(1).expect("commit");
    // The reader reloads on its own shortly after a commit.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if s.search("quota", &opts(5)).expect("search").total == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "commit never became visible"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn an_index_with_an_older_schema_is_started_over_by_the_writer() {
    let dir = TempDir::new("stale");
    // An index as an earlier draft left it: another schema, a watermark.
    let v1 = dir.path().join(SCHEMA_DIR);
    let stale = v1.join("g00000001");
    std::fs::create_dir_all(&stale).expect("mkdir");
    let mut b = tantivy::schema::Schema::builder();
    let title = b.add_text_field("title", tantivy::schema::TEXT);
    let index = tantivy::Index::create_in_dir(&stale, b.build()).expect("create");
    let mut w: tantivy::IndexWriter = index.writer(15_000_000).expect("writer");
    w.add_document(tantivy::doc!(title => "old")).expect("add");
    let mut prepared = w.prepare_commit().expect("prepare");
    prepared.set_payload("{\"watermark\":99}");
    prepared.commit().expect("commit");
    drop(w);
    std::fs::write(v1.join("CURRENT"), "g00000001\n").expect("pointer");

    let err = Searcher::open(dir.path())
        .err()
        .expect("a stale index is reported");
    assert!(format!("{err:#}").contains("older schema"), "{err:#}");

    let mut w = IndexWriter::open(dir.path()).expect("writer starts over");
    assert_eq!(IndexWriter::watermark(dir.path()).expect("watermark"), None);
    assert!(!stale.exists());
    w.upsert(&corpus()[..2]).expect("upsert");
    w.commit(2).expect("commit");
    let s = Searcher::open(dir.path()).expect("open");
    assert_eq!(s.search("", &opts(5)).expect("search").total, 2);
}

#[test]
fn threads_spanning_segments_fold_into_one_hit() {
    // One commit per message: each lands in its own segment, so collapsing must merge each
    // segment's fold of the thread, and date ranges must be answered in every segment.
    let dir = TempDir::new("segments");
    let mut w = IndexWriter::open(dir.path()).expect("open writer");
    let dates = [
        "2023-05-03 10:00:00",
        "2023-05-01 10:00:00",
        "2023-05-02 10:00:00",
        "2022-01-01 10:00:00",
    ];
    for (i, (id, date)) in ["c", "a", "b", "old"].iter().zip(dates).enumerate() {
        let mut d = flux(id, if *id == "old" { 10 } else { 9 });
        d.date = Some(ts(date));
        w.upsert(&[d]).expect("upsert");
        w.commit(i as u64 + 1).expect("commit");
    }
    drop(w);
    let s = Searcher::open(dir.path()).expect("open");
    for sort in [Sort::Relevance, Sort::Date] {
        let o = SearchOptions {
            collapse_threads: true,
            sort,
            ..opts(5)
        };
        let r = s.search("flux", &o).expect("search");
        assert_eq!(r.total, 2, "{sort:?}");
        let t9 = r.hits.iter().find(|h| h.thread == 9).expect("thread 9");
        assert_eq!(t9.thread_hits, 3, "{sort:?}");
        // Same text: the newest wins on relevance (recency) and on date.
        assert_eq!(t9.message_id, "c@example.org", "{sort:?}");

        let r = s
            .search("flux date:2023-05-01..2023-05-02", &o)
            .expect("search");
        assert_eq!(ids(&r), ["b"], "{sort:?}");
        assert_eq!(r.hits[0].thread_hits, 2, "{sort:?}");
        assert_eq!(r.facets.years.len(), 1);
        assert_eq!(r.facets.years[0].count, 2);
    }
    let r = s.search("before:2023-01-01", &opts(5)).expect("search");
    assert_eq!(ids(&r), ["old"]);
    let r = s.search("-date:2023", &opts(5)).expect("search");
    assert_eq!(ids(&r), ["old"]);
}

#[test]
fn phrases_through_word_pairs_match_exactly_what_positions_match() {
    let dir = TempDir::new("pairs");
    let long = "x".repeat(analysis::MAX_WORD_BYTES + 1);
    let body_docs: &[(&str, &str, &str)] = &[
        ("p1", "Ready", "the allocation candidates are ready"),
        ("p2", "Ready", "allocation of candidates"),
        (
            "p3",
            "Ready",
            "> allocation candidates in a quote\nI agree.\n",
        ),
        ("p4", "Allocation candidates", "unrelated words"),
        ("p5", "Ready", "candidates allocation"),
        ("p6", "Ready", &format!("allocation {long} candidates")),
        ("p7", "Ready", "a big allocation candidates list"),
        ("p8", "Ready", "Allocation. Candidates!"),
    ];
    let docs = body_docs
        .iter()
        .enumerate()
        .map(|(i, (id, subject, body))| {
            doc(
                id,
                100 + i as u64,
                "2023-03-01 10:00:00",
                subject,
                body,
                ALICE,
                &["dev"],
                (false, false),
            )
        })
        .collect::<Vec<_>>();
    rebuild(dir.path(), docs, 1).expect("test step");
    let s = Searcher::open(dir.path()).expect("test step");
    let gap = format!("\"allocation {long} candidates\"");
    // (query, expected ids): what a phrase over word positions matches.
    let cases: &[(&str, &[&str])] = &[
        ("\"allocation candidates\"", &["p1", "p3", "p4", "p7", "p8"]),
        ("b:\"allocation candidates\"", &["p1", "p3", "p7", "p8"]),
        ("s:\"allocation candidates\"", &["p4"]),
        ("\"allocation candidates list\"", &["p7"]),
        ("\"big allocation candidates list\"", &["p7"]),
        ("\"candidates allocation\"", &["p5"]),
        ("\"allocation of candidates\"", &["p2"]),
        // The over-long word is dropped on both sides, leaving a one-word gap any word fills.
        (&gap, &["p2", "p6"]),
        ("\"allocating candidate\"", &["p1", "p3", "p4", "p7", "p8"]),
        (
            "allocation candidates",
            &["p1", "p2", "p3", "p4", "p5", "p6", "p7", "p8"],
        ),
        (
            "\"allocation candidates\" -s:allocation",
            &["p1", "p3", "p7", "p8"],
        ),
    ];
    for (q, want) in cases {
        for sort in [Sort::Relevance, Sort::Date] {
            let r = s
                .search(
                    q,
                    &SearchOptions {
                        limit: 100,
                        sort,
                        ..SearchOptions::default()
                    },
                )
                .expect("test step");
            assert_eq!(sorted_ids(&r), want.to_vec(), "query {q:?} ({sort:?})");
            assert_eq!(r.total, want.len() as u64, "total of {q:?}");
        }
    }
    // The author's own phrase outranks the same phrase quoted.
    let r = s
        .search("\"allocation candidates\"", &opts(10))
        .expect("test step");
    let rank = |id: &str| ids(&r).iter().position(|h| *h == id);
    assert!(rank("p1") < rank("p3"), "{:?}", ids(&r));
}

#[test]
fn filters_alone_rank_by_date_with_zero_scores() {
    let (_dir, s) = built("filters");
    for q in [
        "tag:nova",
        "list:openstack-discuss",
        "date:2023",
        "-list:zoo",
        "from:alice@example.org",
        "tag:nova OR has:patch",
        "list:zoo",
    ] {
        let page = |sort, collapse_threads| {
            s.search(
                q,
                &SearchOptions {
                    limit: 100,
                    sort,
                    collapse_threads,
                    ..SearchOptions::default()
                },
            )
            .expect("test step")
        };
        for collapse in [false, true] {
            let relevance = page(Sort::Relevance, collapse);
            let date = page(Sort::Date, collapse);
            assert!(relevance.total > 0, "{q}");
            assert_eq!(ids(&relevance), ids(&date), "{q} (collapse {collapse})");
            assert!(relevance.hits.iter().all(|h| h.score == 0.0), "{q}");
            assert_eq!(relevance.sort, Sort::Relevance, "{q}");
        }
    }
    // A word scores: relevance is not the date order there.
    let r = s.search("upgrade", &opts(10)).expect("test step");
    assert!(r.hits.iter().all(|h| h.score > 0.0));
}

/// `list:`/`tag:` filters beside other clauses are checked from the facet ordinal instead of
/// posting lists (`Compiled::lifted`). Each query is compared with one whose filter is
/// wrapped in an `OR` with a value no message has, which means the same but is not lifted:
/// same hits in the same order with the same scores, same total and facets.
#[test]
fn lifted_facet_filters_match_what_posting_lists_match() {
    let (_dir, s) = built("lifted");
    let cases: &[(&str, &str)] = &[
        ("zebra list:zoo", "zebra (list:zoo OR list:nowhere)"),
        ("upgrade tag:nova", "upgrade (tag:nova OR tag:nowhere)"),
        ("flux -list:misc", "flux -(list:misc OR list:nowhere)"),
        (
            "upgrade list:openstack-discuss -tag:neutron",
            "upgrade (list:openstack-discuss OR list:nowhere) -(tag:neutron OR tag:nowhere)",
        ),
        (
            "nova list:OpenStack-Dev",
            "nova (list:openstack-dev OR list:nowhere)",
        ),
        ("flux list:nowhere", "flux (list:nowhere OR list:elsewhere)"),
        (
            "flux -list:nowhere",
            "flux -(list:nowhere OR list:elsewhere)",
        ),
        (
            "identical list:zoo tag:nova",
            "identical (list:zoo OR list:x) (tag:nova OR tag:x)",
        ),
        (
            "date:2023 list:openstack-discuss",
            "date:2023 (list:openstack-discuss OR list:x)",
        ),
    ];
    let variants = [
        opts(100),
        SearchOptions {
            sort: Sort::Date,
            ..opts(100)
        },
        SearchOptions {
            collapse_threads: true,
            ..opts(100)
        },
        SearchOptions {
            offset: 1,
            ..opts(2)
        },
    ];
    for (lifted, plain) in cases {
        for o in &variants {
            let a = s.search(lifted, o).expect("test step");
            let b = s.search(plain, o).expect("test step");
            let hits = |r: &SearchResults| -> Vec<(String, u32, u32)> {
                r.hits
                    .iter()
                    .map(|h| (h.message_id.clone(), h.score.to_bits(), h.thread_hits))
                    .collect()
            };
            assert_eq!(hits(&a), hits(&b), "{lifted:?} vs {plain:?} {o:?}");
            assert_eq!(a.total, b.total, "{lifted:?} {o:?}");
            assert_eq!(a.facets, b.facets, "{lifted:?} {o:?}");
        }
    }
    // And the filters do filter.
    let r = s
        .search("upgrade tag:nova -list:misc", &opts(100))
        .expect("test step");
    assert_eq!(sorted_ids(&r), vec!["m1", "m2", "m5"]);
    let r = s.search("flux -list:misc", &opts(100)).expect("test step");
    assert_eq!(sorted_ids(&r), vec!["m1", "m2"]);
}

/// The number of segments of the live index generation under `base`.
fn live_segments(base: &Path) -> usize {
    let generation = layout::read_current(base)
        .expect("test step")
        .expect("a live generation");
    let (index, _) = layout::open_index(base, &generation).expect("test step");
    index.searchable_segment_ids().expect("test step").len()
}

#[test]
fn rebuild_leaves_one_segment_and_its_watermark() {
    // Two indexing threads with the smallest budget each file their own segments; the rebuild
    // merges them before it goes live.
    let dir = TempDir::new("one-segment");
    let docs: Vec<IndexDoc> = (0..400).map(|i| flux(&format!("f{i}"), i)).collect();
    let config = WriterConfig {
        threads: 2,
        memory_budget_bytes: 30_000_000,
    };
    assert_eq!(
        rebuild_with(dir.path(), docs, 42, &config).expect("test step"),
        400
    );
    assert_eq!(live_segments(dir.path()), 1);
    assert_eq!(
        IndexWriter::watermark(dir.path()).expect("test step"),
        Some(42)
    );
    let s = Searcher::open(dir.path()).expect("test step");
    assert_eq!(s.search("flux", &opts(5)).expect("test step").total, 400);

    // Incremental commits add segments again; only a rebuild merges them all.
    let mut w = IndexWriter::open(dir.path()).expect("test step");
    w.add(&[flux("late", 1000)]).expect("test step");
    w.commit(43).expect("test step");
    drop(w);
    assert_eq!(live_segments(dir.path()), 2);
}

#[test]
fn commit_ids_are_words() {
    // A full git commit id is 40 characters: tantivy's own analyzers drop words that long.
    let sha1 = "7358f12d852964d9209492e337d33b8880234b74";
    let sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    let too_long = "z".repeat(analysis::MAX_WORD_BYTES + 1);
    let dir = TempDir::new("commit-ids");
    let mut docs = corpus();
    docs.push(doc(
        "fixes",
        40,
        "2023-06-01 09:00:00",
        "[PATCH] selinux: fix the leak",
        &format!(
            "Fixes: {} (\"lsm: add hook\")\nSigned-off-by: {too_long}\n",
            &sha1[..12]
        ),
        DAVE,
        &["lsm"],
        (false, true),
    ));
    docs.push(doc(
        "revert",
        41,
        "2023-06-02 09:00:00",
        &format!("Revert commit {sha1}"),
        &format!("This reverts commit {sha1}.\nThe image digest was {sha256}.\n"),
        DAVE,
        &["lsm"],
        (false, false),
    ));
    rebuild(dir.path(), docs, 1).expect("test step");
    let s = Searcher::open(dir.path()).expect("test step");
    for q in [
        sha1.to_string(),
        format!("b:{sha1}"),
        format!("s:{sha1}"),
        format!("\"{sha1}\""),
        format!("\"commit {sha1}\""),
        sha256.to_string(),
    ] {
        let r = s.search(&q, &opts(5)).expect("test step");
        assert_eq!(ids(&r), ["revert"], "{q}");
        assert!(r.notices.is_empty(), "{q}: {:?}", r.notices);
    }
    // The abbreviated id is its own word.
    let r = s.search(&sha1[..12], &opts(5)).expect("test step");
    assert_eq!(ids(&r), ["fixes"]);
    // Longer than any indexed word: a notice, and the rest of the query still counts.
    let r = s
        .search(&format!("{too_long} selinux"), &opts(5))
        .expect("test step");
    assert_eq!(ids(&r), ["fixes"]);
    assert_eq!(r.notices.len(), 1, "{:?}", r.notices);
}

#[test]
fn sender_filter_finds_what_the_sender_facet_counted() {
    // A Pipermail archive knows some senders by name only; `from:` finds that name beside
    // addresses too, `sender:` only the messages the facet counted under it.
    let dir = TempDir::new("sender");
    let docs = vec![
        doc(
            "e1",
            1,
            "2023-01-01 10:00:00",
            "kiwi one",
            "kiwi",
            ("Eve", None),
            &["dev"],
            (false, false),
        ),
        doc(
            "e2",
            2,
            "2023-01-02 10:00:00",
            "kiwi two",
            "kiwi",
            ("Eve", None),
            &["dev"],
            (false, false),
        ),
        doc(
            "e3",
            3,
            "2023-01-03 10:00:00",
            "kiwi three",
            "kiwi",
            ("Eve Adams", Some("Eve@Example.com")),
            &["dev"],
            (false, false),
        ),
        // The same name-only sender written in another case: one facet entry with `Eve`.
        doc(
            "e4",
            4,
            "2023-01-04 10:00:00",
            "kiwi four",
            "kiwi",
            ("eve", None),
            &["dev"],
            (false, false),
        ),
    ];
    rebuild(dir.path(), docs, 1).expect("test step");
    let s = Searcher::open(dir.path()).expect("test step");
    assert_eq!(
        s.search("kiwi from:eve", &opts(5))
            .expect("test step")
            .total,
        4
    );
    let r = s.search("kiwi", &opts(5)).expect("test step");
    let senders: Vec<(&str, u64)> = r
        .facets
        .senders
        .iter()
        .map(|f| (f.value.as_str(), f.count))
        .collect();
    assert_eq!(senders, [("Eve", 3), ("eve@example.com", 1)]);
    // Each value's link (the query as understood, narrowed by it) finds what it counted,
    // whatever the query's text ends with.
    for query in ["kiwi", "kiwi NOT", "kiwi OR", "\"kiwi"] {
        for f in &r.facets.senders {
            let q = super::narrow_query(query, "sender", &f.value);
            let hits = s.search(&q, &opts(5)).expect("test step");
            assert_eq!(hits.total, f.count, "{q}");
            assert!(hits.notices.is_empty(), "{q}: {:?}", hits.notices);
        }
    }
    let total = |q: &str| s.search(q, &opts(5)).expect("test step").total;
    assert_eq!(total("sender:Eve"), 3);
    assert_eq!(total("sender:eve"), 3);
    assert_eq!(total("sender:EVE@example.COM"), 1);
    assert_eq!(total("sender:\"Eve Adams\""), 0);
    assert_eq!(total("kiwi -sender:eve"), 1);
}

#[test]
fn a_snippet_finds_its_match_past_a_look_alike_early_in_the_text() {
    // `tesla` starts like `test` (the stem's prefix places the window) but does not match;
    // the real match is further on than one window.
    let dir = TempDir::new("lookalike");
    let body = format!(
        "tesla coils first.\n\n{}\n\nThe test fails on arm64.\n",
        "Filler words here. ".repeat(200)
    );
    let docs = vec![doc(
        "l1",
        1,
        "2023-01-01 10:00:00",
        "a report",
        &body,
        ("Ann", Some("ann@example.org")),
        &["dev"],
        (false, false),
    )];
    rebuild(dir.path(), docs, 1).expect("test step");
    let s = Searcher::open(dir.path()).expect("test step");
    let r = s.search("test", &opts(5)).expect("test step");
    assert_eq!(ids(&r), ["l1"]);
    assert!(
        r.hits[0].snippet.contains("<b>test</b>"),
        "{}",
        r.hits[0].snippet
    );
}
