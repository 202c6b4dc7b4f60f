//! In-process search latency over a query mix: word, phrase, field, date range, faceted and
//! collapsed queries, run against an existing archive. Not a test: a measurement.
//!
//!     cargo bench --bench search_latency -- DATA_DIR [ROUNDS]
//!
//! Prints p50/p90/p99/max per query kind and overall, in milliseconds; with
//! `ARCHIVIST_BENCH_BY_QUERY=1` also per query and variant. `ARCHIVIST_BENCH_QUERIES=FILE`
//! replaces the mix with the file's lines, each `KIND<TAB>QUERY`.

use std::path::PathBuf;
use std::time::Instant;

use archivist::index::{SearchOptions, Searcher, Sort};

/// The allocator of the `archivist` binary (src/main.rs), so figures match what it runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const QUERIES: &[(&str, &str)] = &[
    ("word", "placement"),
    ("word", "scheduler"),
    ("word", "upgrade"),
    ("two words", "live migration"),
    ("two words", "ovn neutron"),
    ("phrase", "\"allocation candidates\""),
    ("phrase", "\"release notes\""),
    ("field", "from:ingrid@example.com"),
    ("field", "s:placement"),
    ("field", "list:operators kolla"),
    ("field", "tag:nova"),
    ("date range", "date:2023-06-01..2023-08-31"),
    ("date range", "upgrade date:2024"),
    ("boolean", "nova OR neutron -kolla"),
    ("has", "has:patch placement"),
];

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let Some(data_dir) = args.get(1).map(PathBuf::from) else {
        eprintln!("usage: cargo bench --bench search_latency -- DATA_DIR [ROUNDS]");
        return Ok(());
    };
    let rounds: usize = args.get(2).and_then(|r| r.parse().ok()).unwrap_or(50);
    let searcher = Searcher::open(&data_dir.join("index"))?;
    let own: Vec<(String, String)> = match std::env::var_os("ARCHIVIST_BENCH_QUERIES") {
        Some(file) => std::fs::read_to_string(file)?
            .lines()
            .filter_map(|l| l.split_once('\t'))
            .map(|(k, q)| (k.to_string(), q.to_string()))
            .collect(),
        None => QUERIES
            .iter()
            .map(|(k, q)| (k.to_string(), q.to_string()))
            .collect(),
    };
    let mut by_kind: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    let mut all = Vec::new();
    let mut by_query: std::collections::BTreeMap<String, Vec<f64>> = Default::default();
    // Warm up: first touches page the index in.
    for (_, q) in &own {
        searcher.search(q, &SearchOptions::default())?;
    }
    for round in 0..rounds {
        for (kind, q) in &own {
            let variants = [
                (kind.to_string(), SearchOptions::default()),
                (
                    format!("{kind} +date sort"),
                    SearchOptions {
                        sort: Sort::Date,
                        ..SearchOptions::default()
                    },
                ),
                (
                    format!("{kind} +collapse"),
                    SearchOptions {
                        collapse_threads: true,
                        ..SearchOptions::default()
                    },
                ),
            ];
            let (label, options) = &variants[round % 3];
            let started = Instant::now();
            let results = searcher.search(q, options)?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            std::hint::black_box(results.total);
            by_kind.entry(label.clone()).or_default().push(ms);
            let variant = label.strip_prefix(kind).unwrap_or("");
            by_query
                .entry(format!("{q}{variant}"))
                .or_default()
                .push(ms);
            all.push(ms);
        }
    }
    let report = |name: &str, v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{name:<40} n={:<5} p50={:>7.3} p90={:>7.3} p99={:>7.3} max={:>7.3} ms",
            v.len(),
            p(0.5),
            p(0.9),
            p(0.99),
            v[v.len() - 1]
        );
    };
    if std::env::var_os("ARCHIVIST_BENCH_BY_QUERY").is_some() {
        for (query, v) in by_query.iter_mut() {
            report(query, v);
        }
    }
    for (kind, v) in by_kind.iter_mut() {
        report(kind, v);
    }
    report("ALL", &mut all);
    Ok(())
}
