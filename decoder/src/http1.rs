//! HTTP/1.1 (RFC 9112) for the RPCs that run over it: gRPC-Web and Connect. Sans-IO like the
//! HTTP/2 layer: bytes of each direction in, the same [`Event`]s out (each request/response
//! exchange is a stream, numbered 1, 3, 5, ... in request order), so the call tracker applies
//! one set of rules to both versions. Heads are parsed by httparse; bodies are delimited by
//! Content-Length, chunked transfer coding, or (responses) the connection's close. Requests
//! may be pipelined: responses answer them in order. Every buffer is bounded: a head past
//! [`MAX_HEAD`] or a chunk-size line past [`MAX_LINE`] ends decoding of the connection (an
//! anomaly).
//!
//! Joined mid-way (or after a gap), nothing on the wire numbers the exchanges: decoding hunts
//! for a request head at the start of a client segment, then takes the next response head at
//! the start of a server segment for its answer. That pairing holds because an HTTP/1.1 client
//! that does not pipeline (browsers, node, Go, curl, Envoy: none do) sends a request only once
//! the previous response has ended; a server still sending other bytes after that request is
//! proof of pipelining, and the connection is given up (`http1_unpaired`) rather than paired
//! wrong. The exchange in flight when the capture joined is not seen.
//!
//! `Upgrade: h2c` (RFC 7540 3.2) is followed: a request offering it and a `101` accepting it
//! switch each direction to HTTP/2 where its HTTP/1.1 message ends (the server's right after the
//! 101's head, the client's after the offering request's body, where its preface begins); the
//! offering request is stream 1 of the HTTP/2 connection, answered there. Other upgrades
//! (WebSocket) end decoding.

use std::collections::VecDeque;

use types::{Dir, Nanos};

use crate::anomaly::AnomalyKind;
use crate::h2::event::{Event, EventSink, Side};
use crate::hpack::HeaderList;

/// Largest request or response head kept while it arrives.
pub const MAX_HEAD: usize = 64 << 10;
/// Largest chunk-size line.
const MAX_LINE: usize = 1024;
/// Fields of one head parsed.
const MAX_FIELDS: usize = 128;
/// Requests waiting for their responses (pipelining).
const MAX_PENDING: usize = 1024;

/// Whether a segment begins with an HTTP/1.x request line whole (a method, a target, the
/// version): where a connection joined mid-way begins to be decoded.
pub fn starts_request(b: &[u8]) -> bool {
    if !looks_like_request(b) {
        return false;
    }
    let line = b.iter().position(|&c| c == b'\n').map(|n| &b[..n]);
    line.is_some_and(|l| {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        (l.ends_with(b" HTTP/1.1") || l.ends_with(b" HTTP/1.0"))
            && !l.iter().any(|&c| c < 0x20 || c == 0x7f)
    })
}

