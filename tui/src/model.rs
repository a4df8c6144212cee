//! What the UI knows: per-method aggregates with a recent window, recent calls, open streams,
//! connections and how each service's calls spread over server addresses. Built only from
//! [`UiEvent`]s; all times are packet times, so a replay shows what a live run would have.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use decoder::aggregate::{DEFAULT_MAX_METHODS, Histogram, MethodCap, OTHER_METHOD, UNKNOWN_METHOD};
use decoder::grpc::Code;
use decoder::{CallRecord, ConnId, Nanos, StatusSource};
use foldhash::fast::RandomState;

use crate::feed::{OpenRow, Snapshot, SourceStatus, UiEvent};

/// Seconds of per-second history kept (sparklines, the windows up to 5 minutes).
pub const HISTORY_SECS: usize = 300;
/// The shortest window of calls/s, error rate and latency quantiles.
pub const WINDOW_SECS: u64 = 10;

/// The span of capture time the figures of every view cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Window {
    /// The last 10 seconds.
    #[default]
    Secs10,
    /// The last minute.
    Min1,
    /// The last 5 minutes.
    Min5,
    /// The whole capture (what the summary table covers).
    Whole,
}

impl Window {
    /// In the order the key cycles.
    pub const ALL: [Window; 4] = [Window::Secs10, Window::Min1, Window::Min5, Window::Whole];

    /// Seconds the window spans; `None` for the whole capture.
    pub fn secs(self) -> Option<u64> {
        match self {
            Window::Secs10 => Some(WINDOW_SECS),
            Window::Min1 => Some(60),
            Window::Min5 => Some(300),
            Window::Whole => None,
        }
    }

    /// Shown in the header.
    pub fn name(self) -> &'static str {
        match self {
            Window::Secs10 => "last 10s",
            Window::Min1 => "last 1m",
            Window::Min5 => "last 5m",
            Window::Whole => "whole capture",
        }
    }

    /// The next one in the cycle.
    pub fn next(self) -> Window {
        let i = Window::ALL.iter().position(|w| *w == self).unwrap_or(0);
        Window::ALL[(i + 1) % Window::ALL.len()]
    }

    /// Which of [`MethodRow`]'s sliding latencies serves it.
    fn slot(self) -> Option<usize> {
        match self {
            Window::Secs10 => Some(0),
            Window::Min1 => Some(1),
            Window::Min5 => Some(2),
            Window::Whole => None,
        }
    }
}
const NS: u64 = 1_000_000_000;

/// Bounds of the model.
#[derive(Debug, Clone, Copy)]
pub struct ModelLimits {
    /// Methods kept apart; more fold into `<other>`.
    pub max_methods: usize,
    /// Finished calls kept for the Calls view.
    pub recent_calls: usize,
    /// Message bytes kept over all recent calls; older calls lose their messages first.
    pub recent_body_bytes: usize,
    /// Connections kept (closed ones are forgotten first).
    pub max_conns: usize,
}

impl Default for ModelLimits {
    fn default() -> Self {
        ModelLimits {
            max_methods: DEFAULT_MAX_METHODS,
            recent_calls: 5_000,
            recent_body_bytes: 64 << 20,
            max_conns: 10_000,
        }
    }
}

/// Calls and errors per second of capture time, for the last [`HISTORY_SECS`] seconds.
#[derive(Debug, Clone)]
pub struct Series {
    /// The second of the newest slot.
    last: u64,
    calls: [u32; HISTORY_SECS],
    errors: [u32; HISTORY_SECS],
}

impl Default for Series {
    fn default() -> Self {
        Series {
            last: 0,
            calls: [0; HISTORY_SECS],
            errors: [0; HISTORY_SECS],
        }
    }
}

impl Series {
    /// Moves the newest slot to second `sec`, zeroing the seconds skipped.
    fn advance(&mut self, sec: u64) {
        if sec <= self.last {
            return;
        }
        let skip = (sec - self.last).min(HISTORY_SECS as u64);
        for s in 1..=skip {
            let i = slot(self.last + s);
            self.calls[i] = 0;
            self.errors[i] = 0;
        }
        self.last = sec;
    }

    fn add(&mut self, sec: u64, error: bool) {
        self.advance(sec);
        if sec + HISTORY_SECS as u64 <= self.last {
            return; // older than the history
        }
        let i = slot(sec);
        self.calls[i] = self.calls[i].saturating_add(1);
        self.errors[i] = self.errors[i].saturating_add(u32::from(error));
    }

    /// Calls and errors in the `secs` seconds ending with second `now`.
    pub fn sum(&self, now: u64, secs: u64) -> (u64, u64) {
        let mut c = 0;
        let mut e = 0;
        for s in now.saturating_sub(secs - 1)..=now {
            if s > self.last || s + HISTORY_SECS as u64 <= self.last {
                continue;
            }
            c += u64::from(self.calls[slot(s)]);
            e += u64::from(self.errors[slot(s)]);
        }
        (c, e)
    }

    /// Per-second counts, oldest first, the `n` seconds ending with second `now`.
    pub fn history(&self, now: u64, n: usize, errors: bool) -> Vec<u64> {
        let n = n.min(HISTORY_SECS) as u64;
        (0..n)
            .map(|k| now + k + 1 - n)
            .map(|s| {
                if s > self.last || s + HISTORY_SECS as u64 <= self.last {
                    0
                } else if errors {
                    u64::from(self.errors[slot(s)])
                } else {
                    u64::from(self.calls[slot(s)])
                }
            })
            .collect()
    }
}

