//! Decoding on several cores (`--threads N`): the reader hands each packet to one of N workers
//! by a hash of its two addresses (the same both ways), so a worker owns whole connections,
//! all those between two hosts: its own flow table, reassembly, HTTP/2, HPACK and call tracking. What the
//! workers' decoders say comes back tagged with the number of the packet that caused it, and
//! the merge hands every output the events of all workers in packet order: the outputs see
//! what one thread would have shown them (docs/architecture.md, "Threads").
//!
//! Queues are bounded: a replay's reader waits for a worker with a full queue (nothing is
//! lost); a live capture's waits while the kernel's buffer can hold what arrives meanwhile, then
//! drops the batch and counts its packets.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use capture::{CaptureLimits, CaptureStats, ConnId, EventKind, Nanos, Packet, Reassembler};
use decoder::output::{Conns, Output, Tick};
use decoder::tls::session::{TlsInfo, TlsState};
use decoder::{CallRecord, ConnDecoder, ConnEvent, DecoderLimits, Side, Sink};

use crate::fanout::Fanout;
use crate::pipeline::Pipeline;

/// Packets a batch holds at most, and bytes (the reader sends it when either is reached).
const BATCH_PACKETS: usize = 256;
const BATCH_BYTES: usize = 512 << 10;
/// Batches waiting per worker: with the one being decoded and the one being filled, at most
/// (QUEUE + 2) x BATCH_BYTES of packets per worker (5 MiB).
const QUEUE: usize = 8;
/// How long a live capture's reader waits for a full queue before it drops the batch, at
/// least and at most: meanwhile the kernel's buffer holds the packets, for as long as half of
/// it takes at the rate they arrive (see [`LiveWait`]).
const LIVE_WAIT_MIN: Duration = Duration::from_millis(20);
const LIVE_WAIT_MAX: Duration = Duration::from_secs(1);
/// Batches of events waiting for the merge, from all workers.
const OUT_QUEUE: usize = 64;
/// Every this many packets the reader tells every worker how far it has read (with the
/// packets it has for it, or none): the merge moves on past a worker that had no packets.
const SYNC_EVERY: u64 = 2048;
/// Events of the end of the capture come after every packet's, in the order the connections
/// opened (one thread closes them in that order too).
const FINISH: u64 = 1 << 62;

/// How many workers `--threads` asks for: 0 or none is every core.
pub(crate) fn workers(asked: Option<usize>) -> usize {
    match asked {
        Some(n) if n > 0 => n.min(64),
        _ => std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
    }
}

/// One packet of a batch: where its bytes are in the batch's buffer, and its header.
#[derive(Debug, Clone, Copy)]
struct Meta {
    seq: u64,
    ts: Nanos,
    linktype: u32,
    orig_len: u32,
    interface: u32,
    at: u32,
    len: u32,
}

/// Packets for one worker.
#[derive(Debug, Default)]
struct Batch {
    data: Vec<u8>,
    pkts: Vec<Meta>,
    /// The reader had read up to this packet when it sent the batch, at this time.
    upto: u64,
    now: Nanos,
}

enum ToWorker {
    Packets(Batch),
    /// No more packets: end every connection (as of the capture's last time).
    Finish(Nanos),
}

/// What a worker's decoder said, owned.
enum Event {
    /// A connection began (the merge numbers connections in the order they opened).
    Opened(ConnId),
    /// The worker is done with a connection.
    Forget(ConnId),
    Started(Box<CallRecord>),
    /// With its `--calls` line when the worker made it (its connection id still to be put in).
    Ended(Box<CallRecord>, Option<Box<Line>>),
    Conn(ConnId, ConnEvent),
    Tls(ConnId, Box<TlsInfo>, TlsState),
    Dns(std::net::IpAddr, Box<str>),
    Message(ConnId, Side, u32),
}

/// A call's `--calls` line made by a worker: the connection id, which the merge gives, goes
/// where `at` says.
struct Line {
    text: String,
    at: usize,
    errors: u64,
}

/// The connection id a worker writes into a line for the merge to replace
/// (`ConnId::PLACEHOLDER`, 2^64 - 1): its digits cannot stand after `"conn":` anywhere else in
/// a line (a string's quotes there would be escaped).
const CONN_KEY: &str = "\"conn\":";
const PLACEHOLDER_JSON: &str = "\"conn\":18446744073709551615";
const PLACEHOLDER_DIGITS: usize = PLACEHOLDER_JSON.len() - CONN_KEY.len();

