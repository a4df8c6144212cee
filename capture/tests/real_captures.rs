//! Replays the real captures in testdata/captures and compares every reassembled byte stream
//! with Wireshark's reassembly of the same file (recorded when the capture was made, in
//! `*.streams.json`) and the connections with the client's own call log (`*.calls.jsonl`).

// Test sizes are small and known; the truncation lint is for wire-facing code.
#![allow(clippy::cast_possible_truncation)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use capture::{
    CaptureLimits, CloseReason, ConnInfo, Dir, EventKind, FileSource, Reassembler, RoleSource,
    StreamEvent,
};
use sha2::{Digest, Sha256};

fn captures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/captures")
}

/// One direction as our reassembler delivered it.
#[derive(Default)]
struct Half {
    bytes: Vec<u8>,
    /// (offset in the stream, length) of each gap.
    gaps: Vec<(u64, u64)>,
    /// Data chunks as (stream offset, bytes), to check against a full copy.
    chunks: Vec<(u64, Vec<u8>)>,
    offset: u64,
    close: Option<CloseReason>,
}

struct Conn {
    info: ConnInfo,
    halves: [Half; 2],
}

struct Replayed {
    conns: Vec<Conn>,
    stats: capture::CaptureStats,
}

fn replay(path: &Path) -> Replayed {
    let mut conns: Vec<Conn> = Vec::new();
    let mut ids: HashMap<u64, usize> = HashMap::new();
    let mut sink = |ev: StreamEvent<'_>| {
        if let EventKind::Open(info) = ev.kind {
            ids.insert(ev.conn.get(), conns.len());
            conns.push(Conn {
                info,
                halves: Default::default(),
            });
            return;
        }
        let conn = &mut conns[ids[&ev.conn.get()]];
        let half = &mut conn.halves[ev.dir.index()];
        assert!(half.close.is_none(), "event after close: {ev:?}");
        match ev.kind {
            EventKind::Data(d) => {
                half.chunks.push((half.offset, d.to_vec()));
                half.bytes.extend_from_slice(d);
                half.offset += d.len() as u64;
            }
            EventKind::Gap { len } => {
                half.gaps.push((half.offset, len));
                half.offset += len;
            }
            EventKind::Close { reason, stats } => {
                assert_eq!(stats.bytes as usize, half.bytes.len());
                half.close = Some(reason);
            }
            EventKind::Open(_) => unreachable!(),
        }
    };
    let mut reasm = Reassembler::new(CaptureLimits::default());
    let mut src = FileSource::open(path, 16 << 20).expect("open");
    while let Some(pkt) = src.next_packet().expect("read") {
        reasm.handle_packet(&pkt, &mut sink);
    }
    reasm.finish(&mut sink);
    Replayed {
        conns,
        stats: *reasm.stats(),
    }
}

fn sha(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

/// Wireshark's streams: (node0, node1) -> [(bytes, sha) node0->node1, node1->node0].
/// (node0, node1, [(bytes, sha256) node0 -> node1, node1 -> node0]).
type OracleStream = (SocketAddr, SocketAddr, [(usize, String); 2]);

fn oracle(path: &Path) -> Vec<OracleStream> {
    let name = format!(
        "{}.streams.json",
        path.file_name().and_then(|n| n.to_str()).expect("name")
    );
    let text = std::fs::read_to_string(path.with_file_name(name)).expect("streams.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    let dir = |d: &serde_json::Value| {
        (
            d["bytes"].as_u64().expect("bytes") as usize,
            d["sha256"].as_str().expect("sha").to_owned(),
        )
    };
    v["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| {
            let addr = |k: &str| {
                s[k].as_str()
                    .expect("node")
                    .parse::<SocketAddr>()
                    .expect("addr")
            };
            (
                addr("node0"),
                addr("node1"),
                [dir(&s["node0_to_node1"]), dir(&s["node1_to_node0"])],
            )
        })
        .collect()
}

