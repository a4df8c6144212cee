//! Capture-layer throughput on one core: file read + link/IP/TCP parse + TCP reassembly.
//!
//! The input is made from a real capture (default: testdata/captures/py-mixed-veth.pcap,
//! python grpcio over Ethernet, MTU 1500): copies of its connections, each copy with its own
//! addresses, 64 copies interleaved so many connections are live at once, timestamps moving
//! forward. Each size runs in a fresh child process so its peak RSS is its own.
//!
//! Run: `cargo bench -p capture --bench reassembly`
//! Env: GRPCTAP_BENCH_SEED (capture to copy), GRPCTAP_BENCH_MB (sizes, default "128,512"),
//!      GRPCTAP_BENCH_RUNS (runs per size, the median is reported; default 3).

// The counting allocator below is the only unsafe code; see its SAFETY comment.
#![allow(unsafe_code)]
#![allow(clippy::cast_possible_truncation)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use capture::{CaptureLimits, EventKind, FileSource, Reassembler, StreamEvent};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting touches only an atomic and never the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One measurement in this process; prints a tab-separated result line.
fn child(file: &Path, runs: usize) {
    let file_bytes = std::fs::metadata(file).expect("stat").len();
    let mut bare = Vec::new();
    let mut full = Vec::new();
    let mut packets = 0u64;
    let mut allocs_per_packet = 0.0;
    let mut delivered = 0u64;
    for _ in 0..runs {
        let t = Instant::now();
        let mut src = FileSource::open(file, 16 << 20).expect("open");
        let mut sum = 0u64;
        while let Some(p) = src.next_packet().expect("read") {
            sum = sum.wrapping_add(p.data.len() as u64);
        }
        std::hint::black_box(sum);
        bare.push(t.elapsed().as_secs_f64());

        let t = Instant::now();
        let mut src = FileSource::open(file, 16 << 20).expect("open");
        let mut reasm = Reassembler::new(CaptureLimits::default());
        let mut bytes = 0u64;
        let mut sink = |ev: StreamEvent<'_>| {
            if let EventKind::Data(d) = ev.kind {
                bytes += d.len() as u64;
                std::hint::black_box(d.first());
            }
        };
        let before = ALLOCS.load(Ordering::Relaxed);
        while let Some(p) = src.next_packet().expect("read") {
            reasm.handle_packet(&p, &mut sink);
        }
        reasm.finish(&mut sink);
        let allocs = ALLOCS.load(Ordering::Relaxed) - before;
        full.push(t.elapsed().as_secs_f64());
        packets = reasm.stats().packets;
        allocs_per_packet = allocs as f64 / packets as f64;
        delivered = bytes;
        assert_eq!(reasm.stats().gaps, 0, "the copies are complete captures");
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (bare, full) = (median(&mut bare), median(&mut full));
    println!(
        "RESULT\t{file_bytes}\t{packets}\t{bare}\t{full}\t{}\t{allocs_per_packet}\t{delivered}",
        capture::stats::peak_rss_kib()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        let runs = std::env::var("GRPCTAP_BENCH_RUNS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3);
        return child(Path::new(&args[i + 1]), runs);
    }
    if args.iter().any(|a| a == "--test" || a == "--list") {
        return; // `cargo test --benches` only checks that this builds.
    }
    // Relative paths are taken from the repository root (cargo runs benches in capture/).
    let seed = repo().join(
        std::env::var("GRPCTAP_BENCH_SEED")
            .unwrap_or_else(|_| "testdata/captures/py-mixed-veth.pcap".into()),
    );
    let sizes = std::env::var("GRPCTAP_BENCH_MB").unwrap_or_else(|_| "128,512".into());
    let data_dir = repo().join("target/bench-data");
    println!("seed: {}", seed.display());
    println!(
        "{:>8} {:>10} {:>9} {:>11} {:>11} {:>10} {:>13} {:>12}",
        "file MB",
        "packets",
        "avg B/pkt",
        "bare MB/s",
        "full MB/s",
        "full Mpkt/s",
        "peak RSS MiB",
        "allocs/pkt"
    );
    for mb in sizes
        .split(',')
        .filter_map(|s| s.trim().parse::<u64>().ok())
    {
        let stem = seed.file_stem().and_then(|s| s.to_str()).unwrap_or("seed");
        let file = data_dir.join(format!("{stem}-x{mb}MB.pcap"));
        if !file.exists() {
            capture::synth::build(&seed, mb, &file).expect("build the benchmark capture");
        }
        let out = std::process::Command::new(std::env::current_exe().expect("exe"))
            .arg("--child")
            .arg(&file)
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        let Some(line) = text.lines().find(|l| l.starts_with("RESULT")) else {
            panic!("child failed: {}", String::from_utf8_lossy(&out.stderr));
        };
        let f: Vec<f64> = line
            .split('\t')
            .skip(1)
            .map(|x| x.parse().expect("number"))
            .collect();
        let (bytes, packets, bare, full, rss, allocs) = (f[0], f[1], f[2], f[3], f[4], f[5]);
        println!(
            "{:>8.0} {:>10.0} {:>9.0} {:>11.0} {:>11.0} {:>10.2} {:>13.1} {:>12.4}",
            bytes / 1048576.0,
            packets,
            bytes / packets,
            bytes / 1e6 / bare,
            bytes / 1e6 / full,
            packets / 1e6 / full,
            rss / 1024.0,
            allocs
        );
    }
}