/// A worker's events since its last report, and where it is.
struct Report {
    worker: usize,
    events: Vec<(u64, Event)>,
    /// Every packet up to this one has been decoded.
    upto: u64,
    stats: CaptureStats,
    first_ts: Option<Nanos>,
    last_ts: Nanos,
    /// The newest packet time its flow table saw.
    flow_now: Nanos,
    done: bool,
}

/// The output a worker's decoder writes to: every event, tagged with the current packet.
struct Forward {
    tag: Rc<Cell<u64>>,
    events: Rc<RefCell<Vec<(u64, Event)>>>,
    messages: bool,
    /// `--calls`: each call's line is made here (its messages decoded too, with `--bodies`).
    lines: Option<crate::calls_json::LineConfig>,
}

impl Forward {
    fn push(&self, e: Event) {
        self.events.borrow_mut().push((self.tag.get(), e));
    }
}

impl Sink for Forward {
    fn call_started(&mut self, call: &CallRecord) {
        self.push(Event::Started(Box::new(call.clone())));
    }

    fn call_ended(&mut self, call: &CallRecord) {
        let mut rec = Box::new(call.clone());
        let line = self.lines.as_ref().and_then(|cfg| {
            rec.conn = ConnId::PLACEHOLDER;
            let (text, errors) = cfg.line(&rec);
            rec.conn = call.conn;
            let text = text.ok()?;
            let at = text.find(PLACEHOLDER_JSON)? + CONN_KEY.len();
            Some(Box::new(Line { text, at, errors }))
        });
        self.push(Event::Ended(rec, line));
    }

    fn conn_event(&mut self, conn: ConnId, event: ConnEvent) {
        self.push(Event::Conn(conn, event));
    }

    fn tls(&mut self, conn: ConnId, info: &TlsInfo, state: TlsState) {
        self.push(Event::Tls(conn, Box::new(info.clone()), state));
    }

    fn dns_name(&mut self, addr: std::net::IpAddr, name: &str) {
        self.push(Event::Dns(addr, name.into()));
    }

    fn message(&mut self, conn: ConnId, from: Side, len: u32) {
        self.push(Event::Message(conn, from, len));
    }
}

impl Output for Forward {
    fn wants_messages(&self) -> bool {
        self.messages
    }
}

/// Stands between a worker's flow table and its decoders: notes where each connection opened
/// (its end-of-capture events are ordered by it) and tells the merge of each connection's
/// beginning and end.
struct Tap<'a> {
    pipeline: &'a mut Pipeline,
    tag: &'a Cell<u64>,
    events: &'a RefCell<Vec<(u64, Event)>>,
    /// Open connections: the packet that opened each, and which directions have closed.
    open: HashMap<ConnId, (u64, [bool; 2]), foldhash::fast::FixedState>,
    finishing: bool,
}

impl capture::StreamSink for Tap<'_> {
    fn on_event(&mut self, ev: capture::StreamEvent<'_>) {
        match ev.kind {
            EventKind::Open(_) => {
                self.open.insert(ev.conn, (self.tag.get(), [false; 2]));
                self.events
                    .borrow_mut()
                    .push((self.tag.get(), Event::Opened(ev.conn)));
                self.pipeline.on_event(ev);
            }
            EventKind::Close { .. } => {
                let Some(o) = self.open.get_mut(&ev.conn) else {
                    return self.pipeline.on_event(ev);
                };
                o.1[ev.dir.index()] = true;
                let (opened, closed) = *o;
                let during = self.tag.get();
                if self.finishing {
                    self.tag.set(FINISH + opened);
                }
                self.pipeline.on_event(ev);
                if closed == [true, true] {
                    self.open.remove(&ev.conn);
                    self.events
                        .borrow_mut()
                        .push((self.tag.get(), Event::Forget(ev.conn)));
                }
                self.tag.set(during);
            }
            _ => self.pipeline.on_event(ev),
        }
    }

    fn on_dns(&mut self, ts: Nanos, from: std::net::SocketAddr, payload: &[u8]) {
        self.pipeline.on_dns(ts, from, payload);
    }
}