/// Slots of a [`Timeline`].
pub const TIMELINE_SLOTS: usize = 240;

/// Calls and errors over the whole capture, at most [`TIMELINE_SLOTS`] slots: each slot spans
/// `res` seconds (a power of two, doubled as the capture grows), aligned to multiples of `res`
/// since the epoch, so that the slots of every timeline start on the boundaries of any coarser
/// one.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    res: u64,
    /// The slot number (second / res) of `slots[0]`.
    first: u64,
    slots: Vec<[u32; 2]>,
}

impl Timeline {
    fn add(&mut self, sec: u64, error: bool) {
        if self.res == 0 {
            self.res = 1;
            self.first = sec;
        }
        // An end earlier than the first slot (rare: ends come in packet order) goes in it.
        let sec = sec.max(self.first * self.res);
        while sec / self.res - self.first >= TIMELINE_SLOTS as u64 {
            self.coarsen();
        }
        let k = usize::try_from(sec / self.res - self.first).unwrap_or(0);
        if self.slots.len() <= k {
            self.slots.resize(k + 1, [0; 2]);
        }
        self.slots[k][0] = self.slots[k][0].saturating_add(1);
        self.slots[k][1] = self.slots[k][1].saturating_add(u32::from(error));
    }

    /// Twice as coarse: slots pair up.
    fn coarsen(&mut self) {
        let first = self.first / 2;
        let mut out = vec![[0u32; 2]; self.slots.len() / 2 + 1];
        for (i, s) in self.slots.iter().enumerate() {
            let j = usize::try_from((self.first + i as u64) / 2 - first).unwrap_or(0);
            out[j][0] = out[j][0].saturating_add(s[0]);
            out[j][1] = out[j][1].saturating_add(s[1]);
        }
        self.first = first;
        self.res *= 2;
        self.slots = out;
    }

    /// Seconds per slot (1 before any call).
    pub fn res(&self) -> u64 {
        self.res.max(1)
    }

    /// The second the first slot starts at (none before any call).
    pub fn start(&self) -> Option<u64> {
        (self.res > 0).then(|| self.first * self.res)
    }

    /// Adds its calls and errors into columns of `step` seconds from second `start`.
    pub fn add_to_columns(&self, start: u64, step: u64, calls: &mut [u64], errors: &mut [u64]) {
        let step = step.max(1);
        for (i, s) in self.slots.iter().enumerate() {
            let at = (self.first + i as u64) * self.res;
            if at < start {
                continue;
            }
            let k = usize::try_from((at - start) / step).unwrap_or(usize::MAX);
            if let (Some(c), Some(e)) = (calls.get_mut(k), errors.get_mut(k)) {
                *c += u64::from(s[0]);
                *e += u64::from(s[1]);
            }
        }
    }

    /// Calls and errors of the slots that start within `from..to` (seconds).
    pub fn sum(&self, from: u64, to: u64) -> (u64, u64) {
        let mut c = (0, 0);
        for (i, s) in self.slots.iter().enumerate() {
            let at = (self.first + i as u64) * self.res;
            if at >= from && at < to {
                c.0 += u64::from(s[0]);
                c.1 += u64::from(s[1]);
            }
        }
        c
    }
}

fn slot(sec: u64) -> usize {
    // Less than HISTORY_SECS.
    #[allow(clippy::cast_possible_truncation)]
    let i = (sec % HISTORY_SECS as u64) as usize;
    i
}

/// Latency over a sliding window: two epochs of half the window each, so the quantiles cover
/// the last half window to whole window of calls.
#[derive(Debug, Clone, Default)]
struct WindowLatency {
    epoch: u64,
    cur: Histogram,
    prev: Histogram,
}

/// Epoch lengths, in seconds, of the sliding latencies (10 s, 1 min, 5 min windows).
const EPOCH_SECS: [u64; 3] = [WINDOW_SECS / 2, 30, 150];

impl WindowLatency {
    fn rotate(&mut self, epoch: u64) {
        if epoch <= self.epoch {
            return;
        }
        if epoch == self.epoch + 1 {
            std::mem::swap(&mut self.cur, &mut self.prev);
        } else {
            self.prev.clear();
        }
        self.cur.clear();
        self.epoch = epoch;
    }
}

/// One method.
#[derive(Debug, Clone)]
pub struct MethodRow {
    /// "/pkg.Service/Method", `<unknown>` or `<other>`.
    pub name: Arc<str>,
    /// The service part of the name ("pkg.Service"), or the name itself.
    pub service: Arc<str>,
    /// Ended calls since the start.
    pub calls: u64,
    /// Ended calls by status code since the start (codes above 16 in slot 17, errors whose
    /// code could not be known in slot 18); calls whose status could not be read are in none.
    pub codes: [u64; CODE_SLOTS],
    /// Per-second calls and errors.
    pub series: Series,
    /// Calls and errors over the whole capture.
    pub timeline: Timeline,
    /// Sliding latencies of the 10 s, 1 min and 5 min windows.
    latency: [WindowLatency; 3],
    /// Latency of every finished call since the start.
    pub total: Histogram,
    /// Calls open now (from the last snapshot).
    pub open: u64,
    /// Window quantiles (p50, p90, p99) as worked out in the second of capture time and for
    /// the window given.
    cache: Option<(u64, Window, [Option<Duration>; 3])>,
}

impl MethodRow {
    /// Ended calls that failed (a known status other than OK, or an error of unknown code).
    pub fn errors(&self) -> u64 {
        self.codes[1..].iter().sum()
    }

