//! The call record: everything known about one gRPC call, as sinks receive it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use types::{ConnId, Nanos};

use crate::grpc::Code;
use crate::grpc::msg::Body;
use crate::h2::event::Side;

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

impl Confidence {
    /// Name used in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Confidence::Exact => "exact",
            Confidence::Inferred => "inferred",
            Confidence::Unknown => "unknown",
        }
    }
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
    /// A CANCEL well after the `grpc-timeout` deadline: the call expired.
    Deadline,
    /// A CANCEL (or the connection's close) within a few milliseconds of the deadline, where
    /// clients' expiries and their users' cancellations overlap: an error, its code unknown
    /// (`DEADLINE_EXCEEDED` or `CANCELLED`; only the client can tell).
    DeadlineNear,
    /// The stream was above a GOAWAY's last stream id: never processed.
    Goaway,
    /// The TCP connection closed with the call open (UNAVAILABLE, or DEADLINE_EXCEEDED past
    /// its deadline); no status for a call from before the capture, which may have ended unseen.
    ConnectionClosed,
    /// The client closed the TCP connection with the call open, before its deadline: it gave
    /// the call up (its channel or process ended); an error, its code known only to the client.
    ClientClosed,
    /// Still open when the capture ended (no status).
    Unfinished,
    /// The stream ended, but its `grpc-status` was a header table entry from before the capture
    /// and nothing told its value (no status).
    HpackUnknown,
    /// `grpc-status` was an entry from before the capture whose value other calls taught
    /// (inferred: see `calls::learn`).
    HpackLearned,
    /// `grpc-status` was sent as a value under a name from before the capture, and that name
    /// was learned to be `grpc-status` (inferred: see `calls::learn`).
    HpackName,
    /// `grpc-status` was unreadable; `grpc-status-details-bin` (a google.rpc.Status) carried the
    /// code (inferred).
    StatusDetails,
    /// `grpc-status` was unreadable; a unary or client-streaming call whose single response
    /// message came before the trailers ended OK (inferred).
    OneResponse,
    /// `grpc-status` was unreadable; a `grpc-message` says it failed, with a code not known
    /// (inferred: an error).
    ErrorMessage,
    /// `grpc-status` was unreadable; a unary or client-streaming call answered with trailers
    /// only (no response message) failed, with a code not known (inferred: an error).
    NoResponse,
    /// gRPC-Web's trailers frame, Connect's end-of-stream message, or a Connect unary
    /// response (its HTTP status, and the error in its body).
    EndOfStream,
    /// The call ended without gRPC trailers, no content-type of it was read, and its
    /// connection carries gRPC-Web or Connect too or has shown no gRPC: which protocol's rules
    /// apply is not known (no status).
    ProtocolUnknown,
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
            StatusSource::DeadlineNear => "deadline_near",
            StatusSource::Goaway => "goaway",
            StatusSource::ConnectionClosed => "connection_closed",
            StatusSource::ClientClosed => "client_closed",
            StatusSource::Unfinished => "unfinished",
            StatusSource::HpackUnknown => "hpack_unknown",
            StatusSource::HpackLearned => "hpack_learned",
            StatusSource::HpackName => "hpack_name",
            StatusSource::StatusDetails => "status_details",
            StatusSource::OneResponse => "one_response",
            StatusSource::ErrorMessage => "error_message",
            StatusSource::NoResponse => "no_response",
            StatusSource::EndOfStream => "end_of_stream",
            StatusSource::ProtocolUnknown => "protocol_unknown",
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

    /// The type a schema's `stream` keywords give.
    pub fn from_streaming(client: bool, server: bool) -> CallType {
        match (client, server) {
            (false, false) => CallType::Unary,
            (true, false) => CallType::ClientStream,
            (false, true) => CallType::ServerStream,
            (true, true) => CallType::BidiStream,
        }
    }

    /// (client streams, server streams).
    pub fn streaming(self) -> (bool, bool) {
        match self {
            CallType::Unary => (false, false),
            CallType::ClientStream => (true, false),
            CallType::ServerStream => (false, true),
            CallType::BidiStream => (true, true),
        }
    }
}

/// An RST_STREAM that ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reset {
    /// Who sent it.
    pub by: Side,
    /// HTTP/2 error code (RFC 9113 section 7).
    pub code: u32,
}

