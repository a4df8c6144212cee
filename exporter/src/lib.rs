//! Prometheus metrics from gRPC calls seen on the wire: the go-grpc-prometheus server series
//! (so existing dashboards work) and grpctap's own. Fed by the decoder's call records and
//! connection events ([`Recorder`] is a `decoder::Sink` and one of the run's
//! `decoder::output::Output`s); read by a scrape (see [`server`]). Depends on `decoder`'s types
//! only.
//!
//! Every family is atomic (prometheus-client), so recording takes no lock of ours and a scrape
//! never blocks decoding for longer than a family's label-map read lock.

pub mod backfill;
pub mod otlp;
pub mod server;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use decoder::aggregate::{DEFAULT_MAX_METHODS, MethodCap, OTHER_METHOD};
use decoder::output::{Health, Output, Tick};
use decoder::{AnomalyKind, CallRecord, CallType, ConnEvent, ConnId, Side, Sink};
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Prometheus client_golang's default buckets, which go-grpc-prometheus uses.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Label value for methods past the cardinality cap (the same name every output uses).
pub const OTHER: &str = OTHER_METHOD;

/// `grpc_code` of calls that failed with a code that could not be read (see docs/metrics.md):
/// not one of Go's code names, so it is never taken for a real code, and not `OK`, so error
/// ratios computed as `grpc_code!="OK"` count it.
pub const ERROR_CODE_UNKNOWN: &str = "ErrorCodeUnknown";

/// `grpc_code` of calls that ended at their deadline with the client's CANCEL, where an expiry
/// and a cancellation look the same on the wire: one of the two, the client alone knows which.
pub const DEADLINE_OR_CANCELED: &str = "DeadlineExceededOrCanceled";

/// What the exporter is asked to do.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// Distinct (service, method) pairs labelled apart; more are folded into `other`.
    pub max_methods: usize,
    /// Add a `grpc_server` label (the server address) for per-backend series.
    pub server_label: bool,
    /// Add an `rpc_protocol` label (`grpc`, `grpc-web`, `connect`) to the call series.
    pub protocol_label: bool,
}

/// What `Recorder` needs of the families: only which sides there are (for docs and tests).
impl Metrics {
    /// The go-grpc-prometheus sides exported.
    pub fn sides(&self) -> Sides {
        Sides {
            server: self.rpc.iter().any(|f| !f.client),
            client: self.rpc.iter().any(|f| f.client),
        }
    }
}

impl Default for ExporterConfig {
    fn default() -> Self {
        ExporterConfig {
            max_methods: DEFAULT_MAX_METHODS,
            server_label: false,
            protocol_label: false,
        }
    }
}

/// Labels of the go-grpc-prometheus server series; `grpc_code` only on `handled`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct CallLabels {
    grpc_type: &'static str,
    grpc_service: Arc<str>,
    grpc_method: Arc<str>,
    grpc_code: Option<&'static str>,
    grpc_server: Option<Arc<str>>,
    /// `rpc_protocol` (`grpc`, `grpc-web`, `connect`), when asked for.
    protocol: Option<&'static str>,
}

