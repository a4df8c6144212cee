//! What the call tracker hands on: call records and connection events, to a [`Sink`].

use std::net::SocketAddr;

use types::{ConnId, Nanos};

use super::record::CallRecord;
use crate::anomaly::AnomalyKind;
use crate::grpc::msg::Body;
use crate::h2::event::Side;
use crate::tls::session::{TlsInfo, TlsState};

/// Connection-level events other than calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnEvent {
    /// The connection is HTTP/2 (sent once).
    Http2 {
        /// Client address (as known when the bytes were recognised).
        client: SocketAddr,
        /// Server address.
        server: SocketAddr,
        /// When the capture layer began tracking the connection.
        opened: Nanos,
        /// It began as HTTP/1.1 and switched by `Upgrade: h2c` ([`ConnEvent::Http1`] came
        /// first).
        upgraded: bool,
    },
    /// The connection is HTTP/1.1 carrying requests (sent once, when its first request
    /// began it).
    Http1 {
        /// Client address.
        client: SocketAddr,
        /// Server address.
        server: SocketAddr,
        /// When the capture layer began tracking the connection.
        opened: Nanos,
    },
    /// The TCP connection ended (sent once, before its open calls end; not sent for a
    /// connection already declared not HTTP/2).
    Closed {
        /// Payload bytes each way, indexed by `types::Dir::index` (the capture's naming).
        bytes: [u64; 2],
        /// It was recognised as HTTP/2 or as HTTP/1.1 (false: it ended before its bytes said
        /// either way, or they were neither).
        http2: bool,
        /// It is TLS (reported by [`Sink::tls`] just before).
        tls: bool,
    },
    /// A PING (not an ACK) from a side.
    Ping(Side),
    /// A GOAWAY from a side.
    Goaway {
        /// Sender.
        by: Side,
        /// HTTP/2 error code.
        code: u32,
        /// Last stream id the sender processed.
        last_stream: u32,
        /// Its debug data says `too_many_pings` (the gRPC servers' word for a client whose
        /// keepalive PINGs came too often).
        too_many_pings: bool,
    },
    /// A receiver made its window so large (1 GiB or more: the connection's, or the initial
    /// stream window) that flow control cannot push back on a slow consumer (once per side).
    LargeWindow {
        /// The receiver.
        by: Side,
        /// The window, bytes.
        bytes: u64,
    },
    /// A PING was answered: the time from the PING to its ACK, as the tap saw them (the
    /// network round trip beyond the tap, and the peer's answer time).
    PingRtt {
        /// Who sent the PING.
        by: Side,
        /// Round trip.
        rtt: std::time::Duration,
    },
    /// A SETTINGS parameter a side announced (RFC 9113 6.5.2; unknown ids too, such as
    /// gRPC C-core's 0xfe03).
    Setting {
        /// Sender.
        by: Side,
        /// Identifier.
        id: u16,
        /// Value.
        value: u32,
    },
    /// An anomaly.
    Anomaly(AnomalyKind),
    /// A request that is not gRPC (by its content-type): not tracked as a call.
    NotGrpc(super::headers::RequestKind),
}

/// Receives what the decoder finds. Every output of grpctap (the summary, JSON Lines, the
/// exporter, the terminal UI) implements it; calls reach a sink only once their method has
/// been inferred where it can be.
pub trait Sink {
    /// A call began (request headers seen).
    fn call_started(&mut self, _call: &CallRecord) {}
    /// A call ended, or was still open at the end.
    fn call_ended(&mut self, call: &CallRecord);
    /// Something about the connection.
    fn conn_event(&mut self, _conn: ConnId, _event: ConnEvent) {}
    /// The connection is TLS: what is known of it, and how far decryption got (sent once,
    /// when it closes or the capture ends).
    fn tls(&mut self, _conn: ConnId, _info: &TlsInfo, _state: TlsState) {}
    /// A whole gRPC message of `len` bytes went from `from` (counted by the call too; this is
    /// for per-message statistics).
    fn message(&mut self, _conn: ConnId, _from: Side, _len: u32) {}
    /// A whole message as it is seen, when the decoder limits ask for it
    /// (`CallLimits::stream_bodies`): `call` is the call as known so far, `index` the
    /// message's number among those of its direction seen (from 0), `body` its bytes (cut
    /// at the per-message bound).
    fn message_body(&mut self, _call: &CallRecord, _from: Side, _index: u64, _body: &Body) {}

    /// A DNS answer in the capture named `addr` `name` (what a client resolved to reach it).
    fn dns_name(&mut self, _addr: std::net::IpAddr, _name: &str) {}

    /// An HTTP/2 frame of connection `conn`, after what it did reached the sink (only from a
    /// decoder asked to report frames: `ConnDecoder::log_frames`).
    fn frame(&mut self, _conn: ConnId, _frame: &crate::h2::event::FrameSeen<'_>) {}
}

/// A sink that keeps nothing (fuzzing, benchmarks).
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

impl Sink for NullSink {
    fn call_ended(&mut self, _call: &CallRecord) {}
}
