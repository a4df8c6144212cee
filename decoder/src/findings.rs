//! Findings: which gRPC failure mode the traffic shows, where, since when, how sure, with the
//! evidence as numbers and the usual fix (the failure catalog of the gRPC guides this project
//! follows). Fed by the same call records and connection events as every other output, in
//! capture time only; every map is bounded. [`Findings::report`] turns what was seen into
//! findings at any moment (the end of a replay, each scrape, the UI's refresh).
//!
//! Each kind's rule and its thresholds ([`Thresholds`], changed by name with
//! [`Thresholds::set`]) are documented in docs/findings.md; a kind fires only on evidence that
//! clears every threshold of its rule, so a finding says something true of the capture.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use types::{ConnId, Nanos};

use crate::aggregate::Histogram;
use crate::calls::record::{CallRecord, StatusSource};
use crate::calls::sink::{ConnEvent, Sink};
use crate::grpc::Code;
use crate::h2::event::Side;

/// The kinds of finding. Their names are part of the JSON and metrics contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Calls of a service spread unevenly over its servers (pinned connections).
    ConnectionImbalance,
    /// A server that appeared later gets far less than its share.
    IdleBackend,
    /// Calls without a deadline.
    NoDeadline,
    /// Calls that ran out of their deadline, and servers that answered after it.
    DeadlineExceeded,
    /// A call made while handling a call of the same trace, without the caller's deadline.
    DeadlineNotPropagated,
    /// Retried calls (gRPC retries and hedging), and a retry storm.
    Retries,
    /// Retries of methods the schema does not mark idempotent.
    RetryUnsafe,
    /// Streams open far longer than their method's usual duration.
    LeakedStream,
    /// Senders sat at a zero flow-control window with data waiting.
    FlowControlStall,
    /// A receiver's window so large that flow control cannot push back.
    UnboundedWindow,
    /// Connections at the peer's SETTINGS_MAX_CONCURRENT_STREAMS.
    MaxStreamsSaturated,
    /// PINGs the server refused (ENHANCE_YOUR_CALM, too_many_pings), or too many of them.
    Keepalive,
    /// GOAWAYs that were errors or lost calls.
    Goaway,
    /// Failed calls behind HTTP 200.
    HttpStatusMasksErrors,
    /// What an intermediary that does not carry gRPC does to it.
    BrokenProxy,
    /// Messages at the usual 4 MiB limit, or refused for their size.
    MessageSizeLimit,
    /// A message compressed with an encoding the peer did not list.
    CompressionMismatch,
}

impl Kind {
    /// Every kind, in the order of the docs.
    pub const ALL: [Kind; 17] = [
        Kind::ConnectionImbalance,
        Kind::IdleBackend,
        Kind::NoDeadline,
        Kind::DeadlineExceeded,
        Kind::DeadlineNotPropagated,
        Kind::Retries,
        Kind::RetryUnsafe,
        Kind::LeakedStream,
        Kind::FlowControlStall,
        Kind::UnboundedWindow,
        Kind::MaxStreamsSaturated,
        Kind::Keepalive,
        Kind::Goaway,
        Kind::HttpStatusMasksErrors,
        Kind::BrokenProxy,
        Kind::MessageSizeLimit,
        Kind::CompressionMismatch,
    ];

    /// The name in JSON and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::ConnectionImbalance => "connection_imbalance",
            Kind::IdleBackend => "idle_backend",
            Kind::NoDeadline => "no_deadline",
            Kind::DeadlineExceeded => "deadline_exceeded",
            Kind::DeadlineNotPropagated => "deadline_not_propagated",
            Kind::Retries => "retries",
            Kind::RetryUnsafe => "retry_unsafe",
            Kind::LeakedStream => "leaked_stream",
            Kind::FlowControlStall => "flow_control_stall",
            Kind::UnboundedWindow => "unbounded_window",
            Kind::MaxStreamsSaturated => "max_streams_saturated",
            Kind::Keepalive => "keepalive",
            Kind::Goaway => "goaway",
            Kind::HttpStatusMasksErrors => "http_status_masks_errors",
            Kind::BrokenProxy => "broken_proxy",
            Kind::MessageSizeLimit => "message_size_limit",
            Kind::CompressionMismatch => "compression_mismatch",
        }
    }

    /// The usual fix, in one line (the guides' mitigations).
    pub fn advice(self) -> &'static str {
        match self {
            Kind::ConnectionImbalance => {
                "balance per request, not per connection: client-side round_robin or xDS, or an L7 (HTTP/2-aware) proxy; L4 balancing pins long-lived connections"
            }
            Kind::IdleBackend => {
                "make clients re-resolve and rebalance on topology change (max connection age on the servers, resolver refresh), or balance per request"
            }
            Kind::NoDeadline => {
                "give every call an explicit, bounded deadline, propagated from the edge: a call without one can hang forever and pin its resources"
            }
            Kind::DeadlineExceeded => {
                "find where the budget goes (the slow dependency, queueing); servers should stop work when the deadline passes instead of answering into the void"
            }
            Kind::DeadlineNotPropagated => {
                "pass the incoming call's context (its remaining deadline) to the calls made while serving it, so downstream work stops when the caller gave up"
            }
            Kind::Retries => {
                "bound retries with backoff and jitter, a retry budget or throttle and the deadline, not a raw count; a rising retry share with errors is a retry storm"
            }
            Kind::RetryUnsafe => {
                "retry only idempotent methods (mark them with idempotency_level) or give state-changing ones idempotency keys: a retry after an ambiguous failure can run twice"
            }
            Kind::LeakedStream => {
                "close or cancel streams on every path (errors included), give them a max lifetime and keepalive, drain them on shutdown"
            }
            Kind::FlowControlStall => {
                "a slow consumer holds the sender back (the receiver's window stays at zero): read faster, bound the producer, or give the stream a larger window deliberately"
            }
            Kind::UnboundedWindow => {
                "keep flow-control windows bounded (BDP-sized): a window this large lets a fast producer fill a slow consumer's memory instead of waiting"
            }
            Kind::MaxStreamsSaturated => {
                "calls queue in the client behind the peer's stream limit (their latency includes the wait): raise MAX_CONCURRENT_STREAMS, open more connections, or shed load"
            }
            Kind::Keepalive => {
                "align client keepalive with the server's enforcement policy (client keepalive time >= the server's minimum ping interval), or the server closes the connection"
            }
            Kind::Goaway => {
                "drain connections gracefully (GOAWAY NO_ERROR first, then close) and retry calls refused above the last stream id"
            }
            Kind::HttpStatusMasksErrors => {
                "alert on grpc-status per method, not on HTTP status: a dashboard on HTTP status shows success for these failures"
            }
            Kind::BrokenProxy => {
                "use HTTP/2- and trailer-aware proxies end to end (ALPN h2); a proxy that drops trailers or answers with its own HTTP errors breaks gRPC"
            }
            Kind::MessageSizeLimit => {
                "stream large payloads in chunks, or raise max send/receive message size on both sides deliberately (4 MiB is the usual default)"
            }
            Kind::CompressionMismatch => {
                "compress only with an encoding the peer lists in grpc-accept-encoding (or configure the same compressors on both sides)"
            }
        }
    }
}

/// How bad it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing.
    Info,
    /// Likely to hurt.
    Warning,
    /// Hurting now: calls fail or hang.
    Critical,
}

impl Severity {
    /// The name in JSON and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// How sure a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Certainty {
    /// Read from the wire as it is (a header, a status, a frame).
    High,
    /// Inferred from timing or from matching calls (a trace id and the addresses).
    Medium,
}

impl Certainty {
    /// The name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Certainty::High => "high",
            Certainty::Medium => "medium",
        }
    }
}

/// Where a finding is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// The method (`/pkg.Service/Method`).
    pub method: Option<Arc<str>>,
    /// The service (`pkg.Service`), with the `:authority` its calls used when known.
    pub service: Option<String>,
    /// A server address.
    pub server: Option<SocketAddr>,
    /// A client address.
    pub client: Option<SocketAddr>,
    /// A connection.
    pub conn: Option<ConnId>,
}

/// One finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// What.
    pub kind: Kind,
    /// How bad.
    pub severity: Severity,
    /// Where.
    pub scope: Scope,
    /// The first and last evidence seen.
    pub from: Nanos,
    /// See `from`.
    pub to: Nanos,
    /// One line for people.
    pub summary: String,
    /// The evidence, as named numbers.
    pub evidence: Vec<(&'static str, f64)>,
    /// How sure.
    pub certainty: Certainty,
    /// Calls that show it (connection, stream), a few.
    pub calls: Vec<(ConnId, u32)>,
    /// Connections that show it, a few.
    pub conns: Vec<ConnId>,
}

impl Finding {
    /// The usual fix.
    pub fn advice(&self) -> &'static str {
        self.kind.advice()
    }

    /// The evidence as `name=value` words (whole numbers without decimals).
    pub fn evidence_words(&self) -> Vec<String> {
        self.evidence
            .iter()
            .map(|(k, v)| {
                if v.fract() == 0.0 && v.abs() < 1e15 {
                    format!("{k}={v:.0}")
                } else {
                    format!("{k}={v:.3}")
                }
            })
            .collect()
    }
}