/// One direction of a call: the requests (client to server) or the responses.
#[derive(Debug, Clone, Default)]
pub struct Half {
    /// Messages.
    pub msgs: u64,
    /// Message bytes (after the 5-byte prefixes).
    pub bytes: u64,
    /// Messages with the compressed flag.
    pub compressed: u64,
    /// `grpc-encoding` of this direction.
    pub encoding: Option<Arc<str>>,
    /// Messages, when the decoder keeps them (bounded by its limits): the first ones.
    pub bodies: Vec<Body>,
    /// Messages past the limits, not kept (when messages are kept).
    pub bodies_dropped: u64,
    /// The largest message, in bytes (after its 5-byte prefix).
    pub max_msg: u32,
    /// A digest of the first message (its first 4 KiB and its length; requests of calls seen
    /// from their start): the same request sent again has the same one.
    pub first_digest: Option<u64>,
    /// `grpc-accept-encoding` of this side: the encodings it takes.
    pub accept_encoding: Option<Arc<str>>,
    /// Times this side sat at a zero flow-control window with data waiting (HTTP/2, a
    /// connection seen from its start), and their total.
    pub stalls: u32,
    /// See `stalls`.
    pub stalled: Duration,
}

/// The TLS a call travelled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTag {
    /// Negotiated version (0x0304 TLS 1.3, 0x0303 TLS 1.2).
    pub version: u16,
    /// The server name the client asked for (SNI).
    pub sni: Option<Box<str>>,
}

/// Everything known about one call. Sent when it starts (partly filled) and when it ends.
#[derive(Debug, Clone)]
pub struct CallRecord {
    /// The connection.
    pub conn: ConnId,
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
    /// When the `:path` was an entry from before the capture: the call's group on its
    /// connection (calls of one group have one method; see `calls::groups`).
    pub method_group: Option<u32>,
    /// `:authority`.
    pub authority: Option<Arc<str>>,
    /// Request `content-type`.
    pub content_type: Option<Arc<str>>,
    /// The RPC protocol, by the content-type: gRPC, gRPC-Web or Connect.
    pub protocol: super::headers::RequestKind,
    /// Carried over HTTP/1.1 (else HTTP/2).
    pub http1: bool,
    /// Carried over TLS (decrypted with a key log): the version and server name.
    pub tls: Option<Arc<TlsTag>>,
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
    /// The requests.
    pub req: Half,
    /// The responses.
    pub resp: Half,
    /// HTTP `:status`.
    pub http_status: Option<u16>,
    /// `grpc-status` as it came on the wire.
    pub grpc_status: Option<u32>,
    /// `grpc-message`, percent-decoded.
    pub grpc_message: Option<String>,
    /// Effective status (inferred when the wire has none); `None` while unfinished, or when it
    /// could not be known.
    pub status: Option<Code>,
    /// Which rule gave `status`.
    pub status_source: StatusSource,
    /// How sure `status` is: exact (the wire said it, or a rule that reads the wire, such as
    /// an HTTP status or a reset after the deadline), inferred, or unknown.
    pub status_confidence: Confidence,
    /// The call failed, with a code that could not be known (`status` is `None`).
    pub error_unknown_code: bool,
    /// The RST_STREAM that ended the call.
    pub reset: Option<Reset>,
    /// Call type from message counts and half-close timing (or the schema).
    pub call_type: CallType,
    /// Bytes of this call were lost (capture gap): counts are lower bounds.
    pub lost_bytes: bool,
    /// Metadata, when the decoder keeps it.
    pub metadata: Option<Box<crate::metadata::Metadata>>,
    /// The trace id of a W3C `traceparent` request header (32 lowercase hex digits).
    pub trace_id: Option<Arc<str>>,
    /// The caller's span the request names (W3C `traceparent` with `tracestate`, else
    /// `grpc-trace-bin`).
    pub trace_parent: Option<Box<super::headers::TraceParent>>,
    /// `grpc-status-details-bin` (a serialized google.rpc.Status), kept with the bodies.
    pub status_details: Option<Vec<u8>>,
    /// When each of the first messages was complete, when the limits ask for them
    /// (`CallLimits::message_times`).
    pub message_times: Vec<MessageTime>,
    /// `grpc-previous-rpc-attempts`: the attempts before this one (gRPC retries and hedging);
    /// 0 when not sent.
    pub attempt: u32,
    /// The request carried `te: trailers` (gRPC requires it; a proxy may strip it); none when
    /// it is not known (the request's header block referred to entries from before the
    /// capture, or was not seen).
    pub te_trailers: Option<bool>,
    /// The response's `content-type`.
    pub resp_content_type: Option<Arc<str>>,
}

