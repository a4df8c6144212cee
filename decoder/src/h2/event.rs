//! What the HTTP/2 layer reports: frames turned into events, with the side that sent them and
//! the packet time. No gRPC rule is applied here; the call tracker reads these.

use types::{Dir, Nanos};

use super::frame::head::{ErrorCode, Head, SettingId};
use crate::anomaly::AnomalyKind;
use crate::hpack::HeaderList;

/// Which end of the connection (RFC 9113 section 3: the client sends the preface and opens
/// odd-numbered streams).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client (the gRPC caller).
    Client,
    /// The server.
    Server,
}

impl Side {
    /// "client" or "server".
    pub fn name(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

/// One thing that happened on the connection.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The bytes are HTTP/2 (sent once per connection).
    Detected,
    /// The bytes told who the client is: the capture layer's direction `client` carries the
    /// client's bytes (sent once, when the roles are settled).
    Roles {
        /// The direction of the client's bytes.
        client: Dir,
    },
    /// A complete header block (HEADERS + CONTINUATION), decoded.
    Headers {
        /// Stream.
        stream: u32,
        /// Sender.
        from: Side,
        /// END_STREAM was set.
        end_stream: bool,
        /// When the HEADERS frame began.
        ts: Nanos,
        /// The fields (names or values from before the capture are `Text::Unknown`).
        list: &'a HeaderList,
    },
    /// Payload bytes of a DATA frame, as they arrive (padding removed).
    Data {
        /// Stream.
        stream: u32,
        /// Sender.
        from: Side,
        /// When these bytes arrived.
        ts: Nanos,
        /// The bytes.
        bytes: &'a [u8],
        /// Where they lie in the frame: the offset of `bytes[0]` among the frame's data bytes,
        /// and how many data bytes the frame carries.
        at: (u32, u32),
    },
    /// A DATA frame with END_STREAM ended.
    DataEndStream {
        /// Stream.
        stream: u32,
        /// Sender.
        from: Side,
        /// When the frame began.
        ts: Nanos,
    },
    /// RST_STREAM.
    Reset {
        /// Stream.
        stream: u32,
        /// Sender.
        from: Side,
        /// Error code.
        code: ErrorCode,
        /// When the frame began.
        ts: Nanos,
    },
    /// GOAWAY.
    GoAway {
        /// Sender.
        from: Side,
        /// Highest stream id the sender processed.
        last_stream: u32,
        /// Error code.
        code: ErrorCode,
        /// When the frame began.
        ts: Nanos,
        /// Its debug data (gRPC servers say `too_many_pings` there).
        debug: &'a [u8],
    },
    /// One SETTINGS parameter (sent for each; ACKs are not reported).
    Setting {
        /// Sender.
        from: Side,
        /// Identifier.
        id: SettingId,
        /// Value.
        value: u32,
    },
    /// A PING.
    Ping {
        /// Sender.
        from: Side,
        /// It answers another PING.
        ack: bool,
        /// Its opaque data (an answer carries the data of the PING it answers).
        data: [u8; 8],
        /// When the frame began.
        ts: Nanos,
    },
    /// WINDOW_UPDATE.
    WindowUpdate {
        /// Stream (0: the connection).
        stream: u32,
        /// Sender.
        from: Side,
        /// Credit.
        increment: u32,
        /// When the frame began.
        ts: Nanos,
    },
    /// Bytes sent by `from` were lost: inside one DATA frame of `stream` (only that stream's
    /// counts suffer), or (`stream: None`) where frames could not be followed.
    Lost {
        /// Sender of the lost bytes.
        from: Side,
        /// The stream whose DATA lost bytes, when it is known.
        stream: Option<u32>,
    },
    /// An anomaly (counted, decoding goes on).
    Anomaly(AnomalyKind),
    /// A whole frame, after the events it gave (only when asked for:
    /// [`Connection::log_frames`](super::Connection::log_frames)).
    Frame(FrameSeen<'a>),
}

/// A frame as it was seen: for a view of the frames in order.
#[derive(Debug, Clone, Copy)]
pub struct FrameSeen<'a> {
    /// Sender.
    pub from: Side,
    /// When its first byte arrived.
    pub ts: Nanos,
    /// Its header.
    pub head: Head,
    /// DATA: the data bytes (the payload less padding).
    pub data_len: u32,
    /// The payload of a frame other than DATA (empty when it was skipped: too large, or of an
    /// unknown type).
    pub payload: &'a [u8],
    /// What became of a header block this frame ended.
    pub block: Block<'a>,
}

/// The header block a frame ended, if any.
#[derive(Debug, Clone, Copy)]
pub enum Block<'a> {
    /// The frame ended no header block.
    None,
    /// Decoded into this list.
    Decoded(&'a HeaderList),
    /// It did not decode (the HPACK error was counted).
    Failed,
}

/// Receives HTTP/2 events.
pub trait EventSink {
    /// Handles one event.
    fn h2_event(&mut self, event: Event<'_>);
}
