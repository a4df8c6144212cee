//! The per-method summary: a table for people (`replay` default) and JSON (`--summary-json`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use capture::CaptureStats;
use decoder::aggregate::{Aggregator, MethodStats};
use decoder::findings::{Finding, Findings, Thresholds};
use decoder::output::Output;
use decoder::tls::session::{TlsInfo, TlsState};
use decoder::{AnomalyKind, CallRecord, ConnEvent, ConnId, Nanos, Sink};
use serde::Serialize;

/// What decoding found besides calls.
#[derive(Debug, Default, Clone)]
pub(crate) struct DecodeStats {
    pub(crate) http2_connections: u64,
    /// HTTP/1.1 connections carrying requests (gRPC-Web, Connect).
    pub(crate) http1_connections: u64,
    /// HTTP/2 connections that began as HTTP/1.1 (`Upgrade: h2c`).
    pub(crate) h2c_upgrades: u64,
    pub(crate) other_connections: u64,
    pub(crate) pings: BTreeMap<&'static str, u64>,
    pub(crate) goaways: BTreeMap<String, u64>,
    pub(crate) anomalies: BTreeMap<&'static str, u64>,
    pub(crate) calls_unknown_method: u64,
    /// Messages `--bodies` could not read (decompression bombs, invalid data, cut messages).
    pub(crate) payload_errors: u64,
    /// HTTP/2 requests that are not gRPC, by protocol (`connect`, `grpc-web`, `other`).
    pub(crate) not_grpc: BTreeMap<&'static str, u64>,
    /// SETTINGS values seen, by "side:NAME" (bounded: a hostile peer can send many).
    pub(crate) settings: BTreeMap<String, std::collections::BTreeSet<u32>>,
    /// TLS connections and how far decryption got.
    pub(crate) tls: TlsStats,
}

/// TLS connections: how many, how many were decrypted, why the others were not.
#[derive(Debug, Default, Clone, Serialize)]
pub(crate) struct TlsStats {
    pub(crate) connections: u64,
    pub(crate) decrypted: u64,
    /// Connections not (or not wholly) decrypted, by the reason (`no_key`, `unsupported`,
    /// `handshake_not_seen`, `lost`, `handshake`).
    pub(crate) encrypted: BTreeMap<&'static str, u64>,
    /// Connections by version ("1.3", "1.2", ...).
    pub(crate) versions: BTreeMap<&'static str, u64>,
    /// Record bytes of TLS connections, and of those the bytes never decrypted.
    pub(crate) bytes: u64,
    pub(crate) encrypted_bytes: u64,
    /// Records that did not authenticate.
    pub(crate) bad_records: u64,
    /// TLS 1.3 early data records.
    pub(crate) early_data_records: u64,
}

impl TlsStats {
    fn is_empty(&self) -> bool {
        self.connections == 0
    }
}

/// Distinct SETTINGS keys and values per key kept in the summary.
const MAX_SETTINGS: usize = 64;

/// The output behind the summary table and `--summary-json`: per-method aggregation and the
/// decode counters.
#[derive(Debug)]
pub(crate) struct Summary {
    pub(crate) agg: Aggregator,
    pub(crate) stats: DecodeStats,
    /// What the traffic shows of the gRPC failure modes (none: `--no-findings`).
    pub(crate) findings: Option<Findings>,
}

impl Summary {
    pub(crate) fn new(max_methods: usize) -> Summary {
        Summary {
            agg: Aggregator::new(max_methods),
            stats: DecodeStats::default(),
            findings: Some(Findings::new(Thresholds::default())),
        }
    }

    /// Looks for findings by `findings` (none: not at all).
    pub(crate) fn with_findings(mut self, findings: Option<Findings>) -> Summary {
        self.findings = findings;
        self
    }
}

impl Sink for Summary {
    fn call_started(&mut self, call: &CallRecord) {
        if let Some(f) = self.findings.as_mut() {
            f.call_started(call);
        }
    }

    fn call_ended(&mut self, call: &CallRecord) {
        if let Some(f) = self.findings.as_mut() {
            f.call_ended(call);
        }
        self.agg.record(call);
        if call.method.is_none() {
            self.stats.calls_unknown_method += 1;
        }
    }