/// Our stream from `from` to the other end.
fn stream_from(conn: &Conn, from: SocketAddr) -> &Half {
    if conn.info.client == from {
        &conn.halves[Dir::ToServer.index()]
    } else {
        &conn.halves[Dir::ToClient.index()]
    }
}

fn assert_matches_wireshark(file: &str) -> Replayed {
    let path = captures().join(file);
    let ours = replay(&path);
    let theirs = oracle(&path);
    assert_eq!(ours.conns.len(), theirs.len(), "{file}: connection count");
    for (n0, n1, dirs) in &theirs {
        let conn = ours
            .conns
            .iter()
            .find(|c| BTreeSet::from([c.info.client, c.info.server]) == BTreeSet::from([*n0, *n1]))
            .unwrap_or_else(|| panic!("{file}: no connection {n0} <-> {n1}"));
        for (from, (len, digest)) in [(*n0, &dirs[0]), (*n1, &dirs[1])] {
            let half = stream_from(conn, from);
            assert_eq!(half.bytes.len(), *len, "{file}: bytes from {from}");
            assert_eq!(&sha(&half.bytes), digest, "{file}: content from {from}");
        }
    }
    ours
}

/// The client ports the client logged (as the server saw them) for calls that got a reply.
fn client_ports(calls: &str) -> BTreeSet<u16> {
    let text = std::fs::read_to_string(captures().join(calls)).expect("calls");
    text.lines()
        .filter_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json line");
            let peer = v["client_peer"].as_str()?.to_owned();
            Some(
                peer.rsplit(':')
                    .next()
                    .expect("port")
                    .parse()
                    .expect("port number"),
            )
        })
        .collect()
}

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Walks a byte stream as HTTP/2 frames (RFC 9113 section 4.1); returns the frame count.
/// A stream that does not end on a frame boundary was reassembled wrongly.
fn h2_frames(mut b: &[u8]) -> usize {
    let mut n = 0;
    while !b.is_empty() {
        assert!(b.len() >= 9, "partial frame header at the end");
        let len = (usize::from(b[0]) << 16) | (usize::from(b[1]) << 8) | usize::from(b[2]);
        assert!(b[3] <= 9, "unknown frame type {} at frame {n}", b[3]);
        assert!(b.len() >= 9 + len, "frame {n} runs past the end");
        b = &b[9 + len..];
        n += 1;
    }
    n
}

fn check_grpc_connections(r: &Replayed, calls: &str, expect_handshake: bool) {
    let ports = client_ports(calls);
    let ours: BTreeSet<u16> = r.conns.iter().map(|c| c.info.client.port()).collect();
    if expect_handshake {
        assert_eq!(ours, ports, "clients in the capture vs the client's log");
    }
    for c in &r.conns {
        let up = &c.halves[Dir::ToServer.index()];
        let down = &c.halves[Dir::ToClient.index()];
        if expect_handshake {
            assert_eq!(c.info.roles, RoleSource::Syn);
            assert!(
                up.bytes.starts_with(PREFACE),
                "client stream starts with the HTTP/2 preface"
            );
            assert!(h2_frames(&up.bytes[PREFACE.len()..]) > 10);
            assert!(h2_frames(&down.bytes) > 10);
        }
        assert_eq!(up.close, Some(CloseReason::Fin));
        assert_eq!(down.close, Some(CloseReason::Fin));
        assert!(up.gaps.is_empty() && down.gaps.is_empty());
    }
}

/// TCP segments with payload in a capture, counted straight from the headers.
fn data_segments(file: &str) -> u64 {
    use capture::wire::{LinkPayload, parse_ip, parse_link, parse_tcp};
    let mut src = FileSource::open(&captures().join(file), 16 << 20).expect("open");
    let mut n = 0;
    while let Some(pkt) = src.next_packet().expect("read") {
        let Ok(LinkPayload::Ip(ip)) = parse_link(pkt.linktype, pkt.data) else {
            continue;
        };
        let seg = parse_tcp(&parse_ip(ip).expect("ip")).expect("tcp");
        n += u64::from(!seg.payload.is_empty());
    }
    n
}

