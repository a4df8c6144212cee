//! Bad input never panics and never loses the rest: real packets mutated at random, cut short,
//! or replaced with noise, under every link type; IP fragments of real segments, reordered.

// Test sizes are small and known; the truncation lint is for wire-facing code.
#![allow(clippy::cast_possible_truncation)]

use std::collections::HashMap;
use std::path::Path;

use capture::wire::{LinkPayload, linktype, parse_link};
use capture::{CaptureLimits, EventKind, FileSource, Nanos, Packet, Reassembler, StreamEvent};
use proptest::prelude::*;
use sha2::{Digest, Sha256};

fn packets(file: &str) -> Vec<(u64, u32, Vec<u8>)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/captures")
        .join(file);
    let mut src = FileSource::open(&path, 16 << 20).expect("open");
    let mut out = Vec::new();
    while let Some(p) = src.next_packet().expect("read") {
        out.push((p.ts.0, p.linktype, p.data.to_vec()));
    }
    out
}

const LINKTYPES: [u32; 9] = [
    linktype::ETHERNET,
    linktype::LINUX_SLL,
    linktype::LINUX_SLL2,
    linktype::NULL,
    linktype::LOOP,
    linktype::RAW,
    linktype::IPV4,
    linktype::IPV6,
    12345,
];

/// Per (connection, direction): stream bytes and gap bytes, checked for consistency.
#[derive(Default)]
struct Tally {
    data: HashMap<(u64, usize), u64>,
    closed: HashMap<(u64, usize), u64>,
}

impl Tally {
    fn on(&mut self, ev: StreamEvent<'_>) {
        let k = (ev.conn.get(), ev.dir.index());
        assert!(!self.closed.contains_key(&k), "event after close");
        match ev.kind {
            EventKind::Data(d) => *self.data.entry(k).or_default() += d.len() as u64,
            EventKind::Close { stats, .. } => {
                assert_eq!(stats.bytes, self.data.get(&k).copied().unwrap_or(0));
                self.closed.insert(k, stats.bytes);
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn mutated_real_packets_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>(), any::<u8>()), 0..400),
        cuts in prop::collection::vec((any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..200),
        relink in prop::collection::vec((any::<prop::sample::Index>(), 0usize..LINKTYPES.len()), 0..100),
        noise in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..50),
    ) {
        let mut pkts = packets("py-mixed-veth.pcap");
        pkts.truncate(3000);
        let n = pkts.len();
        for (p, at, b) in &edits {
            let d = &mut pkts[p.index(n)].2;
            let i = at.index(d.len());
            d[i] = *b;
        }
        for (p, at) in &cuts {
            let d = &mut pkts[p.index(n)].2;
            let keep = at.index(d.len() + 1);
            d.truncate(keep);
        }
        for (p, l) in &relink {
            pkts[p.index(n)].1 = LINKTYPES[*l];
        }
        for (i, bytes) in noise.iter().enumerate() {
            pkts.push((pkts[i % n].0, LINKTYPES[i % LINKTYPES.len()], bytes.clone()));
        }
        let mut reasm = Reassembler::new(CaptureLimits { max_connections: 16, ..CaptureLimits::default() });
        let mut tally = Tally::default();
        let mut sink = |ev: StreamEvent<'_>| tally.on(ev);
        for (ts, lt, data) in &pkts {
            let pkt = Packet { ts: Nanos(*ts), linktype: *lt, data, orig_len: data.len() as u32, interface: 0 };
            reasm.handle_packet(&pkt, &mut sink);
        }
        reasm.finish(&mut sink);
        let s = reasm.stats();
        prop_assert_eq!(s.packets, pkts.len() as u64);
        prop_assert!(tally.data.keys().all(|k| tally.closed.contains_key(k)), "every direction that carried data was closed");
        prop_assert_eq!(reasm.flows().len(), 0);
        prop_assert_eq!(reasm.flows().buffered_bytes(), 0);
    }
}

/// Splits the IPv4 packet inside an Ethernet frame into fragments of `chunk` payload bytes
/// (a multiple of 8, RFC 791), returned in the given order.
fn fragment(frame: &[u8], chunk: usize, order: &[usize]) -> Vec<Vec<u8>> {
    let LinkPayload::Ip(ip) = parse_link(linktype::ETHERNET, frame).expect("link") else {
        panic!("not ip")
    };
    let l2 = frame.len() - ip.len();
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let payload = &ip[ihl..];
    let pieces: Vec<&[u8]> = payload.chunks(chunk).collect();
    let mut out: Vec<Vec<u8>> = Vec::new();
    for (i, piece) in pieces.iter().enumerate() {
        let mut f = frame[..l2 + ihl].to_vec();
        let total = (ihl + piece.len()) as u16;
        f[l2 + 2..l2 + 4].copy_from_slice(&total.to_be_bytes());
        let more = if i + 1 < pieces.len() { 0x2000 } else { 0 };
        let off = ((i * chunk / 8) as u16) | more;
        f[l2 + 6..l2 + 8].copy_from_slice(&off.to_be_bytes());
        f.extend_from_slice(piece);
        out.push(f);
    }
    order
        .iter()
        .filter_map(|&i| out.get(i).cloned())
        .chain(out.iter().skip(order.len()).cloned())
        .collect()
}

#[test]
fn fragmented_real_segments_reassemble_to_the_same_streams() {
    let pkts = packets("py-mixed-veth.pcap");
    let digests = |pkts: &[(u64, u32, Vec<u8>)]| {
        let mut reasm = Reassembler::new(CaptureLimits::default());
        let mut streams: HashMap<(u64, usize), Sha256> = HashMap::new();
        let mut sink = |ev: StreamEvent<'_>| {
            if let EventKind::Data(d) = ev.kind {
                streams
                    .entry((ev.conn.get(), ev.dir.index()))
                    .or_default()
                    .update(d);
            }
        };
        for (ts, lt, data) in pkts {
            let pkt = Packet {
                ts: Nanos(*ts),
                linktype: *lt,
                data,
                orig_len: data.len() as u32,
                interface: 0,
            };
            reasm.handle_packet(&pkt, &mut sink);
        }
        reasm.finish(&mut sink);
        let mut d: Vec<_> = streams
            .into_iter()
            .map(|(k, h)| (k, h.finalize().to_vec()))
            .collect();
        d.sort();
        (d, *reasm.stats())
    };
    let (whole, _) = digests(&pkts);
    // Every 5th segment with a payload over 200 bytes goes as fragments, last fragment first.
    let mut fragmented = Vec::new();
    let mut split = 0;
    for (i, (ts, lt, data)) in pkts.iter().enumerate() {
        if i % 5 == 0 && data.len() > 14 + 20 + 20 + 200 {
            split += 1;
            for f in fragment(data, 96, &[2, 0, 1]) {
                fragmented.push((*ts, *lt, f));
            }
        } else {
            fragmented.push((*ts, *lt, data.clone()));
        }
    }
    let (again, stats) = digests(&fragmented);
    assert!(split > 500, "{split}");
    assert_eq!(stats.ip_reassembled, split);
    assert_eq!(stats.ip_fragments_dropped, 0);
    assert_eq!(whole, again);
}
