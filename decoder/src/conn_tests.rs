//! Connection decoder on hand-built frames: the paths real captures rarely take.

#![allow(clippy::cast_possible_truncation)] // test values are small and known

use super::*;
use crate::anomaly::AnomalyKind;
use crate::calls::record::{CallRecord, CallType, Confidence, Reset, StatusSource};
use crate::grpc::Code;
use crate::h2::event::Side;
use crate::h2::frame::PREFACE;
use proptest::prelude::*;
use std::time::Duration;

const CLIENT: Dir = Dir::ToServer;
const SERVER: Dir = Dir::ToClient;

/// Frame types and flags as bytes, for building frames.
mod kind {
    use crate::h2::frame::Kind;
    pub(super) const DATA: u8 = Kind::DATA.0;
    pub(super) const HEADERS: u8 = Kind::HEADERS.0;
    pub(super) const RST_STREAM: u8 = Kind::RST_STREAM.0;
    pub(super) const SETTINGS: u8 = Kind::SETTINGS.0;
    pub(super) const GOAWAY: u8 = Kind::GOAWAY.0;
    pub(super) const CONTINUATION: u8 = Kind::CONTINUATION.0;
}
mod flag {
    use crate::h2::frame::Flags;
    pub(super) const END_STREAM: u8 = Flags::END_STREAM.0;
    pub(super) const END_HEADERS: u8 = Flags::END_HEADERS.0;
    pub(super) const PADDED: u8 = Flags::PADDED.0;
    pub(super) const PRIORITY: u8 = Flags::PRIORITY.0;
}

fn conn(id: u64, client: SocketAddr, server: SocketAddr, roles: bool) -> ConnDecoder {
    ConnDecoder::new(
        ConnId::new(0, id),
        (client, server),
        Nanos(0),
        roles,
        DecoderLimits::default(),
    )
}

#[derive(Default)]
struct Rec {
    started: Vec<CallRecord>,
    ended: Vec<CallRecord>,
    events: Vec<ConnEvent>,
}

impl Sink for Rec {
    fn call_started(&mut self, call: &CallRecord) {
        self.started.push(call.clone());
    }
    fn call_ended(&mut self, call: &CallRecord) {
        self.ended.push(call.clone());
    }
    fn conn_event(&mut self, _conn: ConnId, event: ConnEvent) {
        self.events.push(event);
    }
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend(stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn msg(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0];
    m.extend((body.len() as u32).to_be_bytes());
    m.extend_from_slice(body);
    m
}

/// Both directions of a connection, with an HPACK encoder each.
struct Conn {
    dec: ConnDecoder,
    enc: [::hpack::Encoder<'static>; 2],
    out: Rec,
    ts: u64,
}

impl Conn {
    fn new() -> Conn {
        let a: std::net::SocketAddr = "10.0.0.1:40000".parse().expect("addr");
        let b: std::net::SocketAddr = "10.0.0.2:50051".parse().expect("addr");
        let mut c = Conn {
            dec: conn(7, a, b, true),
            enc: [::hpack::Encoder::new(), ::hpack::Encoder::new()],
            out: Rec::default(),
            ts: 1_000_000_000,
        };
        let mut preface = PREFACE.to_vec();
        preface.extend(frame(kind::SETTINGS, 0, 0, &[]));
        c.send(CLIENT, &preface);
        c.send(SERVER, &frame(kind::SETTINGS, 0, 0, &[]));
        c
    }

    fn send(&mut self, d: Dir, bytes: &[u8]) {
        self.ts += 1_000_000;
        self.dec
            .handle_data(d, Nanos(self.ts), bytes, &mut self.out);
    }

    fn headers(&mut self, d: Dir, stream: u32, flags: u8, fields: &[(&str, &str)]) -> Vec<u8> {
        let block =
            self.enc[d.index()].encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
        frame(kind::HEADERS, flags | flag::END_HEADERS, stream, &block)
    }

    fn send_headers(&mut self, d: Dir, stream: u32, flags: u8, fields: &[(&str, &str)]) {
        let h = self.headers(d, stream, flags, fields);
        self.send(d, &h);
    }

