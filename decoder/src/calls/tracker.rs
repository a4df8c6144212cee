//! The call tracker of one connection: HTTP/2 events in, gRPC calls out.
//!
//! It applies gRPC's rules over HTTP/2 (PROTOCOL-HTTP2.md): request headers open a call, DATA
//! carries length-prefixed messages, the server's trailers (or a reset, a GOAWAY, the end of
//! the connection) end it with a status decided by [`super::status`]. Calls that began before
//! the capture are tracked from the first frame seen of them, their counts marked partial.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use types::{ConnId, Dir, Nanos};

use super::headers::{Interner, Wanted, trace_id};
use super::record::{CallRecord, CallType, Confidence, OpenCall, Reset};
use super::sink::{ConnEvent, Sink};
use super::status::{self, Ending};
use crate::grpc::msg::{Keep, MsgParser};
use crate::grpc::{self};
use crate::h2::event::{Event, Side};
use crate::hpack::{HeaderList, Text};

/// Bounds and options of call tracking on one connection.
#[derive(Debug, Clone, Copy)]
pub struct CallLimits {
    /// Calls tracked at once.
    pub max_streams: usize,
    /// Keep each call's metadata (bounded, secrets redacted) in its record.
    pub capture_metadata: bool,
    /// Keep message bytes in call records: up to this many messages each way per call (0: none).
    pub bodies_per_call: usize,
    /// Bytes kept of one message.
    pub body_bytes: usize,
    /// Name calls whose `:path` was lost from their kept messages and the schemas, allowing
    /// messages to decompress to at most this many bytes (`None`: do not infer).
    pub infer_methods: Option<usize>,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            max_streams: 100_000,
            capture_metadata: false,
            bodies_per_call: 0,
            body_bytes: 4 << 20,
            infer_methods: None,
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

/// Tracks the gRPC calls of one connection.
#[derive(Debug)]
pub struct Tracker {
    id: ConnId,
    client: SocketAddr,
    server: SocketAddr,
    /// When the capture layer began tracking the connection.
    opened: Nanos,
    limits: CallLimits,
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
    strings: Interner,
    schemas: Option<Arc<crate::schema::Schemas>>,
}

impl Tracker {
    /// A tracker for connection `id` between `client` and `server` (as the capture layer
    /// named them), tracked since `opened`. `seen_from_start`: the capture saw the handshake.
    pub fn new(
        id: ConnId,
        (client, server): (SocketAddr, SocketAddr),
        opened: Nanos,
        seen_from_start: bool,
        limits: CallLimits,
    ) -> Tracker {
        Tracker {
            id,
            client,
            server,
            opened,
            limits,
            calls: HashMap::default(),
            goaway_last: None,
            seen_from_start,
            first_request: None,
            strings: Interner::default(),
            schemas: None,
        }
    }

    /// Uses `schemas` to type calls of the methods they describe (the `stream` keywords) and to
    /// infer methods.
    pub fn with_schemas(mut self, schemas: Option<Arc<crate::schema::Schemas>>) -> Tracker {
        self.schemas = schemas;
        self
    }

    /// The connection.
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// (client, server) as known now.
    pub fn addresses(&self) -> (SocketAddr, SocketAddr) {
        (self.client, self.server)
    }

    /// Calls in progress.
    pub fn open_calls(&self) -> usize {
        self.calls.len()
    }

