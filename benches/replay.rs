//! Replay throughput of the whole pipeline in metrics mode (capture read, TCP reassembly,
//! HTTP/2 + HPACK, call tracking, per-method aggregation; no protobuf decoding), against
//! tshark's gRPC dissection of the same file.
//!
//! The input is made from a real capture (default testdata/captures/py-mixed-veth.pcap:
//! python grpcio over Ethernet, MTU 1500) by `capture::synth`: copies of its connections with
//! their own addresses, 64 live at once. Every copy decodes to the seed's 660 calls.
//!
//! Run: `cargo bench --bench replay`
//! Env: GRPCTAP_BENCH_SEED, GRPCTAP_BENCH_PORT (server port of the seed, for tshark's
//! `-d tcp.port==P,http2`; default 50051), GRPCTAP_BENCH_MB (default "128,512"),
//! GRPCTAP_BENCH_RUNS (default 7; the median is reported with the range),
//! GRPCTAP_BENCH_TSHARK_MB (the size tshark runs on, default 128; 0 skips it).

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_owned())
}

/// One run of `grpctap replay --stats`: (seconds, MB/s, packets, calls, peak RSS MiB).
fn grpctap(file: &Path) -> (f64, f64, f64, f64, f64) {
    let out = Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .args(["replay", "--stats", "--summary-json", "/dev/null"])
        .arg(file)
        .stdout(Stdio::null())
        .output()
        .expect("run grpctap");
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err
        .lines()
        .find(|l| l.contains("MB/s"))
        .unwrap_or_else(|| panic!("no --stats line: {err}"));
    // "grpctap: N packets, X MB in T s: R MB/s, P packets/s, C calls; peak RSS M MiB"
    let nums: Vec<f64> = line
        .split(|c: char| !(c.is_ascii_digit() || c == '.'))
        .filter(|s| !s.is_empty() && s.chars().any(|c| c.is_ascii_digit()))
        .filter_map(|s| s.parse().ok())
        .collect();
    (nums[2], nums[3], nums[0], nums[5], nums[6])
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
        let mut r: Vec<(f64, f64, f64, f64, f64)> = (0..runs).map(|_| grpctap(&file)).collect();
        r.sort_by(|a, b| a.1.total_cmp(&b.1));
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
