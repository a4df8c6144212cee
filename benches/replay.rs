//! Replay throughput of the whole pipeline in metrics mode (capture read, TCP reassembly,
//! HTTP/2 + HPACK, call tracking, per-method aggregation; no protobuf decoding), against
//! tshark's gRPC dissection of the same file.
//!
//! The input is made from a real capture (default testdata/captures/py-mixed-veth.pcap:
//! python grpcio over Ethernet, MTU 1500) by `capture::synth`: copies of its connections with
//! their own addresses, 64 live at once. Every copy decodes to the seed's 660 calls.
//!
//! Each run is paired with one without the findings engine (`--no-findings`), alternating, and
//! the ratio of the medians is printed: what the findings cost.
//!
//! Run: `cargo bench --bench replay`
//! Env: GRPCTAP_BENCH_SEED, GRPCTAP_BENCH_PORT (server port of the seed, for tshark's
//! `-d tcp.port==P,http2`; default 50051), GRPCTAP_BENCH_MB (default "128,512"),
//! GRPCTAP_BENCH_RUNS (default 7; the median is reported with the range),
//! GRPCTAP_BENCH_TSHARK_MB (the size tshark runs on, default 128; 0 skips it).

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::Instant;

mod common;

use common::{env_or, repo};

/// One decoding thread: what one core does (`cargo bench --bench threads` measures more).
fn grpctap(file: &std::path::Path) -> (f64, f64, f64, f64, f64) {
    common::grpctap(file, &["--threads".as_ref(), "1".as_ref()])
}

/// The same without the findings engine (`--no-findings`): the baseline of its cost.
fn grpctap_no_findings(file: &std::path::Path) -> (f64, f64, f64, f64, f64) {
    common::grpctap(
        file,
        &["--threads".as_ref(), "1".as_ref(), "--no-findings".as_ref()],
    )
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` only checks that this builds.
    }
    let seed = repo().join(env_or(
        "GRPCTAP_BENCH_SEED",
        "testdata/captures/py-mixed-veth.pcap",
    ));
    let port = env_or("GRPCTAP_BENCH_PORT", "50051");
    let runs: usize = env_or("GRPCTAP_BENCH_RUNS", "7").parse().unwrap();
    let tshark_mb: u64 = env_or("GRPCTAP_BENCH_TSHARK_MB", "128").parse().unwrap();
    let stem = seed
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("seed")
        .to_owned();
    println!(
        "seed: {} ({runs} runs per size, median [min-max])",
        seed.display()
    );
    println!(
        "{:>8} {:>9} {:>7} {:>24} {:>11} {:>13} {:>11}",
        "file MB", "packets", "calls", "grpctap MB/s", "Mpkt/s", "peak RSS MiB", "tshark s"
    );
    for mb in env_or("GRPCTAP_BENCH_MB", "128,512")
        .split(',')
        .filter_map(|s| s.trim().parse::<u64>().ok())
    {
        let file = repo().join(format!("target/bench-data/{stem}-x{mb}MB.pcap"));
        if !file.exists() {
            capture::synth::build(&seed, mb, &file).expect("build the benchmark capture");
        }
        grpctap(&file); // warm the page cache
        // Runs with and without findings alternate, so both see the same machine.
        let mut r = Vec::new();
        let mut off = Vec::new();
        for _ in 0..runs {
            r.push(grpctap(&file));
            off.push(grpctap_no_findings(&file).1);
        }
        r.sort_by(|a, b| a.1.total_cmp(&b.1));
        off.sort_by(f64::total_cmp);
        let med = r[r.len() / 2];
        let (lo, hi) = (r[0].1, r[r.len() - 1].1);
        let rss = r.iter().map(|x| x.4).fold(0.0, f64::max);
        let tshark = if mb == tshark_mb {
            let t = Instant::now();
            let status = Command::new("tshark")
                .args(["-r"])
                .arg(&file)
                .args(["-d", &format!("tcp.port=={port},http2"), "-Y", "grpc"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            match status {
                Ok(s) if s.success() => format!("{:.2}", t.elapsed().as_secs_f64()),
                _ => "n/a".to_owned(),
            }
        } else {
            "-".to_owned()
        };
        let bytes = std::fs::metadata(&file).unwrap().len() as f64;
        println!(
            "{:>8.0} {:>9.0} {:>7.0} {:>24} {:>11.2} {:>13.1} {:>11}",
            bytes / 1048576.0,
            med.2,
            med.3,
            format!("{:.0} [{:.0}-{:.0}]", med.1, lo, hi),
            med.2 / med.0 / 1e6,
            rss,
            tshark
        );
        let off_med = off[off.len() / 2];
        println!(
            "{:>8} without findings: {:.0} MB/s median [{:.0}-{:.0}]; with/without = {:.3}",
            "",
            off_med,
            off[0],
            off[off.len() - 1],
            med.1 / off_med
        );
        if let Ok(secs) = tshark.parse::<f64>() {
            println!(
                "{:>8} tshark: {:.1} MB/s; grpctap/tshark = {:.0}x",
                "",
                bytes / 1e6 / secs,
                secs / med.0
            );
        }
    }
}