    /// Each call in progress as it stands now. Cheap: nothing is copied.
    pub fn for_each_open(&self, mut f: impl FnMut(OpenCall<'_>)) {
        for c in self.calls.values() {
            f(OpenCall {
                rec: &c.rec,
                req_msgs: c.req.msgs,
                resp_msgs: c.resp.msgs,
            });
        }
    }

    /// Handles one HTTP/2 event.
    pub fn handle<S: Sink + ?Sized>(&mut self, ev: Event<'_>, sink: &mut S) {
        match ev {
            Event::Detected => sink.conn_event(
                self.id,
                ConnEvent::Http2 {
                    client: self.client,
                    server: self.server,
                    opened: self.opened,
                },
            ),
            Event::Roles { client } => {
                // The capture layer guessed the other way round.
                if client == Dir::ToClient {
                    std::mem::swap(&mut self.client, &mut self.server);
                }
            }
            Event::Headers {
                stream,
                from,
                end_stream,
                ts,
                list,
            } => self.on_headers(stream, from, end_stream, ts, list, sink),
            Event::Data {
                stream,
                from,
                ts,
                bytes,
            } => self.data(stream, from, ts, bytes, sink),
            Event::DataEndStream { stream, from, ts } => {
                self.end_stream_data(stream, from, ts, sink)
            }
            Event::Reset {
                stream,
                from,
                code,
                ts,
            } => self.reset(stream, from, code.0, ts, sink),
            Event::GoAway {
                from,
                last_stream,
                code,
                ts,
            } => {
                sink.conn_event(
                    self.id,
                    ConnEvent::Goaway {
                        by: from,
                        code: code.0,
                        last_stream,
                    },
                );
                if from == Side::Server {
                    self.goaway(last_stream, ts, sink);
                }
            }
            Event::Setting { from, id, value } => sink.conn_event(
                self.id,
                ConnEvent::Setting {
                    by: from,
                    id: id.0,
                    value,
                },
            ),
            Event::Ping { from, ack: false } => sink.conn_event(self.id, ConnEvent::Ping(from)),
            Event::Ping { ack: true, .. } | Event::WindowUpdate { .. } => {}
            Event::Lost { from, stream } => {
                let mark = |call: &mut Call| {
                    call.rec.lost_bytes = true;
                    match from {
                        Side::Client => call.req.lost = true,
                        Side::Server => call.resp.lost = true,
                    }
                };
                match stream {
                    Some(s) => self.calls.get_mut(&s).into_iter().for_each(mark),
                    None => self.calls.values_mut().for_each(mark),
                }
            }
            Event::Anomaly(kind) => sink.conn_event(self.id, ConnEvent::Anomaly(kind)),
        }
    }

    /// DATA payload of `stream` from `from`: the messages it carries (the most frequent event,
    /// kept small so it inlines where the framer emits it).
    #[inline]
    pub fn data<S: Sink + ?Sized>(
        &mut self,
        stream: u32,
        from: Side,
        ts: Nanos,
        bytes: &[u8],
        sink: &mut S,
    ) {
        if let Some(call) = self.calls.get_mut(&stream) {
            let id = self.id;
            let parser = match from {
                Side::Client => &mut call.req,
                Side::Server => &mut call.resp,
            };
            parser.feed(bytes, ts, &mut |len| sink.message(id, from, len));
        }
    }

    /// The TCP connection closed (FIN both ways, or RST): open calls end with it.
    pub fn handle_closed<S: Sink + ?Sized>(&mut self, ts: Nanos, sink: &mut S) {
        for id in self.sorted_open() {
            if let Some(mut call) = self.calls.remove(&id) {
                let passed = status::deadline_passed(call.rec.start, call.rec.timeout, ts);
                let ending = Ending::ConnectionClosed {
                    deadline_passed: passed,
                };
                (call.rec.status, call.rec.status_source) = status::decide(ending);
                self.end_call(call, Some(ts), sink);
            }
        }
    }

    /// The capture ended (or the connection was expired by the tap): open calls are reported
    /// as unfinished, with no status.
    pub fn finish<S: Sink + ?Sized>(&mut self, sink: &mut S) {
        for id in self.sorted_open() {
            if let Some(mut call) = self.calls.remove(&id) {
                (call.rec.status, call.rec.status_source) = status::decide(Ending::EndOfCapture);
                self.end_call(call, None, sink);
            }
        }
    }

    fn sorted_open(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.calls.keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn on_headers<S: Sink + ?Sized>(
        &mut self,
        stream: u32,
        side: Side,
        end_stream: bool,
        ts: Nanos,
        list: &HeaderList,
        sink: &mut S,
    ) {
        let w = Wanted::of(list);
        match side {
            Side::Client => self.request_headers(stream, end_stream, ts, list, &w, sink),
            Side::Server => self.response_headers(stream, end_stream, ts, list, &w, sink),
        }
    }

    fn request_headers<S: Sink + ?Sized>(
        &mut self,
        stream: u32,
        end_stream: bool,
        ts: Nanos,
        list: &HeaderList,
        w: &Wanted<'_>,
        sink: &mut S,
    ) {
        if let Some(call) = self.calls.get_mut(&stream) {
            // Client trailers: only END_STREAM matters.
            if end_stream {
                call.rec.client_end.get_or_insert(ts);
            }
            return;
        }
        if self.full(sink) {
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
            .and_then(|m| self.schemas.as_ref()?.method(m))
            .map(|m| CallType::from_streaming(m.client_streaming, m.server_streaming));
        let typed = schema_type.is_some();
        if let Some(t) = schema_type {
            rec.call_type = t;
        }
        rec.authority = w.authority.map(|v| self.strings.get(v));
        rec.content_type = w.content_type.map(|v| self.strings.get(v));
        rec.user_agent = w.user_agent.map(|v| self.strings.get(v));
        rec.req.encoding = w.encoding.map(|v| self.strings.get(v));
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

    fn response_headers<S: Sink + ?Sized>(
        &mut self,
        stream: u32,
        end_stream: bool,
        ts: Nanos,
        list: &HeaderList,
        w: &Wanted<'_>,
        sink: &mut S,
    ) {
        if !self.calls.contains_key(&stream) {
            // A stream we saw end already (a late answer after a reset), or one that began
            // before the capture.
            let began_before =
                !self.seen_from_start && self.first_request.is_none_or(|f| stream < f);
            if !began_before {
                return;
            }
            if self.full(sink) {
                return;
            }
            let call = Call {
                rec: self.new_record(stream, None),
                req: MsgParser::lost(),
                resp: MsgParser::lost(),
                resp_headers: false,
                partial: true,
                typed: false,
            };
            self.calls.insert(stream, call);
        }
        let bodies = self.limits.bodies_per_call > 0;
        let metadata = self.limits.capture_metadata;
        let encoding = w.encoding.map(|enc| self.strings.get(enc));
        let Some(call) = self.calls.get_mut(&stream) else {
            return;
        };
        if let Some(s) = w
            .status
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        {
            call.rec.http_status = Some(s);
        }
        if encoding.is_some() {
            call.rec.resp.encoding = encoding;
        }
        let grpc_status = w.grpc_status.and_then(grpc::parse_status);
        if let Some(m) = w.grpc_message {
            call.rec.grpc_message = Some(grpc::decode_message(m));
        }
        if bodies && let Some(d) = w.status_details {
            call.rec.status_details = crate::metadata::decode_bin(d);
        }
        if metadata {
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
        if let Some(code) = grpc_status {
            call.rec.grpc_status = Some(code.0);
        }
        let ending = Ending::Trailers {
            grpc_status,
            http_status: call.rec.http_status,
            after_headers: call.resp_headers,
            unreadable: list.unknown_refs > 0,
        };
        (call.rec.status, call.rec.status_source) = status::decide(ending);
        self.end_call(call, Some(ts), sink);
    }

    /// No room for another call: the stream is not tracked, and that is an anomaly.
    fn full<S: Sink + ?Sized>(&self, sink: &mut S) -> bool {
        let full = self.calls.len() >= self.limits.max_streams;
        if full {
            let kind = crate::anomaly::AnomalyKind::StreamLimit;
            sink.conn_event(self.id, ConnEvent::Anomaly(kind));
        }
        full
    }

    /// A message parser that keeps bodies when the limits ask for them.
    fn parser(&self) -> MsgParser {
        let keep = (self.limits.bodies_per_call > 0).then_some(Keep {
            per_message: self.limits.body_bytes,
            messages: self.limits.bodies_per_call,
        });
        MsgParser::keeping(keep)
    }

    fn new_record(&self, stream: u32, start: Option<Nanos>) -> CallRecord {
        CallRecord::new(self.id, stream, self.client, self.server, start)
    }

    fn end_stream_data<S: Sink + ?Sized>(
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
                    (call.rec.status, call.rec.status_source) = status::decide(Ending::NoTrailers);
                    self.end_call(call, Some(ts), sink);
                }
            }
        }
    }

    fn reset<S: Sink + ?Sized>(
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
        let ending = Ending::Reset {
            code,
            deadline_passed: status::deadline_passed(call.rec.start, call.rec.timeout, ts),
        };
        (call.rec.status, call.rec.status_source) = status::decide(ending);
        self.end_call(call, Some(ts), sink);
    }

    fn goaway<S: Sink + ?Sized>(&mut self, last_stream: u32, ts: Nanos, sink: &mut S) {
        self.goaway_last = Some(self.goaway_last.map_or(last_stream, |l| l.min(last_stream)));
        // RFC 9113 6.8: streams above last_stream were not processed and never will be.
        let refused: Vec<u32> = self
            .sorted_open()
            .into_iter()
            .filter(|&s| s > last_stream && s % 2 == 1)
            .collect();
        for s in refused {
            if let Some(mut call) = self.calls.remove(&s) {
                (call.rec.status, call.rec.status_source) = status::decide(Ending::Refused);
                self.end_call(call, Some(ts), sink);
            }
        }
    }

    /// Finishes the record (`end`: when the stream ended; `None`: it did not), names it from
    /// its messages when its method was lost, and hands it on.
    fn end_call<S: Sink + ?Sized>(&mut self, mut call: Call, end: Option<Nanos>, sink: &mut S) {
        if end.is_some() {
            call.rec.end = end;
        }
        finalize_counts(&mut call);
        if call.rec.method.is_none()
            && let (Some(cap), Some(schemas)) = (self.limits.infer_methods, &self.schemas)
            && let Some(path) = super::infer::infer_method(schemas, &call.rec, cap)
        {
            call.rec.method = Some(self.strings.get(path.as_bytes()));
            call.rec.method_confidence = Confidence::Inferred;
        }
        sink.call_ended(&call.rec);
    }
}

/// Copies message counts into the record and decides the call type.
fn finalize_counts(call: &mut Call) {
    let r = &mut call.rec;
    for (half, p) in [(&mut r.req, &mut call.req), (&mut r.resp, &mut call.resp)] {
        half.msgs = p.msgs;
        half.bytes = p.bytes;
        half.compressed = p.compressed;
        half.bodies = std::mem::take(&mut p.bodies);
    }
    r.first_response = call.resp.first_start;
    r.lost_bytes |= call.partial || call.req.lost || call.resp.lost;
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
    match (r.req.msgs > 1, r.resp.msgs > 1) {
        (true, true) => CallType::BidiStream,
        _ if interleaved && r.req.msgs >= 1 && r.resp.msgs >= 1 => CallType::BidiStream,
        (true, false) => CallType::ClientStream,
        (false, true) => CallType::ServerStream,
        (false, false) => CallType::Unary,
    }
}