/// One message of a call: when its last byte arrived, from which side, its length on the
/// wire (the length prefix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageTime {
    /// The packet that completed it.
    pub ts: Nanos,
    /// Its sender.
    pub from: Side,
    /// Its length.
    pub len: u32,
}

impl CallRecord {
    /// A blank record for stream `stream_id` of connection `conn`, as request HEADERS
    /// seen at `start` (or `None`: the call began before the capture) would open it.
    pub fn new(
        conn: ConnId,
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
            method_group: None,
            authority: None,
            content_type: None,
            protocol: super::headers::RequestKind::Grpc,
            http1: false,
            tls: None,
            user_agent: None,
            start,
            end: None,
            response_headers: None,
            first_response: None,
            client_end: None,
            timeout: None,
            req: Half::default(),
            resp: Half::default(),
            http_status: None,
            grpc_status: None,
            grpc_message: None,
            status: None,
            status_source: StatusSource::Unfinished,
            status_confidence: Confidence::Unknown,
            error_unknown_code: false,
            reset: None,
            call_type: CallType::Unary,
            lost_bytes: false,
            metadata: None,
            trace_id: None,
            trace_parent: None,
            message_times: Vec::new(),
            status_details: None,
            attempt: 0,
            te_trailers: None,
            resp_content_type: None,
        }
    }

    /// Latency: request HEADERS to the end of the stream, when both are known.
    pub fn duration(&self) -> Option<Duration> {
        self.end?.checked_since(self.start?)
    }

    /// Whether the call failed: `None` when its status is not known.
    pub fn is_error(&self) -> Option<bool> {
        match self.status {
            Some(c) => Some(c != Code::OK),
            None => self.error_unknown_code.then_some(true),
        }
    }

    /// The name the call is counted under: its method, the placeholder of its group on its
    /// connection (`<unknown:c3/2>`), or `None`.
    pub fn method_label(&self) -> Option<std::borrow::Cow<'_, str>> {
        match (&self.method, self.method_group) {
            (Some(m), _) => Some(std::borrow::Cow::Borrowed(m)),
            (None, Some(g)) => Some(std::borrow::Cow::Owned(format!(
                "<unknown:{}/{g}>",
                self.conn
            ))),
            (None, None) => None,
        }
    }

    /// The half a side sent: the client sends requests.
    pub fn half(&self, from: Side) -> &Half {
        match from {
            Side::Client => &self.req,
            Side::Server => &self.resp,
        }
    }
}

/// A call in progress, seen through `ConnDecoder::for_each_open`.
#[derive(Debug, Clone, Copy)]
pub struct OpenCall<'a> {
    /// The record so far (message counts in it are filled only when the call ends).
    pub rec: &'a CallRecord,
    /// Request messages so far.
    pub req_msgs: u64,
    /// Response messages so far.
    pub resp_msgs: u64,
}

impl CallRecord {
    /// The server answered (response headers or a message) more than `slack` after the
    /// client's deadline had passed, and not with DEADLINE_EXCEEDED itself: work done for
    /// nobody.
    pub fn answered_after_deadline(&self, slack: Duration) -> bool {
        let (Some(start), Some(t)) = (self.start, self.timeout) else {
            return false;
        };
        if self.status == Some(Code::DEADLINE_EXCEEDED) {
            return false;
        }
        let deadline = start + t + slack;
        [self.response_headers, self.first_response]
            .into_iter()
            .flatten()
            .any(|a| a > deadline)
    }
}

/// A blank record, as a call's request headers would start it (for tests).
#[cfg(test)]
pub(crate) fn test_record() -> CallRecord {
    let a: SocketAddr = "10.0.0.1:40000".parse().expect("addr");
    let b: SocketAddr = "10.0.0.2:50051".parse().expect("addr");
    CallRecord::new(ConnId::new(0, 1), 1, a, b, Some(Nanos(1)))
}
