//! One connection: the two byte streams of a TCP connection in, gRPC calls out.
//!
//! Each direction has a streaming framer. DATA payload goes straight to the stream's message
//! counter, never buffered; other frames are buffered up to a bound; HEADERS + CONTINUATION are
//! assembled and decoded by that direction's HPACK decoder. When the capture joined mid-way or
//! bytes were lost, the framer hunts for the next plausible frame boundary and goes on.
//!
//! Roles: the capture layer's client/server guess is corrected from the bytes: the direction
//! that carries the preface or request headers (`:method`, `:path`) is the client's, the one
//! that carries `:status` the server's.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::frame::{self, HEADER_LEN, Head, PREFACE, flag, kind, setting};
use super::msg::MsgParser;
use crate::grpc::{self, Code};
use crate::hpack::{self, HeaderList, HpackLimits, Text};

/// Nanoseconds since the Unix epoch, from packet timestamps.
pub type Nanos = u64;

/// Bounds of one connection decoder.
#[derive(Debug, Clone, Copy)]
pub struct DecoderLimits {
    /// Largest non-DATA frame payload buffered; larger ones are skipped (and counted).
    pub max_buffered_frame: usize,
    /// Largest header block (HEADERS + CONTINUATION).
    pub max_header_block: usize,
    /// Calls tracked at once per connection.
    pub max_streams: usize,
    /// Bytes searched for a frame boundary before the oldest are dropped.
    pub hunt_window: usize,
    /// Bytes a direction may carry without any plausible HTTP/2 frame before the connection is
    /// declared not HTTP/2.
    pub detect_bytes: u64,
    /// HPACK bounds.
    pub hpack: HpackLimits,
    /// Keep each call's metadata (bounded, secrets redacted) in its record.
    pub capture_metadata: bool,
    /// Keep message bytes in call records: up to this many messages each way per call (0: none).
    pub bodies_per_call: usize,
    /// Bytes kept of one message.
    pub body_bytes: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        DecoderLimits {
            max_buffered_frame: 1 << 20,
            max_header_block: 1 << 20,
            max_streams: 100_000,
            hunt_window: 256 << 10,
            detect_bytes: 256 << 10,
            hpack: HpackLimits::default(),
            capture_metadata: false,
            bodies_per_call: 0,
            body_bytes: 4 << 20,
        }
    }
}

/// Which side sent something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The gRPC client.
    Client,
    /// The gRPC server.
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

/// How sure the method name is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confidence {
    /// From the `:path` header.
    Exact,
    /// From fitting the messages to a schema.
    Inferred,
    /// `:path` was lost (a header table entry from before the capture, or lost bytes).
    Unknown,
}

/// Where the effective status came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSource {
    /// `grpc-status` in trailers after response headers.
    Trailers,
    /// `grpc-status` in a trailers-only response.
    TrailersOnly,
    /// An HTTP status other than 200 without `grpc-status`.
    HttpStatus,
    /// The server ended the stream without trailers.
    NoTrailers,
    /// RST_STREAM, mapped by its error code.
    Reset,
    /// A reset at or after the `grpc-timeout` deadline.
    Deadline,
    /// The stream was above a GOAWAY's last stream id: never processed.
    Goaway,
    /// The TCP connection closed with the call open.
    ConnectionClosed,
    /// Still open when the capture ended (no status).
    Unfinished,
    /// The stream ended, but its `grpc-status` was a header table entry from before the capture
    /// (no status: it cannot be known).
    HpackUnknown,
}

impl StatusSource {
    /// Name used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            StatusSource::Trailers => "trailers",
            StatusSource::TrailersOnly => "trailers_only",
            StatusSource::HttpStatus => "http_status",
            StatusSource::NoTrailers => "no_trailers",
            StatusSource::Reset => "reset",
            StatusSource::Deadline => "deadline",
            StatusSource::Goaway => "goaway",
            StatusSource::ConnectionClosed => "connection_closed",
            StatusSource::Unfinished => "unfinished",
            StatusSource::HpackUnknown => "hpack_unknown",
        }
    }
}

/// The four gRPC call types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CallType {
    /// One request, one response.
    Unary,
    /// Many requests, one response.
    ClientStream,
    /// One request, many responses.
    ServerStream,
    /// Both directions stream.
    BidiStream,
}

impl CallType {
    /// Name used in JSON and Prometheus (`grpc_type`).
    pub fn name(self) -> &'static str {
        match self {
            CallType::Unary => "unary",
            CallType::ClientStream => "client_stream",
            CallType::ServerStream => "server_stream",
            CallType::BidiStream => "bidi_stream",
        }
    }
}

/// An RST_STREAM that ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// Who sent it.
    pub by: Side,
    /// HTTP/2 error code.
    pub code: u32,
}

/// Everything known about one call. Sent when it starts (partly filled) and when it ends.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The connection (the caller's id).
    pub conn: u64,
    /// HTTP/2 stream id.
    pub stream_id: u32,
    /// Client address.
    pub client: SocketAddr,
    /// Server address.
    pub server: SocketAddr,
    /// "/pkg.Service/Method".
    pub method: Option<Arc<str>>,
    /// How sure `method` is.
    pub method_confidence: Confidence,
    /// `:authority`.
    pub authority: Option<Arc<str>>,
    /// Request `content-type`.
    pub content_type: Option<Arc<str>>,
    /// `user-agent`.
    pub user_agent: Option<Arc<str>>,
    /// First packet of the request HEADERS; `None` if the call began before the capture.
    pub start: Option<Nanos>,
    /// The packet that ended the stream.
    pub end: Option<Nanos>,
    /// When the response headers came (`None` for a trailers-only response).
    pub response_headers: Option<Nanos>,
    /// When the first response message began.
    pub first_response: Option<Nanos>,
    /// When the client half-closed.
    pub client_end: Option<Nanos>,
    /// `grpc-timeout`.
    pub timeout: Option<Duration>,
    /// Request messages.
    pub req_msgs: u64,
    /// Response messages.
    pub resp_msgs: u64,
    /// Request message bytes (after the 5-byte prefixes).
    pub req_bytes: u64,
    /// Response message bytes.
    pub resp_bytes: u64,
    /// Request messages with the compressed flag.
    pub req_compressed: u64,
    /// Response messages with the compressed flag.
    pub resp_compressed: u64,
    /// Request `grpc-encoding`.
    pub req_encoding: Option<Arc<str>>,
    /// Response `grpc-encoding`.
    pub resp_encoding: Option<Arc<str>>,
    /// HTTP `:status`.
    pub http_status: Option<u16>,
    /// `grpc-status` as it came on the wire.
    pub grpc_status: Option<u32>,
    /// `grpc-message`, percent-decoded.
    pub grpc_message: Option<String>,
    /// Effective status (inferred when the wire has none); `None` while unfinished.
    pub status: Option<Code>,
    /// Which rule gave `status`.
    pub status_source: StatusSource,
    /// The RST_STREAM that ended the call.
    pub reset: Option<Reset>,
    /// Call type from message counts and half-close timing.
    pub call_type: CallType,
    /// Bytes of this call were lost (capture gap): counts are lower bounds.
    pub lost_bytes: bool,
    /// Metadata, when the decoder keeps it.
    pub metadata: Option<Box<crate::metadata::Metadata>>,
    /// The trace id of a W3C `traceparent` request header (32 lowercase hex digits).
    pub trace_id: Option<Arc<str>>,
    /// Request messages, when the decoder keeps them (`bodies_per_call`).
    pub requests: Vec<super::msg::Body>,
    /// Response messages, likewise.
    pub responses: Vec<super::msg::Body>,
    /// `grpc-status-details-bin` (a serialized google.rpc.Status), kept with the bodies.
    pub status_details: Option<Vec<u8>>,
}