    fn request(&mut self, stream: u32, extra: &[(&str, &str)]) {
        let mut f = vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/pkg.Svc/Do"),
            ("content-type", "application/grpc"),
        ];
        f.extend_from_slice(extra);
        self.send_headers(CLIENT, stream, 0, &f);
        self.send(
            CLIENT,
            &frame(kind::DATA, flag::END_STREAM, stream, &msg(b"req")),
        );
    }
}

#[test]
fn trailers_only_and_http_status_without_grpc_status() {
    let mut c = Conn::new();
    c.request(1, &[]);
    c.send_headers(
        SERVER,
        1,
        flag::END_STREAM,
        &[
            (":status", "200"),
            ("grpc-status", "5"),
            ("grpc-message", "gone%20away"),
        ],
    );
    c.request(3, &[]);
    c.send_headers(SERVER, 3, flag::END_STREAM, &[(":status", "503")]);
    let e = &c.out.ended;
    assert_eq!(e[0].status, Some(Code(5)));
    assert_eq!(e[0].status_source, StatusSource::TrailersOnly);
    assert_eq!(e[0].grpc_message.as_deref(), Some("gone away"));
    assert_eq!(e[1].status, Some(Code::UNAVAILABLE));
    assert_eq!(e[1].status_source, StatusSource::HttpStatus);
}

#[test]
fn resets_goaway_and_missing_trailers() {
    let mut c = Conn::new();
    for s in [1, 3, 5, 7] {
        c.request(s, &[]);
    }
    // Stream 1: the server refuses it.
    c.send(SERVER, &frame(kind::RST_STREAM, 0, 1, &7u32.to_be_bytes()));
    // Stream 3: the server ends it with DATA, no trailers.
    c.send_headers(SERVER, 3, 0, &[(":status", "200")]);
    c.send(SERVER, &frame(kind::DATA, flag::END_STREAM, 3, &msg(b"x")));
    // GOAWAY: last processed stream 5, so 7 was never processed.
    let mut goaway = 5u32.to_be_bytes().to_vec();
    goaway.extend(0u32.to_be_bytes());
    c.send(SERVER, &frame(kind::GOAWAY, 0, 0, &goaway));
    let by_stream = |out: &Rec, s: u32| {
        out.ended
            .iter()
            .find(|r| r.stream_id == s)
            .expect("ended")
            .clone()
    };
    let r1 = by_stream(&c.out, 1);
    assert_eq!(
        (r1.status, r1.status_source),
        (Some(Code::UNAVAILABLE), StatusSource::Reset)
    );
    assert_eq!(
        r1.reset,
        Some(Reset {
            by: Side::Server,
            code: 7
        })
    );
    let r3 = by_stream(&c.out, 3);
    assert_eq!(
        (r3.status, r3.status_source, r3.resp.msgs),
        (Some(Code::INTERNAL), StatusSource::NoTrailers, 1)
    );
    let r7 = by_stream(&c.out, 7);
    assert_eq!(
        (r7.status, r7.status_source),
        (Some(Code::UNAVAILABLE), StatusSource::Goaway)
    );
    assert!(
        c.out.ended.iter().all(|r| r.stream_id != 5),
        "stream 5 is still open"
    );
    assert!(c.out.events.contains(&ConnEvent::Goaway {
        by: Side::Server,
        code: 0,
        last_stream: 5,
        too_many_pings: false,
    }));
    // The server closes the connection with 5 open: it did not finish.
    c.dec.handle_closed(Nanos(c.ts), Some(SERVER), &mut c.out);
    let r5 = by_stream(&c.out, 5);
    assert_eq!(
        (r5.status, r5.status_source),
        (Some(Code::UNAVAILABLE), StatusSource::ConnectionClosed)
    );
}

#[test]
fn a_client_that_closes_its_connection_gave_its_calls_up() {
    for (closer, want) in [
        (
            Some(CLIENT),
            (None, StatusSource::ClientClosed, true, Confidence::Inferred),
        ),
        (
            None,
            (
                Some(Code::UNAVAILABLE),
                StatusSource::ConnectionClosed,
                false,
                Confidence::Exact,
            ),
        ),
    ] {
        let mut c = Conn::new();
        c.request(1, &[("grpc-timeout", "1S")]);
        c.dec.handle_closed(Nanos(c.ts), closer, &mut c.out);
        let r = c.out.ended.first().expect("ended");
        assert_eq!(
            (
                r.status,
                r.status_source,
                r.error_unknown_code,
                r.status_confidence
            ),
            want,
            "{closer:?}"
        );
        assert_eq!(r.is_error(), Some(true));
    }
    // Past its deadline, a client's close is the expiry (as a server's is).
    let mut c = Conn::new();
    c.request(1, &[("grpc-timeout", "10m")]);
    c.dec
        .handle_closed(Nanos(c.ts + 50_000_000), Some(CLIENT), &mut c.out);
    let r = c.out.ended.first().expect("ended");
    assert_eq!(
        (r.status, r.status_source),
        (Some(Code::DEADLINE_EXCEEDED), StatusSource::Deadline)
    );
}

#[test]
fn traceparent_gives_the_trace_id() {
    let mut c = Conn::new();
    c.request(
        1,
        &[(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )],
    );
    c.request(
        3,
        &[(
            "traceparent",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        )],
    );
    c.request(5, &[("traceparent", "garbage")]);
    c.dec.finish(&mut c.out);
    let ids: Vec<Option<&str>> = c.out.ended.iter().map(|r| r.trace_id.as_deref()).collect();
    assert_eq!(
        ids,
        vec![Some("4bf92f3577b34da6a3ce929d0e0e4736"), None, None]
    );
}

#[test]
fn cancel_before_near_and_after_the_deadline() {
    let mut c = Conn::new();
    c.request(1, &[("grpc-timeout", "50m")]);
    c.send(CLIENT, &frame(kind::RST_STREAM, 0, 1, &8u32.to_be_bytes())); // 2 ms in: cancelled
    c.request(3, &[("grpc-timeout", "5m")]);
    c.ts += 40_000_000;
    c.send(CLIENT, &frame(kind::RST_STREAM, 0, 3, &8u32.to_be_bytes())); // well past 5 ms
    c.request(5, &[("grpc-timeout", "5m")]);
    c.ts += 5_000_000;
    c.send(CLIENT, &frame(kind::RST_STREAM, 0, 5, &8u32.to_be_bytes())); // just past 5 ms
    let e = &c.out.ended;
    let got: Vec<_> = e
        .iter()
        .map(|r| (r.status, r.status_source, r.status_confidence))
        .collect();
    assert_eq!(
        got,
        [
            (
                Some(Code::CANCELLED),
                StatusSource::Reset,
                Confidence::Exact
            ),
            (
                Some(Code::DEADLINE_EXCEEDED),
                StatusSource::Deadline,
                Confidence::Exact
            ),
            // Near the deadline an expiry and a late cancel look the same: an error, which
            // one unknown.
            (None, StatusSource::DeadlineNear, Confidence::Inferred),
        ]
    );
    assert_eq!(
        e.iter().map(CallRecord::is_error).collect::<Vec<_>>(),
        [Some(true), Some(true), Some(true)]
    );
    assert_eq!(e[1].timeout, Some(Duration::from_millis(5)));
}

#[test]
fn padding_priority_continuation_and_split_frames() {
    let mut c = Conn::new();
    let block = c.enc[CLIENT.index()].encode(
        [
            (":method", "POST"),
            (":path", "/pkg.Svc/Pad"),
            ("x-long", "abcdefghijklmnopqrstuvwxyz"),
        ]
        .iter()
        .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
    );
    // HEADERS with padding and priority, the block split across a CONTINUATION.
    let (a, b) = block.split_at(block.len() / 2);
    let mut p = vec![3u8]; // pad length
    p.extend([0, 0, 0, 0, 16]); // priority: dependency 0, weight 16
    p.extend_from_slice(a);
    p.extend([0, 0, 0]);
    let mut bytes = frame(kind::HEADERS, flag::PADDED | flag::PRIORITY, 1, &p);
    bytes.extend(frame(kind::CONTINUATION, flag::END_HEADERS, 1, b));
    // A padded DATA frame with two messages.
    let mut d = vec![2u8];
    d.extend(msg(b"one"));
    d.extend(msg(b"two"));
    d.extend([0, 0]);
    bytes.extend(frame(kind::DATA, flag::PADDED | flag::END_STREAM, 1, &d));
    // Delivered one byte at a time.
    for b in &bytes {
        c.send(CLIENT, std::slice::from_ref(b));
    }
    c.send_headers(
        SERVER,
        1,
        flag::END_STREAM,
        &[(":status", "200"), ("grpc-status", "0")],
    );
    let r = &c.out.ended[0];
    assert_eq!(r.method.as_deref(), Some("/pkg.Svc/Pad"));
    assert_eq!((r.req.msgs, r.req.bytes), (2, 6));
    assert_eq!(r.call_type, CallType::ClientStream);
    assert!(
        c.out
            .events
            .iter()
            .all(|e| !matches!(e, ConnEvent::Anomaly(_))),
        "{:?}",
        c.out.events
    );
}

#[test]
fn joining_inside_a_long_run_of_large_frames() {
    // gRPC C-core announces a 4 MiB SETTINGS_MAX_FRAME_SIZE and sends DATA frames of hundreds
    // of KiB; the capture starts inside one, before the client has sent anything.
    let a: std::net::SocketAddr = "10.0.0.1:40000".parse().expect("addr");
    let b: std::net::SocketAddr = "10.0.0.2:50051".parse().expect("addr");
    // Joined: no handshake, so the roles are a guess.
    let mut dec = conn(1, a, b, false);
    let mut out = Rec::default();
    let tail = vec![0x55u8; 300 << 10];
    dec.handle_data(Dir::ToClient, Nanos(10), &tail, &mut out);
    // The client's frames show the connection is HTTP/2.
    let mut enc_c = ::hpack::Encoder::new();
    let req = enc_c.encode([(&b":method"[..], &b"POST"[..]), (b":path", b"/pkg.Svc/Big")]);
    let mut client = frame(kind::HEADERS, flag::END_HEADERS, 43, &req);
    client.extend(frame(kind::DATA, flag::END_STREAM, 43, &msg(b"hi")));
    dec.handle_data(Dir::ToServer, Nanos(20), &client, &mut out);
    // The server's next frames: short headers, then one DATA frame of 40 KiB.
    let mut enc_s = ::hpack::Encoder::new();
    let resp = enc_s.encode([(&b":status"[..], &b"200"[..])]);
    let trl = enc_s.encode([(&b"grpc-status"[..], &b"0"[..])]);
    let mut server = frame(kind::HEADERS, flag::END_HEADERS, 43, &resp);
    server.extend(frame(kind::DATA, 0, 43, &msg(&[7u8; 40 << 10])));
    server.extend(frame(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        43,
        &trl,
    ));
    dec.handle_data(Dir::ToClient, Nanos(30), &server, &mut out);
    let r = out.ended.first().expect("the call ended");
    assert_eq!(r.method.as_deref(), Some("/pkg.Svc/Big"));
    assert_eq!((r.status, r.resp.msgs), (Some(Code::OK), 1));

    // DATA on a stream from before the capture (a server's frames still in flight after the
    // client reset it, as likely as a live stream), then the connection closes: no status.
    dec.handle_data(
        Dir::ToClient,
        Nanos(40),
        &frame(kind::DATA, 0, 41, &msg(b"x")),
        &mut out,
    );
    dec.handle_closed(Nanos(50), None, &mut out);
    let r = out.ended.last().expect("the partial call ended");
    assert_eq!(r.stream_id, 41);
    assert_eq!(
        (r.status, r.status_source, r.status_confidence),
        (None, StatusSource::ConnectionClosed, Confidence::Unknown)
    );
}

#[test]
fn joining_mid_stream_resyncs_after_junk_and_gaps() {
    let a: std::net::SocketAddr = "10.0.0.1:40000".parse().expect("addr");
    let b: std::net::SocketAddr = "10.0.0.2:50051".parse().expect("addr");
    // Roles unknown: the capture layer guessed the wrong way round (ToServer is the server's).
    let mut dec = conn(1, b, a, false);
    let mut out = Rec::default();
    let mut enc_c = ::hpack::Encoder::new();
    let mut enc_s = ::hpack::Encoder::new();
    let req = enc_c.encode([
        (&b":method"[..], &b"POST"[..]),
        (b":path", b"/pkg.Svc/Late"),
    ]);
    // The tail of some frame we missed, then whole frames.
    let mut client = vec![0x55; 7];
    client.extend(frame(kind::HEADERS, flag::END_HEADERS, 41, &req));
    client.extend(frame(kind::DATA, flag::END_STREAM, 41, &msg(b"hi")));
    dec.handle_data(Dir::ToClient, Nanos(10), &client, &mut out);
    let resp = enc_s.encode([(&b":status"[..], &b"200"[..])]);
    let trl = enc_s.encode([(&b"grpc-status"[..], &b"0"[..])]);
    let mut server = frame(kind::HEADERS, flag::END_HEADERS, 41, &resp);
    server.extend(frame(kind::DATA, 0, 41, &msg(b"hello there")));
    // Bytes lost inside that DATA frame would only touch stream 41; here they are whole.
    server.extend(frame(
        kind::HEADERS,
        flag::END_HEADERS | flag::END_STREAM,
        41,
        &trl,
    ));
    dec.handle_data(Dir::ToServer, Nanos(20), &server, &mut out);
    let r = &out.ended[0];
    assert_eq!(r.method.as_deref(), Some("/pkg.Svc/Late"));
    assert_eq!(r.status, Some(Code::OK));
    assert_eq!(r.client, a, "roles corrected from the bytes");
    assert!(
        out.events
            .contains(&ConnEvent::Anomaly(AnomalyKind::Resync))
    );

    // A gap inside a DATA frame loses that stream's counts only; a larger one forgets HPACK.
    let mut c = Conn::new();
    c.send_headers(
        CLIENT,
        1,
        0,
        &[(":method", "POST"), (":path", "/pkg.Svc/Gap")],
    );
    let data = frame(kind::DATA, 0, 1, &msg(&[7u8; 100]));
    c.send(CLIENT, &data[..30]);
    c.dec.handle_gap(CLIENT, Nanos(c.ts), 40, &mut c.out);
    c.send(CLIENT, &data[70..]);
    c.send(CLIENT, &frame(kind::DATA, flag::END_STREAM, 1, &msg(b"z")));
    c.send_headers(
        SERVER,
        1,
        flag::END_STREAM,
        &[(":status", "200"), ("grpc-status", "0")],
    );
    let r = &c.out.ended[0];
    assert!(r.lost_bytes);
    assert_eq!(r.status, Some(Code::OK));
    assert!(
        c.out
            .events
            .contains(&ConnEvent::Anomaly(AnomalyKind::GapInFrame))
    );
}

#[test]
fn not_http2_is_dropped_cheaply() {
    let a: std::net::SocketAddr = "10.0.0.1:40000".parse().expect("addr");
    let b: std::net::SocketAddr = "10.0.0.2:443".parse().expect("addr");
    let mut dec = conn(1, a, b, true);
    let mut out = Rec::default();
    dec.handle_data(
        Dir::ToServer,
        Nanos(1),
        b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
        &mut out,
    );
    assert!(dec.is_dead());
    assert_eq!(out.events, vec![ConnEvent::Anomaly(AnomalyKind::NotHttp2)]);
    // A TLS ClientHello is not dropped: it goes to the TLS layer, which reports it.
    let mut dec = conn(1, a, b, true);
    let mut out = Rec::default();
    dec.handle_data(
        Dir::ToServer,
        Nanos(1),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        &mut out,
    );
    assert!(!dec.is_dead());
    assert!(dec.tls().is_some());
    assert!(out.events.is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Arbitrary bytes, gaps and closes in any order never panic and never end a call twice.
    #[test]
    fn arbitrary_input_never_panics(
        ops in prop::collection::vec((0usize..2, prop::collection::vec(any::<u8>(), 0..300), 0u8..10), 0..40),
        roles in any::<bool>(),
        prefix in any::<bool>(),
    ) {
        let a: std::net::SocketAddr = "10.0.0.1:40000".parse().expect("addr");
        let b: std::net::SocketAddr = "10.0.0.2:50051".parse().expect("addr");
        let mut dec = conn(1, a, b, roles);
        let mut out = Rec::default();
        if prefix {
            dec.handle_data(Dir::ToServer, Nanos(0), PREFACE, &mut out);
        }
        for (i, (d, bytes, op)) in ops.iter().enumerate() {
            let d = Dir::BOTH[*d];
            match op {
                0 => dec.handle_gap(d, Nanos(i as u64), bytes.len() as u64 + 1, &mut out),
                _ => dec.handle_data(d, Nanos(i as u64), bytes, &mut out),
            }
        }
        dec.finish(&mut out);
        let mut ids: Vec<u32> = out.ended.iter().map(|r| r.stream_id).collect();
        ids.sort_unstable();
        let n = ids.len();
        ids.dedup();
        prop_assert_eq!(ids.len(), n);
        prop_assert_eq!(dec.open_calls(), 0);
    }
}