/// What every worker is built from.
#[derive(Clone)]
struct WorkerConfig {
    limits: CaptureLimits,
    dec_limits: DecoderLimits,
    store: Arc<decoder::reflection::SchemaStore>,
    keylog: Arc<decoder::tls::keylog::KeyLog>,
    key_files: Option<crate::keylog::KeyFiles>,
    messages: bool,
    lines: Option<crate::calls_json::LineConfig>,
}

/// Milliseconds each batch takes longer to decode (tests: a slow worker).
#[cfg(test)]
static SLOW_MS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One worker: decodes the batches it is given until told to finish.
fn work(
    k: usize,
    cfg: WorkerConfig,
    rx: Receiver<ToWorker>,
    free: SyncSender<Batch>,
    out: SyncSender<Report>,
) {
    let tag = Rc::new(Cell::new(0));
    let events = Rc::new(RefCell::new(Vec::new()));
    let mut fan = Fanout::default();
    fan.push(Forward {
        tag: tag.clone(),
        events: events.clone(),
        messages: cfg.messages,
        lines: cfg.lines.clone(),
    });
    let mut pipeline =
        Pipeline::new(cfg.dec_limits, cfg.store.clone(), fan).with_keylog(cfg.keylog.clone());
    if let Some(files) = cfg.key_files.clone() {
        pipeline.refresh_keys = Some(Box::new(move || files.refresh()));
    }
    let shard = u16::try_from(k).unwrap_or(u16::MAX);
    let mut reasm = Reassembler::with_shard(cfg.limits.clone(), shard);
    let mut tap = Tap {
        pipeline: &mut pipeline,
        tag: &tag,
        events: &events,
        open: HashMap::default(),
        finishing: false,
    };
    let report = |tap: &Tap<'_>, reasm: &Reassembler, upto: u64, done: bool| Report {
        worker: k,
        events: std::mem::take(&mut *tap.events.borrow_mut()),
        upto,
        stats: *reasm.stats(),
        first_ts: tap.pipeline.first_ts,
        last_ts: tap.pipeline.last_ts,
        flow_now: reasm.flows().now(),
        done,
    };
    while let Ok(msg) = rx.recv() {
        match msg {
            ToWorker::Packets(mut b) => {
                #[cfg(test)]
                std::thread::sleep(Duration::from_millis(
                    SLOW_MS.load(std::sync::atomic::Ordering::Relaxed),
                ));
                for m in &b.pkts {
                    tag.set(m.seq);
                    let at = m.at as usize;
                    let pkt = Packet {
                        ts: m.ts,
                        linktype: m.linktype,
                        data: &b.data[at..at + m.len as usize],
                        orig_len: m.orig_len,
                        interface: m.interface,
                    };
                    reasm.handle_packet(&pkt, &mut tap);
                }
                // Idle connections expire by the reader's time, as one thread's would.
                tag.set(b.upto);
                reasm.poll_timeouts(b.now, &mut tap);
                let r = report(&tap, &reasm, b.upto, false);
                b.data.clear();
                b.pkts.clear();
                // The reader may have enough batches: then this one is let go.
                let _ = free.try_send(b);
                if out.send(r).is_err() {
                    return;
                }
            }
            ToWorker::Finish(now) => {
                tag.set(FINISH);
                reasm.advance(now);
                tap.finishing = true;
                reasm.finish(&mut tap);
                let r = report(&tap, &reasm, u64::MAX, true);
                let _ = out.send(r);
                return;
            }
        }
    }
}

/// The calls still open, as the merge knows them (from their starts): what the outputs'
/// views of open streams walk.
#[derive(Default)]
struct OpenCalls(HashMap<(ConnId, u32), Box<CallRecord>, foldhash::fast::FixedState>);

impl Conns for OpenCalls {
    fn for_each_conn(&self, _f: &mut dyn FnMut(&ConnDecoder)) {}

    fn for_each_open_call(&self, f: &mut dyn FnMut(&CallRecord)) {
        for c in self.0.values() {
            f(c);
        }
    }
}

/// The reader's side: the workers, their queues, and the merge.
pub(crate) struct Sharded {
    to: Vec<SyncSender<ToWorker>>,
    free: Vec<Receiver<Batch>>,
    filling: Vec<Batch>,
    reports: Receiver<Report>,
    handles: Vec<std::thread::JoinHandle<()>>,
    /// A live capture: how long the reader may wait for a worker.
    live: Option<LiveWait>,
    seq: u64,
    now: Nanos,
    /// Packets dropped because a worker's queue was full (live capture).
    pub(crate) queue_drops: u64,
    merge: Merge,
}

