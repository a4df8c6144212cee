//! One TCP connection's decoding: the HTTP/2 layer and the call tracker, wired together.
//!
//! ```text
//! handle_data(dir, ts, bytes) -> [tls::TlsSession -> plaintext] -> h2::Connection | http1
//!   -> h2::Event -> calls::Tracker -> Sink
//! ```
//!
//! The stages meet only through [`crate::h2::Event`] (and the TLS layer's
//! [`PlainSink`]); this type owns them and lends the tracker to the framer as its event sink
//! for the length of each call. A connection whose first bytes are a TLS ClientHello gets a
//! TLS session, which hands the HTTP layers its plaintext as cleartext connections hand them
//! their bytes.

use std::net::SocketAddr;
use std::sync::Arc;

use types::{ConnId, Dir, Nanos};

use crate::calls::record::OpenCall;
use crate::calls::sink::{ConnEvent, Sink};
use crate::calls::tracker::{CallLimits, KeepBudget, Tracker};
use crate::h2::connection::{Connection, H2Limits};
use crate::h2::event::{Event, EventSink, Side};
use crate::hpack::HpackLimits;
use crate::tls::keylog::KeyLog;
use crate::tls::session::{PlainSink, TlsLimits, TlsSession};

/// Bounds and options of one connection's decoding: the one config struct of the decoder.
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
    /// Bytes of messages each direction of a call keeps in its record (the first ones).
    pub body_budget: usize,
    /// Hand every message to the sink as it is seen (`--messages`).
    pub stream_bodies: bool,
    /// Name calls whose `:path` was lost from their kept messages and the schemas, letting a
    /// message decompress to at most this many bytes (`None`: do not).
    pub infer_methods: Option<usize>,
    /// Keep the time and size of each call's first this many messages each way (OTLP span
    /// events).
    pub message_times: usize,
    /// Bytes all open calls together keep for output (metadata, messages), across connections:
    /// the size of the budget the binary shares between them.
    pub max_kept_state: usize,
    /// Bytes of decoder state across connections (header tables, frame and header block
    /// buffers, open calls): past it the connection holding the most sheds its tables and
    /// buffers (anomaly `conn_state_shed`), largest first.
    pub max_decoder_state: usize,
}

impl Default for DecoderLimits {
    fn default() -> Self {
        let h2 = H2Limits::default();
        let calls = CallLimits::default();
        DecoderLimits {
            max_buffered_frame: h2.max_buffered_frame,
            max_header_block: h2.max_header_block,
            max_streams: calls.max_streams,
            hunt_window: h2.hunt_window,
            detect_bytes: h2.detect_bytes,
            hpack: h2.hpack,
            capture_metadata: calls.capture_metadata,
            bodies_per_call: calls.bodies_per_call,
            body_bytes: calls.body_bytes,
            body_budget: calls.body_budget,
            stream_bodies: calls.stream_bodies,
            infer_methods: calls.infer_methods,
            message_times: calls.message_times,
            max_kept_state: crate::calls::tracker::DEFAULT_KEPT_STATE,
            max_decoder_state: DEFAULT_DECODER_STATE,
        }
    }
}

impl DecoderLimits {
    /// The HTTP/2 layer's part.
    pub fn h2(&self) -> H2Limits {
        H2Limits {
            max_buffered_frame: self.max_buffered_frame,
            max_header_block: self.max_header_block,
            hunt_window: self.hunt_window,
            detect_bytes: self.detect_bytes,
            hpack: self.hpack,
        }
    }

    /// The call tracker's part.
    pub fn calls(&self) -> CallLimits {
        CallLimits {
            max_streams: self.max_streams,
            capture_metadata: self.capture_metadata,
            bodies_per_call: self.bodies_per_call,
            body_bytes: self.body_bytes,
            body_budget: self.body_budget,
            stream_bodies: self.stream_bodies,
            infer_methods: self.infer_methods,
            message_times: self.message_times,
        }
    }
}

/// Bytes of decoder state across connections unless told otherwise (`--max-decoder-bytes`).
pub const DEFAULT_DECODER_STATE: usize = 1 << 30;

/// Decodes one TCP connection.
#[derive(Debug)]
pub struct ConnDecoder {
    plain: Plain,
    /// The connection is TLS: its bytes go through this first.
    tls: Option<Box<TlsSession>>,
    /// Secrets for TLS connections (none: TLS connections are reported, not decrypted).
    keylog: Option<Arc<KeyLog>>,
}