    fn new(name: Arc<str>) -> MethodRow {
        let service = match decoder::grpc::split_path(&name) {
            Some((s, _)) => Arc::from(s),
            None => name.clone(),
        };
        MethodRow {
            name,
            service,
            calls: 0,
            codes: [0; CODE_SLOTS],
            series: Series::default(),
            timeline: Timeline::default(),
            latency: Default::default(),
            total: Histogram::default(),
            open: 0,
            cache: None,
        }
    }

    fn record(&mut self, call: &CallRecord, at: Nanos) {
        if call.status_source == StatusSource::Unfinished {
            return;
        }
        self.calls += 1;
        if let Some(code) = call.status {
            self.codes[usize::try_from(code.0).unwrap_or(17).min(17)] += 1;
        } else if call.status_source == StatusSource::DeadlineNear {
            self.codes[DEADLINE_OR_CANCEL] += 1;
        } else if call.error_unknown_code {
            self.codes[ERROR_CODE_UNKNOWN] += 1;
        }
        self.series.add(at.0 / NS, is_error(call));
        self.timeline.add(at.0 / NS, is_error(call));
        let d = call.duration();
        for (l, len) in self.latency.iter_mut().zip(EPOCH_SECS) {
            l.rotate(at.0 / NS / len);
            if let Some(d) = d {
                l.cur.record(d);
            }
        }
        if let Some(d) = d {
            self.total.record(d);
        }
    }

    /// The latency of window `w` into `out` (cleared first).
    fn latency_into(&mut self, w: Window, now_sec: u64, out: &mut Histogram) {
        match w.slot() {
            Some(k) => {
                let l = &mut self.latency[k];
                l.rotate(now_sec / EPOCH_SECS[k]);
                out.merge(&l.prev);
                out.merge(&l.cur);
            }
            None => out.merge(&self.total),
        }
    }
}

/// A finished call that failed (a known status other than OK, or an error of unknown code).
pub fn is_error(call: &CallRecord) -> bool {
    call.is_error() == Some(true)
}

/// Slots of [`MethodRow::codes`]: the 17 codes, "other" codes, errors of unknown code, ends at
/// the deadline (DEADLINE_EXCEEDED or CANCELLED).
pub const CODE_SLOTS: usize = 20;
/// The slot of errors whose code could not be known.
const ERROR_CODE_UNKNOWN: usize = 18;
/// The slot of errors that are DEADLINE_EXCEEDED or CANCELLED, which one unknown.
const DEADLINE_OR_CANCEL: usize = 19;

/// What a Methods row shows (also used for a service's row).
#[derive(Debug, Clone, PartialEq)]
pub struct RowStats {
    /// Name shown.
    pub name: Arc<str>,
    /// Calls per second over the window (the whole capture: ended calls over its duration,
    /// as the summary table's RATE/s).
    pub rate: f64,
    /// Ended calls since the start (in a range: in it).
    pub calls: u64,
    /// Errors / calls over the window, when the window has calls.
    pub error_ratio: Option<f64>,
    /// Errors since the start.
    pub errors: u64,
    /// Window latency quantiles: p50, p90, p99.
    pub latency: [Option<Duration>; 3],
    /// Calls open now.
    pub open: u64,
    /// The most frequent error codes since the start, most first.
    pub top_errors: Vec<(&'static str, u64)>,
}

/// A connection.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// Connection id.
    pub id: ConnId,
    /// Client address.
    pub client: SocketAddr,
    /// Server address.
    pub server: SocketAddr,
    /// First packet.
    pub opened: Nanos,
    /// Both directions ended.
    pub closed: bool,
    /// Calls ended on it.
    pub calls: u64,
    /// Of which errors.
    pub errors: u64,
    /// GOAWAYs seen.
    pub goaways: u64,
    /// Payload bytes client to server, server to client (last snapshot).
    pub bytes: [u64; 2],
    /// Calls open now.
    pub open_streams: u64,
    /// The connection's TLS (version, server name), from its calls.
    pub tls: Option<Arc<decoder::calls::record::TlsTag>>,
    /// Its PINGs' round trips: the shortest (the network's round trip beyond the tap, with
    /// the least of the peer's answer time) and how many.
    pub ping_rtt: Option<(Duration, u64)>,
}

/// Calls of one service to one server address.
#[derive(Debug, Clone, Default)]
pub struct Spread {
    /// Calls since the start.
    pub calls: u64,
    /// Per second.
    pub series: Series,
    /// Over the whole capture.
    pub timeline: Timeline,
}

/// Addresses named (by DNS, by `:authority`) at most.
const MAX_NAMES: usize = 10_000;
/// DNS names kept per address.
const NAMES_PER_ADDR: usize = 3;

/// Latency histograms by method index.
type LatencyByMethod = HashMap<usize, Histogram, RandomState>;

