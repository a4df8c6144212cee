//! One HTTP/2 connection seen from outside: the two byte streams of a TCP connection in,
//! [`Event`]s out. Framing and HPACK only; no gRPC rule is applied here.
//!
//! Each direction has a streaming framer. DATA payload goes straight out as [`Event::Data`],
//! never buffered; other frames are buffered up to a bound and loaded by their type's module
//! (`frame::*::load`); HEADERS + CONTINUATION are assembled and decoded by that direction's
//! HPACK decoder. When the capture joined mid-way or bytes were lost, the framer hunts for the
//! next plausible frame boundary and goes on.
//!
//! Roles: the capture layer's client/server guess is corrected from the bytes: the direction
//! that carries the preface or request headers (`:method`, `:path`) is the client's, the one
//! that carries `:status` the server's (RFC 9113 sections 3.4 and 8.3).

use types::{Dir, Nanos};

use super::event::{Block, Event, EventSink, FrameSeen, Side};
use super::frame::WindowUpdate;
use super::frame::data::data_len;
use super::frame::head::{Flags, HEADER_LEN, Head, PREFACE, SettingId};
use super::frame::kind::Kind;
use super::frame::{Continuation, GoAway, Headers, Ping, PushPromise, RstStream, Settings};
use crate::anomaly::AnomalyKind;
use crate::hpack::{self, HeaderList, HpackLimits, Text};

/// Bounds of the HTTP/2 layer of one connection.
#[derive(Debug, Clone, Copy)]
pub struct H2Limits {
    /// Largest non-DATA frame payload buffered; larger ones are skipped (and counted).
    pub max_buffered_frame: usize,
    /// Largest header block (HEADERS + CONTINUATION).
    pub max_header_block: usize,
    /// Bytes searched for a frame boundary before the oldest are dropped.
    pub hunt_window: usize,
    /// Bytes a direction may carry without any plausible HTTP/2 frame before the connection is
    /// declared not HTTP/2.
    pub detect_bytes: u64,
    /// HPACK bounds.
    pub hpack: HpackLimits,
}

impl Default for H2Limits {
    fn default() -> Self {
        H2Limits {
            max_buffered_frame: 1 << 20,
            max_header_block: 1 << 20,
            hunt_window: 256 << 10,
            detect_bytes: 256 << 10,
            hpack: HpackLimits::default(),
        }
    }
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
    /// DATA: data bytes the frame carries.
    data_len: u32,
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
    /// Header block being assembled: its HEADERS (or PUSH_PROMISE) head and first frame time.
    block: Option<(Head, Nanos)>,
    block_buf: Vec<u8>,
    /// SETTINGS_MAX_FRAME_SIZE the receiver announced: frames in this direction stay below.
    max_frame: u32,
    /// The receiver's SETTINGS were seen: `max_frame` is what it announced, not the default.
    max_frame_known: bool,
}

impl DirState {
    fn new(state: State, limits: &H2Limits, joined: bool) -> DirState {
        DirState {
            state,
            head_buf: [0; HEADER_LEN],
            head_len: 0,
            head: Head {
                len: 0,
                kind: Kind::DATA,
                flags: Flags(0),
                stream: 0,
            },
            remaining: 0,
            need_pad_len: false,
            data_left: 0,
            data_len: 0,
            skipping: false,
            buf: Vec::new(),
            frame_ts: Nanos::ZERO,
            hunt: Vec::new(),
            unsynced_bytes: 0,
            synced_once: false,
            hpack: if joined {
                hpack::Decoder::joined(limits.hpack)
            } else {
                hpack::Decoder::new(limits.hpack)
            },
            block: None,
            block_buf: Vec::new(),
            max_frame: 16_384,
            max_frame_known: false,
        }
    }

    /// Drops a header block being assembled and what the table may have missed from it.
    fn drop_block(&mut self) {
        self.block = None;
        self.block_buf.clear();
        self.hpack.forget();
    }
}

/// The HTTP/2 layer of one TCP connection.
#[derive(Debug)]
pub struct Connection {
    limits: H2Limits,
    /// Indexed by [`Dir::index`]: the capture layer's naming of the directions.
    dirs: [DirState; 2],
    /// The direction that really carries client-to-server bytes.
    client_dir: Dir,
    /// Roles are settled (handshake seen, or the bytes told).
    roles_settled: bool,
    is_h2: bool,
    list: HeaderList,
    /// Report every frame ([`Event::Frame`]).
    frames: bool,
    /// The header block the frame being ended finished: decoded (true) or not.
    block_done: Option<bool>,
}