/// The HTTP layers and the call tracker: what cleartext (or decrypted) bytes feed.
#[derive(Debug)]
struct Plain {
    h2: Connection,
    /// The connection is HTTP/1.1 (its first bytes were a request): decoded by this instead.
    h1: Option<crate::http1::Http1>,
    /// The capture saw the connection's handshake: its first bytes are its first bytes.
    from_start: bool,
    calls: Tracker,
    /// Bytes each way that reached the HTTP layers.
    bytes: [u64; 2],
}

impl Plain {
    fn data<S: Sink + ?Sized>(&mut self, d: Dir, ts: Nanos, mut data: &[u8], sink: &mut S) {
        let first = self.bytes == [0, 0];
        self.bytes[d.index()] += data.len() as u64;
        if self.h1.is_none() {
            if first && self.from_start && crate::http1::looks_like_request(data) {
                // HTTP/1.1 from its first request on (gRPC-Web, Connect).
                self.h1 = Some(crate::http1::Http1::new(d));
                self.calls.http1(d, sink);
            } else if !self.from_start && !self.h2.is_http2() && crate::http1::starts_request(data)
            {
                // Joined mid-way: a segment that begins with a request head.
                self.h1 = Some(crate::http1::Http1::joined(d));
                self.calls.http1(d, sink);
            }
        }
        let mut feed = Feed {
            calls: &mut self.calls,
            out: sink,
        };
        if let Some(h1) = self.h1.as_mut()
            && !h1.switched(d)
        {
            data = h1.handle_data(d, ts, data, &mut feed);
            if let Some(settings) = h1.take_upgrade() {
                // The server accepted `Upgrade: h2c`: HTTP/2 from here on.
                feed.calls.upgraded();
                self.h2.peer_settings(Side::Client, &settings, &mut feed);
            }
            if data.is_empty() {
                return;
            }
        }
        self.h2.handle_data(d, ts, data, &mut feed);
    }

    fn gap<S: Sink + ?Sized>(&mut self, d: Dir, len: u64, sink: &mut S) {
        let mut feed = Feed {
            calls: &mut self.calls,
            out: sink,
        };
        match self.h1.as_mut() {
            Some(h1) if !h1.switched(d) => h1.handle_gap(d, &mut feed),
            _ => self.h2.handle_gap(d, len, &mut feed),
        }
    }
}

/// Lends the HTTP layers and the caller's sink to the TLS layer.
struct TlsFeed<'a, S: ?Sized> {
    plain: &'a mut Plain,
    out: &'a mut S,
}

impl<S: Sink + ?Sized> PlainSink for TlsFeed<'_, S> {
    fn plaintext(&mut self, d: Dir, ts: Nanos, bytes: &[u8]) {
        self.plain.data(d, ts, bytes, self.out);
    }

    fn lost(&mut self, d: Dir, len: Option<u64>) {
        if self.plain.bytes != [0, 0] {
            self.plain.gap(d, len.unwrap_or(u64::MAX), self.out);
        }
    }

    fn anomaly(&mut self, kind: crate::anomaly::AnomalyKind) {
        let id = self.plain.calls.id();
        self.out.conn_event(id, ConnEvent::Anomaly(kind));
    }
}

/// Lends the tracker and the caller's sink to the HTTP/2 layer.
struct Feed<'a, S: ?Sized> {
    calls: &'a mut Tracker,
    out: &'a mut S,
}

impl<S: Sink + ?Sized> EventSink for Feed<'_, S> {
    // Inlined where the framer emits an event: the variant is known there, so DATA, the most
    // frequent event, goes straight to the tracker's message counting.
    #[inline(always)]
    fn h2_event(&mut self, event: Event<'_>) {
        match event {
            Event::Data {
                stream,
                from,
                ts,
                bytes,
                at,
            } => self.calls.data(stream, from, ts, (bytes, at), self.out),
            other => self.calls.handle(other, self.out),
        }
    }
}

