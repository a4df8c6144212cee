//! Capture-file reading: pcap and pcapng headers built byte by byte (both byte orders, both
//! pcap resolutions, pcapng interfaces with their own link type, resolution and offset, every
//! packet block type), gzip, and files that are truncated, corrupt or not captures at all.

// Test sizes are small and known; the truncation lint is for wire-facing code.
#![allow(clippy::cast_possible_truncation)]

use std::io::Write as _;
use std::path::{Path, PathBuf};

use capture::wire::linktype;
use capture::{FileSource, Nanos, SourceError};

/// Writes integers in one byte order.
#[derive(Clone, Copy)]
struct W {
    be: bool,
}

impl W {
    fn u16(self, v: u16) -> [u8; 2] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn u32(self, v: u32) -> [u8; 4] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
    fn i64(self, v: i64) -> [u8; 8] {
        if self.be {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    }
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

fn pcap(w: W, nanos: bool, link: u32, packets: &[(u32, u32, &[u8])]) -> Vec<u8> {
    let magic: u32 = if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 };
    let mut f = Vec::new();
    f.extend(w.u32(magic));
    f.extend(w.u16(2));
    f.extend(w.u16(4));
    f.extend(w.u32(0)); // thiszone
    f.extend(w.u32(0)); // sigfigs
    f.extend(w.u32(65535));
    f.extend(w.u32(link));
    for (sec, frac, data) in packets {
        f.extend(w.u32(*sec));
        f.extend(w.u32(*frac));
        f.extend(w.u32(data.len() as u32));
        f.extend(w.u32(data.len() as u32 + 10)); // origlen: pretend the wire had more
        f.extend_from_slice(data);
    }
    f
}

fn block(w: W, ty: u32, body: &[u8]) -> Vec<u8> {
    let len = 12 + body.len() as u32;
    let mut b = Vec::new();
    b.extend(w.u32(ty));
    b.extend(w.u32(len));
    b.extend_from_slice(body);
    b.extend(w.u32(len));
    b
}

fn shb(w: W) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(w.u32(0x1a2b_3c4d));
    body.extend(w.u16(1));
    body.extend(w.u16(0));
    body.extend(w.i64(-1));
    block(w, 0x0a0d_0d0a, &body)
}

fn idb(w: W, link: u16, tsresol: Option<u8>, tsoffset: Option<i64>) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(w.u16(link));
    body.extend(w.u16(0));
    body.extend(w.u32(0));
    if let Some(r) = tsresol {
        body.extend(w.u16(9));
        body.extend(w.u16(1));
        body.extend([r, 0, 0, 0]);
    }
    if let Some(o) = tsoffset {
        body.extend(w.u16(14));
        body.extend(w.u16(8));
        body.extend(w.i64(o));
    }
    body.extend([0, 0, 0, 0]); // opt_endofopt
    block(w, 1, &body)
}

/// The fields EPB and the obsolete PB end with: timestamp, lengths, padded data.
fn packet_fields(w: W, ts: u64, data: &[u8], body: &mut Vec<u8>) {
    body.extend(w.u32((ts >> 32) as u32));
    body.extend(w.u32(ts as u32));
    body.extend(w.u32(data.len() as u32));
    body.extend(w.u32(data.len() as u32));
    body.extend_from_slice(data);
    pad4(body);
}

fn epb(w: W, iface: u32, ts: u64, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(w.u32(iface));
    packet_fields(w, ts, data, &mut body);
    block(w, 6, &body)
}

fn spb(w: W, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(w.u32(data.len() as u32));
    body.extend_from_slice(data);
    pad4(&mut body);
    block(w, 3, &body)
}

fn obsolete_pb(w: W, iface: u16, ts: u64, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend(w.u16(iface));
    body.extend(w.u16(0));
    packet_fields(w, ts, data, &mut body);
    block(w, 2, &body)
}