impl EncodeLabelSet for CallLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("grpc_type", self.grpc_type).encode(encoder.encode_label())?;
        ("grpc_service", &*self.grpc_service).encode(encoder.encode_label())?;
        ("grpc_method", &*self.grpc_method).encode(encoder.encode_label())?;
        if let Some(code) = self.grpc_code {
            ("grpc_code", code).encode(encoder.encode_label())?;
        }
        if let Some(server) = &self.grpc_server {
            ("grpc_server", &**server).encode(encoder.encode_label())?;
        }
        if let Some(p) = self.protocol {
            ("rpc_protocol", p).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// A label set of fixed names.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Labels<const N: usize>([(&'static str, String); N]);

/// Labels whose empty values are left out (OpenTelemetry's `error_type` on success).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct SparseLabels<const N: usize>([(&'static str, String); N]);

impl<const N: usize> EncodeLabelSet for SparseLabels<N> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (k, v) in self.0.iter().filter(|(_, v)| !v.is_empty()) {
            (*k, v.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

impl<const N: usize> EncodeLabelSet for Labels<N> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (k, v) in &self.0 {
            (*k, v.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// Every family grpctap exports. Shared with the scrape; written through a [`Recorder`].
#[derive(Debug)]
pub struct Metrics {
    /// The go-grpc-prometheus families of each side exported: `grpc_server_*`, `grpc_client_*`.
    rpc: Vec<RpcFamilies>,
    resets: Family<Labels<2>, Counter>,
    goaways: Family<Labels<2>, Counter>,
    pings: Family<Labels<1>, Counter>,
    no_deadline: Family<CallLabels, Counter>,
    deadline_used: Family<CallLabels, Histogram>,
    in_flight: Gauge,
    message_bytes: Family<Labels<1>, Histogram>,
    anomalies: Family<Labels<1>, Counter>,
    not_grpc: Family<Labels<1>, Counter>,
    unknown_method: Counter,
    status_unreadable: Counter,
    inferred: Family<Labels<1>, Counter>,
    folded: Counter,
    packets: Counter,
    bytes: Counter,
    drops: Counter,
    gaps: Counter,
    gap_bytes: Counter,
    truncated: Counter,
    /// The OpenTelemetry RPC duration histogram under its Prometheus name
    /// (`rpc_server_call_duration_seconds`, `--metrics-names otel|both`).
    otel: Option<Family<SparseLabels<4>, Histogram>>,
    /// The signals behind the findings (docs/findings.md).
    retries: Family<CallLabels, Counter>,
    late_answers: Family<CallLabels, Counter>,
    flow_stall: Family<CallLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    ping_rtt: Family<Labels<1>, Histogram>,
    oldest_open: Gauge<f64, std::sync::atomic::AtomicU64>,
    findings: Family<Labels<2>, Gauge>,
}

fn otel_histogram() -> Histogram {
    Histogram::new(otlp::BOUNDS)
}

/// Which go-grpc-prometheus families are exported: the server's (the calls as the server
/// handled them), the client's (as the client made them: its sent messages are the requests),
/// or both. The tap sees both ends of every call; which to export depends on whose host it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sides {
    /// `grpc_server_started_total`, `_handled_total`, `_msg_received_total`, `_msg_sent_total`,
    /// `grpc_server_handling_seconds`.
    pub server: bool,
    /// The same as `grpc_client_*`.
    pub client: bool,
}

impl Default for Sides {
    fn default() -> Self {
        Sides {
            server: true,
            client: false,
        }
    }
}

/// The go-grpc-prometheus families of one side.
#[derive(Debug)]
struct RpcFamilies {
    client: bool,
    started: Family<CallLabels, Counter>,
    handled: Family<CallLabels, Counter>,
    msg_received: Family<CallLabels, Counter>,
    msg_sent: Family<CallLabels, Counter>,
    handling: Family<CallLabels, HistogramWithExemplars<TraceLabels>>,
}

impl RpcFamilies {
    fn new(client: bool) -> RpcFamilies {
        RpcFamilies {
            client,
            started: Family::default(),
            handled: Family::default(),
            msg_received: Family::default(),
            msg_sent: Family::default(),
            handling: Family::new_with_constructor(latency_histogram),
        }
    }

    /// Registers the families under go-grpc-prometheus's names and help texts.
    fn register(&self, r: &mut Registry) {
        let texts = if self.client {
            [
                (
                    "grpc_client_started",
                    "Total number of RPCs started on the client.",
                ),
                (
                    "grpc_client_handled",
                    "Total number of RPCs completed by the client, regardless of success or failure.",
                ),
                (
                    "grpc_client_msg_received",
                    "Total number of RPC stream messages received by the client.",
                ),
                (
                    "grpc_client_msg_sent",
                    "Total number of gRPC stream messages sent by the client.",
                ),
                (
                    "grpc_client_handling_seconds",
                    "Histogram of response latency (seconds) of the gRPC until it is finished by the application.",
                ),
            ]
        } else {
            [
                (
                    "grpc_server_started",
                    "Total number of RPCs started on the server",
                ),
                (
                    "grpc_server_handled",
                    "Total number of RPCs completed on the server, regardless of success or failure",
                ),
                (
                    "grpc_server_msg_received",
                    "Total number of RPC stream messages received on the server",
                ),
                (
                    "grpc_server_msg_sent",
                    "Total number of gRPC stream messages sent by the server",
                ),
                (
                    "grpc_server_handling_seconds",
                    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server",
                ),
            ]
        };
        r.register(texts[0].0, texts[0].1, self.started.clone());
        r.register(texts[1].0, texts[1].1, self.handled.clone());
        r.register(texts[2].0, texts[2].1, self.msg_received.clone());
        r.register(texts[3].0, texts[3].1, self.msg_sent.clone());
        r.register(texts[4].0, texts[4].1, self.handling.clone());
    }
}

fn latency_histogram() -> HistogramWithExemplars<TraceLabels> {
    HistogramWithExemplars::new(DEFAULT_BUCKETS.into_iter())
}

/// The exemplar label of latency observations: the call's trace id from `traceparent`.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct TraceLabels {
    trace_id: Arc<str>,
}

impl EncodeLabelSet for TraceLabels {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        ("trace_id", &*self.trace_id).encode(encoder.encode_label())
    }
}

fn budget_histogram() -> Histogram {
    Histogram::new([0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5, 2.0])
}

/// 64 B to 16 MiB in steps of 4x.
fn rtt_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1e-5, 2.0, 18))
}