impl ConnDecoder {
    /// A decoder for connection `id` between `client` and `server` (as the capture layer named
    /// them), tracked since `opened`. `roles_certain`: the capture saw the handshake, so the
    /// client is known and its bytes start at the preface.
    pub fn new(
        id: ConnId,
        (client, server): (SocketAddr, SocketAddr),
        opened: Nanos,
        roles_certain: bool,
        limits: DecoderLimits,
    ) -> ConnDecoder {
        ConnDecoder {
            plain: Plain {
                h2: Connection::new(roles_certain, limits.h2()),
                h1: None,
                from_start: roles_certain,
                calls: Tracker::new(id, (client, server), opened, roles_certain, limits.calls()),
                bytes: [0; 2],
            },
            tls: None,
            keylog: None,
        }
    }

    /// Reports every HTTP/2 frame to the sink ([`Sink::frame`]): for a view of the frames of
    /// one connection, decoded again on its own.
    pub fn log_frames(mut self) -> ConnDecoder {
        self.plain.h2.log_frames();
        self
    }

    /// Decrypts TLS connections with the secrets of `keylog` (shared with every connection;
    /// secrets added later are used by connections still waiting for theirs).
    pub fn with_keylog(mut self, keylog: Arc<KeyLog>) -> ConnDecoder {
        self.keylog = Some(keylog);
        self
    }

    /// True while the connection's TLS records wait for keys the key log does not have yet
    /// (the caller may read its key log files once more before closing it).
    pub fn wants_keys(&self) -> bool {
        self.tls.as_ref().is_some_and(|t| t.waiting())
    }

    /// The connection's TLS session, when it is TLS.
    pub fn tls(&self) -> Option<&TlsSession> {
        self.tls.as_deref()
    }

    /// Uses `schemas` to type calls of the methods they describe (the `stream` keywords) and,
    /// when the limits ask for it, to infer lost methods.
    pub fn with_schemas(mut self, schemas: Option<Arc<crate::schema::Schemas>>) -> ConnDecoder {
        self.plain.calls = self.plain.calls.with_schemas(schemas);
        self
    }

    /// Takes its schemas from `store` (the user's and what server reflection teaches), shared
    /// with every connection.
    pub fn with_schema_store(mut self, store: Arc<crate::reflection::SchemaStore>) -> ConnDecoder {
        self.plain.calls = self.plain.calls.with_schema_store(store);
        self
    }

    /// Keeps open calls' metadata and messages for output within `state`, shared with other
    /// connections.
    pub fn with_state_budget(mut self, state: Arc<KeepBudget>) -> ConnDecoder {
        self.plain.calls = self.plain.calls.with_state_budget(state);
        self
    }

    /// Keeps messages for method inference within `budget`, shared with other connections.
    pub fn with_keep_budget(mut self, budget: Arc<KeepBudget>) -> ConnDecoder {
        self.plain.calls = self.plain.calls.with_keep_budget(budget);
        self
    }

    /// The connection.
    pub fn id(&self) -> ConnId {
        self.plain.calls.id()
    }

    /// True once the connection was recognised as HTTP/2.
    pub fn is_http2(&self) -> bool {
        self.plain.h2.is_http2()
    }

    /// True once the connection was recognised as HTTP/2 or as HTTP/1.1 carrying requests.
    pub fn is_http(&self) -> bool {
        self.is_http2() || self.plain.h1.is_some()
    }

    /// Bytes of state the connection holds: header tables, frame, header block and hunt
    /// buffers, open calls (not what calls keep for output: the state budget has that).
    pub fn memory(&self) -> usize {
        self.plain.h2.memory()
            + self.plain.calls.memory()
            + self.plain.h1.as_ref().map_or(0, |h| h.memory())
            + self.tls.as_ref().map_or(0, |t| t.memory())
    }

    /// Lets go of the header tables and buffers (the decoder state bound was reached): the
    /// connection goes on as after a gap of lost frames both ways, its open calls marked.
    pub fn shed<S: Sink + ?Sized>(&mut self, sink: &mut S) {
        let plain = &mut self.plain;
        let mut feed = Feed {
            calls: &mut plain.calls,
            out: sink,
        };
        plain.h2.shed(&mut feed);
        plain.calls.shrink();
    }

    /// True when neither direction can carry HTTP/2 any more: the caller may drop the decoder.
    pub fn is_dead(&self) -> bool {
        // An HTTP/1.1 connection whose decoding stopped still ends its calls when it closes;
        // a TLS connection is reported when it closes.
        self.plain.h1.is_none() && self.tls.is_none() && self.plain.h2.is_dead()
    }

