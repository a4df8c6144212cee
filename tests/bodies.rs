//! Message payloads decoded from a real capture equal what the client logged when it made the
//! calls (protobuf JSON from google.protobuf.json_format), gzip, deflate and uncompressed.

use serde_json::Value;

mod common;
use common::{call_id, replay_stdout, root};

fn replay(extra: &[&str]) -> Vec<Value> {
    replay_capture("py-bodies-lo.pcap", extra)
}

fn replay_capture(capture: &str, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--bodies", "--metadata", "--calls", "-"];
    args.extend_from_slice(extra);
    common::replay_lines(&args, capture)
}

/// Every logged call's messages, decoded with the schema, equal the client's JSON; returns the
/// compressed request messages per compression.
fn check_bodies(capture: &str, log: &str, calls: usize) -> std::collections::BTreeMap<String, u64> {
    let ours = replay_capture(
        capture,
        &[
            "--proto-path",
            root().join("testdata/proto").to_str().expect("path"),
        ],
    );
    let text = std::fs::read_to_string(root().join("testdata/captures").join(log)).expect("log");
    let truth: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(truth.len(), calls);
    let mut compressed = std::collections::BTreeMap::new();
    for t in &truth {
        let id = t["call_id"].as_u64().expect("id");
        let c = ours
            .iter()
            .find(|c| call_id(c) == Some(id))
            .unwrap_or_else(|| panic!("{capture}: call {id} not found"));
        assert_eq!(
            c["requests"], t["requests"],
            "{capture}: call {id} requests"
        );
        assert_eq!(
            c["responses"], t["responses"],
            "{capture}: call {id} responses"
        );
        // Rich errors: grpc-status-details-bin as google.rpc.Status with its details.
        if let Some(details) = t.get("status_details") {
            assert_eq!(
                &c["status_details"], details,
                "{capture}: call {id} status details"
            );
            assert_eq!(c["status"], t["status"], "{capture}: call {id}");
        }
        let comp = t["compression"].as_str().expect("compression");
        if comp != "identity" {
            assert_eq!(c["encoding"], comp, "{capture}: call {id}");
        }
        *compressed.entry(comp.to_owned()).or_insert(0) +=
            c["req_compressed_msgs"].as_u64().expect("n");
    }
    compressed
}

#[test]
fn decoded_messages_equal_what_the_client_sent_and_received() {
    // python grpcio: gzip, deflate, identity, and rich errors.
    let compressed = check_bodies("py-bodies-lo.pcap", "py-bodies.calls.jsonl", 18);
    assert!(
        compressed["gzip"] > 0 && compressed["deflate"] > 0,
        "{compressed:?}"
    );
    assert_eq!(compressed["identity"], 0);
    // tonic: zstd, gzip, deflate, every message compressed.
    let compressed = check_bodies("tonic-bodies-lo.pcap", "tonic-bodies.calls.jsonl", 12);
    assert_eq!(compressed["zstd"], 8, "{compressed:?}");
    assert_eq!(compressed["gzip"], 8);
    assert_eq!(compressed["deflate"], 8);
}

#[test]
fn without_a_schema_messages_decode_by_field_number() {
    let ours = replay(&[]);
    let first = ours.iter().find(|c| call_id(c) == Some(1)).expect("call 1");
    // EchoRequest { message = 1, reply_size = 3 }.
    assert_eq!(
        first["requests"][0],
        serde_json::json!({"1": "hello \u{e9}\u{e8} \u{2713}", "3": 10})
    );
}

#[test]
fn rich_error_details_decode_without_any_schema() {
    let ours = replay(&[]);
    let rich: Vec<&Value> = ours
        .iter()
        .filter(|c| c.get("status_details").is_some())
        .collect();
    assert_eq!(rich.len(), 3, "one per connection");
    for c in rich {
        assert_eq!(
            c["status_details"]["details"][0]["@type"],
            "type.googleapis.com/google.rpc.BadRequest"
        );
        assert_eq!(c["status_details"]["details"][2]["retryDelay"], "1.500s");
    }
}

#[test]
fn a_decompression_cap_is_reported_and_counted_not_fatal() {
    let calls = std::env::temp_dir().join(format!("grpctap-bodies-{}.jsonl", std::process::id()));
    let out = replay_stdout(
        &[
            "--bodies",
            "--max-decompressed",
            "10",
            "--summary-json",
            "-",
            "--calls",
            calls.to_str().expect("utf-8 path"),
        ],
        "py-bodies-lo.pcap",
    );
    let summary: Value = serde_json::from_str(&out).expect("summary");
    let text = std::fs::read_to_string(&calls).expect("calls");
    let errors: Vec<String> = text
        .lines()
        .flat_map(|l| {
            let c: Value = serde_json::from_str(l).expect("json");
            let all: Vec<Value> = [c["requests"].clone(), c["responses"].clone()]
                .into_iter()
                .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                .collect();
            all.into_iter()
                .filter_map(|m| m["error"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(!errors.is_empty());
    assert!(
        errors
            .iter()
            .all(|e| e == "decompresses to more than 10 bytes"),
        "{errors:?}"
    );
    assert_eq!(summary["capture"]["payload_errors"], errors.len());
    // Every other message still decoded (by field number: no schema in this run).
    assert!(text.lines().any(|l| l.contains("\"1\":\"hello")), "{text}");
}