/// The thresholds of the rules; each can be changed by name ([`Thresholds::set`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Calls a method (service, connection) needs before a share of them means anything.
    pub min_calls: u64,
    /// `no_deadline`: share of a method's calls without a deadline.
    pub no_deadline_share: f64,
    /// `deadline_exceeded`: calls that ran out of their deadline, per method.
    pub deadline_exceeded_calls: u64,
    /// `http_status_masks_errors`: share of a method's calls that failed behind HTTP 200.
    pub masked_error_share: f64,
    /// `connection_imbalance`: the busiest server's share over its fair share (1/servers).
    pub imbalance_ratio: f64,
    /// `idle_backend`: a later server's share of the calls since it appeared, over its fair
    /// share, below this.
    pub idle_share: f64,
    /// `idle_backend`: the server appeared after this share of the service's time.
    pub late_after: f64,
    /// `retries`: share of a method's calls that were retries.
    pub retry_share: f64,
    /// `leaked_stream`: a stream still open (or ended) after this long ...
    pub leak_age_s: f64,
    /// ... and this many times its method's median duration.
    pub leak_ratio: f64,
    /// `max_streams_saturated`: calls begun while their connection was at the limit.
    pub saturated_calls: u64,
    /// `message_size_limit`: a message this close to 4 MiB (share of it).
    pub size_near: f64,
    /// `flow_control_stall`: stalls of a method's calls ...
    pub stall_count: u64,
    /// ... and their seconds, together.
    pub stall_seconds: f64,
    /// `leaked_stream` (a connection): the streams it keeps open between calls rose by this
    /// many from its first quarter to its last.
    pub rising_streams: u32,
    /// `retries` (application-level): the same first request sent to the same method by the
    /// same client within this many seconds of a failed call with it.
    pub app_retry_within_s: f64,
    /// ... at least this many such calls, this share of the failed calls ...
    pub app_retry_calls: u64,
    pub app_retry_share: f64,
    /// ... and this many times the share of successful calls sent again.
    pub app_retry_ratio: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            min_calls: 20,
            no_deadline_share: 0.5,
            deadline_exceeded_calls: 3,
            masked_error_share: 0.05,
            imbalance_ratio: 1.5,
            idle_share: 0.25,
            late_after: 0.2,
            retry_share: 0.05,
            leak_age_s: 10.0,
            leak_ratio: 10.0,
            saturated_calls: 5,
            size_near: 0.9,
            stall_count: 3,
            stall_seconds: 0.5,
            app_retry_within_s: 2.0,
            app_retry_calls: 5,
            app_retry_share: 0.3,
            app_retry_ratio: 3.0,
            rising_streams: 3,
        }
    }
}

impl Thresholds {
    /// The names [`Thresholds::set`] takes.
    pub const NAMES: [&'static str; 19] = [
        "min_calls",
        "no_deadline_share",
        "deadline_exceeded_calls",
        "masked_error_share",
        "imbalance_ratio",
        "idle_share",
        "late_after",
        "retry_share",
        "leak_age_s",
        "leak_ratio",
        "saturated_calls",
        "size_near",
        "stall_count",
        "stall_seconds",
        "app_retry_within_s",
        "app_retry_calls",
        "app_retry_share",
        "app_retry_ratio",
        "rising_streams",
    ];

    /// Sets one threshold from `name=value`.
    pub fn set(&mut self, spec: &str) -> Result<(), String> {
        let (name, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("{spec:?}: expected NAME=VALUE"))?;
        let v: f64 = value
            .trim()
            .parse()
            .map_err(|_| format!("{spec:?}: {value:?} is not a number"))?;
        if !(v.is_finite() && v >= 0.0) {
            return Err(format!("{spec:?}: must be a number >= 0"));
        }
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let n = v.round() as u64;
        match name.trim() {
            "min_calls" => self.min_calls = n,
            "no_deadline_share" => self.no_deadline_share = v,
            "deadline_exceeded_calls" => self.deadline_exceeded_calls = n,
            "masked_error_share" => self.masked_error_share = v,
            "imbalance_ratio" => self.imbalance_ratio = v,
            "idle_share" => self.idle_share = v,
            "late_after" => self.late_after = v,
            "retry_share" => self.retry_share = v,
            "leak_age_s" => self.leak_age_s = v,
            "leak_ratio" => self.leak_ratio = v,
            "saturated_calls" => self.saturated_calls = n,
            "size_near" => self.size_near = v,
            "stall_count" => self.stall_count = n,
            "stall_seconds" => self.stall_seconds = v,
            "app_retry_within_s" => self.app_retry_within_s = v,
            "app_retry_calls" => self.app_retry_calls = n,
            "app_retry_share" => self.app_retry_share = v,
            "app_retry_ratio" => self.app_retry_ratio = v,
            "rising_streams" => self.rising_streams = u32::try_from(n).unwrap_or(u32::MAX),
            other => {
                return Err(format!(
                    "no threshold {other:?} (one of: {})",
                    Self::NAMES.join(", ")
                ));
            }
        }
        Ok(())
    }
}

/// A service: the `:authority` its calls used, and its name.
type ServiceKey = (Option<Arc<str>>, Box<str>);

/// Maps keyed by what the wire says (method names, ids): a fast hash, seeded per process.
type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// The usual message size limit (grpc-go, C-core, grpc-java receive default).
pub const USUAL_MAX_MESSAGE: u64 = 4 << 20;

/// A call begun this soon after a stream's end freed a place under the stream limit waited
/// for it.
const QUEUED_WITHIN: Duration = Duration::from_millis(5);

/// An answer this long after the deadline came after it (clocks of the two ends and of the tap
/// differ by little on one host; more across a network).
pub const LATE_BY: Duration = Duration::from_millis(1);

/// Calls (connections) a finding keeps as examples.
const EXAMPLES: usize = 8;
/// Methods kept apart; calls of others are not looked at.
const MAX_METHODS: usize = 2048;
/// Servers kept per service, and services.
const MAX_SERVERS: usize = 256;
const MAX_SERVICES: usize = 1024;
/// Connections followed at once (closed ones are folded into their findings and let go).
const MAX_CONNS: usize = 1 << 16;
/// Calls with a trace id and a deadline kept open as possible parents.
const MAX_PARENTS: usize = 1 << 14;
/// Clients of a method whose last calls are kept (to see the same request sent again), all
/// methods together, and calls kept for each.
const MAX_RETRY_KEYS: usize = 1 << 14;
const RECENT_KEPT: usize = 8;
/// Failures a client may well retry (not those the request itself caused).
const RETRIED_BY_CLIENTS: [Code; 4] = [
    Code::UNAVAILABLE,
    Code::DEADLINE_EXCEEDED,
    Code::RESOURCE_EXHAUSTED,
    Code::ABORTED,
];

/// A bounded list of examples.
#[derive(Debug, Clone)]
struct Examples<T>(Vec<T>);

impl<T> Default for Examples<T> {
    fn default() -> Self {
        Examples(Vec::new())
    }
}

impl<T: PartialEq> Examples<T> {
    fn add(&mut self, t: T) {
        if self.0.len() < EXAMPLES && !self.0.contains(&t) {
            self.0.push(t);
        }
    }
}

/// A first and last time.
#[derive(Debug, Clone, Copy, Default)]
struct Span(Option<(Nanos, Nanos)>);

impl Span {
    fn add(&mut self, t: Nanos) {
        self.0 = Some(match self.0 {
            None => (t, t),
            Some((a, b)) => (a.min(t), b.max(t)),
        });
    }

    fn get(&self) -> (Nanos, Nanos) {
        self.0.unwrap_or((Nanos::ZERO, Nanos::ZERO))
    }
}

/// One counter of calls with its times and examples.
#[derive(Debug, Clone, Default)]
struct Tally {
    n: u64,
    span: Span,
    calls: Examples<(ConnId, u32)>,
}

impl Tally {
    fn add(&mut self, c: &CallRecord) {
        self.n += 1;
        self.span.add(c.end.or(c.start).unwrap_or(Nanos::ZERO));
        self.calls.add((c.conn, c.stream_id));
    }
}

/// Retries over the method's life, in halves: (calls, retried, failed) of the first and second.
#[derive(Debug, Clone, Default)]
struct Halves {
    first: Option<Nanos>,
    items: Vec<(Nanos, bool, bool)>,
}

impl Halves {
    /// Keeps at most this many (time, retried, failed), thinned by two when full.
    const MAX: usize = 1024;

    fn add(&mut self, t: Nanos, retried: bool, failed: bool) {
        self.first.get_or_insert(t);
        if self.items.len() >= Self::MAX {
            let mut i = 0;
            self.items.retain(|_| {
                i += 1;
                i % 2 == 0
            });
        }
        self.items.push((t, retried, failed));
    }

    /// (retry share, error share) of the first and the second half of the time seen.
    fn shares(&self) -> Option<[(f64, f64); 2]> {
        // Calls end in any order (several files, streams of different lengths).
        let a = self.items.iter().map(|x| x.0).min()?;
        let b = self.items.iter().map(|x| x.0).max()?;
        let mid = Nanos(a.0 + (b.0 - a.0) / 2);
        let mut n = [[0u64; 3]; 2];
        for &(t, r, f) in &self.items {
            let h = usize::from(t > mid);
            n[h][0] += 1;
            n[h][1] += u64::from(r);
            n[h][2] += u64::from(f);
        }
        if n[0][0] == 0 || n[1][0] == 0 {
            return None;
        }
        let s = |h: [u64; 3]| (h[1] as f64 / h[0] as f64, h[2] as f64 / h[0] as f64);
        Some([s(n[0]), s(n[1])])
    }
}

/// The streams a connection had open each time one ended, over its life (the floor it falls
/// back to between calls: rising, streams are not being closed).
#[derive(Debug, Clone, Default)]
struct Floors {
    items: Vec<(Nanos, u32)>,
}

impl Floors {
    /// Keeps at most this many (time, open), two neighbours folded into their lower when full.
    const MAX: usize = 32;

    fn add(&mut self, t: Nanos, open: u32) {
        if self.items.len() >= Self::MAX {
            // In place: pair i folds into slot i.
            let n = self.items.len() / 2;
            for i in 0..n {
                let (a, b) = (self.items[2 * i], self.items[2 * i + 1]);
                self.items[i] = (a.0, a.1.min(b.1));
            }
            self.items.truncate(n);
        }
        self.items.push((t, open));
    }