fn size_histogram() -> Histogram {
    Histogram::new(exponential_buckets(64.0, 4.0, 10))
}

impl Metrics {
    /// Creates the families (the server side's) and registers them in `registry`.
    pub fn new(registry: &mut Registry) -> Arc<Metrics> {
        Metrics::with_sides(registry, Sides::default())
    }

    /// Creates the families, the go-grpc-prometheus ones of `sides`, and registers them.
    pub fn with_sides(registry: &mut Registry, sides: Sides) -> Arc<Metrics> {
        Metrics::with_names(registry, sides, true, false)
    }

    /// The families of `sides` under go-grpc-prometheus's names (`go_grpc`), the
    /// OpenTelemetry RPC duration histogram under its Prometheus name (`otel`:
    /// `rpc_server_call_duration_seconds`, or `rpc_client_...` for the client side only), or
    /// both; grpctap's own families always.
    pub fn with_names(
        registry: &mut Registry,
        sides: Sides,
        go_grpc: bool,
        otel: bool,
    ) -> Arc<Metrics> {
        let mut rpc = Vec::new();
        let sides = if go_grpc {
            sides
        } else {
            Sides {
                server: false,
                client: false,
            }
        };
        if sides.server {
            rpc.push(RpcFamilies::new(false));
        }
        if sides.client {
            rpc.push(RpcFamilies::new(true));
        }
        let m = Metrics {
            rpc,
            resets: Family::default(),
            goaways: Family::default(),
            pings: Family::default(),
            no_deadline: Family::default(),
            retries: Family::default(),
            late_answers: Family::default(),
            flow_stall: Family::default(),
            ping_rtt: Family::new_with_constructor(rtt_histogram),
            oldest_open: Gauge::default(),
            findings: Family::default(),
            deadline_used: Family::new_with_constructor(budget_histogram),
            in_flight: Gauge::default(),
            message_bytes: Family::new_with_constructor(size_histogram),
            anomalies: Family::default(),
            not_grpc: Family::default(),
            unknown_method: Counter::default(),
            status_unreadable: Counter::default(),
            inferred: Family::default(),
            folded: Counter::default(),
            packets: Counter::default(),
            bytes: Counter::default(),
            drops: Counter::default(),
            gaps: Counter::default(),
            gap_bytes: Counter::default(),
            truncated: Counter::default(),
            otel: otel.then(|| Family::new_with_constructor(otel_histogram as fn() -> Histogram)),
        };
        let r = registry;
        if let Some(f) = &m.otel {
            let client_only = go_grpc && sides.client && !sides.server;
            r.register_with_unit(
                if client_only {
                    "rpc_client_call_duration"
                } else {
                    "rpc_server_call_duration"
                },
                "Duration of RPCs (OpenTelemetry's rpc.*.call.duration)",
                prometheus_client::registry::Unit::Seconds,
                f.clone(),
            );
        }
        for f in &m.rpc {
            f.register(r);
        }
        r.register(
            "grpctap_stream_resets",
            "RST_STREAM frames that ended calls, by sender and HTTP/2 error code",
            m.resets.clone(),
        );
        r.register(
            "grpctap_goaways",
            "GOAWAY frames, by sender and HTTP/2 error code",
            m.goaways.clone(),
        );
        r.register(
            "grpctap_pings",
            "PING frames (not acknowledgments), by sender",
            m.pings.clone(),
        );
        r.register(
            "grpctap_calls_without_deadline",
            "Calls whose request carried no grpc-timeout",
            m.no_deadline.clone(),
        );
        r.register(
            "grpctap_retry_attempts",
            "Calls that were retry or hedging attempts (they carried grpc-previous-rpc-attempts)",
            m.retries.clone(),
        );
        r.register(
            "grpctap_answered_after_deadline",
            "Calls the server answered after the client's deadline had passed (work done for nobody)",
            m.late_answers.clone(),
        );
        r.register(
            "grpctap_flow_control_stall_seconds",
            "Time senders of the calls sat at a zero HTTP/2 flow-control window with data waiting",
            m.flow_stall.clone(),
        );
        r.register(
            "grpctap_ping_rtt_seconds",
            "HTTP/2 PING round trips as the tap saw them (the network beyond the tap, and the peer), by the side that answered",
            m.ping_rtt.clone(),
        );
        r.register(
            "grpctap_oldest_open_stream_seconds",
            "Age of the oldest call still open",
            m.oldest_open.clone(),
        );
        r.register(
            "grpctap_findings",
            "Findings (docs/findings.md) now, by kind and severity",
            m.findings.clone(),
        );
        r.register(
            "grpctap_deadline_budget_used_ratio",
            "Call duration divided by its grpc-timeout, for calls that had one",
            m.deadline_used.clone(),
        );
        r.register(
            "grpctap_streams_in_flight",
            "Calls started and not yet ended",
            m.in_flight.clone(),
        );
        r.register(
            "grpctap_decode_anomalies",
            "Protocol anomalies met while decoding, by kind",
            m.anomalies.clone(),
        );
        r.register(
            "grpctap_requests_not_grpc",
            "HTTP/2 requests that are not gRPC by their content-type (protocol: grpc-web, connect, other), not counted as calls",
            m.not_grpc.clone(),
        );
        r.register(
            "grpctap_calls_unknown_method",
            "Calls whose :path could not be read",
            m.unknown_method.clone(),
        );
        r.register(
            "grpctap_calls_status_unreadable",
            "Calls that ended with a grpc-status that could not be read nor inferred",
            m.status_unreadable.clone(),
        );
        r.register(
            "grpctap_calls_inferred",
            "Calls whose method (what=method) or status (what=status) was inferred, not read",
            m.inferred.clone(),
        );
        r.register(
            "grpctap_methods_folded",
            "Calls labelled grpc_method=\"other\" past the method cap.",
            m.folded.clone(),
        );
        r.register("grpctap_capture_packets", "Packets read", m.packets.clone());
        r.register(
            "grpctap_capture_bytes",
            "Captured bytes read",
            m.bytes.clone(),
        );
        r.register(
            "grpctap_capture_drops",
            "Packets dropped by the kernel or libpcap before grpctap saw them, or at a full decoding thread queue",
            m.drops.clone(),
        );
        r.register(
            "grpctap_tcp_gaps",
            "Holes in TCP streams the capture could not fill",
            m.gaps.clone(),
        );
        r.register(
            "grpctap_tcp_gap_bytes",
            "Bytes in those holes",
            m.gap_bytes.clone(),
        );
        r.register(
            "grpctap_capture_truncated_packets",
            "Packets cut by the snapshot length",
            m.truncated.clone(),
        );
        r.register(
            "grpctap_message_size_bytes",
            "gRPC message sizes, by direction (request, response)",
            m.message_bytes.clone(),
        );
        Arc::new(m)
    }
}