/// Everything the views draw from.
#[derive(Debug)]
pub struct Model {
    limits: ModelLimits,
    /// Latest packet time seen.
    pub now: Nanos,
    /// First packet time seen.
    pub first: Option<Nanos>,
    methods: Vec<MethodRow>,
    /// Names come off the wire: a seeded hash.
    index: HashMap<Arc<str>, usize, RandomState>,
    /// How many methods are kept apart; calls of the others count under [`OTHER_METHOD`].
    pub cap: MethodCap,
    /// Ended calls, all methods.
    pub calls: u64,
    /// Of which errors.
    pub errors: u64,
    /// Per-second calls and errors, all methods.
    pub series: Series,
    /// Calls and errors over the whole capture, all methods.
    pub timeline: Timeline,
    /// A range of capture time chosen on the timeline, seconds `from..to`: every view shows
    /// only the calls that ended in it.
    pub range: Option<(u64, u64)>,
    /// Latency per method of the calls kept that ended in the range, and what it was built
    /// for (the range and the number of calls then).
    range_latency: Option<((u64, u64), u64, LatencyByMethod)>,
    /// Finished calls, newest last (boxed as they came: applying a call moves no record).
    pub recent: VecDeque<Box<CallRecord>>,
    recent_body_bytes: usize,
    /// Calls still open (last snapshot), oldest first.
    pub open: Vec<OpenRow>,
    /// All open calls (`open` may list fewer).
    pub open_total: u64,
    /// Connections by id.
    pub conns: HashMap<ConnId, ConnInfo, RandomState>,
    /// Service -> server address -> calls.
    pub spread: HashMap<Arc<str>, HashMap<SocketAddr, Spread, RandomState>, RandomState>,
    /// Source and capture counters (last snapshot).
    pub status: SourceStatus,
    /// GOAWAYs seen.
    pub goaways: u64,
    /// Names of addresses from DNS answers in the capture (a few per address, first seen
    /// first, joined for display).
    pub names: HashMap<std::net::IpAddr, Arc<str>, RandomState>,
    /// The `:authority` the calls to each server address used (the first seen).
    pub authorities: HashMap<SocketAddr, Arc<str>, RandomState>,
    /// The findings as last sent (over the whole capture so far), most severe first.
    pub findings: Arc<[decoder::findings::Finding]>,
    /// The span of time every figure covers.
    pub window: Window,
    /// The user has not chosen a window: a finished replay switches to the whole capture.
    auto_window: bool,
    /// The capture's first packet time, as the decoder reported it.
    capture_first: Option<Nanos>,
    scratch: Histogram,
}

impl Model {
    /// An empty model.
    pub fn new(limits: ModelLimits) -> Model {
        Model {
            limits,
            now: Nanos::ZERO,
            first: None,
            methods: Vec::new(),
            index: HashMap::default(),
            cap: MethodCap::new(limits.max_methods),
            calls: 0,
            errors: 0,
            series: Series::default(),
            timeline: Timeline::default(),
            range: None,
            range_latency: None,
            recent: VecDeque::new(),
            recent_body_bytes: 0,
            open: Vec::new(),
            open_total: 0,
            conns: HashMap::default(),
            spread: HashMap::default(),
            status: SourceStatus::default(),
            goaways: 0,
            names: HashMap::default(),
            findings: Arc::from(Vec::new()),
            authorities: HashMap::default(),
            window: Window::default(),
            auto_window: true,
            capture_first: None,
            scratch: Histogram::default(),
        }
    }

    /// What the figures cover, for the header: the window, or the range chosen (offsets from
    /// the capture's first packet, and whether the calls kept reach back to its start).
    pub fn scope_name(&self) -> String {
        match self.range {
            Some((from, to)) => {
                let first = self.capture_first.or(self.first).map_or(from, |f| f.0 / NS);
                let part = if self.range_fully_kept() {
                    ""
                } else {
                    " (latency: the calls kept)"
                };
                format!(
                    "range +{}s..+{}s{part}",
                    from.saturating_sub(first),
                    to.saturating_sub(first)
                )
            }
            None => self.window.name().to_owned(),
        }
    }

    /// What a server address is called: the name a DNS answer in the capture gave its IP
    /// address, else the `:authority` its calls used.
    pub fn server_name(&self, addr: SocketAddr) -> Option<&Arc<str>> {
        self.names.get(&addr.ip()).or_else(|| {
            // An authority that is the address itself names nothing.
            self.authorities
                .get(&addr)
                .filter(|a| a.parse::<SocketAddr>().ok() != Some(addr))
        })
    }

    /// The window the user chose (no automatic switch after that).
    pub fn choose_window(&mut self, w: Window) {
        self.window = w;
        self.auto_window = false;
    }

    /// The current second of capture time.
    pub fn now_sec(&self) -> u64 {
        self.now.0 / NS
    }

    /// Seconds of capture so far: from its first packet to the newest.
    pub fn capture_secs(&self) -> f64 {
        let first = self.capture_first.or(self.first).unwrap_or(self.now);
        (self.now - first).as_secs_f64()
    }

    /// Seconds the window covers now: its span, less while the capture is younger (at least a
    /// second); the whole capture's duration.
    pub fn window_secs(&self) -> f64 {
        if let Some((from, to)) = self.range {
            return (to - from) as f64;
        }
        let age = self.capture_secs();
        match self.window.secs() {
            Some(w) => age.clamp(1.0, w as f64),
            None => age,
        }
    }

    /// Calls and errors of `series` in the window (`total`: the counts since the start).
    pub fn in_window(&self, series: &Series, total: (u64, u64)) -> (u64, u64) {
        match self.window.secs() {
            Some(w) => series.sum(self.now_sec(), w),
            None => total,
        }
    }

    /// Calls per second: `calls` over the window's seconds (none for a capture of no
    /// duration).
    pub fn rate(&self, calls: u64) -> f64 {
        let secs = self.window_secs();
        if secs > 0.0 { calls as f64 / secs } else { 0.0 }
    }