fn tmp(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("grpctap-source-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    let p = dir.join(name);
    std::fs::write(&p, bytes).expect("write");
    p
}

/// (timestamp ns, linktype, data, interface) of one packet.
type Read = (u64, u32, Vec<u8>, u32);

/// Every packet of a file, and the error that stopped it.
fn read_all(p: &Path) -> (Vec<Read>, Option<SourceError>) {
    let mut src = FileSource::open(p, 1 << 20).expect("open");
    let mut out = Vec::new();
    loop {
        match src.next_packet() {
            Ok(Some(pkt)) => out.push((pkt.ts.0, pkt.linktype, pkt.data.to_vec(), pkt.interface)),
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e)),
        }
    }
}

const A: &[u8] = b"first packet";
const B: &[u8] = b"second, longer packet";

#[test]
fn pcap_both_byte_orders_and_resolutions() {
    for be in [false, true] {
        for nanos in [false, true] {
            let f = pcap(
                W { be },
                nanos,
                linktype::ETHERNET,
                &[(1_700_000_000, 123_456, A), (1_700_000_001, 999, B)],
            );
            let (pkts, err) = read_all(&tmp(&format!("p-{be}-{nanos}.pcap"), &f));
            assert!(err.is_none(), "{err:?}");
            let unit = if nanos { 1 } else { 1000 };
            assert_eq!(pkts.len(), 2);
            assert_eq!(
                pkts[0],
                (
                    1_700_000_000_000_000_000 + 123_456 * unit,
                    linktype::ETHERNET,
                    A.to_vec(),
                    0
                )
            );
            assert_eq!(pkts[1].0, 1_700_000_001_000_000_000 + 999 * unit);
            assert_eq!(pkts[1].2, B);
        }
    }
}

#[test]
fn pcapng_interfaces_resolutions_offsets_and_block_types() {
    for be in [false, true] {
        let w = W { be };
        let mut f = shb(w);
        f.extend(idb(w, 1, None, None)); // Ethernet, microseconds (default)
        f.extend(idb(w, 276, Some(9), Some(100))); // SLL2, nanoseconds, +100 s
        f.extend(idb(w, 101, Some(0x80 | 20), None)); // raw IP, 2^-20 s units
        f.extend(epb(w, 1, 5_000_000_123, A));
        f.extend(epb(w, 0, 2_000_000, B));
        f.extend(spb(w, A));
        f.extend(obsolete_pb(w, 2, 3 << 20, B));
        // A second section: interface numbering starts again.
        f.extend(shb(w));
        f.extend(idb(w, 113, Some(3), Some(-1)));
        f.extend(epb(w, 0, 10_500, A));
        let (pkts, err) = read_all(&tmp(&format!("n-{be}.pcapng"), &f));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(
            pkts,
            vec![
                (105_000_000_123, 276, A.to_vec(), 1),
                (2_000_000_000, 1, B.to_vec(), 0),
                (0, 1, A.to_vec(), 0),
                (3_000_000_000, 101, B.to_vec(), 2),
                (9_500_000_000, 113, A.to_vec(), 0),
            ]
        );
    }
}

#[test]
fn gzip_compressed_pcap_reads_like_the_plain_one() {
    // Incompressible payloads, so the compressed file spans many reads like a real capture.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let payloads: Vec<Vec<u8>> = (0..2000)
        .map(|_| {
            (0..1000)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect()
        })
        .collect();
    let many: Vec<(u32, u32, &[u8])> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| (i as u32, 0, &p[..]))
        .collect();
    let f = pcap(W { be: false }, false, linktype::RAW, &many);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&f).expect("gz");
    let gz = gz.finish().expect("gz");
    let (plain, _) = read_all(&tmp("plain.pcap", &f));
    let (unzipped, err) = read_all(&tmp("z.pcap.gz", &gz));
    assert!(err.is_none());
    assert_eq!(plain, unzipped);

    // A gzip stream cut short is reported as a truncated capture, after the packets before it.
    let cut = &gz[..gz.len() - 12];
    let (pkts, err) = read_all(&tmp("cut.pcap.gz", cut));
    assert!(pkts.len() > 1000 && pkts.len() < 2000, "{}", pkts.len());
    assert_eq!(pkts[..], plain[..pkts.len()]);
    let msg = err.expect("error").to_string();
    assert!(
        msg.contains("cut.pcap.gz") && msg.contains("decompressed"),
        "{msg}"
    );
}

