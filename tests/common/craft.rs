//! Hand-built captures for hostile-input tests: TCP connections over raw IPv4 (LINKTYPE_RAW),
//! carrying HTTP/2 frames whose header blocks use HPACK literals only. Real stacks' traffic is
//! in testdata/captures; this is for what no real stack sends (hostile names, sizes, times).

#![allow(dead_code)] // each test file uses a different subset

use std::path::Path;

/// A capture being built: packets with their times.
#[derive(Default)]
pub(crate) struct Craft {
    packets: Vec<(u64, Vec<u8>)>,
}

/// One TCP connection of a [`Craft`].
#[derive(Clone, Copy)]
pub(crate) struct Flow {
    client_port: u16,
    client_seq: u32,
    server_seq: u32,
}

const CLIENT_IP: [u8; 4] = [10, 0, 0, 1];
const SERVER_IP: [u8; 4] = [10, 0, 0, 2];
pub(crate) const SERVER_PORT: u16 = 50051;

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

impl Craft {
    /// A connection from `client_port`, its handshake at `t_ns`.
    pub(crate) fn open(&mut self, client_port: u16, t_ns: u64) -> Flow {
        let mut f = Flow {
            client_port,
            client_seq: 1000,
            server_seq: 5000,
        };
        self.segment(&mut f, true, t_ns, SYN, &[]);
        self.segment(&mut f, false, t_ns, SYN | ACK, &[]);
        self.segment(&mut f, true, t_ns, ACK, &[]);
        f
    }

    /// `bytes` from the client (`from_client`) or the server, in segments of at most 1400 bytes.
    pub(crate) fn send(&mut self, f: &mut Flow, from_client: bool, t_ns: u64, bytes: &[u8]) {
        for chunk in bytes.chunks(1400) {
            self.segment(f, from_client, t_ns, PSH | ACK, chunk);
        }
    }

    /// FIN both ways.
    pub(crate) fn close(&mut self, f: &mut Flow, t_ns: u64) {
        self.segment(f, true, t_ns, FIN | ACK, &[]);
        self.segment(f, false, t_ns, FIN | ACK, &[]);
        self.segment(f, true, t_ns, ACK, &[]);
    }

