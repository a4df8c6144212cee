//! OpenTelemetry over OTLP/HTTP (protobuf bodies, gzip): one span per call, and the RPC
//! duration histograms of the semantic conventions, sent to a collector from a thread of
//! their own.
//!
//! ```text
//! decoder Sink::call_ended -> Otlp (span built, histogram counted; no I/O)
//!   -> bounded queue (QUEUE batches; full: the batch is dropped and counted)
//!   -> export thread: POST /v1/traces, /v1/metrics; retry 429/502/503/504 and connection
//!      errors with backoff (Retry-After honoured), then drop and count
//! ```
//!
//! Decoding never waits for the network: a slow or dead collector costs dropped batches,
//! never memory or speed. The binary has no async runtime and this keeps it so: one blocking
//! HTTP client (ureq) on one thread.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use decoder::output::{Output, Tick};
use decoder::{CallRecord, Confidence, Sink};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1 as pm;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as pt;
use prometheus_client::metrics::counter::Counter;
use prost::Message as _;

/// Spans per request.
const BATCH: usize = 512;
/// Batches waiting for the export thread; past it new ones are dropped.
const QUEUE: usize = 32;
/// The advised bucket boundaries of `rpc.server.call.duration` (seconds), here and on the
/// Prometheus endpoint (`--metrics-names otel`).
pub(crate) const BOUNDS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
/// Attempts per request (the first and the retries).
const ATTEMPTS: u32 = 5;
/// Longest wait asked by a Retry-After that is honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(10);
/// How long the end of a run waits for the last requests.
const FINAL_FLUSH: Duration = Duration::from_secs(5);
/// Metrics are sent this often (wall time) while a run lasts, and at its end.
const METRICS_EVERY: Duration = Duration::from_secs(10);

/// Which side of the calls the tap watches: the span kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpanSide {
    /// SERVER spans (the tap sits at the servers, the default).
    Server,
    /// CLIENT spans.
    Client,
    /// A CLIENT span and its SERVER child per call.
    Both,
}

/// Where and what to send.
#[derive(Clone)]
pub struct OtlpConfig {
    /// Full URLs of the two signals.
    pub traces_url: String,
    /// See `traces_url`.
    pub metrics_url: String,
    /// Request headers (authorization and the like: never printed).
    pub headers: Vec<(String, String)>,
    /// Resource attributes (`service.name` among them).
    pub resource: Vec<(String, String)>,
    /// Span kind.
    pub side: SpanSide,
    /// Distinct methods in metric attributes before `_OTHER`.
    pub max_methods: usize,
    /// Per-request timeout.
    pub timeout: Duration,
}

impl std::fmt::Debug for OtlpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtlpConfig")
            .field("traces_url", &self.traces_url)
            .field("metrics_url", &self.metrics_url)
            .field(
                "headers",
                &self.headers.iter().map(|h| &h.0).collect::<Vec<_>>(),
            )
            .field("resource", &self.resource)
            .field("side", &self.side)
            .finish_non_exhaustive()
    }
}

/// `k1=v1,k2=v2` with percent-encoded values (the OTLP environment variables' format).
pub fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            let k = k.trim();
            (!k.is_empty()).then(|| (k.to_owned(), percent_decode(v.trim())))
        })
        .collect()
}

/// Percent-decoding, as `grpc-message` is decoded (the same escapes).
fn percent_decode(s: &str) -> String {
    decoder::grpc::decode_message(s.as_bytes())
}

