//! The decoding thread's side of the UI: events go out in batches over a bounded channel. When
//! the channel is full the batch is dropped and counted (the count is on screen); decoding
//! never waits for the screen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use decoder::output::{Output, Tick};
use decoder::{AnomalyKind, CallRecord, ConnEvent, ConnId, Nanos, OpenCall, Side, Sink};

/// Events per batch.
const BATCH: usize = 512;
/// A batch goes out at least this often, full or not.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

/// How often the findings are computed again and sent (they walk every method and connection).
const FINDINGS_EVERY: Duration = Duration::from_secs(1);

/// Flags and counters both threads see.
#[derive(Debug, Default)]
pub struct Shared {
    /// Events the UI never got because its channel was full.
    pub dropped: AtomicU64,
    /// Set by the UI (q, Ctrl-C), by SIGTERM/SIGINT/SIGHUP and by a panic: everyone stops.
    pub quit: Arc<AtomicBool>,
    /// Set by the UI (`p`): a replay stops reading until it is cleared.
    pub paused: AtomicBool,
}

impl Shared {
    /// True once anyone asked to stop.
    pub fn quitting(&self) -> bool {
        self.quit.load(Ordering::Relaxed)
    }

    /// True while the user paused.
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }
}

/// A call still open, as the decoder has it now.
#[derive(Debug, Clone)]
pub struct OpenRow {
    /// Connection id.
    pub conn: ConnId,
    /// HTTP/2 stream id.
    pub stream_id: u32,
    /// "/pkg.Service/Method", when read.
    pub method: Option<Arc<str>>,
    /// Client address.
    pub client: SocketAddr,
    /// Server address.
    pub server: SocketAddr,
    /// `:authority`.
    pub authority: Option<Arc<str>>,
    /// Request HEADERS time; `None` when it began before the capture.
    pub start: Option<Nanos>,
    /// `grpc-timeout`.
    pub timeout: Option<Duration>,
    /// Request messages so far.
    pub req_msgs: u64,
    /// Response messages so far.
    pub resp_msgs: u64,
}

impl From<OpenCall<'_>> for OpenRow {
    fn from(c: OpenCall<'_>) -> Self {
        OpenRow {
            conn: c.rec.conn,
            stream_id: c.rec.stream_id,
            method: c.rec.method.clone(),
            client: c.rec.client,
            server: c.rec.server,
            authority: c.rec.authority.clone(),
            start: c.rec.start,
            timeout: c.rec.timeout,
            req_msgs: c.req_msgs,
            resp_msgs: c.resp_msgs,
        }
    }
}

/// Bytes and open streams of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLoad {
    /// Connection id.
    pub id: ConnId,
    /// Payload bytes client to server, server to client.
    pub bytes: [u64; 2],
    /// Calls open on it.
    pub open_streams: u64,
}

/// Where packets come from and how it goes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceStatus {
    /// "replay FILE" or "live IFACE".
    pub source: String,
    /// Bytes read of the current file, and its size (replay).
    pub progress: Option<(u64, u64)>,
    /// The source has ended (replay finished).
    pub done: bool,
    /// Packets seen.
    pub packets: u64,
    /// Packets the kernel or libpcap dropped.
    pub drops: u64,
    /// TCP holes given up.
    pub gaps: u64,
    /// Protocol anomalies of the decoder.
    pub anomalies: u64,
    /// A paced replay: this many times real time (none: as fast as it decodes).
    pub pace: Option<f64>,
}

/// The state of things that change without an event: sent a few times a second.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Latest packet time.
    pub now: Nanos,
    /// First packet time of the capture.
    pub first: Option<Nanos>,
    /// Open calls (at most [`MAX_OPEN_ROWS`], oldest first).
    pub open: Vec<OpenRow>,
    /// All open calls, also those left out of `open`.
    pub open_total: u64,
    /// Connections the decoder tracks (at most [`MAX_CONN_ROWS`], busiest first).
    pub conns: Vec<ConnLoad>,
    /// Source and capture counters.
    pub status: SourceStatus,
}

/// Open calls sent per snapshot.
pub const MAX_OPEN_ROWS: usize = 2_000;
/// Connections sent per snapshot.
pub const MAX_CONN_ROWS: usize = 5_000;

