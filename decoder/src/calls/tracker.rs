//! The call tracker of one connection: HTTP/2 events in, gRPC calls out.
//!
//! It applies gRPC's rules over HTTP/2 (PROTOCOL-HTTP2.md): request headers open a call, DATA
//! carries length-prefixed messages, the server's trailers (or a reset, a GOAWAY, the end of
//! the connection) end it with a status decided by [`super::status`]. Calls that began before
//! the capture are tracked from the first frame seen of them, their counts marked partial.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use types::{ConnId, Dir, Nanos};

use super::flow::{ConnFlow, StreamFlow};
use super::groups::Groups;
use super::headers::{Interner, RequestKind, Wanted, trace_id};
use super::learn::{StatusEntries, Unseen};
use super::record::{CallRecord, CallType, Confidence, OpenCall, Reset, StatusSource, TlsTag};
use super::sink::{ConnEvent, Sink};
use super::status::{self, Ending};
use crate::anomaly::AnomalyKind;
use crate::grpc::msg::{Keep, MsgParser};
use crate::grpc::{self, Code};
use crate::h2::event::{Event, Side};
use crate::hpack::{HeaderList, Text};
use crate::reflection::SchemaStore;

/// Messages kept each way of a call whose method is not known yet, to infer it (in every
/// mode, not only when bodies are asked for), and bytes kept of each.
const INFER_KEEP: Keep = Keep {
    per_message: 16 << 10,
    messages: 4,
    bytes: usize::MAX,
    passing: false,
};

/// Bytes of messages kept to infer methods, shared by every connection that uses it: a call
/// reserves what it may keep when it starts and gives it back when it ends; when the budget is
/// spent, new calls keep nothing (and are named from what their group learned, if anything).
#[derive(Debug)]
pub struct KeepBudget {
    used: AtomicUsize,
    max: usize,
}

impl KeepBudget {
    /// A budget of `max` bytes.
    pub fn new(max: usize) -> Arc<KeepBudget> {
        Arc::new(KeepBudget {
            used: AtomicUsize::new(0),
            max,
        })
    }

    fn take(&self, n: usize) -> bool {
        self.used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                (u + n <= self.max).then_some(u + n)
            })
            .is_ok()
    }

    fn give(&self, n: usize) {
        self.used
            .fetch_sub(n.min(self.used.load(Ordering::Relaxed)), Ordering::Relaxed);
    }

    /// Bytes reserved now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }
}

/// What a call reserves of the [`KeepBudget`]: the most its two parsers keep.
const INFER_RESERVE: usize = 2 * INFER_KEEP.per_message * INFER_KEEP.messages;

/// Bytes of messages each direction of a call keeps for `--bodies` unless told otherwise.
pub const DEFAULT_BODY_BUDGET: usize = 16 << 20;

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
    /// Bytes of messages each direction of a call keeps in its record (each message costs its
    /// kept bytes and 64 more); the first messages are kept, the rest counted as dropped.
    pub body_budget: usize,
    /// Hand every message to the sink as it is seen (`Sink::message_body`), whether or not
    /// the record keeps it.
    pub stream_bodies: bool,
    /// Name calls whose `:path` was lost from their messages and the schemas (kept for that
    /// within a budget, whatever `bodies_per_call` says), letting a message decompress to at
    /// most this many bytes (`None`: do not infer).
    pub infer_methods: Option<usize>,
    /// Keep the time and size of each call's first this many messages each way in its record
    /// (0: none; span events of the OTLP export).
    pub message_times: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            max_streams: 100_000,
            capture_metadata: false,
            bodies_per_call: 0,
            body_bytes: 4 << 20,
            body_budget: DEFAULT_BODY_BUDGET,
            stream_bodies: false,
            message_times: 0,
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
    /// Bytes of the keep budget this call holds.
    reserved: usize,
    /// The unseen entries of the trailers, when they ended the call with no readable status.
    trailers: Option<Unseen>,
    /// The code `grpc-status-details-bin` carried.
    details_code: Option<Code>,
    /// The request headers had fields we could not read and no readable `grpc-timeout`: the
    /// call may have had a deadline (so a cancel may have been its expiry).
    deadline_unknown: bool,
    /// It began as its connection reached the server's SETTINGS_MAX_CONCURRENT_STREAMS: it
    /// may have waited in the client for a free stream.
    queued: bool,
    /// Its flow-control windows.
    flow: StreamFlow,
    /// A content-type of the call was read (its request's or its response's): its protocol is
    /// known, not assumed.
    protocol_sure: bool,
    /// gRPC-Web text mode: each direction's base64 decoder.
    b64: [super::headers::Base64; 2],
    /// A server reflection call whose responses are read for schemas.
    reflection: bool,
    /// Of its kept responses, how many were read (when they are also kept for output).
    reflected: usize,
    /// Bytes of the state budget it holds (metadata and messages kept for output).
    held: usize,
    /// Of the messages' bytes kept, those already charged to the state budget.
    held_bodies: usize,
}

/// Tracks the gRPC calls of one connection.
#[derive(Debug)]
pub struct Tracker {
    /// gRPC-Web or Connect was seen on this connection: a call whose protocol was not read
    /// may be one of them, and is not judged by gRPC's rules.
    web_seen: bool,
    /// gRPC itself was read on this connection (a gRPC content-type, a `grpc-status`).
    grpc_seen: bool,
    /// The connection is HTTP/1.1.
    http1: bool,
    /// The connection began as HTTP/1.1 and upgraded to HTTP/2 (h2c).
    upgraded: bool,
    /// The TLS the connection carries, once known.
    tls: Option<Arc<TlsTag>>,
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
    /// Where the schemas come from (they grow when the capture carries server reflection),
    /// and the generation of it `schemas` is.
    store: Option<Arc<SchemaStore>>,
    schemas_gen: u64,
    /// Calls grouped by the unseen `:path` entry they used.
    groups: Groups,
    /// Which unseen entries of the server's table hold which status.
    learned: StatusEntries,
    /// Streams that began before the capture and have ended: a late frame of one (the
    /// server's RST_STREAM(NO_ERROR) after its trailers) must not open it again.
    ended_early: std::collections::HashSet<u32, foldhash::fast::RandomState>,
    budget: Arc<KeepBudget>,
    /// Bytes of open calls' metadata and of messages kept for output (`--bodies`, the UI),
    /// shared by every connection.
    state: Arc<KeepBudget>,
    /// The newest PINGs each side sent (client, server), waiting for their answer: data and
    /// time; `ping_next` is where each side's next one goes.
    pings: [[Option<Pinged>; 4]; 2],
    ping_next: [usize; 2],
    /// The server's SETTINGS_MAX_CONCURRENT_STREAMS, when it sent one.
    max_streams: Option<u32>,
    /// The server sent a GOAWAY with an error code: it is closing the connection.
    server_goaway_error: bool,
    /// When a call ended that held a place at the stream limit (or had waited for one).
    released: Option<Nanos>,
    /// Flow control windows (a connection seen from its start).
    flow: ConnFlow,
}