impl CallRecord {
    /// A blank record for stream `stream_id` of connection `conn`, as request HEADERS
    /// seen at `start` (or `None`: the call began before the capture) would open it.
    pub fn new(
        conn: u64,
        stream_id: u32,
        client: SocketAddr,
        server: SocketAddr,
        start: Option<Nanos>,
    ) -> Self {
        Self {
            conn,
            stream_id,
            client,
            server,
            method: None,
            method_confidence: Confidence::Unknown,
            authority: None,
            content_type: None,
            user_agent: None,
            start,
            end: None,
            response_headers: None,
            first_response: None,
            client_end: None,
            timeout: None,
            req_msgs: 0,
            resp_msgs: 0,
            req_bytes: 0,
            resp_bytes: 0,
            req_compressed: 0,
            resp_compressed: 0,
            req_encoding: None,
            resp_encoding: None,
            http_status: None,
            grpc_status: None,
            grpc_message: None,
            status: None,
            status_source: StatusSource::Unfinished,
            reset: None,
            call_type: CallType::Unary,
            lost_bytes: false,
            metadata: None,
            trace_id: None,
            requests: Vec::new(),
            responses: Vec::new(),
            status_details: None,
        }
    }

    /// Latency: request HEADERS to the end of the stream, when both are known.
    pub fn duration(&self) -> Option<Duration> {
        Some(Duration::from_nanos(self.end?.checked_sub(self.start?)?))
    }
}

/// A call in progress, seen through [`ConnDecoder::for_each_open`].
#[derive(Debug, Clone, Copy)]
pub struct OpenCall<'a> {
    /// The record so far (message counts in it are filled only when the call ends).
    pub rec: &'a CallRecord,
    /// Request messages so far.
    pub req_msgs: u64,
    /// Response messages so far.
    pub resp_msgs: u64,
}

/// A protocol anomaly: counted and shown, never fatal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// The connection carries no HTTP/2 (checked once per connection).
    NotHttp2,
    /// Bytes skipped to find a frame boundary (joined mid-way or after a gap).
    Resync,
    /// A frame longer than we buffer; skipped.
    FrameTooLarge,
    /// A header block did not decode; the direction's HPACK table was forgotten.
    HpackError,
    /// A header block used table entries from before the capture.
    HpackUnknownIndex,
    /// HEADERS without END_HEADERS not followed by CONTINUATION.
    BrokenContinuation,
    /// Padding longer than the frame.
    BadPadding,
    /// More calls at once than `max_streams`.
    StreamLimit,
    /// Bytes of the connection were lost inside a frame.
    GapInFrame,
    /// Bytes were lost where frames could not be followed.
    GapLostFrames,
}

impl AnomalyKind {
    /// Name used in summaries and metrics labels.
    pub fn name(self) -> &'static str {
        match self {
            AnomalyKind::NotHttp2 => "not_http2",
            AnomalyKind::Resync => "resync",
            AnomalyKind::FrameTooLarge => "frame_too_large",
            AnomalyKind::HpackError => "hpack_error",
            AnomalyKind::HpackUnknownIndex => "hpack_unknown_index",
            AnomalyKind::BrokenContinuation => "broken_continuation",
            AnomalyKind::BadPadding => "bad_padding",
            AnomalyKind::StreamLimit => "stream_limit",
            AnomalyKind::GapInFrame => "gap_in_frame",
            AnomalyKind::GapLostFrames => "gap_lost_frames",
        }
    }
}

/// Connection-level events other than calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnEvent {
    /// The connection is HTTP/2 (sent once).
    Http2,
    /// A PING (not an ACK) from a side.
    Ping(Side),
    /// A GOAWAY from a side.
    Goaway {
        /// Sender.
        by: Side,
        /// Error code.
        code: u32,
        /// Last stream id the sender processed.
        last_stream: u32,
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
}

/// Receives what a connection decoder finds.
pub trait CallSink {
    /// A call began (request headers seen).
    fn call_started(&mut self, call: &CallRecord);
    /// A call ended, or was still open at the end.
    fn call_ended(&mut self, call: &CallRecord);
    /// Something about the connection.
    fn conn_event(&mut self, conn: u64, event: ConnEvent);
    /// A whole gRPC message of `len` bytes went from `from` (counted by the call too; this is
    /// for per-message statistics).
    fn message(&mut self, _from: Side, _len: u32) {}
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting the client preface; `usize` bytes of it matched.
    Preface(usize),
    /// Reading a frame header.
    Header,
    /// Reading a frame's payload.
    Payload,
    /// Looking for a frame boundary.
    Hunting,
    /// Not HTTP/2, or given up: bytes are ignored.
    Dead,
}

