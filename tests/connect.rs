//! gRPC-Web and the Connect protocol over HTTP/2 and HTTP/1.1, from real connect-node peers
//! (testdata/captures/connect-h2-lo.pcap.gz: connect proto and json, GET, gRPC-Web and gRPC
//! on one server; connect-h1-lo.pcap.gz: the same over HTTP/1.1, keep-alive): every call the
//! client logged, with its method, status and message counts, each by its own protocol's
//! rules, never by gRPC's.

mod common;

use serde_json::Value;

/// Every call of `capture` against its client's log: method, message counts, protocol,
/// status and message; returns the calls per protocol.
fn check(capture: &str, log: &str, calls: usize) -> std::collections::BTreeMap<String, u32> {
    let ours = common::replay_lines(&["--metadata", "--calls", "-"], capture);
    let log = std::fs::read_to_string(common::captures().join(log)).expect("log");
    let truth = common::json_lines(&log);
    assert_eq!(truth.len(), calls);
    assert_eq!(ours.len(), truth.len(), "{capture}: every call, no other");
    let mut by_protocol = std::collections::BTreeMap::new();
    for t in &truth {
        let id = t["call_id"].as_u64().expect("id");
        let c = ours
            .iter()
            .find(|c| common::call_id(c) == Some(id))
            .unwrap_or_else(|| panic!("{capture}: call {id} not reported"));
        judge(c, t, capture);
        *by_protocol
            .entry(t["protocol"].as_str().expect("p").to_owned())
            .or_insert(0) += 1;
    }
    // No message was taken for cut short: the end-of-stream envelopes are not messages.
    let summary = common::replay_stdout(&["--summary-json", "-"], capture);
    let v: Value = serde_json::from_str(&summary).expect("json");
    assert!(
        v["capture"]["anomalies"]["message_cut_short"].is_null(),
        "{}",
        v["capture"]
    );
    by_protocol
}

/// One call against the client's log of it: method, message counts, protocol, HTTP version,
/// status and message.
fn judge(c: &Value, t: &Value, capture: &str) {
    let id = &t["call_id"];
    let at = format!(
        "{capture} call {id} ({} {} {} {})",
        t["protocol"], t["codec"], t["http"], t["http_method"]
    );
    assert_eq!(c["method"], t["method"], "{at}");
    // connect-node's HTTP/1.1 server refuses a bidi call (HTTP 505) before the client's
    // chunked request body is complete: its message never reaches the wire.
    let refused = t["message"] == "HTTP 505";
    if refused {
        assert_eq!(c["req_msgs"], 0, "{at}");
    } else {
        assert_eq!(c["req_msgs"], t["req_msgs"], "{at}");
    }
    assert_eq!(c["resp_msgs"], t["resp_msgs"], "{at}");
    assert_eq!(c["protocol"], t["protocol"], "{at}");
    assert_eq!(c["http"], t["http"], "{at}");
    match (t["status"].as_str(), c["status"].as_str()) {
        // A client's reset (HTTP/2) or close (HTTP/1.1) at its deadline, where an expiry
        // and a cancellation look alike: an error whose code only the client knows
        // (docs/calls.md, deadline_near).
        (Some("DEADLINE_EXCEEDED"), None) => {
            assert_eq!(c["status_source"], "deadline_near", "{at}");
            assert_eq!(c["error"], true, "{at}");
        }
        (want, got) => assert_eq!(got, want, "{at}: {c}"),
    }
    if t["status"] != "OK" && t["status"] != "DEADLINE_EXCEEDED" && !refused {
        assert_eq!(c["grpc_message"], t["message"], "{at}");
    }
}

#[test]
fn connect_and_grpc_web_calls_equal_the_client_log() {
    let p = check("connect-h2-lo.pcap.gz", "connect-h2.calls.jsonl", 86);
    assert!(
        p["connect"] >= 40 && p["grpc-web"] >= 18 && p["grpc"] >= 18,
        "{p:?}"
    );
}

#[test]
fn grpc_web_text_from_a_second_implementation() {
    // sonora (python) serves gRPC-Web over HTTP/1.1; the text-mode calls' bodies are base64,
    // one padded piece per frame.
    let p = check("sonora-web-lo.pcap.gz", "sonora-web.calls.jsonl", 12);
    assert_eq!((p["grpc-web"], p["grpc-web-text"]), (6, 6), "{p:?}");
}