    fn tick(&mut self, ts: Nanos) {
        self.now = self.now.max(ts);
        if ts > Nanos::ZERO && self.first.is_none_or(|f| ts < f) {
            self.first = Some(ts);
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, ev: UiEvent) {
        match ev {
            UiEvent::Call(call) => self.add_call(call),
            UiEvent::Findings(f) => self.findings = f,
            UiEvent::ConnOpened {
                id,
                client,
                server,
                ts,
            } => {
                self.tick(ts);
                self.bound_conns();
                self.conns.insert(
                    id,
                    ConnInfo {
                        id,
                        client,
                        server,
                        opened: ts,
                        closed: false,
                        calls: 0,
                        errors: 0,
                        goaways: 0,
                        bytes: [0; 2],
                        open_streams: 0,
                        tls: None,
                        ping_rtt: None,
                    },
                );
            }
            UiEvent::ConnClosed { id, bytes } => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.closed = true;
                    c.bytes = bytes;
                    c.open_streams = 0;
                }
            }
            UiEvent::PingRtt { conn, rtt } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    let (min, n) = c.ping_rtt.get_or_insert((rtt, 0));
                    *min = (*min).min(rtt);
                    *n += 1;
                }
            }
            UiEvent::Goaway { conn, .. } => {
                self.goaways += 1;
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.goaways += 1;
                }
            }
            UiEvent::Snapshot(s) => self.snapshot(*s),
            UiEvent::Name { addr, name } => {
                // Bounded: at most this many addresses (the first named), and a few names each
                // (several names may lead to one address: a CNAME, a shared front end).
                let room = self.names.len() < MAX_NAMES;
                match self.names.get_mut(&addr) {
                    Some(known) => {
                        let has = known.split(", ").any(|n| *n == *name);
                        if !has && known.split(", ").count() < NAMES_PER_ADDR {
                            *known = Arc::from(format!("{known}, {name}"));
                        }
                    }
                    None if room => {
                        self.names.insert(addr, name);
                    }
                    None => {}
                }
            }
        }
    }

    /// Forgets closed connections (oldest first) to stay within the bound.
    fn bound_conns(&mut self) {
        if self.conns.len() < self.limits.max_conns {
            return;
        }
        let mut closed: Vec<(Nanos, ConnId)> = self
            .conns
            .values()
            .filter(|c| c.closed)
            .map(|c| (c.opened, c.id))
            .collect();
        if closed.is_empty() {
            closed = self.conns.values().map(|c| (c.opened, c.id)).collect();
        }
        closed.sort_unstable();
        let excess = self.conns.len() + 1 - self.limits.max_conns / 2;
        for (_, id) in closed.into_iter().take(excess.max(1)) {
            self.conns.remove(&id);
        }
    }

    fn snapshot(&mut self, s: Snapshot) {
        self.tick(s.now);
        if s.first.is_some() {
            self.capture_first = s.first;
        }
        if s.status.done && self.auto_window {
            // The replay is over: the whole capture is what there is to look at.
            self.window = Window::Whole;
            self.auto_window = false;
        }
        for m in &mut self.methods {
            m.open = 0;
        }
        for row in &s.open {
            let name = row.method.as_deref().unwrap_or(UNKNOWN_METHOD);
            if let Some(&i) = self.index.get(name) {
                self.methods[i].open += 1;
            } else if self.cap.has_room() {
                let i = self.method_index(row.method.as_ref());
                self.methods[i].open += 1;
            }
        }
        for c in self.conns.values_mut() {
            c.open_streams = 0;
        }
        for l in &s.conns {
            if let Some(c) = self.conns.get_mut(&l.id) {
                c.bytes = l.bytes;
                c.open_streams = l.open_streams;
            }
        }
        self.open = s.open;
        self.open_total = s.open_total;
        self.status = s.status;
    }

    fn method_index(&mut self, method: Option<&Arc<str>>) -> usize {
        let name = method.map_or(UNKNOWN_METHOD, |m| m);
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let key: Arc<str> = if !self.cap.admit() {
            if let Some(&i) = self.index.get(OTHER_METHOD) {
                return i;
            }
            Arc::from(OTHER_METHOD)
        } else {
            method.cloned().unwrap_or_else(|| Arc::from(UNKNOWN_METHOD))
        };
        self.methods.push(MethodRow::new(key.clone()));
        self.index.insert(key, self.methods.len() - 1);
        self.methods.len() - 1
    }

    fn add_call(&mut self, call: Box<CallRecord>) {
        let at = call.end.or(call.start).unwrap_or(self.now);
        self.tick(at);
        if let Some(s) = call.start {
            self.tick(s);
        }
        let label = call.method_label().map(|l| match (&call.method, l) {
            (Some(m), _) => m.clone(),
            (None, l) => Arc::from(l.as_ref()),
        });
        let i = self.method_index(label.as_ref());
        let m = &mut self.methods[i];
        m.record(&call, at);
        let finished = call.status_source != StatusSource::Unfinished;
        let error = is_error(&call);
        if finished {
            self.calls += 1;
            self.errors += u64::from(error);
            self.series.add(at.0 / NS, error);
            self.timeline.add(at.0 / NS, error);
            let service = m.service.clone();
            let spread = self
                .spread
                .entry(service)
                .or_default()
                .entry(call.server)
                .or_default();
            spread.calls += 1;
            spread.series.add(at.0 / NS, error);
            spread.timeline.add(at.0 / NS, error);
        }
        if let Some(a) = &call.authority
            && !self.authorities.contains_key(&call.server)
            && self.authorities.len() < MAX_NAMES
        {
            self.authorities.insert(call.server, a.clone());
        }
        if let Some(c) = self.conns.get_mut(&call.conn) {
            c.calls += 1;
            c.errors += u64::from(error);
            if c.tls.is_none() {
                c.tls.clone_from(&call.tls);
            }
        }
        self.keep_recent(call);
    }

    fn keep_recent(&mut self, call: Box<CallRecord>) {
        self.recent_body_bytes += body_bytes(&call);
        self.recent.push_back(call);
        while self.recent.len() > self.limits.recent_calls {
            if let Some(old) = self.recent.pop_front() {
                self.recent_body_bytes -= body_bytes(&old);
            }
        }
        // Over the byte budget: the oldest calls lose their messages first.
        let mut i = 0;
        while self.recent_body_bytes > self.limits.recent_body_bytes && i < self.recent.len() {
            let c = &mut self.recent[i];
            self.recent_body_bytes -= body_bytes(c);
            c.req.bodies = Vec::new();
            c.resp.bodies = Vec::new();
            i += 1;
        }
    }

    /// Methods in no particular order.
    pub fn methods(&self) -> &[MethodRow] {
        &self.methods
    }

    /// The cheap figures of method `i` (no latency, no top errors: see [`Model::method_stats`]).
    pub fn method_row(&self, i: usize) -> RowStats {
        let m = &self.methods[i];
        let (calls, errors) = match self.range {
            Some((from, to)) => m.timeline.sum(from, to),
            None => self.in_window(&m.series, (m.calls, m.errors())),
        };
        // In a range, the counts are the range's too.
        let (total, total_errors) = match self.range {
            Some(_) => (calls, errors),
            None => (m.calls, m.errors()),
        };
        RowStats {
            name: m.name.clone(),
            rate: self.rate(calls),
            calls: total,
            error_ratio: (calls > 0).then(|| errors as f64 / calls as f64),
            errors: total_errors,
            latency: [None; 3],
            open: m.open,
            top_errors: Vec::new(),
        }
    }

    /// Window latency quantiles of method `i`, worked out at most once per second of capture
    /// time (10,000 methods stay cheap to draw).
    pub fn method_latency(&mut self, i: usize) -> [Option<Duration>; 3] {
        if self.range.is_some() {
            return quantiles(&self.latency_histogram(&[i]));
        }
        let (now_sec, w) = (self.now_sec(), self.window);
        let m = &mut self.methods[i];
        match m.cache {
            Some((at, cw, q)) if at == now_sec && cw == w => q,
            _ => {
                self.scratch.clear();
                m.latency_into(w, now_sec, &mut self.scratch);
                let q = quantiles(&self.scratch);
                m.cache = Some((now_sec, w, q));
                q
            }
        }
    }

    /// The window's latency histogram of the methods `members` together.
    pub fn latency_histogram(&mut self, members: &[usize]) -> Histogram {
        let mut h = Histogram::default();
        if let Some(range) = self.range {
            if let Some(by_method) = self.range_latency(range) {
                for i in members {
                    if let Some(x) = by_method.get(i) {
                        h.merge(x);
                    }
                }
            }
            return h;
        }
        let (now_sec, w) = (self.now_sec(), self.window);
        for &i in members {
            self.methods[i].latency_into(w, now_sec, &mut h);
        }
        h
    }

    /// Every figure of method `i`.
    pub fn method_stats(&mut self, i: usize) -> RowStats {
        let mut r = self.method_row(i);
        r.latency = self.method_latency(i);
        r.top_errors = top_errors(&self.methods[i].codes);
        r
    }

    /// The cheap figures of a service: its methods `members` together.
    pub fn service_row(&self, service: &Arc<str>, members: &[usize]) -> RowStats {
        let (mut calls, mut errors, mut open, mut total, mut total_errors) = (0, 0, 0, 0, 0);
        for &i in members {
            let m = &self.methods[i];
            let (c, e) = match self.range {
                Some((from, to)) => m.timeline.sum(from, to),
                None => self.in_window(&m.series, (m.calls, m.errors())),
            };
            calls += c;
            errors += e;
            open += m.open;
            if self.range.is_some() {
                total += c;
                total_errors += e;
            } else {
                total += m.calls;
                total_errors += m.errors();
            }
        }
        RowStats {
            name: service.clone(),
            rate: self.rate(calls),
            calls: total,
            error_ratio: (calls > 0).then(|| errors as f64 / calls as f64),
            errors: total_errors,
            latency: [None; 3],
            open,
            top_errors: Vec::new(),
        }
    }

    /// Window latency quantiles of the methods `members` together.
    pub fn service_latency(&mut self, members: &[usize]) -> [Option<Duration>; 3] {
        if self.range.is_some() {
            return quantiles(&self.latency_histogram(members));
        }
        let (now_sec, w) = (self.now_sec(), self.window);
        self.scratch.clear();
        for &i in members {
            self.methods[i].latency_into(w, now_sec, &mut self.scratch);
        }
        quantiles(&self.scratch)
    }

    /// Latency per method of the kept calls that ended in `range` (built once per range and
    /// number of calls).
    fn range_latency(&mut self, range: (u64, u64)) -> Option<&LatencyByMethod> {
        let fresh =
            matches!(&self.range_latency, Some((r, n, _)) if *r == range && *n == self.calls);
        if !fresh {
            let mut by = LatencyByMethod::default();
            for c in &self.recent {
                if !self.in_range(c) {
                    continue;
                }
                let label = c.method_label();
                let name = match (&c.method, &label) {
                    (Some(m), _) => &**m,
                    (None, Some(l)) => l.as_ref(),
                    (None, None) => UNKNOWN_METHOD,
                };
                let i = self
                    .index
                    .get(name)
                    .or_else(|| self.index.get(OTHER_METHOD))
                    .copied();
                if let (Some(i), Some(d)) = (i, c.duration()) {
                    by.entry(i).or_default().record(d);
                }
            }
            self.range_latency = Some((range, self.calls, by));
        }
        self.range_latency.as_ref().map(|(_, _, by)| by)
    }

    /// A server's calls of a service: since the start (or in the range), and in the window.
    pub fn spread_calls(&self, x: &Spread) -> (u64, u64) {
        match self.range {
            Some((from, to)) => {
                let n = x.timeline.sum(from, to).0;
                (n, n)
            }
            None => (x.calls, self.in_window(&x.series, (x.calls, 0)).0),
        }
    }

    /// Whether a finished call ended in the range (every call, without one).
    pub fn in_range(&self, c: &CallRecord) -> bool {
        match self.range {
            None => true,
            Some((from, to)) => c
                .end
                .or(c.start)
                .is_some_and(|e| e.0 >= from * NS && e.0 < to * NS),
        }
    }

    /// Whether the calls kept reach back to the range's start (its latency is of every call in
    /// it); otherwise only the newest [`ModelLimits::recent_calls`] are.
    pub fn range_fully_kept(&self) -> bool {
        match (self.range, self.recent.front()) {
            (Some((from, _)), Some(oldest)) => {
                self.recent.len() < self.limits.recent_calls
                    || oldest.end.or(oldest.start).is_some_and(|e| e.0 < from * NS)
            }
            _ => true,
        }
    }

    /// The most frequent error codes of the methods `members` together.
    pub fn top_errors(&self, members: &[usize]) -> Vec<(&'static str, u64)> {
        let mut codes = [0; CODE_SLOTS];
        for &i in members {
            for (sum, n) in codes.iter_mut().zip(&self.methods[i].codes) {
                *sum += n;
            }
        }
        top_errors(&codes)
    }
}

