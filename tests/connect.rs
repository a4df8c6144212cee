//! gRPC-Web and the Connect protocol over HTTP/2, from real connect-node peers
//! (testdata/captures/connect-h2-lo.pcap.gz: connect proto and json, GET, gRPC-Web and gRPC
//! on one server): every call the client logged, with its method, status and message counts,
//! each by its own protocol's rules, never by gRPC's.

mod common;

use serde_json::Value;

#[test]
fn connect_and_grpc_web_calls_equal_the_client_log() {
    let ours = common::replay_lines(&["--metadata", "--calls", "-"], "connect-h2-lo.pcap.gz");
    let log =
        std::fs::read_to_string(common::captures().join("connect-h2.calls.jsonl")).expect("log");
    let truth = common::json_lines(&log);
    assert_eq!(truth.len(), 86);
    assert_eq!(ours.len(), truth.len(), "every call, no other");
    let mut by_protocol = std::collections::BTreeMap::new();
    for t in &truth {
        let id = t["call_id"].as_u64().expect("id");
        let c = ours
            .iter()
            .find(|c| common::call_id(c) == Some(id))
            .unwrap_or_else(|| panic!("call {id} not reported"));
        let at = format!(
            "call {id} ({} {} {})",
            t["protocol"], t["codec"], t["http_method"]
        );
        assert_eq!(c["method"], t["method"], "{at}");
        assert_eq!(c["req_msgs"], t["req_msgs"], "{at}");
        assert_eq!(c["resp_msgs"], t["resp_msgs"], "{at}");
        let protocol = match t["protocol"].as_str().expect("protocol") {
            "grpc" => Value::Null,
            p => Value::from(p),
        };
        assert_eq!(c["protocol"], protocol, "{at}");
        match (t["status"].as_str(), c["status"].as_str()) {
            // A client's reset at its deadline, where an expiry and a cancellation look alike:
            // an error whose code only the client knows (docs/calls.md, deadline_near).
            (Some("DEADLINE_EXCEEDED"), None) => {
                assert_eq!(c["status_source"], "deadline_near", "{at}");
                assert_eq!(c["error"], true, "{at}");
            }
            (want, got) => assert_eq!(got, want, "{at}: {c}"),
        }
        if t["status"] != "OK" && t["status"] != "DEADLINE_EXCEEDED" {
            assert_eq!(c["grpc_message"], t["message"], "{at}");
        }
        *by_protocol
            .entry(t["protocol"].as_str().expect("p").to_owned())
            .or_insert(0) += 1;
    }
    assert!(
        by_protocol["connect"] >= 40 && by_protocol["grpc-web"] >= 18,
        "{by_protocol:?}"
    );
    // No message was taken for cut short: the end-of-stream envelopes are not messages.
    let summary = common::replay_stdout(&["--summary-json", "-"], "connect-h2-lo.pcap.gz");
    let v: Value = serde_json::from_str(&summary).expect("json");
    assert!(
        v["capture"]["anomalies"]["message_cut_short"].is_null(),
        "{}",
        v["capture"]
    );
}

#[test]
fn http1_rpcs_are_not_taken_for_http2() {
    // Connect and gRPC-Web over HTTP/1.1 are not decoded yet: the connections are counted as
    // other TCP, and no call is invented.
    let ours = common::replay_lines(&["--calls", "-"], "connect-h1-lo.pcap.gz");
    assert!(ours.is_empty());
    let summary = common::replay_stdout(&["--summary-json", "-"], "connect-h1-lo.pcap.gz");
    let v: Value = serde_json::from_str(&summary).expect("json");
    assert_eq!(v["capture"]["http2_connections"], 0);
    assert_eq!(v["capture"]["other_connections"], 18);
}