/// Puts the workers' events back in packet order.
struct Merge {
    pending: Vec<VecDeque<(u64, Event)>>,
    upto: Vec<u64>,
    done: Vec<bool>,
    stats: Vec<CaptureStats>,
    first: Vec<Option<Nanos>>,
    last: Vec<Nanos>,
    flow_now: Vec<Nanos>,
    /// Worker connection ids to the ids outputs see (numbered in the order connections
    /// opened, as one thread numbers them).
    ids: HashMap<ConnId, ConnId, foldhash::fast::FixedState>,
    next_id: u64,
    open: OpenCalls,
}

impl Merge {
    fn new(n: usize) -> Merge {
        Merge {
            pending: (0..n).map(|_| VecDeque::new()).collect(),
            upto: vec![0; n],
            done: vec![false; n],
            stats: vec![CaptureStats::default(); n],
            first: vec![None; n],
            last: vec![Nanos::ZERO; n],
            flow_now: vec![Nanos::ZERO; n],
            ids: HashMap::default(),
            next_id: 0,
            open: OpenCalls::default(),
        }
    }

    fn absorb(&mut self, r: Report) {
        let k = r.worker;
        self.pending[k].extend(r.events);
        self.upto[k] = self.upto[k].max(r.upto);
        self.done[k] |= r.done;
        self.stats[k] = r.stats;
        self.first[k] = r.first_ts;
        self.last[k] = r.last_ts;
        self.flow_now[k] = r.flow_now;
    }

    /// Hands `out` every event no worker can still precede.
    fn emit(&mut self, out: &mut Fanout) {
        loop {
            let mut best: Option<(u64, usize)> = None;
            for (k, p) in self.pending.iter().enumerate() {
                if let Some(&(s, _)) = p.front()
                    && best.is_none_or(|b| (s, k) < b)
                {
                    best = Some((s, k));
                }
            }
            let Some((s, k)) = best else { return };
            // A worker with nothing pending may still send an event up to its next packet.
            let behind = (0..self.pending.len())
                .any(|j| j != k && self.pending[j].is_empty() && !self.done[j] && self.upto[j] < s);
            if behind {
                return;
            }
            if let Some((_, e)) = self.pending[k].pop_front() {
                self.apply(e, out);
            }
        }
    }

    fn id(&self, c: ConnId) -> ConnId {
        self.ids.get(&c).copied().unwrap_or(c)
    }

    fn apply(&mut self, e: Event, out: &mut Fanout) {
        match e {
            Event::Opened(c) => {
                self.ids.insert(c, ConnId::new(0, self.next_id));
                self.next_id += 1;
            }
            Event::Forget(c) => {
                self.ids.remove(&c);
            }
            Event::Started(mut rec) => {
                rec.conn = self.id(rec.conn);
                out.call_started(&rec);
                self.open.0.insert((rec.conn, rec.stream_id), rec);
            }
            Event::Ended(mut rec, line) => {
                rec.conn = self.id(rec.conn);
                self.open.0.remove(&(rec.conn, rec.stream_id));
                if let Some(l) = line
                    && let Some(j) = out.get_mut::<crate::calls_json::JsonLines>()
                {
                    let mut text = l.text;
                    text.replace_range(
                        l.at..l.at + PLACEHOLDER_DIGITS,
                        &rec.conn.get().to_string(),
                    );
                    j.prepare((rec.conn, rec.stream_id), text, l.errors);
                }
                out.call_ended(&rec);
            }
            Event::Conn(c, ev) => out.conn_event(self.id(c), ev),
            Event::Tls(c, info, state) => out.tls(self.id(c), &info, state),
            Event::Dns(addr, name) => out.dns_name(addr, &name),
            Event::Message(c, side, len) => out.message(self.id(c), side, len),
        }
    }

    fn stats(&self, reader: &CaptureStats) -> CaptureStats {
        let mut s = *reader;
        for w in &self.stats {
            s += *w;
        }
        s
    }
}