/// Handles of one label set's series, cached so a call updates atomics without looking them up.
#[derive(Debug, Clone)]
struct Handles {
    labels: CallLabels,
    /// Each side's series, in the order of `Metrics::rpc`.
    rpc: Vec<RpcHandles>,
    /// Created on first use, so methods that never see one export no empty series.
    no_deadline: Option<Counter>,
    budget: Option<Histogram>,
}

/// One side's go-grpc-prometheus series of one label set.
#[derive(Debug, Clone)]
struct RpcHandles {
    client: bool,
    started: Counter,
    received: Counter,
    sent: Counter,
    handling: HistogramWithExemplars<TraceLabels>,
    /// `handled` by Go code name.
    handled: Vec<(&'static str, Counter)>,
}

impl RpcHandles {
    /// The `handled` series of `code`, created on first use.
    fn handled(&mut self, code: &'static str, labels: &CallLabels, f: &RpcFamilies) -> &Counter {
        let at = match self.handled.iter().position(|(c, _)| *c == code) {
            Some(i) => i,
            None => {
                let labels = CallLabels {
                    grpc_code: Some(code),
                    ..labels.clone()
                };
                self.handled
                    .push((code, f.handled.get_or_create(&labels).clone()));
                self.handled.len() - 1
            }
        };
        &self.handled[at].1
    }
}

/// (service label, method label, call type, server address when labelled): label values, so
/// folded methods share one entry.
type HandleKey = (
    Arc<str>,
    Arc<str>,
    CallType,
    Option<Arc<str>>,
    Option<&'static str>,
);

/// Writes calls into [`Metrics`]. Owned by the decoding thread: no lock, cached handles.
#[derive(Debug)]
pub struct Recorder {
    metrics: Arc<Metrics>,
    config: ExporterConfig,
    /// `:path` -> (service, method) labels, at most `max_methods` entries.
    names: HashMap<Arc<str>, (Arc<str>, Arc<str>)>,
    cap: MethodCap,
    other: (Arc<str>, Arc<str>),
    unknown: (Arc<str>, Arc<str>),
    /// Call type per method once one call of it ended (without a schema the type is known only
    /// then); calls of a method whose type is known count as started when they start.
    types: HashMap<Arc<str>, CallType>,
    /// Calls counted as started, by (conn, stream), to count each once.
    counted: HashSet<(ConnId, u32)>,
    handles: HashMap<HandleKey, Handles>,
    request_bytes: Histogram,
    response_bytes: Histogram,
    capture: Health,
    /// The findings behind `grpctap_findings` (none: off), and the capture time they and the
    /// oldest open stream were last computed at.
    findings: Option<decoder::findings::Findings>,
    refreshed: Option<decoder::Nanos>,
}

impl Recorder {
    /// A recorder writing into `metrics`.
    pub fn new(metrics: Arc<Metrics>, config: ExporterConfig) -> Recorder {
        let request_bytes = metrics
            .message_bytes
            .get_or_create(&Labels([("direction", "request".into())]))
            .clone();
        let response_bytes = metrics
            .message_bytes
            .get_or_create(&Labels([("direction", "response".into())]))
            .clone();
        let cap = MethodCap::new(config.max_methods);
        Recorder {
            metrics,
            config,
            names: HashMap::new(),
            cap,
            other: (Arc::from(OTHER), Arc::from(OTHER)),
            unknown: (Arc::from("unknown"), Arc::from("unknown")),
            types: HashMap::new(),
            counted: HashSet::new(),
            handles: HashMap::new(),
            request_bytes,
            response_bytes,
            capture: Health::default(),
            findings: None,
            refreshed: None,
        }
    }

