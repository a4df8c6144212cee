//! Prometheus metrics from gRPC calls seen on the wire: the go-grpc-prometheus server series
//! (so existing dashboards work) and grpctap's own. Fed by the decoder's call records and
//! connection events; read by a scrape (see [`server`]). Depends on `decoder`'s types only.
//!
//! Every family is atomic (prometheus-client), so recording takes no lock of ours and a scrape
//! never blocks decoding for longer than a family's label-map read lock.

pub mod server;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use decoder::{AnomalyKind, CallRecord, CallType, ConnEvent, Side};
use prometheus_client::encoding::{EncodeLabel, EncodeLabelSet, LabelSetEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Prometheus client_golang's default buckets, which go-grpc-prometheus uses.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Label value for methods past the cardinality cap.
pub const OTHER: &str = "other";

/// What the exporter is asked to do.
#[derive(Debug, Clone)]
pub struct ExporterConfig {
    /// Distinct (service, method) pairs labelled apart; more are folded into `other`.
    pub max_methods: usize,
    /// Add a `grpc_server` label (the server address) for per-backend series.
    pub server_label: bool,
}

impl Default for ExporterConfig {
    fn default() -> Self {
        ExporterConfig {
            max_methods: 2_000,
            server_label: false,
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
        Ok(())
    }
}

/// A label set of fixed names.
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Labels<const N: usize>([(&'static str, String); N]);

impl<const N: usize> EncodeLabelSet for Labels<N> {
    fn encode(&self, encoder: &mut LabelSetEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (k, v) in &self.0 {
            (*k, v.as_str()).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// Capture-layer counters the exporter mirrors (the binary copies them in).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureCounters {
    /// Packets read.
    pub packets: u64,
    /// Captured bytes.
    pub bytes: u64,
    /// Packets dropped by the kernel or libpcap (live capture).
    pub drops: u64,
    /// TCP gaps (bytes the capture lost).
    pub gaps: u64,
    /// Bytes in those gaps.
    pub gap_bytes: u64,
    /// Packets cut by the snapshot length.
    pub truncated: u64,
}

/// Every family grpctap exports.
#[derive(Debug)]
pub struct Metrics {
    config: ExporterConfig,
    started: Family<CallLabels, Counter>,
    handled: Family<CallLabels, Counter>,
    msg_received: Family<CallLabels, Counter>,
    msg_sent: Family<CallLabels, Counter>,
    handling: Family<CallLabels, Histogram>,
    resets: Family<Labels<2>, Counter>,
    goaways: Family<Labels<2>, Counter>,
    pings: Family<Labels<1>, Counter>,
    no_deadline: Family<CallLabels, Counter>,
    deadline_used: Family<CallLabels, Histogram>,
    in_flight: Gauge,
    anomalies: Family<Labels<1>, Counter>,
    unknown_method: Counter,
    status_unreadable: Counter,
    folded: Counter,
    packets: Counter,
    bytes: Counter,
    drops: Counter,
    gaps: Counter,
    gap_bytes: Counter,
    truncated: Counter,
    /// Label state shared by recording calls: method cap, method types, capture mirror.
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    methods: HashSet<(Arc<str>, Arc<str>)>,
    /// Call type per method once one call of it ended (without a schema the type is known
    /// only then); calls of a method whose type is known count as started when they start.
    types: HashMap<Arc<str>, CallType>,
    /// Calls counted as started, by (conn, stream), to count them once.
    counted: HashSet<(u64, u32)>,
    capture: CaptureCounters,
}

fn latency_histogram() -> Histogram {
    Histogram::new(DEFAULT_BUCKETS)
}

fn budget_histogram() -> Histogram {
    Histogram::new([0.1, 0.25, 0.5, 0.75, 0.9, 1.0, 1.5, 2.0])
}

impl Metrics {
    /// Creates the families and registers them in `registry`.
    pub fn new(config: ExporterConfig, registry: &mut Registry) -> Arc<Metrics> {
        let m = Metrics {
            config,
            started: Family::default(),
            handled: Family::default(),
            msg_received: Family::default(),
            msg_sent: Family::default(),
            handling: Family::new_with_constructor(latency_histogram),
            resets: Family::default(),
            goaways: Family::default(),
            pings: Family::default(),
            no_deadline: Family::default(),
            deadline_used: Family::new_with_constructor(budget_histogram),
            in_flight: Gauge::default(),
            anomalies: Family::default(),
            unknown_method: Counter::default(),
            status_unreadable: Counter::default(),
            folded: Counter::default(),
            packets: Counter::default(),
            bytes: Counter::default(),
            drops: Counter::default(),
            gaps: Counter::default(),
            gap_bytes: Counter::default(),
            truncated: Counter::default(),
            state: Mutex::new(State::default()),
        };
        let r = registry;
        r.register(
            "grpc_server_started",
            "Total number of RPCs started on the server",
            m.started.clone(),
        );
        r.register(
            "grpc_server_handled",
            "Total number of RPCs completed on the server, regardless of success or failure",
            m.handled.clone(),
        );
        r.register(
            "grpc_server_msg_received",
            "Total number of RPC stream messages received on the server",
            m.msg_received.clone(),
        );
        r.register(
            "grpc_server_msg_sent",
            "Total number of gRPC stream messages sent by the server",
            m.msg_sent.clone(),
        );
        r.register(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server",
            m.handling.clone(),
        );
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
            "grpctap_calls_unknown_method",
            "Calls whose :path could not be read",
            m.unknown_method.clone(),
        );
        r.register(
            "grpctap_calls_status_unreadable",
            "Calls that ended with a grpc-status that could not be read",
            m.status_unreadable.clone(),
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
            "Packets dropped by the kernel or libpcap before grpctap saw them",
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
        Arc::new(m)
    }

    /// Service and method labels, folded past the cap.
    fn names(&self, state: &mut State, method: Option<&str>) -> (Arc<str>, Arc<str>) {
        let (svc, rpc) = method
            .and_then(decoder::grpc::split_path)
            .unwrap_or(("unknown", "unknown"));
        let key: (Arc<str>, Arc<str>) = (Arc::from(svc), Arc::from(rpc));
        if state.methods.contains(&key) {
            return key;
        }
        if state.methods.len() >= self.config.max_methods {
            self.folded.inc();
            return (Arc::from(OTHER), Arc::from(OTHER));
        }
        state.methods.insert(key.clone());
        key
    }

    fn labels(
        &self,
        rec: &CallRecord,
        state: &mut State,
        ty: CallType,
        code: Option<&'static str>,
    ) -> CallLabels {
        let (grpc_service, grpc_method) = self.names(state, rec.method.as_deref());
        CallLabels {
            grpc_type: ty.name(),
            grpc_service,
            grpc_method,
            grpc_code: code,
            grpc_server: self
                .config
                .server_label
                .then(|| Arc::from(rec.server.to_string())),
        }
    }

    /// A call began.
    pub fn call_started(&self, rec: &CallRecord) {
        self.in_flight.inc();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let known = rec
            .method
            .as_deref()
            .and_then(|m| state.types.get(m).copied());
        if let Some(ty) = known {
            let l = self.labels(rec, &mut state, ty, None);
            self.started.get_or_create(&l).inc();
            state.counted.insert((rec.conn, rec.stream_id));
        }
    }

    /// A call ended (or the capture ended with it open: no status, counted as started only).
    pub fn call_ended(&self, rec: &CallRecord) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if rec.start.is_some() {
            self.in_flight.dec();
        }
        let ty = rec.call_type;
        if let Some(m) = &rec.method {
            state.types.entry(m.clone()).or_insert(ty);
        } else {
            self.unknown_method.inc();
        }
        // The type known at start may differ from what the call turned out to be; label every
        // series of the call with the type it was counted as started under.
        let ty = rec
            .method
            .as_deref()
            .and_then(|m| state.types.get(m).copied())
            .unwrap_or(ty);
        if !state.counted.remove(&(rec.conn, rec.stream_id)) {
            let l = self.labels(rec, &mut state, ty, None);
            self.started.get_or_create(&l).inc();
        }
        let base = self.labels(rec, &mut state, ty, None);
        drop(state);
        self.msg_received.get_or_create(&base).inc_by(rec.req_msgs);
        self.msg_sent.get_or_create(&base).inc_by(rec.resp_msgs);
        let Some(status) = rec.status else {
            if rec.status_source != decoder::StatusSource::Unfinished {
                self.status_unreadable.inc();
            }
            return;
        };
        let handled = CallLabels {
            grpc_code: Some(status.go_name()),
            ..base.clone()
        };
        self.handled.get_or_create(&handled).inc();
        if let Some(d) = rec.duration() {
            self.handling.get_or_create(&base).observe(d.as_secs_f64());
            match rec.timeout {
                Some(t) if !t.is_zero() => {
                    self.deadline_used
                        .get_or_create(&base)
                        .observe(d.as_secs_f64() / t.as_secs_f64());
                }
                Some(_) => {}
                None => {
                    self.no_deadline.get_or_create(&base).inc();
                }
            }
        }
        if let Some(r) = rec.reset {
            let code = decoder::h2::frame::error_code_name(r.code).to_owned();
            self.resets
                .get_or_create(&Labels([("by", side(r.by).into()), ("code", code)]))
                .inc();
        }
    }

    /// A connection-level event.
    pub fn conn_event(&self, event: ConnEvent) {
        match event {
            ConnEvent::Ping(by) => self
                .pings
                .get_or_create(&Labels([("by", side(by).into())]))
                .inc(),
            ConnEvent::Goaway { by, code, .. } => {
                let code = decoder::h2::frame::error_code_name(code).to_owned();
                self.goaways
                    .get_or_create(&Labels([("by", side(by).into()), ("code", code)]))
                    .inc()
            }
            ConnEvent::Anomaly(kind) => self
                .anomalies
                .get_or_create(&Labels([("kind", anomaly(kind).into())]))
                .inc(),
            ConnEvent::Http2 | ConnEvent::Setting { .. } => 0,
        };
    }

    /// Mirrors the capture layer's counters (monotonic: only the increase since the last call
    /// is added).
    pub fn set_capture(&self, now: CaptureCounters) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let last = state.capture;
        let add = |c: &Counter, new: u64, old: u64| {
            c.inc_by(new.saturating_sub(old));
        };
        add(&self.packets, now.packets, last.packets);
        add(&self.bytes, now.bytes, last.bytes);
        add(&self.drops, now.drops, last.drops);
        add(&self.gaps, now.gaps, last.gaps);
        add(&self.gap_bytes, now.gap_bytes, last.gap_bytes);
        add(&self.truncated, now.truncated, last.truncated);
        state.capture = now;
    }
}

fn side(s: Side) -> &'static str {
    s.name()
}

fn anomaly(k: AnomalyKind) -> &'static str {
    k.name()
}