/// One direction's framer.
#[derive(Debug)]
struct DirState {
    state: State,
    head_buf: [u8; HEADER_LEN],
    head_len: usize,
    head: Head,
    /// Payload bytes of the current frame still to come.
    remaining: u32,
    /// DATA: the pad-length byte is still to come.
    need_pad_len: bool,
    /// DATA: data bytes (before padding) still to come.
    data_left: u32,
    /// The current frame's payload is being skipped.
    skipping: bool,
    /// Buffered payload of the current non-DATA frame.
    buf: Vec<u8>,
    /// When the current frame's first byte arrived.
    frame_ts: Nanos,
    hunt: Vec<u8>,
    /// Bytes seen while no frame was ever recognised.
    unsynced_bytes: u64,
    synced_once: bool,
    hpack: hpack::Decoder,
    /// Header block being assembled: (HEADERS head, first frame time, fragments).
    block: Option<(Head, Nanos)>,
    block_buf: Vec<u8>,
    /// SETTINGS_MAX_FRAME_SIZE the receiver announced: frames in this direction stay below.
    max_frame: u32,
}

impl DirState {
    fn new(state: State, limits: &DecoderLimits) -> DirState {
        DirState {
            state,
            head_buf: [0; HEADER_LEN],
            head_len: 0,
            head: Head {
                len: 0,
                kind: 0,
                flags: 0,
                stream: 0,
            },
            remaining: 0,
            need_pad_len: false,
            data_left: 0,
            skipping: false,
            buf: Vec::new(),
            frame_ts: 0,
            hunt: Vec::new(),
            unsynced_bytes: 0,
            synced_once: false,
            hpack: hpack::Decoder::new(limits.hpack),
            block: None,
            block_buf: Vec::new(),
            max_frame: 16_384,
        }
    }
}

/// A call in progress.
#[derive(Debug)]
struct Call {
    rec: CallRecord,
    req: MsgParser,
    resp: MsgParser,
    resp_headers: bool,
    /// Started before the capture: message counts are not trusted.
    partial: bool,
    /// The call type came from a schema: keep it, infer nothing.
    typed: bool,
}

/// Decodes one TCP connection.
#[derive(Debug)]
pub struct ConnDecoder {
    id: u64,
    client: SocketAddr,
    server: SocketAddr,
    limits: DecoderLimits,
    /// `dirs[0]` carries the bytes the capture layer called client-to-server.
    dirs: [DirState; 2],
    /// Index of the direction that really carries client-to-server bytes.
    client_dir: usize,
    /// Roles are settled (handshake seen, or the bytes told).
    roles_settled: bool,
    is_h2: bool,
    /// Stream ids come off the wire: a seeded hash (and a bound on entries) keeps a hostile
    /// peer from making lookups slow.
    calls: HashMap<u32, Call, foldhash::fast::RandomState>,
    /// Highest stream id a server GOAWAY said it processed.
    goaway_last: Option<u32>,
    /// The connection was seen from its start: every call's request headers were seen.
    seen_from_start: bool,
    /// Lowest stream id whose request headers we saw: streams below it may have begun before
    /// the capture, streams above it that we do not track have ended.
    first_request: Option<u32>,
    list: HeaderList,
    strings: Interner,
    schemas: Option<Arc<crate::schema::Schemas>>,
}

/// The header fields call tracking reads, found in one pass over a header list.
#[derive(Debug, Default)]
struct Wanted<'a> {
    /// `:method` or `:path` present: request headers.
    request: bool,
    path: Option<Text<'a>>,
    status: Option<&'a [u8]>,
    authority: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    user_agent: Option<&'a [u8]>,
    encoding: Option<&'a [u8]>,
    timeout: Option<&'a [u8]>,
    grpc_status: Option<&'a [u8]>,
    grpc_message: Option<&'a [u8]>,
    traceparent: Option<&'a [u8]>,
    status_details: Option<&'a [u8]>,
}

impl<'a> Wanted<'a> {
    fn of(list: &'a HeaderList) -> Wanted<'a> {
        let mut w = Wanted::default();
        for f in list.iter() {
            let Text::Bytes(name) = f.name else { continue };
            let v = f.value.bytes();
            match name {
                b":path" => {
                    w.request = true;
                    w.path.get_or_insert(f.value);
                }
                b":method" => w.request = true,
                b":status" => w.status = w.status.or(v),
                b":authority" => w.authority = w.authority.or(v),
                b"content-type" => w.content_type = w.content_type.or(v),
                b"user-agent" => w.user_agent = w.user_agent.or(v),
                b"grpc-encoding" => w.encoding = w.encoding.or(v),
                b"grpc-timeout" => w.timeout = w.timeout.or(v),
                b"grpc-status" => w.grpc_status = w.grpc_status.or(v),
                b"grpc-message" => w.grpc_message = w.grpc_message.or(v),
                b"traceparent" => w.traceparent = w.traceparent.or(v),
                b"grpc-status-details-bin" => w.status_details = w.status_details.or(v),
                _ => {}
            }
        }
        w
    }
}

/// Strings that repeat on every call of a connection (method, authority, user agent, ...),
/// shared instead of allocated per call. Bounded: a peer sending ever-new paths gets fresh
/// strings once the table is full.
#[derive(Debug, Default)]
struct Interner {
    entries: Vec<(Box<[u8]>, Arc<str>)>,
}

impl Interner {
    const MAX: usize = 256;

    fn get(&mut self, b: &[u8]) -> Arc<str> {
        if let Some((_, s)) = self.entries.iter().find(|(k, _)| **k == *b) {
            return s.clone();
        }
        let s: Arc<str> = Arc::from(String::from_utf8_lossy(b));
        if self.entries.len() < Self::MAX {
            self.entries.push((b.into(), s.clone()));
        }
        s
    }
}

impl ConnDecoder {
    /// A decoder for connection `id` between `client` and `server`. `roles_certain`: the
    /// capture saw the handshake, so the client is known and its bytes start at the preface.
    pub fn new(
        id: u64,
        client: SocketAddr,
        server: SocketAddr,
        roles_certain: bool,
        limits: DecoderLimits,
    ) -> ConnDecoder {
        let (c, s) = if roles_certain {
            (State::Preface(0), State::Header)
        } else {
            (State::Hunting, State::Hunting)
        };
        ConnDecoder {
            id,
            client,
            server,
            limits,
            dirs: [DirState::new(c, &limits), DirState::new(s, &limits)],
            client_dir: 0,
            roles_settled: roles_certain,
            is_h2: false,
            calls: HashMap::default(),
            goaway_last: None,
            seen_from_start: roles_certain,
            first_request: None,
            list: HeaderList::default(),
            strings: Interner::default(),
            schemas: None,
        }
    }

