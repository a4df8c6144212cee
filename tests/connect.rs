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
