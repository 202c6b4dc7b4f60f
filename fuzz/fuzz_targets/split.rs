//! Fuzzes the mbox splitter: any bytes, no panic, and every byte accounted for.
#![no_main]

use archivist::ingest::mbox::{Item, Splitter};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut splitter = Splitter::new(data, 1 << 16);
    let mut covered = 0u64;
    for item in splitter.by_ref() {
        covered += match item {
            Item::Message(m) => m.len,
            Item::Problem(p) => p.len,
        };
    }
    assert_eq!(covered + splitter.stats().framing_bytes, data.len() as u64);
});