/// What starts the workers.
pub(crate) struct Setup {
    pub(crate) workers: usize,
    pub(crate) limits: CaptureLimits,
    pub(crate) dec_limits: DecoderLimits,
    pub(crate) store: Arc<decoder::reflection::SchemaStore>,
    pub(crate) keylog: Arc<decoder::tls::keylog::KeyLog>,
    pub(crate) key_files: Option<crate::keylog::KeyFiles>,
    pub(crate) messages: bool,
    /// `--calls`: the workers make the lines.
    pub(crate) lines: Option<crate::calls_json::LineConfig>,
    /// A live capture, and the bytes its kernel buffer holds.
    pub(crate) live: Option<usize>,
}

/// How long a live capture's reader may wait for a full queue: while the kernel's buffer can
/// hold what arrives meanwhile (half of it, at the rate the packets arrived over the last
/// quarter second or more of their timestamps: the kernel's clock, not the reader's, which
/// slows down when the reader waits). A worker that made the reader wait that long and still
/// had no room is stalled: its batches are dropped at once until it takes one again, so the
/// others are not held up.
struct LiveWait {
    buffer: usize,
    /// Bytes of the packets since the one at `since`.
    bytes: usize,
    since: Option<Nanos>,
    /// Bytes per second, as last measured.
    rate: f64,
    stalled: Vec<bool>,
}

impl LiveWait {
    fn new(buffer: usize, workers: usize) -> LiveWait {
        LiveWait {
            buffer,
            bytes: 0,
            since: None,
            rate: 0.0,
            stalled: vec![false; workers],
        }
    }

    /// `n` more bytes read, up to a packet of time `now`.
    fn sent(&mut self, n: usize, now: Nanos) {
        self.bytes += n;
        let since = *self.since.get_or_insert(now);
        let t = now.saturating_since(since);
        if t >= Duration::from_millis(250) {
            #[allow(clippy::cast_precision_loss)] // a rate
            let rate = self.bytes as f64 / t.as_secs_f64();
            self.rate = rate;
            self.bytes = 0;
            self.since = Some(now);
        }
    }

    /// How long the reader may wait for worker `k` now.
    fn budget(&self, k: usize) -> Duration {
        if self.stalled[k] {
            return Duration::ZERO;
        }
        #[allow(clippy::cast_precision_loss)] // a buffer size
        let half = self.buffer as f64 / 2.0;
        let secs = if self.rate > 0.0 {
            half / self.rate
        } else {
            f64::MAX
        };
        Duration::from_secs_f64(secs.min(LIVE_WAIT_MAX.as_secs_f64())).max(LIVE_WAIT_MIN)
    }
}

impl Sharded {
    /// Starts `setup.workers` workers; each gets its share of the flow table and decoder state
    /// bounds.
    pub(crate) fn start(setup: Setup) -> anyhow::Result<Sharded> {
        let n = setup.workers.max(1);
        let share = |x: usize| (x / n).max(1);
        let limits = CaptureLimits {
            max_connections: share(setup.limits.max_connections),
            ..setup.limits
        };
        let dec_limits = DecoderLimits {
            max_decoder_state: share(setup.dec_limits.max_decoder_state),
            ..setup.dec_limits
        };
        let cfg = WorkerConfig {
            limits,
            dec_limits,
            store: setup.store,
            keylog: setup.keylog,
            key_files: setup.key_files,
            messages: setup.messages,
            lines: setup.lines,
        };
        let (report_tx, reports) = sync_channel(OUT_QUEUE);
        let mut to = Vec::new();
        let mut free = Vec::new();
        let mut handles = Vec::new();
        for k in 0..n {
            let (tx, rx) = sync_channel(QUEUE);
            let (free_tx, free_rx) = sync_channel(QUEUE + 2);
            let cfg = cfg.clone();
            let out = report_tx.clone();
            let h = std::thread::Builder::new()
                .name(format!("grpctap-w{k}"))
                .spawn(move || work(k, cfg, rx, free_tx, out))?;
            to.push(tx);
            free.push(free_rx);
            handles.push(h);
        }
        Ok(Sharded {
            to,
            free,
            filling: (0..n).map(|_| Batch::default()).collect(),
            reports,
            handles,
            live: setup.live.map(|b| LiveWait::new(b, n)),
            seq: 0,
            now: Nanos::ZERO,
            queue_drops: 0,
            merge: Merge::new(n),
        })
    }