#[test]
fn over_http1_too() {
    let p = check("connect-h1-lo.pcap.gz", "connect-h1.calls.jsonl", 60);
    assert!(p["connect"] >= 38 && p["grpc-web"] >= 18, "{p:?}");
    let summary = common::replay_stdout(&["--summary-json", "-"], "connect-h1-lo.pcap.gz");
    let v: Value = serde_json::from_str(&summary).expect("json");
    assert_eq!(v["capture"]["http1_connections"], 18);
    assert_eq!(v["capture"]["other_connections"], 0);
}

/// Errors with details, over Connect (unary proto, JSON and GET: the error body's `details`;
/// streaming: the end-of-stream message), gRPC-Web (the trailer frame's
/// `grpc-status-details-bin`) and gRPC (the trailers), on HTTP/2 and HTTP/1.1: `status_details`
/// holds exactly the details connect-es decoded, in order, with their types; none where the
/// client got none.
#[test]
fn error_details_of_every_protocol_equal_what_the_client_decoded() {
    let capture = "connect-details-lo.pcap.gz";
    let p = check(capture, "connect-details.calls.jsonl", 32);
    assert!(
        p["connect"] >= 20 && p["grpc-web"] >= 8 && p["grpc"] >= 4,
        "{p:?}"
    );
    let ours = common::replay_lines(
        &[
            "--metadata",
            "--bodies",
            "--proto-path",
            "testdata/proto",
            "--calls",
            "-",
        ],
        capture,
    );
    let log = std::fs::read_to_string(common::captures().join("connect-details.calls.jsonl"))
        .expect("log");
    let mut with_details = std::collections::BTreeSet::new();
    for t in common::json_lines(&log) {
        let id = t["call_id"].as_u64().expect("id");
        let c = ours
            .iter()
            .find(|c| common::call_id(c) == Some(id))
            .expect("reported");
        let at = format!("call {id} ({} {} {})", t["protocol"], t["codec"], t["http"]);
        let want = t["details"].as_array().cloned().unwrap_or_default();
        let got = c["status_details"]["details"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        assert_eq!(got.len(), want.len(), "{at}: {}", c["status_details"]);
        for (g, w) in got.iter().zip(&want) {
            let mut g = g.as_object().expect("object").clone();
            let ty = g.remove("@type").expect("@type");
            assert_eq!(
                ty,
                format!("type.googleapis.com/{}", w["type"].as_str().expect("type")),
                "{at}"
            );
            assert_eq!(Value::Object(g), w["value"], "{at}");
        }
        if !want.is_empty() {
            assert_eq!(c["status_details"]["code"], c["grpc_status"], "{at}");
            with_details.insert((
                t["protocol"].as_str().unwrap_or("").to_owned(),
                t["http"].as_str().unwrap_or("").to_owned(),
                t["http_method"].as_str().unwrap_or("").to_owned(),
            ));
        }
    }
    assert_eq!(with_details.len(), 7, "{with_details:?}");
}

/// Joined mid-way, as a tap started on a running host: dropping the first packets of the
/// HTTP/1.1 capture (keep-alive connections carrying Connect and gRPC-Web) at several points,
/// every call that began after the cut is decoded exactly as the client logged it, and no
/// other call is reported with anything the log contradicts.
#[test]
fn http1_joined_mid_way_decodes_every_exchange_that_begins_after_the_join() {
    let capture = "connect-h1-lo.pcap.gz";
    let file = common::captures().join(capture);
    let log =
        std::fs::read_to_string(common::captures().join("connect-h1.calls.jsonl")).expect("log");
    let truth = common::json_lines(&log);
    let dir = std::env::temp_dir().join(format!("grpctap-h1-join-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut judged = 0;
    for skip in [40u64, 120, 200, 280, 360] {
        let cut = common::cut(&file, skip, &dir).expect("cut");
        let first = {
            let mut src = capture::FileSource::open(&cut, 1 << 20).expect("open");
            src.next_packet().expect("read").expect("a packet").ts
        };
        #[allow(clippy::cast_precision_loss)]
        let t0 = first.0 as f64 / 1e9;
        let ours = common::json_lines(&common::replay_file_stdout(
            &["--metadata", "--calls", "-"],
            &cut,
        ));
        let at = format!("{capture} from packet {skip}");
        for c in &ours {
            assert_eq!(c["http"], "1.1", "{at}: {c}");
            let id = common::call_id(c)
                .unwrap_or_else(|| panic!("{at}: a call without its request: {c}"));
            let t = truth.iter().find(|t| t["call_id"] == id).expect("logged");
            judge(c, t, &at);
            judged += 1;
        }
        // Every call the client began after the first packet kept (its request head is in
        // the capture) is there.
        for t in truth
            .iter()
            .filter(|t| t["start"].as_f64().is_some_and(|s| s > t0))
        {
            assert!(
                ours.iter()
                    .any(|c| common::call_id(c) == t["call_id"].as_u64()),
                "{at}: call {} began at {} after the join at {t0} and is not reported",
                t["call_id"],
                t["start"]
            );
        }
        let summary = common::replay_file_stdout(&["--summary-json", "-"], &cut);
        let v: Value = serde_json::from_str(&summary).expect("json");
        assert_eq!(
            v["capture"]["other_connections"], 0,
            "{at}: {}",
            v["capture"]
        );
        let _ = std::fs::remove_file(&cut);
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(judged > 100, "{judged}");
}

/// `Upgrade: h2c` (RFC 7540 3.2): curl upgrades its first request (a gRPC call with its body,
/// or a plain GET) to grpc-go behind golang.org/x/net/http2/h2c, then reuses the connection
/// for more calls as HTTP/2 streams. Every call curl logged is exact, the upgrading request
/// (stream 1, answered in HTTP/2) included.
#[test]
fn h2c_upgrade_is_followed_into_http2() {
    let capture = "go-h2c-lo.pcap.gz";
    let ours = common::replay_lines(&["--calls", "-"], capture);
    let log = std::fs::read_to_string(common::captures().join("go-h2c.calls.jsonl")).expect("log");
    let truth = common::json_lines(&log);
    assert_eq!(truth.len(), 13);
    assert_eq!(ours.len(), truth.len(), "every call, no other");
    assert!(truth.iter().filter(|t| t["upgrade"] == true).count() >= 3);
    for t in &truth {
        let at = format!("{capture} conn {} stream {}", t["conn"], t["stream"]);
        let c = ours
            .iter()
            .find(|c| c["conn"] == t["conn"] && c["stream_id"] == t["stream"])
            .unwrap_or_else(|| panic!("{at}: not reported"));
        for (ours, theirs) in [
            ("method", "method"),
            ("status", "status"),
            ("req_msgs", "req_msgs"),
            ("resp_msgs", "resp_msgs"),
            ("protocol", "protocol"),
            ("http", "http"),
        ] {
            assert_eq!(c[ours], t[theirs], "{at}: {ours}");
        }
        assert_eq!(c["status_confidence"], "exact", "{at}");
        assert!(
            c["reset"].is_null(),
            "{at}: curl's RST_STREAM after the trailers is no cancel"
        );
        if t["status"] != "OK" {
            assert_eq!(c["grpc_message"], t["message"], "{at}");
        }
    }
    let summary = common::replay_stdout(&["--summary-json", "-"], capture);
    let v: Value = serde_json::from_str(&summary).expect("json");
    let cap = &v["capture"];
    assert_eq!(cap["http2_connections"], 4, "{cap}");
    assert_eq!(cap["h2c_upgrades"], 4, "{cap}");
    assert_eq!(cap["http1_connections"], 0, "{cap}");
    assert!(
        cap["anomalies"].as_object().is_none_or(|a| a.is_empty()),
        "{cap}"
    );
    // The upgraded GET is a request, not a call.
    assert_eq!(cap["requests_not_grpc"]["other"], 1, "{cap}");
    let text = common::replay_stdout(&[], capture);
    assert!(
        text.contains("4 HTTP/2 (4 upgraded from HTTP/1.1)"),
        "{text}"
    );
}

/// `--metrics-protocol-label`: the handled series per protocol count the calls of each, as the
/// client logged them (a deadline the wire cannot tell from a cancel is
/// DeadlineExceededOrCanceled).
#[test]
fn metrics_carry_the_protocol_when_asked() {
    for (capture, log) in [
        ("connect-h2-lo.pcap.gz", "connect-h2.calls.jsonl"),
        ("connect-h1-lo.pcap.gz", "connect-h1.calls.jsonl"),
    ] {
        let text = common::replay_stdout(
            &["--metrics-protocol-label", "--metrics-text", "-"],
            capture,
        );
        let mut got = std::collections::BTreeMap::new();
        for l in text
            .lines()
            .filter(|l| l.starts_with("grpc_server_handled_total{"))
        {
            let label = |name: &str| {
                let start = l.find(&format!("{name}=\"")).expect("label") + name.len() + 2;
                l[start..].split('"').next().expect("value").to_owned()
            };
            let n: u64 = l
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse().ok())
                .expect("value");
            *got.entry((label("rpc_protocol"), label("grpc_code") != "OK"))
                .or_insert(0) += n;
        }
        let log = std::fs::read_to_string(common::captures().join(log)).expect("log");
        let mut want = std::collections::BTreeMap::new();
        for t in common::json_lines(&log) {
            let key = (
                t["protocol"].as_str().expect("p").to_owned(),
                t["status"] != "OK",
            );
            *want.entry(key).or_insert(0) += 1;
        }
        assert_eq!(got, want, "{capture}: calls and errors per protocol");
    }
}

/// `--bodies` decodes every protocol's messages (Connect's JSON codec as JSON, compressed
/// bodies decompressed): the echo server answers each request with its `message` and the
/// client's address as it saw it, which the client logged.
#[test]
fn bodies_of_every_protocol_decode() {
    let proto = common::root().join("testdata/proto");
    for (capture, log) in [
        ("connect-h2-lo.pcap.gz", "connect-h2.calls.jsonl"),
        ("connect-h1-lo.pcap.gz", "connect-h1.calls.jsonl"),
        ("sonora-web-lo.pcap.gz", "sonora-web.calls.jsonl"),
    ] {
        let ours = common::replay_lines(
            &[
                "--bodies",
                "--metadata",
                "--proto-path",
                proto.to_str().expect("path"),
                "--calls",
                "-",
            ],
            capture,
        );
        let log = std::fs::read_to_string(common::captures().join(log)).expect("log");
        let truth = common::json_lines(&log);
        let mut checked = std::collections::BTreeMap::new();
        for c in &ours {
            let id = common::call_id(c).expect("call id");
            let t = truth.iter().find(|t| t["call_id"] == id).expect("logged");
            let (Some(reqs), Some(resps)) = (c["requests"].as_array(), c["responses"].as_array())
            else {
                panic!("{capture} {id}: bodies");
            };
            assert_eq!(
                resps.len() as u64,
                c["resp_msgs"].as_u64().expect("n"),
                "{capture} {id}"
            );
            // The echo answers unary and server-streaming calls with the request's message.
            let method = c["method"].as_str().expect("method");
            if !(method.ends_with("/Unary") || method.ends_with("/ServerStream")) {
                continue;
            }
            let Some(req) = reqs.first() else {
                assert_eq!(
                    t["http_method"], "GET",
                    "{capture} {id}: only a GET has no body"
                );
                continue;
            };
            for r in resps {
                assert_eq!(r["message"], req["message"], "{capture} {id}: {r}");
                if let Some(peer) = t["client_peer"].as_str() {
                    assert_eq!(r["peer"], peer, "{capture} {id}");
                }
            }
            if !resps.is_empty() {
                *checked
                    .entry(c["protocol"].as_str().expect("p").to_owned())
                    .or_insert(0) += 1;
            }
        }
        assert!(
            checked.len() >= 2 && checked.values().all(|n| *n >= 4),
            "{capture}: {checked:?}"
        );
    }
}

/// `--messages` writes every message of every protocol (a Connect GET's request is in its
/// query, not a body, and is not written).
#[test]
fn messages_of_every_protocol_are_written() {
    for (capture, log) in [
        ("connect-h2-lo.pcap.gz", "connect-h2.calls.jsonl"),
        ("connect-h1-lo.pcap.gz", "connect-h1.calls.jsonl"),
        ("sonora-web-lo.pcap.gz", "sonora-web.calls.jsonl"),
    ] {
        let calls = common::replay_lines(&["--calls", "-"], capture);
        let messages = common::replay_lines(&["--messages", "-"], capture);
        let log = std::fs::read_to_string(common::captures().join(log)).expect("log");
        let gets = common::json_lines(&log)
            .iter()
            .filter(|t| t["http_method"] == "GET")
            .count() as u64;
        let total: u64 = calls
            .iter()
            .map(|c| c["req_msgs"].as_u64().expect("n") + c["resp_msgs"].as_u64().expect("n"))
            .sum();
        assert_eq!(messages.len() as u64, total - gets, "{capture}");
        for m in &messages {
            assert!(m["message"].get("error").is_none(), "{capture}: {m}");
        }
    }
}
