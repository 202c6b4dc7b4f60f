//! Fuzzes the parser wrapper: any bytes parse to a value or a clear error, never a panic.
#![no_main]

use archivist::ingest::parse;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse::parse(data, None, true);
    let _ = parse::parse(data, None, false);
});
