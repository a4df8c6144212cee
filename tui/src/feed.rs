//! The decoding thread's side of the UI: events go out in batches over a bounded channel. When
//! the channel is full the batch is dropped and counted (the count is on screen); decoding
//! never waits for the screen.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use decoder::{CallRecord, Nanos, OpenCall, Side};

/// Events per batch.
const BATCH: usize = 512;
/// A batch goes out at least this often, full or not.
const FLUSH_EVERY: Duration = Duration::from_millis(50);

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
    pub conn: u64,
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
    pub id: u64,
    /// Payload bytes client to server, server to client.
    pub bytes: [u64; 2],
    /// Calls open on it.
    pub open_streams: u64,
}

/// Where packets come from and how it goes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Replay speed, as the user gave it.
    pub speed: String,
}

/// The state of things that change without an event: sent a few times a second.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Latest packet time.
    pub now: Nanos,
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
        id: u64,
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
        id: u64,
        /// Payload bytes client to server, server to client, in all.
        bytes: [u64; 2],
    },
    /// A GOAWAY.
    Goaway {
        /// Connection id.
        conn: u64,
        /// Who sent it.
        by: Side,
        /// HTTP/2 error code.
        code: u32,
    },
    /// Open calls, connection load and counters now.
    Snapshot(Box<Snapshot>),
}

/// Sends events from the decoding thread.
#[derive(Debug)]
pub struct Feeder {
    tx: SyncSender<Vec<UiEvent>>,
    batch: Vec<UiEvent>,
    shared: Arc<Shared>,
    last_flush: Instant,
    /// The UI went away: nothing more is sent.
    gone: bool,
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
    };
    (feeder, rx, shared)
}

impl Feeder {
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