    /// Service and method labels, folded past the cap; true when this method is labelled
    /// apart (known, not folded).
    fn names(&mut self, method: Option<&str>) -> ((Arc<str>, Arc<str>), bool) {
        let Some(path) = method else {
            return (self.unknown.clone(), false);
        };
        if let Some(n) = self.names.get(path) {
            return (n.clone(), true);
        }
        let Some((svc, rpc)) = decoder::grpc::split_path(path) else {
            return (self.unknown.clone(), false);
        };
        if !self.cap.admit() {
            self.metrics.folded.inc();
            return (self.other.clone(), false);
        }
        let n = (Arc::from(svc), Arc::from(rpc));
        self.names.insert(Arc::from(path), n.clone());
        (n, true)
    }

    /// The cached handles for a call's labels.
    fn handles(&mut self, rec: &CallRecord, ty: CallType) -> &mut Handles {
        let server = self
            .config
            .server_label
            .then(|| Arc::from(rec.server.to_string()));
        let protocol = self.config.protocol_label.then(|| rec.protocol.name());
        let (names, _) = self.names(rec.method.as_deref());
        self.handles_for(names, ty, server, protocol)
    }

    fn handles_for(
        &mut self,
        (grpc_service, grpc_method): (Arc<str>, Arc<str>),
        ty: CallType,
        server: Option<Arc<str>>,
        protocol: Option<&'static str>,
    ) -> &mut Handles {
        let key = (
            grpc_service.clone(),
            grpc_method.clone(),
            ty,
            server.clone(),
            protocol,
        );
        if !self.handles.contains_key(&key) {
            let labels = CallLabels {
                grpc_type: ty.name(),
                grpc_service,
                grpc_method,
                grpc_code: None,
                grpc_server: server,
                protocol,
            };
            let rpc = self
                .metrics
                .rpc
                .iter()
                .map(|f| RpcHandles {
                    client: f.client,
                    started: f.started.get_or_create(&labels).clone(),
                    received: f.msg_received.get_or_create(&labels).clone(),
                    sent: f.msg_sent.get_or_create(&labels).clone(),
                    handling: f.handling.get_or_create(&labels).clone(),
                    handled: Vec::new(),
                })
                .collect();
            let h = Handles {
                rpc,
                no_deadline: None,
                budget: None,
                labels,
            };
            self.handles.insert(key.clone(), h);
        }
        match self.handles.get_mut(&key) {
            Some(h) => h,
            None => unreachable!("inserted above"),
        }
    }