/// Whether the first bytes of a direction open an HTTP/1.x request: a method, a space, then a
/// target (an origin form `/...`, `*`, or an absolute URI).
pub fn looks_like_request(b: &[u8]) -> bool {
    const METHODS: [&[u8]; 9] = [
        b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT", b"TRACE",
    ];
    METHODS.iter().any(|m| {
        b.len() > m.len() + 1
            && b.starts_with(m)
            && b[m.len()] == b' '
            && matches!(b[m.len() + 1], b'/' | b'*' | b'h')
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    /// This many bytes still to come.
    Length(u64),
    /// Chunked: the state of the chunk being read.
    Chunked(Chunk),
    /// Until the connection closes (a response without a length).
    Close,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading the chunk-size line.
    Size,
    /// This many bytes of chunk data still to come.
    Data(u64),
    /// The CRLF after chunk data: this many bytes of it still to come.
    DataEnd(u8),
    /// After the last chunk: trailer lines until an empty one.
    Trailers,
}

#[derive(Debug, Default)]
struct Half {
    /// A head (or a chunk-size or trailer line) being assembled.
    buf: Vec<u8>,
    /// The body being read, and its stream.
    body: Option<(u32, Body)>,
    /// Where messages begin is not known (joined mid-way, or after a gap): bytes are skipped
    /// until a segment begins with a head.
    hunting: bool,
}

impl Half {
    fn hunting() -> Half {
        Half {
            hunting: true,
            ..Half::default()
        }
    }
}

/// One HTTP/1.1 connection.
#[derive(Debug)]
pub struct Http1 {
    /// The direction of the client's bytes.
    client: Dir,
    /// Indexed by side: the client's, the server's.
    halves: [Half; 2],
    next_stream: u32,
    /// Requests not answered yet, in order.
    pending: VecDeque<Pending>,
    list: HeaderList,
    dead: bool,
    /// The last request offered `Upgrade: h2c`: the settings its `HTTP2-Settings` carried
    /// (the SETTINGS payload, base64url-decoded).
    h2c_offer: Option<Vec<u8>>,
    /// Indexed by side: that side's bytes are HTTP/2 now (after an h2c upgrade).
    switched: [bool; 2],
    /// The server accepted the upgrade and [`Http1::take_upgrade`] has not said so yet: the
    /// client's settings from the offer.
    upgrade: Option<Vec<u8>>,
}

/// A request waiting for its response.
#[derive(Debug, Clone, Copy)]
struct Pending {
    stream: u32,
    /// Its method was HEAD: the response has no body.
    head: bool,
    /// It offered `Upgrade: h2c`.
    h2c: bool,
}

impl Http1 {
    /// A connection whose client sends on `client`.
    pub fn new(client: Dir) -> Http1 {
        Http1 {
            client,
            halves: [Half::default(), Half::default()],
            next_stream: 1,
            pending: VecDeque::new(),
            list: HeaderList::default(),
            dead: false,
            h2c_offer: None,
            switched: [false; 2],
            upgrade: None,
        }
    }

    /// A connection joined mid-way whose client sends on `client` (a segment of it began with
    /// a request head): both directions hunt for the start of a message.
    pub fn joined(client: Dir) -> Http1 {
        let mut h = Http1::new(client);
        h.halves = [Half::hunting(), Half::hunting()];
        h
    }

    /// Whether the bytes of direction `d` are HTTP/2 now (an h2c upgrade switched them).
    pub fn switched(&self, d: Dir) -> bool {
        self.switched[usize::from(d != self.client)]
    }

    /// Once, after the server accepted an h2c upgrade: the SETTINGS payload the client's
    /// offer carried in `HTTP2-Settings` (its initial settings; empty if it carried none).
    pub fn take_upgrade(&mut self) -> Option<Vec<u8>> {
        self.upgrade.take()
    }

    /// Decoding stopped (a bound, an upgrade, a gap).
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Bytes the connection holds.
    pub fn memory(&self) -> usize {
        self.halves.iter().map(|h| h.buf.capacity()).sum::<usize>()
            + self.pending.capacity() * std::mem::size_of::<Pending>()
            + self.h2c_offer.as_ref().map_or(0, Vec::capacity)
    }

    fn die<S: EventSink + ?Sized>(&mut self, sink: &mut S, kind: AnomalyKind) {
        if !self.dead {
            self.dead = true;
            self.halves = [Half::default(), Half::default()];
            sink.h2_event(Event::Lost {
                from: Side::Client,
                stream: None,
            });
            sink.h2_event(Event::Lost {
                from: Side::Server,
                stream: None,
            });
            sink.h2_event(Event::Anomaly(kind));
        }
    }

    /// Bytes of direction `d` were lost: where a message ends is not known any more. Open
    /// exchanges are marked; both directions hunt for the next request and its response.
    pub fn handle_gap<S: EventSink + ?Sized>(&mut self, d: Dir, sink: &mut S) {
        if self.dead {
            return;
        }
        if self.switched(d) {
            return;
        }
        self.pending.clear();
        self.h2c_offer = None;
        for (i, from) in [Side::Client, Side::Server].into_iter().enumerate() {
            if !self.switched[i] {
                self.halves[i] = Half::hunting();
                sink.h2_event(Event::Lost { from, stream: None });
            }
        }
        sink.h2_event(Event::Anomaly(AnomalyKind::GapLostFrames));
    }

    /// The connection closed: a response read until the close ends with it.
    pub fn handle_closed<S: EventSink + ?Sized>(&mut self, ts: Nanos, sink: &mut S) {
        let server = &mut self.halves[1];
        if let Some((stream, Body::Close)) = server.body {
            server.body = None;
            sink.h2_event(Event::DataEndStream {
                stream,
                from: Side::Server,
                ts,
            });
        }
    }

    /// Bytes of direction `d`, in order, that arrived at `ts`. Returns what follows the
    /// direction's switch to HTTP/2 (an h2c upgrade): those bytes are HTTP/2's.
    pub fn handle_data<'a, S: EventSink + ?Sized>(
        &mut self,
        d: Dir,
        ts: Nanos,
        mut data: &'a [u8],
        sink: &mut S,
    ) -> &'a [u8] {
        let from = if d == self.client {
            Side::Client
        } else {
            Side::Server
        };
        let i = usize::from(from == Side::Server);
        while !data.is_empty() && !self.dead {
            if self.switched[i] {
                return data;
            }
            match self.halves[i].body {
                None if from == Side::Client && self.client_switches(data) => {
                    self.switched[0] = true;
                    self.halves[0] = Half::default();
                    return data;
                }
                None if self.halves[i].hunting => data = self.hunt(from, data, sink),
                None => data = self.head(from, ts, data, sink),
                Some((stream, body)) => data = self.body(from, stream, body, ts, data, sink),
            }
        }
        &[]
    }

    /// A segment of `from` while its messages' starts are not known: decoding begins where
    /// one opens a head (a request; a response once a request waits for it); the rest is
    /// skipped.
    fn hunt<'a, S: EventSink + ?Sized>(
        &mut self,
        from: Side,
        data: &'a [u8],
        sink: &mut S,
    ) -> &'a [u8] {
        let i = usize::from(from == Side::Server);
        let found = match from {
            Side::Client => starts_request(data),
            Side::Server if self.pending.is_empty() => false,
            Side::Server if data.starts_with(b"HTTP/1.") => true,
            Side::Server => {
                // A response still in flight after the request decoding began with: the
                // client pipelines, and which response answers which request is not known.
                self.die(sink, AnomalyKind::Http1Unpaired);
                return &[];
            }
        };
        if found {
            self.halves[i].hunting = false;
            data
        } else {
            &[]
        }
    }

    /// At the head of a client message: whether the client's bytes are HTTP/2 from here, since
    /// the server accepted an upgrade (its 101 is in), or an offer is waiting and the HTTP/2
    /// preface begins (the capture may order the client's preface before the server's 101).
    fn client_switches(&self, data: &[u8]) -> bool {
        let preface = b"PRI * HTTP/2.0\r\n";
        let n = data.len().min(preface.len());
        self.switched[1] || (self.h2c_offer.is_some() && data[..n] == preface[..n])
    }

    /// Reads a head from `data`; returns what follows it.
    fn head<'a, S: EventSink + ?Sized>(
        &mut self,
        from: Side,
        ts: Nanos,
        data: &'a [u8],
        sink: &mut S,
    ) -> &'a [u8] {
        let i = usize::from(from == Side::Server);
        let half = &mut self.halves[i];
        // Where the head ends: the first empty line, looked for from a little before the
        // bytes already held.
        let from_at = half.buf.len().saturating_sub(3);
        half.buf.extend_from_slice(data);
        let Some(end) = find(&half.buf[from_at..], b"\r\n\r\n").map(|e| from_at + e + 4) else {
            if half.buf.len() > MAX_HEAD {
                self.die(sink, AnomalyKind::FrameTooLarge);
            }
            return &[];
        };
        let rest_at = data.len() - (half.buf.len() - end);
        let head = std::mem::take(&mut half.buf);
        match from {
            Side::Client => self.request(&head[..end], ts, sink),
            Side::Server => self.response(&head[..end], ts, sink),
        }
        if let Some(h) = self.halves.get_mut(i) {
            // The buffer's memory is kept for the next head.
            let mut head = head;
            head.clear();
            h.buf = head;
        }
        &data[rest_at..]
    }

    fn request<S: EventSink + ?Sized>(&mut self, head: &[u8], ts: Nanos, sink: &mut S) {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut req = httparse::Request::new(&mut fields);
        let Ok(httparse::Status::Complete(_)) = req.parse(head) else {
            self.die(sink, AnomalyKind::MalformedFrame);
            return;
        };
        if self.pending.len() >= MAX_PENDING {
            self.die(sink, AnomalyKind::StreamLimit);
            return;
        }
        let method = req.method.unwrap_or("");
        let h2c = offers_h2c(req.headers);
        self.h2c_offer = h2c.then(|| {
            req.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("http2-settings"))
                .and_then(|h| crate::metadata::decode_bin(h.value))
                .unwrap_or_default()
        });
        let list = &mut self.list;
        list.clear();
        list.push(b":method", method.as_bytes());
        list.push(b":path", req.path.unwrap_or("").as_bytes());
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("host") {
                list.push(b":authority", h.value);
            }
        }
        let body = push_fields(list, req.headers);
        let stream = self.next_stream;
        self.next_stream = self.next_stream.wrapping_add(2);
        self.pending.push_back(Pending {
            stream,
            head: method == "HEAD",
            h2c,
        });
        // A request without a length has no body (RFC 9112 6.3).
        let body = match body {
            Some(Body::Close) | None => None,
            b => b,
        };
        self.open(Side::Client, stream, body, ts, sink);
    }

    fn response<S: EventSink + ?Sized>(&mut self, head: &[u8], ts: Nanos, sink: &mut S) {
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut resp = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(_)) = resp.parse(head) else {
            self.die(sink, AnomalyKind::MalformedFrame);
            return;
        };
        let code = resp.code.unwrap_or(0);
        if code == 101 {
            let front = self.pending.front().is_some_and(|p| p.h2c);
            if front && offers_h2c(resp.headers) && self.client == Dir::ToServer {
                // The offering request is stream 1 of HTTP/2: its response comes there.
                self.pending.pop_front();
                self.pending.clear();
                self.switched[1] = true;
                self.halves[1] = Half::default();
                self.upgrade = Some(self.h2c_offer.take().unwrap_or_default());
            } else {
                // Another protocol (WebSocket): not followed.
                self.die(sink, AnomalyKind::NotHttp2);
            }
            return;
        }
        if (100..200).contains(&code) {
            // 100 Continue and the like: the real response follows.
            return;
        }
        let Some(Pending {
            stream,
            head: head_request,
            h2c,
        }) = self.pending.pop_front()
        else {
            self.die(sink, AnomalyKind::MalformedFrame);
            return;
        };
        if h2c {
            // The server answered in HTTP/1.1: the offer is over.
            self.h2c_offer = None;
        }
        let list = &mut self.list;
        list.clear();
        // A status code is three digits (RFC 9110 15).
        let digit = |d: u16| b'0' + u8::try_from(d % 10).unwrap_or(0);
        list.push(
            b":status",
            &[digit(code / 100), digit(code / 10), digit(code)],
        );
        let body = push_fields(list, resp.headers);
        let body = if head_request || code == 204 || code == 304 {
            None
        } else {
            // Without a length, a response runs to the connection's close.
            Some(body.unwrap_or(Body::Close))
        };
        self.open(Side::Server, stream, body, ts, sink);
    }

    /// Hands on the head just parsed (in `self.list`) and readies its body.
    fn open<S: EventSink + ?Sized>(
        &mut self,
        from: Side,
        stream: u32,
        body: Option<Body>,
        ts: Nanos,
        sink: &mut S,
    ) {
        let body = body.filter(|b| *b != Body::Length(0));
        sink.h2_event(Event::Headers {
            stream,
            from,
            end_stream: body.is_none(),
            ts,
            list: &self.list,
        });
        let i = usize::from(from == Side::Server);
        self.halves[i].body = body.map(|b| (stream, b));
    }

    /// Reads body bytes from `data`; returns what follows the body (or nothing).
    fn body<'a, S: EventSink + ?Sized>(
        &mut self,
        from: Side,
        stream: u32,
        body: Body,
        ts: Nanos,
        data: &'a [u8],
        sink: &mut S,
    ) -> &'a [u8] {
        let i = usize::from(from == Side::Server);
        let data_event = |sink: &mut S, bytes: &[u8]| {
            if !bytes.is_empty() {
                sink.h2_event(Event::Data {
                    stream,
                    from,
                    ts,
                    bytes,
                    at: (0, 0),
                });
            }
        };
        let end = |this: &mut Http1, sink: &mut S| {
            this.halves[i].body = None;
            sink.h2_event(Event::DataEndStream { stream, from, ts });
        };
        match body {
            Body::Close => {
                data_event(sink, data);
                &[]
            }
            Body::Length(left) => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                data_event(sink, &data[..n]);
                let left = left - n as u64;
                if left == 0 {
                    end(self, sink);
                } else {
                    self.halves[i].body = Some((stream, Body::Length(left)));
                }
                &data[n..]
            }
            Body::Chunked(Chunk::Data(left)) => {
                let n = usize::try_from(left).unwrap_or(usize::MAX).min(data.len());
                data_event(sink, &data[..n]);
                let left = left - n as u64;
                let next = if left == 0 {
                    Chunk::DataEnd(2)
                } else {
                    Chunk::Data(left)
                };
                self.halves[i].body = Some((stream, Body::Chunked(next)));
                &data[n..]
            }
            Body::Chunked(Chunk::DataEnd(left)) => {
                let n = usize::from(left).min(data.len());
                let left = left - u8::try_from(n).unwrap_or(left);
                let next = if left == 0 {
                    Chunk::Size
                } else {
                    Chunk::DataEnd(left)
                };
                self.halves[i].body = Some((stream, Body::Chunked(next)));
                &data[n..]
            }
            Body::Chunked(state @ (Chunk::Size | Chunk::Trailers)) => {
                // A line: the chunk size, or a trailer line (an empty one ends the message).
                let half = &mut self.halves[i];
                let Some(nl) = data.iter().position(|&b| b == b'\n') else {
                    half.buf.extend_from_slice(data);
                    if half.buf.len() > MAX_LINE {
                        self.die(sink, AnomalyKind::MalformedFrame);
                    }
                    return &[];
                };
                half.buf.extend_from_slice(&data[..nl]);
                let line = std::mem::take(&mut half.buf);
                let line = line.strip_suffix(b"\r").unwrap_or(&line);
                match state {
                    Chunk::Size => {
                        let hex = line.split(|&b| b == b';').next().unwrap_or(&[]);
                        let size = std::str::from_utf8(hex)
                            .ok()
                            .and_then(|h| u64::from_str_radix(h.trim(), 16).ok());
                        match size {
                            Some(0) => {
                                self.halves[i].body =
                                    Some((stream, Body::Chunked(Chunk::Trailers)));
                            }
                            Some(n) => {
                                self.halves[i].body = Some((stream, Body::Chunked(Chunk::Data(n))));
                            }
                            None => self.die(sink, AnomalyKind::MalformedFrame),
                        }
                    }
                    _ => {
                        if line.is_empty() {
                            end(self, sink);
                        }
                    }
                }
                &data[nl + 1..]
            }
        }
    }
}

