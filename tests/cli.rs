//! The `grpctap` binary as a user runs it: real captures, damaged copies of them, several files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/captures")
}

fn grpctap(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .args(args)
        .output()
        .expect("run grpctap")
}

fn tmp_dir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("grpctap-cli-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmp");
    d
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Byte offsets where each record of a little-endian pcap file starts, and the file's end.
fn record_offsets(pcap: &[u8]) -> Vec<usize> {
    let mut at = 24;
    let mut out = Vec::new();
    while at + 16 <= pcap.len() {
        out.push(at);
        let caplen =
            u32::from_le_bytes([pcap[at + 8], pcap[at + 9], pcap[at + 10], pcap[at + 11]]) as usize;
        at += 16 + caplen;
    }
    out.push(at);
    out
}

fn json(args: &[&str]) -> (serde_json::Value, Output) {
    let out = grpctap(args);
    let v = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
    (v, out)
}

#[test]
fn replay_lists_connections_and_counters() {
    let file = captures().join("py-basic-lo.pcap");
    let out = grpctap(&["replay", "--connections", file.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("METHOD"), "{stdout}");
    let unary = stdout
        .lines()
        .find(|l| l.starts_with("/grpctap.test.Echo/Unary"))
        .expect("Unary row");
    let cells: Vec<&str> = unary.split_whitespace().collect();
    assert_eq!(cells[1], "10", "calls: {unary}");
    assert_eq!(cells[3], "6", "errors: {unary}");
    // One of the two expiries came from the server (grpc-status 4); the other is the client's
    // CANCEL at the deadline, where an expiry and a cancel look alike: one of the two.
    assert!(
        unary.ends_with(
            "INVALID_ARGUMENT:2 NOT_FOUND:2 DEADLINE_EXCEEDED:1 DEADLINE_EXCEEDED|CANCELLED:1"
        ),
        "{unary}"
    );
    assert!(stdout.contains("127.0.0.1:50051") && stdout.contains("127.0.0.1:50052"));
    assert!(stdout.contains("fin/fin"));
    assert!(stdout.contains("capture: 425 packets"), "{stdout}");

    let (v, out) = json(&[
        "replay",
        "--connections-json",
        "-",
        file.to_str().expect("path"),
    ]);
    assert!(out.status.success());
    assert_eq!(v["capture"]["connections_opened"], 2);
    assert_eq!(v["capture"]["gaps"], 0);
    assert_eq!(v["connections"].as_array().expect("rows").len(), 2);
    assert_eq!(v["connections"][0]["roles"], "syn");
}

#[test]
fn summary_json_has_the_documented_shape() {
    let file = captures().join("py-mixed-veth.pcap");
    let (v, out) = json(&[
        "replay",
        "--summary-json",
        "-",
        file.to_str().expect("path"),
    ]);
    assert!(out.status.success());
    assert_eq!(v["totals"]["calls"], 660);
    assert_eq!(v["totals"]["errors"], 60);
    let methods = v["methods"].as_array().expect("methods");
    let unary = methods
        .iter()
        .find(|m| m["method"] == "/grpctap.test.Echo/Unary")
        .expect("unary");
    assert_eq!(unary["calls"], 600);
    assert_eq!(unary["req_msgs"], 600);
    let lat = &unary["latency_s"];
    let (p50, p99, max) = (
        lat["p50"].as_f64().expect("p50"),
        lat["p99"].as_f64().expect("p99"),
        lat["max"].as_f64().expect("max"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max && max < 1.0, "{lat}");
    assert_eq!(v["capture"]["http2_connections"], 4);
    assert_eq!(v["capture"]["packets"], 8900);
    // Only one output may take stdout.
    let out = grpctap(&[
        "replay",
        "--summary-json",
        "-",
        "--calls",
        "-",
        file.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn truncated_file_reports_where_and_keeps_the_rest() {
    let full = std::fs::read(captures().join("py-mixed-veth.pcap")).expect("read");
    let offsets = record_offsets(&full);
    let half = offsets[offsets.len() / 2];
    let cut = tmp_dir().join("cut.pcap");
    std::fs::write(&cut, &full[..half + 10]).expect("write");
    let (v, out) = json(&[
        "replay",
        "--connections-json",
        "-",
        cut.to_str().expect("path"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains(&format!("cut.pcap: truncated at byte {half}")),
        "{err}"
    );
    let read = (offsets.len() - 1) / 2;
    assert_eq!(v["capture"]["packets"], read as u64);
    assert!(
        err.contains(&format!("the {read} packets before it were read")),
        "{err}"
    );
    // The connections seen before the cut are still reported, open at the end.
    let rows = v["connections"].as_array().expect("rows");
    assert_eq!(rows.len(), 4);
    assert!(rows.iter().all(|r| r["to_server"]["end"] == "open"));
}

#[test]
fn a_bad_file_does_not_stop_the_others() {
    let junk = tmp_dir().join("junk.pcap");
    std::fs::write(&junk, b"this is not a capture file at all").expect("write");
    let good = captures().join("py-v6-any.pcap.gz");
    let (v, out) = json(&[
        "replay",
        "--connections-json",
        "-",
        junk.to_str().expect("p"),
        good.to_str().expect("p"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("junk.pcap: not a pcap or pcapng file"));
    assert_eq!(v["files"][0]["packets"], 0);
    assert!(v["files"][0]["error"].is_string());
    assert!(v["files"][1]["error"].is_null());
    assert_eq!(v["capture"]["connections_opened"], 1);

    // Nothing readable at all: exit 2.
    let out = grpctap(&["replay", junk.to_str().expect("p")]);
    assert_eq!(out.status.code(), Some(2));
    let out = grpctap(&["replay"]);
    assert_eq!(out.status.code(), Some(2), "usage error");
}

#[test]
fn rotated_capture_is_one_capture() {
    let full = std::fs::read(captures().join("py-mixed-veth.pcap")).expect("read");
    let offsets = record_offsets(&full);
    let mid = offsets[offsets.len() / 3];
    let dir = tmp_dir();
    let (a, b) = (dir.join("rot-0.pcap"), dir.join("rot-1.pcap"));
    std::fs::write(&a, &full[..mid]).expect("write");
    let mut second = full[..24].to_vec();
    second.extend_from_slice(&full[mid..]);
    std::fs::write(&b, &second).expect("write");
    let whole = captures().join("py-mixed-veth.pcap");
    let (one, _) = json(&[
        "replay",
        "--connections-json",
        "-",
        whole.to_str().expect("p"),
    ]);
    let (two, out) = json(&[
        "replay",
        "--connections-json",
        "-",
        a.to_str().expect("p"),
        b.to_str().expect("p"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(one["connections"], two["connections"]);
    assert_eq!(one["capture"], two["capture"]);
}

#[test]
fn a_broken_schema_is_reported_and_the_replay_goes_on() {
    let dir = tmp_dir().join("protos");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/proto/echo.proto"),
        dir.join("echo.proto"),
    )
    .expect("copy");
    std::fs::write(
        dir.join("broken.proto"),
        "syntax = \"proto3\";\n\nmessage M {\n  string = 1;\n}\n",
    )
    .expect("write");
    let file = captures().join("py-edge-lo.pcap.gz");
    let (v, out) = json(&[
        "replay",
        "--summary-json",
        "-",
        "--proto-path",
        dir.to_str().expect("dir"),
        file.to_str().expect("path"),
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("broken.proto: line 4, column 10:"), "{err}");
    // The good schema still typed the calls: the cancelled stream is a server stream.
    let ss = v["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .find(|m| m["method"] == "/grpctap.test.Echo/ServerStream")
        .expect("ss");
    assert_eq!(ss["call_types"], serde_json::json!({"server_stream": 1}));
}

#[test]
fn tui_needs_a_terminal_and_stdout_for_itself() {
    let file = captures().join("py-basic-lo.pcap");
    let file = file.to_str().expect("path");
    // Output captured by a pipe: no terminal.
    let out = grpctap(&["replay", "--tui", file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--tui needs a terminal on stdout"),
        "{}",
        text(&out.stderr)
    );
    let out = grpctap(&["replay", "--tui", "--calls", "-", file]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--tui draws on stdout"),
        "{}",
        text(&out.stderr)
    );
    for bad in ["0x", "-2x", "fast", "nanx"] {
        let out = grpctap(&["replay", &format!("--speed={bad}"), file]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(
            text(&out.stderr).contains("--speed"),
            "{bad}: {}",
            text(&out.stderr)
        );
    }
    // A paced replay without the UI: 0.3 s of capture at 2x takes about 0.15 s.
    let t = std::time::Instant::now();
    let out = grpctap(&["replay", "--speed", "2x", file]);
    assert!(out.status.success());
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(140),
        "{:?}",
        t.elapsed()
    );
    assert!(text(&out.stdout).contains("TOTAL"));
}

/// A build without live capture says how to get it.
#[cfg(not(feature = "live"))]
#[test]
fn capture_without_the_live_feature_says_how_to_get_it() {
    // Options after the filter and tcpdump's flags parse (the error is the missing feature).
    let habits = [
        "capture", "tcp", "port", "50051", "-i", "lo", "-nn", "-s", "0", "-c", "5", "-p", "-B",
        "4096", "-Z", "nobody", "-w", "x.pcapng", "-G", "60",
    ];
    for args in [
        &["capture", "-i", "lo"][..],
        &["interfaces"][..],
        &habits[..],
    ] {
        let out = grpctap(args);
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(
            err.contains("--features live")
                && err.contains("libpcap-dev")
                && err.contains("target/live/release/grpctap"),
            "{err}"
        );
    }
}

/// The README's live build does not write the binary its main command (`cargo run --release`)
/// rebuilds without live capture, and the README runs the binary that build writes.
#[test]
fn the_live_build_and_the_default_build_keep_apart() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).expect("README");
    let config =
        std::fs::read_to_string(common::root().join(".cargo/config.toml")).expect("config");
    assert!(readme.contains("cargo run --release -- replay"));
    assert!(
        readme.contains("cargo build-live"),
        "README builds with the alias"
    );
    let alias = config
        .lines()
        .find_map(|l| l.strip_prefix("build-live = "))
        .expect("build-live alias");
    let words: Vec<&str> = alias.trim_matches('"').split_whitespace().collect();
    assert!(
        words.contains(&"--features") && words.contains(&"live"),
        "{alias}"
    );
    let dir = words
        .iter()
        .position(|w| *w == "--target-dir")
        .and_then(|i| words.get(i + 1))
        .expect("a target directory of its own");
    assert_ne!(*dir, "target", "{alias}");
    let binary = format!("{dir}/release/grpctap capture");
    assert!(readme.contains(&binary), "README runs {binary}");
}

/// Runs grpctap with `input` on its standard input.
fn grpctap_stdin(args: &[&str], input: &[u8]) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run grpctap");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    // Written from a thread: grpctap reads as it writes, and a full pipe would block us both.
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    out
}

#[test]
fn standard_input_is_read_as_a_stream() {
    // The same calls as from the file, for pcap, pcapng and gzip, from a pipe (no seeking).
    for name in [
        "py-basic-lo.pcap",
        "py-basic-multi.pcapng",
        "go-midjoin-lo.pcap.gz",
    ] {
        let file = captures().join(name);
        let path = file.to_str().expect("path");
        let want = grpctap(&["replay", "--calls", "-", path]);
        assert!(want.status.success(), "{}", text(&want.stderr));
        let bytes = std::fs::read(&file).expect("read");
        let got = grpctap_stdin(&["replay", "--calls", "-", "-"], &bytes);
        assert!(got.status.success(), "{name}: {}", text(&got.stderr));
        assert!(!got.stdout.is_empty(), "{name}: no calls");
        assert_eq!(text(&got.stdout), text(&want.stdout), "{name}");
    }
}

#[test]
fn empty_short_and_missing_inputs_say_what_they_are() {
    let dir = tmp_dir();
    let pcap = std::fs::read(captures().join("py-basic-lo.pcap")).expect("read");
    let cases: [(&str, &[u8], &str); 3] = [
        ("empty.pcap", b"", "empty file: no capture header"),
        (
            "ten.pcap",
            &pcap[..10],
            "the pcap file header is cut short (10 bytes, 24 expected)",
        ),
        ("text.pcap", b"hello there\n", "not a pcap or pcapng file"),
    ];
    for (name, bytes, says) in cases {
        let f = dir.join(name);
        std::fs::write(&f, bytes).expect("write");
        let out = grpctap(&["replay", f.to_str().expect("path")]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        assert!(
            text(&out.stderr).contains(says),
            "{name}: {}",
            text(&out.stderr)
        );
        // Nothing was read: no empty table that looks like a capture without gRPC.
        assert!(out.stdout.is_empty(), "{name}: {}", text(&out.stdout));
        let piped = grpctap_stdin(&["replay", "-"], bytes);
        assert_eq!(piped.status.code(), Some(2), "{name} on stdin");
        assert!(
            text(&piped.stderr).contains(says),
            "{name}: {}",
            text(&piped.stderr)
        );
    }
    let out = grpctap(&["replay", dir.join("missing.pcap").to_str().expect("path")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("No such file"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty(), "{}", text(&out.stdout));
}

#[test]
fn a_closed_stdout_ends_the_run_quietly() {
    // `grpctap replay --calls - x | head -1`: the reader goes away after one line.
    let file = captures().join("py-mixed-veth.pcap");
    for args in [
        vec!["replay", "--calls", "-", file.to_str().expect("path")],
        vec!["replay", file.to_str().expect("path")],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grpctap"))
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run");
        let mut line = [0u8; 1];
        let mut stdout = child.stdout.take().expect("stdout");
        std::io::Read::read_exact(&mut stdout, &mut line).expect("a first byte");
        drop(stdout);
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert!(out.stderr.is_empty(), "{args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn options_that_do_nothing_or_name_nothing_are_reported() {
    let file = captures().join("py-basic-lo.pcap");
    let path = file.to_str().expect("path");
    let out = grpctap(&["replay", "--proto-path", "/nonexistent/protos", path]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--proto-path /nonexistent/protos: no such file or directory"),
        "{}",
        text(&out.stderr)
    );
    let empty = tmp_dir().join("no-protos");
    std::fs::create_dir_all(&empty).expect("dir");
    let out = grpctap(&["replay", "--proto-path", empty.to_str().expect("dir"), path]);
    assert!(out.status.success());
    assert!(
        text(&out.stderr).contains("no .proto files below it"),
        "{}",
        text(&out.stderr)
    );
    for flag in ["--metadata", "--bodies"] {
        let out = grpctap(&["replay", flag, path]);
        assert!(out.status.success());
        assert!(
            text(&out.stderr).contains(&format!("{flag} shows in --calls records")),
            "{flag}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn wire_text_cannot_drive_the_terminal() {
    // A method name with OSC 52 (writes the clipboard) and other control characters.
    let mut c = common::craft::Craft::default();
    let mut f = c.open(40000, 1_000_000_000);
    common::craft::handshake(&mut c, &mut f, 1_000_000_000);
    let evil = b"/pkg.Svc/\x1b]52;c;aGVsbG8=\x07Evil\x9b";
    common::craft::unary(&mut c, &mut f, 1, evil, 1_001_000_000, "0");
    c.close(&mut f, 1_010_000_000);
    let file = tmp_dir().join("evil-path.pcap");
    c.write(&file);
    let out = grpctap(&["replay", file.to_str().expect("path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(
        !out.stdout.iter().any(|&b| b == 0x1b || b == 0x07),
        "{stdout}"
    );
    assert!(
        stdout.contains("\\u{1b}]52;c;aGVsbG8=\\u{7}Evil"),
        "{stdout}"
    );
}

/// docs/calls.md's summary schema names every field `--summary-json` writes.
#[test]
fn the_summary_schema_in_the_docs_is_complete() {
    let doc = std::fs::read_to_string(common::root().join("docs/calls.md")).expect("docs");
    let start = doc.find("{ \"totals\":").expect("schema block");
    let block = &doc[start..start + doc[start..].find("```").expect("end of block")];
    let words: std::collections::HashSet<&str> = block
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    for capture in ["py-basic-lo.pcap", "go-midjoin-lo.pcap.gz"] {
        let out = common::replay_stdout(&["--summary-json", "-"], capture);
        let v: serde_json::Value = serde_json::from_str(&out).expect("json");
        let mut keys: Vec<&String> = Vec::new();
        for part in ["totals", "capture"] {
            keys.extend(v[part].as_object().expect("object").keys());
        }
        for m in v["methods"].as_array().expect("methods") {
            keys.extend(m.as_object().expect("object").keys());
        }
        keys.extend(v.as_object().expect("object").keys());
        for k in keys {
            assert!(
                words.contains(k.as_str()),
                "{capture}: `{k}` is not in docs/calls.md"
            );
        }
    }
}

/// The records of a pcap (as tcpdump writes it here) dealt into `n` files by `pick(i, record)`.
fn split_pcap(full: &[u8], n: usize, pick: impl Fn(usize, &[u8]) -> usize) -> Vec<Vec<u8>> {
    let offsets = record_offsets(full);
    let mut files = vec![full[..24].to_vec(); n];
    for (i, w) in offsets.windows(2).enumerate() {
        let rec = &full[w[0]..w[1]];
        files[pick(i, rec)].extend_from_slice(rec);
    }
    files
}

/// `replay --calls -` of `files`, the lines sorted (calls ending at one instant in two files
/// may come in either order).
fn calls_of(files: &[PathBuf]) -> (Vec<String>, String) {
    let mut args = vec!["replay", "--calls", "-"];
    args.extend(files.iter().map(|p| p.to_str().expect("path")));
    let out = grpctap(&args);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    lines.sort();
    (lines, text(&out.stderr))
}

#[test]
fn files_are_merged_by_packet_time_whatever_their_order() {
    let whole = captures().join("py-mixed-veth.pcap");
    let full = std::fs::read(&whole).expect("read");
    let (truth, _) = calls_of(std::slice::from_ref(&whole));
    assert_eq!(truth.len(), 660);
    let dir = tmp_dir().join("merge");
    std::fs::create_dir_all(&dir).expect("dir");
    let write = |name: &str, parts: &[Vec<u8>]| -> Vec<PathBuf> {
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let path = dir.join(format!("{name}-{}.pcap", i + 1));
                std::fs::write(&path, p).expect("write");
                path
            })
            .collect()
    };
    let records = record_offsets(&full).len() - 1;
    // Rotated into 12 files, named as a shell glob sorts them: cap-1, cap-10, cap-11, cap-12,
    // cap-2, ...
    let rotated = write("cap", &split_pcap(&full, 12, |i, _| i * 12 / records));
    let mut by_name = rotated.clone();
    by_name.sort();
    assert!(by_name[1].ends_with("cap-10.pcap"));
    assert_eq!(calls_of(&by_name).0, truth, "glob order");
    // Newest first.
    let mut newest_first = rotated;
    newest_first.reverse();
    assert_eq!(calls_of(&newest_first).0, truth, "newest first");
    // Two captures of the same time (two connections each): interleaved, not
    // concatenated.
    let by_port = split_pcap(&full, 2, |_, rec| {
        // pcap record header 16, Ethernet 14, IPv4 with its IHL, then the TCP ports.
        let ip = 16 + 14;
        let tcp = ip + usize::from(rec[ip] & 0x0f) * 4;
        let src = u16::from_be_bytes([rec[tcp], rec[tcp + 1]]);
        let dst = u16::from_be_bytes([rec[tcp + 2], rec[tcp + 3]]);
        let client = if src == 50051 { dst } else { src };
        usize::from((client >> 1) & 1)
    });
    assert!(
        by_port.iter().all(|f| f.len() > 100_000),
        "both files have traffic"
    );
    let interleaved = write("side", &by_port);
    assert_eq!(calls_of(&interleaved).0, truth, "overlapping files");
}

#[test]
fn a_file_whose_time_runs_backwards_is_reported() {
    let full = std::fs::read(captures().join("py-basic-lo.pcap")).expect("read");
    let offsets = record_offsets(&full);
    // The records of the middle 10% moved to the end: the file steps back in time once.
    let n = offsets.len() - 1;
    let (a, b) = (offsets[n / 2], offsets[n / 2 + n / 10]);
    let mut moved = full[..a].to_vec();
    moved.extend_from_slice(&full[b..]);
    moved.extend_from_slice(&full[a..b]);
    let path = tmp_dir().join("backwards.pcap");
    std::fs::write(&path, &moved).expect("write");
    let (_, stderr) = calls_of(&[path]);
    assert!(
        stderr.contains("backwards.pcap: time runs backwards at 1 packet"),
        "{stderr}"
    );
}

#[test]
fn a_call_filter_selects_the_calls_of_every_output() {
    #[cfg(not(feature = "live"))]
    {
        let file = captures().join("py-basic-lo.pcap");
        let out = grpctap(&[
            "replay",
            file.to_str().expect("path"),
            "tcp",
            "port",
            "50051",
        ]);
        assert_eq!(out.status.code(), Some(2));
        let err = text(&out.stderr);
        assert!(
            err.contains("BPF filter") && err.contains("--call-filter"),
            "{err}"
        );
    }
    let capture = "py-mixed-veth.pcap";
    let all = common::replay_lines(&["--calls", "-"], capture);
    let mut errors: Vec<String> = all
        .iter()
        .filter(|c| c["error"] == true)
        .map(ToString::to_string)
        .collect();
    errors.sort();
    assert_eq!(errors.len(), 60);
    let mut ours: Vec<String> =
        common::replay_lines(&["--call-filter", "status:error", "--calls", "-"], capture)
            .iter()
            .map(ToString::to_string)
            .collect();
    ours.sort();
    assert_eq!(ours, errors, "--calls: exactly the failed calls");
    let summary = common::replay_stdout(
        &[
            "--call-filter",
            "method:unary status:unavail",
            "--summary-json",
            "-",
        ],
        capture,
    );
    let summary: serde_json::Value = serde_json::from_str(&summary).expect("json");
    assert_eq!(summary["totals"]["calls"], 10);
    assert_eq!(summary["totals"]["status"]["UNAVAILABLE"], 10);
    // The exporter: a start for every end, also when the filter decides at the end.
    for (filter, method, n) in [
        ("method:ServerStream", "ServerStream", 20),
        ("status:permission", "Unary", 18),
    ] {
        let text =
            common::replay_stdout(&["--call-filter", filter, "--metrics-text", "-"], capture);
        let sum = |family: &str| -> u64 {
            text.lines()
                .filter(|l| l.starts_with(family))
                .map(|l| {
                    assert!(
                        l.contains(&format!("grpc_method=\"{method}\"")),
                        "{filter}: {l}"
                    );
                    l.rsplit(' ')
                        .next()
                        .and_then(|v| v.parse::<u64>().ok())
                        .expect("value")
                })
                .sum()
        };
        assert_eq!(sum("grpc_server_started_total{"), n, "{filter}");
        assert_eq!(sum("grpc_server_handled_total{"), n, "{filter}");
    }
}

/// `--from` / `--to`: the calls that ended in the range, exactly those of the whole replay, as
/// an offset from the first packet or as absolute times; the rates over the range; a bad time
/// is refused with what a time looks like.
#[test]
fn from_and_to_report_the_calls_that_ended_in_the_range() {
    let cap = captures().join("go-midjoin-lo.pcap.gz");
    let cap = cap.to_str().expect("path");
    let all = common::json_lines(&common::replay_stdout(
        &["--calls", "-"],
        "go-midjoin-lo.pcap.gz",
    ));
    let first = {
        let mut src = capture::FileSource::open(std::path::Path::new(cap), 1 << 20).expect("open");
        src.next_packet().expect("read").expect("packet").ts.0 as f64 / 1e9
    };
    let key = |c: &serde_json::Value| (c["conn"].as_u64(), c["stream_id"].as_u64());
    let abs = |s: f64| format!("{:.6}", first + s);
    for (from, to, lo, hi) in [
        ("+1s".to_owned(), "+2s".to_owned(), 1.0, 2.0),
        ("+0.5s".to_owned(), "+1500ms".to_owned(), 0.5, 1.5),
        (abs(2.0), abs(2.6), 2.0, 2.6),
    ] {
        let out = grpctap(&["replay", cap, "--from", &from, "--to", &to, "--calls", "-"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        let got = common::json_lines(&text(&out.stdout));
        let mut want: Vec<_> = all
            .iter()
            .filter(|c| {
                c["end"]
                    .as_f64()
                    .is_some_and(|e| e >= first + lo && e <= first + hi)
            })
            .map(key)
            .collect();
        let mut got_keys: Vec<_> = got.iter().map(key).collect();
        want.sort();
        got_keys.sort();
        assert!(want.len() > 50, "{from}..{to}: {}", want.len());
        assert_eq!(got_keys, want, "{from}..{to}");
        // The same records as the whole replay's.
        for c in &got {
            assert!(all.contains(c), "{from}..{to}: {c}");
        }
        assert!(
            text(&out.stderr).contains(&format!("{} of ", want.len())),
            "{}",
            text(&out.stderr)
        );
        let (v, _) = json(&[
            "replay",
            cap,
            "--from",
            &from,
            "--to",
            &to,
            "--summary-json",
            "-",
        ]);
        let d = v["capture"]["duration_s"].as_f64().expect("duration");
        assert!(
            (d - (hi - lo)).abs() < 0.01,
            "{from}..{to}: over the range, {d}"
        );
        assert_eq!(
            v["totals"]["calls"].as_u64(),
            Some(want.len() as u64),
            "{}",
            v["totals"]
        );
    }
    let out = grpctap(&["replay", cap, "--from", "yesterday"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("+OFFSET"),
        "{}",
        text(&out.stderr)
    );
}
