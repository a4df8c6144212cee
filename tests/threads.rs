//! `--threads N`: every capture in testdata/ gives the same calls (in the same order), the same
//! summary and the same metrics with one decoding thread and with four, also joined mid-way
//! (its first third of packets dropped) and run after run; and with several files merged by
//! time, the same again.

mod common;

/// Replays `file` with `threads` and `args`; stdout.
fn run(threads: &str, args: &[&str], file: &std::path::Path) -> String {
    let mut a = vec!["--threads", threads];
    a.extend_from_slice(args);
    common::replay_file_stdout(&a, file)
}

fn summary(text: &str) -> serde_json::Value {
    serde_json::from_str(text).expect("summary json")
}

/// Metrics families print in no fixed order: compared as sorted lines, without the process's
/// own.
fn metric_lines(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with("process_") && !l.contains("_created"))
        .map(str::to_owned)
        .collect();
    v.sort();
    v
}

#[test]
fn every_capture_decodes_the_same_on_one_thread_and_on_four() {
    let dir = std::env::temp_dir().join(format!("grpctap-threads-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut checked = 0;
    for file in common::capture_files() {
        let name = file.display().to_string();
        for args in [
            &["--calls", "-", "--metadata"][..],
            &["--calls", "-", "--bodies", "--proto-path", "testdata/proto"][..],
        ] {
            let one = run("1", args, &file);
            let four = run("4", args, &file);
            assert!(one == four, "{name} {args:?}: --calls differ");
        }
        let s = ["--summary-json", "-", "--proto-path", "testdata/proto"];
        assert_eq!(
            summary(&run("1", &s, &file)),
            summary(&run("4", &s, &file)),
            "{name}: summary"
        );
        let m = ["--metrics-text", "-"];
        assert_eq!(
            metric_lines(&run("1", &m, &file)),
            metric_lines(&run("4", &m, &file)),
            "{name}: metrics"
        );
        // A tap that joined the connections mid-way.
        let c = ["--calls", "-", "--metadata"];
        if let Some(cut) = common::cut(&file, packets(&file) / 3, &dir) {
            assert!(
                run("1", &c, &cut) == run("4", &c, &cut),
                "{name} from a third"
            );
        }
        checked += 1;
    }
    assert!(checked >= 60, "only {checked} captures");
}

/// Packets in `file`.
fn packets(file: &std::path::Path) -> u64 {
    let mut src = capture::FileSource::open(file, 16 << 20).expect("open");
    let mut n = 0;
    while src.next_packet().expect("read").is_some() {
        n += 1;
    }
    n
}

#[test]
fn connections_that_teach_each_other_decode_the_same_run_after_run() {
    // The second TLS 1.2 connection resumes the first's session (its secret is learned from
    // the first's ticket); a reflection client's schemas name the messages of later calls.
    for (cap, keys) in [
        ("go-tls12-dsb.pcapng.gz", None),
        (
            "go-tls12-lo.pcap.gz",
            Some("testdata/captures/go-tls12.keylog"),
        ),
        ("node-reflection-lo.pcap.gz", None),
    ] {
        let file = common::captures().join(cap);
        let mut args = vec!["--calls", "-", "--bodies"];
        if let Some(k) = keys {
            args.extend(["--tls-keylog", k]);
        }
        let one = run("1", &args, &file);
        assert!(one.lines().count() >= 30, "{cap}");
        for _ in 0..5 {
            assert!(run("4", &args, &file) == one, "{cap}: --calls differ");
        }
    }
}

#[test]
fn files_merged_by_time_decode_the_same_on_two_threads() {
    let files = [
        common::captures().join("go-midjoin-lo.pcap.gz"),
        common::captures().join("balance-rr-lo.pcap.gz"),
        common::captures().join("py-basic-lo.pcap"),
    ];
    let args = |n: &'static str| ["--threads", n, "--calls", "-", "--metadata"];
    let (one, _) = common::replay_files(&args("1"), &files);
    let (two, _) = common::replay_files(&args("2"), &files);
    assert!(one.lines().count() > 2000, "{}", one.lines().count());
    assert!(one == two, "--calls differ");
}