/// Whether a head's `Upgrade` names h2c (a request's offer, a 101's acceptance).
fn offers_h2c(headers: &[httparse::Header<'_>]) -> bool {
    headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("upgrade")
            && h.value
                .split(|&b| b == b',')
                .any(|v| v.trim_ascii().eq_ignore_ascii_case(b"h2c"))
    })
}

/// Adds a head's fields to `list` (names in lower case, as HTTP/2 has them; hop-by-hop ones
/// left out); returns how its body is delimited, if it says.
fn push_fields(list: &mut HeaderList, headers: &[httparse::Header<'_>]) -> Option<Body> {
    let mut body = None;
    for h in headers {
        let is = |n: &str| h.name.eq_ignore_ascii_case(n);
        if ![
            "host",
            "connection",
            "keep-alive",
            "transfer-encoding",
            "upgrade",
            "http2-settings",
        ]
        .into_iter()
        .any(is)
        {
            list.push(h.name.as_bytes(), h.value);
        }
        if is("transfer-encoding")
            && h.value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"chunked"))
        {
            body = Some(Body::Chunked(Chunk::Size));
        } else if is("content-length") && body.is_none() {
            body = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .map(Body::Length);
        }
    }
    body
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Rec(Vec<String>);

    impl EventSink for Rec {
        fn h2_event(&mut self, e: Event<'_>) {
            self.0.push(match e {
                Event::Headers {
                    stream,
                    from,
                    end_stream,
                    list,
                    ..
                } => {
                    let fields: Vec<String> = list
                        .iter()
                        .map(|f| {
                            format!(
                                "{}={}",
                                String::from_utf8_lossy(f.name.bytes().unwrap_or_default()),
                                String::from_utf8_lossy(f.value.bytes().unwrap_or_default())
                            )
                        })
                        .collect();
                    format!(
                        "H{stream}{}{} {}",
                        from.name(),
                        if end_stream { "!" } else { "" },
                        fields.join(",")
                    )
                }
                Event::Data { stream, bytes, .. } => {
                    format!("D{stream} {}", String::from_utf8_lossy(bytes))
                }
                Event::DataEndStream { stream, .. } => format!("E{stream}"),
                other => format!("{other:?}"),
            });
        }
    }

    #[test]
    fn pipelined_requests_lengths_and_chunks_split_anywhere() {
        let req = b"POST /a.S/M HTTP/1.1\r\nHost: h\r\nContent-Type: application/proto\r\nContent-Length: 3\r\n\r\nabcGET /x?connect=v1 HTTP/1.1\r\nhost: h\r\n\r\n";
        let resp = b"HTTP/1.1 200 OK\r\nContent-Type: application/proto\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n1;ext\r\nz\r\n0\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}";
        for cut in [1usize, 7, 33, 70, 90] {
            let mut h = Http1::new(Dir::ToServer);
            let mut rec = Rec::default();
            let (a, b) = req.split_at(cut.min(req.len()));
            h.handle_data(Dir::ToServer, Nanos(1), a, &mut rec);
            h.handle_data(Dir::ToServer, Nanos(2), b, &mut rec);
            let (a, b) = resp.split_at(cut.min(resp.len()));
            h.handle_data(Dir::ToClient, Nanos(3), a, &mut rec);
            h.handle_data(Dir::ToClient, Nanos(4), b, &mut rec);
            let got: Vec<String> = rec.0.into_iter().filter(|e| !e.is_empty()).collect();
            let joined = got.join(" | ");
            assert!(joined.starts_with("H1client :method=POST,:path=/a.S/M,:authority=h,content-type=application/proto,content-length=3"), "{cut}: {joined}");
            assert!(
                joined.contains("H3client! :method=GET,:path=/x?connect=v1,:authority=h"),
                "{cut}: {joined}"
            );
            assert!(
                joined.contains("H1server :status=200,content-type=application/proto"),
                "{cut}: {joined}"
            );
            assert!(
                joined.contains("H3server :status=404,content-length=2"),
                "{cut}: {joined}"
            );
            let body1: String = got.iter().filter_map(|e| e.strip_prefix("D1 ")).collect();
            assert_eq!(body1, "abcxyz", "{cut}: {joined}");
            assert!(joined.ends_with("D3 {} | E3"), "{cut}: {joined}");
            assert_eq!(
                joined.matches("E1").count(),
                2,
                "{cut}: request and response end"
            );
        }
    }

    #[test]
    fn heads_and_lines_are_bounded() {
        let mut h = Http1::new(Dir::ToServer);
        let mut rec = Rec::default();
        h.handle_data(Dir::ToServer, Nanos(1), b"POST / HTTP/1.1\r\n", &mut rec);
        let junk = vec![b'a'; 70 << 10];
        h.handle_data(Dir::ToServer, Nanos(2), &junk, &mut rec);
        assert!(h.is_dead());
        assert!(looks_like_request(b"POST /x HTTP/1.1\r\n"));
        assert!(!looks_like_request(b"PRI * HTTP/2.0\r\n"));
        assert!(!looks_like_request(b"\x00\x00\x12\x04"));
    }

    #[test]
    fn h2c_upgrade_switches_each_direction_where_its_message_ends() {
        // curl --http2: its HTTP2-Settings (base64url of the SETTINGS payload), a body.
        let req = b"POST /a.S/M HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\ncontent-type: application/grpc\r\nContent-Length: 5\r\n\r\n\0\0\0\0\0";
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n\0\0\0\x04\0\0\0\0\0";
        for client_first in [false, true] {
            let mut h = Http1::new(Dir::ToServer);
            let mut rec = Rec::default();
            assert!(
                h.handle_data(Dir::ToServer, Nanos(1), req, &mut rec)
                    .is_empty()
            );
            let (rest_c, rest_s);
            if client_first {
                rest_c = h.handle_data(Dir::ToServer, Nanos(2), preface, &mut rec);
                assert!(h.take_upgrade().is_none());
                rest_s = h.handle_data(Dir::ToClient, Nanos(3), resp, &mut rec);
            } else {
                rest_s = h.handle_data(Dir::ToClient, Nanos(2), resp, &mut rec);
                rest_c = h.handle_data(Dir::ToServer, Nanos(3), preface, &mut rec);
            }
            assert_eq!(rest_c, preface, "the client's preface goes to HTTP/2");
            assert_eq!(rest_s, b"\0\0\0\x04\0\0\0\0\0", "the server's SETTINGS too");
            assert!(h.switched(Dir::ToServer) && h.switched(Dir::ToClient));
            let settings = h.take_upgrade().expect("accepted");
            let s = crate::h2::frame::Settings::from_payload(&settings);
            let got: Vec<(u16, u32)> = s.iter().map(|(id, v)| (id.0, v)).collect();
            assert_eq!(got, [(3, 100), (4, 10 << 20), (2, 0)]);
            assert!(h.take_upgrade().is_none(), "said once");
            let joined = rec.0.join(" | ");
            assert!(
                !joined.contains("upgrade") && !joined.contains("http2-settings"),
                "hop-by-hop fields are not the call's: {joined}"
            );
            assert!(!h.is_dead());
        }
        // Another upgrade (WebSocket) is not followed; a server that ignores the offer answers
        // in HTTP/1.1 and decoding goes on.
        let mut h = Http1::new(Dir::ToServer);
        let mut rec = Rec::default();
        h.handle_data(Dir::ToServer, Nanos(1), req, &mut rec);
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
        assert!(
            h.handle_data(Dir::ToClient, Nanos(2), ok, &mut rec)
                .is_empty()
        );
        assert!(!h.switched(Dir::ToClient) && h.take_upgrade().is_none());
        let ws =
            b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
        h.handle_data(Dir::ToServer, Nanos(3), ws, &mut rec);
        let switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x00";
        h.handle_data(Dir::ToClient, Nanos(4), switching, &mut rec);
        assert!(h.is_dead() && !h.switched(Dir::ToClient));
    }

    #[test]
    fn joined_mid_way_decoding_begins_at_a_request_and_its_response() {
        let mut h = Http1::joined(Dir::ToClient);
        let mut rec = Rec::default();
        // The rest of an exchange from before: skipped both ways.
        h.handle_data(Dir::ToServer, Nanos(1), b"ail\r\n\r\n", &mut rec);
        h.handle_data(Dir::ToClient, Nanos(1), b"tail of a body", &mut rec);
        h.handle_data(
            Dir::ToServer,
            Nanos(1),
            b"HTTP/1.1 200 OK\r\n\r\n",
            &mut rec,
        );
        assert!(rec.0.is_empty(), "{:?}", rec.0);
        // The client (capture direction ToClient) sends a request: decoding begins.
        let req = b"POST /a.S/M HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab";
        h.handle_data(Dir::ToClient, Nanos(2), req, &mut rec);
        let resp = b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nz";
        h.handle_data(Dir::ToServer, Nanos(3), resp, &mut rec);
        let joined = rec.0.join(" | ");
        assert!(joined.starts_with("H1client :method=POST"), "{joined}");
        assert!(
            joined.ends_with("H1server :status=200,content-length=1 | D1 z | E1"),
            "{joined}"
        );
        assert!(!h.is_dead());
        assert!(starts_request(b"GET /x HTTP/1.1\r\n"));
        assert!(!starts_request(b"GET /x HTTP/1.1"), "the whole line");
        assert!(!starts_request(b"POST /x\x00 HTTP/1.1\r\n"));
        assert!(!starts_request(b"POST and then some HTTP/2.0\r\n"));
    }

    #[test]
    fn a_response_still_in_flight_after_the_first_request_is_pipelining() {
        let mut h = Http1::joined(Dir::ToServer);
        let mut rec = Rec::default();
        let req = b"POST /a.S/M HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
        h.handle_data(Dir::ToServer, Nanos(1), req, &mut rec);
        // Not a head: the body of an answer to an earlier request the capture did not see.
        h.handle_data(
            Dir::ToClient,
            Nanos(2),
            b"more of an earlier body",
            &mut rec,
        );
        assert!(h.is_dead());
        assert!(
            rec.0.iter().any(|e| e.contains("Http1Unpaired")),
            "{:?}",
            rec.0
        );
    }

    #[test]
    fn after_a_gap_decoding_begins_again_at_the_next_request() {
        let mut h = Http1::new(Dir::ToServer);
        let mut rec = Rec::default();
        let req = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc";
        h.handle_data(Dir::ToServer, Nanos(1), req, &mut rec);
        h.handle_gap(Dir::ToServer, &mut rec);
        assert!(!h.is_dead());
        h.handle_data(Dir::ToServer, Nanos(2), b"ij", &mut rec);
        h.handle_data(
            Dir::ToClient,
            Nanos(3),
            b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
            &mut rec,
        );
        let req2 = b"POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n";
        h.handle_data(Dir::ToServer, Nanos(4), req2, &mut rec);
        h.handle_data(
            Dir::ToClient,
            Nanos(5),
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
            &mut rec,
        );
        let joined = rec.0.join(" | ");
        assert!(joined.contains("Anomaly(GapLostFrames)"), "{joined}");
        assert!(
            joined.ends_with("H3client! :method=POST,:path=/b,:authority=h,content-length=0 | H3server! :status=404,content-length=0"),
            "the response after the gap answers the request after it: {joined}"
        );
    }
}
