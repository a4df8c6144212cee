//! Hostile traffic through the real binary: hand-built captures (what no real stack sends),
//! each run with a time bound and its peak memory read from `--stats`; the bad connection is
//! bounded and reported, and a normal call on another connection in the same capture still
//! decodes.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::craft::{self, Craft, h2};
use serde_json::Value;

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("grpctap-hostile-{}", std::process::id()));
    std::fs::create_dir_all(&d).expect("tmp");
    d.join(name)
}

/// Runs `grpctap replay --stats ARGS FILE`: (stdout, stderr, peak RSS in MiB, time taken).
fn run(args: &[&str], file: &std::path::Path) -> (String, String, f64, Duration) {
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .arg("replay")
        .arg("--stats")
        .args(args)
        .arg(file)
        .output()
        .expect("run grpctap");
    let took = started.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let rss = stderr
        .split("peak RSS ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in {stderr}"));
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
        rss,
        took,
    )
}

/// A normal call on its own connection, to check it survives whatever else is in the capture.
fn normal_call(c: &mut Craft, t: u64) {
    let mut f = c.open(41000, t);
    craft::handshake(c, &mut f, t);
    craft::unary(c, &mut f, 1, b"/pkg.Normal/Call", t + 1_000_000, "0");
    c.close(&mut f, t + 5_000_000);
}

fn gzip(b: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(b).expect("gz");
    gz.finish().expect("gz")
}