    /// Uses `schemas` to type calls of the methods they describe (the `stream` keywords).
    pub fn with_schemas(mut self, schemas: Option<Arc<crate::schema::Schemas>>) -> ConnDecoder {
        self.schemas = schemas;
        self
    }

    /// True once the connection was recognised as HTTP/2.
    pub fn is_http2(&self) -> bool {
        self.is_h2
    }

    /// True when neither direction can carry HTTP/2 any more: the caller may drop the decoder.
    pub fn is_dead(&self) -> bool {
        self.dirs.iter().all(|d| d.state == State::Dead)
    }

    /// Calls in progress.
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// Each call in progress as it stands now: its record so far (method, start, headers) and
    /// the messages counted each way. Cheap: nothing is copied.
    pub fn for_each_open(&self, mut f: impl FnMut(OpenCall<'_>)) {
        for c in self.calls.values() {
            f(OpenCall {
                rec: &c.rec,
                req_msgs: c.req.msgs,
                resp_msgs: c.resp.msgs,
            });
        }
    }

    fn side_of(&self, d: usize) -> Side {
        if d == self.client_dir {
            Side::Client
        } else {
            Side::Server
        }
    }

    /// Bytes of direction `d` (0: what the capture layer called client-to-server).
    pub fn handle_data<S: CallSink + ?Sized>(
        &mut self,
        d: usize,
        ts: Nanos,
        mut data: &[u8],
        sink: &mut S,
    ) {
        while !data.is_empty() {
            match self.dirs[d].state {
                State::Dead => return,
                State::Preface(matched) => {
                    let n = (PREFACE.len() - matched).min(data.len());
                    if data[..n] != PREFACE[matched..matched + n] {
                        self.not_h2(d, sink);
                        return;
                    }
                    data = &data[n..];
                    self.dirs[d].state = if matched + n == PREFACE.len() {
                        State::Header
                    } else {
                        State::Preface(matched + n)
                    };
                    if matched + n == PREFACE.len() {
                        self.settle_roles(d, sink);
                        self.mark_h2(sink);
                    }
                }
                State::Hunting => {
                    data = self.hunt(d, ts, data, sink);
                }
                State::Header => {
                    let dir = &mut self.dirs[d];
                    if dir.head_len == 0 {
                        dir.frame_ts = ts;
                    }
                    let n = (HEADER_LEN - dir.head_len).min(data.len());
                    dir.head_buf[dir.head_len..dir.head_len + n].copy_from_slice(&data[..n]);
                    dir.head_len += n;
                    data = &data[n..];
                    if dir.head_len == HEADER_LEN {
                        dir.head_len = 0;
                        self.start_frame(d, sink);
                    }
                }
                State::Payload => {
                    data = self.payload(d, ts, data, sink);
                }
            }
        }
    }

    /// `len` bytes of direction `d` were lost.
    pub fn handle_gap<S: CallSink + ?Sized>(
        &mut self,
        d: usize,
        _ts: Nanos,
        len: u64,
        sink: &mut S,
    ) {
        let dir = &mut self.dirs[d];
        match dir.state {
            State::Dead => {}
            State::Payload
                if dir.head.kind == kind::DATA
                    && !dir.need_pad_len
                    && u64::from(dir.data_left) >= len =>
            {
                // Inside one DATA frame: only this stream lost bytes (len <= data_left, a u32).
                let len = u32::try_from(len).unwrap_or(dir.data_left);
                dir.data_left -= len;
                dir.remaining -= len;
                let stream = dir.head.stream;
                let side = self.side_of(d);
                if let Some(call) = self.calls.get_mut(&stream) {
                    call.rec.lost_bytes = true;
                    match side {
                        Side::Client => call.req.lost = true,
                        Side::Server => call.resp.lost = true,
                    }
                }
                sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::GapInFrame));
                if self.dirs[d].remaining == 0 {
                    self.dirs[d].state = State::Header;
                }
            }
            _ => {
                // Frames were lost: header blocks among them may have changed the HPACK table,
                // and any open call may have lost messages or its end.
                dir.hpack.forget();
                dir.block = None;
                dir.block_buf.clear();
                dir.buf.clear();
                dir.hunt.clear();
                dir.head_len = 0;
                dir.state = State::Hunting;
                let side = self.side_of(d);
                for call in self.calls.values_mut() {
                    call.rec.lost_bytes = true;
                    match side {
                        Side::Client => call.req.lost = true,
                        Side::Server => call.resp.lost = true,
                    }
                }
                sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::GapLostFrames));
            }
        }
    }

    /// The TCP connection closed (FIN both ways, or RST): open calls end with it.
    pub fn handle_closed<S: CallSink + ?Sized>(&mut self, ts: Nanos, sink: &mut S) {
        let open: Vec<u32> = self.sorted_open();
        for id in open {
            if let Some(mut call) = self.calls.remove(&id) {
                let (code, source) = match deadline_passed(&call.rec, ts) {
                    true => (Code::DEADLINE_EXCEEDED, StatusSource::Deadline),
                    false => (Code::UNAVAILABLE, StatusSource::ConnectionClosed),
                };
                call.rec.status = Some(code);
                call.rec.status_source = source;
                self.end_call(call, ts, sink);
            }
        }
    }

    /// The capture ended (or the connection was expired by the tap): open calls are reported
    /// as unfinished, with no status.
    pub fn finish<S: CallSink + ?Sized>(&mut self, sink: &mut S) {
        let open: Vec<u32> = self.sorted_open();
        for id in open {
            if let Some(mut call) = self.calls.remove(&id) {
                call.rec.status = None;
                call.rec.status_source = StatusSource::Unfinished;
                finalize_counts(&mut call);
                sink.call_ended(&call.rec);
            }
        }
    }

    fn sorted_open(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.calls.keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn mark_h2<S: CallSink + ?Sized>(&mut self, sink: &mut S) {
        if !self.is_h2 {
            self.is_h2 = true;
            sink.conn_event(self.id, ConnEvent::Http2);
        }
    }

    fn not_h2<S: CallSink + ?Sized>(&mut self, d: usize, sink: &mut S) {
        let was_dead = self.is_dead();
        self.dirs[d].state = State::Dead;
        if self.roles_settled && !self.is_h2 {
            // The handshake was seen and the client did not speak HTTP/2: drop both sides.
            self.dirs[1 - d].state = State::Dead;
        }
        if !was_dead && self.is_dead() && !self.is_h2 {
            sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::NotHttp2));
        }
    }

    /// Direction `d` is the client's (preface or request headers seen there).
    fn settle_roles<S: CallSink + ?Sized>(&mut self, d: usize, _sink: &mut S) {
        if !self.roles_settled {
            self.roles_settled = true;
            if d != self.client_dir {
                self.client_dir = d;
                std::mem::swap(&mut self.client, &mut self.server);
            }
        }
    }

    /// Searches for a frame boundary in direction `d`; returns the input not yet consumed.
    fn hunt<'a, S: CallSink + ?Sized>(
        &mut self,
        d: usize,
        ts: Nanos,
        data: &'a [u8],
        sink: &mut S,
    ) -> &'a [u8] {
        let limits = self.limits;
        let dir = &mut self.dirs[d];
        // Joined at the very start after all (handshake missed): the preface tells the roles.
        if dir.hunt.is_empty() && !dir.synced_once && data.starts_with(PREFACE) {
            dir.state = State::Header;
            dir.synced_once = true;
            self.settle_roles(d, sink);
            self.mark_h2(sink);
            return &data[PREFACE.len()..];
        }
        let take = data.len().min(limits.hunt_window);
        dir.hunt.extend_from_slice(&data[..take]);
        let rest = &data[take..];
        let max_len = dir.max_frame.max(16_384);
        match find_boundary(&dir.hunt, max_len) {
            Boundary::At(i) => {
                let skipped = i;
                let buf = std::mem::take(&mut dir.hunt);
                dir.state = State::Header;
                dir.head_len = 0;
                let first = !dir.synced_once;
                dir.synced_once = true;
                if skipped > 0 || !first {
                    sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::Resync));
                }
                self.mark_h2(sink);
                self.handle_data(d, ts, &buf[i..], sink);
                let mut buf = buf;
                buf.clear();
                if self.dirs[d].hunt.is_empty() {
                    self.dirs[d].hunt = buf;
                }
                rest
            }
            Boundary::NeedMore(i) => {
                dir.hunt.drain(..i);
                dir.unsynced_bytes += i as u64;
                self.check_unsynced(d, sink);
                rest
            }
            Boundary::None => {
                let keep = HEADER_LEN - 1;
                let drop = dir.hunt.len().saturating_sub(keep);
                dir.hunt.drain(..drop);
                dir.unsynced_bytes += drop as u64;
                self.check_unsynced(d, sink);
                rest
            }
        }
    }

    fn check_unsynced<S: CallSink + ?Sized>(&mut self, d: usize, sink: &mut S) {
        let dir = &mut self.dirs[d];
        if dir.hunt.len() > self.limits.hunt_window {
            let drop = dir.hunt.len() - self.limits.hunt_window;
            dir.hunt.drain(..drop);
            dir.unsynced_bytes += drop as u64;
        }
        if !self.is_h2 && dir.unsynced_bytes > self.limits.detect_bytes {
            self.not_h2(d, sink);
        }
    }

    fn start_frame<S: CallSink + ?Sized>(&mut self, d: usize, sink: &mut S) {
        let limits = self.limits;
        let dir = &mut self.dirs[d];
        let head = Head::parse(&dir.head_buf);
        if !self.is_h2 && !Head::plausible(&dir.head_buf, 1 << 24) {
            // The very first frame after the preface (or of the server) must look like one.
            self.not_h2(d, sink);
            return;
        }
        dir.head = head;
        dir.remaining = head.len;
        dir.skipping = false;
        dir.buf.clear();
        if dir.block.is_some() && head.kind != kind::CONTINUATION {
            // RFC 9113 6.10: nothing may come between HEADERS and its CONTINUATION frames.
            dir.block = None;
            dir.block_buf.clear();
            dir.hpack.forget();
            sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::BrokenContinuation));
        }
        if head.kind == kind::DATA {
            dir.need_pad_len = head.has(flag::PADDED);
            dir.data_left = if dir.need_pad_len { 0 } else { head.len };
        } else {
            let max = match head.kind {
                kind::HEADERS | kind::CONTINUATION | kind::PUSH_PROMISE => limits.max_header_block,
                kind::SETTINGS
                | kind::PING
                | kind::GOAWAY
                | kind::RST_STREAM
                | kind::WINDOW_UPDATE
                | kind::PRIORITY => limits.max_buffered_frame,
                _ => 0, // unknown types are skipped (RFC 9113 5.5)
            };
            if head.len as usize > max && max > 0 {
                dir.skipping = true;
                if matches!(
                    head.kind,
                    kind::HEADERS | kind::CONTINUATION | kind::PUSH_PROMISE
                ) {
                    dir.hpack.forget();
                    dir.block = None;
                }
                sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::FrameTooLarge));
            } else if max == 0 {
                dir.skipping = true;
            }
        }
        dir.state = State::Payload;
        if head.len == 0 {
            self.end_frame(d, sink);
        }
    }

    fn payload<'a, S: CallSink + ?Sized>(
        &mut self,
        d: usize,
        ts: Nanos,
        data: &'a [u8],
        sink: &mut S,
    ) -> &'a [u8] {
        let dir = &mut self.dirs[d];
        let n = (dir.remaining as usize).min(data.len());
        let (chunk, rest) = data.split_at(n);
        // n <= remaining, a u32.
        dir.remaining -= u32::try_from(n).unwrap_or(dir.remaining);
        if dir.head.kind == kind::DATA {
            let mut chunk = chunk;
            if dir.need_pad_len && !chunk.is_empty() {
                let pad = u32::from(chunk[0]);
                chunk = &chunk[1..];
                dir.need_pad_len = false;
                let body = dir.head.len - 1;
                if pad > body {
                    sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::BadPadding));
                    dir.data_left = 0;
                } else {
                    dir.data_left = body - pad;
                }
            }
            let take = (dir.data_left as usize).min(chunk.len());
            dir.data_left -= u32::try_from(take).unwrap_or(dir.data_left);
            let stream = dir.head.stream;
            let side = self.side_of(d);
            if take > 0
                && let Some(call) = self.calls.get_mut(&stream)
            {
                match side {
                    Side::Client => call
                        .req
                        .feed(&chunk[..take], ts, &mut |len| sink.message(side, len)),
                    Side::Server => call
                        .resp
                        .feed(&chunk[..take], ts, &mut |len| sink.message(side, len)),
                }
            }
        } else if !dir.skipping {
            dir.buf.extend_from_slice(chunk);
        }
        if self.dirs[d].remaining == 0 {
            self.end_frame(d, sink);
        }
        rest
    }

    fn end_frame<S: CallSink + ?Sized>(&mut self, d: usize, sink: &mut S) {
        let head = self.dirs[d].head;
        let skipping = self.dirs[d].skipping;
        self.dirs[d].state = State::Header;
        let side = self.side_of(d);
        let ts = self.dirs[d].frame_ts;
        match head.kind {
            kind::DATA if head.has(flag::END_STREAM) => {
                self.end_stream_data(head.stream, side, ts, sink)
            }
            kind::HEADERS if !skipping => {
                let payload = std::mem::take(&mut self.dirs[d].buf);
                if let Some(fragment) = headers_fragment(&head, &payload) {
                    let dir = &mut self.dirs[d];
                    dir.block_buf.clear();
                    dir.block_buf.extend_from_slice(fragment);
                    dir.block = Some((head, ts));
                    if head.has(flag::END_HEADERS) {
                        self.finish_block(d, sink);
                    }
                } else {
                    sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::BadPadding));
                    self.dirs[d].hpack.forget();
                }
                self.dirs[d].buf = payload;
            }
            kind::CONTINUATION if !skipping => {
                let dir = &mut self.dirs[d];
                match dir.block {
                    Some((h, _)) if h.stream == head.stream => {
                        if dir.block_buf.len() + dir.buf.len() > self.limits.max_header_block {
                            dir.block = None;
                            dir.block_buf.clear();
                            dir.hpack.forget();
                            sink.conn_event(
                                self.id,
                                ConnEvent::Anomaly(AnomalyKind::FrameTooLarge),
                            );
                        } else {
                            dir.block_buf.extend_from_slice(&dir.buf);
                            if head.has(flag::END_HEADERS) {
                                self.finish_block(d, sink);
                            }
                        }
                    }
                    _ => {
                        dir.hpack.forget();
                        sink.conn_event(
                            self.id,
                            ConnEvent::Anomaly(AnomalyKind::BrokenContinuation),
                        );
                    }
                }
            }
            kind::PUSH_PROMISE if !skipping => {
                // gRPC never pushes, but the block still changes the HPACK table.
                let payload = std::mem::take(&mut self.dirs[d].buf);
                let pad = if head.has(flag::PADDED) {
                    payload.first().map_or(0, |p| usize::from(*p) + 1)
                } else {
                    0
                };
                if let Some(frag) =
                    payload.get(pad + 4..payload.len().saturating_sub(pad.saturating_sub(1)))
                {
                    let mut list = std::mem::take(&mut self.list);
                    if self.dirs[d].hpack.decode(frag, &mut list).is_err() {
                        sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::HpackError));
                    }
                    self.list = list;
                }
                self.dirs[d].buf = payload;
            }
            kind::SETTINGS if !skipping && !head.has(flag::ACK) => self.settings(d, sink),
            kind::RST_STREAM if !skipping => {
                let p = &self.dirs[d].buf;
                if p.len() == 4 {
                    let code = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                    self.reset(head.stream, side, code, ts, sink);
                }
            }
            kind::PING if !head.has(flag::ACK) => sink.conn_event(self.id, ConnEvent::Ping(side)),
            kind::GOAWAY if !skipping => {
                let p = &self.dirs[d].buf;
                if p.len() >= 8 {
                    let last_stream = u32::from_be_bytes([p[0] & 0x7f, p[1], p[2], p[3]]);
                    let code = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
                    sink.conn_event(
                        self.id,
                        ConnEvent::Goaway {
                            by: side,
                            code,
                            last_stream,
                        },
                    );
                    if side == Side::Server {
                        self.goaway(last_stream, ts, sink);
                    }
                }
            }
            _ => {}
        }
    }

    fn settings<S: CallSink + ?Sized>(&mut self, d: usize, sink: &mut S) {
        let other = 1 - d;
        let by = self.side_of(d);
        let p = std::mem::take(&mut self.dirs[d].buf);
        for s in p.chunks_exact(6) {
            let id = u16::from_be_bytes([s[0], s[1]]);
            let v = u32::from_be_bytes([s[2], s[3], s[4], s[5]]);
            sink.conn_event(self.id, ConnEvent::Setting { by, id, value: v });
            match id {
                // Sent by the receiver of the other direction: limits what comes to it.
                setting::MAX_FRAME_SIZE => {
                    self.dirs[other].max_frame = v.clamp(16_384, (1 << 24) - 1)
                }
                setting::HEADER_TABLE_SIZE => {
                    self.dirs[other].hpack.settings_table_size(v as usize)
                }
                _ => {}
            }
        }
        self.dirs[d].buf = p;
    }

    fn finish_block<S: CallSink + ?Sized>(&mut self, d: usize, sink: &mut S) {
        let Some((head, ts)) = self.dirs[d].block.take() else {
            return;
        };
        let mut list = std::mem::take(&mut self.list);
        let block = std::mem::take(&mut self.dirs[d].block_buf);
        let r = self.dirs[d].hpack.decode(&block, &mut list);
        self.dirs[d].block_buf = block;
        match r {
            Err(_) => sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::HpackError)),
            Ok(()) => {
                if list.unknown_refs > 0 {
                    sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::HpackUnknownIndex));
                }
                let w = Wanted::of(&list);
                // The bytes tell who is who.
                if w.request && !self.roles_settled {
                    self.settle_roles(d, sink);
                } else if w.status.is_some() && !self.roles_settled {
                    self.settle_roles(1 - d, sink);
                }
                self.mark_h2(sink);
                let side = self.side_of(d);
                self.on_headers(&head, side, ts, &list, &w, sink);
            }
        }
        self.list = list;
    }

    fn on_headers<S: CallSink + ?Sized>(
        &mut self,
        head: &Head,
        side: Side,
        ts: Nanos,
        list: &HeaderList,
        w: &Wanted<'_>,
        sink: &mut S,
    ) {
        let stream = head.stream;
        let end_stream = head.has(flag::END_STREAM);
        match side {
            Side::Client => {
                if let Some(call) = self.calls.get_mut(&stream) {
                    // Client trailers: only END_STREAM matters.
                    if end_stream {
                        call.rec.client_end.get_or_insert(ts);
                    }
                    return;
                }
                if self.calls.len() >= self.limits.max_streams {
                    sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::StreamLimit));
                    return;
                }
                self.first_request.get_or_insert(stream);
                let mut rec = self.new_record(stream, Some(ts));
                match w.path {
                    Some(Text::Bytes(p)) => {
                        rec.method = Some(self.strings.get(p));
                        rec.method_confidence = Confidence::Exact;
                    }
                    _ => rec.method_confidence = Confidence::Unknown,
                }
                let schema_type = rec
                    .method
                    .as_deref()
                    .and_then(|m| Some(self.schemas.as_ref()?.method(m)?.call_type));
                let typed = schema_type.is_some();
                if let Some(t) = schema_type {
                    rec.call_type = t;
                }
                rec.authority = w.authority.map(|v| self.strings.get(v));
                rec.content_type = w.content_type.map(|v| self.strings.get(v));
                rec.user_agent = w.user_agent.map(|v| self.strings.get(v));
                rec.req_encoding = w.encoding.map(|v| self.strings.get(v));
                rec.timeout = w.timeout.and_then(grpc::parse_timeout);
                rec.trace_id = w.traceparent.and_then(trace_id);
                if end_stream {
                    rec.client_end = Some(ts);
                }
                if self.limits.capture_metadata {
                    let request = crate::metadata::capture(list);
                    rec.metadata = Some(Box::new(crate::metadata::Metadata {
                        request,
                        ..Default::default()
                    }));
                }
                sink.call_started(&rec);
                self.calls.insert(
                    stream,
                    Call {
                        rec,
                        req: self.parser(),
                        resp: self.parser(),
                        resp_headers: false,
                        partial: false,
                        typed,
                    },
                );
            }
            Side::Server => {
                let call = match self.calls.get_mut(&stream) {
                    Some(c) => c,
                    None => {
                        // A stream we saw end already (a late answer after a reset), or one
                        // that began before the capture.
                        let began_before =
                            !self.seen_from_start && self.first_request.is_none_or(|f| stream < f);
                        if !began_before {
                            return;
                        }
                        if self.calls.len() >= self.limits.max_streams {
                            sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::StreamLimit));
                            return;
                        }
                        let rec = self.new_record(stream, None);
                        let call = Call {
                            rec,
                            req: MsgParser::lost(),
                            resp: MsgParser::lost(),
                            resp_headers: false,
                            partial: true,
                            typed: false,
                        };
                        self.calls.entry(stream).or_insert(call)
                    }
                };
                if let Some(s) = w
                    .status
                    .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
                {
                    call.rec.http_status = Some(s);
                }
                if let Some(enc) = w.encoding {
                    call.rec.resp_encoding = Some(self.strings.get(enc));
                }
                let grpc_status = w.grpc_status.and_then(grpc::parse_status);
                if let Some(m) = w.grpc_message {
                    call.rec.grpc_message = Some(grpc::decode_message(m));
                }
                if self.limits.bodies_per_call > 0
                    && let Some(d) = w.status_details
                {
                    call.rec.status_details = crate::metadata::decode_bin(d);
                }
                if self.limits.capture_metadata {
                    let md = call.rec.metadata.get_or_insert_with(Default::default);
                    let block = crate::metadata::capture(list);
                    if end_stream {
                        md.trailers = block
                    } else {
                        md.response = block
                    }
                }
                if !end_stream {
                    call.resp_headers = true;
                    call.rec.response_headers.get_or_insert(ts);
                    return;
                }
                let Some(mut call) = self.calls.remove(&stream) else {
                    return;
                };
                let (status, source) = match (grpc_status, call.rec.http_status) {
                    (Some(code), _) => {
                        call.rec.grpc_status = Some(code.0);
                        let src = if call.resp_headers {
                            StatusSource::Trailers
                        } else {
                            StatusSource::TrailersOnly
                        };
                        (Some(code), src)
                    }
                    (None, Some(http)) if http != 200 => {
                        (Some(grpc::from_http_status(http)), StatusSource::HttpStatus)
                    }
                    // The status may be among the fields we cannot read: say so, guess nothing.
                    (None, _) if list.unknown_refs > 0 => (None, StatusSource::HpackUnknown),
                    // Trailers without grpc-status: gRPC clients fail such calls.
                    (None, _) => (Some(Code::UNKNOWN), StatusSource::Trailers),
                };
                call.rec.status = status;
                call.rec.status_source = source;
                self.end_call(call, ts, sink);
            }
        }
    }

    /// A message parser that keeps bodies when the limits ask for them.
    fn parser(&self) -> MsgParser {
        let keep = (self.limits.bodies_per_call > 0).then_some(super::msg::Keep {
            per_message: self.limits.body_bytes,
            messages: self.limits.bodies_per_call,
        });
        MsgParser::keeping(keep)
    }

    fn new_record(&self, stream: u32, start: Option<Nanos>) -> CallRecord {
        CallRecord::new(self.id, stream, self.client, self.server, start)
    }

    fn end_stream_data<S: CallSink + ?Sized>(
        &mut self,
        stream: u32,
        side: Side,
        ts: Nanos,
        sink: &mut S,
    ) {
        match side {
            Side::Client => {
                if let Some(call) = self.calls.get_mut(&stream) {
                    call.rec.client_end.get_or_insert(ts);
                }
            }
            Side::Server => {
                if let Some(mut call) = self.calls.remove(&stream) {
                    call.rec.status = Some(Code::INTERNAL);
                    call.rec.status_source = StatusSource::NoTrailers;
                    self.end_call(call, ts, sink);
                }
            }
        }
    }

    fn reset<S: CallSink + ?Sized>(
        &mut self,
        stream: u32,
        by: Side,
        code: u32,
        ts: Nanos,
        sink: &mut S,
    ) {
        let Some(mut call) = self.calls.remove(&stream) else {
            return;
        };
        call.rec.reset = Some(Reset { by, code });
        let (status, source) = if code == 0x8 && deadline_passed(&call.rec, ts) {
            (Code::DEADLINE_EXCEEDED, StatusSource::Deadline)
        } else {
            (grpc::from_reset(code), StatusSource::Reset)
        };
        call.rec.status = Some(status);
        call.rec.status_source = source;
        self.end_call(call, ts, sink);
    }

    fn goaway<S: CallSink + ?Sized>(&mut self, last_stream: u32, ts: Nanos, sink: &mut S) {
        self.goaway_last = Some(self.goaway_last.map_or(last_stream, |l| l.min(last_stream)));
        // RFC 9113 6.8: streams above last_stream were not processed and never will be.
        let refused: Vec<u32> = self
            .sorted_open()
            .into_iter()
            .filter(|&s| s > last_stream && s % 2 == 1)
            .collect();
        for s in refused {
            if let Some(mut call) = self.calls.remove(&s) {
                call.rec.status = Some(Code::UNAVAILABLE);
                call.rec.status_source = StatusSource::Goaway;
                self.end_call(call, ts, sink);
            }
        }
    }

    fn end_call<S: CallSink + ?Sized>(&mut self, mut call: Call, ts: Nanos, sink: &mut S) {
        call.rec.end = Some(ts);
        finalize_counts(&mut call);
        sink.call_ended(&call.rec);
    }
}

