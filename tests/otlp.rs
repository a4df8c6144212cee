//! OpenTelemetry export against a receiver built from the official OTLP protobuf definitions
//! (tests/otlp_receiver.py, PyPI opentelemetry-proto): it decodes what grpctap sends as a
//! collector would. Spans of a capture whose client sent W3C trace context join the client's
//! traces; the histograms equal the summary; a dead, refusing or slow endpoint costs dropped
//! spans, never the replay.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;

struct Receiver {
    child: Child,
    port: u16,
    out: PathBuf,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.out);
    }
}

fn receiver(tag: &str, args: &[&str]) -> Receiver {
    let out = std::env::temp_dir().join(format!("grpctap-otlp-{tag}-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut child = Command::new("python3")
        .arg(common::root().join("tests/otlp_receiver.py"))
        .arg("--out")
        .arg(&out)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 tests/otlp_receiver.py (pip install opentelemetry-proto)");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("port line");
    let port = line
        .trim()
        .strip_prefix("port ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("receiver said {line:?}"));
    Receiver { child, port, out }
}

impl Receiver {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn lines(&self, kind: &str) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).expect("json"))
            .filter(|v| v["kind"] == kind)
            .collect()
    }
}

fn replay(args: &[&str], file: &Path) -> (Value, String, Duration) {
    let t = Instant::now();
    let mut a = args.to_vec();
    a.extend(["--summary-json", "-"]);
    let (out, err) = common::replay_files(&a, &[file]);
    let took = t.elapsed();
    (serde_json::from_str(&out).expect("summary"), err, took)
}

fn hex_of_traceparent(tp: &str) -> (String, String) {
    let p: Vec<&str> = tp.split('-').collect();
    (p[1].to_owned(), p[2].to_owned())
}