    fn tls(&mut self, _conn: ConnId, info: &TlsInfo, state: TlsState) {
        let t = &mut self.stats.tls;
        t.connections += 1;
        if state == TlsState::Decrypting {
            t.decrypted += 1;
        } else {
            *t.encrypted.entry(state.name()).or_default() += 1;
        }
        if let Some(v) = info.version {
            *t.versions.entry(TlsInfo::version_name(v)).or_default() += 1;
        }
        t.bytes += info.bytes.iter().sum::<u64>();
        t.encrypted_bytes += info.encrypted_bytes.iter().sum::<u64>();
        t.bad_records += info.bad_records;
        t.early_data_records += info.early_data_records;
    }

    fn conn_event(&mut self, conn: ConnId, event: ConnEvent) {
        if let Some(f) = self.findings.as_mut() {
            f.conn_event(conn, event);
        }
        let s = &mut self.stats;
        match event {
            ConnEvent::Http2 { upgraded, .. } => {
                s.http2_connections += 1;
                if upgraded {
                    // Counted once: as what it became.
                    s.http1_connections = s.http1_connections.saturating_sub(1);
                    s.h2c_upgrades += 1;
                }
            }
            ConnEvent::Http1 { .. } => s.http1_connections += 1,
            ConnEvent::Closed {
                http2: false,
                tls: false,
                ..
            } => s.other_connections += 1,
            ConnEvent::Closed { .. } => {}
            ConnEvent::Ping(side) => *s.pings.entry(side.name()).or_default() += 1,
            ConnEvent::Goaway { by, code, .. } => {
                let code = decoder::h2::frame::ErrorCode(code).name();
                *s.goaways
                    .entry(format!("{}:{code}", by.name()))
                    .or_default() += 1;
            }
            ConnEvent::Setting { by, id, value } => {
                let key = format!("{}:{}", by.name(), decoder::h2::frame::SettingId(id).name());
                let n = s.settings.len();
                if let Some(values) = s.settings.get_mut(&key) {
                    if values.len() < MAX_SETTINGS {
                        values.insert(value);
                    }
                } else if n < MAX_SETTINGS {
                    s.settings.insert(key, [value].into());
                }
            }
            ConnEvent::Anomaly(AnomalyKind::NotHttp2) => s.other_connections += 1,
            ConnEvent::Anomaly(kind) => *s.anomalies.entry(kind.name()).or_default() += 1,
            ConnEvent::NotGrpc(kind) => *s.not_grpc.entry(kind.name()).or_default() += 1,
            ConnEvent::PingRtt { .. } | ConnEvent::LargeWindow { .. } => {}
        }
    }
}

impl Output for Summary {}

#[derive(Serialize)]
struct Latency {
    p50: Option<f64>,
    p90: Option<f64>,
    p99: Option<f64>,
    max: Option<f64>,
}

#[derive(Serialize)]
struct MethodJson<'a> {
    method: &'a str,
    calls: u64,
    errors: u64,
    unfinished: u64,
    status_unknown: u64,
    error_unknown_code: u64,
    method_inferred: u64,
    status_inferred: u64,
    rate_per_s: Option<f64>,
    status: &'a BTreeMap<&'static str, u64>,
    status_source: &'a BTreeMap<&'static str, u64>,
    call_types: BTreeMap<&'static str, u64>,
    req_msgs: u64,
    resp_msgs: u64,
    req_bytes: u64,
    resp_bytes: u64,
    latency_s: Latency,
    calls_without_start: u64,
}

#[derive(Serialize)]
struct Totals<'a> {
    calls: u64,
    errors: u64,
    unfinished: u64,
    status_unknown: u64,
    error_unknown_code: u64,
    method_inferred: u64,
    status_inferred: u64,
    status: &'a BTreeMap<&'static str, u64>,
    req_msgs: u64,
    resp_msgs: u64,
    methods_folded: u64,
}

#[derive(Serialize)]
struct CaptureJson<'a> {
    duration_s: f64,
    packets: u64,
    bytes: u64,
    connections: u64,
    http2_connections: u64,
    http1_connections: u64,
    h2c_upgrades: u64,
    other_connections: u64,
    gaps: u64,
    gap_bytes: u64,
    truncated_packets: u64,
    malformed_packets: u64,
    time_jumps: u64,
    calls_unknown_method: u64,
    payload_errors: u64,
    requests_not_grpc: &'a BTreeMap<&'static str, u64>,
    #[serde(skip_serializing_if = "TlsStats::is_empty")]
    tls: &'a TlsStats,
    anomalies: &'a BTreeMap<&'static str, u64>,
    pings: &'a BTreeMap<&'static str, u64>,
    goaways: &'a BTreeMap<String, u64>,
    settings: &'a BTreeMap<String, std::collections::BTreeSet<u32>>,
}

