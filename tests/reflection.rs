//! Schemas the capture carries: a server reflection exchange (grpcurl's way: list_services, then
//! file_containing_symbol for each service), seen on its own connections while the tap had
//! joined a long-lived connection whose `:path` entries it never saw. Ground truth: the python
//! client's log (testdata/captures/py-reflection.calls.jsonl).

mod common;

use serde_json::Value;

use common::truth;

const CAPTURE: &str = "py-reflection-lo.pcap.gz";

fn log() -> Vec<Value> {
    truth::load(&common::captures().join("py-reflection.calls.jsonl"))
}

#[test]
fn reflection_in_the_capture_names_calls_without_any_schema() {
    let calls = common::replay_lines(&["--calls", "-", "--metadata"], CAPTURE);
    let truth = log();
    // The two reflection calls are read exactly.
    let reflection: Vec<&Value> = calls
        .iter()
        .filter(|c| {
            c["method"]
                .as_str()
                .is_some_and(|m| m.ends_with("ServerReflection/ServerReflectionInfo"))
        })
        .collect();
    assert_eq!(reflection.len(), 2, "{reflection:?}");
    assert!(reflection.iter().all(|c| c["status"] == "OK"));
    // Calls after it on the joined connection are named from the schemas it carried, and
    // rightly; before it, nothing could be.
    let pairs = truth::pair(&calls, &truth);
    let mut inferred = 0;
    for (c, t) in &pairs {
        let Some(t) = t else { continue };
        if c["method_confidence"] == "inferred" {
            assert_eq!(c["method"], t["method"], "{c}");
            inferred += 1;
        }
    }
    let end_of_reflection = reflection
        .iter()
        .filter_map(|c| c["end"].as_f64())
        .fold(f64::MIN, f64::max);
    let first_inferred = calls
        .iter()
        .filter(|c| c["method_confidence"] == "inferred")
        .filter_map(|c| c["end"].as_f64())
        .fold(f64::MAX, f64::min);
    assert!(inferred >= 20, "{inferred} calls named");
    assert!(
        first_inferred
            > reflection
                .iter()
                .filter_map(|c| c["start"].as_f64())
                .fold(f64::MAX, f64::min),
        "a call was named before any reflection response: {first_inferred} vs {end_of_reflection}"
    );
    // The same names as with the schemas given by hand.
    let given = common::replay_lines(&["--calls", "-", "--proto-path", "testdata/proto"], CAPTURE);
    let named = |v: &[Value]| -> Vec<(u64, u64, Value)> {
        v.iter()
            .map(|c| {
                (
                    c["conn"].as_u64().unwrap_or(0),
                    c["stream_id"].as_u64().unwrap_or(0),
                    c["method"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(named(&calls), named(&given));
}

#[test]
fn learned_schemas_decode_bodies_and_are_reported() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_grpctap"))
        .args(["replay", "--calls", "-", "--bodies"])
        .arg(common::captures().join(CAPTURE))
        .output()
        .expect("run");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("schemas from server reflection in the capture: 4 files (4 services:")
            && stderr.contains("grpctap.test.Store"),
        "{stderr}"
    );
    let calls = common::json_lines(&String::from_utf8_lossy(&out.stdout));
    // Store/List after the exchange, on the reflection connection: its items decode by name.
    let list = calls
        .iter()
        .find(|c| c["method"] == "/grpctap.test.Store/List")
        .expect("Store/List");
    let first = &list["responses"][0];
    assert!(
        first["id"].is_string() && first["version"].is_string(),
        "{first}"
    );
    // The reflection responses themselves are decoded too (their schema came with them).
    let info = calls
        .iter()
        .find(|c| c["method"] == "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo")
        .expect("reflection call");
    assert_eq!(
        info["responses"].as_array().map(Vec::len),
        Some(5),
        "{info}"
    );
}