#[test]
fn every_call_is_a_span_in_the_clients_trace_and_the_histograms_are_the_summary() {
    let r = receiver("traced", &[]);
    let cap = common::captures().join("py-traced-lo.pcap");
    let url = r.url();
    let (summary, err, _) = replay(
        &[
            "--otlp",
            &url,
            "--otlp-header",
            "authorization=Bearer s3cr3t-token",
        ],
        &cap,
    );
    assert!(err.contains("otlp: 20 spans sent"), "{err}");
    assert!(!err.contains("s3cr3t"), "{err}");
    let spans = r.lines("span");
    assert_eq!(spans.len(), 20);
    // The calls as grpctap reports them, with the traceparent each request carried.
    let calls = common::replay_lines(&["--calls", "-", "--metadata"], "py-traced-lo.pcap");
    let mut by_trace: BTreeMap<String, &Value> = BTreeMap::new();
    for c in &calls {
        let tp = c["metadata"]["request"]
            .as_array()
            .and_then(|h| h.iter().find(|kv| kv[0] == "traceparent"))
            .and_then(|kv| kv[1].as_str())
            .expect("traceparent");
        by_trace.insert(hex_of_traceparent(tp).0, c);
    }
    // The client's log names each call's trace.
    let log_traces: std::collections::BTreeSet<String> =
        std::fs::read_to_string(common::captures().join("py-traced.calls.jsonl"))
            .expect("log")
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["trace_id"].as_str().map(str::to_owned))
            .collect();
    assert_eq!(log_traces.len(), 20);
    for s in &spans {
        let trace = s["trace_id"].as_str().expect("trace id");
        assert!(
            log_traces.contains(trace),
            "span in a trace the client never made: {s}"
        );
        let c = by_trace.get(trace).expect("a call of this trace");
        let tp = c["metadata"]["request"]
            .as_array()
            .and_then(|h| h.iter().find(|kv| kv[0] == "traceparent"))
            .and_then(|kv| kv[1].as_str())
            .expect("traceparent");
        // A child of the caller's span.
        assert_eq!(s["parent_span_id"], hex_of_traceparent(tp).1);
        assert_eq!(s["span_kind"], 2, "SERVER");
        let method = c["method"].as_str().expect("method");
        assert_eq!(s["name"], method.trim_start_matches('/'));
        assert_eq!(
            s["attributes"]["rpc.method"],
            method.trim_start_matches('/')
        );
        assert_eq!(s["attributes"]["rpc.status_code"], c["status"]);
        assert_eq!(s["attributes"]["rpc.system.name"], "grpc");
        let error = c["error"] == true;
        assert_eq!(s["status"]["code"], if error { 2 } else { 0 });
        if error {
            assert_eq!(s["attributes"]["error.type"], c["status"]);
        }
        assert_eq!(s["attributes"]["server.port"], port(&c["server"]));
        assert_eq!(s["attributes"]["client.port"], port(&c["client"]));
        // A SERVER span's peer is the client.
        assert_eq!(s["attributes"]["network.peer.port"], port(&c["client"]));
        // Packet times, to the microsecond the capture has.
        let start = s["start"].as_u64().expect("start") as f64 / 1e9;
        let end = s["end"].as_u64().expect("end") as f64 / 1e9;
        assert!((start - c["start"].as_f64().expect("start")).abs() < 2e-6);
        assert!((end - c["end"].as_f64().expect("end")).abs() < 2e-6);
        assert_eq!(s["resource"]["service.name"], "grpctap");
        assert_eq!(s["headers"]["authorization"], "Bearer s3cr3t-token");
        assert_eq!(s["headers"]["content-encoding"], "gzip");
    }
    // Span ids are distinct.
    let ids: std::collections::BTreeSet<&str> =
        spans.iter().filter_map(|s| s["span_id"].as_str()).collect();
    assert_eq!(ids.len(), 20);
    // The histograms hold the summary's calls, by method and status.
    let hist = r.lines("histogram");
    assert!(!hist.is_empty());
    let mut got: BTreeMap<(String, String), u64> = BTreeMap::new();
    for h in &hist {
        assert_eq!(h["name"], "rpc.server.call.duration");
        assert_eq!(h["unit"], "s");
        assert_eq!(h["temporality"], 2, "cumulative");
        let counts: u64 = h["bucket_counts"]
            .as_array()
            .expect("buckets")
            .iter()
            .filter_map(Value::as_u64)
            .sum();
        assert_eq!(counts, h["count"].as_u64().expect("count"));
        let key = (
            h["attributes"]["rpc.method"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            h["attributes"]["rpc.status_code"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        );
        *got.entry(key).or_default() += counts;
    }
    let mut want: BTreeMap<(String, String), u64> = BTreeMap::new();
    for m in summary["methods"].as_array().expect("methods") {
        let name = m["method"]
            .as_str()
            .expect("method")
            .trim_start_matches('/');
        for (code, n) in m["status"].as_object().expect("status") {
            *want.entry((name.to_owned(), code.clone())).or_default() += n.as_u64().expect("n");
        }
    }
    assert_eq!(got, want);
}

fn port(addr: &Value) -> u64 {
    addr.as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .expect("port")
}

#[test]
fn a_refusing_collector_is_retried_after_its_retry_after() {
    let r = receiver("refuse", &["--fail", "2", "--retry-after", "1"]);
    let url = r.url();
    let (_, err, _) = replay(
        &["--otlp", &url],
        &common::captures().join("py-traced-lo.pcap"),
    );
    assert!(err.contains("otlp: 20 spans sent"), "{err}");
    assert!(err.contains("2 retries"), "{err}");
    assert_eq!(r.lines("refused").len(), 2);
    assert_eq!(r.lines("span").len(), 20);
}

#[test]
fn a_dead_or_slow_collector_costs_spans_not_the_replay() {
    let cap = common::captures().join("py-mixed-veth.pcap");
    let (base, _, plain) = replay(&[], &cap);
    // Nothing listens on port 9 of loopback: every request fails at once.
    let (dead, err, took) = replay(&["--otlp", "http://127.0.0.1:9"], &cap);
    assert_eq!(dead["methods"], base["methods"], "decoding changed");
    assert!(err.contains("otlp: 0 spans sent"), "{err}");
    assert!(err.contains("660 dropped"), "{err}");
    assert_eq!(dead["otlp"]["spans_dropped"], 660);
    assert_eq!(dead["otlp"]["spans_sent"], 0);
    // Bounded: the final flush waits at most 5 s.
    assert!(took < plain + Duration::from_secs(8), "{took:?}");
    // A collector that answers after 3 s a request: the replay ends within the flush bound,
    // what was not sent is counted.
    let r = receiver("slow", &["--slow", "3"]);
    let url = r.url();
    let (slow, err, took) = replay(&["--otlp", &url], &cap);
    assert_eq!(slow["methods"], base["methods"]);
    assert!(took < plain + Duration::from_secs(8), "{took:?}");
    let sent: u64 = err
        .split("otlp: ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("sent");
    let dropped: u64 = err
        .split(" dropped")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("dropped");
    assert_eq!(sent + dropped, 660, "{err}");
}

#[test]
fn the_prometheus_endpoint_serves_the_otel_names_and_counts_the_drops() {
    let dir = std::env::temp_dir().join(format!("grpctap-otel-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let text = dir.join("metrics.txt");
    let cap = common::captures().join("py-traced-lo.pcap");
    let (summary, _, _) = replay(
        &[
            "--metrics-names",
            "both",
            "--metrics-text",
            text.to_str().expect("path"),
            "--otlp",
            "http://127.0.0.1:9",
        ],
        &cap,
    );
    let m = std::fs::read_to_string(&text).expect("metrics");
    // OpenTelemetry's histogram, labelled by its attributes; error_type only on errors.
    let mut got: BTreeMap<String, u64> = BTreeMap::new();
    for l in m
        .lines()
        .filter(|l| l.starts_with("rpc_server_call_duration_seconds_count{"))
    {
        assert!(l.contains("rpc_system_name=\"grpc\""), "{l}");
        assert_eq!(
            l.contains("error_type="),
            !l.contains("rpc_status_code=\"OK\""),
            "{l}"
        );
        let code = l
            .split("rpc_status_code=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .expect("code")
            .to_owned();
        let n: u64 = l
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .expect("count");
        *got.entry(code).or_default() += n;
    }
    let want: BTreeMap<String, u64> = summary["methods"][0]["status"]
        .as_object()
        .expect("status")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("n")))
        .collect();
    assert_eq!(got, want);
    // The go-grpc-prometheus names are still there.
    assert!(m.contains("grpc_server_handled_total{"));
    // The spans the dead endpoint never took.
    assert!(
        m.lines()
            .any(|l| l == "grpctap_otlp_spans_dropped_total 20"),
        "{m}"
    );
    // OTel names only: no go-grpc-prometheus call series.
    let (_, _, _) = replay(
        &[
            "--metrics-names",
            "otel",
            "--metrics-text",
            text.to_str().expect("path"),
        ],
        &cap,
    );
    let m = std::fs::read_to_string(&text).expect("metrics");
    assert!(m.contains("rpc_server_call_duration_seconds_count{"));
    assert!(!m.contains("grpc_server_handled_total"));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn grpctap_own_families_go_over_otlp_too() {
    let r = receiver("own", &[]);
    let url = r.url();
    // A TLS capture replayed without its keys: two connections that stayed encrypted.
    let (_, err, _) = replay(
        &["--otlp", &url],
        &common::captures().join("go-tls13-lo.pcap.gz"),
    );
    assert!(err.contains("otlp: 0 spans sent"), "{err}");
    let sums = r.lines("sum");
    let tls: Vec<&Value> = sums
        .iter()
        .filter(|s| s["name"] == "grpctap.tls.connections")
        .collect();
    assert_eq!(tls.len(), 1, "{sums:?}");
    assert_eq!(tls[0]["attributes"]["state"], "no_key");
    assert_eq!(tls[0]["value"], 2);
    assert_eq!(tls[0]["monotonic"], true);
    // A capture joined mid-way: calls named and ended by inference, and the HPACK entries
    // from before the capture, counted as such.
    let r = receiver("inferred", &[]);
    let url = r.url();
    let (summary, _, _) = replay(
        &["--otlp", &url, "--proto-path", "testdata/proto"],
        &common::captures().join("go-midjoin-lo.pcap.gz"),
    );
    let sums = r.lines("sum");
    let inferred: u64 = sums
        .iter()
        .filter(|s| s["name"] == "grpctap.calls.inferred")
        .filter_map(|s| s["value"].as_u64())
        .sum();
    for (kind, n) in summary["capture"]["anomalies"]
        .as_object()
        .expect("anomalies")
    {
        let got = sums
            .iter()
            .find(|s| s["name"] == "grpctap.decode.anomalies" && s["attributes"]["kind"] == *kind)
            .map(|s| s["value"].clone());
        assert_eq!(got.as_ref(), Some(n), "{kind}");
    }
    let t = &summary["totals"];
    let want =
        t["method_inferred"].as_u64().unwrap_or(0) + t["status_inferred"].as_u64().unwrap_or(0);
    assert!(want > 0, "{summary}");
    assert_eq!(inferred, want);
}

#[test]
fn message_events_are_the_calls_messages_when_asked_for() {
    let r = receiver("messages", &[]);
    let url = r.url();
    // Streams of up to 1000 messages: the first 128 each way are events.
    let cap = common::captures().join("py-streams-lo.pcap.gz");
    replay(&["--otlp", &url, "--otlp-message-events"], &cap);
    let calls = common::replay_lines(&["--calls", "-"], "py-streams-lo.pcap.gz");
    assert!(calls.iter().any(|c| c["resp_msgs"].as_u64() > Some(128)));
    let spans = r.lines("span");
    assert_eq!(spans.len(), calls.len());
    for s in &spans {
        let c = calls
            .iter()
            .find(|c| {
                (c["start"].as_f64().expect("start") - s["start"].as_u64().expect("s") as f64 / 1e9)
                    .abs()
                    < 2e-6
                    && port(&c["client"]) == s["attributes"]["client.port"].as_u64().expect("p")
            })
            .expect("the span's call");
        let msgs: Vec<&Value> = s["events"]
            .as_array()
            .expect("events")
            .iter()
            .filter(|e| e["name"] == "rpc.message")
            .collect();
        let received = msgs
            .iter()
            .filter(|e| e["attributes"]["rpc.message.type"] == "RECEIVED")
            .count();
        let sent = msgs
            .iter()
            .filter(|e| e["attributes"]["rpc.message.type"] == "SENT")
            .count();
        // A SERVER span receives the requests and sends the responses (first 128 each way).
        let want = |n: &Value| n.as_u64().expect("n").min(128) as usize;
        assert_eq!(received, want(&c["req_msgs"]), "{}", s["name"]);
        assert_eq!(sent, want(&c["resp_msgs"]), "{}", s["name"]);
        // In time order, inside the span.
        let times: Vec<u64> = msgs.iter().filter_map(|e| e["time"].as_u64()).collect();
        assert!(times.windows(2).all(|w| w[0] <= w[1]));
        let (start, end) = (
            s["start"].as_u64().expect("s"),
            s["end"].as_u64().expect("e"),
        );
        assert!(
            times.iter().all(|&t| t >= start && t <= end),
            "{}",
            s["name"]
        );
    }
    // Without the flag, no message events.
    let r = receiver("no-messages", &[]);
    let url = r.url();
    replay(&["--otlp", &url], &cap);
    assert!(r.lines("span").iter().all(|s| {
        s["events"]
            .as_array()
            .is_none_or(|e| e.iter().all(|e| e["name"] != "rpc.message"))
    }));
}

#[test]
fn with_both_sides_each_call_is_a_client_span_and_its_server_child() {
    let r = receiver("both", &[]);
    let url = r.url();
    replay(
        &["--otlp", &url, "--metrics-side", "both"],
        &common::captures().join("py-traced-lo.pcap"),
    );
    let spans = r.lines("span");
    assert_eq!(spans.len(), 40);
    let clients: BTreeMap<&str, &Value> = spans
        .iter()
        .filter(|s| s["span_kind"] == 3)
        .map(|s| (s["span_id"].as_str().expect("id"), s))
        .collect();
    assert_eq!(clients.len(), 20);
    for s in spans.iter().filter(|s| s["span_kind"] == 2) {
        let parent = clients
            .get(s["parent_span_id"].as_str().expect("parent"))
            .expect("a SERVER span's parent is its CLIENT span");
        assert_eq!(parent["trace_id"], s["trace_id"]);
        assert_eq!(parent["start"], s["start"]);
        // The client's peer is the server.
        assert_eq!(
            parent["attributes"]["network.peer.port"],
            s["attributes"]["server.port"]
        );
    }
}