    /// Hands a packet to its worker (the reader's clock has already been applied).
    pub(crate) fn packet(&mut self, pkt: &Packet<'_>, out: &mut Fanout) {
        self.seq += 1;
        self.now = self.now.max(pkt.ts);
        let k = Reassembler::shard_of(pkt, self.to.len());
        let b = &mut self.filling[k];
        let at = u32::try_from(b.data.len()).unwrap_or(u32::MAX);
        b.data.extend_from_slice(pkt.data);
        b.pkts.push(Meta {
            seq: self.seq,
            ts: pkt.ts,
            linktype: pkt.linktype,
            orig_len: pkt.orig_len,
            interface: pkt.interface,
            at,
            len: u32::try_from(pkt.data.len()).unwrap_or(u32::MAX),
        });
        if b.pkts.len() >= BATCH_PACKETS || b.data.len() >= BATCH_BYTES {
            self.send(k, out);
        }
        if self.seq.is_multiple_of(SYNC_EVERY) {
            self.sync(out);
        }
    }

    /// Sends every worker what it has (maybe nothing) and how far the reader has read.
    pub(crate) fn sync(&mut self, out: &mut Fanout) {
        for k in 0..self.to.len() {
            self.send(k, out);
        }
    }

    fn send(&mut self, k: usize, out: &mut Fanout) {
        let fresh = self.free[k].try_recv().unwrap_or_default();
        let mut b = std::mem::replace(&mut self.filling[k], fresh);
        b.upto = self.seq;
        b.now = self.now;
        // A live capture waits until then at most (a stalled worker: not at all).
        let until = self.live.as_mut().map(|l| {
            l.sent(b.data.len(), b.now);
            std::time::Instant::now() + l.budget(k)
        });
        let mut msg = ToWorker::Packets(b);
        loop {
            match self.to[k].try_send(msg) {
                Ok(()) => {
                    if let Some(l) = self.live.as_mut() {
                        l.stalled[k] = false;
                    }
                    break;
                }
                Err(TrySendError::Full(m))
                    if until.is_some_and(|u| std::time::Instant::now() < u) =>
                {
                    // A moment's wait: meanwhile packets queue in the kernel's buffer, which
                    // is there for bursts.
                    msg = m;
                    self.wait(out);
                }
                Err(TrySendError::Full(m)) if until.is_some() => {
                    // The kernel's buffer would fill up first: the batch's packets are lost,
                    // and counted.
                    if let Some(l) = self.live.as_mut() {
                        l.stalled[k] = true;
                    }
                    if let ToWorker::Packets(mut b) = m {
                        self.queue_drops += b.pkts.len() as u64;
                        // The worker still hears how far the reader is, with the next batch.
                        b.data.clear();
                        b.pkts.clear();
                        self.filling[k] = b;
                    }
                    break;
                }
                Err(TrySendError::Full(m)) => {
                    // A replay waits, merging what the workers have said meanwhile.
                    msg = m;
                    self.wait(out);
                }
                Err(TrySendError::Disconnected(_)) => break,
            }
        }
        self.drain(out);
    }

    /// Takes in what the workers have reported, without waiting; whether there was any.
    fn take_reports(&mut self) -> bool {
        let mut any = false;
        while let Ok(r) = self.reports.try_recv() {
            self.merge.absorb(r);
            any = true;
        }
        any
    }

    /// Takes in and hands on what the workers have reported, without waiting.
    fn drain(&mut self, out: &mut Fanout) {
        if self.take_reports() {
            self.merge.emit(out);
        }
    }

    /// Waits a moment for a report, then hands on what has come.
    fn wait(&mut self, out: &mut Fanout) {
        if let Ok(r) = self.reports.recv_timeout(Duration::from_millis(1)) {
            self.merge.absorb(r);
            self.take_reports();
            self.merge.emit(out);
        }
    }

    /// Every packet read so far decoded and its events handed on (the end of the input, before
    /// the connections are ended).
    pub(crate) fn settle(&mut self, out: &mut Fanout) {
        // The input is over: nothing more to drop, the last batches wait for their place.
        self.live = None;
        self.sync(out);
        while self.merge.upto.iter().any(|&u| u < self.seq) {
            if !self.next_report() {
                break;
            }
            self.take_reports();
            self.merge.emit(out);
        }
    }