impl Connection {
    /// The HTTP/2 layer of a connection. `roles_certain`: the capture saw the handshake, so
    /// [`Dir::ToServer`] is the client's and its bytes start with the preface.
    pub fn new(roles_certain: bool, limits: H2Limits) -> Connection {
        let (c, s) = if roles_certain {
            (State::Preface(0), State::Header)
        } else {
            (State::Hunting, State::Hunting)
        };
        Connection {
            limits,
            dirs: [
                DirState::new(c, &limits, !roles_certain),
                DirState::new(s, &limits, !roles_certain),
            ],
            client_dir: Dir::ToServer,
            roles_settled: roles_certain,
            is_h2: false,
            list: HeaderList::default(),
            frames: false,
            block_done: None,
        }
    }

    /// Reports every frame as [`Event::Frame`] too (a view of the frames; off by default,
    /// where it would cost a call per frame for nothing).
    pub fn log_frames(&mut self) {
        self.frames = true;
    }

    /// True once the connection was recognised as HTTP/2.
    pub fn is_http2(&self) -> bool {
        self.is_h2
    }

    /// True when neither direction can carry HTTP/2 any more: the caller may drop the state.
    pub fn is_dead(&self) -> bool {
        self.dirs.iter().all(|d| d.state == State::Dead)
    }

    /// Who sends the bytes of direction `d`.
    pub fn side_of(&self, d: Dir) -> Side {
        if d == self.client_dir {
            Side::Client
        } else {
            Side::Server
        }
    }

    fn dir(&mut self, d: Dir) -> &mut DirState {
        &mut self.dirs[d.index()]
    }

    /// Bytes of state the connection holds: both directions' header tables, frame, header
    /// block and hunt buffers.
    pub fn memory(&self) -> usize {
        self.dirs
            .iter()
            .map(|d| {
                d.buf.capacity() + d.hunt.capacity() + d.block_buf.capacity() + d.hpack.memory()
            })
            .sum()
    }

    /// Lets go of that state, as a gap of lost frames in both directions would (open streams
    /// are marked, the tables forgotten, framing found again by hunting), and frees it.
    pub fn shed<S: EventSink + ?Sized>(&mut self, sink: &mut S) {
        for d in Dir::BOTH {
            let from = self.side_of(d);
            let dir = self.dir(d);
            if dir.state == State::Dead {
                continue;
            }
            dir.hpack.shed();
            dir.block = None;
            dir.block_buf = Vec::new();
            dir.buf = Vec::new();
            dir.hunt = Vec::new();
            dir.head_len = 0;
            dir.skipping = false;
            dir.state = State::Hunting;
            sink.h2_event(Event::Lost { from, stream: None });
        }
        sink.h2_event(Event::Anomaly(AnomalyKind::ConnStateShed));
    }

