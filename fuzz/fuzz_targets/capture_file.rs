//! cargo-fuzz target `capture_file`: see `harness::capture_file` (../harness.rs), which the stable mutation
//! runs of tests/fuzz_smoke.rs share.
#![no_main]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::capture_file(data));