fn quantiles(h: &Histogram) -> [Option<Duration>; 3] {
    [h.quantile(0.5), h.quantile(0.9), h.quantile(0.99)]
}

fn top_errors(codes: &[u64; CODE_SLOTS]) -> Vec<(&'static str, u64)> {
    let mut v: Vec<(&'static str, u64)> = codes
        .iter()
        .enumerate()
        .skip(1)
        .filter(|(_, n)| **n > 0)
        .map(|(code, n)| {
            (
                if code == 17 {
                    "OTHER"
                } else if code == ERROR_CODE_UNKNOWN {
                    "ERROR(code unknown)"
                } else if code == DEADLINE_OR_CANCEL {
                    "DEADLINE|CANCEL"
                } else {
                    Code(u32::try_from(code).unwrap_or(u32::MAX)).name()
                },
                *n,
            )
        })
        .collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    v.truncate(3);
    v
}

fn body_bytes(c: &CallRecord) -> usize {
    c.req
        .bodies
        .iter()
        .chain(&c.resp.bodies)
        .map(|b| b.data.len())
        .sum()
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // test times are small
mod tests {
    use super::*;
    use crate::feed::SourceStatus;
    use decoder::grpc::Code;

    fn call(method: &str, start_s: f64, ms: u64, code: u32, server: &str) -> CallRecord {
        let start = (start_s * 1e9) as u64;
        let mut c = CallRecord::new(
            ConnId::new(0, 1),
            1,
            "10.0.0.1:40000".parse().expect("addr"),
            server.parse().expect("addr"),
            Some(Nanos(start)),
        );
        c.method = Some(Arc::from(method));
        c.end = Some(Nanos(start + ms * 1_000_000));
        c.status = Some(Code(code));
        c.grpc_status = Some(code);
        c.status_source = StatusSource::Trailers;
        c
    }

    #[test]
    fn window_rate_errors_and_latency_follow_capture_time() {
        let mut m = Model::new(ModelLimits::default());
        // 100 s of one call per second at 10 ms, then 10 s of 5 calls/s, one in five failing
        // at 100 ms.
        for s in 0..100 {
            m.apply(UiEvent::Call(Box::new(call(
                "/a.S/M",
                1000.0 + s as f64,
                10,
                0,
                "10.0.0.2:50051",
            ))));
        }
        for s in 0..50 {
            let code = if s % 5 == 0 { 14 } else { 0 };
            let ms = if code == 0 { 10 } else { 100 };
            m.apply(UiEvent::Call(Box::new(call(
                "/a.S/M",
                1100.0 + s as f64 / 5.0,
                ms,
                code,
                "10.0.0.2:50051",
            ))));
        }
        let r = m.method_stats(0);
        assert_eq!(r.calls, 150);
        assert_eq!(r.errors, 10);
        assert!((r.rate - 5.0).abs() < 0.01, "{}", r.rate);
        assert_eq!(r.error_ratio, Some(0.2));
        assert_eq!(r.top_errors, vec![("UNAVAILABLE", 10)]);
        let p99 = r.latency[2].expect("p99").as_secs_f64();
        assert!((p99 - 0.1).abs() < 0.005, "{p99}");
        // The per-second history ends with the last second and holds 5 calls each.
        let h = m.methods()[0].series.history(m.now_sec(), 12, false);
        assert_eq!(&h[h.len() - 3..], &[5, 5, 5]);
        // 30 s later with no calls: the window is empty.
        m.apply(UiEvent::Snapshot(Box::new(Snapshot {
            now: Nanos(1140 * NS),
            ..Default::default()
        })));
        let r = m.method_stats(0);
        assert_eq!((r.rate, r.error_ratio, r.latency), (0.0, None, [None; 3]));
    }

    #[test]
    fn each_window_covers_its_span_and_a_finished_replay_shows_the_whole_capture() {
        let mut m = Model::new(ModelLimits::default());
        // 400 s: one call a second at 10 ms, failing with UNAVAILABLE in the first 100 s;
        // then 100 calls in the last 10 s at 50 ms.
        for s in 0..400u64 {
            let code = if s < 100 { 14 } else { 0 };
            m.apply(UiEvent::Call(Box::new(call(
                "/a.S/M",
                1000.0 + s as f64,
                10,
                code,
                "10.0.0.2:50051",
            ))));
        }
        for k in 0..100u64 {
            m.apply(UiEvent::Call(Box::new(call(
                "/a.S/M",
                1390.0 + k as f64 / 10.0,
                50,
                0,
                "10.0.0.2:50051",
            ))));
        }
        m.apply(UiEvent::Snapshot(Box::new(Snapshot {
            now: Nanos(1400 * NS),
            first: Some(Nanos(1000 * NS)),
            ..Default::default()
        })));
        assert_eq!(m.window, Window::Secs10);
        let r = m.method_stats(0);
        // The last 10 s are seconds 1391 to 1400: 9 + 90 calls.
        assert!((r.rate - 9.9).abs() < 1e-9, "{}", r.rate);
        assert_eq!(r.error_ratio, Some(0.0));
        let p50 = r.latency[0].expect("p50").as_secs_f64();
        assert!((p50 - 0.05).abs() < 0.002, "{p50}");
        m.choose_window(Window::Min5);
        let r = m.method_stats(0);
        // 300 s: 300 + 100 calls, none failing (the errors were before).
        assert!((r.rate - 400.0 / 300.0).abs() < 0.02, "{}", r.rate);
        assert_eq!(r.error_ratio, Some(0.0));
        m.choose_window(Window::Whole);
        let r = m.method_stats(0);
        assert_eq!(r.calls, 500);
        assert!((r.rate - 500.0 / 400.0).abs() < 1e-9, "{}", r.rate);
        assert_eq!(r.error_ratio, Some(100.0 / 500.0));
        let p50 = r.latency[0].expect("p50").as_secs_f64();
        assert!((p50 - 0.01).abs() < 0.0003, "{p50}");
        // A finished replay switches to the whole capture, unless the user chose a window.
        let mut m2 = Model::new(ModelLimits::default());
        m2.apply(UiEvent::Snapshot(Box::new(Snapshot {
            status: SourceStatus {
                done: true,
                ..Default::default()
            },
            ..Default::default()
        })));
        assert_eq!(m2.window, Window::Whole);
        let mut m3 = Model::new(ModelLimits::default());
        m3.choose_window(Window::Min1);
        m3.apply(UiEvent::Snapshot(Box::new(Snapshot {
            status: SourceStatus {
                done: true,
                ..Default::default()
            },
            ..Default::default()
        })));
        assert_eq!(m3.window, Window::Min1);
    }

    #[test]
    fn methods_are_capped_and_recent_calls_bounded() {
        let mut m = Model::new(ModelLimits {
            max_methods: 3,
            recent_calls: 10,
            recent_body_bytes: 100,
            max_conns: 4,
        });
        for i in 0..50 {
            let mut c = call(&format!("/s.S/M{i}"), 10.0 + i as f64, 1, 0, "10.0.0.2:1");
            c.req.bodies = vec![decoder::grpc::msg::Body {
                compressed: false,
                data: vec![0; 40],
                len: 40,
                ts: Nanos(0),
            }];
            m.apply(UiEvent::Call(Box::new(c)));
        }
        // Three methods apart, the rest under `other`.
        assert_eq!(m.methods().len(), 4);
        assert_eq!(&*m.methods()[3].name, OTHER_METHOD);
        assert_eq!(m.methods()[3].calls, 47);
        assert_eq!(m.cap.folded(), 47);
        assert_eq!(m.recent.len(), 10);
        let kept: usize = m.recent.iter().map(|c| body_bytes(c)).sum();
        assert!(kept <= 100, "{kept}");
        assert!(
            !m.recent.back().expect("newest").req.bodies.is_empty(),
            "newest keeps its messages"
        );
        for id in 0..20 {
            m.apply(UiEvent::ConnOpened {
                id: ConnId::new(0, id),
                client: "10.0.0.1:1".parse().expect("addr"),
                server: "10.0.0.2:1".parse().expect("addr"),
                ts: Nanos(id),
            });
        }
        assert!(m.conns.len() <= 4);
        assert!(m.conns.contains_key(&ConnId::new(0, 19)));
    }

    #[test]
    fn spread_shows_each_server_of_a_service() {
        let mut m = Model::new(ModelLimits::default());
        for i in 0..30 {
            let server = if i < 20 {
                "10.0.0.2:50051"
            } else {
                "10.0.0.3:50051"
            };
            m.apply(UiEvent::Call(Box::new(call(
                "/a.S/M",
                5.0 + i as f64,
                1,
                0,
                server,
            ))));
        }
        let s = &m.spread["a.S"];
        assert_eq!(s[&"10.0.0.2:50051".parse().expect("addr")].calls, 20);
        assert_eq!(s[&"10.0.0.3:50051".parse().expect("addr")].calls, 10);
    }
}