/// Copies message counts into the record and decides the call type.
fn finalize_counts(call: &mut Call) {
    let r = &mut call.rec;
    r.req_msgs = call.req.msgs;
    r.resp_msgs = call.resp.msgs;
    r.req_bytes = call.req.bytes;
    r.resp_bytes = call.resp.bytes;
    r.req_compressed = call.req.compressed;
    r.resp_compressed = call.resp.compressed;
    r.first_response = call.resp.first_start;
    r.lost_bytes |= call.partial || call.req.lost || call.resp.lost;
    r.requests = std::mem::take(&mut call.req.bodies);
    r.responses = std::mem::take(&mut call.resp.bodies);
    if !call.typed {
        r.call_type = call_type(r);
    }
}

/// Call type from what was seen: more than one message a side streams; responses flowing
/// before the client half-closed mean both sides stream. (A schema refines this later.)
fn call_type(r: &CallRecord) -> CallType {
    let interleaved = match (r.first_response, r.client_end) {
        (Some(resp), Some(half)) => resp < half,
        (Some(_), None) => true,
        _ => false,
    };
    match (r.req_msgs > 1, r.resp_msgs > 1) {
        (true, true) => CallType::BidiStream,
        _ if interleaved && r.req_msgs >= 1 && r.resp_msgs >= 1 => CallType::BidiStream,
        (true, false) => CallType::ClientStream,
        (false, true) => CallType::ServerStream,
        (false, false) => CallType::Unary,
    }
}