    /// Methods described by schemas: their calls are typed (and counted as started) from the
    /// first one; with `precreate`, every series of every method and code starts at zero, as
    /// go-grpc-prometheus's `InitializeMetrics` does (not with the per-server label, whose
    /// values are not known in advance).
    pub fn use_schemas(&mut self, methods: &[(&str, CallType)], precreate: bool) {
        for (path, ty) in methods {
            let (names, apart) = self.names(Some(path));
            if !apart {
                continue;
            }
            self.types.insert(Arc::from(*path), *ty);
            if precreate && !self.config.server_label {
                let metrics = self.metrics.clone();
                let protocol = self.config.protocol_label.then_some("grpc");
                let h = self.handles_for(names, *ty, None, protocol);
                for code in 0..17 {
                    let name = decoder::grpc::Code(code).go_name();
                    for (r, f) in h.rpc.iter_mut().zip(&metrics.rpc) {
                        r.handled(name, &h.labels, f);
                    }
                }
            }
        }
    }

    /// A call began.
    pub fn call_started(&mut self, rec: &CallRecord) {
        if let Some(f) = self.findings.as_mut() {
            f.call_started(rec);
        }
        self.metrics.in_flight.inc();
        let known = rec
            .method
            .as_deref()
            .and_then(|m| self.types.get(m).copied());
        if let Some(ty) = known {
            for r in &self.handles(rec, ty).rpc {
                r.started.inc();
            }
            self.counted.insert((rec.conn, rec.stream_id));
        }
    }

    /// A call ended (or the capture ended with it open: no status, counted as started only).
    pub fn call_ended(&mut self, rec: &CallRecord) {
        if let Some(f) = self.findings.as_mut() {
            f.call_ended(rec);
        }
        if rec.start.is_some() {
            self.metrics.in_flight.dec();
        }
        let (names, apart) = self.names(rec.method.as_deref());
        match &rec.method {
            // Types are learned only for methods labelled apart: the map stays within the cap.
            Some(m) if apart => {
                self.types.entry(m.clone()).or_insert(rec.call_type);
            }
            Some(_) => {}
            None => {
                self.metrics.unknown_method.inc();
            }
        }
        // Label every series of the call with the type it was counted as started under.
        let ty = rec
            .method
            .as_deref()
            .and_then(|m| self.types.get(m).copied())
            .unwrap_or(rec.call_type);
        let counted = self.counted.remove(&(rec.conn, rec.stream_id));
        let metrics = self.metrics.clone();
        let server = self
            .config
            .server_label
            .then(|| Arc::from(rec.server.to_string()));
        let protocol = self.config.protocol_label.then(|| rec.protocol.name());
        let h = self.handles_for(names, ty, server, protocol);
        for r in &h.rpc {
            if !counted {
                r.started.inc();
            }
            // The server receives the requests; the client sends them.
            let (received, sent) = if r.client {
                (rec.resp.msgs, rec.req.msgs)
            } else {
                (rec.req.msgs, rec.resp.msgs)
            };
            r.received.inc_by(received);
            r.sent.inc_by(sent);
        }
        if rec.status_source == decoder::StatusSource::Unfinished {
            return;
        }
        let infer = |what: &str| {
            metrics
                .inferred
                .get_or_create(&Labels([("what", what.into())]))
                .inc();
        };
        if rec.method_confidence == decoder::Confidence::Inferred {
            infer("method");
        }
        if rec.status_confidence == decoder::Confidence::Inferred {
            infer("status");
        }
        // The signals behind the findings: rare, looked up when they happen.
        if rec.attempt > 0 {
            metrics.retries.get_or_create(&h.labels).inc();
        }
        if rec.answered_after_deadline(decoder::findings::LATE_BY) {
            metrics.late_answers.get_or_create(&h.labels).inc();
        }
        let stalled = rec.req.stalled + rec.resp.stalled;
        if !stalled.is_zero() {
            metrics
                .flow_stall
                .get_or_create(&h.labels)
                .inc_by(stalled.as_secs_f64());
        }
        // Every ended call has a latency, whatever its status.
        Self::observe_latency(h, rec, &metrics);
        if let (Some(f), Some(d)) = (&metrics.otel, rec.duration()) {
            f.get_or_create(&otel_labels(rec, apart))
                .observe(d.as_secs_f64());
        }
        if let Some(r) = rec.reset {
            let code = decoder::h2::frame::ErrorCode(r.code).name().to_owned();
            metrics
                .resets
                .get_or_create(&Labels([("by", side(r.by).into()), ("code", code)]))
                .inc();
        }
        let code = match (rec.status, rec.error_unknown_code) {
            (Some(status), _) => status.go_name(),
            (None, true) if rec.status_source == decoder::StatusSource::DeadlineNear => {
                DEADLINE_OR_CANCELED
            }
            (None, true) => ERROR_CODE_UNKNOWN,
            (None, false) => {
                metrics.status_unreadable.inc();
                return;
            }
        };
        for (r, f) in h.rpc.iter_mut().zip(&metrics.rpc) {
            r.handled(code, &h.labels, f).inc();
        }
    }