#[derive(Serialize)]
struct SummaryJson<'a> {
    totals: Totals<'a>,
    methods: Vec<MethodJson<'a>>,
    capture: CaptureJson<'a>,
}

fn secs(d: Option<Duration>) -> Option<f64> {
    d.map(|d| d.as_secs_f64())
}

fn method_json<'a>(name: &'a str, m: &'a MethodStats, span: f64) -> MethodJson<'a> {
    MethodJson {
        method: name,
        calls: m.calls,
        errors: m.errors(),
        unfinished: m.unfinished,
        status_unknown: m.status_unknown,
        error_unknown_code: m.error_unknown_code,
        method_inferred: m.method_inferred,
        status_inferred: m.status_inferred,
        rate_per_s: (span > 0.0).then(|| m.calls as f64 / span),
        status: &m.status,
        status_source: &m.sources,
        call_types: m.call_types.iter().map(|(k, v)| (k.name(), *v)).collect(),
        req_msgs: m.req_msgs,
        resp_msgs: m.resp_msgs,
        req_bytes: m.req_bytes,
        resp_bytes: m.resp_bytes,
        latency_s: Latency {
            p50: secs(m.latency.quantile(0.5)),
            p90: secs(m.latency.quantile(0.9)),
            p99: secs(m.latency.quantile(0.99)),
            max: secs(m.latency.max()),
        },
        calls_without_start: m.no_start,
    }
}

/// Capture span in seconds (first to last event).
pub(crate) fn span(first: Option<Nanos>, last: Nanos) -> f64 {
    first.map_or(0.0, |f| last.0.saturating_sub(f.0) as f64 / 1e9)
}

/// The `--summary-json` document.
pub(crate) fn to_json(
    agg: &Aggregator,
    cap: &CaptureStats,
    dec: &DecodeStats,
    span_s: f64,
) -> serde_json::Value {
    let t = &agg.total;
    let doc = SummaryJson {
        totals: Totals {
            calls: t.calls,
            errors: t.errors(),
            unfinished: t.unfinished,
            status_unknown: t.status_unknown,
            error_unknown_code: t.error_unknown_code,
            method_inferred: t.method_inferred,
            status_inferred: t.status_inferred,
            status: &t.status,
            req_msgs: t.req_msgs,
            resp_msgs: t.resp_msgs,
            methods_folded: agg.folded_methods(),
        },
        methods: agg
            .methods()
            .into_iter()
            .map(|(n, m)| method_json(n, m, span_s))
            .collect(),
        capture: CaptureJson {
            duration_s: span_s,
            packets: cap.packets,
            bytes: cap.bytes,
            connections: cap.conns_opened,
            http2_connections: dec.http2_connections,
            http1_connections: dec.http1_connections,
            h2c_upgrades: dec.h2c_upgrades,
            other_connections: dec.other_connections,
            gaps: cap.gaps,
            gap_bytes: cap.gap_bytes,
            truncated_packets: cap.truncated,
            malformed_packets: cap.malformed,
            time_jumps: cap.time_jumps,
            calls_unknown_method: dec.calls_unknown_method,
            payload_errors: dec.payload_errors,
            requests_not_grpc: &dec.not_grpc,
            tls: &dec.tls,
            anomalies: &dec.anomalies,
            pings: &dec.pings,
            goaways: &dec.goaways,
            settings: &dec.settings,
        },
    };
    serde_json::to_value(doc).unwrap_or(serde_json::Value::Null)
}

fn fmt_dur(d: Option<Duration>) -> String {
    match d {
        None => "-".into(),
        Some(d) if d < Duration::from_millis(1) => format!("{:.0}µs", d.as_secs_f64() * 1e6),
        Some(d) if d < Duration::from_secs(1) => format!("{:.1}ms", d.as_secs_f64() * 1e3),
        Some(d) => format!("{:.2}s", d.as_secs_f64()),
    }
}