/// The call's `grpc-timeout` had run out by `ts`. The capture sees the request a little after
/// the client started its clock, so a reset up to 1% (at least 2 ms) early still counts.
fn deadline_passed(r: &CallRecord, ts: Nanos) -> bool {
    let (Some(start), Some(timeout)) = (r.start, r.timeout) else {
        return false;
    };
    let elapsed = Duration::from_nanos(ts.saturating_sub(start));
    let slack = (timeout / 100).max(Duration::from_millis(2));
    elapsed + slack >= timeout
}

/// The trace id of a W3C trace context `traceparent` value ("00-<32 hex>-<16 hex>-<2 hex>"),
/// if it is well formed and not all zeros.
fn trace_id(v: &[u8]) -> Option<Arc<str>> {
    let s = std::str::from_utf8(v).ok()?;
    let mut parts = s.split('-');
    let (version, id) = (parts.next()?, parts.next()?);
    let valid = version.len() == 2
        && id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        && id.bytes().any(|b| b != b'0');
    valid.then(|| Arc::from(id))
}

/// The header block fragment of a HEADERS payload: without padding and priority fields.
fn headers_fragment<'a>(head: &Head, p: &'a [u8]) -> Option<&'a [u8]> {
    let mut start = 0;
    let mut end = p.len();
    if head.has(flag::PADDED) {
        let pad = usize::from(*p.first()?);
        start = 1;
        end = end.checked_sub(pad)?;
    }
    if head.has(flag::PRIORITY) {
        start += 5;
    }
    p.get(start..end)
}