    /// Payload bytes each way, indexed by [`Dir::index`] (of a TLS connection: its records).
    pub fn bytes(&self) -> [u64; 2] {
        self.tls
            .as_ref()
            .map_or(self.plain.bytes, |t| t.info().bytes)
    }

    /// Calls in progress.
    pub fn open_calls(&self) -> usize {
        self.plain.calls.open_calls()
    }

    /// Each call in progress as it stands now: its record so far (method, start, headers) and
    /// the messages counted each way. Cheap: nothing is copied.
    pub fn for_each_open(&self, f: impl FnMut(OpenCall<'_>)) {
        self.plain.calls.for_each_open(f);
    }

    /// Bytes of direction `d`, in order.
    pub fn handle_data<S: Sink + ?Sized>(&mut self, d: Dir, ts: Nanos, data: &[u8], sink: &mut S) {
        // The connection's first bytes say whether it is TLS (counted by the layer they go to).
        if self.tls.is_none() && self.plain.bytes == [0, 0] {
            let keylog = || self.keylog.clone().unwrap_or_default();
            if self.plain.from_start && crate::tls::session::looks_like_client_hello(data) {
                self.tls = Some(Box::new(TlsSession::new(d, keylog(), TlsLimits::default())));
            } else if !self.plain.from_start && crate::tls::session::looks_like_record(data) {
                // Joined after the handshake: which keys would open it is not known.
                self.tls = Some(Box::new(TlsSession::joined(d, keylog())));
            }
        }
        match self.tls.as_mut() {
            Some(tls) => {
                let mut feed = TlsFeed {
                    plain: &mut self.plain,
                    out: sink,
                };
                tls.handle_data(d, ts, data, &mut feed);
                if !self.plain.calls.has_tls()
                    && let Some(version) = tls.info().version
                {
                    self.plain.calls.set_tls(crate::calls::record::TlsTag {
                        version,
                        sni: tls.info().sni.clone(),
                    });
                }
            }
            None => self.plain.data(d, ts, data, sink),
        }
    }

    /// `len` bytes of direction `d` were lost.
    pub fn handle_gap<S: Sink + ?Sized>(&mut self, d: Dir, _ts: Nanos, len: u64, sink: &mut S) {
        match self.tls.as_mut() {
            Some(tls) => {
                let mut feed = TlsFeed {
                    plain: &mut self.plain,
                    out: sink,
                };
                tls.handle_gap(d, len, &mut feed);
            }
            None => self.plain.gap(d, len, sink),
        }
    }

    /// The TCP connection closed (FIN both ways, or RST): open calls end with it. `closer`: the
    /// direction whose FIN or RST came first, when known.
    pub fn handle_closed<S: Sink + ?Sized>(
        &mut self,
        ts: Nanos,
        closer: Option<Dir>,
        sink: &mut S,
    ) {
        if let Some(h1) = self.plain.h1.as_mut() {
            let mut feed = Feed {
                calls: &mut self.plain.calls,
                out: sink,
            };
            h1.handle_closed(ts, &mut feed);
        }
        self.closed(sink);
        let by = closer.map(|d| self.plain.h2.side_of(d));
        self.plain.calls.handle_closed(ts, by, sink);
    }

    /// The capture ended (or the connection was expired by the tap): open calls are reported
    /// as unfinished, with no status.
    pub fn finish<S: Sink + ?Sized>(&mut self, sink: &mut S) {
        self.closed(sink);
        self.plain.calls.finish(sink);
    }

    fn closed<S: Sink + ?Sized>(&mut self, sink: &mut S) {
        if let Some(tls) = self.tls.as_mut() {
            let mut feed = TlsFeed {
                plain: &mut self.plain,
                out: sink,
            };
            tls.finish(&mut feed);
            sink.tls(self.plain.calls.id(), tls.info(), tls.state());
        }
        if !self.is_dead() {
            let event = ConnEvent::Closed {
                bytes: self.bytes(),
                http2: self.is_http(),
                tls: self.tls.is_some(),
            };
            sink.conn_event(self.id(), event);
        }
    }
}

#[cfg(test)]
#[path = "conn_tests.rs"]
mod tests;