/// Status counts other than OK, most frequent first: "NOT_FOUND:3 INTERNAL:1".
fn error_codes(m: &MethodStats) -> String {
    let mut v: Vec<(&str, u64)> = m
        .status
        .iter()
        .filter(|(k, _)| **k != "OK")
        .map(|(k, v)| (*k, *v))
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut s: Vec<String> = v.iter().map(|(k, n)| format!("{k}:{n}")).collect();
    // Of the errors of unknown code, those that ended at their deadline are one of two codes.
    let near = m
        .sources
        .get(decoder::StatusSource::DeadlineNear.name())
        .copied()
        .unwrap_or(0);
    if near > 0 {
        s.push(format!("DEADLINE_EXCEEDED|CANCELLED:{near}"));
    }
    if m.error_unknown_code > near {
        s.push(format!(
            "error-code-unknown:{}",
            m.error_unknown_code - near
        ));
    }
    if m.status_unknown > 0 {
        s.push(format!("status-unreadable:{}", m.status_unknown));
    }
    if s.is_empty() {
        "-".into()
    } else {
        s.join(" ")
    }
}

/// ERR%: errors among the calls whose outcome is known; marked `*` when some calls' status
/// could not be read (the share is then of fewer calls), `?` when none could.
fn err_share(m: &MethodStats) -> String {
    let known = m.known_outcome();
    match (m.calls, known) {
        (0, _) => "-".into(),
        (_, 0) => "?".into(),
        (calls, known) => {
            let share = format!("{:.1}", 100.0 * m.errors() as f64 / known as f64);
            if known < calls { share + "*" } else { share }
        }
    }
}

