//! Pairing grpctap's call records with the ground truth the client logged when a capture was
//! made (`testdata/captures/*.calls.jsonl`), and judging names and statuses against it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The ground truth of a capture file, when it has one: `X-lo.pcap.gz` and `X.pcap` are told
/// by `X.calls.jsonl`.
pub(crate) fn truth_of(capture: &Path) -> Option<PathBuf> {
    let name = capture.file_name()?.to_str()?;
    let stem = name
        .trim_end_matches(".gz")
        .trim_end_matches(".pcapng")
        .trim_end_matches(".pcap");
    let dir = capture.parent()?;
    [stem, stem.trim_end_matches("-lo")]
        .iter()
        .map(|s| dir.join(format!("{s}.calls.jsonl")))
        .find(|p| p.exists())
}

/// The calls a client logged (lines that annotate calls, such as trace ids, left out). Where
/// the server logged each attempt of the calls (`X.attempts.jsonl`: gRPC retries and hedging,
/// one stream per attempt), the attempts are the truth of the streams: attempt 1 under the
/// call's id, attempt N under `id * 1000 + N` (as [`call_id`] reads them off the wire).
pub(crate) fn load(path: &Path) -> Vec<Value> {
    let name = path.to_string_lossy();
    let attempts = std::path::PathBuf::from(name.replace(".calls.jsonl", ".attempts.jsonl"));
    let (file, per_attempt) = if attempts.exists() && attempts != path {
        (attempts.as_path(), true)
    } else {
        (path, false)
    };
    std::fs::read_to_string(file)
        .expect("calls.jsonl")
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).expect("json line"))
        .filter(|v| v.get("method").is_some() && v.get("status").is_some())
        .map(|mut v| {
            if per_attempt {
                // The server logs the id as the metadata value it read (a string).
                let id = v["call_id"]
                    .as_u64()
                    .or_else(|| v["call_id"].as_str()?.parse().ok());
                if let (Some(id), Some(n)) = (id, v["attempt"].as_u64()) {
                    v["call_id"] = (if n > 1 { id * 1000 + n } else { id }).into();
                }
            }
            v
        })
        .collect()
}

/// The call id a record carries: `x-call-id`, or a numeric value under a name from before the
/// capture (nghttp2 sends custom metadata with its name by index).
pub(crate) fn call_id(c: &Value) -> Option<u64> {
    let req = c["metadata"]["request"].as_array()?;
    let field = |pred: &dyn Fn(&str) -> bool| {
        req.iter()
            .filter(|kv| pred(kv[0].as_str().unwrap_or("")))
            .find_map(|kv| kv[1].as_str()?.parse().ok())
    };
    let id = field(&|n| n == "x-call-id").or_else(|| field(&|n| n.starts_with("<unknown")))?;
    // A retry or hedge: the attempt after the previous ones.
    Some(match field(&|n| n == "grpc-previous-rpc-attempts") {
        Some(prev) => id * 1000 + prev + 1,
        None => id,
    })
}

fn port(addr: &str) -> Option<u16> {
    addr.rsplit(':').next()?.parse().ok()
}

/// The status the client logged, as the wire says it: tonic reports its own deadline as
/// CANCELLED "Timeout expired" (grpc-rust PR #1826), which on the wire is a CANCEL at the
/// deadline (DEADLINE_EXCEEDED by gRPC's rules), unless tonic's server said it.
pub(crate) fn wire_status(truth: &Value, ours: &Value) -> String {
    let tonic_deadline = truth["status"] == "CANCELLED" && truth["message"] == "Timeout expired";
    let server_said_it = ours["grpc_status"] == 1 && ours["grpc_message"] == "Timeout expired";
    if tonic_deadline && !server_said_it {
        "DEADLINE_EXCEEDED".into()
    } else {
        truth["status"].as_str().unwrap_or("").to_owned()
    }
}

/// Whether our status `got` is what the wire said of the logged call. Besides equal names: the
/// server's trailers said OK while the client had given up on the call (its deadline or cancel
/// fired as the answer was on its way, as grpc-js does on a busy event loop): the wire's OK is
/// the server's word, the client's verdict is its own (docs/calls.md).
pub(crate) fn agrees(got: &str, ours: &Value, truth: &Value) -> bool {
    let want = wire_status(truth, ours);
    got == want
        || (got == "OK"
            && (ours["status_source"] == "trailers" || ours["status_source"] == "trailers_only")
            && (want == "DEADLINE_EXCEEDED" || want == "CANCELLED"))
}

