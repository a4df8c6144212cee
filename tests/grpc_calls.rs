//! Every call grpctap finds in the real captures, compared with what the client logged when the
//! capture was made (`testdata/captures/*.calls.jsonl`): per connection, in start order, the
//! method, final status, message counts, call type, deadline, and timing.

use std::collections::BTreeMap;

use serde_json::Value;

mod common;
use common::{captures, replay_lines, replay_stdout, root};

fn our_calls(file: &str) -> Vec<Value> {
    common::replay_lines(&["--metadata", "--calls", "-"], file)
}

fn truth(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(captures().join(file)).expect("calls.jsonl");
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|v| v.get("method").is_some()) // other lines annotate calls (trace ids)
        .collect()
}

fn port_of_peer(peer: &str) -> u16 {
    peer.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

fn port_of_addr(addr: &str) -> u16 {
    addr.parse::<std::net::SocketAddr>().expect("addr").port()
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

/// The call type each method of the test service has.
fn call_type_of(method: &str) -> &'static str {
    match method.rsplit('/').next() {
        Some("Unary") => "unary",
        Some("ServerStream") => "server_stream",
        Some("ClientStream") => "client_stream",
        Some("Bidi") => "bidi_stream",
        other => panic!("unexpected method {other:?}"),
    }
}

struct Expect {
    /// Calls logged before the capture started are not in it.
    skip_before_capture: bool,
    /// Header table entries from before the capture hide some methods and statuses.
    joined_mid_connection: bool,
}

fn compare(capture: &str, log: &str, expect: Expect) -> usize {
    let ours = our_calls(capture);
    let mut truth = truth(log);
    let first_seen = ours
        .iter()
        .filter_map(|c| c["start"].as_f64())
        .fold(f64::INFINITY, f64::min);
    if expect.skip_before_capture {
        truth.retain(|t| f(&t["start"]) > first_seen - 0.005);
    }
    // Connection index (client log) -> client port (from the address the server saw).
    let mut port_of: BTreeMap<u64, u16> = BTreeMap::new();
    for t in &truth {
        if let Some(p) = t["client_peer"].as_str() {
            port_of.insert(t["conn"].as_u64().expect("conn"), port_of_peer(p));
        }
    }
    let mut checked = 0;
    for (conn, port) in &port_of {
        let mut want: Vec<&Value> = truth
            .iter()
            .filter(|t| t["conn"].as_u64() == Some(*conn))
            .collect();
        let mut got: Vec<&Value> = ours
            .iter()
            .filter(|c| {
                let (a, b) = (
                    port_of_addr(c["client"].as_str().expect("client")),
                    port_of_addr(c["server"].as_str().expect("server")),
                );
                a == *port || b == *port
            })
            .collect();
        // Concurrent calls start in the same instant: pair them by the x-call-id the client
        // sent and logged, where there is one; by start time otherwise.
        let id = common::call_id;
        if want.iter().all(|w| w["call_id"].is_u64()) && got.iter().all(|g| id(g).is_some()) {
            want.sort_by_key(|w| w["call_id"].as_u64());
            got.sort_by_key(|g| id(g));
        } else {
            want.sort_by(|a, b| f(&a["start"]).total_cmp(&f(&b["start"])));
            got.sort_by(|a, b| f(&a["start"]).total_cmp(&f(&b["start"])));
        }
        assert_eq!(
            got.len(),
            want.len(),
            "{capture}: calls on the connection from port {port}"
        );
        for (g, w) in got.iter().zip(&want) {
            let ctx = format!("{capture} port {port} stream {}", g["stream_id"]);
            let method = w["method"].as_str().expect("method");
            match g["method"].as_str() {
                Some(m) => assert_eq!(m, method, "{ctx}"),
                None => assert!(expect.joined_mid_connection, "{ctx}: method lost"),
            }
            // tonic reports its own client-side deadline as CANCELLED "Timeout expired" (a tonic
            // choice, grpc-rust PR #1826); on the wire it is RST_STREAM(CANCEL) at the
            // deadline, which gRPC's status rules call DEADLINE_EXCEEDED.
            // The same tonic timeout can also reach the wire from tonic's server, which enforces
            // grpc-timeout and answers with grpc-status 1 "Timeout expired": then the wire's
            // status is the status.
            let tonic_deadline = w["status"] == "CANCELLED" && w["message"] == "Timeout expired";
            let server_said_it = g["grpc_status"] == 1 && g["grpc_message"] == "Timeout expired";
            let want_status = if tonic_deadline && !server_said_it {
                "DEADLINE_EXCEEDED"
            } else {
                w["status"].as_str().expect("status")
            };
            match g["status"].as_str() {
                Some(s) => assert_eq!(s, want_status, "{ctx}"),
                // A cancel near the deadline: an error, DEADLINE_EXCEEDED or CANCELLED.
                None if g["status_source"] == "deadline_near" => {
                    assert!(
                        ["DEADLINE_EXCEEDED", "CANCELLED"].contains(&want_status),
                        "{ctx}: {want_status} near the deadline"
                    );
                    assert_eq!(g["error"], true, "{ctx}");
                }
                None => {
                    assert!(expect.joined_mid_connection, "{ctx}: status lost");
                    assert_eq!(g["status_source"], "hpack_unknown", "{ctx}");
                }
            }
            assert_eq!(g["req_msgs"], w["req_msgs"], "{ctx}: request messages");
            assert_eq!(g["resp_msgs"], w["resp_msgs"], "{ctx}: response messages");
            if w["status"] == "OK" {
                assert_eq!(g["call_type"], call_type_of(method), "{ctx}");
            }
            match w["timeout_s"].as_f64() {
                // The wire carries what is left of the deadline when the headers are written,
                // rounded up to the unit used (gRPC C-core sends "101m" for a 100 ms deadline).
                Some(t) => {
                    let wire = f(&g["timeout_s"]);
                    assert!(
                        wire >= t - 0.005 && wire <= t * 1.02 + 0.002,
                        "{ctx}: timeout {wire} for {t}"
                    );
                }
                None => assert!(g["timeout_s"].is_null(), "{ctx}: timeout"),
            }
            if want_status == "DEADLINE_EXCEEDED" {
                // Either the server's deadline fired first and it said so on the wire, or the
                // client's did and it reset the stream (CANCEL at the deadline).
                match g["status_source"].as_str() {
                    Some("deadline" | "deadline_near") => {
                        assert_eq!(g["reset"]["code_name"], "CANCEL", "{ctx}")
                    }
                    Some("trailers" | "trailers_only") => assert_eq!(g["grpc_status"], 4, "{ctx}"),
                    other => panic!("{ctx}: deadline from {other:?}"),
                }
            }
            // The wire sees the call inside the client's own measurement of it.
            assert!(f(&g["start"]) >= f(&w["start"]) - 0.002, "{ctx}: start");
            assert!(f(&g["end"]) <= f(&w["end"]) + 0.002, "{ctx}: end");
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        truth.len(),
        "{capture}: every logged call was matched"
    );
    checked
}

const FULL: Expect = Expect {
    skip_before_capture: false,
    joined_mid_connection: false,
};

#[test]
fn loopback_pcap_matches_the_client_log() {
    assert_eq!(
        compare("py-basic-lo.pcap", "py-basic.calls.jsonl", FULL),
        16
    );
}

#[test]
fn pcapng_with_every_packet_twice_matches_the_client_log() {
    assert_eq!(
        compare("py-basic-multi.pcapng", "py-basic.calls.jsonl", FULL),
        16
    );
}

#[test]
fn ipv6_sll2_gzip_matches_the_client_log() {
    assert_eq!(
        compare("py-v6-any.pcap.gz", "py-v6-any.calls.jsonl", FULL),
        8
    );
}

#[test]
fn ethernet_mixed_workload_matches_the_client_log() {
    assert_eq!(
        compare("py-mixed-veth.pcap", "py-mixed-veth.calls.jsonl", FULL),
        660
    );
}

#[test]
fn mid_connection_join_keeps_counts_and_never_guesses() {
    let n = compare(
        "py-midstream.pcap",
        "py-midstream.calls.jsonl",
        Expect {
            skip_before_capture: true,
            joined_mid_connection: true,
        },
    );
    assert_eq!(n, 240);
}

#[test]
fn hard_cases_match_the_client_log() {
    // Every status code, big metadata, 4 MiB messages, a cancellation, 270 concurrent calls on
    // two connections, keepalive PINGs, and a graceful GOAWAY with a call in flight.
    assert_eq!(
        compare("py-edge-lo.pcap.gz", "py-edge.calls.jsonl", FULL),
        292
    );
    let ours = our_calls("py-edge-lo.pcap.gz");
    let cancelled = ours
        .iter()
        .find(|c| c["method"] == "/grpctap.test.Echo/ServerStream")
        .expect("stream");
    assert_eq!(cancelled["status_source"], "reset");
    assert_eq!(cancelled["reset"]["by"], "client");
    let meta = ours
        .iter()
        .find(|c| c.to_string().contains("x-big"))
        .expect("metadata call");
    let text = meta["metadata"].to_string();
    assert!(
        text.contains("<redacted 23 bytes>") && !text.contains("secret-token"),
        "{text}"
    );
    assert!(text.contains("AAECAwQF"), "-bin value as base64: {text}");
}

#[test]
fn keepalive_and_goaway_are_counted() {
    let out = replay_stdout(&["--summary-json", "-"], "py-edge-lo.pcap.gz");
    let v: Value = serde_json::from_str(&out).expect("json");
    let cap = &v["capture"];
    assert!(
        cap["pings"]["client"].as_u64().expect("client pings") >= 5,
        "{cap}"
    );
    assert_eq!(
        cap["goaways"]["server:NO_ERROR"], 2,
        "graceful shutdown sends two GOAWAYs: {cap}"
    );
    // The call in flight during the shutdown still completed.
    assert_eq!(v["totals"]["unfinished"], 0);
    // SETTINGS per side, unknown ids included: gRPC C-core announces true binary metadata.
    assert_eq!(
        cap["settings"]["client:0xfe03"],
        serde_json::json!([1]),
        "{cap}"
    );
    assert!(
        cap["settings"]["server:INITIAL_WINDOW_SIZE"].is_array(),
        "{cap}"
    );
}

#[test]
fn tonic_to_tonic_matches_the_client_log() {
    assert_eq!(
        compare("tonic-basic-lo.pcap", "tonic-basic.calls.jsonl", FULL),
        16
    );
}

#[test]
fn tonic_hard_cases_match_the_client_log() {
    assert_eq!(
        compare("tonic-edge-lo.pcap.gz", "tonic-edge.calls.jsonl", FULL),
        171
    );
}

#[test]
fn python_client_to_tonic_server_with_continuation_matches_the_client_log() {
    assert_eq!(
        compare(
            "py-to-tonic-edge-lo.pcap.gz",
            "py-to-tonic-edge.calls.jsonl",
            FULL
        ),
        292
    );
    let ours = our_calls("py-to-tonic-edge-lo.pcap.gz");
    // The 20 KB header block came in HEADERS + CONTINUATION and decoded whole.
    let meta = ours
        .iter()
        .find(|c| c.to_string().contains("x-big"))
        .expect("metadata call");
    let big = meta["metadata"]["request"]
        .as_array()
        .expect("fields")
        .iter()
        .find(|kv| kv[0] == "x-big")
        .expect("x-big");
    assert!(
        big[1]
            .as_str()
            .expect("value")
            .ends_with("...<20000 bytes>"),
        "{big}"
    );
}

#[test]
fn tonic_client_to_python_server_matches_the_client_log() {
    assert_eq!(
        compare(
            "tonic-to-py-basic-lo.pcap",
            "tonic-to-py-basic.calls.jsonl",
            FULL
        ),
        16
    );
}

#[test]
fn tonic_join_after_the_header_tables_churned_is_never_wrong() {
    // h2 indexes every new header value, so both 4 KiB tables had filled and evicted many times
    // before the capture began. Methods come back (h2 re-sends evicted paths as literals);
    // grpc-status stays behind a name from before the capture, so no status is guessed.
    let n = compare(
        "tonic-midstream-lo.pcap",
        "tonic-midstream.calls.jsonl",
        Expect {
            skip_before_capture: true,
            joined_mid_connection: true,
        },
    );
    assert_eq!(n, 240);
    assert!(
        our_calls("tonic-midstream-lo.pcap")
            .iter()
            .all(|c| c["method_confidence"] == "exact")
    );
}

#[test]
fn traced_calls_match_the_client_log() {
    assert_eq!(
        compare("py-traced-lo.pcap", "py-traced.calls.jsonl", FULL),
        20
    );
}

#[test]
fn with_the_schema_every_call_has_its_methods_type() {
    for capture in [
        "py-edge-lo.pcap.gz",
        "tonic-edge-lo.pcap.gz",
        "py-basic-lo.pcap",
    ] {
        let protos = root().join("testdata/proto");
        let protos = protos.to_str().expect("utf-8 path");
        let calls = replay_lines(&["--calls", "-", "--proto-path", protos], capture);
        assert!(!calls.is_empty());
        for c in &calls {
            let m = c["method"].as_str().expect("method");
            assert_eq!(c["call_type"], call_type_of(m), "{capture}: {c}");
        }
    }
}