/// The per-method table and the decode-quality line.
pub(crate) fn render_table(
    agg: &Aggregator,
    cap: &CaptureStats,
    dec: &DecodeStats,
    span_s: f64,
) -> String {
    let header = [
        "METHOD", "CALLS", "RATE/s", "ERR", "ERR%", "P50", "P90", "P99", "MAX", "REQ", "RESP",
        "OPEN", "ERRORS",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    let mut add = |name: &str, m: &MethodStats| {
        rows.push(vec![
            // A method name is wire text: no control character reaches the terminal.
            types::printable(name).into_owned(),
            m.calls.to_string(),
            if span_s > 0.0 {
                format!("{:.1}", m.calls as f64 / span_s)
            } else {
                "-".into()
            },
            m.errors().to_string(),
            err_share(m),
            fmt_dur(m.latency.quantile(0.5)),
            fmt_dur(m.latency.quantile(0.9)),
            fmt_dur(m.latency.quantile(0.99)),
            fmt_dur(m.latency.max()),
            m.req_msgs.to_string(),
            m.resp_msgs.to_string(),
            m.unfinished.to_string(),
            error_codes(m),
        ]);
    };
    for (name, m) in agg.methods() {
        add(name, m);
    }
    add("TOTAL", &agg.total);
    let cols = rows[0].len();
    let widths: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let w = widths[c];
            let pad = w - cell.chars().count();
            if c == 0 || c == cols - 1 {
                line.push_str(cell);
                line.push_str(&" ".repeat(pad));
            } else {
                line.push_str(&" ".repeat(pad));
                line.push_str(cell);
            }
            line.push_str("  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let anomalies: u64 = dec.anomalies.values().sum();
    let _ = write!(
        out,
        "\ncapture: {:.3}s, {} packets, {} connections ({} HTTP/2{}, {}{} other), {} gaps ({} bytes); \
         decode: {} calls with unknown method, {} anomalies",
        span_s,
        cap.packets,
        cap.conns_opened,
        dec.http2_connections,
        if dec.h2c_upgrades > 0 {
            format!(" ({} upgraded from HTTP/1.1)", dec.h2c_upgrades)
        } else {
            String::new()
        },
        if dec.http1_connections > 0 {
            format!("{} HTTP/1.1, ", dec.http1_connections)
        } else {
            String::new()
        },
        dec.other_connections,
        cap.gaps,
        cap.gap_bytes,
        dec.calls_unknown_method,
        anomalies,
    );
    if anomalies > 0 {
        let list: Vec<String> = dec
            .anomalies
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let _ = write!(out, " ({})", list.join(" "));
    }
    if cap.time_jumps > 0 {
        let _ = write!(
            out,
            "; {} packets with a timestamp far off the others (taken at the time before them)",
            cap.time_jumps
        );
    }
    if !dec.not_grpc.is_empty() {
        let n: u64 = dec.not_grpc.values().sum();
        let list: Vec<String> = dec
            .not_grpc
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let _ = write!(
            out,
            "; {n} HTTP/2 requests that are not gRPC, not counted as calls ({})",
            list.join(" ")
        );
    }
    out.push('\n');
    if dec.tls.connections > 0 {
        let t = &dec.tls;
        let why: Vec<String> = t
            .encrypted
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        let versions: Vec<String> = t.versions.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = write!(
            out,
            "tls: {} connections (TLS {}), {} decrypted{}; {} of {} bytes stayed encrypted",
            t.connections,
            if versions.is_empty() {
                "version unknown".to_owned()
            } else {
                versions.join(", ")
            },
            t.decrypted,
            if why.is_empty() {
                String::new()
            } else {
                format!(", not decrypted: {}", why.join(", "))
            },
            t.encrypted_bytes,
            t.bytes,
        );
        if t.bad_records > 0 {
            let _ = write!(out, "; {} records failed authentication", t.bad_records);
        }
        out.push('\n');
    }
    let t = &agg.total;
    if t.method_inferred > 0 || t.status_inferred > 0 || t.status_unknown > 0 {
        // Say how much was read and how much inferred (docs/calls.md): mostly connections
        // joined mid-way, and cancels at a deadline.
        let _ = writeln!(
            out,
            "inferred: {} calls named by inference, {} given a status or an error by inference \
             ({} of them errors whose code is unknown), {} with no status{}",
            t.method_inferred,
            t.status_inferred,
            t.error_unknown_code,
            t.status_unknown,
            if t.status_unknown > 0 {
                " (ERR% * is of the calls with one)"
            } else {
                ""
            }
        );
    }
    out
}

/// Seconds since the Unix epoch.
fn unix(t: Nanos) -> f64 {
    t.0 as f64 / 1e9
}

/// The findings as JSON (`--summary-json`'s `findings`).
pub(crate) fn findings_json(findings: &[Finding]) -> serde_json::Value {
    findings
        .iter()
        .map(|f| {
            let evidence: serde_json::Map<String, serde_json::Value> = f
                .evidence
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::json!(v)))
                .collect();
            serde_json::json!({
                "kind": f.kind.name(),
                "severity": f.severity.name(),
                "certainty": f.certainty.name(),
                "scope": {
                    "method": f.scope.method.as_deref(),
                    "service": f.scope.service.as_deref(),
                    "server": f.scope.server.map(|a| a.to_string()),
                    "client": f.scope.client.map(|a| a.to_string()),
                    "conn": f.scope.conn.map(ConnId::get),
                },
                "from": unix(f.from),
                "to": unix(f.to),
                "summary": f.summary,
                "evidence": evidence,
                "advice": f.advice(),
                "calls": f.calls.iter().map(|(c, s)| serde_json::json!({"conn": c.get(), "stream": s})).collect::<Vec<_>>(),
                "conns": f.conns.iter().map(|c| c.get()).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// The findings for people: one line each (most severe first), the evidence and the fix
/// under it; times from `first`, the capture's first packet.
pub(crate) fn render_findings(findings: &[Finding], first: Option<Nanos>) -> String {
    let mut out = String::new();
    if findings.is_empty() {
        out.push_str("findings: none\n");
        return out;
    }
    let _ = writeln!(out, "findings ({}, most severe first):", findings.len());
    let at = |t: Nanos| match first.and_then(|f| t.checked_since(f)) {
        Some(d) => format!("+{:.1}s", d.as_secs_f64()),
        None => "-".to_owned(),
    };
    for f in findings {
        let mut scope = Vec::new();
        if let Some(m) = &f.scope.method {
            scope.push(m.to_string());
        } else if let Some(s) = &f.scope.service {
            scope.push(s.clone());
        }
        if let Some(c) = f.scope.conn {
            scope.push(format!("conn {}", c.get()));
        }
        if let Some(s) = f.scope.server
            && f.scope.method.is_none()
        {
            scope.push(format!("server {s}"));
        }
        let _ = writeln!(
            out,
            "  {:<8} {} [{}]: {}",
            f.severity.name().to_uppercase(),
            f.kind.name(),
            scope.join(", "),
            f.summary
        );
        let evidence = f.evidence_words();
        let _ = writeln!(
            out,
            "           {} to {}, certainty {}: {}",
            at(f.from),
            at(f.to),
            f.certainty.name(),
            evidence.join(" ")
        );
        let _ = writeln!(out, "           fix: {}", f.advice());
    }
    out
}