/// A PING waiting for its answer: its data and when it was sent.
type Pinged = ([u8; 8], Nanos);

/// A call begun this soon after a place under the server's stream limit came free may have
/// waited in the client for it.
const QUEUED_WITHIN: std::time::Duration = std::time::Duration::from_millis(5);

/// The default bound on the bytes open calls keep for output (metadata, messages).
pub const DEFAULT_KEPT_STATE: usize = 256 << 20;

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
            web_seen: false,
            grpc_seen: false,
            http1: false,
            upgraded: false,
            tls: None,
            goaway_last: None,
            seen_from_start,
            first_request: None,
            strings: Interner::default(),
            schemas: None,
            store: None,
            schemas_gen: 0,
            groups: Groups::default(),
            learned: StatusEntries::default(),
            ended_early: Default::default(),
            budget: KeepBudget::new(16 << 20),
            state: KeepBudget::new(DEFAULT_KEPT_STATE),
            pings: [[None; 4]; 2],
            ping_next: [0; 2],
            max_streams: None,
            server_goaway_error: false,
            released: None,
            flow: ConnFlow::new(seen_from_start),
        }
    }

    /// Keeps open calls' metadata and messages for output within `state`, shared with other
    /// connections: past it, a call's are not kept (anomaly `state_shed`).
    pub fn with_state_budget(mut self, state: Arc<KeepBudget>) -> Tracker {
        self.state = state;
        self
    }

    /// Keeps messages for inference within `budget` (shared with other connections) instead of
    /// a budget of its own.
    pub fn with_keep_budget(mut self, budget: Arc<KeepBudget>) -> Tracker {
        self.budget = budget;
        self
    }

    /// Uses `schemas` to type calls of the methods they describe (the `stream` keywords) and to
    /// infer methods.
    pub fn with_schemas(mut self, schemas: Option<Arc<crate::schema::Schemas>>) -> Tracker {
        self.schemas = schemas;
        self
    }

    /// Takes its schemas from `store`, shared with every connection: the user's, and what
    /// server reflection seen on any connection teaches (a reflection call on this one feeds it).
    pub fn with_schema_store(mut self, store: Arc<SchemaStore>) -> Tracker {
        self.schemas = store.current();
        self.schemas_gen = store.generation();
        self.store = Some(store);
        self
    }

    /// Picks up schemas learned since last time; the groups' narrowing was over the old method
    /// list and starts again (names already given stay).
    fn refresh_schemas(&mut self) {
        let Some(store) = &self.store else { return };
        let g = store.generation();
        if g != self.schemas_gen {
            self.schemas = store.current();
            self.schemas_gen = g;
            self.groups.forget_candidates();
        }
    }

    /// Whether the schemas have methods to infer from.
    fn can_infer(&self) -> bool {
        self.limits.infer_methods.is_some()
            && self
                .schemas
                .as_ref()
                .is_some_and(|s| !s.method_list().is_empty())
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

    /// The connection is TLS: calls from now on carry `tag`.
    pub fn set_tls(&mut self, tag: TlsTag) {
        self.tls = Some(Arc::new(tag));
    }

    /// True once the connection's TLS is known.
    pub fn has_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The connection turned out to be HTTP/1.1, its client sending on `client`.
    pub fn http1<S: Sink + ?Sized>(&mut self, client: Dir, sink: &mut S) {
        self.http1 = true;
        self.handle(Event::Roles { client }, sink);
        sink.conn_event(
            self.id,
            ConnEvent::Http1 {
                client: self.client,
                server: self.server,
                opened: self.opened,
            },
        );
    }

    /// The HTTP/1.1 connection switched to HTTP/2 (`Upgrade: h2c`): calls from here on, and
    /// the upgrading request (stream 1, answered in HTTP/2), are HTTP/2's.
    pub fn upgraded(&mut self) {
        self.http1 = false;
        self.upgraded = true;
        for call in self.calls.values_mut() {
            call.rec.http1 = false;
        }
    }

    /// Says once per side when a receiver's window became unbounded.
    fn large_window<S: Sink + ?Sized>(&mut self, sender: usize, sink: &mut S) {
        if let Some(w) = self.flow.unbounded(sender) {
            let by = if sender == 0 {
                Side::Server
            } else {
                Side::Client
            };
            sink.conn_event(
                self.id,
                ConnEvent::LargeWindow {
                    by,
                    bytes: u64::try_from(w).unwrap_or(0),
                },
            );
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
                    upgraded: self.upgraded,
                },
            ),
            Event::Roles { client } => {
                // The capture layer guessed the other way round.
                if client == Dir::ToClient {
                    std::mem::swap(&mut self.client, &mut self.server);
                    // Calls from before the capture seen by their DATA alone were opened under
                    // the guess: what was taken for requests were responses.
                    for call in self.calls.values_mut() {
                        std::mem::swap(&mut call.req, &mut call.resp);
                        std::mem::swap(&mut call.rec.client, &mut call.rec.server);
                    }
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
                at,
            } => self.data(stream, from, ts, (bytes, at), sink),
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
                debug,
            } => {
                sink.conn_event(
                    self.id,
                    ConnEvent::Goaway {
                        by: from,
                        code: code.0,
                        last_stream,
                        too_many_pings: debug.trim_ascii() == b"too_many_pings",
                    },
                );
                if from == Side::Server {
                    self.server_goaway_error |= code.0 != 0;
                    self.goaway(last_stream, ts, sink);
                }
            }
            Event::Setting { from, id, value } => {
                if from == Side::Server && id.0 == 0x3 {
                    self.max_streams = Some(value);
                }
                if id.0 == 0x4 {
                    // It limits what the other side sends on each stream.
                    let sender = usize::from(from == Side::Client);
                    let delta = self.flow.initial(sender, value);
                    for call in self.calls.values_mut() {
                        ConnFlow::shift(&mut call.flow, sender, delta);
                    }
                    self.large_window(sender, sink);
                }
                sink.conn_event(
                    self.id,
                    ConnEvent::Setting {
                        by: from,
                        id: id.0,
                        value,
                    },
                );
            }
            Event::Ping {
                from,
                ack: false,
                data,
                ts,
            } => {
                // The newest few PINGs each side sent wait for their answer.
                let q = &mut self.pings[usize::from(from == Side::Server)];
                q[self.ping_next[usize::from(from == Side::Server)] % q.len()] = Some((data, ts));
                self.ping_next[usize::from(from == Side::Server)] += 1;
                sink.conn_event(self.id, ConnEvent::Ping(from));
            }
            Event::Ping {
                from,
                ack: true,
                data,
                ts,
            } => {
                // Answers the PING the other side sent.
                let by = match from {
                    Side::Client => Side::Server,
                    Side::Server => Side::Client,
                };
                let q = &mut self.pings[usize::from(by == Side::Server)];
                if let Some(slot) = q.iter_mut().find(|p| p.is_some_and(|(d, _)| d == data))
                    && let Some((_, sent)) = slot.take()
                    && let Some(rtt) = ts.checked_since(sent)
                {
                    sink.conn_event(self.id, ConnEvent::PingRtt { by, rtt });
                }
            }
            Event::WindowUpdate {
                stream,
                from,
                increment,
                ts,
            } => {
                // Credit for the other side's DATA.
                let sender = usize::from(from == Side::Client);
                if stream == 0 {
                    self.flow.conn_update(
                        sender,
                        increment,
                        ts,
                        self.calls.values_mut().map(|c| &mut c.flow),
                    );
                    self.large_window(sender, sink);
                } else if let Some(call) = self.calls.get_mut(&stream) {
                    self.flow
                        .stream_update(&mut call.flow, sender, increment, ts);
                }
            }
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
            Event::Frame(f) => sink.frame(self.id, &f),
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
        (bytes, at): (&[u8], (u32, u32)),
        sink: &mut S,
    ) {
        if !self.calls.contains_key(&stream) && self.began_before(stream) && !self.full(sink) {
            // A call from before the capture: its later messages are the evidence of its method.
            let call = self.partial(stream);
            self.calls.insert(stream, call);
        }
        if let Some(call) = self.calls.get_mut(&stream) {
            let id = self.id;
            let side = usize::from(from == Side::Server);
            // gRPC-Web's text mode: the frames are base64 (its calls are not aligned when
            // joined: frame offsets are of the text).
            let decoded;
            let bytes = if call.rec.protocol == RequestKind::GrpcWebText {
                decoded = unbase64(&mut call.b64[side], bytes);
                &decoded[..]
            } else {
                bytes
            };
            let parser = match from {
                Side::Client => &mut call.req,
                Side::Server => &mut call.resp,
            };
            if parser.aligning {
                parser.align(bytes, at);
            }
            if at.0 == 0 {
                self.flow.data(&mut call.flow, side, at.1, ts);
            }
            if self.limits.message_times == 0 {
                parser.feed(bytes, ts, &mut |len| sink.message(id, from, len));
            } else {
                let (times, max) = (&mut call.rec.message_times, self.limits.message_times);
                parser.feed(bytes, ts, &mut |len| {
                    sink.message(id, from, len);
                    // The first `max` of each direction (a short list: counted when asked).
                    if times.len() < 2 * max
                        && times.iter().filter(|t| t.from == from).count() < max
                    {
                        times.push(super::record::MessageTime { ts, from, len });
                    }
                });
            }
            if self.limits.stream_bodies && parser.bodies.len() > parser.handed {
                let new = &parser.bodies[parser.handed..];
                let first = parser.msgs - new.len() as u64;
                for (k, body) in new.iter().enumerate() {
                    sink.message_body(&call.rec, from, first + k as u64, body);
                }
                parser.handed = parser.bodies.len();
            }
            let reflect =
                call.reflection && from == Side::Server && call.resp.bodies.len() > call.reflected;
            if reflect {
                self.reflect(stream);
            }
            if self.limits.bodies_per_call > 0 || self.limits.stream_bodies {
                self.settle(stream, sink);
            }
        }
    }

    /// After messages were kept or handed on: lets go of those only passing through, and
    /// charges what the call holds to the state budget as it grows (gives it back as it
    /// shrinks).
    fn settle<S: Sink + ?Sized>(&mut self, stream: u32, sink: &mut S) {
        let Some(call) = self.calls.get_mut(&stream) else {
            return;
        };
        if self.limits.stream_bodies {
            call.req.release_passing();
            call.resp.release_passing();
        }
        let kept = call.req.kept + call.resp.kept;
        if kept > call.held_bodies {
            let more = kept - call.held_bodies;
            if self.state.take(more) {
                call.held += more;
                call.held_bodies = kept;
            } else {
                // No room: this call keeps no more messages.
                call.req.full = true;
                call.resp.full = true;
                sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::StateShed));
            }
        } else if kept < call.held_bodies {
            let less = call.held_bodies - kept;
            self.state.give(less);
            call.held -= less.min(call.held);
            call.held_bodies = kept;
        }
    }

    /// New responses of a server reflection call: their file descriptors go to the store.
    #[cold]
    fn reflect(&mut self, stream: u32) {
        let keep_for_output = self.limits.bodies_per_call > 0;
        let (Some(call), Some(store)) = (self.calls.get_mut(&stream), &self.store) else {
            return;
        };
        let encoding = call.rec.resp.encoding.clone();
        for body in &call.resp.bodies[call.reflected..] {
            if body.cut() {
                continue;
            }
            let data = if body.compressed {
                match crate::payload::decompress(
                    encoding.as_deref(),
                    &body.data,
                    crate::reflection::MAX_MESSAGE,
                ) {
                    Ok(d) => std::borrow::Cow::Owned(d),
                    Err(_) => continue,
                }
            } else {
                std::borrow::Cow::Borrowed(&body.data[..])
            };
            store.learn(&crate::reflection::file_descriptors(&data));
        }
        if keep_for_output {
            call.reflected = call.resp.bodies.len();
        } else {
            call.resp.release_all();
            call.reflected = 0;
        }
    }

    /// The TCP connection closed (FIN both ways, or RST): open calls end with it. `by`: who
    /// closed it first, when known.
    pub fn handle_closed<S: Sink + ?Sized>(&mut self, ts: Nanos, by: Option<Side>, sink: &mut S) {
        for id in self.sorted_open() {
            if let Some(mut call) = self.calls.remove(&id) {
                if call.partial || call.rec.lost_bytes {
                    // A call from before the capture may have ended before it too (DATA the
                    // server had in flight still arrives after a reset), and one whose bytes
                    // were lost may have ended in them: that it was open when the connection
                    // closed is not known.
                    call.rec.status = None;
                    call.rec.status_source = StatusSource::ConnectionClosed;
                } else {
                    let ending = Ending::ConnectionClosed {
                        deadline: deadline_of(&call.rec, ts),
                        by_client: by == Some(Side::Client),
                    };
                    settle(&mut call, ending);
                }
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
        if !w.request {
            // Not a request's headers (a block all from before the capture, taken for the
            // client's while the roles are a guess): opening a call would invent one.
            return;
        }
        self.first_request.get_or_insert(stream);
        let kind = RequestKind::of_request(w);
        if kind == RequestKind::Other {
            // Plain HTTP/2 (REST, a page): counted, never taken for a call.
            sink.conn_event(self.id, ConnEvent::NotGrpc(kind));
            return;
        }
        self.web_seen |= kind != RequestKind::Grpc;
        self.grpc_seen |= kind == RequestKind::Grpc && w.content_type.is_some();
        // A Connect unary call's body is its one message, without an envelope.
        let connect_unary = kind == RequestKind::Connect
            && (w.get || !w.content_type.is_some_and(RequestKind::is_connect_stream));
        if self.full(sink) {
            return;
        }
        self.refresh_schemas();
        let mut rec = self.new_record(stream, Some(ts));
        match w.path {
            Some(Text::Bytes(p)) => {
                // A Connect GET carries its message in the query: the method is the path.
                let p = if w.get {
                    p.split(|&b| b == b'?').next().unwrap_or(p)
                } else {
                    p
                };
                rec.method = Some(self.strings.get(p));
                rec.method_confidence = Confidence::Exact;
            }
            _ => {
                rec.method_group = self.groups.of(list);
                rec.method = rec.method_group.and_then(|g| self.groups.name(g));
                rec.method_confidence = match rec.method {
                    Some(_) => Confidence::Inferred,
                    None => Confidence::Unknown,
                };
            }
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
        // Connect names its compression its own way: per message for streams, for the whole
        // body of a unary call.
        let encoding = match kind {
            RequestKind::Connect if connect_unary => w.content_encoding,
            RequestKind::Connect => w.connect_encoding,
            _ => w.encoding,
        };
        rec.req.encoding = encoding.map(|v| self.strings.get(v));
        rec.req.accept_encoding = w.accept_encoding.map(|v| self.strings.get(v));
        rec.attempt = w
            .previous_attempts
            .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
            .unwrap_or(0);
        rec.te_trailers = (w.te_trailers || list.unknown_refs == 0).then_some(w.te_trailers);
        rec.timeout = w.timeout.and_then(grpc::parse_timeout);
        rec.protocol = kind;
        if w.get
            && let Some(Text::Bytes(p)) = w.path
        {
            // A Connect GET names its codec in the query, and sends no content-type.
            let json = p
                .split(|&b| b == b'?' || b == b'&')
                .any(|kv| kv == b"encoding=json");
            let ct: &[u8] = if json {
                b"application/json"
            } else {
                b"application/proto"
            };
            rec.content_type = Some(self.strings.get(ct));
        }
        if kind == RequestKind::Connect {
            rec.timeout = w
                .connect_timeout
                .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse().ok())
                .map(std::time::Duration::from_millis);
        }
        rec.trace_id = w.traceparent.and_then(trace_id);
        if w.traceparent.is_some() || w.grpc_trace_bin.is_some() {
            rec.trace_parent = trace_context(w);
        }
        if end_stream {
            rec.client_end = Some(ts);
        }
        let mut held = 0;
        if self.limits.capture_metadata {
            let request = keep_block(
                &self.state,
                self.id,
                &mut held,
                crate::metadata::capture(list),
                sink,
            );
            rec.metadata = Some(Box::new(crate::metadata::Metadata {
                request,
                ..Default::default()
            }));
        }
        sink.call_started(&rec);
        let infer = rec.method.is_none();
        let (mut req, mut resp) = (self.parser(infer), self.parser(infer));
        req.digest = Some(crate::grpc::msg::Digest::default());
        match kind {
            RequestKind::GrpcWeb | RequestKind::GrpcWebText => resp.end_flag = 0x80,
            RequestKind::Connect if connect_unary => {
                req.raw = true;
                resp.raw = true;
                if w.get {
                    // Its message is in the query, not a body: none is kept.
                    req.keep = None;
                }
            }
            RequestKind::Connect => resp.end_flag = 0x02,
            RequestKind::Grpc | RequestKind::Other => {}
        }
        let mut call = Call {
            rec,
            req,
            resp,
            resp_headers: false,
            partial: false,
            typed,
            reserved: 0,
            trailers: None,
            details_code: None,
            deadline_unknown: w.timeout.is_none() && list.unknown_refs > 0,
            queued: {
                let just_freed = self
                    .released
                    .is_some_and(|r| ts.checked_since(r).is_some_and(|d| d <= QUEUED_WITHIN));
                match self.max_streams {
                    Some(m) => self.calls.len() + 1 >= m as usize || just_freed,
                    // The limit is unknown (joined mid-way): a call begun as another ended
                    // may have waited for its place.
                    None => !self.seen_from_start && just_freed,
                }
            },
            flow: self.flow.stream(),
            protocol_sure: w.content_type.is_some() || w.get,
            b64: Default::default(),
            reflection: false,
            reflected: 0,
            held,
            held_bodies: 0,
        };
        call.reserved = self.reserve(&call);
        if call
            .rec
            .method
            .as_deref()
            .is_some_and(crate::reflection::is_reflection)
            && self.store.is_some()
            && self.budget.take(crate::reflection::MAX_MESSAGE)
        {
            // Its responses are read whole, one at a time, within the keep budget.
            call.reflection = true;
            call.reserved += crate::reflection::MAX_MESSAGE;
            call.resp.keep = Some(Keep {
                per_message: crate::reflection::MAX_MESSAGE,
                messages: self.limits.bodies_per_call.max(1),
                bytes: usize::MAX,
                passing: self.limits.stream_bodies,
            });
        }
        self.calls.insert(stream, call);
    }

    /// The keep budget a new call takes: when it keeps messages for inference only.
    fn reserve(&self, call: &Call) -> usize {
        let infer_only =
            self.limits.bodies_per_call == 0 && call.req.keep.is_some_and(|k| k.messages > 0);
        if !infer_only {
            return 0;
        }
        if self.budget.take(INFER_RESERVE) {
            INFER_RESERVE
        } else {
            0
        }
    }

    /// Whether stream `stream` may have begun before the capture: its request headers were not
    /// seen, and not because it came after the first one we saw and was over before.
    fn began_before(&self, stream: u32) -> bool {
        stream % 2 == 1
            && !self.seen_from_start
            && self.first_request.is_none_or(|f| stream < f)
            && !self.ended_early.contains(&stream)
    }

    /// A record for a call that began before the capture, first seen by `stream`'s later frames.
    /// Its messages are found again where a DATA frame holds exactly one (see
    /// `MsgParser::align`), and kept to infer its method.
    fn partial(&self, stream: u32) -> Call {
        let aligning = |mut p: MsgParser| {
            p.aligning = true;
            p
        };
        let mut call = Call {
            rec: self.new_record(stream, None),
            req: aligning(self.parser(true)),
            resp: aligning(self.parser(true)),
            resp_headers: false,
            partial: true,
            typed: false,
            reserved: 0,
            trailers: None,
            details_code: None,
            deadline_unknown: true,
            queued: false,
            flow: self.flow.stream(),
            protocol_sure: false,
            b64: Default::default(),
            reflection: false,
            reflected: 0,
            held: 0,
            held_bodies: 0,
        };
        call.reserved = self.reserve(&call);
        call
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
            if !self.began_before(stream) || self.full(sink) {
                return;
            }
            let call = self.partial(stream);
            self.calls.insert(stream, call);
        }
        if let Some(ct) = w.content_type
            && !self.response_protocol(stream, ct, w, sink)
        {
            return;
        }
        let bodies = self.limits.bodies_per_call > 0;
        let metadata = self.limits.capture_metadata;
        let connect = if self.web_seen {
            self.calls
                .get(&stream)
                .map(|c| (c.rec.protocol == RequestKind::Connect, c.resp.raw))
        } else {
            None
        };
        let encoding = match connect {
            Some((true, true)) => w.content_encoding,
            Some((true, false)) => w.connect_encoding,
            _ => w.encoding,
        }
        .map(|enc| self.strings.get(enc));
        let accept = w.accept_encoding.map(|v| self.strings.get(v));
        let content_type = w.content_type.map(|v| self.strings.get(v));
        let Some(call) = self.calls.get_mut(&stream) else {
            return;
        };
        if accept.is_some() {
            call.rec.resp.accept_encoding = accept;
        }
        if content_type.is_some() {
            call.rec.resp_content_type = content_type;
        }
        if let Some(s) = w
            .status
            .and_then(|v| std::str::from_utf8(v).ok()?.parse().ok())
        {
            call.rec.http_status = Some(s);
            // A Connect unary error: its body is the error, as JSON.
            call.resp.raw_keep = call.resp.raw && s != 200;
        }
        if encoding.is_some() {
            call.rec.resp.encoding = encoding;
        }
        let grpc_status = w.grpc_status.and_then(grpc::parse_status);
        self.grpc_seen |= grpc_status.is_some();
        if let Some(m) = w.grpc_message {
            call.rec.grpc_message = Some(grpc::decode_message(m));
        }
        if let Some(details) = w.status_details.and_then(crate::metadata::decode_bin) {
            call.details_code = grpc::details_code(&details);
            if bodies {
                call.rec.status_details = Some(details);
            }
        }
        if metadata {
            let block = keep_block(
                &self.state,
                self.id,
                &mut call.held,
                crate::metadata::capture(list),
                sink,
            );
            let md = call.rec.metadata.get_or_insert_with(Default::default);
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
            // A call from before the capture may have had its response headers before it too.
            after_headers: call.resp_headers || call.partial,
            unreadable: list.unknown_refs > 0,
        };
        (call.rec.status, call.rec.status_source) = status::decide(ending);
        if grpc_status.is_none() && call.rec.protocol != RequestKind::Grpc {
            // gRPC-Web or Connect ended by headers alone: their own rules for the HTTP status.
            Self::web_ending(&mut call, bodies);
        }
        if list.unknown_refs > 0 {
            let unseen = Unseen::of(list);
            if let Some(code) = grpc_status {
                self.learned.readable(&unseen, code);
            } else {
                call.trailers = Some(unseen);
            }
        }
        self.end_call(call, Some(ts), sink);
    }

    /// Lets the call map's spare room go.
    pub(crate) fn shrink(&mut self) {
        self.calls.shrink_to_fit();
    }

    /// Bytes the open calls take themselves (their records and map slots; what they keep for
    /// output is the state budget's).
    pub fn memory(&self) -> usize {
        self.calls.capacity() * (std::mem::size_of::<Call>() + std::mem::size_of::<u32>() + 1)
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

    /// A message parser that keeps bodies when the limits ask for them, or (`infer`) enough of
    /// them to infer the method.
    fn parser(&self, infer: bool) -> MsgParser {
        let passing = self.limits.stream_bodies;
        let asked = (self.limits.bodies_per_call > 0).then_some(Keep {
            per_message: self.limits.body_bytes,
            messages: self.limits.bodies_per_call,
            bytes: self.limits.body_budget,
            passing,
        });
        // Handing messages on, they are held whole (to the per-message bound), also the
        // few kept to infer the method.
        let for_inference = (infer && self.can_infer()).then_some(if passing {
            Keep {
                per_message: self.limits.body_bytes.max(INFER_KEEP.per_message),
                passing,
                ..INFER_KEEP
            }
        } else {
            INFER_KEEP
        });
        let passing_only = passing.then_some(Keep {
            per_message: self.limits.body_bytes,
            messages: 0,
            bytes: 0,
            passing,
        });
        MsgParser::keeping(asked.or(for_inference).or(passing_only))
    }

    fn new_record(&self, stream: u32, start: Option<Nanos>) -> CallRecord {
        let mut r = CallRecord::new(self.id, stream, self.client, self.server, start);
        r.http1 = self.http1;
        r.tls.clone_from(&self.tls);
        r
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
                    if call.rec.protocol == RequestKind::Grpc {
                        (call.rec.status, call.rec.status_source) =
                            status::decide(Ending::NoTrailers);
                    } else {
                        let bodies = self.limits.bodies_per_call > 0;
                        Self::web_ending(&mut call, bodies);
                    }
                    self.end_call(call, Some(ts), sink);
                }
            }
        }
    }

    /// A response's content-type, read: for a call whose protocol was not (it began before
    /// the capture, or its request's content-type was an entry from before it), it tells the
    /// protocol. False when the stream is no RPC after all (it is then dropped and counted).
    fn response_protocol<S: Sink + ?Sized>(
        &mut self,
        stream: u32,
        ct: &[u8],
        w: &Wanted<'_>,
        sink: &mut S,
    ) -> bool {
        // A gRPC response on a connection of gRPC only: nothing to learn (nearly every call;
        // no map lookup).
        if self.grpc_seen && !self.web_seen && RequestKind::of(Some(ct), false) == RequestKind::Grpc
        {
            return true;
        }
        // A response says its kind as a request would, but a Connect unary one carries no
        // connect-protocol-version: application/proto or /json are Connect's on a connection
        // that carries Connect, no RPC otherwise.
        let connect_stream = RequestKind::is_connect_stream(ct);
        let kind = match RequestKind::of(Some(ct), true) {
            RequestKind::Connect if !self.web_seen && !connect_stream => RequestKind::Other,
            k => k,
        };
        self.web_seen |= matches!(
            kind,
            RequestKind::GrpcWeb | RequestKind::GrpcWebText | RequestKind::Connect
        );
        self.grpc_seen |= kind == RequestKind::Grpc;
        let Some(call) = self.calls.get_mut(&stream) else {
            return true;
        };
        if call.protocol_sure {
            return true;
        }
        call.protocol_sure = true;
        match kind {
            RequestKind::Grpc => {}
            RequestKind::GrpcWeb | RequestKind::GrpcWebText => {
                call.rec.protocol = kind;
                call.resp.end_flag = 0x80;
            }
            RequestKind::Connect if connect_stream => {
                call.rec.protocol = kind;
                call.resp.end_flag = 0x02;
            }
            RequestKind::Connect => {
                // Unary: the bodies that follow are whole messages without envelopes.
                call.rec.protocol = kind;
                call.req.raw = true;
                call.resp.raw = true;
                call.resp.aligning = false;
                let ok = w.status == Some(b"200".as_slice());
                call.resp.raw_keep = !ok;
            }
            RequestKind::Other => {
                self.calls.remove(&stream);
                sink.conn_event(self.id, ConnEvent::NotGrpc(kind));
                return false;
            }
        }
        true
    }

    /// A gRPC-Web or Connect call's end: its status from the end-of-stream envelope, or a
    /// Connect unary call's from its HTTP status and body (which is also its one message each
    /// way).
    fn web_ending(call: &mut Call, bodies: bool) {
        let unary = call.resp.raw;
        let end = status::end_of_stream(
            call.rec.protocol,
            call.resp.end.as_deref(),
            call.rec.http_status,
            unary,
        );
        (call.rec.status, call.rec.status_source) = (end.code, end.source);
        if let Some(c) = end.code {
            call.rec.grpc_status = Some(c.0);
        }
        if call.rec.grpc_message.is_none() {
            call.rec.grpc_message = end.message;
        }
        if bodies && call.rec.status_details.is_none() {
            call.rec.status_details = end.details;
        }
        if unary {
            call.req.msgs = 1;
            call.resp.msgs = u64::from(call.rec.http_status == Some(200));
            call.resp.end = None;
            let (req_enc, resp_enc) = (
                call.rec.req.encoding.is_some(),
                call.rec.resp.encoding.is_some(),
            );
            call.req.finish_raw(req_enc);
            if call.resp.msgs == 1 {
                call.resp.finish_raw(resp_enc);
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
        if !self.calls.contains_key(&stream) && self.began_before(stream) && !self.full(sink) {
            // A call from before the capture, ended by a reset: counted, its status inferred.
            let call = self.partial(stream);
            self.calls.insert(stream, call);
        }
        let Some(mut call) = self.calls.remove(&stream) else {
            return;
        };
        call.rec.reset = Some(Reset { by, code });
        if call.rec.protocol != RequestKind::Grpc && call.resp.end_complete() {
            // The server's end-of-stream envelope (gRPC-Web's trailers, Connect's end-of-stream
            // message) came whole before the reset: it is the status, as trailers would be
            // (connect-es resets a stream it has read to its end, with INTERNAL_ERROR).
            let bodies = self.limits.bodies_per_call > 0;
            Self::web_ending(&mut call, bodies);
            self.end_call(call, Some(ts), sink);
            return;
        }
        let ending = Ending::Reset {
            code,
            deadline: deadline_of(&call.rec, ts),
            by_client: by == Side::Client,
        };
        settle(&mut call, ending);
        let cancel = status::cancels(code, by == Side::Client);
        if cancel
            && call.rec.status_source == StatusSource::Reset
            && (call.deadline_unknown || (call.queued && call.rec.timeout.is_some()))
        {
            // CANCEL ends a cancelled call and an expired one alike (PROTOCOL-HTTP2.md); which
            // one, only the deadline we could not read would tell. It failed either way. So
            // for a call that waited in the client for a free stream (it began as the
            // connection reached the server's stream limit): its deadline ran from when it was
            // issued (grpc-go computes grpc-timeout then), not from its HEADERS.
            call.rec.status = None;
            call.rec.error_unknown_code = true;
        } else if by == Side::Client && self.server_goaway_error && code != 0 {
            // The server is closing the connection with an error (ENHANCE_YOUR_CALM for too
            // many PINGs, ...): the client fails its calls as UNAVAILABLE and resets them with
            // the GOAWAY's code (C-core does).
            call.rec.status = Some(grpc::Code::UNAVAILABLE);
            call.rec.status_source = StatusSource::ConnectionClosed;
            call.rec.status_confidence = crate::calls::record::Confidence::Inferred;
        }
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
    /// its messages when its method was lost, infers its status when the wire's was unreadable,
    /// and hands it on.
    fn end_call<S: Sink + ?Sized>(&mut self, mut call: Call, end: Option<Nanos>, sink: &mut S) {
        if end.is_some() {
            call.rec.end = end;
        }
        self.flow.ended(&mut call.flow);
        for (half, i) in [(&mut call.rec.req, 0), (&mut call.rec.resp, 1)] {
            half.stalls = call.flow.stalls[i];
            half.stalled = call.flow.stalled[i];
        }
        let at_limit = match self.max_streams {
            Some(m) => call.queued || self.calls.len() + 1 >= m as usize,
            // Joined mid-way, the server's SETTINGS unseen: any end may free a place.
            None => !self.seen_from_start,
        };
        if at_limit {
            // A place under the stream limit came free (the call was still counted): a call
            // the client held back takes it at once.
            self.released = end.or(self.released);
        }
        if call.req.raw && call.rec.start.is_some() {
            // A Connect unary request is one message, whatever its body (a GET has none).
            call.req.msgs = 1;
            let enc = call.rec.req.encoding.is_some();
            call.req.finish_raw(enc);
        }
        if call.req.raw && self.limits.stream_bodies {
            // Its bodies are whole only now: handed on as the messages they are.
            for (from, p) in [(Side::Client, &call.req), (Side::Server, &call.resp)] {
                for (k, body) in p.bodies.iter().enumerate().skip(p.handed) {
                    sink.message_body(&call.rec, from, k as u64, body);
                }
            }
        }
        if !call.protocol_sure
            && (self.web_seen || !self.grpc_seen)
            && call.rec.protocol == RequestKind::Grpc
            && call.rec.grpc_status.is_none()
            && matches!(
                call.rec.status_source,
                StatusSource::NoTrailers | StatusSource::HttpStatus | StatusSource::Trailers
            )
        {
            // No content-type of this call was read, and the connection carries gRPC-Web or
            // Connect too, or has not shown gRPC itself: their calls end without gRPC
            // trailers, so gRPC's rules cannot judge this one.
            call.rec.status = None;
            call.rec.status_source = StatusSource::ProtocolUnknown;
        }
        // Ended by its peers, not cut off: a side that finished mid-message sent less than its
        // prefix announced.
        let finished = matches!(
            call.rec.status_source,
            StatusSource::Trailers
                | StatusSource::TrailersOnly
                | StatusSource::NoTrailers
                | StatusSource::EndOfStream
        );
        if finished
            && (call.resp.mid_message()
                || (call.rec.client_end.is_some() && call.req.mid_message()))
        {
            sink.conn_event(self.id, ConnEvent::Anomaly(AnomalyKind::MessageCutShort));
        }
        self.state.give(call.held);
        if call.partial {
            if self.ended_early.len() >= self.limits.max_streams {
                self.ended_early.clear();
            }
            self.ended_early.insert(call.rec.stream_id);
        }
        finalize_counts(&mut call);
        self.name(&mut call);
        if call.rec.status_source == StatusSource::HpackUnknown {
            self.infer_status(&mut call);
        }
        call.rec.status_confidence = if call.rec.error_unknown_code {
            Confidence::Inferred
        } else {
            status::confidence(call.rec.status_source, call.rec.start.is_some())
        };
        if call.reserved > 0 {
            self.budget.give(call.reserved);
            if self.limits.bodies_per_call == 0 {
                // The messages were kept for inference (or reflection) only.
                call.rec.req.bodies.clear();
                call.rec.resp.bodies.clear();
            }
        }
        sink.call_ended(&call.rec);
    }

    /// Names a call whose `:path` was lost: from its group (what earlier calls of it showed,
    /// narrowed by this one), or from its own messages.
    fn name(&mut self, call: &mut Call) {
        self.refresh_schemas();
        let (Some(cap), Some(schemas)) = (self.limits.infer_methods, self.schemas.clone()) else {
            return;
        };
        if call.rec.method.is_some() {
            if let Some(g) = call.rec.method_group {
                // Already named by its group: still evidence for it.
                self.groups.observe(g, &call.rec, &schemas, cap);
            }
            return;
        }
        let name = match call.rec.method_group {
            Some(g) => self.groups.observe(g, &call.rec, &schemas, cap),
            None => super::infer::infer_method(&schemas, &call.rec, cap)
                .map(|p| self.strings.get(p.as_bytes())),
        };
        let Some(name) = name else { return };
        if let Some(m) = schemas.method(&name)
            && !call.typed
        {
            call.rec.call_type = CallType::from_streaming(m.client_streaming, m.server_streaming);
            call.typed = true;
        }
        call.rec.method = Some(name);
        call.rec.method_confidence = Confidence::Inferred;
    }

    /// The status of a call whose `grpc-status` was an unseen entry: from what that entry is
    /// known to hold, or from evidence in the call itself (which then teaches the entry).
    fn infer_status(&mut self, call: &mut Call) {
        let unseen = call.trailers.take().unwrap_or_default();
        let named = self.learned.named_status(&unseen);
        if let Some(code) = named.or_else(|| self.learned.name_by_elimination(&unseen)) {
            // As good as readable: what else the block holds is no status.
            self.learned.readable(&unseen, code);
            call.rec.status = Some(code);
            call.rec.status_source = StatusSource::HpackName;
            return;
        }
        // A unary or client-streaming call answers with one message exactly when it succeeds
        // (gRPC servers send the response, then OK; on failure no response).
        let single_response = call.typed
            && matches!(call.rec.call_type, CallType::Unary | CallType::ClientStream)
            && !call.rec.lost_bytes;
        let evidence = match call.details_code {
            Some(c) => Some((c, StatusSource::StatusDetails)),
            None if single_response && call.resp_headers && call.rec.resp.msgs == 1 => {
                Some((Code::OK, StatusSource::OneResponse))
            }
            None => None,
        };
        if let Some((code, _)) = evidence {
            self.learned.learn(&unseen, code);
        }
        let learned = self
            .learned
            .status(&unseen)
            .map(|c| (c, StatusSource::HpackLearned));
        // Direct evidence of this call first, then what the entry taught, the weaker guess last.
        let found = match (evidence, learned) {
            (Some(e @ (_, StatusSource::StatusDetails)), _) => Some(e),
            (_, Some(l)) => Some(l),
            (e, None) => e,
        };
        if let Some((code, source)) = found {
            call.rec.status = Some(code);
            call.rec.status_source = source;
            return;
        }
        let message = call
            .rec
            .grpc_message
            .as_deref()
            .is_some_and(|m| !m.is_empty());
        let no_response = single_response && !call.resp_headers && call.rec.resp.msgs == 0;
        if message || no_response {
            call.rec.error_unknown_code = true;
            call.rec.status_source = if message {
                StatusSource::ErrorMessage
            } else {
                StatusSource::NoResponse
            };
        }
    }
}

/// `block`, if the state budget has room for it (charged to `held`); else an empty block that
/// says how many fields were left out, and the anomaly.
fn keep_block<S: Sink + ?Sized>(
    state: &KeepBudget,
    conn: ConnId,
    held: &mut usize,
    block: crate::metadata::Block,
    sink: &mut S,
) -> crate::metadata::Block {
    // RFC 9113 sizes: name + value + 32 per field.
    let size: usize = block
        .fields
        .iter()
        .map(|(n, v)| n.len() + v.len() + 32)
        .sum();
    if state.take(size) {
        *held += size;
        block
    } else {
        sink.conn_event(conn, ConnEvent::Anomaly(AnomalyKind::StateShed));
        crate::metadata::Block {
            dropped: block.fields.len() + block.dropped,
            fields: Vec::new(),
        }
    }
}

/// Gives `call` the status its `ending` decides; an end near the deadline is an error whose code
/// only the client knows.
fn settle(call: &mut Call, ending: Ending) {
    (call.rec.status, call.rec.status_source) = status::decide(ending);
    call.rec.error_unknown_code |= matches!(
        call.rec.status_source,
        StatusSource::DeadlineNear | StatusSource::ClientClosed
    );
}

/// Where `ts` falls against the call's deadline, by the habits of its client's stack.
fn deadline_of(rec: &CallRecord, ts: Nanos) -> status::Deadline {
    let habit = status::DeadlineHabit::of(rec.user_agent.as_deref());
    status::deadline(rec.start, rec.timeout, ts, habit)
}

/// The caller's span a request names (out of the hot path: most requests carry none).
#[cold]
#[inline(never)]
fn trace_context(w: &Wanted<'_>) -> Option<Box<super::headers::TraceParent>> {
    let mut t = match w.traceparent.and_then(super::headers::trace_parent) {
        Some(t) => t,
        None => w.grpc_trace_bin.and_then(super::headers::grpc_trace_bin)?,
    };
    if w.traceparent.is_some() {
        t.state = w
            .tracestate
            .filter(|s| s.len() <= 512)
            .and_then(|s| std::str::from_utf8(s).ok())
            .map(Box::from);
    }
    Some(Box::new(t))
}

/// Text-mode gRPC-Web bytes decoded (out of the hot path).
#[cold]
#[inline(never)]
fn unbase64(b64: &mut super::headers::Base64, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3 + 3);
    b64.decode(bytes, &mut out);
    out
}

/// Copies message counts into the record and decides the call type.
fn finalize_counts(call: &mut Call) {
    let r = &mut call.rec;
    for (half, p) in [(&mut r.req, &mut call.req), (&mut r.resp, &mut call.resp)] {
        half.msgs = p.msgs;
        half.bytes = p.bytes;
        half.compressed = p.compressed;
        half.bodies = std::mem::take(&mut p.bodies);
        half.bodies_dropped = p.dropped;
        half.max_msg = p.max_len;
        half.first_digest = p.first_digest;
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