/// What the UI hears.
#[derive(Debug, Clone)]
pub enum UiEvent {
    /// A call ended (with its messages and metadata when the decoder kept them).
    Call(Box<CallRecord>),
    /// A TCP connection started.
    ConnOpened {
        /// Connection id.
        id: ConnId,
        /// Client address.
        client: SocketAddr,
        /// Server address.
        server: SocketAddr,
        /// First packet.
        ts: Nanos,
    },
    /// Both directions of a connection ended.
    ConnClosed {
        /// Connection id.
        id: ConnId,
        /// Payload bytes client to server, server to client, in all.
        bytes: [u64; 2],
    },
    /// A PING's round trip (from the PING to its ACK, as the tap saw them).
    PingRtt {
        /// Connection id.
        conn: ConnId,
        /// The round trip.
        rtt: Duration,
    },
    /// A GOAWAY.
    Goaway {
        /// Connection id.
        conn: ConnId,
        /// Who sent it.
        by: Side,
        /// HTTP/2 error code.
        code: u32,
    },
    /// Open calls, connection load and counters now.
    Snapshot(Box<Snapshot>),
    /// The findings now (docs/findings.md), most severe first.
    Findings(Arc<[decoder::findings::Finding]>),
    /// A DNS answer in the capture named an address.
    Name {
        /// The address.
        addr: std::net::IpAddr,
        /// The name the client asked for.
        name: Arc<str>,
    },
}

/// Sends events from the decoding thread.
#[derive(Debug)]
pub struct Feeder {
    tx: SyncSender<Vec<UiEvent>>,
    batch: Vec<UiEvent>,
    shared: Arc<Shared>,
    last_flush: Instant,
    /// The UI went away, or the input ended: nothing more is sent.
    gone: bool,
    /// A paced replay's factor.
    pace: Option<f64>,
    /// Anomalies seen (for the status line).
    anomalies: u64,
    /// The findings engine (none: off), and when its findings were last sent.
    findings: Option<decoder::findings::Findings>,
    findings_sent: Option<Instant>,
}

/// A feeder and the receiving end, `capacity` batches deep.
pub fn channel(capacity: usize) -> (Feeder, Receiver<Vec<UiEvent>>, Arc<Shared>) {
    let (tx, rx) = sync_channel(capacity);
    let shared = Arc::new(Shared::default());
    let feeder = Feeder {
        tx,
        batch: Vec::with_capacity(BATCH),
        shared: shared.clone(),
        last_flush: Instant::now(),
        gone: false,
        pace: None,
        anomalies: 0,
        findings: None,
        findings_sent: None,
    };
    (feeder, rx, shared)
}

impl Feeder {
    /// `pace`: the factor of real time a paced replay goes at (the status line shows it and
    /// the time left); none for as fast as it decodes.
    pub fn with_pace(mut self, pace: Option<f64>) -> Feeder {
        self.pace = pace;
        self
    }