#[test]
fn json_amplification_is_bounded_and_counted() {
    // 8 messages in one call, each a small gzip that inflates to 4 MiB of tiny nested
    // submessages (a million fields each): without output bounds, gigabytes of JSON nodes.
    let bomb = gzip(&[0x0a, 0x02, 0x08, 0x00].repeat(1 << 20));
    let mut c = Craft::default();
    let t = 1_000_000_000;
    let mut f = c.open(40000, t);
    craft::handshake(&mut c, &mut f, t);
    let req = craft::block(&[
        (":method", b"POST"),
        (":scheme", b"http"),
        (":path", b"/pkg.Bomb/Stream"),
        ("content-type", b"application/grpc"),
        ("grpc-encoding", b"gzip"),
    ]);
    c.send(
        &mut f,
        true,
        t,
        &craft::frame(h2::HEADERS, h2::END_HEADERS, 1, &req),
    );
    let mut prefixed = vec![1];
    prefixed.extend(u32::try_from(bomb.len()).expect("len").to_be_bytes());
    prefixed.extend(&bomb);
    for i in 0..8u64 {
        for chunk in prefixed.chunks(16_000) {
            c.send(&mut f, true, t + i, &craft::frame(h2::DATA, 0, 1, chunk));
        }
    }
    c.send(
        &mut f,
        true,
        t + 100,
        &craft::frame(h2::DATA, h2::END_STREAM, 1, &[]),
    );
    let resp = craft::block(&[(":status", b"200"), ("grpc-status", b"0")]);
    c.send(
        &mut f,
        false,
        t + 200,
        &craft::frame(h2::HEADERS, h2::END_HEADERS | h2::END_STREAM, 1, &resp),
    );
    c.close(&mut f, t + 300);
    normal_call(&mut c, t + 400);
    let file = tmp("bomb.pcap");
    c.write(&file);

    let (stdout, _, rss, took) = run(&["--calls", "-", "--bodies"], &file);
    let calls = common::json_lines(&stdout);
    let bomb = calls
        .iter()
        .find(|c| c["method"] == "/pkg.Bomb/Stream")
        .expect("the bomb call");
    let requests = bomb["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 8);
    assert!(
        requests.iter().all(|m| m["truncated"] == true),
        "{}",
        requests[0]
    );
    let normal = calls
        .iter()
        .find(|c| c["method"] == "/pkg.Normal/Call")
        .expect("the normal call");
    assert_eq!(normal["responses"][0], serde_json::json!({"1": "ok"}));
    assert!(rss < 512.0, "peak RSS {rss} MiB");
    assert!(took < Duration::from_secs(120), "{took:?}");
    // Counted: the summary's payload errors.
    let (summary, _, _, _) = run(
        &["--calls", "/dev/null", "--summary-json", "-", "--bodies"],
        &file,
    );
    let v: Value = serde_json::from_str(&summary).expect("json");
    assert!(
        v["capture"]["payload_errors"]
            .as_u64()
            .is_some_and(|n| n == 8),
        "{}",
        v["capture"]
    );
}

#[test]
fn a_timestamp_far_off_drives_nothing() {
    // Calls on one connection; between them, one packet stamped 30 days ahead and one 30 years
    // back (on another connection). Without a guard: every connection expired as idle, a month
    // in a latency histogram, and an OpenMetrics backfill that samples every step of the jump.
    const S: u64 = 1_000_000_000;
    let t = 1_700_000_000 * S;
    let mut c = Craft::default();
    let mut f = c.open(40000, t);
    craft::handshake(&mut c, &mut f, t);
    craft::unary(&mut c, &mut f, 1, b"/pkg.Svc/Before", t + S, "0");
    let mut odd = c.open(40001, t + 2 * S);
    let one = craft::frame(h2::SETTINGS, 0, 0, &[]);
    c.send(&mut odd, true, t + 30 * 86_400 * S, &one);
    craft::unary(&mut c, &mut f, 3, b"/pkg.Svc/Between", t + 3 * S, "0");
    c.send(&mut odd, true, t - 30 * 365 * 86_400 * S, &one);
    craft::unary(&mut c, &mut f, 5, b"/pkg.Svc/After", t + 4 * S, "0");
    c.close(&mut f, t + 5 * S);
    normal_call(&mut c, t + 6 * S);
    let file = tmp("time.pcap");
    c.write(&file);
    let om = tmp("time.om");

    let (stdout, _, rss, took) = run(
        &[
            "--calls",
            "-",
            "--openmetrics",
            om.to_str().expect("path"),
            "--openmetrics-step",
            "15",
        ],
        &file,
    );
    let calls = common::json_lines(&stdout);
    let on_f: Vec<&Value> = calls
        .iter()
        .filter(|c| c["conn"] == calls[0]["conn"])
        .collect();
    assert_eq!(
        on_f.len(),
        3,
        "one connection, not split by an idle expiry: {calls:?}"
    );
    for c in &calls {
        assert!(c["duration_s"].as_f64().is_some_and(|d| d < 1.0), "{c}");
        assert_eq!(c["status"], "OK", "{c}");
    }
    let om_len = std::fs::metadata(&om).expect("openmetrics file").len();
    assert!(om_len < 1 << 20, "{om_len} bytes of OpenMetrics");
    assert!(rss < 256.0, "peak RSS {rss} MiB");
    assert!(took < Duration::from_secs(60), "{took:?}");
    let (summary, _, _, _) = run(&["--summary-json", "-"], &file);
    let v: Value = serde_json::from_str(&summary).expect("json");
    assert_eq!(v["capture"]["time_jumps"], 2, "{}", v["capture"]);
    let (table, _, _, _) = run(&[], &file);
    assert!(
        table.contains("2 packets with a timestamp far off the others"),
        "{table}"
    );
}

/// Request headers as literals, then `extra` (raw HPACK representations).
fn request_block(path: &[u8], extra: &[u8]) -> Vec<u8> {
    let mut b = craft::block(&[
        (":method", b"POST"),
        (":scheme", b"http"),
        (":path", path),
        ("content-type", b"application/grpc"),
    ]);
    b.extend_from_slice(extra);
    b
}

#[test]
fn state_kept_for_open_calls_is_bounded_across_connections() {
    // One 250-byte metadata value put in the header table, then 5,000 streams that each refer
    // to it 64 times with one byte, and stay open: with --metadata, 90 MB of kept state from
    // under a megabyte of capture.
    let t = 1_000_000_000;
    let mut c = Craft::default();
    let mut f = c.open(40000, t);
    craft::handshake(&mut c, &mut f, t);
    let mut insert = vec![0x40, 5];
    insert.extend(b"x-pad");
    insert.extend([0x7f, 250 - 127]);
    insert.extend([b'v'; 250]);
    let first = request_block(b"/pkg.Heavy/Open", &insert);
    c.send(
        &mut f,
        true,
        t,
        &craft::frame(h2::HEADERS, h2::END_HEADERS, 1, &first),
    );
    let refs = [0xbe; 64]; // index 62: the newest dynamic entry
    let block = request_block(b"/pkg.Heavy/Open", &refs);
    for i in 1..5_000u32 {
        let frame = craft::frame(h2::HEADERS, h2::END_HEADERS, 1 + 2 * i, &block);
        c.send(&mut f, true, t + u64::from(i), &frame);
    }
    normal_call(&mut c, t + 10_000_000);
    let file = tmp("state.pcap");
    c.write(&file);

    let (stdout, _, rss, took) = run(
        &["--calls", "-", "--metadata", "--max-kept-bytes", "8000000"],
        &file,
    );
    let calls = common::json_lines(&stdout);
    let heavy: Vec<&Value> = calls
        .iter()
        .filter(|c| c["method"] == "/pkg.Heavy/Open")
        .collect();
    assert_eq!(heavy.len(), 5_000, "every call still counted");
    let kept = heavy
        .iter()
        .filter(|c| {
            c["metadata"]["request"]
                .as_array()
                .is_some_and(|a| a.len() == 64)
        })
        .count();
    // Shed: no field kept, all of them (content-type and the 64 references) said to be left out.
    let shed = heavy
        .iter()
        .filter(|c| {
            c["metadata"]["request"]
                .as_array()
                .is_some_and(Vec::is_empty)
                && c["metadata"]["dropped"] == 65
        })
        .count();
    assert!((300..600).contains(&kept), "{kept} kept");
    assert_eq!(kept + shed + 1, 5_000, "the first call holds one field");
    // The normal call on another connection is still decoded, while the heavy ones stay open.
    let normal = calls
        .iter()
        .find(|c| c["method"] == "/pkg.Normal/Call")
        .expect("normal call");
    assert_eq!(normal["status"], "OK");
    assert!(rss < 128.0, "peak RSS {rss} MiB");
    assert!(took < Duration::from_secs(60), "{took:?}");
    let (summary, _, _, _) = run(
        &[
            "--summary-json",
            "-",
            "--metadata",
            "--max-kept-bytes",
            "8000000",
        ],
        &file,
    );
    let v: Value = serde_json::from_str(&summary).expect("json");
    let anomalies = &v["capture"]["anomalies"];
    assert!(
        anomalies["state_shed"].as_u64().is_some_and(|n| n >= 4_400),
        "{anomalies}"
    );
}

#[test]
fn a_stream_that_ends_inside_a_message_is_flagged() {
    // The server's message prefix announces 4 GB; three bytes follow, then the trailers.
    let t = 1_000_000_000;
    let mut c = Craft::default();
    let mut f = c.open(40000, t);
    craft::handshake(&mut c, &mut f, t);
    let req = request_block(b"/pkg.Short/Call", &[]);
    let mut client = craft::frame(h2::HEADERS, h2::END_HEADERS, 1, &req);
    client.extend(craft::frame(
        h2::DATA,
        h2::END_STREAM,
        1,
        &craft::grpc_message(b"hi"),
    ));
    c.send(&mut f, true, t, &client);
    let mut server = craft::frame(
        h2::HEADERS,
        h2::END_HEADERS,
        1,
        &craft::block(&[(":status", b"200")]),
    );
    server.extend(craft::frame(
        h2::DATA,
        0,
        1,
        &[0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3],
    ));
    server.extend(craft::frame(
        h2::HEADERS,
        h2::END_HEADERS | h2::END_STREAM,
        1,
        &craft::block(&[("grpc-status", b"0")]),
    ));
    c.send(&mut f, false, t + 1_000_000, &server);
    c.close(&mut f, t + 2_000_000);
    normal_call(&mut c, t + 3_000_000);
    let file = tmp("cut-short.pcap");
    c.write(&file);
    let (summary, _, _, _) = run(&["--summary-json", "-"], &file);
    let v: Value = serde_json::from_str(&summary).expect("json");
    assert_eq!(
        v["capture"]["anomalies"]["message_cut_short"], 1,
        "{}",
        v["capture"]
    );
    let (calls, _, _, _) = run(&["--calls", "-"], &file);
    let calls = common::json_lines(&calls);
    let short = calls
        .iter()
        .find(|c| c["method"] == "/pkg.Short/Call")
        .expect("call");
    assert_eq!(
        (short["status"].clone(), short["resp_msgs"].clone()),
        ("OK".into(), 0.into())
    );
    assert!(
        calls
            .iter()
            .any(|c| c["method"] == "/pkg.Normal/Call" && c["status"] == "OK")
    );
}

/// `--connections-json` of a file: its capture counters.
fn capture_of(file: &std::path::Path) -> (Value, String) {
    let (out, err, _, _) = run(&["--connections-json", "-"], file);
    let v: Value = serde_json::from_str(&out).expect("json");
    (v["capture"].clone(), err)
}

#[test]
fn a_bad_pcapng_block_is_skipped_and_the_rest_is_read() {
    // A real pcapng; one enhanced packet block's captured length made absurd, its block
    // length left intact.
    let real = common::captures().join("py-basic-multi.pcapng");
    let mut d = std::fs::read(&real).expect("read");
    let mut at = 0;
    let mut epbs = Vec::new();
    while at + 12 <= d.len() {
        let word = |i: usize| u32::from_le_bytes(d[i..i + 4].try_into().expect("4"));
        if word(at) == 6 {
            epbs.push(at);
        }
        at += word(at + 4) as usize;
    }
    let bad = epbs[epbs.len() / 2];
    d[bad + 20..bad + 24].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let file = tmp("bad-block.pcapng");
    std::fs::write(&file, &d).expect("write");
    let (whole, _) = capture_of(&real);
    let (ours, err) = capture_of(&file);
    assert_eq!(
        ours["packets"],
        whole["packets"].as_u64().expect("n") - 1,
        "{err}"
    );
    assert!(
        err.contains(&format!("1 pcapng blocks skipped whose length was sound but whose contents were not (the first at byte {bad}")),
        "{err}"
    );
}

#[test]
fn snaplen_zero_and_packets_past_the_snaplen_are_remarked() {
    let real = common::captures().join("py-basic-lo.pcap");
    let d = std::fs::read(&real).expect("read");
    let calls = |file: &std::path::Path| run(&["--calls", "-"], file);
    let (want, _, _, _) = calls(&real);
    // snaplen 0 in the file header: read as they are, and said.
    let mut zero = d.clone();
    zero[16..20].copy_from_slice(&0u32.to_le_bytes());
    let file = tmp("snaplen0.pcap");
    std::fs::write(&file, &zero).expect("write");
    let (got, err, _, _) = calls(&file);
    assert_eq!(got, want);
    assert!(err.contains("the file header says snaplen 0"), "{err}");
    // snaplen 100 while packets are longer: counted.
    let mut small = d.clone();
    small[16..20].copy_from_slice(&100u32.to_le_bytes());
    let mut longer = 0;
    let mut at = 24;
    while at + 16 <= d.len() {
        let caplen = u32::from_le_bytes(d[at + 8..at + 12].try_into().expect("4")) as usize;
        longer += usize::from(caplen > 100);
        at += 16 + caplen;
    }
    assert!(longer > 10);
    let file = tmp("snaplen100.pcap");
    std::fs::write(&file, &small).expect("write");
    let (got, err, _, _) = calls(&file);
    assert_eq!(got, want);
    assert!(
        err.contains(&format!("{longer} packets are longer than the snaplen")),
        "{err}"
    );
}

#[test]
fn decoder_state_across_connections_is_bounded() {
    // 60 connections, each with a header block it never finishes: HEADERS and CONTINUATION
    // frames of 16 KiB, 960 KiB of them, held while the block is assembled (60 MiB in all).
    let t = 1_000_000_000;
    let mut c = Craft::default();
    let chunk = vec![0u8; 16 << 10];
    for i in 0..60u16 {
        let mut f = c.open(30000 + i, t);
        craft::handshake(&mut c, &mut f, t);
        let mut bytes = craft::frame(h2::HEADERS, 0, 1, &chunk);
        for _ in 0..59 {
            bytes.extend(craft::frame(0x9, 0, 1, &chunk));
        }
        c.send(&mut f, true, t + u64::from(i) * 1000, &bytes);
    }
    normal_call(&mut c, t + 10_000_000);
    let file = tmp("decoder-state.pcap");
    c.write(&file);
    let summary = |bound: &str| {
        let (out, _, rss, took) = run(
            &["--summary-json", "-", "--max-decoder-bytes", bound],
            &file,
        );
        let v: Value = serde_json::from_str(&out).expect("json");
        assert!(took < Duration::from_secs(60), "{took:?}");
        (v, rss)
    };
    let (free, free_rss) = summary("1000000000");
    let (bounded, bounded_rss) = summary("8000000");
    assert!(
        free["capture"]["anomalies"]["conn_state_shed"].is_null(),
        "{free}"
    );
    let shed = bounded["capture"]["anomalies"]["conn_state_shed"]
        .as_u64()
        .expect("shed");
    assert!(shed >= 40, "{shed} connections shed");
    assert!(
        free_rss - bounded_rss > 30.0,
        "peak RSS {free_rss} MiB unbounded, {bounded_rss} MiB bounded"
    );
    // The normal call on its own connection is still decoded.
    let normal = bounded["methods"]
        .as_array()
        .expect("methods")
        .iter()
        .find(|m| m["method"] == "/pkg.Normal/Call")
        .expect("normal call");
    assert_eq!(normal["status"]["OK"], 1);
}

#[test]
fn hostile_http1_is_bounded_and_the_rest_decodes() {
    let t = 1_000_000_000;
    let mut c = Craft::default();
    // Endless header lines: the head bound ends that connection.
    let mut f = c.open(42001, t);
    let mut head = b"POST /pkg.Web/Flood HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..20_000 {
        head.extend(format!("x-pad-{i}: {}\r\n", "v".repeat(20)).as_bytes());
    }
    c.send(&mut f, true, t, &head);
    // A chunk size of 2^64 and more: bounded, that connection given up.
    let mut f = c.open(42002, t);
    c.send(
        &mut f,
        true,
        t,
        b"POST /pkg.Web/Big HTTP/1.1\r\nHost: h\r\nContent-Type: application/grpc-web+proto\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nabc",
    );
    // Content-Length with Transfer-Encoding (a smuggling shape): chunked wins (RFC 9112 6.3),
    // so the second request inside the chunk is not taken for one.
    let mut f = c.open(42003, t);
    let body = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut req = format!(
        "POST /pkg.Web/Call HTTP/1.1\r\nHost: h\r\nContent-Type: application/grpc-web+proto\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req.extend_from_slice(b"\r\n0\r\n\r\n");
    c.send(&mut f, true, t + 1_000, &req);
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/grpc-web+proto\r\nContent-Length: 20\r\n\r\n".to_vec();
    resp.push(0x80);
    resp.extend(15u32.to_be_bytes());
    resp.extend_from_slice(b"grpc-status:0\r\n");
    c.send(&mut f, false, t + 2_000, &resp);
    c.close(&mut f, t + 3_000);
    // A response without a length on a keep-alive connection runs to the close.
    let mut f = c.open(42004, t);
    c.send(
        &mut f,
        true,
        t,
        b"POST /pkg.Web/Open HTTP/1.1\r\nHost: h\r\nContent-Type: application/grpc-web+proto\r\nContent-Length: 0\r\n\r\n",
    );
    let mut open = b"HTTP/1.1 200 OK\r\nContent-Type: application/grpc-web+proto\r\n\r\n".to_vec();
    open.extend(craft::grpc_message(b"\x0a\x01x"));
    c.send(&mut f, false, t + 1_000, &open);
    normal_call(&mut c, t + 10_000_000);
    let file = tmp("http1.pcap");
    c.write(&file);
    let (out, _, rss, took) = run(&["--calls", "-"], &file);
    let calls = common::json_lines(&out);
    assert!(
        took < Duration::from_secs(30) && rss < 128.0,
        "{took:?} {rss} MiB"
    );
    let by = |m: &str| calls.iter().find(|c| c["method"] == m);
    assert!(
        by("/pkg.Web/Flood").is_none(),
        "the endless head is no call"
    );
    assert!(by("/smuggled").is_none(), "a chunk's bytes are no request");
    let call = by("/pkg.Web/Call").expect("the call with both lengths");
    assert_eq!(call["status"], "OK");
    assert_eq!(call["protocol"], "grpc-web");
    let big = by("/pkg.Web/Big").expect("the call with a huge chunk");
    assert_eq!(big["status"], Value::Null, "{big}");
    let open = by("/pkg.Web/Open").expect("the response to the close");
    assert_eq!(open["resp_msgs"], 1);
    let normal = by("/pkg.Normal/Call").expect("normal call");
    assert_eq!(normal["status"], "OK");
    let (summary, _, _, _) = run(&["--summary-json", "-"], &file);
    let v: Value = serde_json::from_str(&summary).expect("json");
    let anomalies = &v["capture"]["anomalies"];
    assert!(
        anomalies["frame_too_large"].as_u64() >= Some(1),
        "{anomalies}"
    );
    assert!(
        anomalies["malformed_frame"].as_u64() >= Some(1),
        "{anomalies}"
    );
}