#[test]
fn truncated_file_keeps_what_came_before_and_says_where() {
    let f = pcap(
        W { be: false },
        false,
        linktype::ETHERNET,
        &[(1, 0, A), (2, 0, B)],
    );
    let second_record = 24 + 16 + A.len();
    for cut in [second_record + 3, second_record + 16 + 5, f.len() - 1] {
        let p = tmp("t.pcap", &f[..cut]);
        let (pkts, err) = read_all(&p);
        assert_eq!(pkts.len(), 1, "the first packet is still delivered");
        match err {
            Some(SourceError::Truncated { offset, .. }) => assert_eq!(offset, second_record as u64),
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn corrupt_block_is_an_error_at_its_offset() {
    let w = W { be: false };
    let mut f = shb(w);
    f.extend(idb(w, 1, None, None));
    let first_epb = f.len();
    f.extend(epb(w, 0, 1, A));
    let bad = f.len();
    let mut broken = epb(w, 0, 2, B);
    broken[4..8].copy_from_slice(&w.u32(7)); // block length smaller than any block
    f.extend(broken);
    f.extend(epb(w, 0, 3, A));
    let (pkts, err) = read_all(&tmp("c.pcapng", &f));
    assert_eq!(pkts.len(), 1);
    assert!(first_epb < bad);
    match err {
        Some(e @ SourceError::Corrupt { offset, .. }) => {
            assert_eq!(offset, bad as u64);
            assert!(e.to_string().contains("c.pcapng: corrupt at byte"), "{e}");
        }
        other => panic!("{other:?}"),
    }

    // A packet on an interface that was never declared, in a sound block: skipped, remarked,
    // and the packets after it read.
    let mut f = shb(w);
    f.extend(idb(w, 1, None, None));
    f.extend(epb(w, 3, 1, A));
    f.extend(epb(w, 0, 2, B));
    let path = tmp("u.pcapng", &f);
    let (pkts, err) = read_all(&path);
    assert!(err.is_none(), "{err:?}");
    assert_eq!(pkts.len(), 1);
    let mut src = FileSource::open(&path, 1 << 20).expect("open");
    while src.next_packet().expect("read").is_some() {}
    let remarks = src.remarks().join("\n");
    assert!(
        remarks.contains("1 pcapng blocks skipped") && remarks.contains("undeclared interface 3"),
        "{remarks}"
    );
}

#[test]
fn block_larger_than_the_limit_is_refused() {
    let big = vec![0u8; 3 << 20];
    let f = pcap(
        W { be: false },
        false,
        linktype::ETHERNET,
        &[(1, 0, A), (2, 0, &big)],
    );
    let p = tmp("big.pcap", &f);
    let mut src = FileSource::open(&p, 2 << 20).expect("open");
    assert!(src.next_packet().expect("first").is_some());
    let e = src.next_packet().expect_err("too large");
    assert!(e.to_string().contains("limit"), "{e}");
    // With a larger limit the buffer grows and the packet is read.
    let mut src = FileSource::open(&p, 8 << 20).expect("open");
    src.next_packet().expect("first");
    let pkt = src.next_packet().expect("second").expect("packet");
    assert_eq!(pkt.data.len(), 3 << 20);
    assert_eq!(pkt.ts, Nanos(2_000_000_000));
}

#[test]
fn not_a_capture_and_empty_file() {
    let e = FileSource::open(&tmp("x.txt", b"hello, this is text"), 1 << 20)
        .expect_err("not a capture");
    assert!(matches!(e, SourceError::NotACapture { .. }));
    assert!(e.to_string().contains("68 65 6c 6c"), "{e}");
    let e = FileSource::open(&tmp("empty.pcap", b""), 1 << 20).expect_err("empty");
    assert!(e.to_string().contains("empty.pcap"), "{e}");
    let e = FileSource::open(Path::new("/nonexistent/file.pcap"), 1 << 20).expect_err("missing");
    assert!(matches!(e, SourceError::Io { .. }));
}