enum Boundary {
    /// A frame starts at this offset.
    At(usize),
    /// A plausible frame starts here but more bytes are needed to confirm it.
    NeedMore(usize),
    /// Nothing plausible.
    None,
}

/// Finds the first offset where a plausible frame header starts and the frame after it is
/// plausible too (or the buffer ends exactly at the frame's end, as when a sender's segment
/// ends at a frame boundary).
fn find_boundary(buf: &[u8], max_len: u32) -> Boundary {
    let mut i = 0;
    while i + HEADER_LEN <= buf.len() {
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&buf[i..i + HEADER_LEN]);
        if Head::plausible(&raw, max_len) {
            let next = i + HEADER_LEN + Head::parse(&raw).len as usize;
            if next == buf.len() {
                return Boundary::At(i);
            }
            if next + HEADER_LEN <= buf.len() {
                let mut raw2 = [0u8; HEADER_LEN];
                raw2.copy_from_slice(&buf[next..next + HEADER_LEN]);
                if Head::plausible(&raw2, max_len) {
                    return Boundary::At(i);
                }
            } else {
                return Boundary::NeedMore(i);
            }
        }
        i += 1;
    }
    Boundary::None
}

impl frame::Head {
    /// Name of the frame type, for diagnostics.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            kind::DATA => "DATA",
            kind::HEADERS => "HEADERS",
            kind::PRIORITY => "PRIORITY",
            kind::RST_STREAM => "RST_STREAM",
            kind::SETTINGS => "SETTINGS",
            kind::PUSH_PROMISE => "PUSH_PROMISE",
            kind::PING => "PING",
            kind::GOAWAY => "GOAWAY",
            kind::WINDOW_UPDATE => "WINDOW_UPDATE",
            kind::CONTINUATION => "CONTINUATION",
            _ => "UNKNOWN",
        }
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;

/// Helpers for other modules' tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;

    /// A blank record, as a call's request headers would start it.
    pub(crate) fn record() -> CallRecord {
        let a: SocketAddr = "10.0.0.1:40000".parse().expect("addr");
        let b: SocketAddr = "10.0.0.2:50051".parse().expect("addr");
        CallRecord::new(1, 1, a, b, Some(1))
    }
}
