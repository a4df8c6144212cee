//! Findings on real captures: each failure mode fires on the capture made to show it, with
//! evidence equal to what the clients and servers logged when the capture was made, and the
//! targeted kinds fire on no other capture in testdata/ (the healthy controls among them).

#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)] // counts in JSON numbers

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde_json::Value;

fn captures() -> Vec<PathBuf> {
    common::capture_files()
}

/// The findings of a replay (`--summary-json`), with the test schemas.
fn findings_of(file: &std::path::Path) -> Vec<Value> {
    let out = common::replay_file_stdout(
        &["--summary-json", "-", "--proto-path", "testdata/proto"],
        file,
    );
    let v: Value = serde_json::from_str(&out).expect("summary json");
    v["findings"].as_array().cloned().unwrap_or_default()
}

fn log(name: &str) -> Vec<Value> {
    common::json_lines(
        &std::fs::read_to_string(common::captures().join(name)).expect("ground truth"),
    )
}

fn evidence(f: &Value, name: &str) -> f64 {
    f["evidence"][name].as_f64().unwrap_or(f64::NAN)
}

fn of_kind<'a>(fs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    fs.iter().filter(|f| f["kind"] == kind).collect()
}

/// The kinds a capture was made to show, and where each may fire.
const TARGETED: [(&str, &[&str]); 11] = [
    ("connection_imbalance", &["balance-pinned-lo.pcap.gz"]),
    ("idle_backend", &["balance-scaleout-lo.pcap.gz"]),
    (
        "retries",
        &[
            "retries-lo.pcap.gz",
            "hedging-lo.pcap.gz",
            "app-retries-lo.pcap.gz",
        ],
    ),
    (
        "retry_unsafe",
        &[
            "retries-lo.pcap.gz",
            "hedging-lo.pcap.gz",
            "app-retries-lo.pcap.gz",
        ],
    ),
    ("keepalive", &["keepalive-pings-lo.pcap.gz"]),
    ("leaked_stream", &["leaks-idle-lo.pcap.gz"]),
    ("max_streams_saturated", &["max-streams-lo.pcap.gz"]),
    ("deadline_not_propagated", &["deadlines-nested-lo.pcap.gz"]),
    ("goaway", &[]),
    ("flow_control_stall", &["slow-consumer-lo.pcap.gz"]),
    ("unbounded_window", &["unbounded-window-lo.pcap.gz"]),
];

#[test]
fn each_targeted_kind_fires_on_its_capture_and_nowhere_else() {
    let mut fired: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for cap in captures() {
        let name = cap
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        for f in findings_of(&cap) {
            let kind = f["kind"].as_str().expect("kind").to_owned();
            if let Some((k, _)) = TARGETED.iter().find(|(k, _)| *k == kind) {
                fired.entry(k).or_default().push(name.clone());
            }
        }
    }
    for (kind, allowed) in TARGETED {
        let got = fired.get(kind).cloned().unwrap_or_default();
        for n in &got {
            assert!(allowed.contains(&n.as_str()), "{kind} fired on {n}");
        }
        for a in allowed {
            assert!(got.iter().any(|g| g == a), "{kind} did not fire on {a}");
        }
    }
}

