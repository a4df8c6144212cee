//! cargo-fuzz target `h2_conn`: see `harness::h2_conn` (../harness.rs), which the stable mutation
//! runs of tests/fuzz_smoke.rs share.
#![no_main]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::h2_conn(data));