    /// Bytes of direction `d`, in order, that arrived at `ts`.
    pub fn handle_data<S: EventSink + ?Sized>(
        &mut self,
        d: Dir,
        ts: Nanos,
        mut data: &[u8],
        sink: &mut S,
    ) {
        while !data.is_empty() {
            match self.dir(d).state {
                State::Dead => return,
                State::Preface(matched) => {
                    let n = (PREFACE.len() - matched).min(data.len());
                    if data[..n] != PREFACE[matched..matched + n] {
                        self.not_h2(d, sink);
                        return;
                    }
                    data = &data[n..];
                    let done = matched + n == PREFACE.len();
                    self.dir(d).state = if done {
                        State::Header
                    } else {
                        State::Preface(matched + n)
                    };
                    if done {
                        self.settle_roles(d, sink);
                        self.mark_h2(sink);
                    }
                }
                State::Hunting => {
                    data = self.hunt(d, ts, data, sink);
                }
                State::Header => {
                    let dir = self.dir(d);
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
    pub fn handle_gap<S: EventSink + ?Sized>(&mut self, d: Dir, len: u64, sink: &mut S) {
        let from = self.side_of(d);
        let dir = self.dir(d);
        match dir.state {
            State::Dead => {}
            State::Payload
                if dir.head.kind == Kind::DATA
                    && !dir.need_pad_len
                    && u64::from(dir.data_left) >= len =>
            {
                // Inside one DATA frame: only this stream lost bytes (len <= data_left, a u32).
                let len = u32::try_from(len).unwrap_or(dir.data_left);
                dir.data_left -= len;
                dir.remaining -= len;
                let stream = dir.head.stream;
                let done = dir.remaining == 0;
                if done {
                    dir.state = State::Header;
                }
                sink.h2_event(Event::Lost {
                    from,
                    stream: Some(stream),
                });
                sink.h2_event(Event::Anomaly(AnomalyKind::GapInFrame));
            }
            _ => {
                // Frames were lost: header blocks among them may have changed the HPACK table,
                // and any open stream may have lost messages or its end.
                dir.hpack.forget();
                dir.block = None;
                dir.block_buf.clear();
                dir.buf.clear();
                dir.hunt.clear();
                dir.head_len = 0;
                dir.state = State::Hunting;
                sink.h2_event(Event::Lost { from, stream: None });
                sink.h2_event(Event::Anomaly(AnomalyKind::GapLostFrames));
            }
        }
    }

    fn mark_h2<S: EventSink + ?Sized>(&mut self, sink: &mut S) {
        if !self.is_h2 {
            self.is_h2 = true;
            sink.h2_event(Event::Detected);
            // A direction given up for finding no frame (joined inside a long run of large
            // frames) is HTTP/2 after all: it hunts again from its next bytes.
            for dir in &mut self.dirs {
                if dir.state == State::Dead {
                    dir.state = State::Hunting;
                    dir.hunt.clear();
                    dir.unsynced_bytes = 0;
                }
            }
        }
    }

    fn not_h2<S: EventSink + ?Sized>(&mut self, d: Dir, sink: &mut S) {
        let was_dead = self.is_dead();
        self.dir(d).state = State::Dead;
        if self.roles_settled && !self.is_h2 {
            // The handshake was seen and the client did not speak HTTP/2: drop both sides.
            self.dir(d.reverse()).state = State::Dead;
        }
        if !was_dead && self.is_dead() && !self.is_h2 {
            sink.h2_event(Event::Anomaly(AnomalyKind::NotHttp2));
        }
    }

    /// Direction `d` is the client's (preface or request headers seen there).
    fn settle_roles<S: EventSink + ?Sized>(&mut self, d: Dir, sink: &mut S) {
        if !self.roles_settled {
            self.roles_settled = true;
            if d != self.client_dir {
                self.client_dir = d;
                sink.h2_event(Event::Roles { client: d });
            }
        }
    }

    /// Searches for a frame boundary in direction `d`; returns the input not yet consumed.
    fn hunt<'a, S: EventSink + ?Sized>(
        &mut self,
        d: Dir,
        ts: Nanos,
        data: &'a [u8],
        sink: &mut S,
    ) -> &'a [u8] {
        let limits = self.limits;
        let dir = self.dir(d);
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
        // Joined mid-way, the receiver's SETTINGS_MAX_FRAME_SIZE is unknown: gRPC C-core
        // announces 4 MiB and sends DATA frames of hundreds of KiB. A boundary is then a frame
        // within the default size followed by one of any legal size (a message's last, short
        // DATA frame before the next message's long one; a HEADERS before its DATA).
        let (max_len, next_max) = if dir.max_frame_known {
            (dir.max_frame, dir.max_frame)
        } else {
            (16_384, (1 << 24) - 1)
        };
        match find_boundary(&dir.hunt, max_len, next_max) {
            Boundary::At(i) => {
                let buf = std::mem::take(&mut dir.hunt);
                dir.state = State::Header;
                dir.head_len = 0;
                let first = !dir.synced_once;
                dir.synced_once = true;
                if i > 0 || !first {
                    sink.h2_event(Event::Anomaly(AnomalyKind::Resync));
                }
                self.mark_h2(sink);
                self.handle_data(d, ts, &buf[i..], sink);
                let mut buf = buf;
                buf.clear();
                if self.dir(d).hunt.is_empty() {
                    self.dir(d).hunt = buf;
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

    fn check_unsynced<S: EventSink + ?Sized>(&mut self, d: Dir, sink: &mut S) {
        let limits = self.limits;
        let dir = self.dir(d);
        if dir.hunt.len() > limits.hunt_window {
            let drop = dir.hunt.len() - limits.hunt_window;
            dir.hunt.drain(..drop);
            dir.unsynced_bytes += drop as u64;
        }
        if !self.is_h2 && self.dir(d).unsynced_bytes > limits.detect_bytes {
            self.not_h2(d, sink);
        }
    }

    fn start_frame<S: EventSink + ?Sized>(&mut self, d: Dir, sink: &mut S) {
        let limits = self.limits;
        let is_h2 = self.is_h2;
        let dir = self.dir(d);
        let head = Head::parse(&dir.head_buf);
        if !is_h2 && !Head::plausible(&dir.head_buf, 1 << 24) {
            // The very first frame after the preface (or of the server) must look like one.
            self.not_h2(d, sink);
            return;
        }
        dir.head = head;
        dir.remaining = head.len;
        dir.skipping = false;
        dir.buf.clear();
        if dir.block.is_some() && head.kind != Kind::CONTINUATION {
            // RFC 9113 6.10: nothing may come between HEADERS and its CONTINUATION frames.
            dir.drop_block();
            sink.h2_event(Event::Anomaly(AnomalyKind::BrokenContinuation));
        }
        if head.kind == Kind::DATA {
            dir.need_pad_len = head.has(Flags::PADDED);
            dir.data_left = if dir.need_pad_len { 0 } else { head.len };
            dir.data_len = dir.data_left;
        } else {
            let max = match head.kind {
                k if k.carries_header_block() => limits.max_header_block,
                Kind::SETTINGS
                | Kind::PING
                | Kind::GOAWAY
                | Kind::RST_STREAM
                | Kind::WINDOW_UPDATE
                | Kind::PRIORITY => limits.max_buffered_frame,
                _ => 0, // unknown types are skipped (RFC 9113 5.5)
            };
            if head.len as usize > max && max > 0 {
                dir.skipping = true;
                if head.kind.carries_header_block() {
                    dir.hpack.forget();
                    dir.block = None;
                }
                sink.h2_event(Event::Anomaly(AnomalyKind::FrameTooLarge));
            } else if max == 0 {
                dir.skipping = true;
            }
        }
        dir.state = State::Payload;
        if head.len == 0 {
            self.end_frame(d, sink);
        }
    }

    fn payload<'a, S: EventSink + ?Sized>(
        &mut self,
        d: Dir,
        ts: Nanos,
        data: &'a [u8],
        sink: &mut S,
    ) -> &'a [u8] {
        let from = self.side_of(d);
        let dir = self.dir(d);
        let n = (dir.remaining as usize).min(data.len());
        let (chunk, rest) = data.split_at(n);
        // n <= remaining, a u32.
        dir.remaining -= u32::try_from(n).unwrap_or(dir.remaining);
        if dir.head.kind == Kind::DATA {
            let mut chunk = chunk;
            if dir.need_pad_len && !chunk.is_empty() {
                dir.need_pad_len = false;
                match data_len(&dir.head, Some(chunk[0])) {
                    Ok(len) => dir.data_left = len,
                    Err(_) => {
                        sink.h2_event(Event::Anomaly(AnomalyKind::BadPadding));
                        dir.data_left = 0;
                    }
                }
                dir.data_len = dir.data_left;
                chunk = &chunk[1..];
            }
            let take = (dir.data_left as usize).min(chunk.len());
            let offset = dir.data_len - dir.data_left;
            dir.data_left -= u32::try_from(take).unwrap_or(dir.data_left);
            if take > 0 {
                sink.h2_event(Event::Data {
                    stream: dir.head.stream,
                    from,
                    ts,
                    bytes: &chunk[..take],
                    at: (offset, dir.data_len),
                });
            }
        } else if !dir.skipping {
            dir.buf.extend_from_slice(chunk);
        }
        if self.dir(d).remaining == 0 {
            self.end_frame(d, sink);
        }
        rest
    }

    fn end_frame<S: EventSink + ?Sized>(&mut self, d: Dir, sink: &mut S) {
        let from = self.side_of(d);
        let dir = self.dir(d);
        let head = dir.head;
        let skipping = dir.skipping;
        dir.state = State::Header;
        let ts = dir.frame_ts;
        let data_len = dir.data_len;
        if skipping {
            if self.frames {
                self.log_frame(d, ts, head, 0, &[], sink);
            }
            return;
        }
        if head.kind == Kind::DATA {
            // DATA was handed on as it came; only its end is left to say.
            if head.has(Flags::END_STREAM) {
                sink.h2_event(Event::DataEndStream {
                    stream: head.stream,
                    from,
                    ts,
                });
            }
            if self.frames {
                self.log_frame(d, ts, head, data_len, &[], sink);
            }
            return;
        }
        // The payload is lent to the frame's loader and given back, so its memory is reused.
        let payload = std::mem::take(&mut dir.buf);
        match head.kind {
            Kind::HEADERS => match Headers::load(&head, &payload) {
                Ok(h) => self.start_block(d, (head, ts), h.fragment, h.end_headers, sink),
                Err(_) => {
                    sink.h2_event(Event::Anomaly(AnomalyKind::BadPadding));
                    self.dir(d).hpack.forget();
                }
            },
            Kind::CONTINUATION => {
                let max = self.limits.max_header_block;
                let dir = self.dir(d);
                match (dir.block, Continuation::load(&head, &payload)) {
                    (Some((h, _)), Ok(c)) if h.stream == head.stream => {
                        if dir.block_buf.len() + c.fragment.len() > max {
                            dir.drop_block();
                            sink.h2_event(Event::Anomaly(AnomalyKind::FrameTooLarge));
                        } else {
                            dir.block_buf.extend_from_slice(c.fragment);
                            if c.end_headers {
                                self.finish_block(d, sink);
                            }
                        }
                    }
                    _ => {
                        dir.hpack.forget();
                        sink.h2_event(Event::Anomaly(AnomalyKind::BrokenContinuation));
                    }
                }
            }
            Kind::PUSH_PROMISE => match PushPromise::load(&head, &payload) {
                Ok(p) => self.start_block(d, (head, ts), p.fragment, p.end_headers, sink),
                Err(_) => {
                    self.dir(d).hpack.forget();
                    sink.h2_event(Event::Anomaly(AnomalyKind::MalformedFrame));
                }
            },
            Kind::SETTINGS => match Settings::load(&head, &payload) {
                Ok(s) if !s.ack => self.settings(d, from, &s, sink),
                Ok(_) => {}
                Err(_) => sink.h2_event(Event::Anomaly(AnomalyKind::MalformedFrame)),
            },
            Kind::RST_STREAM => match RstStream::load(&head, &payload) {
                Ok(r) => sink.h2_event(Event::Reset {
                    stream: head.stream,
                    from,
                    code: r.code,
                    ts,
                }),
                Err(_) => sink.h2_event(Event::Anomaly(AnomalyKind::MalformedFrame)),
            },
            Kind::PING => match Ping::load(&head, &payload) {
                Ok(p) => sink.h2_event(Event::Ping {
                    from,
                    ack: p.ack,
                    data: p.data,
                    ts,
                }),
                Err(_) => sink.h2_event(Event::Anomaly(AnomalyKind::MalformedFrame)),
            },
            Kind::GOAWAY => match GoAway::load(&head, &payload) {
                Ok(g) => sink.h2_event(Event::GoAway {
                    from,
                    last_stream: g.last_stream,
                    code: g.code,
                    ts,
                    debug: g.debug,
                }),
                Err(_) => sink.h2_event(Event::Anomaly(AnomalyKind::MalformedFrame)),
            },
            Kind::WINDOW_UPDATE => match WindowUpdate::load(&head, &payload) {
                Ok(w) => sink.h2_event(Event::WindowUpdate {
                    stream: head.stream,
                    from,
                    increment: w.increment,
                    ts,
                }),
                Err(_) => sink.h2_event(Event::Anomaly(AnomalyKind::MalformedFrame)),
            },
            _ => {}
        }
        if self.frames {
            self.log_frame(d, ts, head, 0, &payload, sink);
        }
        self.dir(d).buf = payload;
    }

    #[cold]
    fn log_frame<S: EventSink + ?Sized>(
        &mut self,
        d: Dir,
        ts: Nanos,
        head: Head,
        data_len: u32,
        payload: &[u8],
        sink: &mut S,
    ) {
        let block = match self.block_done.take() {
            Some(true) => Block::Decoded(&self.list),
            Some(false) => Block::Failed,
            None => Block::None,
        };
        sink.h2_event(Event::Frame(FrameSeen {
            from: self.side_of(d),
            ts,
            head,
            data_len,
            payload,
            block,
        }));
    }

    /// A header block begins with `fragment` (of the HEADERS or PUSH_PROMISE frame `first`, with
    /// its time); it is decoded now if it also ends here.
    fn start_block<S: EventSink + ?Sized>(
        &mut self,
        d: Dir,
        first: (Head, Nanos),
        fragment: &[u8],
        end_headers: bool,
        sink: &mut S,
    ) {
        let dir = self.dir(d);
        dir.block_buf.clear();
        dir.block_buf.extend_from_slice(fragment);
        dir.block = Some(first);
        if end_headers {
            self.finish_block(d, sink);
        }
    }

    /// SETTINGS `from` announced outside a frame: the client's `HTTP2-Settings` of an h2c
    /// upgrade (RFC 7540 3.2.1), its initial settings.
    pub fn peer_settings<S: EventSink + ?Sized>(
        &mut self,
        from: Side,
        payload: &[u8],
        sink: &mut S,
    ) {
        let d = match from {
            Side::Client => self.client_dir,
            Side::Server => self.client_dir.reverse(),
        };
        self.settings(d, from, &Settings::from_payload(payload), sink);
    }

    fn settings<S: EventSink + ?Sized>(
        &mut self,
        d: Dir,
        from: Side,
        s: &Settings<'_>,
        sink: &mut S,
    ) {
        // Sent by the receiver of the other direction: each limits what comes to it. (A smaller
        // SETTINGS_HEADER_TABLE_SIZE reaches the HPACK table through the encoder's size update.)
        let other = self.dir(d.reverse());
        for (id, value) in s.iter() {
            sink.h2_event(Event::Setting { from, id, value });
            if id == SettingId::MAX_FRAME_SIZE {
                other.max_frame = value.clamp(16_384, (1 << 24) - 1);
                other.max_frame_known = true;
            }
        }
    }

    fn finish_block<S: EventSink + ?Sized>(&mut self, d: Dir, sink: &mut S) {
        let Some((head, ts)) = self.dir(d).block.take() else {
            return;
        };
        let mut list = std::mem::take(&mut self.list);
        let block = std::mem::take(&mut self.dir(d).block_buf);
        let r = self.dir(d).hpack.decode(&block, &mut list);
        self.dir(d).block_buf = block;
        if self.frames && head.kind != Kind::PUSH_PROMISE {
            self.block_done = Some(r.is_ok());
        }
        match r {
            Err(_) => sink.h2_event(Event::Anomaly(AnomalyKind::HpackError)),
            // The block only updated the table (gRPC never pushes).
            Ok(()) if head.kind == Kind::PUSH_PROMISE => {}
            Ok(()) => {
                if list.unknown_refs > 0 {
                    sink.h2_event(Event::Anomaly(AnomalyKind::HpackUnknownIndex));
                }
                // The bytes tell who is who.
                if !self.roles_settled {
                    let (request, response) = kind_of_block(&list, head.has(Flags::END_STREAM));
                    if request {
                        self.settle_roles(d, sink);
                    } else if response {
                        self.settle_roles(d.reverse(), sink);
                    }
                }
                self.mark_h2(sink);
                sink.h2_event(Event::Headers {
                    stream: head.stream,
                    from: self.side_of(d),
                    end_stream: head.has(Flags::END_STREAM),
                    ts,
                    list: &list,
                });
            }
        }
        self.list = list;
    }
}

/// (request headers, response headers): `:method` or `:path` make a request, `:status` a
/// response (RFC 9113 8.3.1, 8.3.2); so do `grpc-status` and `grpc-message`, which only
/// trailers carry (gRPC PROTOCOL-HTTP2.md), and END_STREAM on a block that is no request (a
/// gRPC client ends its stream with DATA; a server ends it with trailers): a tap that joins a
/// long stream may see its trailers before any other header block, all of it by index.
fn kind_of_block(list: &HeaderList, end_stream: bool) -> (bool, bool) {
    let (mut request, mut response) = (false, false);
    for f in list.iter() {
        match f.name {
            Text::Bytes(b":path" | b":method") => request = true,
            Text::Bytes(b":status") if f.value.bytes().is_some() => response = true,
            Text::Bytes(b"grpc-status" | b"grpc-message") => response = true,
            _ => {}
        }
    }
    (request && !response, (response || end_stream) && !request)
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
fn find_boundary(buf: &[u8], max_len: u32, next_max: u32) -> Boundary {
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
                if Head::plausible(&raw2, next_max) {
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
