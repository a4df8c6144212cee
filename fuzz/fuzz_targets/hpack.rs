//! cargo-fuzz target `hpack`: see `harness::hpack` (../harness.rs), which the stable mutation
//! runs of tests/fuzz_smoke.rs share.
#![no_main]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::hpack(data));