impl OtlpConfig {
    /// The configuration an OpenTelemetry SDK would take: `endpoint` (`--otlp`, else
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`) with `/v1/traces` and `/v1/metrics` appended, unless
    /// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `..._METRICS_ENDPOINT` name them whole;
    /// `OTEL_EXPORTER_OTLP_HEADERS` then `headers` (`K=V`); `OTEL_SERVICE_NAME` (else
    /// `grpctap`) and `OTEL_RESOURCE_ATTRIBUTES`. `None` when no endpoint is named.
    pub fn from_env(
        endpoint: Option<&str>,
        headers: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<OtlpConfig> {
        let base = endpoint
            .map(str::to_owned)
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"));
        let traces = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let metrics = env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
        if base.is_none() && traces.is_none() && metrics.is_none() {
            return None;
        }
        let join = |path: &str| {
            let b = base.as_deref().unwrap_or("http://localhost:4318");
            format!("{}/{path}", b.trim_end_matches('/'))
        };
        let mut h = env("OTEL_EXPORTER_OTLP_HEADERS")
            .map(|s| parse_pairs(&s))
            .unwrap_or_default();
        h.extend(headers.iter().filter_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            Some((k.trim().to_owned(), v.to_owned()))
        }));
        let mut resource = env("OTEL_RESOURCE_ATTRIBUTES")
            .map(|s| parse_pairs(&s))
            .unwrap_or_default();
        let service = env("OTEL_SERVICE_NAME")
            .or_else(|| {
                resource
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| "grpctap".to_owned());
        resource.retain(|(k, _)| k != "service.name");
        resource.insert(0, ("service.name".to_owned(), service));
        Some(OtlpConfig {
            traces_url: traces.unwrap_or_else(|| join("v1/traces")),
            metrics_url: metrics.unwrap_or_else(|| join("v1/metrics")),
            headers: h,
            resource,
            side: SpanSide::Server,
            max_methods: 500,
            timeout: Duration::from_secs(10),
        })
    }
}

/// What the export did, shared with the thread (and the Prometheus endpoint).
#[derive(Debug, Default)]
pub struct OtlpStats {
    /// Spans handed to the export thread.
    pub spans_queued: Counter,
    /// Spans the collector accepted.
    pub spans_sent: Counter,
    /// Spans dropped: queue full, or the collector never took them.
    pub spans_dropped: Counter,
    /// Requests retried.
    pub retries: Counter,
    /// Metric exports the collector accepted.
    pub metric_exports: Counter,
    /// Requests given up.
    pub failed_requests: Counter,
    /// Spans of the requests given up (counted in `spans_dropped` too).
    pub spans_failed: Counter,
    /// The run is over: no more backoff; requests are tried once each, and once one fails the
    /// rest are dropped (a collector that is down does not hold the exit for long).
    closing: std::sync::atomic::AtomicBool,
    /// When the final flush's time is up (set with `closing`).
    until: std::sync::Mutex<Option<Instant>>,
    /// The newest metrics snapshot not yet sent: cumulative, so a newer one replaces it and a
    /// full span queue never loses it.
    metrics: std::sync::Mutex<Option<Vec<pm::Metric>>>,
}

impl OtlpStats {
    /// The end of the final flush (far away while the run lasts).
    fn deadline(&self) -> Instant {
        let until = self.until.lock().unwrap_or_else(|e| e.into_inner());
        until.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    /// Adds the counters to the Prometheus endpoint's registry.
    pub fn register(&self, r: &mut prometheus_client::registry::Registry) {
        r.register(
            "grpctap_otlp_spans_sent",
            "Spans the OTLP endpoint accepted",
            self.spans_sent.clone(),
        );
        r.register(
            "grpctap_otlp_spans_dropped",
            "Spans not delivered to the OTLP endpoint (queue full, endpoint down or refusing)",
            self.spans_dropped.clone(),
        );
        r.register(
            "grpctap_otlp_retries",
            "OTLP requests retried",
            self.retries.clone(),
        );
        r.register(
            "grpctap_otlp_failed_requests",
            "OTLP requests given up after their retries",
            self.failed_requests.clone(),
        );
    }
}

enum Job {
    Spans(Vec<SpanData>),
    Metrics(Vec<pm::Metric>),
}

/// What a span needs of a call: copied in the decoder's thread (a few words and two reference
/// counts), made into protobuf in the export thread.
struct SpanData {
    method: Option<Arc<str>>,
    protocol: &'static str,
    status: Option<decoder::grpc::Code>,
    error: bool,
    server: std::net::SocketAddr,
    client: std::net::SocketAddr,
    http1: bool,
    method_confidence: Confidence,
    status_confidence: Confidence,
    status_source: &'static str,
    tls: Option<Arc<decoder::calls::record::TlsTag>>,
    msgs: [u64; 2],
    reset: Option<decoder::Reset>,
    message: Option<String>,
    start: u64,
    end: u64,
    ids: [u64; 4],
    parent: Option<Box<decoder::calls::TraceParent>>,
    /// Each message's time, sender and size (`--otlp-message-events`).
    messages: Vec<decoder::calls::record::MessageTime>,
}

/// A histogram's attributes: method (or `_OTHER`), status, failed, `rpc.system.name`.
type HistKey = (Arc<str>, Option<decoder::grpc::Code>, bool, &'static str);

/// Per (method, code): the histogram of call durations.
#[derive(Default)]
struct Hist {
    counts: [u64; BOUNDS.len() + 1],
    sum: f64,
    min: f64,
    max: f64,
    n: u64,
}

/// The OTLP output.
pub struct Otlp {
    cfg: Arc<OtlpConfig>,
    batch: Vec<SpanData>,
    tx: Option<SyncSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    done: Option<Receiver<()>>,
    stats: Arc<OtlpStats>,
    hists: HashMap<HistKey, Hist, foldhash::fast::RandomState>,
    first: Option<u64>,
    last: u64,
    last_metrics: Instant,
    seq: u64,
    /// The methods labelled apart (at most `max_methods`), and `_OTHER`.
    methods: std::collections::HashSet<Arc<str>, foldhash::fast::RandomState>,
    other: Arc<str>,
    /// grpctap's own counters, by (metric name, attribute key, attribute value): anomalies,
    /// inferred answers, resets, TLS connections.
    own: std::collections::BTreeMap<(&'static str, &'static str, String), u64>,
}

impl std::fmt::Debug for Otlp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Otlp")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(v) }),
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

/// `rpc.system.name`: Connect calls are `connect_rpc`, gRPC and gRPC-Web calls `grpc`.
pub(crate) fn system_name(protocol: &str) -> &'static str {
    match protocol {
        "connect" => "connect_rpc",
        _ => "grpc",
    }
}

/// `error.type` of a failed call: its status's name, `_OTHER` when only "failed" is known;
/// `None` for a call that did not fail.
pub(crate) fn error_type(status: Option<decoder::grpc::Code>, error: bool) -> Option<&'static str> {
    error.then(|| status.map_or("_OTHER", |c| c.name()))
}

/// A 64-bit id from the call's place and time (the same call gets the same id in every run).
fn id64(parts: &[u64]) -> u64 {
    use std::hash::BuildHasher;
    let h = foldhash::fast::FixedState::with_seed(0x6772_7063_7461_7021);
    let mut x = 0;
    for &p in parts {
        x = h.hash_one((x, p));
    }
    x | 1
}

impl Otlp {
    /// Starts the export thread; it counts into `stats`.
    pub fn start(cfg: OtlpConfig, stats: Arc<OtlpStats>) -> Otlp {
        let cfg = Arc::new(cfg);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
        let (done_tx, done) = std::sync::mpsc::channel();
        let thread = {
            let cfg = cfg.clone();
            let stats = stats.clone();
            std::thread::Builder::new()
                .name("otlp".into())
                .spawn(move || {
                    export_loop(&cfg, &stats, &rx);
                    let _ = done_tx.send(());
                })
                .ok()
        };
        Otlp {
            cfg,
            batch: Vec::with_capacity(BATCH),
            tx: Some(tx),
            thread,
            done: Some(done),
            stats,
            hists: HashMap::default(),
            first: None,
            last: 0,
            last_metrics: Instant::now(),
            seq: 0,
            own: std::collections::BTreeMap::new(),
            methods: Default::default(),
            other: Arc::from("_OTHER"),
        }
    }

    /// What was sent and dropped so far.
    pub fn stats(&self) -> Arc<OtlpStats> {
        self.stats.clone()
    }

    /// The configuration (for the closing report: URLs, never header values).
    pub fn config(&self) -> &OtlpConfig {
        &self.cfg
    }

    fn send(&mut self, job: Job) {
        let n = match &job {
            Job::Spans(s) => s.len() as u64,
            Job::Metrics(_) => 0,
        };
        let Some(tx) = self.tx.as_ref() else { return };
        match tx.try_send(job) {
            Ok(()) => {
                self.stats.spans_queued.inc_by(n);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.stats.spans_dropped.inc_by(n);
            }
        }
    }

    fn flush_spans(&mut self) {
        if !self.batch.is_empty() {
            let b = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
            self.send(Job::Spans(b));
        }
    }

    fn spans(&mut self, c: &CallRecord) {
        // A call begun before the capture has no start: no span (its length is unknown).
        let (Some(start), Some(end)) = (c.start, c.end) else {
            return;
        };
        self.seq += 1;
        let error = c.is_error() == Some(true);
        self.batch.push(SpanData {
            method: c.method.clone(),
            protocol: c.protocol.name(),
            status: c.status,
            error,
            server: c.server,
            client: c.client,
            http1: c.http1,
            method_confidence: c.method_confidence,
            status_confidence: c.status_confidence,
            status_source: c.status_source.name(),
            tls: c.tls.clone(),
            msgs: [c.req.msgs, c.resp.msgs],
            reset: c.reset,
            message: if error { c.grpc_message.clone() } else { None },
            start: start.0,
            end: end.0,
            ids: [c.conn.get(), u64::from(c.stream_id), start.0, self.seq],
            parent: c.trace_parent.clone(),
            messages: c.message_times.clone(),
        });
        if self.batch.len() >= BATCH {
            self.flush_spans();
        }
    }

    fn record(&mut self, c: &CallRecord) {
        let (Some(d), Some(end)) = (c.duration(), c.end) else {
            return;
        };
        self.first = Some(self.first.map_or(c.start.unwrap_or(end).0, |f| {
            f.min(c.start.unwrap_or(end).0)
        }));
        self.last = self.last.max(end.0);
        let code = c.status;
        let error = c.is_error() == Some(true);
        // Methods past the cap (and unknown ones) are `_OTHER`.
        let method: Arc<str> = match &c.method {
            Some(m) if self.methods.contains(m) => m.clone(),
            Some(m) if self.methods.len() < self.cfg.max_methods => {
                self.methods.insert(m.clone());
                m.clone()
            }
            _ => self.other.clone(),
        };
        let h = self
            .hists
            .entry((method, code, error, system_name(c.protocol.name())))
            .or_default();
        let secs = d.as_secs_f64();
        let b = BOUNDS
            .iter()
            .position(|&x| secs <= x)
            .unwrap_or(BOUNDS.len());
        h.counts[b] += 1;
        h.sum += secs;
        h.min = if h.n == 0 { secs } else { h.min.min(secs) };
        h.max = h.max.max(secs);
        h.n += 1;
    }

    fn metrics(&mut self) {
        self.last_metrics = Instant::now();
        if self.hists.is_empty() && self.own.is_empty() {
            return;
        }
        let start = self.first.unwrap_or(self.last);
        let points = self
            .hists
            .iter()
            .map(|((method, code, error, system), h)| {
                let mut attributes = vec![
                    s("rpc.system.name", *system),
                    s("rpc.method", method.trim_start_matches('/')),
                ];
                if let Some(code) = code {
                    attributes.push(s("rpc.status_code", code.name()));
                }
                if let Some(e) = error_type(*code, *error) {
                    attributes.push(s("error.type", e));
                }
                pm::HistogramDataPoint {
                    attributes,
                    start_time_unix_nano: start,
                    time_unix_nano: self.last,
                    count: h.n,
                    sum: Some(h.sum),
                    bucket_counts: h.counts.to_vec(),
                    explicit_bounds: BOUNDS.to_vec(),
                    min: Some(h.min),
                    max: Some(h.max),
                    ..Default::default()
                }
            })
            .collect();
        let side = match self.cfg.side {
            SpanSide::Client => "rpc.client.call.duration",
            _ => "rpc.server.call.duration",
        };
        let metric = pm::Metric {
            name: side.to_owned(),
            description: "Duration of the RPCs grpctap saw, from the request's first packet to the one that ended the call".to_owned(),
            unit: "s".to_owned(),
            data: Some(pm::metric::Data::Histogram(pm::Histogram {
                data_points: points,
                aggregation_temporality: pm::AggregationTemporality::Cumulative as i32,
            })),
            ..Default::default()
        };
        let mut all = Vec::new();
        if !self.hists.is_empty() {
            all.push(metric);
        }
        all.extend(self.own_metrics());
        *self.stats.metrics.lock().unwrap_or_else(|e| e.into_inner()) = Some(all);
    }
}

impl Otlp {
    fn count(&mut self, metric: &'static str, key: &'static str, value: impl Into<String>) {
        *self.own.entry((metric, key, value.into())).or_default() += 1;
    }

    /// grpctap's own families, as cumulative sums.
    fn own_metrics(&self) -> Vec<pm::Metric> {
        let start = self.first.unwrap_or(self.last);
        let mut out: Vec<pm::Metric> = Vec::new();
        for ((name, key, value), n) in &self.own {
            let point = pm::NumberDataPoint {
                attributes: vec![s(key, value.clone())],
                start_time_unix_nano: start,
                time_unix_nano: self.last,
                value: Some(pm::number_data_point::Value::AsInt(
                    i64::try_from(*n).unwrap_or(i64::MAX),
                )),
                ..Default::default()
            };
            match out.last_mut() {
                Some(m) if m.name == *name => {
                    if let Some(pm::metric::Data::Sum(sum)) = m.data.as_mut() {
                        sum.data_points.push(point);
                    }
                }
                _ => out.push(pm::Metric {
                    name: (*name).to_owned(),
                    description: match *name {
                        "grpctap.decode.anomalies" => {
                            "Protocol anomalies met while decoding, by kind"
                        }
                        "grpctap.calls.inferred" => {
                            "Calls whose method or status was inferred, not read"
                        }
                        "grpctap.stream.resets" => {
                            "RST_STREAM frames that ended calls, by HTTP/2 error code"
                        }
                        _ => "TLS connections, by how far decryption got",
                    }
                    .to_owned(),
                    unit: "1".to_owned(),
                    data: Some(pm::metric::Data::Sum(pm::Sum {
                        data_points: vec![point],
                        aggregation_temporality: pm::AggregationTemporality::Cumulative as i32,
                        is_monotonic: true,
                    })),
                    ..Default::default()
                }),
            }
        }
        out
    }
}

impl Sink for Otlp {
    fn call_ended(&mut self, c: &CallRecord) {
        self.spans(c);
        self.record(c);
        if c.method_confidence == Confidence::Inferred {
            self.count("grpctap.calls.inferred", "what", "method");
        }
        if c.status_confidence == Confidence::Inferred {
            self.count("grpctap.calls.inferred", "what", "status");
        }
        if let Some(r) = c.reset {
            self.count(
                "grpctap.stream.resets",
                "http2.error_code",
                decoder::h2::frame::ErrorCode(r.code).name(),
            );
        }
    }

    fn conn_event(&mut self, _conn: decoder::ConnId, event: decoder::ConnEvent) {
        if let decoder::ConnEvent::Anomaly(kind) = event {
            self.count("grpctap.decode.anomalies", "kind", kind.name());
        }
    }

    fn tls(
        &mut self,
        _conn: decoder::ConnId,
        _info: &decoder::tls::session::TlsInfo,
        state: decoder::tls::session::TlsState,
    ) {
        self.count("grpctap.tls.connections", "state", state.name());
    }
}

impl Output for Otlp {
    fn tick(&mut self, _tick: &Tick<'_>) {
        if self.last_metrics.elapsed() >= METRICS_EVERY {
            self.flush_spans();
            self.metrics();
        }
    }

    fn finish(&mut self) -> std::io::Result<()> {
        self.flush_spans();
        self.metrics();
        // The thread ends when the queue is empty and closed; it is waited for a bounded time,
        // and told not to wait for a collector that keeps failing.
        *self.stats.until.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(Instant::now() + FINAL_FLUSH);
        self.stats
            .closing
            .store(true, std::sync::atomic::Ordering::Release);
        self.tx = None;
        let finished = self
            .done
            .take()
            .is_some_and(|done| done.recv_timeout(FINAL_FLUSH).is_ok());
        if finished {
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        } else {
            // Still sending when the time was up: what it holds is lost with the process.
            let st = &self.stats;
            let handled = st.spans_sent.get() + st.spans_failed.get();
            let queued = st.spans_queued.get();
            st.spans_dropped.inc_by(queued.saturating_sub(handled));
        }
        Ok(())
    }
}

/// The span(s) of one call (in the export thread).
fn build_spans(c: &SpanData, side: SpanSide, out: &mut Vec<pt::Span>) {
    let (start, end) = (c.start, c.end);
    let method = c.method.as_deref();
    let name = method
        .map(|m| m.trim_start_matches('/').to_owned())
        .unwrap_or_else(|| "grpc".to_owned());
    let mut attrs = vec![s("rpc.system.name", system_name(c.protocol))];
    if method.is_some() {
        attrs.push(s("rpc.method", name.clone()));
    }
    if let Some(code) = c.status {
        attrs.push(s("rpc.status_code", code.name()));
    }
    let error = c.error;
    if let Some(e) = error_type(c.status, error) {
        attrs.push(s("error.type", e));
    }
    attrs.extend([
        s("server.address", c.server.ip().to_string()),
        i("server.port", i64::from(c.server.port())),
        s("client.address", c.client.ip().to_string()),
        i("client.port", i64::from(c.client.port())),
        s("network.transport", "tcp"),
        s("network.protocol.name", "http"),
        s(
            "network.protocol.version",
            if c.http1 { "1.1" } else { "2" },
        ),
    ]);
    if c.protocol != "grpc" {
        attrs.push(s("grpctap.protocol", c.protocol));
    }
    if c.method_confidence != Confidence::Exact {
        attrs.push(s("grpctap.method_confidence", c.method_confidence.name()));
    }
    if c.status_confidence != Confidence::Exact {
        attrs.push(s("grpctap.status_confidence", c.status_confidence.name()));
    }
    attrs.push(s("grpctap.status_source", c.status_source));
    if let Some(t) = &c.tls {
        attrs.push(s(
            "tls.protocol.version",
            decoder::tls::session::TlsInfo::version_name(t.version),
        ));
        if let Some(sni) = &t.sni {
            attrs.push(s("server.address.sni", sni.to_string()));
        }
    }
    attrs.push(i(
        "rpc.request.messages",
        i64::try_from(c.msgs[0]).unwrap_or(i64::MAX),
    ));
    attrs.push(i(
        "rpc.response.messages",
        i64::try_from(c.msgs[1]).unwrap_or(i64::MAX),
    ));
    let mut events = Vec::new();
    if let Some(r) = &c.reset {
        events.push(pt::span::Event {
            time_unix_nano: end,
            name: "rst_stream".to_owned(),
            attributes: vec![
                s(
                    "http2.error_code",
                    decoder::h2::frame::ErrorCode(r.code).name(),
                ),
                s("http2.sent_by", r.by.name()),
            ],
            dropped_attributes_count: 0,
        });
    }
    if c.status_source == "goaway" {
        events.push(pt::span::Event {
            time_unix_nano: end,
            name: "goaway".to_owned(),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
        });
    }
    let status = pt::Status {
        message: if error {
            c.message
                .as_deref()
                .unwrap_or("")
                .chars()
                .take(1024)
                .collect()
        } else {
            String::new()
        },
        code: if error {
            pt::status::StatusCode::Error as i32
        } else {
            pt::status::StatusCode::Unset as i32
        },
    };
    let ids = c.ids;
    let parent = c.parent.as_deref();
    let trace_id = parent.map_or_else(
        || {
            let mut t = Vec::with_capacity(16);
            t.extend_from_slice(&id64(&ids).to_be_bytes());
            t.extend_from_slice(&id64(&[ids[3], ids[2], ids[1], ids[0]]).to_be_bytes());
            t
        },
        |p| p.trace_id.to_vec(),
    );
    // Message events, as the span's side saw them: a server receives the requests.
    let with_messages = |kind: pt::span::SpanKind| {
        let mut ev = events.clone();
        let mut n = [0i64; 2];
        for m in &c.messages {
            let d = usize::from(m.from == decoder::Side::Server);
            n[d] += 1;
            let received =
                (m.from == decoder::Side::Client) == (kind == pt::span::SpanKind::Server);
            ev.push(pt::span::Event {
                time_unix_nano: m.ts.0,
                name: "rpc.message".to_owned(),
                attributes: vec![
                    s(
                        "rpc.message.type",
                        if received { "RECEIVED" } else { "SENT" },
                    ),
                    i("rpc.message.id", n[d]),
                    i("rpc.message.compressed_size", i64::from(m.len)),
                ],
                dropped_attributes_count: 0,
            });
        }
        ev.sort_by_key(|e| e.time_unix_nano);
        ev
    };
    let span = |kind: pt::span::SpanKind, id: u64, parent_id: Option<Vec<u8>>, attrs| pt::Span {
        trace_id: trace_id.clone(),
        span_id: id.to_be_bytes().to_vec(),
        trace_state: parent
            .and_then(|p| p.state.as_deref())
            .unwrap_or("")
            .to_owned(),
        parent_span_id: parent_id.unwrap_or_default(),
        flags: u32::from(parent.map_or(1, |p| p.flags)),
        name: name.clone(),
        kind: kind as i32,
        start_time_unix_nano: start,
        end_time_unix_nano: end,
        attributes: {
            // The peer is the other end as the span's side sees it.
            let mut a: Vec<KeyValue> = attrs;
            let peer = if kind == pt::span::SpanKind::Server {
                c.client
            } else {
                c.server
            };
            a.push(s("network.peer.address", peer.ip().to_string()));
            a.push(i("network.peer.port", i64::from(peer.port())));
            a
        },
        events: with_messages(kind),
        status: Some(status.clone()),
        ..Default::default()
    };
    let caller = parent.map(|p| p.span_id.to_vec());
    let id = id64(&ids);
    match side {
        SpanSide::Server => out.push(span(pt::span::SpanKind::Server, id, caller, attrs)),
        SpanSide::Client => out.push(span(pt::span::SpanKind::Client, id, caller, attrs)),
        SpanSide::Both => {
            let server_id = id64(&[id, 2]);
            out.push(span(pt::span::SpanKind::Client, id, caller, attrs.clone()));
            out.push(span(
                pt::span::SpanKind::Server,
                server_id,
                Some(id.to_be_bytes().to_vec()),
                attrs,
            ));
        }
    }
}

fn resource(cfg: &OtlpConfig) -> Resource {
    let mut attributes: Vec<KeyValue> = cfg.resource.iter().map(|(k, v)| s(k, v.clone())).collect();
    if !cfg.resource.iter().any(|(k, _)| k == "host.name")
        && let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname")
    {
        attributes.push(s("host.name", h.trim()));
    }
    attributes.push(s("telemetry.sdk.name", "grpctap"));
    attributes.push(s("telemetry.sdk.language", "rust"));
    attributes.push(s("telemetry.sdk.version", env!("CARGO_PKG_VERSION")));
    Resource {
        attributes,
        ..Default::default()
    }
}

fn scope() -> InstrumentationScope {
    InstrumentationScope {
        name: "grpctap".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        ..Default::default()
    }
}

fn export_loop(cfg: &OtlpConfig, stats: &OtlpStats, rx: &Receiver<Job>) {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(2))
        .timeout(cfg.timeout)
        .build();
    let res = resource(cfg);
    let mut failing = false;
    let take_metrics = || {
        stats
            .metrics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .map(Job::Metrics)
    };
    loop {
        // The newest metrics first, then the next batch of spans; after the last batch, the
        // last metrics.
        let job = match take_metrics() {
            Some(m) => m,
            None => match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(job) => job,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match take_metrics() {
                    Some(m) => m,
                    None => break,
                },
            },
        };
        let closing = stats.closing.load(std::sync::atomic::Ordering::Acquire);
        if closing && (failing || Instant::now() >= stats.deadline()) {
            if let Job::Spans(s) = &job {
                stats.spans_failed.inc_by(s.len() as u64);
                stats.spans_dropped.inc_by(s.len() as u64);
            }
            continue;
        }
        let (url, body, spans) = match job {
            Job::Spans(calls) => {
                let mut spans = Vec::with_capacity(calls.len());
                for c in &calls {
                    build_spans(c, cfg.side, &mut spans);
                }
                let n = calls.len() as u64;
                let req = ExportTraceServiceRequest {
                    resource_spans: vec![pt::ResourceSpans {
                        resource: Some(res.clone()),
                        scope_spans: vec![pt::ScopeSpans {
                            scope: Some(scope()),
                            spans,
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    }],
                };
                (&cfg.traces_url, req.encode_to_vec(), n)
            }
            Job::Metrics(metrics) => {
                let req = ExportMetricsServiceRequest {
                    resource_metrics: vec![pm::ResourceMetrics {
                        resource: Some(res.clone()),
                        scope_metrics: vec![pm::ScopeMetrics {
                            scope: Some(scope()),
                            metrics,
                            schema_url: String::new(),
                        }],
                        schema_url: String::new(),
                    }],
                };
                (&cfg.metrics_url, req.encode_to_vec(), 0)
            }
        };
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let body = match gz.write_all(&body).and_then(|()| gz.finish()) {
            Ok(b) => b,
            Err(_) => continue,
        };
        let ok = post(&agent, cfg, url, &body, stats);
        failing = !ok;
        if ok {
            if spans > 0 {
                stats.spans_sent.inc_by(spans);
            } else {
                stats.metric_exports.inc_by(1);
            }
        } else {
            stats.failed_requests.inc_by(1);
            stats.spans_failed.inc_by(spans);
            stats.spans_dropped.inc_by(spans);
        }
    }
}

/// One request, retried as the OTLP specification says: 429, 502, 503, 504 and connection
/// errors are retried with exponential backoff (or after Retry-After), others are not.
fn post(agent: &ureq::Agent, cfg: &OtlpConfig, url: &str, body: &[u8], stats: &OtlpStats) -> bool {
    let mut backoff = Duration::from_millis(200);
    let closing = || stats.closing.load(std::sync::atomic::Ordering::Acquire);
    for attempt in 0..ATTEMPTS {
        let mut req = agent
            .post(url)
            .set("Content-Type", "application/x-protobuf")
            .set("Content-Encoding", "gzip");
        for (k, v) in &cfg.headers {
            req = req.set(k, v);
        }
        let (wait, unreachable) = match req.send_bytes(body) {
            Ok(_) => return true,
            Err(ureq::Error::Status(429 | 502 | 503 | 504, resp)) => (
                resp.header("Retry-After")
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER)),
                false,
            ),
            Err(ureq::Error::Status(..)) => return false,
            Err(ureq::Error::Transport(_)) => (None, true),
        };
        let wait = wait.unwrap_or(backoff);
        // At the end of the run a collector that cannot be reached is not waited for; one that
        // asked for a pause is, within the final flush's time.
        let late = closing() && (unreachable || Instant::now() + wait > stats.deadline());
        if attempt + 1 == ATTEMPTS || late {
            break;
        }
        stats.retries.inc_by(1);
        // Slept in steps: the end of the run may cut a backoff short.
        let until = Instant::now() + wait;
        while Instant::now() < until
            && !(closing() && unreachable)
            && Instant::now() < stats.deadline()
        {
            std::thread::sleep(Duration::from_millis(10).min(until - Instant::now()));
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_read_as_the_sdks_read_it() {
        let env = |k: &str| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://collector:4318/".to_owned()),
            "OTEL_EXPORTER_OTLP_HEADERS" => Some("api-key=s%20ecret,x=1".to_owned()),
            "OTEL_RESOURCE_ATTRIBUTES" => {
                Some("deployment.environment=prod,service.name=a".to_owned())
            }
            _ => None,
        };
        let c = OtlpConfig::from_env(None, &["k=v".to_owned()], &env).expect("config");
        assert_eq!(c.traces_url, "http://collector:4318/v1/traces");
        assert_eq!(c.metrics_url, "http://collector:4318/v1/metrics");
        assert_eq!(c.headers[0], ("api-key".to_owned(), "s ecret".to_owned()));
        assert_eq!(c.headers[2], ("k".to_owned(), "v".to_owned()));
        assert_eq!(c.resource[0], ("service.name".to_owned(), "a".to_owned()));
        assert!(!format!("{c:?}").contains("ecret"));
        assert!(OtlpConfig::from_env(None, &[], &|_| None).is_none());
        let c = OtlpConfig::from_env(Some("http://h:1"), &[], &|_| None).expect("config");
        assert_eq!(c.resource[0].1, "grpctap");
    }
}