    /// The latency histogram, and how much of its deadline the call used.
    fn observe_latency(h: &mut Handles, rec: &CallRecord, metrics: &Metrics) {
        if let Some(d) = rec.duration() {
            let exemplar = rec
                .trace_id
                .clone()
                .map(|trace_id| TraceLabels { trace_id });
            for r in &h.rpc {
                r.handling.observe(d.as_secs_f64(), exemplar.clone(), None);
            }
            match rec.timeout {
                Some(t) if !t.is_zero() => {
                    let b = h.budget.get_or_insert_with(|| {
                        metrics.deadline_used.get_or_create(&h.labels).clone()
                    });
                    b.observe(d.as_secs_f64() / t.as_secs_f64());
                }
                Some(_) => {}
                None => {
                    let c = h.no_deadline.get_or_insert_with(|| {
                        metrics.no_deadline.get_or_create(&h.labels).clone()
                    });
                    c.inc();
                }
            }
        }
    }

    /// A whole message of `len` bytes from `from`.
    pub fn message(&mut self, _conn: ConnId, from: Side, len: u32) {
        match from {
            Side::Client => self.request_bytes.observe(f64::from(len)),
            Side::Server => self.response_bytes.observe(f64::from(len)),
        }
    }

    /// Looks for findings with `findings` and exports how many of each kind there are.
    pub fn with_findings(mut self, findings: Option<decoder::findings::Findings>) -> Recorder {
        self.findings = findings;
        self
    }

    /// The findings and the oldest open stream, at most once a second of capture time (and
    /// at the end): both walk state the hot path does not.
    fn refresh(&mut self, tick: &Tick<'_>, force: bool) {
        let due = self
            .refreshed
            .is_none_or(|t| tick.now.checked_since(t).is_some_and(|d| d.as_secs() >= 1));
        if !(due || force) {
            return;
        }
        self.refreshed = Some(tick.now);
        // One walk of the open calls: the oldest, and (with findings) the leaks among them.
        let (conns, now) = (tick.conns, tick.now);
        let mut oldest: Option<decoder::Nanos> = None;
        let mut walk = |each: &mut dyn FnMut(&CallRecord)| {
            conns.for_each_open_call(&mut |rec| {
                if let Some(s) = rec.start {
                    oldest = Some(oldest.map_or(s, |x| x.min(s)));
                }
                each(rec);
            });
        };
        let report = match &self.findings {
            Some(f) => Some(f.report_open(now, |each| walk(each))),
            None => {
                walk(&mut |_| {});
                None
            }
        };
        let age = oldest
            .and_then(|s| now.checked_since(s))
            .map_or(0.0, |d| d.as_secs_f64());
        self.metrics.oldest_open.set(age);
        if let Some(report) = report {
            let fam = &self.metrics.findings;
            fam.clear();
            for x in report {
                fam.get_or_create(&Labels([
                    ("kind", x.kind.name().into()),
                    ("severity", x.severity.name().into()),
                ]))
                .inc();
            }
        }
    }

    /// A connection-level event.
    pub fn conn_event(&mut self, conn: ConnId, event: ConnEvent) {
        if let Some(f) = self.findings.as_mut() {
            Sink::conn_event(f, conn, event);
        }
        let m = &self.metrics;
        match event {
            ConnEvent::PingRtt { by, rtt } => {
                // The PING's sender times the way to the other side and back.
                let answered = match by {
                    Side::Client => Side::Server,
                    Side::Server => Side::Client,
                };
                m.ping_rtt
                    .get_or_create(&Labels([("answered_by", side(answered).into())]))
                    .observe(rtt.as_secs_f64());
                0
            }
            ConnEvent::Ping(by) => m
                .pings
                .get_or_create(&Labels([("by", side(by).into())]))
                .inc(),
            ConnEvent::Goaway { by, code, .. } => {
                let code = decoder::h2::frame::ErrorCode(code).name().to_owned();
                m.goaways
                    .get_or_create(&Labels([("by", side(by).into()), ("code", code)]))
                    .inc()
            }
            ConnEvent::Anomaly(kind) => m
                .anomalies
                .get_or_create(&Labels([("kind", anomaly(kind).into())]))
                .inc(),
            ConnEvent::NotGrpc(kind) => m
                .not_grpc
                .get_or_create(&Labels([("protocol", kind.name().into())]))
                .inc(),
            ConnEvent::Http2 { .. }
            | ConnEvent::Http1 { .. }
            | ConnEvent::Closed { .. }
            | ConnEvent::LargeWindow { .. }
            | ConnEvent::Setting { .. } => 0,
        };
    }