    /// Waits for a report and takes it in; false when none can come (a worker is gone).
    fn next_report(&mut self) -> bool {
        loop {
            match self.reports.recv_timeout(Duration::from_millis(100)) {
                Ok(r) => {
                    self.merge.absorb(r);
                    return true;
                }
                // A worker that ended before it was told to (a bug) sends nothing more: the
                // run ends with what the others said rather than waiting for ever.
                Err(RecvTimeoutError::Timeout) => {
                    let gone = self
                        .handles
                        .iter()
                        .enumerate()
                        .any(|(k, h)| h.is_finished() && !self.merge.done[k]);
                    if gone {
                        return false;
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return false,
            }
        }
    }

    /// Ends every connection as of the newest packet time any worker saw, and hands on the
    /// last events; the workers stop.
    pub(crate) fn finish(&mut self, out: &mut Fanout) {
        self.settle(out);
        let now = self
            .merge
            .flow_now
            .iter()
            .max()
            .copied()
            .unwrap_or(Nanos::ZERO);
        for tx in &self.to {
            let _ = tx.send(ToWorker::Finish(now));
        }
        while self.merge.done.iter().any(|d| !d) {
            if !self.next_report() {
                // What the merge holds goes out as it is.
                self.merge.done.fill(true);
            }
            self.merge.emit(out);
        }
        self.merge.emit(out);
        self.to.clear();
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }

    /// The capture counters of all workers, with the reader's own (`reader`: its clock).
    pub(crate) fn stats(&self, reader: &CaptureStats) -> CaptureStats {
        self.merge.stats(reader)
    }

    /// The first and newest stream event time over the workers.
    fn times(&self) -> (Option<Nanos>, Nanos) {
        let first = self.merge.first.iter().flatten().min().copied();
        let last = self.merge.last.iter().max().copied().unwrap_or(Nanos::ZERO);
        (first, last)
    }
}

impl Drop for Sharded {
    fn drop(&mut self) {
        // Workers end when their queue closes (a run that failed half-way).
        self.to.clear();
        while self.reports.try_recv().is_ok() {}
        for h in self.handles.drain(..) {
            // A worker blocked on a full report queue is freed as reports are read.
            while !h.is_finished() {
                while self.reports.try_recv().is_ok() {}
                std::thread::yield_now();
            }
            let _ = h.join();
        }
    }
}

/// The input loop's side of a sharded run: the reader's clock, the workers and the outputs.
pub(crate) struct ShardedDecode<'a> {
    /// Its clock only (`capture::clock`): the workers do the rest.
    pub(crate) clock: &'a mut Reassembler,
    pub(crate) sh: &'a mut Sharded,
    pub(crate) pipeline: &'a mut Pipeline,
}

impl ShardedDecode<'_> {
    fn sync_times(&mut self) {
        let (first, last) = self.sh.times();
        let p = &mut *self.pipeline;
        p.first_ts = match (p.first_ts, first) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        p.last_ts = p.last_ts.max(last);
    }

    /// The capture counters, all workers and the reader together.
    fn stats(&self) -> CaptureStats {
        self.sh.stats(self.clock.stats())
    }
}