    /// Queues one event; a full batch goes out at once.
    pub fn push(&mut self, ev: UiEvent) {
        if self.gone {
            return;
        }
        self.batch.push(ev);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// True when a snapshot and a flush are due (a few times a second).
    pub fn due(&self) -> bool {
        !self.gone && self.last_flush.elapsed() >= FLUSH_EVERY
    }

    /// Sends what is queued, or drops and counts it when the UI is behind.
    pub fn flush(&mut self) {
        self.last_flush = Instant::now();
        if self.batch.is_empty() || self.gone {
            return;
        }
        let batch = std::mem::take(&mut self.batch);
        match self.tx.try_send(batch) {
            Ok(()) => self.batch = Vec::with_capacity(BATCH),
            Err(TrySendError::Full(mut b)) => {
                self.shared
                    .dropped
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
                b.clear();
                self.batch = b;
            }
            Err(TrySendError::Disconnected(_)) => self.gone = true,
        }
    }
}

impl Feeder {
    /// Sends the UI what changed without an event (open calls, connection load, counters),
    /// and everything queued.
    fn snapshot(&mut self, t: &Tick<'_>) {
        let mut snap = Snapshot {
            now: t.now,
            first: t.first,
            status: SourceStatus {
                source: t.source.to_owned(),
                progress: t.progress,
                done: t.done,
                packets: t.health.packets,
                drops: t.health.drops,
                gaps: t.health.gaps,
                anomalies: self.anomalies,
                pace: self.pace,
            },
            ..Snapshot::default()
        };
        t.conns.for_each_conn(&mut |c| {
            if !c.is_http() {
                return;
            }
            let open = c.open_calls() as u64;
            snap.open_total += open;
            if snap.conns.len() < MAX_CONN_ROWS {
                snap.conns.push(ConnLoad {
                    id: c.id(),
                    bytes: c.bytes(),
                    open_streams: open,
                });
            }
            if snap.open.len() < MAX_OPEN_ROWS {
                c.for_each_open(|o| {
                    if snap.open.len() < MAX_OPEN_ROWS {
                        snap.open.push(OpenRow::from(o));
                    }
                });
            }
        });
        snap.open
            .sort_by_key(|o| (o.start.unwrap_or(Nanos::ZERO), o.conn, o.stream_id));
        self.push(UiEvent::Snapshot(Box::new(snap)));
        let findings_due = self
            .findings_sent
            .is_none_or(|s| s.elapsed() >= FINDINGS_EVERY)
            || t.done;
        if let Some(f) = self.findings.as_ref().filter(|_| findings_due) {
            let conns = t.conns;
            let report = f.report_open(t.now, |each| {
                conns.for_each_open_call(each);
            });
            self.findings_sent = Some(Instant::now());
            self.push(UiEvent::Findings(report.into()));
        }
        self.flush();
    }

    /// Looks for findings with `findings` and sends them to the UI once a second.
    pub fn with_findings(mut self, findings: Option<decoder::findings::Findings>) -> Feeder {
        self.findings = findings;
        self
    }
}

impl Sink for Feeder {
    fn call_started(&mut self, call: &CallRecord) {
        if let Some(f) = self.findings.as_mut() {
            f.call_started(call);
        }
    }

    fn call_ended(&mut self, call: &CallRecord) {
        if let Some(f) = self.findings.as_mut() {
            f.call_ended(call);
        }
        if !self.gone {
            self.push(UiEvent::Call(Box::new(call.clone())));
        }
    }

    fn dns_name(&mut self, addr: std::net::IpAddr, name: &str) {
        if !self.gone {
            self.push(UiEvent::Name {
                addr,
                name: Arc::from(name),
            });
        }
    }

    fn conn_event(&mut self, conn: ConnId, event: ConnEvent) {
        if let Some(f) = self.findings.as_mut() {
            f.conn_event(conn, event);
        }
        match event {
            // An upgraded connection (h2c) was opened by its ConnEvent::Http1.
            ConnEvent::Http2 {
                client,
                server,
                opened,
                upgraded: false,
            }
            | ConnEvent::Http1 {
                client,
                server,
                opened,
            } => self.push(UiEvent::ConnOpened {
                id: conn,
                client,
                server,
                ts: opened,
            }),
            ConnEvent::Closed {
                bytes, http2: true, ..
            } => self.push(UiEvent::ConnClosed { id: conn, bytes }),
            ConnEvent::Closed { http2: false, .. } => {}
            ConnEvent::Goaway { by, code, .. } => self.push(UiEvent::Goaway { conn, by, code }),
            ConnEvent::Anomaly(AnomalyKind::NotHttp2) => {}
            ConnEvent::Anomaly(_) => self.anomalies += 1,
            ConnEvent::PingRtt { rtt, .. } => self.push(UiEvent::PingRtt { conn, rtt }),
            ConnEvent::Ping(_)
            | ConnEvent::LargeWindow { .. }
            | ConnEvent::Setting { .. }
            | ConnEvent::NotGrpc(_)
            | ConnEvent::Http2 { upgraded: true, .. } => {}
        }
    }
}

impl Output for Feeder {
    fn tick(&mut self, t: &Tick<'_>) {
        if self.due() {
            self.snapshot(t);
        }
    }

    /// The last snapshot: the calls still open stay open in the UI rather than becoming
    /// unfinished when the capture layer is finished. Then the UI hears nothing more.
    fn end_of_input(&mut self, t: &Tick<'_>) {
        if !self.gone {
            self.snapshot(t);
            self.gone = true;
        }
    }
}