    /// Mirrors the capture layer's counters (only the increase since the last call is added).
    pub fn set_capture(&mut self, now: Health) {
        let last = self.capture;
        let m = &self.metrics;
        let add = |c: &Counter, new: u64, old: u64| {
            c.inc_by(new.saturating_sub(old));
        };
        add(&m.packets, now.packets, last.packets);
        add(&m.bytes, now.bytes, last.bytes);
        add(&m.drops, now.drops, last.drops);
        add(&m.gaps, now.gaps, last.gaps);
        add(&m.gap_bytes, now.gap_bytes, last.gap_bytes);
        add(&m.truncated, now.truncated, last.truncated);
        self.capture = now;
    }
}

impl Sink for Recorder {
    fn call_started(&mut self, call: &CallRecord) {
        Recorder::call_started(self, call);
    }
    fn call_ended(&mut self, call: &CallRecord) {
        Recorder::call_ended(self, call);
    }
    fn conn_event(&mut self, conn: ConnId, event: ConnEvent) {
        Recorder::conn_event(self, conn, event);
    }
    fn message(&mut self, conn: ConnId, from: Side, len: u32) {
        Recorder::message(self, conn, from, len);
    }
}

impl Output for Recorder {
    fn wants_messages(&self) -> bool {
        true
    }
    fn tick(&mut self, tick: &Tick<'_>) {
        self.set_capture(tick.health);
        self.refresh(tick, tick.done);
    }
    fn end_of_input(&mut self, tick: &Tick<'_>) {
        self.set_capture(tick.health);
        self.refresh(tick, true);
    }
}

/// The labels of a call in the OpenTelemetry histogram: `rpc_system_name`, `rpc_method`
/// (`_OTHER` past the method cap), `rpc_status_code`, `error_type` (empty, so absent, on
/// success).
fn otel_labels(rec: &CallRecord, apart: bool) -> SparseLabels<4> {
    let method = match (&rec.method, apart) {
        (Some(m), true) => m.trim_start_matches('/').to_owned(),
        _ => "_OTHER".to_owned(),
    };
    let error = otlp::error_type(rec.status, rec.is_error() == Some(true));
    SparseLabels([
        (
            "rpc_system_name",
            otlp::system_name(rec.protocol.name()).to_owned(),
        ),
        ("rpc_method", method),
        (
            "rpc_status_code",
            rec.status.map_or("", |c| c.name()).to_owned(),
        ),
        ("error_type", error.unwrap_or("").to_owned()),
    ])
}

fn side(s: Side) -> &'static str {
    s.name()
}

fn anomaly(k: AnomalyKind) -> &'static str {
    k.name()
}

#[cfg(test)]
mod tests {
    use super::*;
    use decoder::{CallRecord, Confidence, StatusSource};

    fn call(method: &str, stream: u32) -> CallRecord {
        let client = "10.0.0.1:1".parse().expect("addr");
        let server = "10.0.0.2:2".parse().expect("addr");
        CallRecord {
            method: Some(Arc::from(method)),
            method_confidence: Confidence::Exact,
            end: Some(decoder::Nanos(2)),
            req: decoder::Half {
                msgs: 1,
                bytes: 1,
                ..Default::default()
            },
            resp: decoder::Half {
                msgs: 1,
                bytes: 1,
                ..Default::default()
            },
            http_status: Some(200),
            grpc_status: Some(0),
            status: Some(decoder::grpc::Code::OK),
            status_source: StatusSource::Trailers,
            ..CallRecord::new(
                ConnId::new(0, 1),
                stream,
                client,
                server,
                Some(decoder::Nanos(1)),
            )
        }
    }

    #[test]
    fn random_paths_stay_within_the_cap() {
        let mut registry = Registry::default();
        let mut r = Recorder::new(
            Metrics::new(&mut registry),
            ExporterConfig {
                max_methods: 10,
                ..ExporterConfig::default()
            },
        );
        for i in 0..20_000u32 {
            let c = call(&format!("/svc{i}.S/M{i}"), i);
            r.call_started(&c);
            r.call_ended(&c);
        }
        assert!(
            r.names.len() <= 10 && r.types.len() <= 10,
            "{} {}",
            r.names.len(),
            r.types.len()
        );
        assert!(r.handles.len() <= 11, "{}", r.handles.len());
        assert!(r.counted.is_empty());
        assert_eq!(r.metrics.folded.get(), 20_000 - 10);
        let text = server::render(&registry, false);
        let series = text
            .lines()
            .filter(|l| l.starts_with("grpc_server_handled_total{"))
            .count();
        assert_eq!(series, 11, "10 methods apart and one folded");
    }
}
