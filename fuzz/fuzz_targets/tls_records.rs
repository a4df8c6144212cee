//! cargo-fuzz target `tls_records`: see `harness::tls_records` (../harness.rs), which the stable
//! mutation runs of tests/fuzz_smoke.rs share.
#![no_main]
#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::tls_records(data));