#[test]
fn balance_pinned_clients_and_a_backend_added_later_are_found_as_logged() {
    // Pinned: the busiest backend's share is the log's.
    let fs = findings_of(&common::captures().join("balance-pinned-lo.pcap.gz"));
    let calls = log("balance-pinned.calls.jsonl");
    let echo: Vec<&Value> = calls
        .iter()
        .filter(|c| c["method"].as_str().is_some_and(|m| m.contains("Echo/")))
        .collect();
    let mut per: BTreeMap<&str, u64> = BTreeMap::new();
    for c in &echo {
        *per.entry(c["server_addr"].as_str().expect("server_addr"))
            .or_default() += 1;
    }
    let busiest = per.values().max().copied().expect("calls") as f64 / echo.len() as f64;
    let f = of_kind(&fs, "connection_imbalance")
        .into_iter()
        .find(|f| {
            f["scope"]["service"]
                .as_str()
                .is_some_and(|s| s.starts_with("grpctap.test.Echo"))
        })
        .expect("imbalance of Echo");
    assert!((evidence(f, "busiest_share") - busiest).abs() < 1e-9, "{f}");
    assert_eq!(evidence(f, "servers"), per.len() as f64);
    // Round robin over the same backends: none.
    let rr = findings_of(&common::captures().join("balance-rr-lo.pcap.gz"));
    assert!(of_kind(&rr, "connection_imbalance").is_empty());
    // Scale-out: the fourth backend's share of the calls since it took its first.
    let fs = findings_of(&common::captures().join("balance-scaleout-lo.pcap.gz"));
    let f = of_kind(&fs, "idle_backend")
        .into_iter()
        .find(|f| {
            f["scope"]["service"]
                .as_str()
                .is_some_and(|s| s.starts_with("grpctap.test.Echo"))
        })
        .expect("idle backend of Echo");
    assert_eq!(f["scope"]["server"], "127.0.0.4:50300");
    let calls = log("balance-scaleout.calls.jsonl");
    let echo: Vec<&Value> = calls
        .iter()
        .filter(|c| c["method"].as_str().is_some_and(|m| m.contains("Echo/")))
        .collect();
    let first = echo
        .iter()
        .filter(|c| c["server_addr"] == "127.0.0.4:50300")
        .filter_map(|c| c["start"].as_f64())
        .fold(f64::MAX, f64::min);
    let since: Vec<&&Value> = echo
        .iter()
        .filter(|c| c["end"].as_f64().is_some_and(|e| e >= first))
        .collect();
    let mine = since
        .iter()
        .filter(|c| c["server_addr"] == "127.0.0.4:50300")
        .count();
    assert_eq!(evidence(f, "its_calls"), mine as f64, "{f}");
    // Ends within a millisecond of its first call's start may fall either side.
    assert!(
        (evidence(f, "calls_since_it_appeared") - since.len() as f64).abs() <= 3.0,
        "{f}"
    );
}

#[test]
fn retries_and_hedges_are_counted_as_the_server_saw_them() {
    for (cap, attempts) in [
        ("retries-lo.pcap.gz", "retries.attempts.jsonl"),
        ("hedging-lo.pcap.gz", "hedging.attempts.jsonl"),
    ] {
        let fs = findings_of(&common::captures().join(cap));
        let mut want: BTreeMap<String, u64> = BTreeMap::new();
        for a in log(attempts) {
            if a["attempt"].as_u64().is_some_and(|n| n > 1) {
                *want
                    .entry(a["method"].as_str().expect("method").to_owned())
                    .or_default() += 1;
            }
        }
        let got: BTreeMap<String, u64> = of_kind(&fs, "retries")
            .iter()
            .map(|f| {
                (
                    f["scope"]["method"].as_str().expect("method").to_owned(),
                    evidence(f, "retry_attempts") as u64,
                )
            })
            .collect();
        assert_eq!(got, want, "{cap}");
        // None of echo.proto's methods is marked idempotent: every retried one is unsafe.
        assert_eq!(of_kind(&fs, "retry_unsafe").len(), want.len(), "{cap}");
    }
    // The storm: retries rise with the errors over the run.
    let fs = findings_of(&common::captures().join("retries-lo.pcap.gz"));
    let unary = of_kind(&fs, "retries")
        .into_iter()
        .find(|f| f["scope"]["method"] == "/grpctap.test.Echo/Unary")
        .expect("unary");
    assert_eq!(unary["severity"], "critical", "{unary}");
    assert!(evidence(unary, "retry_share_second_half") > evidence(unary, "retry_share_first_half"));
}

#[test]
fn application_retries_are_the_calls_the_client_logged_as_retries() {
    // The client sent each failed call's request again as a new call (no
    // grpc-previous-rpc-attempts); every tenth operation repeats an OK one's on purpose.
    let calls = log("app-retries.calls.jsonl");
    let fs = findings_of(&common::captures().join("app-retries-lo.pcap.gz"));
    let app: Vec<_> = of_kind(&fs, "retries")
        .into_iter()
        .filter(|f| f["evidence"].get("app_retries").is_some())
        .collect();
    let mut want = BTreeMap::new();
    for c in &calls {
        if c["try"].as_u64() > Some(0) {
            *want
                .entry(c["method"].as_str().expect("method"))
                .or_insert(0.0) += 1.0;
        }
    }
    let got: BTreeMap<&str, f64> = app
        .iter()
        .map(|f| {
            (
                f["scope"]["method"].as_str().expect("method"),
                evidence(f, "app_retries"),
            )
        })
        .collect();
    assert_eq!(got, want);
    for f in &app {
        assert_eq!(f["certainty"], "medium", "{f}");
        // The deliberate repeats of successful calls are not counted, and are told apart.
        assert!(evidence(f, "repeated_after_success") < 0.2, "{f}");
    }
}

