//! cargo-fuzz target `pcapng_roundtrip`: see `harness::pcapng_roundtrip` (../harness.rs), which the stable mutation
//! runs of tests/fuzz_smoke.rs share.
#![no_main]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::pcapng_roundtrip(data));
