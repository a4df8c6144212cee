//! Decoding threads: `grpctap replay --threads N` on two mixes built from real captures, each as
//! a ratio to the single-threaded read limit measured in the same run (every packet read from
//! the file and its link, IP and TCP headers parsed, nothing reassembled or decoded), and to
//! `--threads 1`. The calls counted must be the same for every N.
//!
//! - bulk: testdata/captures/py-mixed-veth.pcap (python grpcio over a veth pair: large messages),
//! - call-dense: testdata/captures/balance-rr-lo.pcap.gz (grpc-go, ~640 bytes per call),
//!
//! each copied by `capture::synth` with distinct client addresses to GRPCTAP_BENCH_MB (default
//! 256) MB. Run: `cargo bench --bench threads` (GRPCTAP_BENCH_RUNS, default 5;
//! GRPCTAP_BENCH_THREADS, default "1,2"; GRPCTAP_BENCH_MIXES, default "bulk,dense").

#![allow(clippy::unwrap_used, clippy::cast_precision_loss)]

use std::time::Instant;

mod common;
use common::{env_or, grpctap, repo};

/// Reads `file` as grpctap's input layer does and parses every packet's headers: the most a
/// single reader can do.
fn read_limit(file: &std::path::Path) -> (f64, u64) {
    let t = Instant::now();
    let mut src = capture::FileSource::open(file, 16 << 20).unwrap();
    let mut packets = 0u64;
    let mut payload = 0usize;
    while let Some(p) = src.next_packet().unwrap() {
        packets += 1;
        if let Ok(capture::wire::LinkPayload::Ip(ip)) =
            capture::wire::parse_link(p.linktype, p.data)
            && let Ok(ip) = capture::wire::parse_ip(ip)
            && let Ok(seg) = capture::wire::parse_tcp(&ip)
        {
            payload += seg.payload.len();
        }
    }
    std::hint::black_box(payload);
    (t.elapsed().as_secs_f64(), packets)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let runs: usize = env_or("GRPCTAP_BENCH_RUNS", "5").parse().unwrap();
    let mb: u64 = env_or("GRPCTAP_BENCH_MB", "256").parse().unwrap();
    let threads: Vec<usize> = env_or("GRPCTAP_BENCH_THREADS", "1,2")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!(
        "{runs} runs each, medians; cores: {}",
        std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
    );
    println!(
        "{:>6} {:>8} {:>9} {:>8} {:>8} {:>10} {:>9} {:>10} {:>9} {:>9} {:>8}",
        "mix",
        "mode",
        "file MB",
        "packets",
        "calls",
        "MB/s",
        "Mpkt/s",
        "calls/s",
        "/read",
        "/1 thread",
        "RSS MiB"
    );
    for mix in env_or("GRPCTAP_BENCH_MIXES", "bulk,dense").split(',') {
        let seed = match mix {
            "bulk" => "testdata/captures/py-mixed-veth.pcap",
            "dense" => "testdata/captures/balance-rr-lo.pcap.gz",
            other => panic!("no mix {other:?}"),
        };
        let file = repo().join(format!("target/bench-data/threads-{mix}-x{mb}MB.pcap"));
        if !file.exists() {
            capture::synth::build(&repo().join(seed), mb, &file).unwrap();
        }
        let bytes = std::fs::metadata(&file).unwrap().len() as f64;
        read_limit(&file); // warm the page cache
        let mut reads = Vec::new();
        let mut packets = 0;
        for _ in 0..runs {
            let (s, p) = read_limit(&file);
            reads.push(s);
            packets = p;
        }
        let read_s = median(&mut reads);
        println!(
            "{:>6} {:>8} {:>9.0} {:>8} {:>8} {:>10.0} {:>9.2} {:>10} {:>9} {:>9} {:>8}",
            mix,
            "read",
            bytes / 1048576.0,
            packets,
            "-",
            bytes / 1e6 / read_s,
            packets as f64 / read_s / 1e6,
            "-",
            "1.00",
            "-",
            "-"
        );
        let mut one = None;
        let mut calls_of_one = None;
        let modes: Vec<(String, Vec<String>)> = threads
            .iter()
            .map(|n| (format!("t{n}"), vec!["--threads".to_owned(), n.to_string()]))
            .chain([(
                "t1 calls".to_owned(),
                vec!["--threads", "1", "--calls", "/dev/null"]
                    .into_iter()
                    .map(str::to_owned)
                    .collect(),
            )])
            .collect();
        for (name, args) in &modes {
            let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
            let mut secs = Vec::new();
            let mut rss: f64 = 0.0;
            let mut calls = 0.0;
            for _ in 0..runs {
                let (s, _, _, c, r) = grpctap(&file, &args);
                secs.push(s);
                rss = rss.max(r);
                calls = c;
            }
            let s = median(&mut secs);
            if name == "t1" {
                one = Some(s);
                calls_of_one = Some(calls);
            }
            if let Some(c1) = calls_of_one {
                assert_eq!(calls, c1, "{mix} {name}: every call counted, whatever N");
            }
            println!(
                "{:>6} {:>8} {:>9.0} {:>8} {:>8.0} {:>10.0} {:>9.2} {:>10.0} {:>9.2} {:>9} {:>8.1}",
                mix,
                name,
                bytes / 1048576.0,
                packets,
                calls,
                bytes / 1e6 / s,
                packets as f64 / s / 1e6,
                calls / s,
                read_s / s,
                one.map_or("-".to_owned(), |o| format!("{:.2}", o / s)),
                rss
            );
        }
    }
}