    /// The lowest count of open streams in each quarter of the time seen, when each has some.
    fn quarters(&self) -> Option<[u32; 4]> {
        let a = self.items.iter().map(|x| x.0).min()?;
        let b = self.items.iter().map(|x| x.0).max()?;
        let q = (b.0 - a.0) / 4;
        let mut low = [None::<u32>; 4];
        for &(t, n) in &self.items {
            let i = usize::try_from((t.0 - a.0) / q.max(1)).map_or(3, |i| i.min(3));
            low[i] = Some(low[i].map_or(n, |l| l.min(n)));
        }
        Some([low[0]?, low[1]?, low[2]?, low[3]?])
    }

    /// A floor that rises in the first half and again in the second, by `by` in all (a step
    /// once, as long-lived streams opened at start, is not a rise).
    fn rise(&self, by: u32) -> Option<(u32, u32)> {
        let [q1, q2, _, q4] = self.quarters()?;
        (q2 > q1 && q4 > q2 && q4 >= q1 + by).then_some((q1, q4))
    }
}

/// What is kept per method.
#[derive(Debug, Clone, Default)]
struct MethodState {
    calls: u64,
    span: Span,
    authority: Option<Arc<str>>,
    /// Calls whose request headers were read (their deadline is known).
    headers_read: u64,
    no_deadline: Tally,
    exceeded: Tally,
    /// Answered (response headers or a message) after the client's deadline had passed.
    late_answers: Tally,
    http200_failed: Tally,
    failed: u64,
    retried: Tally,
    max_attempt: u32,
    /// Calls that sent again the first request of a failed call (application-level retries),
    /// and of a call that had not failed; calls with a request digest that were OK and that
    /// failed with a status a client may retry (UNAVAILABLE, DEADLINE_EXCEEDED,
    /// RESOURCE_EXHAUSTED, ABORTED), each of which may be followed by a repeat.
    app_retried: Tally,
    repeated_ok: u64,
    sent_after: [u64; 2],
    recent: RecentRequests,
    halves: Halves,
    /// Durations of the calls that ended (for what is usual).
    durations: Histogram,
    leaked: Tally,
    longest_open: Duration,
    too_big: Tally,
    near_limit: Tally,
    largest_message: u64,
    no_trailers: Tally,
    proxy_status: Tally,
    http_statuses: BTreeMap<u16, u64>,
    no_te: Tally,
    not_grpc_response: Tally,
    compression: Tally,
    compression_pairs: BTreeMap<String, u64>,
    /// The service the method's last call counted under: its `:authority` and its index.
    service: Option<(Option<Arc<str>>, usize)>,
    /// Calls with flow-control stalls, the stalls and their time (both directions).
    stalled: Tally,
    stalls: u64,
    stalled_time: Duration,
}

/// A server of a service.
#[derive(Debug, Clone, Default)]
struct ServerState {
    calls: u64,
    first: Nanos,
    conns: Examples<ConnId>,
    conns_n: u64,
    /// The service's calls counted before this server's first.
    calls_before: u64,
}

/// What is kept per service (authority and service name).
#[derive(Debug, Clone, Default)]
struct ServiceState {
    span: Span,
    /// In the order they appeared (by address in what is reported).
    servers: Vec<(SocketAddr, ServerState)>,
    /// Calls counted.
    calls: u64,
}

/// What is kept per connection.
#[derive(Debug, Clone, Default)]
struct ConnState {
    client: Option<SocketAddr>,
    server: Option<SocketAddr>,
    opened: Nanos,
    last: Nanos,
    /// Streams open now, and the peer's limit (the server's SETTINGS_MAX_CONCURRENT_STREAMS:
    /// it limits the client's streams).
    open: u32,
    max_streams: Option<u32>,
    at_limit_calls: u64,
    at_limit_since: Option<Nanos>,
    /// A stream ended while the connection was at the limit: a call waiting in the client
    /// begins the moment after.
    released: Option<Nanos>,
    at_limit_time: Duration,
    pings: [u64; 2],
    ping_span: Span,
    rtt: Histogram,
    too_many_pings: bool,
    /// A receiver's unbounded window: who, and how large.
    large_window: Option<(Side, u64)>,
    /// The GOAWAY's debug data said `too_many_pings`.
    too_many_pings_text: bool,
    goaways: Vec<(Side, u32)>,
    lost_to_goaway: Tally,
    /// The services its calls counted under (indexes into `Findings::services`) and where its
    /// server is in each.
    services: Vec<(usize, usize)>,
    /// Its last call's method and where it is in `Findings::methods`.
    method: Option<(Arc<str>, usize)>,
    /// Streams open as each ended.
    floors: Floors,
}

/// A call that may make calls of its own while it is served: a trace id, where it is served,
/// and when its deadline passes.
#[derive(Debug, Clone, Copy)]
struct Parent {
    conn: ConnId,
    stream: u32,
    server: IpAddr,
    start: Nanos,
    deadline: Option<Nanos>,
}

/// A call made while serving a parent without the parent's deadline.
#[derive(Debug, Clone, Default)]
struct Unpropagated {
    /// Children without a deadline, with a longer one, and children seen (with a parent).
    missing: Tally,
    longer: Tally,
    children: u64,
    parents: Examples<(ConnId, u32)>,
    server: Option<SocketAddr>,
}

/// Turns calls and connection events into findings.
#[derive(Debug)]
pub struct Findings {
    limits: Thresholds,
    /// In the order they were seen, and where each is by name.
    methods: Vec<(Arc<str>, MethodState)>,
    method_ix: Map<Arc<str>, usize>,
    /// Services, and where each is in `services` by `:authority` and service name.
    services: Vec<(ServiceKey, ServiceState)>,
    service_ix: Map<ServiceKey, usize>,
    conns: Map<ConnId, ConnState>,
    /// Findings of connections let go.
    closed: Vec<Finding>,
    /// Open calls that can be parents, by trace id.
    parents: Map<Arc<str>, Vec<Parent>>,
    parents_n: usize,
    /// Children by the method they called.
    unpropagated: Map<Arc<str>, Unpropagated>,
    /// Which methods the schemas mark idempotent (none: nothing known).
    idempotent: Option<Idempotency>,
    last: Nanos,
    /// Clients kept in the methods' `recent` (all methods together).
    recent_clients: usize,
    /// `limits.app_retry_within_s` and `limits.leak_age_s`, as durations.
    app_retry_within: Duration,
    leak_age: Duration,
}

/// Which methods the schemas mark idempotent.
struct Idempotency(IdempotencyFn);

/// A method's last calls by client address: (first request digest, end, failed so a client may
/// retry), the newest last (a later call with the same request repeats it).
type RecentRequests = Map<IpAddr, Vec<(u64, Nanos, bool)>>;

/// Says whether a method is idempotent (`None`: the schemas do not have it).
pub type IdempotencyFn = Box<dyn Fn(&str) -> Option<bool> + Send>;

impl std::fmt::Debug for Idempotency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Idempotency")
    }
}

/// "120 ms", "3.2 s".
fn short(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s < 1.0 {
        format!("{:.0} ms", s * 1e3)
    } else {
        format!("{s:.1} s")
    }
}