#[test]
fn keepalive_leaks_saturation_and_nested_deadlines_match_the_logs() {
    // Two GOAWAY too_many_pings in the client's events: two connections found.
    let fs = findings_of(&common::captures().join("keepalive-pings-lo.pcap.gz"));
    let goaways = log("keepalive-pings.events.jsonl")
        .iter()
        .filter(|e| e["event"] == "goaway_received")
        .count();
    let k = of_kind(&fs, "keepalive");
    assert_eq!(k.len(), goaways);
    assert!(
        k.iter()
            .all(|f| f["severity"] == "critical" && evidence(f, "too_many_pings_goaway") == 1.0)
    );
    let ok = findings_of(&common::captures().join("keepalive-ok-lo.pcap.gz"));
    assert!(of_kind(&ok, "keepalive").is_empty());

    // The streams the client left open, per method: those open for the default 10 s
    // (leak_age_s) by the last call's end (one was opened 6.7 s before the end).
    let fs = findings_of(&common::captures().join("leaks-idle-lo.pcap.gz"));
    let calls = log("leaks-idle.calls.jsonl");
    let last_end = calls
        .iter()
        .filter_map(|c| c["end"].as_f64())
        .fold(0.0, f64::max);
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    for c in &calls {
        if c["status"] == "OPEN" && c["start"].as_f64().is_some_and(|s| last_end - s >= 10.0) {
            *want
                .entry(c["method"].as_str().expect("method").to_owned())
                .or_default() += 1;
        }
    }
    let leaks = of_kind(&fs, "leaked_stream");
    let (by_method, by_conn): (Vec<_>, Vec<_>) =
        leaks.iter().partition(|f| f["scope"]["method"].is_string());
    // The client's one connection that kept them: its open streams rose to all of them.
    let open = calls.iter().filter(|c| c["status"] == "OPEN").count() as u64;
    assert_eq!(by_conn.len(), 1, "{by_conn:?}");
    assert_eq!(evidence(by_conn[0], "open_streams") as u64, open);
    assert_eq!(
        evidence(by_conn[0], "open_streams_floor_last_quarter") as u64,
        open
    );
    let got: BTreeMap<String, u64> = by_method
        .iter()
        .map(|f| {
            (
                f["scope"]["method"].as_str().expect("method").to_owned(),
                evidence(f, "open_streams") as u64,
            )
        })
        .collect();
    assert_eq!(got, want);

    // Calls that waited for a stream: the log's start is when they were issued, before their
    // HEADERS; the finding counts the calls sent the moment a stream freed up.
    let fs = findings_of(&common::captures().join("max-streams-lo.pcap.gz"));
    let f = of_kind(&fs, "max_streams_saturated");
    assert_eq!(f.len(), 1);
    assert_eq!(evidence(f[0], "max_concurrent_streams"), 2.0);
    assert!(evidence(f[0], "calls_queued") >= 30.0, "{}", f[0]);

    // The relay's children: without a deadline and with a longer one, as it logged them.
    let fs = findings_of(&common::captures().join("deadlines-nested-lo.pcap.gz"));
    let children = log("deadlines-nested.children.jsonl");
    let missing = children.iter().filter(|c| c["mode"] == "drop").count();
    let longer = children.iter().filter(|c| c["mode"] == "long").count();
    let f = of_kind(&fs, "deadline_not_propagated");
    assert_eq!(f.len(), 1);
    assert_eq!(evidence(f[0], "without_deadline"), missing as f64);
    assert_eq!(evidence(f[0], "longer_than_parent"), longer as f64);
    assert_eq!(evidence(f[0], "child_calls"), children.len() as f64);
}