    fn segment(&mut self, f: &mut Flow, from_client: bool, t_ns: u64, flags: u8, payload: &[u8]) {
        let (src, dst, sport, dport) = if from_client {
            (CLIENT_IP, SERVER_IP, f.client_port, SERVER_PORT)
        } else {
            (SERVER_IP, CLIENT_IP, SERVER_PORT, f.client_port)
        };
        let (seq, ack) = if from_client {
            (f.client_seq, f.server_seq)
        } else {
            (f.server_seq, f.client_seq)
        };
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend(sport.to_be_bytes());
        tcp.extend(dport.to_be_bytes());
        tcp.extend(seq.to_be_bytes());
        tcp.extend(if flags & ACK != 0 { ack } else { 0 }.to_be_bytes());
        tcp.extend([5 << 4, flags]);
        tcp.extend(65535u16.to_be_bytes());
        tcp.extend([0, 0, 0, 0]); // checksum (not checked by the tap), urgent pointer
        tcp.extend_from_slice(payload);
        let total = u16::try_from(20 + tcp.len()).expect("packet size");
        let mut ip = vec![0x45, 0];
        ip.extend(total.to_be_bytes());
        ip.extend([0, 0, 0x40, 0, 64, 6, 0, 0]);
        ip.extend(src);
        ip.extend(dst);
        let sum = checksum(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        ip.extend(tcp);
        let advance = u32::try_from(payload.len()).expect("segment size")
            + u32::from(flags & (SYN | FIN) != 0);
        if from_client {
            f.client_seq = f.client_seq.wrapping_add(advance);
        } else {
            f.server_seq = f.server_seq.wrapping_add(advance);
        }
        self.packets.push((t_ns, ip));
    }

    /// Writes a pcap (nanosecond timestamps, LINKTYPE_RAW).
    pub(crate) fn write(&self, path: &Path) {
        let mut out = Vec::new();
        out.extend(0xa1b2_3c4du32.to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend([0u8; 8]);
        out.extend(262_144u32.to_le_bytes());
        out.extend(101u32.to_le_bytes());
        for (t, p) in &self.packets {
            let len = u32::try_from(p.len()).expect("packet size");
            out.extend(
                u32::try_from(t / 1_000_000_000)
                    .expect("seconds")
                    .to_le_bytes(),
            );
            out.extend(u32::try_from(t % 1_000_000_000).expect("ns").to_le_bytes());
            out.extend(len.to_le_bytes());
            out.extend(len.to_le_bytes());
            out.extend_from_slice(p);
        }
        std::fs::write(path, out).expect("write capture");
    }
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !u16::try_from(sum).expect("folded")
}

/// HTTP/2 frame kinds and flags used here.
pub(crate) mod h2 {
    pub(crate) const DATA: u8 = 0x0;
    pub(crate) const HEADERS: u8 = 0x1;
    pub(crate) const RST_STREAM: u8 = 0x3;
    pub(crate) const SETTINGS: u8 = 0x4;
    pub(crate) const END_STREAM: u8 = 0x1;
    pub(crate) const END_HEADERS: u8 = 0x4;
    pub(crate) const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
}

/// One HTTP/2 frame.
pub(crate) fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("frame size");
    let mut f = len.to_be_bytes()[1..].to_vec();
    f.extend([kind, flags]);
    f.extend(stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix (RFC 7541 5.1), the prefix's high bits `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | u8::try_from(v).expect("fits the prefix"));
        return;
    }
    out.push(first | u8::try_from(max).expect("prefix"));
    v -= max;
    while v >= 128 {
        out.push(u8::try_from(v % 128).expect("7 bits") | 0x80);
        v /= 128;
    }
    out.push(u8::try_from(v).expect("7 bits"));
}

/// A header block of literals without indexing, new names, no Huffman (RFC 7541 6.2.2).
pub(crate) fn block(fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in fields {
        b.push(0);
        hpack_int(&mut b, 0, 7, name.len());
        b.extend_from_slice(name.as_bytes());
        hpack_int(&mut b, 0, 7, value.len());
        b.extend_from_slice(value);
    }
    b
}

/// A gRPC length-prefixed message, uncompressed.
pub(crate) fn grpc_message(body: &[u8]) -> Vec<u8> {
    let mut m = vec![0];
    m.extend(
        u32::try_from(body.len())
            .expect("message size")
            .to_be_bytes(),
    );
    m.extend_from_slice(body);
    m
}

/// The client's preface and SETTINGS, and the server's SETTINGS.
pub(crate) fn handshake(c: &mut Craft, f: &mut Flow, t_ns: u64) {
    let mut client = h2::PREFACE.to_vec();
    client.extend(frame(h2::SETTINGS, 0, 0, &[]));
    c.send(f, true, t_ns, &client);
    c.send(f, false, t_ns, &frame(h2::SETTINGS, 0, 0, &[]));
}

/// A whole unary call on stream `stream`: request, one response message, trailers with `status`.
pub(crate) fn unary(
    c: &mut Craft,
    f: &mut Flow,
    stream: u32,
    path: &[u8],
    t_ns: u64,
    status: &str,
) {
    let req = block(&[
        (":method", b"POST"),
        (":scheme", b"http"),
        (":path", path),
        (":authority", b"svc"),
        ("content-type", b"application/grpc"),
        ("te", b"trailers"),
    ]);
    let mut client = frame(h2::HEADERS, h2::END_HEADERS, stream, &req);
    client.extend(frame(
        h2::DATA,
        h2::END_STREAM,
        stream,
        &grpc_message(b"\x0a\x02hi"),
    ));
    c.send(f, true, t_ns, &client);
    let mut server = frame(
        h2::HEADERS,
        h2::END_HEADERS,
        stream,
        &block(&[(":status", b"200"), ("content-type", b"application/grpc")]),
    );
    server.extend(frame(h2::DATA, 0, stream, &grpc_message(b"\x0a\x02ok")));
    server.extend(frame(
        h2::HEADERS,
        h2::END_HEADERS | h2::END_STREAM,
        stream,
        &block(&[("grpc-status", status.as_bytes())]),
    ));
    c.send(f, false, t_ns + 1_000_000, &server);
}
