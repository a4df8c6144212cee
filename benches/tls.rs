//! The decrypting replay against the cleartext replay of the same traffic: grpc-go's `tls`
//! scenario captured over TLS 1.3 (AES-128-GCM, testdata/captures/go-tls13-hrr) and in
//! cleartext (go-clear), each copied by `capture::synth` into a file of the same size (copies
//! of the connections with their own addresses; every TLS copy opens with the one key log).
//! Also the TLS file without keys: the cost of following records it cannot open.
//!
//! Run: `cargo bench --bench tls`
//! Env: GRPCTAP_BENCH_MB (default 256), GRPCTAP_BENCH_RUNS (default 7; median and range).

#![allow(clippy::unwrap_used)]

use std::ffi::OsStr;

mod common;

use common::{env_or, grpctap, repo};

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` only checks that this builds.
    }
    let runs: usize = env_or("GRPCTAP_BENCH_RUNS", "7").parse().unwrap();
    let mb: u64 = env_or("GRPCTAP_BENCH_MB", "256").parse().unwrap();
    let caps = repo().join("testdata/captures");
    let keylog = caps.join("go-tls13-hrr.keylog");
    let build = |stem: &str| {
        let file = repo().join(format!("target/bench-data/{stem}-x{mb}MB.pcap"));
        if !file.exists() {
            capture::synth::build(&caps.join(format!("{stem}-lo.pcap.gz")), mb, &file)
                .expect("build the benchmark capture");
        }
        file
    };
    let clear = build("go-clear");
    let tls = build("go-tls13-hrr");
    let modes: [(&str, &std::path::Path, Vec<&OsStr>); 3] = [
        ("cleartext", &clear, vec![]),
        (
            "TLS 1.3, decrypted",
            &tls,
            vec![OsStr::new("--tls-keylog"), keylog.as_os_str()],
        ),
        ("TLS 1.3, no keys", &tls, vec![]),
    ];
    println!("{runs} runs per mode, median [min-max]; files of {mb} MiB");
    println!(
        "{:<20} {:>9} {:>7} {:>22} {:>11} {:>13} {:>8}",
        "mode", "packets", "calls", "MB/s", "Mpkt/s", "peak RSS MiB", "ratio"
    );
    let mut base = None;
    for (name, file, args) in &modes {
        grpctap(file, args); // warm the page cache
        let mut r: Vec<_> = (0..runs).map(|_| grpctap(file, args)).collect();
        r.sort_by(|a, b| a.1.total_cmp(&b.1));
        let med = r[r.len() / 2];
        let rss = r.iter().map(|x| x.4).fold(0.0, f64::max);
        let b = *base.get_or_insert(med.1);
        println!(
            "{:<20} {:>9.0} {:>7.0} {:>22} {:>11.2} {:>13.1} {:>8.2}",
            name,
            med.2,
            med.3,
            format!("{:.0} [{:.0}-{:.0}]", med.1, r[0].1, r[r.len() - 1].1),
            med.2 / med.0 / 1e6,
            rss,
            med.1 / b
        );
    }
}