#[test]
fn deadline_findings_count_what_the_clients_logged() {
    for (cap, truth) in [
        ("go-deadlines-lo.pcap.gz", "go-deadlines.calls.jsonl"),
        ("leaks-idle-lo.pcap.gz", "leaks-idle.calls.jsonl"),
    ] {
        let fs = findings_of(&common::captures().join(cap));
        let calls = log(truth);
        for f in of_kind(&fs, "deadline_exceeded") {
            let m = f["scope"]["method"].as_str().expect("method");
            let want = calls
                .iter()
                .filter(|c| c["method"] == m && c["status"] == "DEADLINE_EXCEEDED")
                .count();
            assert_eq!(evidence(f, "deadline_exceeded"), want as f64, "{cap} {m}");
        }
        for f in of_kind(&fs, "no_deadline") {
            let m = f["scope"]["method"].as_str().expect("method");
            let want = calls
                .iter()
                .filter(|c| c["method"] == m && c["timeout_s"].is_null())
                .count();
            assert_eq!(evidence(f, "without_deadline"), want as f64, "{cap} {m}");
        }
    }
}

#[test]
fn a_slow_consumer_stalls_the_sender_for_as_long_as_the_client_read_slowly() {
    let fs = findings_of(&common::captures().join("slow-consumer-lo.pcap.gz"));
    let f = of_kind(&fs, "flow_control_stall");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0]["scope"]["method"], "/grpctap.test.Echo/ServerStream");
    // The client read 50 replies one every 200 ms with a 64 KiB window: after the window's
    // first two and a half replies, each read let one more through (47 stalls of ~200 ms, as
    // gen/check_flows.py measures on the wire); the stream was stalled nearly all its life.
    let msgs = log("slow-consumer.messages.jsonl").len();
    let stalls = evidence(f[0], "stalls");
    assert!(
        (msgs as f64 - 5.0..=msgs as f64).contains(&stalls),
        "{stalls} of {msgs}"
    );
    let stream = log("slow-consumer.calls.jsonl")
        .into_iter()
        .find(|c| c["method"] == "/grpctap.test.Echo/ServerStream")
        .expect("the stream");
    let life = stream["end"].as_f64().expect("end") - stream["start"].as_f64().expect("start");
    let stalled = evidence(f[0], "stalled_seconds");
    assert!(
        stalled >= 0.8 * life && stalled <= life,
        "{stalled} of {life}"
    );
}

#[test]
fn a_window_of_a_gigabyte_is_found_as_the_client_dialled_it() {
    let fs = findings_of(&common::captures().join("unbounded-window-lo.pcap.gz"));
    let f = of_kind(&fs, "unbounded_window");
    assert_eq!(f.len(), 1, "{fs:?}");
    let dialled = log("unbounded-window.calls.jsonl")[0]["window"]["conn"]
        .as_f64()
        .expect("window");
    assert_eq!(evidence(f[0], "window_bytes"), dialled);
    assert!(
        f[0]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("the client"))
    );
    // The stream never waited on its window.
    assert!(of_kind(&fs, "flow_control_stall").is_empty());
}

/// A tap that joined mid-way (the first third of each capture's packets dropped) must not see
/// application retries or rising open streams where there are none, nor more retries than the
/// client made.
#[test]
fn inferred_retries_and_rising_streams_hold_for_a_tap_joined_mid_way() {
    let dir = std::env::temp_dir().join(format!("grpctap-findings-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let logged = log("app-retries.calls.jsonl")
        .iter()
        .filter(|c| c["try"].as_u64() > Some(0))
        .count() as f64;
    let mut fired = Vec::new();
    for cap in captures() {
        let mut src = capture::FileSource::open(&cap, 16 << 20).expect("open");
        let mut n = 0u64;
        while src.next_packet().expect("read").is_some() {
            n += 1;
        }
        let Some(cut) = common::cut(&cap, n / 3, &dir) else {
            continue;
        };
        let name = cap
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        let fs = findings_of(&cut);
        let app: f64 = of_kind(&fs, "retries")
            .iter()
            .map(|f| evidence(f, "app_retries"))
            .filter(|x| !x.is_nan())
            .sum();
        if app > 0.0 {
            assert!(app <= logged, "{name}: {app} retries, {logged} made");
            fired.push(("retries", name.clone()));
        }
        if of_kind(&fs, "leaked_stream")
            .iter()
            .any(|f| f["scope"]["method"].is_null())
        {
            fired.push(("leaked_stream", name));
        }
    }
    for (kind, name) in &fired {
        let allowed = match *kind {
            "retries" => "app-retries-lo.pcap.gz",
            _ => "leaks-idle-lo.pcap.gz",
        };
        assert_eq!(name, allowed, "{kind} fired on {name} joined mid-way");
    }
}
