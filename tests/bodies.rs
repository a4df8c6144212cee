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

/// `--messages` hands on every message of every call as it is seen: per call and direction,
/// as many lines as the call counted, numbered from 0 in time order, decoded as `--bodies`
/// decodes them (the same JSON, where the record kept them).
#[test]
fn every_message_is_written_as_it_is_seen() {
    let proto = root().join("testdata/proto");
    let proto = proto.to_str().expect("path");
    for capture in [
        "py-mixed-veth.pcap",
        "py-bodies-lo.pcap",
        "tonic-bodies-lo.pcap",
    ] {
        let calls = common::replay_lines(
            &["--bodies", "--proto-path", proto, "--calls", "-"],
            capture,
        );
        let messages = common::replay_lines(&["--proto-path", proto, "--messages", "-"], capture);
        let total: u64 = calls
            .iter()
            .map(|c| c["req_msgs"].as_u64().expect("json") + c["resp_msgs"].as_u64().expect("json"))
            .sum();
        assert_eq!(
            messages.len() as u64,
            total,
            "{capture}: one line per message"
        );
        let mut last_time = std::collections::HashMap::new();
        for c in &calls {
            let key = (c["conn"].as_u64(), c["stream_id"].as_u64());
            for (direction, kept) in [("request", "requests"), ("response", "responses")] {
                let ours: Vec<&Value> = messages
                    .iter()
                    .filter(|m| (m["conn"].as_u64(), m["stream_id"].as_u64()) == key)
                    .filter(|m| m["direction"] == direction)
                    .collect();
                let count = &c[&format!(
                    "{}_msgs",
                    &direction[..if direction == "request" { 3 } else { 4 }]
                )];
                assert_eq!(
                    ours.len() as u64,
                    count.as_u64().expect("json"),
                    "{capture} {key:?} {direction}"
                );
                for (i, m) in ours.iter().enumerate() {
                    assert_eq!(m["index"], i as u64, "{capture} {key:?}: in order");
                    assert_eq!(m["method"], c["method"]);
                    assert_eq!(
                        &m["message"], &c[kept][i],
                        "{capture} {key:?} {direction} {i}"
                    );
                    let t = m["time"].as_f64().expect("json");
                    let prev = last_time.insert((key, direction), t).unwrap_or(t);
                    assert!(t >= prev, "{capture}: times grow");
                }
            }
        }
    }
}

/// `--bodies` keeps each direction's first messages within `--bodies-max-bytes` and says how
/// many it dropped; by default a stream of small messages is kept whole.
#[test]
fn bodies_are_bounded_by_bytes_and_dropped_ones_counted() {
    let proto = root().join("testdata/proto");
    let proto = proto.to_str().expect("path");
    for capture in ["py-mixed-veth.pcap", "py-streams-lo.pcap.gz"] {
        let whole = common::replay_lines(
            &["--bodies", "--proto-path", proto, "--calls", "-"],
            capture,
        );
        let small = common::replay_lines(
            &[
                "--bodies",
                "--bodies-max-bytes",
                "3000",
                "--proto-path",
                proto,
                "--calls",
                "-",
            ],
            capture,
        );
        assert_eq!(whole.len(), small.len());
        let mut dropped = 0;
        for (w, s) in whole.iter().zip(&small) {
            for (list, count, gone) in [
                ("requests", "req_msgs", "requests_dropped"),
                ("responses", "resp_msgs", "responses_dropped"),
            ] {
                let n = w[count].as_u64().expect("json");
                assert_eq!(
                    w[list].as_array().expect("json").len() as u64,
                    n,
                    "kept whole by default"
                );
                assert_eq!(w[gone], 0);
                let kept = s[list].as_array().expect("json");
                assert_eq!(kept.len() as u64 + s[gone].as_u64().expect("json"), n);
                // The first ones, the same as unbounded.
                assert_eq!(&kept[..], &w[list].as_array().expect("json")[..kept.len()]);
                dropped += s[gone].as_u64().expect("json");
            }
        }
        assert!(
            dropped > 1000,
            "{capture}: the small budget dropped messages: {dropped}"
        );
    }
}

/// Whether two JSON values are the same message: numbers equal as written (our float
/// printed as the shortest decimal of the 32-bit float, which is what `other` wrote, or
/// shorter where the log's printer writes more digits than needed for the same float).
#[allow(clippy::cast_possible_truncation)] // the point: the values as 32-bit floats
fn same(ours: &Value, log: &Value, path: &str) -> Result<(), String> {
    match (ours, log) {
        (Value::Object(a), Value::Object(b)) => {
            let (ka, kb): (Vec<_>, Vec<_>) = (a.keys().collect(), b.keys().collect());
            if ka != kb {
                return Err(format!("{path}: fields {ka:?} vs {kb:?}"));
            }
            a.iter()
                .try_for_each(|(k, v)| same(v, &b[k], &format!("{path}.{k}")))
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => a
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (x, y))| same(x, y, &format!("{path}[{i}]"))),
        (Value::Number(a), Value::Number(b)) => {
            let (x, y) = (a.as_f64().expect("json"), b.as_f64().expect("json"));
            let shorter = a.to_string().trim_start_matches('-').len()
                < b.to_string().trim_start_matches('-').len();
            if x == y || (x as f32 == y as f32 && shorter) {
                Ok(())
            } else {
                Err(format!("{path}: {a} vs {b}"))
            }
        }
        _ if ours == log => Ok(()),
        _ => Err(format!("{path}: {ours} vs {log}")),
    }
}

/// Each message `--messages` writes equals what the client logged for it (protobuf JSON from
/// python's json_format and from grpc-go's jsonpb), `float` fields in their shortest form.
#[test]
fn messages_equal_the_clients_log_with_floats_in_shortest_form() {
    let proto = root().join("testdata/proto");
    let proto = proto.to_str().expect("path");
    for name in ["py-streams", "go-to-py-streams"] {
        let capture = format!("{name}-lo.pcap.gz");
        let calls = common::replay_lines(&["--metadata", "--calls", "-"], &capture);
        let ids: std::collections::HashMap<_, _> = calls
            .iter()
            .map(|c| ((c["conn"].as_u64(), c["stream_id"].as_u64()), call_id(c)))
            .collect();
        let ours = common::replay_lines(&["--proto-path", proto, "--messages", "-"], &capture);
        let log = std::fs::read_to_string(
            root().join(format!("testdata/captures/{name}.messages.jsonl")),
        )
        .expect("log");
        let log: Vec<Value> = common::json_lines(&log);
        assert_eq!(ours.len(), log.len(), "{name}: every message");
        let mut floats = 0;
        for m in &ours {
            let id = ids[&(m["conn"].as_u64(), m["stream_id"].as_u64())].expect("call id");
            let t = log
                .iter()
                .find(|t| {
                    t["call_id"] == id
                        && t["direction"] == m["direction"]
                        && t["index"] == m["index"]
                })
                .unwrap_or_else(|| {
                    panic!(
                        "{name}: call {id} {} {} not logged",
                        m["direction"], m["index"]
                    )
                });
            assert_eq!(m["method"], t["method"]);
            if let Err(e) = same(&m["message"], &t["json"], "") {
                panic!("{name}: call {id} {} {}: {e}", m["direction"], m["index"]);
            }
            if m["method"].as_str().expect("json").contains("Gauge") {
                floats += 1;
            }
        }
        assert!(
            floats > 90,
            "{name}: messages with float fields compared: {floats}"
        );
    }
}
