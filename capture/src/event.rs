//! What the capture layer emits: ordered byte-stream events per connection direction.

use std::net::{IpAddr, SocketAddr};

pub use types::{ConnId, Dir, Nanos};

/// How the client and server roles of a connection were decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleSource {
    /// The client sent the SYN we saw.
    Syn,
    /// We saw only the server's SYN-ACK.
    SynAck,
    /// No handshake seen (capture joined mid-connection): the lower port is taken as the server.
    /// The next layer may know better (an HTTP/2 preface travels client to server).
    Guess,
}

/// The two ends of a connection as first decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// Client address.
    pub client: SocketAddr,
    /// Server address.
    pub server: SocketAddr,
    /// How the roles were decided.
    pub roles: RoleSource,
}

/// Why a direction of a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Its FIN was reached in sequence.
    Fin,
    /// Either side sent RST.
    Rst,
    /// No packet for `idle_timeout`.
    Idle,
    /// Evicted to stay within `max_connections`.
    Evicted,
    /// A new SYN opened a new connection on the same 4-tuple.
    Reused,
    /// The capture ended with the connection open.
    EndOfCapture,
}

/// Per-direction counters, reported when the direction closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HalfStats {
    /// Segments seen in this direction (including retransmissions and bare ACKs).
    pub packets: u64,
    /// Payload bytes delivered in order.
    pub bytes: u64,
    /// Gaps in this direction.
    pub gaps: u64,
    /// Bytes lost to those gaps.
    pub gap_bytes: u64,
}

/// One thing that happened to a connection direction, at a packet's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind<'a> {
    /// A connection starts being tracked (sent once, with `dir` = `ToServer`).
    Open(ConnInfo),
    /// The next bytes of the direction, in order. Borrowed from the packet when it arrived in
    /// order, from the reorder buffer otherwise.
    Data(&'a [u8]),
    /// `len` bytes of the direction will never be delivered; the next `Data` follows them.
    Gap {
        /// Bytes skipped.
        len: u64,
    },
    /// The direction ended; no event for it follows.
    Close {
        /// Why.
        reason: CloseReason,
        /// What the direction carried.
        stats: HalfStats,
    },
}

/// A byte-stream event of one connection direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamEvent<'a> {
    /// Connection.
    pub conn: ConnId,
    /// Direction within it.
    pub dir: Dir,
    /// Time of the packet that caused the event.
    pub ts: Nanos,
    /// What happened.
    pub kind: EventKind<'a>,
}

/// Receives stream events. Events borrow packet bytes, so they are handed to a sink rather than
/// queued: the in-order path copies nothing.
pub trait StreamSink {
    /// Handles one event.
    fn on_event(&mut self, event: StreamEvent<'_>);

    /// A UDP datagram to or from port 53 (DNS: names for the addresses), at `ts`.
    fn on_dns(&mut self, _ts: Nanos, _from: std::net::SocketAddr, _payload: &[u8]) {}
}

impl<F: FnMut(StreamEvent<'_>)> StreamSink for F {
    fn on_event(&mut self, event: StreamEvent<'_>) {
        self(event)
    }
}

/// Builds a socket address from the parts of a segment.
pub(crate) fn sock(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}