impl crate::decode::Decode for ShardedDecode<'_> {
    fn time_of(&mut self, ts: Nanos) -> Nanos {
        self.clock.time_of(ts)
    }

    #[inline]
    fn packet(&mut self, pkt: &Packet<'_>) {
        self.sh.packet(pkt, &mut self.pipeline.out);
    }

    fn out(&mut self) -> &mut Fanout {
        &mut self.pipeline.out
    }

    fn reached(&mut self, to: Nanos) {
        let p = &mut *self.pipeline;
        p.last_ts = p.last_ts.max(to);
    }

    /// Every packet read so far decoded and its events handed on; the outputs hear of the
    /// end; then every connection ends (see [`Sharded::finish`]).
    fn end(&mut self, source: &str, drops: u64) -> (CaptureStats, u64) {
        self.sh.settle(&mut self.pipeline.out);
        self.tick(source, drops, None, true);
        self.sh.finish(&mut self.pipeline.out);
        self.sync_times();
        (self.stats(), drops + self.sh.queue_drops)
    }

    /// `drops`: the kernel's; those of full queues are added.
    fn tick(&mut self, source: &str, drops: u64, progress: Option<(u64, u64)>, done: bool) {
        self.sync_times();
        let stats = self.stats();
        let drops = drops + self.sh.queue_drops;
        let p = &mut *self.pipeline;
        let t = Tick {
            now: p.last_ts,
            first: p.first_ts,
            health: crate::decode::health(&stats, drops),
            source,
            progress,
            done,
            conns: &self.sh.merge.open,
        };
        if done {
            p.out.end_of_input(&t);
        } else {
            p.out.tick(&t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fanout::tests::Count;

    fn setup(live: Option<usize>) -> Setup {
        Setup {
            workers: 2,
            limits: CaptureLimits::default(),
            dec_limits: DecoderLimits::default(),
            store: decoder::reflection::SchemaStore::new(None),
            keylog: Arc::default(),
            key_files: None,
            messages: false,
            lines: None,
            live,
        }
    }

    /// The packets of a real capture.
    fn packets() -> Vec<(Nanos, u32, Vec<u8>)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/captures/go-midjoin-lo.pcap.gz");
        let mut src = capture::FileSource::open(&path, 16 << 20).expect("open");
        let mut v = Vec::new();
        while let Some(p) = src.next_packet().expect("read") {
            v.push((p.ts, p.linktype, p.data.to_vec()));
        }
        v
    }

    fn feed(sh: &mut Sharded, out: &mut Fanout, pkts: &[(Nanos, u32, Vec<u8>)], rounds: u32) {
        for _ in 0..rounds {
            for (ts, linktype, data) in pkts {
                let p = Packet {
                    ts: *ts,
                    linktype: *linktype,
                    data,
                    orig_len: u32::try_from(data.len()).unwrap_or(u32::MAX),
                    interface: 0,
                };
                sh.packet(&p, out);
            }
        }
    }

    /// `rounds` times the packets of `pkts` through `workers` workers to the end: the calls
    /// that ended, the packets decoded, those dropped, and how long the end took.
    fn run(
        workers: usize,
        live: Option<usize>,
        pkts: &[(Nanos, u32, Vec<u8>)],
        rounds: u32,
    ) -> (u64, u64, u64, Duration) {
        let mut sh = Sharded::start(Setup {
            workers,
            ..setup(live)
        })
        .expect("start");
        let mut out = Fanout::default();
        out.push(Count::default());
        feed(&mut sh, &mut out, pkts, rounds);
        let t = std::time::Instant::now();
        sh.finish(&mut out);
        let took = t.elapsed();
        let calls = out.get_mut::<Count>().map_or(0, |c| c.0);
        let decoded = sh.stats(&CaptureStats::default()).packets;
        (calls, decoded, sh.queue_drops, took)
    }

    #[test]
    fn a_live_capture_drops_at_a_slow_worker_counts_it_and_still_stops_at_once() {
        let pkts = packets();
        SLOW_MS.store(100, std::sync::atomic::Ordering::Relaxed);
        // A kernel buffer of 16 KiB: half of it holds 77 ms of this capture's 106 kB/s, less
        // than the worker's 100 ms a batch.
        let (_, decoded, dropped, took) = run(2, Some(16 << 10), &pkts, 4);
        SLOW_MS.store(0, std::sync::atomic::Ordering::Relaxed);
        assert!(took < Duration::from_secs(3), "{took:?}");
        assert!(dropped > 0, "a worker 100 ms a batch keeps up with nothing");
        // Every packet is either decoded or counted as dropped.
        assert_eq!(decoded + dropped, 4 * pkts.len() as u64);
    }

    #[test]
    fn a_live_reader_waits_while_half_the_kernel_buffer_holds_what_arrives() {
        let mut l = LiveWait::new(32 << 20, 2);
        // Nothing measured yet: as long as it may.
        assert_eq!(l.budget(0), LIVE_WAIT_MAX);
        l.rate = 100e6;
        assert_eq!(l.budget(0).as_millis(), 167);
        l.rate = 1.2e9;
        assert_eq!(l.budget(0), LIVE_WAIT_MIN);
        l.rate = 1e3;
        assert_eq!(l.budget(0), LIVE_WAIT_MAX);
        // A stalled worker is not waited for.
        l.stalled[1] = true;
        assert_eq!(l.budget(1), Duration::ZERO);
    }

    #[test]
    fn a_replay_waits_for_its_workers_and_loses_nothing() {
        let pkts = packets();
        let (one, _, _, _) = run(1, None, &pkts, 1);
        let (three, decoded, dropped, _) = run(3, None, &pkts, 1);
        assert_eq!(dropped, 0);
        assert_eq!(decoded, pkts.len() as u64);
        assert!(one > 500, "{one}");
        assert_eq!(one, three);
    }
}