#[test]
fn pcap_ethernet_loopback() {
    let r = assert_matches_wireshark("py-basic-lo.pcap");
    check_grpc_connections(&r, "py-basic.calls.jsonl", true);
    assert_eq!(r.stats.gaps, 0);
    assert_eq!(r.stats.retransmitted, 0);
}

#[test]
fn pcapng_two_interfaces_each_packet_twice() {
    let r = assert_matches_wireshark("py-basic-multi.pcapng");
    check_grpc_connections(&r, "py-basic.calls.jsonl", true);
    // Each data segment was seen on `lo` and (but for 5 dumpcap drops) on `any`: every copy
    // past the first is a retransmission as far as reassembly can tell, and adds nothing.
    let twice = data_segments("py-basic-multi.pcapng");
    let once = data_segments("py-basic-lo.pcap");
    assert_eq!(r.stats.retransmitted, twice - once, "{:?}", r.stats);
    assert_eq!(r.stats.overlap_conflicts, 0);
}

#[test]
fn ipv6_linux_cooked_v2_nanosecond_gzip() {
    let r = assert_matches_wireshark("py-v6-any.pcap.gz");
    check_grpc_connections(&r, "py-v6-any.calls.jsonl", true);
    assert!(r.conns.iter().all(|c| c.info.server.is_ipv6()));
}

#[test]
fn capture_joined_mid_connection() {
    let r = assert_matches_wireshark("py-midstream.pcap");
    check_grpc_connections(&r, "py-midstream.calls.jsonl", false);
    assert_eq!(r.conns.len(), 1);
    let c = &r.conns[0];
    assert_eq!(c.info.roles, RoleSource::Guess);
    // Ports only; which one is the server is the HTTP/2 layer's call (no SYN was seen).
    let logged = client_ports("py-midstream.calls.jsonl");
    assert!(logged.contains(&c.info.client.port()) || logged.contains(&c.info.server.port()));
}

#[test]
fn snaplen_96_gaps_cover_exactly_what_was_cut() {
    let cut = assert_matches_wireshark("py-basic-snap96.pcap");
    // The same traffic was captured in full at the same time: every delivered byte must sit at
    // its true offset, and delivered + gap bytes must be the whole stream.
    let full = replay(&captures().join("py-basic-lo.pcap"));
    let by_client: BTreeMap<SocketAddr, &Conn> =
        full.conns.iter().map(|c| (c.info.client, c)).collect();
    assert!(cut.stats.truncated > 200);
    for c in &cut.conns {
        let whole = by_client[&c.info.client];
        for d in [Dir::ToServer, Dir::ToClient] {
            let (h, w) = (&c.halves[d.index()], &whole.halves[d.index()]);
            for (off, chunk) in &h.chunks {
                let off = *off as usize;
                assert_eq!(&w.bytes[off..off + chunk.len()], &chunk[..]);
            }
            let gap_bytes: u64 = h.gaps.iter().map(|g| g.1).sum();
            assert_eq!(h.bytes.len() as u64 + gap_bytes, w.bytes.len() as u64);
            assert!(!h.gaps.is_empty());
        }
    }
}

#[test]
fn ethernet_mtu_1500_four_concurrent_connections() {
    let r = assert_matches_wireshark("py-mixed-veth.pcap");
    check_grpc_connections(&r, "py-mixed-veth.calls.jsonl", true);
    assert_eq!(r.conns.len(), 4);
    assert_eq!(r.stats.gaps, 0);
}

#[test]
fn every_capture_matches_wireshark() {
    let mut n = 0;
    for entry in std::fs::read_dir(captures()).expect("captures") {
        let name = entry
            .expect("entry")
            .file_name()
            .into_string()
            .expect("utf-8");
        if let Some(capture) = name.strip_suffix(".streams.json") {
            let r = assert_matches_wireshark(capture);
            assert!(!r.conns.is_empty(), "{capture}");
            n += 1;
        }
    }
    assert!(n >= 11, "{n} captures checked");
}