fn service_of(method: &str) -> &str {
    method
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or(method)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn since(a: Nanos, b: Nanos) -> Duration {
    b.checked_since(a).unwrap_or_default()
}

impl Findings {
    /// An engine with `limits`.
    pub fn new(limits: Thresholds) -> Findings {
        // Out of range (a huge or infinite number of seconds): as long as can be.
        let secs = |s: f64| Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX);
        Findings {
            app_retry_within: secs(limits.app_retry_within_s),
            leak_age: secs(limits.leak_age_s),
            limits,
            methods: Vec::new(),
            method_ix: Map::default(),
            services: Vec::new(),
            service_ix: Map::default(),
            conns: Map::default(),
            closed: Vec::new(),
            parents: Map::default(),
            parents_n: 0,
            unpropagated: Map::default(),
            idempotent: None,
            last: Nanos::ZERO,
            recent_clients: 0,
        }
    }

    /// Says which methods are idempotent (`Some(true)`: the schema marks it
    /// `NO_SIDE_EFFECTS` or `IDEMPOTENT`; `None`: the method is not in the schemas).
    pub fn with_idempotency(mut self, f: IdempotencyFn) -> Findings {
        self.idempotent = Some(Idempotency(f));
        self
    }

    fn conn(&mut self, id: ConnId) -> Option<&mut ConnState> {
        if self.conns.len() < MAX_CONNS {
            return Some(self.conns.entry(id).or_default());
        }
        self.conns.get_mut(&id)
    }

    fn started(&mut self, c: &CallRecord) {
        let Some(start) = c.start else {
            if let Some(s) = self.conns.get_mut(&c.conn) {
                Self::note_saturation(s, c);
            }
            return;
        };
        self.last = self.last.max(start);
        if let Some(s) = self.conn(c.conn) {
            Self::note_saturation(s, c);
            s.client.get_or_insert(c.client);
            s.server.get_or_insert(c.server);
            s.last = s.last.max(start);
            s.open += 1;
            if let Some(max) = s.max_streams {
                if s.open > max {
                    // The limit was lowered, or the capture missed an end: not at the limit.
                    s.at_limit_since = None;
                } else if s.open == max {
                    s.at_limit_since.get_or_insert(start);
                }
            }
        }
        self.child(c, start);
        if let Some(trace) = c.trace_id.as_ref()
            && self.parents_n < MAX_PARENTS
        {
            self.parents.entry(trace.clone()).or_default().push(Parent {
                conn: c.conn,
                stream: c.stream_id,
                server: c.server.ip(),
                start,
                deadline: c.timeout.map(|t| start + t),
            });
            self.parents_n += 1;
        }
    }

    /// A call of a trace, begun by the server of an open call of the same trace while it
    /// served it: it should carry at most the parent's remaining budget.
    fn child(&mut self, c: &CallRecord, start: Nanos) {
        let Some(trace) = c.trace_id.as_ref() else {
            return;
        };
        let Some(parents) = self.parents.get(trace) else {
            return;
        };
        let Some(p) = parents
            .iter()
            .rev()
            .find(|p| p.server == c.client.ip() && p.start <= start && p.conn != c.conn)
            .copied()
        else {
            return;
        };
        let Some(parent_deadline) = p.deadline else {
            return;
        };
        let Some(method) = c.method.clone() else {
            return;
        };
        if !self.unpropagated.contains_key(&method) && self.unpropagated.len() >= MAX_METHODS {
            return;
        }
        let u = self.unpropagated.entry(method).or_default();
        u.children += 1;
        u.server.get_or_insert(c.server);
        // 5 ms of slack: the child's budget is computed a moment after its parent's start.
        let slack = Duration::from_millis(5);
        match c.timeout {
            None => {
                u.missing.add(c);
                u.parents.add((p.conn, p.stream));
            }
            Some(t) if start + t > parent_deadline + slack => {
                u.longer.add(c);
                u.parents.add((p.conn, p.stream));
            }
            Some(_) => {}
        }
    }

    fn ended(&mut self, c: &CallRecord) {
        let end = c.end.or(c.start).unwrap_or(self.last);
        self.last = self.last.max(end);
        if let Some(trace) = c.trace_id.as_ref()
            && let Some(ps) = self.parents.get_mut(trace)
        {
            let before = ps.len();
            ps.retain(|p| !(p.conn == c.conn && p.stream == c.stream_id));
            self.parents_n -= before - ps.len();
            if ps.is_empty() {
                self.parents.remove(trace);
            }
        }
        let unfinished = c.status_source == StatusSource::Unfinished;
        // Only a connection still followed (its end was not reported yet: calls still open
        // when a connection closes end after it, and must not bring it back).
        let mut cs = self.conns.get_mut(&c.conn);
        if let Some(s) = cs.as_deref_mut() {
            s.last = s.last.max(end);
            if c.start.is_some() {
                let was_at_limit = s.max_streams.is_some_and(|m| s.open == m);
                s.open = s.open.saturating_sub(1);
                if !unfinished {
                    s.floors.add(end, s.open);
                }
                if was_at_limit {
                    s.released = Some(end);
                    if let Some(from) = s.at_limit_since.take() {
                        s.at_limit_time += since(from, end);
                    }
                }
            }
            if c.status_source == StatusSource::Goaway {
                s.lost_to_goaway.add(c);
            }
        }
        let Some(method) = c.method.as_ref() else {
            return;
        };
        // A method seen before (the common case) is found by its name: no key is made.
        // The connection's last method (the same interned name: one pointer compared), else
        // the method by its name.
        let cached = cs
            .as_ref()
            .and_then(|s| s.method.as_ref())
            .filter(|(name, _)| Arc::ptr_eq(name, method))
            .map(|&(_, i)| i);
        let mi = match cached {
            Some(i) => i,
            None => {
                let i = match self.method_ix.get(&**method) {
                    Some(&i) => i,
                    None if self.methods.len() < MAX_METHODS => {
                        self.methods.push((method.clone(), MethodState::default()));
                        self.method_ix
                            .insert(method.clone(), self.methods.len() - 1);
                        self.methods.len() - 1
                    }
                    None => return,
                };
                if let Some(s) = cs.as_deref_mut() {
                    s.method = Some((method.clone(), i));
                }
                i
            }
        };
        let m = &mut self.methods[mi].1;
        let cached = m.service.as_ref().and_then(|(a, i)| {
            let same = match (a, &c.authority) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b) || a == b,
                (None, None) => true,
                _ => false,
            };
            same.then_some(*i)
        });
        let ix = match cached {
            Some(i) => Some(i),
            None => {
                let key = (c.authority.clone(), Box::<str>::from(service_of(method)));
                let i = match self.service_ix.get(&key) {
                    Some(&i) => Some(i),
                    None if self.services.len() < MAX_SERVICES => {
                        self.services.push((key.clone(), ServiceState::default()));
                        self.service_ix.insert(key, self.services.len() - 1);
                        Some(self.services.len() - 1)
                    }
                    None => None,
                };
                if let Some(i) = i {
                    m.service = Some((c.authority.clone(), i));
                }
                i
            }
        };
        if let Some(i) = ix {
            // Each connection counts once per service (a connection carries few services) and
            // keeps where its server is in it.
            let service = &mut self.services[i].1;
            match cs {
                Some(cs) => match cs.services.iter().find(|x| x.0 == i) {
                    Some(&(_, j)) => Self::service_call(service, j, c, end, false),
                    None => {
                        if let Some(j) = Self::server_of(service, c, end) {
                            if cs.services.len() < 16 {
                                cs.services.push((i, j));
                            }
                            Self::service_call(service, j, c, end, true);
                        }
                    }
                },
                None => {
                    if let Some(j) = Self::server_of(service, c, end) {
                        Self::service_call(service, j, c, end, true);
                    }
                }
            }
        }
        m.calls += 1;
        m.span.add(end);
        if m.authority.is_none() {
            m.authority.clone_from(&c.authority);
        }
        let failed = c.status.is_some_and(|s| s != Code::OK);
        m.failed += u64::from(failed);
        if c.start.is_some() && !c.http1 {
            m.headers_read += 1;
            if c.timeout.is_none() && c.protocol == crate::calls::RequestKind::Grpc {
                m.no_deadline.add(c);
            }
            if c.te_trailers == Some(false) && c.protocol == crate::calls::RequestKind::Grpc {
                m.no_te.add(c);
            }
        }
        if c.status == Some(Code::DEADLINE_EXCEEDED)
            || matches!(c.status_source, StatusSource::Deadline)
        {
            m.exceeded.add(c);
        }
        // A server that answered (response headers or a message) after the client's deadline,
        // and not with DEADLINE_EXCEEDED itself: it did the work for nobody.
        if c.answered_after_deadline(LATE_BY) {
            m.late_answers.add(c);
        }
        if c.http_status == Some(200) && failed && !c.http1 {
            m.http200_failed.add(c);
        }
        if c.attempt > 0 {
            m.retried.add(c);
            m.max_attempt = m.max_attempt.max(c.attempt);
        } else if let (Some(d), Some(start)) = (c.req.first_digest, c.start) {
            let within = self.app_retry_within;
            let transient = c.status.is_some_and(|s| RETRIED_BY_CLIENTS.contains(&s));
            let ok = c.status == Some(Code::OK);
            let repeat = Self::repeat_of(
                &mut m.recent,
                &mut self.recent_clients,
                c,
                (d, start, transient),
                within,
            );
            if transient || ok {
                m.sent_after[usize::from(transient)] += 1;
            }
            match repeat {
                Some(true) => m.app_retried.add(c),
                Some(false) => m.repeated_ok += 1,
                None => {}
            }
        }
        m.halves.add(end, c.attempt > 0, failed);
        if unfinished {
            if let Some(start) = c.start {
                let age = since(start, end.max(self.last));
                m.longest_open = m.longest_open.max(age);
                if age >= self.leak_age {
                    m.leaked.add(c);
                }
            }
        } else if let (Some(s), Some(e)) = (c.start, c.end) {
            m.durations.record(since(s, e));
        }
        let largest = c.req.max_msg.max(c.resp.max_msg);
        m.largest_message = m.largest_message.max(u64::from(largest));
        // What few calls show is out of line: the common call runs through less code.
        #[allow(clippy::cast_precision_loss)]
        let rare = c.req.stalls > 0
            || c.resp.stalls > 0
            || c.status == Some(Code::RESOURCE_EXHAUSTED)
            || f64::from(largest) >= self.limits.size_near * USUAL_MAX_MESSAGE as f64
            || matches!(
                c.status_source,
                StatusSource::NoTrailers | StatusSource::HttpStatus
            )
            || c.resp_content_type
                .as_deref()
                .is_some_and(|t| !t.starts_with("application/grpc"))
            || c.req.encoding.as_deref().is_some_and(|e| e != "identity")
            || c.resp.encoding.as_deref().is_some_and(|e| e != "identity");
        if rare {
            Self::ended_rare(m, c, largest, self.limits.size_near);
        }
    }

    /// What call `c` of `m` shows that few calls do: flow-control stalls, size limits, proxy
    /// traces, compression; `largest`: its largest message.
    #[cold]
    #[inline(never)]
    fn ended_rare(m: &mut MethodState, c: &CallRecord, largest: u32, size_near: f64) {
        let stalls = u64::from(c.req.stalls) + u64::from(c.resp.stalls);
        if stalls > 0 {
            m.stalled.add(c);
            m.stalls += stalls;
            m.stalled_time += c.req.stalled + c.resp.stalled;
        }
        if c.status == Some(Code::RESOURCE_EXHAUSTED)
            && c.grpc_message.as_deref().is_some_and(|t| {
                let t = t.to_ascii_lowercase();
                t.contains("message")
                    && (t.contains("larger") || t.contains("size") || t.contains("exceed"))
            })
        {
            m.too_big.add(c);
        }
        #[allow(clippy::cast_precision_loss)]
        if f64::from(largest) >= size_near * USUAL_MAX_MESSAGE as f64 {
            m.near_limit.add(c);
        }
        match c.status_source {
            StatusSource::NoTrailers if !c.http1 => m.no_trailers.add(c),
            // gRPC-Web and Connect carry errors in HTTP statuses of their own.
            StatusSource::HttpStatus if c.protocol == crate::calls::RequestKind::Grpc => {
                m.proxy_status.add(c);
                if let Some(h) = c.http_status
                    && m.http_statuses.len() < 16
                {
                    *m.http_statuses.entry(h).or_default() += 1;
                }
            }
            _ => {}
        }
        if c.protocol == crate::calls::RequestKind::Grpc
            && c.resp_content_type
                .as_deref()
                .is_some_and(|t| !t.starts_with("application/grpc"))
        {
            m.not_grpc_response.add(c);
        }
        for (enc, accept) in [
            (&c.req.encoding, &c.resp.accept_encoding),
            (&c.resp.encoding, &c.req.accept_encoding),
        ] {
            if let (Some(e), Some(a)) = (enc.as_deref(), accept.as_deref())
                && e != "identity"
                && !a.split(',').any(|x| x.trim() == e)
            {
                m.compression.add(c);
                if m.compression_pairs.len() < 8 {
                    *m.compression_pairs
                        .entry(format!("{e} not in \"{a}\""))
                        .or_default() += 1;
                }
            }
        }
    }

    /// Call `c` (of `method`, first request digest `d`, begun at `start`; `transient`: it
    /// failed as a client may retry): whether it sent again the request of a call of its
    /// client that ended at most `within` before it began, and whether that call had failed so
    /// (the earlier call is then spent: one repeat each). `c` is kept for the next.
    fn repeat_of(
        kept: &mut RecentRequests,
        clients: &mut usize,
        c: &CallRecord,
        (d, start, transient): (u64, Nanos, bool),
        within: Duration,
    ) -> Option<bool> {
        let full = *clients >= MAX_RETRY_KEYS;
        let v = match kept.entry(c.client.ip()) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(v) if !full => {
                *clients += 1;
                v.insert(Vec::new())
            }
            std::collections::hash_map::Entry::Vacant(_) => return None,
        };
        let repeat = v
            .iter()
            .rposition(|&(x, end, _)| x == d && end <= start && since(end, start) <= within)
            .map(|i| v.remove(i).2);
        if v.len() >= RECENT_KEPT {
            v.remove(0);
        }
        v.push((d, c.end.unwrap_or(start), transient));
        repeat
    }

    /// Where the server of call `c` (ended at `end`) is in service `s`, added when new (none:
    /// the service has as many servers as are kept).
    fn server_of(s: &mut ServiceState, c: &CallRecord, end: Nanos) -> Option<usize> {
        if let Some(j) = s.servers.iter().position(|x| x.0 == c.server) {
            return Some(j);
        }
        if s.servers.len() >= MAX_SERVERS {
            return None;
        }
        let server = ServerState {
            first: c.start.unwrap_or(end),
            calls_before: s.calls,
            ..Default::default()
        };
        s.servers.push((c.server, server));
        Some(s.servers.len() - 1)
    }

    /// A call of service `s` to its server `j`; `new_conn`: the first of its connection for
    /// the service.
    fn service_call(s: &mut ServiceState, j: usize, c: &CallRecord, end: Nanos, new_conn: bool) {
        s.span.add(c.start.unwrap_or(end));
        s.span.add(end);
        let first = c.start.unwrap_or(end);
        s.calls += 1;
        let srv = &mut s.servers[j].1;
        srv.first = srv.first.min(first);
        srv.calls += 1;
        if new_conn {
            srv.conns_n += 1;
            srv.conns.add(c.conn);
        }
    }

    fn conn_event(&mut self, id: ConnId, ev: ConnEvent) {
        match ev {
            ConnEvent::Http2 {
                client,
                server,
                opened,
                ..
            } => {
                if let Some(s) = self.conn(id) {
                    s.client = Some(client);
                    s.server = Some(server);
                    s.opened = opened;
                    s.last = s.last.max(opened);
                }
            }
            ConnEvent::Setting {
                by: Side::Server,
                id: 0x3,
                value,
            } => {
                if let Some(s) = self.conn(id) {
                    s.max_streams = Some(value);
                }
            }
            ConnEvent::Ping(side) => {
                let last = self.last;
                if let Some(s) = self.conn(id) {
                    s.pings[usize::from(side == Side::Server)] += 1;
                    s.ping_span.add(last.max(s.last));
                }
            }
            ConnEvent::PingRtt { rtt, .. } => {
                if let Some(s) = self.conn(id) {
                    s.rtt.record(rtt);
                }
            }
            ConnEvent::Goaway {
                by,
                code,
                too_many_pings,
                ..
            } => {
                if let Some(s) = self.conn(id) {
                    if s.goaways.len() < 8 {
                        s.goaways.push((by, code));
                    }
                    s.too_many_pings |= by == Side::Server && code == 0xb;
                    s.too_many_pings_text |= too_many_pings;
                }
            }
            ConnEvent::LargeWindow { by, bytes } => {
                if let Some(s) = self.conn(id) {
                    s.large_window.get_or_insert((by, bytes));
                }
            }
            ConnEvent::Closed { .. } => {
                if let Some(s) = self.conns.remove(&id) {
                    let mut out = Vec::new();
                    self.conn_findings(id, &s, &mut out);
                    for f in out {
                        if self.closed.len() < 4096 {
                            self.closed.push(f);
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// A call began within a few milliseconds of a stream's end that freed a place under the
    /// limit: it had waited in the client.
    fn note_saturation(s: &mut ConnState, c: &CallRecord) {
        if let (Some(released), Some(start)) = (s.released.take(), c.start)
            && since(released, start) <= QUEUED_WITHIN
        {
            s.at_limit_calls += 1;
        }
    }

    /// The findings of one connection.
    fn conn_findings(&self, id: ConnId, s: &ConnState, out: &mut Vec<Finding>) {
        let th = &self.limits;
        let scope = Scope {
            server: s.server,
            client: s.client,
            conn: Some(id),
            ..Default::default()
        };
        let life = since(s.opened, s.last);
        if let Some(max) = s.max_streams
            && s.at_limit_calls >= th.saturated_calls
        {
            out.push(Finding {
                kind: Kind::MaxStreamsSaturated,
                severity: Severity::Warning,
                scope: scope.clone(),
                from: s.opened,
                to: s.last,
                summary: format!(
                    "{} calls began the moment a stream ended, with the connection at the server's limit of {max} concurrent streams: they waited in the client",
                    s.at_limit_calls
                ),
                evidence: vec![
                    ("max_concurrent_streams", f64::from(max)),
                    ("calls_queued", s.at_limit_calls as f64),
                    ("seconds_at_limit", secs(s.at_limit_time)),
                    ("connection_seconds", secs(life)),
                ],
                certainty: Certainty::Medium,
                calls: Vec::new(),
                conns: vec![id],
            });
        }
        if let Some((by, bytes)) = s.large_window {
            out.push(Finding {
                kind: Kind::UnboundedWindow,
                severity: Severity::Warning,
                scope: scope.clone(),
                from: s.opened,
                to: s.last,
                summary: format!(
                    "the {} opened a flow-control window of {bytes} bytes: flow control cannot push back on a slow consumer",
                    by.name()
                ),
                evidence: vec![("window_bytes", bytes as f64)],
                certainty: Certainty::High,
                calls: Vec::new(),
                conns: vec![id],
            });
        }
        if let Some((first, last)) = s.floors.rise(th.rising_streams) {
            out.push(Finding {
                kind: Kind::LeakedStream,
                severity: Severity::Warning,
                scope: scope.clone(),
                from: s.opened,
                to: s.last,
                summary: format!(
                    "the streams this connection keeps open between calls rose from {first} to {last}: streams are opened and not closed"
                ),
                evidence: vec![
                    ("open_streams_floor_first_quarter", f64::from(first)),
                    ("open_streams_floor_last_quarter", f64::from(last)),
                    ("open_streams", f64::from(s.open)),
                    ("connection_seconds", secs(life)),
                ],
                certainty: Certainty::Medium,
                calls: Vec::new(),
                conns: vec![id],
            });
        }
        let pings = s.pings[0] + s.pings[1];
        let (pf, pl) = s.ping_span.get();
        let ping_secs = secs(since(pf, pl)).max(secs(life));
        #[allow(clippy::cast_precision_loss)]
        let rate = if ping_secs > 0.0 {
            pings as f64 / ping_secs
        } else {
            0.0
        };
        // PINGs alone say little: gRPC stacks probe the bandwidth-delay product with PINGs as
        // data arrives (hundreds a second on a busy stream), so only the server's own verdict
        // (GOAWAY ENHANCE_YOUR_CALM) marks keepalive as too aggressive.
        if s.too_many_pings {
            let mut evidence = vec![
                ("pings_from_client", s.pings[0] as f64),
                ("pings_from_server", s.pings[1] as f64),
                ("pings_per_second", rate),
                (
                    "too_many_pings_goaway",
                    f64::from(u8::from(s.too_many_pings)),
                ),
            ];
            if let Some(p50) = s.rtt.quantile(0.5) {
                evidence.push(("ping_rtt_p50_seconds", secs(p50)));
            }
            out.push(Finding {
                kind: Kind::Keepalive,
                severity: Severity::Critical,
                scope: scope.clone(),
                from: s.opened,
                to: s.last,
                summary: format!(
                    "the server closed the connection for too many PINGs (GOAWAY ENHANCE_YOUR_CALM{}) after {pings} PINGs, {rate:.2}/s",
                    if s.too_many_pings_text { ", \"too_many_pings\"" } else { "" }
                ),
                evidence,
                certainty: Certainty::High,
                calls: Vec::new(),
                conns: vec![id],
            });
        }
        // A server's GOAWAY with an error (ENHANCE_YOUR_CALM is keepalive's); a client's
        // GOAWAY as it closes (connect-node sends CANCEL) is no finding.
        let errors: Vec<_> = s
            .goaways
            .iter()
            .filter(|(by, code)| *by == Side::Server && *code != 0 && *code != 0xb)
            .collect();
        if !errors.is_empty() || s.lost_to_goaway.n > 0 {
            let codes: Vec<String> = s
                .goaways
                .iter()
                .map(|(by, code)| {
                    format!(
                        "{} by the {}",
                        crate::h2::frame::ErrorCode(*code).name(),
                        by.name()
                    )
                })
                .collect();
            out.push(Finding {
                kind: Kind::Goaway,
                severity: if s.lost_to_goaway.n > 0 || !errors.is_empty() {
                    Severity::Warning
                } else {
                    Severity::Info
                },
                scope,
                from: s.opened,
                to: s.last,
                summary: format!(
                    "GOAWAY ({}); {} calls lost above its last stream",
                    codes.join(", "),
                    s.lost_to_goaway.n
                ),
                evidence: vec![
                    ("goaways", s.goaways.len() as f64),
                    ("error_goaways", errors.len() as f64),
                    ("calls_lost", s.lost_to_goaway.n as f64),
                ],
                certainty: Certainty::High,
                calls: s.lost_to_goaway.calls.0.clone(),
                conns: vec![id],
            });
        }
    }

    /// The findings as of now (the newest capture time seen), most severe first.
    pub fn report(&self) -> Vec<Finding> {
        self.report_with(None)
    }

    /// The findings as of `now`, the calls still open (`open` hands each to its argument)
    /// taken as what they would be if the capture ended now: a live capture's streams open
    /// for too long are leaks already (the UI and the exporter report so).
    pub fn report_open(
        &self,
        now: Nanos,
        open: impl FnOnce(&mut dyn FnMut(&CallRecord)),
    ) -> Vec<Finding> {
        let leak_age = self.leak_age;
        let mut leaks: Map<Arc<str>, (Tally, Duration)> = Map::default();
        open(&mut |c: &CallRecord| {
            let (Some(m), Some(start)) = (c.method.as_ref(), c.start) else {
                return;
            };
            let age = since(start, now);
            if age < leak_age || (!leaks.contains_key(m) && leaks.len() >= MAX_METHODS) {
                return;
            }
            let e = leaks.entry(m.clone()).or_default();
            e.0.n += 1;
            e.0.span.add(start);
            e.0.calls.add((c.conn, c.stream_id));
            e.1 = e.1.max(age);
        });
        self.report_with(Some(&leaks))
    }

    /// Every finding; the leaks of `open` (per method: the open streams old enough, and the
    /// oldest's age) instead of those of the calls that ended unfinished, when given.
    fn report_with(&self, open: Option<&Map<Arc<str>, (Tally, Duration)>>) -> Vec<Finding> {
        let mut out = self.closed.clone();
        for (id, s) in &self.conns {
            self.conn_findings(*id, s, &mut out);
        }
        let none = MethodState::default();
        for (name, m) in &self.methods {
            let leak = match open {
                Some(o) => o.get(name).map(|(t, d)| (t, *d)),
                None => Some((&m.leaked, m.longest_open)),
            };
            self.method_findings(name, m, leak, &mut out);
        }
        if let Some(o) = open {
            // Methods none of whose calls ended yet.
            for (name, (t, d)) in o {
                if !self.method_ix.contains_key(name) {
                    self.method_findings(name, &none, Some((t, *d)), &mut out);
                }
            }
        }
        for ((authority, service), s) in &self.services {
            self.service_findings(authority.as_deref(), service, s, &mut out);
        }
        for (name, u) in &self.unpropagated {
            self.unpropagated_findings(name, u, &mut out);
        }
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.kind.cmp(&b.kind))
                .then(a.from.cmp(&b.from))
                .then_with(|| a.summary.cmp(&b.summary))
        });
        out
    }

    fn method_findings(
        &self,
        name: &Arc<str>,
        m: &MethodState,
        leak: Option<(&Tally, Duration)>,
        out: &mut Vec<Finding>,
    ) {
        let th = &self.limits;
        let scope = Scope {
            method: Some(name.clone()),
            service: Some(service_of(name).to_owned()),
            ..Default::default()
        };
        #[allow(clippy::cast_precision_loss)]
        let share = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
        let mut push = |kind, severity, t: &Tally, summary: String, evidence, certainty| {
            let (from, to) = t.span.get();
            out.push(Finding {
                kind,
                severity,
                scope: scope.clone(),
                from,
                to,
                summary,
                evidence,
                certainty,
                calls: t.calls.0.clone(),
                conns: Vec::new(),
            });
        };
        let nd = share(m.no_deadline.n, m.headers_read);
        if m.headers_read >= th.min_calls && nd >= th.no_deadline_share {
            let (summary, evidence) = shared(
                &m.no_deadline,
                m.headers_read,
                "carry no deadline (grpc-timeout)",
                "without_deadline",
            );
            push(
                Kind::NoDeadline,
                Severity::Warning,
                &m.no_deadline,
                summary,
                evidence,
                Certainty::High,
            );
        }
        if m.exceeded.n >= th.deadline_exceeded_calls || m.late_answers.n > 0 {
            let mut summary = format!(
                "{} of {} calls ran out of their deadline",
                m.exceeded.n, m.calls
            );
            if m.late_answers.n > 0 {
                summary.push_str(&format!(
                    "; the server still answered {} calls after the client's deadline (wasted work)",
                    m.late_answers.n
                ));
            }
            let t = if m.exceeded.n > 0 {
                &m.exceeded
            } else {
                &m.late_answers
            };
            push(
                Kind::DeadlineExceeded,
                if share(m.exceeded.n, m.calls) >= 0.05 {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                t,
                summary,
                vec![
                    ("calls", m.calls as f64),
                    ("deadline_exceeded", m.exceeded.n as f64),
                    ("answered_after_deadline", m.late_answers.n as f64),
                ],
                Certainty::High,
            );
        }
        let masked = share(m.http200_failed.n, m.calls);
        if m.calls >= th.min_calls && masked >= th.masked_error_share {
            let (summary, evidence) = shared(
                &m.http200_failed,
                m.calls,
                "failed with HTTP status 200: a dashboard on HTTP status shows them as successes",
                "failed_with_http_200",
            );
            push(
                Kind::HttpStatusMasksErrors,
                Severity::Info,
                &m.http200_failed,
                summary,
                evidence,
                Certainty::High,
            );
        }
        // The retries found (the tally, its evidence name, what they are, how sure).
        let mut retried: Vec<(&Tally, &'static str, &str, Certainty)> = Vec::new();
        let retry_share = share(m.retried.n, m.calls);
        if m.retried.n > 0 && (retry_share >= th.retry_share || m.calls < th.min_calls) {
            let mut summary = format!(
                "{} of {} calls were retry attempts (grpc-previous-rpc-attempts, up to {})",
                m.retried.n, m.calls, m.max_attempt
            );
            let mut evidence = vec![
                ("calls", m.calls as f64),
                ("retry_attempts", m.retried.n as f64),
                ("share", retry_share),
                ("max_previous_attempts", f64::from(m.max_attempt)),
            ];
            let mut severity = Severity::Warning;
            if let Some([(r0, e0), (r1, e1)]) = m.halves.shares() {
                evidence.extend([
                    ("retry_share_first_half", r0),
                    ("retry_share_second_half", r1),
                    ("error_share_first_half", e0),
                    ("error_share_second_half", e1),
                ]);
                if r1 >= 2.0 * r0.max(0.01) && e1 > e0 && r1 >= th.retry_share {
                    severity = Severity::Critical;
                    summary.push_str(&format!(
                        "; a retry storm: the retry share rose from {:.0}% to {:.0}% as errors rose from {:.0}% to {:.0}%",
                        100.0 * r0,
                        100.0 * r1,
                        100.0 * e0,
                        100.0 * e1
                    ));
                }
            }
            push(
                Kind::Retries,
                severity,
                &m.retried,
                summary,
                evidence,
                Certainty::High,
            );
            retried.push((
                &m.retried,
                "retry_attempts",
                "retry attempts",
                Certainty::High,
            ));
        }
        // The same request comes back after failures far more often than after successes:
        // failures cause the repeats (a workload that repeats its requests anyway does so
        // after either).
        let after_failure = share(m.app_retried.n, m.sent_after[1]);
        let after_ok = share(m.repeated_ok, m.sent_after[0]);
        if m.app_retried.n >= th.app_retry_calls
            && m.sent_after[0] >= th.app_retry_calls
            && after_failure >= th.app_retry_share
            && after_failure >= th.app_retry_ratio * after_ok
        {
            push(
                Kind::Retries,
                Severity::Warning,
                &m.app_retried,
                format!(
                    "{} of {} failed calls were sent again (same client, same first message, within {}): application-level retries, without grpc-previous-rpc-attempts; {:.0}% of the calls that succeeded were repeated",
                    m.app_retried.n,
                    m.sent_after[1],
                    short(self.app_retry_within),
                    100.0 * after_ok
                ),
                vec![
                    ("calls", m.calls as f64),
                    ("app_retries", m.app_retried.n as f64),
                    ("failed_calls", m.sent_after[1] as f64),
                    ("repeated_after_failure", after_failure),
                    ("repeated_after_success", after_ok),
                ],
                Certainty::Medium,
            );
            retried.push((
                &m.app_retried,
                "app_retries",
                "application-level retries",
                Certainty::Medium,
            ));
        }
        // Retries of either kind of a method the schemas say is not safe to call twice.
        if let Some(f) = &self.idempotent
            && (f.0)(name) == Some(false)
        {
            for (t, key, what, certainty) in retried {
                push(
                    Kind::RetryUnsafe,
                    Severity::Warning,
                    t,
                    format!(
                        "{} {what} of a method the schema does not mark idempotent (idempotency_level)",
                        t.n
                    ),
                    vec![(key, t.n as f64)],
                    certainty,
                );
            }
        }
        let usual = m.durations.quantile(0.5);
        let leak_age = self.leak_age;
        let (leaked, longest) = leak.unwrap_or((&m.leaked, Duration::ZERO));
        let longer_than_usual =
            usual.is_none_or(|u| longest.as_secs_f64() >= th.leak_ratio * u.as_secs_f64());
        if longest >= leak_age && longer_than_usual && leaked.n > 0 {
            push(
                Kind::LeakedStream,
                Severity::Warning,
                leaked,
                format!(
                    "{} streams still open at the end, the oldest for {:.0} s{}",
                    leaked.n,
                    longest.as_secs_f64(),
                    match usual {
                        Some(u) => format!(" (its calls usually take {})", short(u)),
                        None => " (none of its calls ended)".to_owned(),
                    }
                ),
                vec![
                    ("open_streams", leaked.n as f64),
                    ("oldest_open_seconds", secs(longest)),
                    ("usual_seconds", usual.map_or(0.0, secs)),
                ],
                Certainty::Medium,
            );
        }
        if m.stalls >= th.stall_count && m.stalled_time.as_secs_f64() >= th.stall_seconds {
            push(
                Kind::FlowControlStall,
                Severity::Warning,
                &m.stalled,
                format!(
                    "{} calls sat at a zero flow-control window with data waiting, {} times for {:.1} s in all",
                    m.stalled.n,
                    m.stalls,
                    m.stalled_time.as_secs_f64()
                ),
                vec![
                    ("calls_stalled", m.stalled.n as f64),
                    ("stalls", m.stalls as f64),
                    ("stalled_seconds", secs(m.stalled_time)),
                ],
                Certainty::Medium,
            );
        }
        if m.too_big.n > 0 || m.near_limit.n > 0 {
            push(
                Kind::MessageSizeLimit,
                if m.too_big.n > 0 {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                if m.too_big.n > 0 {
                    &m.too_big
                } else {
                    &m.near_limit
                },
                format!(
                    "{} calls refused for a message's size (RESOURCE_EXHAUSTED), {} with a message near 4 MiB; largest message {} bytes",
                    m.too_big.n, m.near_limit.n, m.largest_message
                ),
                vec![
                    ("resource_exhausted_size", m.too_big.n as f64),
                    ("near_limit", m.near_limit.n as f64),
                    ("largest_message_bytes", m.largest_message as f64),
                ],
                Certainty::High,
            );
        }
        let proxy = m.no_trailers.n + m.proxy_status.n + m.not_grpc_response.n;
        if proxy > 0 {
            let statuses: Vec<String> = m
                .http_statuses
                .iter()
                .map(|(s, n)| format!("HTTP {s} x{n}"))
                .collect();
            let t = [&m.proxy_status, &m.no_trailers, &m.not_grpc_response]
                .into_iter()
                .find(|t| t.n > 0)
                .unwrap_or(&m.no_trailers);
            push(
                Kind::BrokenProxy,
                Severity::Critical,
                t,
                format!(
                    "{} responses without trailers, {} HTTP errors without grpc-status{}, {} with a content-type that is not gRPC",
                    m.no_trailers.n,
                    m.proxy_status.n,
                    if statuses.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", statuses.join(", "))
                    },
                    m.not_grpc_response.n
                ),
                vec![
                    ("no_trailers", m.no_trailers.n as f64),
                    ("http_error_without_grpc_status", m.proxy_status.n as f64),
                    ("non_grpc_content_type", m.not_grpc_response.n as f64),
                    ("requests_without_te_trailers", m.no_te.n as f64),
                ],
                Certainty::High,
            );
        } else if m.no_te.n >= th.min_calls.max(1) {
            push(
                Kind::BrokenProxy,
                Severity::Info,
                &m.no_te,
                format!(
                    "{} requests without \"te: trailers\" (a proxy in between may have stripped it)",
                    m.no_te.n
                ),
                vec![("requests_without_te_trailers", m.no_te.n as f64)],
                Certainty::Medium,
            );
        }
        if m.compression.n > 0 {
            let pairs: Vec<String> = m.compression_pairs.keys().cloned().collect();
            push(
                Kind::CompressionMismatch,
                Severity::Warning,
                &m.compression,
                format!(
                    "{} calls compressed with an encoding the peer did not list: {}",
                    m.compression.n,
                    pairs.join("; ")
                ),
                vec![("calls", m.compression.n as f64)],
                Certainty::High,
            );
        }
    }

    fn service_findings(
        &self,
        authority: Option<&str>,
        service: &str,
        s: &ServiceState,
        out: &mut Vec<Finding>,
    ) {
        let th = &self.limits;
        let n = s.servers.len();
        if n < 2 {
            return;
        }
        let total: u64 = s.servers.iter().map(|v| v.1.calls).sum();
        if total < th.min_calls {
            return;
        }
        let name = match authority {
            Some(a) => format!("{service} at {a}"),
            None => service.to_owned(),
        };
        let (from, to) = s.span.get();
        let life = since(from, to);
        #[allow(clippy::cast_precision_loss)]
        let fair = 1.0 / n as f64;
        // Servers present since (nearly) the start share the calls among themselves; later
        // ones are judged on the calls since they appeared.
        let late_at =
            from + Duration::try_from_secs_f64(secs(life) * th.late_after).unwrap_or(Duration::MAX);
        let mut servers: Vec<(&SocketAddr, &ServerState)> =
            s.servers.iter().map(|(a, v)| (a, v)).collect();
        servers.sort_by_key(|x| *x.0);
        let (early, late): (Vec<_>, Vec<_>) =
            servers.into_iter().partition(|(_, v)| v.first <= late_at);
        if early.len() >= 2 {
            let early_total: u64 = early.iter().map(|(_, v)| v.calls).sum();
            #[allow(clippy::cast_precision_loss)]
            let shares: Vec<(SocketAddr, f64)> = early
                .iter()
                .map(|(a, v)| (**a, v.calls as f64 / early_total.max(1) as f64))
                .collect();
            #[allow(clippy::cast_precision_loss)]
            let efair = 1.0 / early.len() as f64;
            let (busiest, top) = shares
                .iter()
                .copied()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((early[0].0.to_owned(), 0.0));
            if top >= th.imbalance_ratio * efair {
                let conns: u64 = early.iter().map(|(_, v)| v.conns_n).sum();
                #[allow(clippy::cast_precision_loss)]
                let per_conn = early_total as f64 / conns.max(1) as f64;
                let evidence = vec![
                    ("servers", early.len() as f64),
                    ("calls", early_total as f64),
                    ("busiest_share", top),
                    ("fair_share", efair),
                    ("client_connections", conns as f64),
                    ("calls_per_connection", per_conn),
                ];
                let spread: Vec<String> = shares
                    .iter()
                    .map(|(a, sh)| format!("{a} {:.0}%", 100.0 * sh))
                    .collect();
                out.push(Finding {
                    kind: Kind::ConnectionImbalance,
                    severity: Severity::Warning,
                    scope: Scope {
                        service: Some(name.clone()),
                        server: Some(busiest),
                        ..Default::default()
                    },
                    from,
                    to,
                    summary: format!(
                        "{name}: {} servers, the busiest takes {:.0}% of the calls (fair share {:.0}%): {}; {conns} client connections, each held to one server",
                        early.len(),
                        100.0 * top,
                        100.0 * efair,
                        spread.join(", ")
                    ),
                    evidence,
                    certainty: Certainty::High,
                    calls: Vec::new(),
                    conns: early.iter().flat_map(|(_, v)| v.conns.0.clone()).take(EXAMPLES).collect(),
                });
            }
        }
        for (addr, v) in late {
            let since_calls = s.calls - v.calls_before;
            let mine = v.calls;
            if since_calls < th.min_calls {
                continue;
            }
            #[allow(clippy::cast_precision_loss)]
            let share = mine as f64 / since_calls as f64;
            if share < th.idle_share * fair {
                out.push(Finding {
                    kind: Kind::IdleBackend,
                    severity: Severity::Warning,
                    scope: Scope {
                        service: Some(name.clone()),
                        server: Some(*addr),
                        ..Default::default()
                    },
                    from: v.first,
                    to,
                    summary: format!(
                        "{name}: {addr} appeared {:.0} s in and took {:.1}% of the {since_calls} calls since (fair share {:.0}%): clients stay on their old connections",
                        secs(since(from, v.first)),
                        100.0 * share,
                        100.0 * fair
                    ),
                    evidence: vec![
                        ("calls_since_it_appeared", since_calls as f64),
                        ("its_calls", mine as f64),
                        ("share", share),
                        ("fair_share", fair),
                        ("appeared_after_seconds", secs(since(from, v.first))),
                    ],
                    certainty: Certainty::High,
                    calls: Vec::new(),
                    conns: v.conns.0.clone(),
                });
            }
        }
    }

    fn unpropagated_findings(&self, name: &Arc<str>, u: &Unpropagated, out: &mut Vec<Finding>) {
        let bad = u.missing.n + u.longer.n;
        if bad == 0 {
            return;
        }
        let t = if u.missing.n > 0 {
            &u.missing
        } else {
            &u.longer
        };
        let (from, to) = t.span.get();
        out.push(Finding {
            kind: Kind::DeadlineNotPropagated,
            severity: Severity::Warning,
            scope: Scope {
                method: Some(name.clone()),
                service: Some(service_of(name).to_owned()),
                server: u.server,
                ..Default::default()
            },
            from,
            to,
            summary: format!(
                "{bad} of {} calls made while serving a call of the same trace (traceparent) did not carry its deadline: {} without one, {} with a longer one",
                u.children, u.missing.n, u.longer.n
            ),
            evidence: vec![
                ("child_calls", u.children as f64),
                ("without_deadline", u.missing.n as f64),
                ("longer_than_parent", u.longer.n as f64),
            ],
            certainty: Certainty::Medium,
            // The children that show it, then the calls they were made for.
            calls: t.calls.0.iter().chain(&u.parents.0).copied().collect(),
            conns: Vec::new(),
        });
    }
}

/// A finding about a share of calls: "N% of M calls WHAT", and its evidence (`calls`, `name`,
/// `share`).
#[allow(clippy::cast_precision_loss)]
fn shared(
    t: &Tally,
    of: u64,
    what: &str,
    name: &'static str,
) -> (String, Vec<(&'static str, f64)>) {
    let share = if of == 0 { 0.0 } else { t.n as f64 / of as f64 };
    (
        format!("{:.0}% of {of} calls {what}", 100.0 * share),
        vec![("calls", of as f64), (name, t.n as f64), ("share", share)],
    )
}

impl Sink for Findings {
    fn call_started(&mut self, call: &CallRecord) {
        self.started(call);
    }

    fn call_ended(&mut self, call: &CallRecord) {
        self.ended(call);
    }

    fn conn_event(&mut self, conn: ConnId, event: ConnEvent) {
        self.conn_event(conn, event);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn call(stream: u32, method: &str, timeout: Option<Duration>, status: Code) -> CallRecord {
        let a: SocketAddr = "10.0.0.1:40000".parse().expect("addr");
        let b: SocketAddr = "10.0.0.2:443".parse().expect("addr");
        let start = Nanos(1_000_000_000 + u64::from(stream) * 1_000_000);
        let mut c = CallRecord::new(ConnId::new(0, 1), stream, a, b, Some(start));
        c.method = Some(Arc::from(method));
        c.timeout = timeout;
        c.end = Some(start + Duration::from_millis(2));
        c.status = Some(status);
        c.status_source = StatusSource::Trailers;
        c.http_status = Some(200);
        c.te_trailers = Some(true);
        c
    }

    fn kinds(f: &Findings) -> Vec<&'static str> {
        f.report().iter().map(|x| x.kind.name()).collect()
    }

    #[test]
    fn no_deadline_needs_enough_calls_and_its_share() {
        let mut f = Findings::new(Thresholds::default());
        // 19 calls without a deadline: below min_calls.
        for i in 0..19 {
            f.call_ended(&call(2 * i + 1, "/s.S/M", None, Code::OK));
        }
        assert!(kinds(&f).is_empty());
        f.call_ended(&call(41, "/s.S/M", None, Code::OK));
        assert_eq!(kinds(&f), ["no_deadline"]);
        // Past half with a deadline, it no longer fires.
        let mut f = Findings::new(Thresholds::default());
        for i in 0..40 {
            let t = (i % 4 != 0).then(|| Duration::from_secs(1));
            f.call_ended(&call(2 * i + 1, "/s.S/M", t, Code::OK));
        }
        assert!(kinds(&f).is_empty(), "{:?}", kinds(&f));
        let mut t = Thresholds::default();
        t.set("no_deadline_share=0.2").expect("set");
        let mut f = Findings::new(t);
        for i in 0..40 {
            let t = (i % 4 != 0).then(|| Duration::from_secs(1));
            f.call_ended(&call(2 * i + 1, "/s.S/M", t, Code::OK));
        }
        assert_eq!(kinds(&f), ["no_deadline"]);
    }

    #[test]
    fn failures_behind_http_200_fire_past_their_share() {
        let mut f = Findings::new(Thresholds::default());
        for i in 0..100 {
            let s = if i < 4 { Code::INTERNAL } else { Code::OK };
            f.call_ended(&call(2 * i + 1, "/s.S/M", Some(Duration::from_secs(1)), s));
        }
        assert!(kinds(&f).is_empty(), "4% is under 5%");
        // 5 of 101 is still under; 6 of 102 is over.
        f.call_ended(&call(
            999,
            "/s.S/M",
            Some(Duration::from_secs(1)),
            Code::INTERNAL,
        ));
        assert!(kinds(&f).is_empty());
        f.call_ended(&call(
            1001,
            "/s.S/M",
            Some(Duration::from_secs(1)),
            Code::INTERNAL,
        ));
        let r = f.report();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].kind, Kind::HttpStatusMasksErrors);
        assert_eq!(r[0].evidence[1], ("failed_with_http_200", 6.0));
    }

    #[test]
    fn retries_fire_on_attempts_and_say_unsafe_from_the_schema() {
        let mut f = Findings::new(Thresholds::default())
            .with_idempotency(Box::new(|m| Some(m.ends_with("/Get"))));
        for (i, m) in [(1, "/s.S/Get"), (3, "/s.S/Put")] {
            let mut c = call(i, m, Some(Duration::from_secs(1)), Code::OK);
            c.attempt = 1;
            f.call_ended(&c);
        }
        let mut k = kinds(&f);
        k.sort_unstable();
        assert_eq!(k, ["retries", "retries", "retry_unsafe"]);
        let unsafe_one = f
            .report()
            .into_iter()
            .find(|x| x.kind == Kind::RetryUnsafe)
            .expect("unsafe");
        assert_eq!(unsafe_one.scope.method.as_deref(), Some("/s.S/Put"));
    }

    /// A call of `/s.S/M` with request digest `d`, from `start` ms for 2 ms.
    fn sent(stream: u32, d: u64, start_ms: u64, status: Code) -> CallRecord {
        let mut c = call(stream, "/s.S/M", Some(Duration::from_secs(1)), status);
        let start = Nanos(1_000_000_000 + start_ms * 1_000_000);
        c.start = Some(start);
        c.end = Some(start + Duration::from_millis(2));
        c.req.first_digest = Some(d);
        c
    }

    #[test]
    fn the_same_request_again_after_a_failure_is_an_application_retry() {
        let retries = |fail: Code, delay_ms: u64, polls: bool| {
            let mut f = Findings::new(Thresholds::default());
            let mut stream = 1;
            let mut at = 0;
            let mut send = |f: &mut Findings, d: u64, status: Code, after: u64| {
                at += after;
                f.call_ended(&sent(stream, d, at, status));
                stream += 2;
            };
            // Ten different requests that succeed (a poll sends the same one each time).
            for i in 0..10 {
                send(&mut f, if polls { 1 } else { 100 + i }, Code::OK, 50);
            }
            // Six that fail and are sent again.
            for i in 0..6 {
                send(&mut f, 200 + i, fail, 50);
                send(&mut f, 200 + i, Code::OK, delay_ms);
            }
            f.report()
                .into_iter()
                .filter(|x| x.kind == Kind::Retries)
                .collect::<Vec<_>>()
        };
        let r = retries(Code::UNAVAILABLE, 100, false);
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].certainty, Certainty::Medium);
        assert_eq!(r[0].calls.len(), 6);
        assert!(r[0].evidence.contains(&("app_retries", 6.0)), "{r:?}");
        // Past the 2 s, not a retry; a failure the request caused is not retried by clients
        // that know better (INVALID_ARGUMENT), and a loop that resends it is not a retry.
        assert!(retries(Code::UNAVAILABLE, 3000, false).is_empty());
        assert!(retries(Code(3), 100, false).is_empty());
        // A workload that sends the same request again anyway, after successes too.
        assert!(retries(Code::UNAVAILABLE, 100, true).is_empty());
        // A client elsewhere sending the same request is not the one retrying.
        let mut f = Findings::new(Thresholds::default());
        for i in 0..10 {
            f.call_ended(&sent(
                2 * i + 1,
                100 + u64::from(i),
                50 * u64::from(i),
                Code::OK,
            ));
        }
        for i in 0..6u32 {
            f.call_ended(&sent(
                101 + 4 * i,
                7,
                1000 + 200 * u64::from(i),
                Code::UNAVAILABLE,
            ));
            let mut other = sent(103 + 4 * i, 7, 1100 + 200 * u64::from(i), Code::OK);
            other.client = "10.0.0.9:40000".parse().expect("addr");
            f.call_ended(&other);
        }
        assert!(!kinds(&f).contains(&"retries"), "{:?}", kinds(&f));
    }

    #[test]
    fn open_streams_rising_through_a_connections_life_is_a_leak() {
        let run = |leak_every: Option<u32>| {
            let mut f = Findings::new(Thresholds::default());
            let mut stream = 1;
            for i in 0..40u32 {
                let mut c = sent(stream, 1, u64::from(i) * 100, Code::OK);
                stream += 2;
                f.call_started(&c);
                if leak_every.is_some_and(|k| i % k == 0) {
                    // Opened, never ended.
                    let mut l = c.clone();
                    l.stream_id = stream;
                    stream += 2;
                    f.call_started(&l);
                }
                c.req.first_digest = Some(u64::from(i));
                f.call_ended(&c);
            }
            f.report()
                .into_iter()
                .filter(|x| x.kind == Kind::LeakedStream)
                .count()
        };
        assert_eq!(run(Some(4)), 1, "ten streams left open, a few each quarter");
        assert_eq!(run(None), 0);
        // Streams opened once at the start and kept (subscriptions): a step, not a rise.
        let mut f = Findings::new(Thresholds::default());
        for s in 0..5 {
            f.call_started(&sent(1001 + 2 * s, 1, 0, Code::OK));
        }
        for i in 0..40u32 {
            let c = sent(1 + 2 * i, u64::from(i), 10 + u64::from(i) * 100, Code::OK);
            f.call_started(&c);
            f.call_ended(&c);
        }
        assert!(!kinds(&f).contains(&"leaked_stream"), "{:?}", kinds(&f));
    }

    #[test]
    fn thresholds_are_set_by_name_and_refuse_what_is_not_one() {
        let mut t = Thresholds::default();
        t.set("min_calls=5").expect("set");
        assert_eq!(t.min_calls, 5);
        assert!(t.set("min_calls").is_err());
        assert!(t.set("nope=1").is_err());
        assert!(t.set("leak_age_s=-1").is_err());
        assert!(t.set("retry_share=x").is_err());
        for n in Thresholds::NAMES {
            assert!(t.set(&format!("{n}=1")).is_ok(), "{n}");
        }
    }
}