/// Each of our records with the logged call it is: by call id; for calls without one, by
/// client port and end time, only when one logged call of that port ended near it and the next
/// nearest much further. `None` when none fits for sure.
pub(crate) fn pair<'a>(
    ours: &'a [Value],
    truth: &'a [Value],
) -> Vec<(&'a Value, Option<&'a Value>)> {
    let by_id: BTreeMap<u64, &Value> = truth
        .iter()
        .filter_map(|t| Some((t["call_id"].as_u64()?, t)))
        .collect();
    // A failed call has no reply to echo its peer: its port is that of its connection.
    let mut port_of_conn: BTreeMap<u64, u16> = BTreeMap::new();
    for t in truth {
        if let (Some(c), Some(p)) = (t["conn"].as_u64(), t["client_peer"].as_str().and_then(port)) {
            port_of_conn.insert(c, p);
        }
    }
    let port_of = |t: &Value| {
        t["client_peer"]
            .as_str()
            .and_then(port)
            .or_else(|| port_of_conn.get(&t["conn"].as_u64()?).copied())
    };
    let mut out = Vec::new();
    for c in ours {
        let mut t = call_id(c).and_then(|i| by_id.get(&i).copied());
        if t.is_none()
            && let (Some(cp), Some(end)) = (c["client"].as_str().and_then(port), c["end"].as_f64())
        {
            let mut near: Vec<(f64, &Value)> = truth
                .iter()
                .filter(|t| port_of(t) == Some(cp))
                .filter_map(|t| Some(((t["end"].as_f64()? - end).abs(), t)))
                .filter(|(d, _)| *d < 0.1)
                .collect();
            near.sort_by(|a, b| a.0.total_cmp(&b.0));
            // Unambiguous only: the next candidate is much further than the nearest.
            t = match near.as_slice() {
                [(d, one)] if *d < 0.05 => Some(*one),
                [(d, one), (d2, _), ..] if *d < 0.02 && *d2 > 3.0 * d + 0.002 => Some(*one),
                _ => None,
            };
        }
        out.push((c, t));
    }
    out
}

/// What a replay got right and wrong, against the truth.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Score {
    /// Records paired with a logged call.
    pub(crate) calls: u64,
    /// Of which the request headers were seen.
    pub(crate) started: u64,
    pub(crate) named_exact: u64,
    pub(crate) named_inferred: u64,
    /// Of the calls whose request headers were seen.
    pub(crate) started_named: u64,
    pub(crate) began_before_named: u64,
    pub(crate) wrong_names: u64,
    /// Ended calls (not still open at the end).
    pub(crate) ended: u64,
    pub(crate) status_exact: u64,
    pub(crate) status_inferred: u64,
    /// Errors whose code could not be known.
    pub(crate) error_only: u64,
    pub(crate) wrong_exact: u64,
    pub(crate) wrong_inferred: u64,
}

impl Score {
    /// Scores `ours` against the client's log.
    pub(crate) fn of(ours: &[Value], truth: &[Value]) -> (Score, Vec<String>) {
        Score::of_pairs(pair(ours, truth))
    }

    /// Scores records already paired with the calls they are.
    pub(crate) fn of_pairs(pairs: Vec<(&Value, Option<&Value>)>) -> (Score, Vec<String>) {
        let mut s = Score::default();
        let mut wrong = Vec::new();
        for (c, t) in pairs {
            let Some(t) = t else { continue };
            s.calls += 1;
            let started = c["start"].is_f64();
            s.started += u64::from(started);
            if let Some(m) = c["method"].as_str() {
                match c["method_confidence"].as_str() {
                    Some("exact") => s.named_exact += 1,
                    _ => s.named_inferred += 1,
                }
                if started {
                    s.started_named += 1;
                } else {
                    s.began_before_named += 1;
                }
                if t["method"].as_str() != Some(m) {
                    s.wrong_names += 1;
                    wrong.push(format!(
                        "name {m} for {} (stream {})",
                        t["method"], c["stream_id"]
                    ));
                }
            }
            if c["status_source"] == "unfinished" {
                continue;
            }
            s.ended += 1;
            let want = wire_status(t, c);
            match (c["status"].as_str(), c["status_confidence"].as_str()) {
                (Some(got), conf) => {
                    let exact = conf == Some("exact");
                    if exact {
                        s.status_exact += 1;
                    } else {
                        s.status_inferred += 1;
                    }
                    if !agrees(got, c, t) {
                        if exact {
                            s.wrong_exact += 1;
                        } else {
                            s.wrong_inferred += 1;
                        }
                        wrong.push(format!(
                            "status {got} ({}, {}) for {want} (stream {}, {})",
                            c["status_source"],
                            conf.unwrap_or("?"),
                            c["stream_id"],
                            t["method"]
                        ));
                    }
                }
                (None, _) if c["error"] == true => {
                    s.error_only += 1;
                    if want == "OK" {
                        s.wrong_inferred += 1;
                        wrong.push(format!(
                            "status error ({}, inferred) for OK (stream {})",
                            c["status_source"], c["stream_id"]
                        ));
                    }
                }
                (None, _) => {}
            }
        }
        (s, wrong)
    }

    /// Adds another score.
    pub(crate) fn add(&mut self, o: &Score) {
        let Score {
            calls,
            started,
            named_exact,
            named_inferred,
            started_named,
            began_before_named,
            wrong_names,
            ended,
            status_exact,
            status_inferred,
            error_only,
            wrong_exact,
            wrong_inferred,
        } = *o;
        self.calls += calls;
        self.started += started;
        self.named_exact += named_exact;
        self.named_inferred += named_inferred;
        self.started_named += started_named;
        self.began_before_named += began_before_named;
        self.wrong_names += wrong_names;
        self.ended += ended;
        self.status_exact += status_exact;
        self.status_inferred += status_inferred;
        self.error_only += error_only;
        self.wrong_exact += wrong_exact;
        self.wrong_inferred += wrong_inferred;
    }
}
