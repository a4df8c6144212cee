//! The fuzz harnesses: one function per stage that takes wire bytes, shared by the cargo-fuzz
//! targets (fuzz_targets/*.rs, coverage-guided, long runs) and by the mutation runs of
//! tests/fuzz_smoke.rs (stable toolchain, seconds, in CI). Each must never panic, and where a
//! property holds for every input (a round trip), it asserts it.

#![allow(dead_code)] // each user calls a subset

use std::sync::OnceLock;

use capture::{CaptureLimits, FileSource, Nanos, Packet, Reassembler, StreamEvent};
use decoder::hpack::{Decoder, HeaderList, HpackLimits};
use decoder::{CallRecord, ConnDecoder, ConnId, DecoderLimits, Dir, NullSink, Side, Sink};

/// One harness: bytes in, a panic on a bug.
pub(crate) type Harness = fn(&[u8]);

/// The harnesses by name, as the targets and the corpus directories are named.
pub(crate) const TARGETS: [(&str, Harness); 8] = [
    ("hpack", hpack),
    ("h2_conn", h2_conn),
    ("h2_bodies", h2_bodies),
    ("packet", packet),
    ("capture_file", capture_file),
    ("pcapng_roundtrip", pcapng_roundtrip),
    ("payload", payload),
    ("tls_records", tls_records),
];

/// HPACK: chunks `[len][block]` decoded with one table: any sequence decodes or errors.
pub(crate) fn hpack(data: &[u8]) {
    let mut d = Decoder::new(HpackLimits {
        max_table_size: 8192,
        max_string_len: 4096,
        max_list_size: 16384,
    });
    let mut out = HeaderList::default();
    let mut rest = data;
    while let Some((&n, tail)) = rest.split_first() {
        let n = usize::from(n).min(tail.len());
        let _ = d.decode(&tail[..n], &mut out);
        rest = &tail[n..];
    }
}

/// Feeds `data` to a connection decoder: a mode byte (bit 0: seen from its start; bit 1: end
/// by close), then chunks `[op][len][bytes]` (op bit 0: direction; bit 1: a gap of len+1).
fn conn(data: &[u8], limits: DecoderLimits, sink: &mut dyn Sink) {
    conn_with(data, limits, None, sink);
}

/// [`conn`], with TLS secrets.
fn conn_with(
    data: &[u8],
    limits: DecoderLimits,
    keys: Option<std::sync::Arc<decoder::tls::keylog::KeyLog>>,
    sink: &mut dyn Sink,
) {
    let Some((&mode, mut rest)) = data.split_first() else {
        return;
    };
    let a = "10.0.0.1:40000".parse().expect("addr");
    let b = "10.0.0.2:50051".parse().expect("addr");
    let mut dec = ConnDecoder::new(ConnId::new(0, 1), (a, b), Nanos(0), mode & 1 == 1, limits);
    if let Some(k) = keys {
        dec = dec.with_keylog(k);
    }
    let mut ts = 0;
    while let [op, n, tail @ ..] = rest {
        let n = usize::from(*n).min(tail.len());
        ts += 1_000;
        let d = Dir::BOTH[usize::from(op & 1)];
        if op & 2 != 0 {
            dec.handle_gap(d, Nanos(ts), n as u64 + 1, sink);
        } else {
            dec.handle_data(d, Nanos(ts), &tail[..n], sink);
        }
        rest = &tail[n..];
    }
    if mode & 2 == 0 {
        dec.finish(sink);
    } else {
        dec.handle_closed(Nanos(ts), None, sink);
    }
}

/// TLS connection decoding with the key logs of the TLS test captures (whose streams are the
/// seeds): hellos, records, key changes, gaps and damage in any order.
pub(crate) fn tls_records(data: &[u8]) {
    static KEYS: OnceLock<std::sync::Arc<decoder::tls::keylog::KeyLog>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let log = decoder::tls::keylog::KeyLog::new();
        for text in [
            include_str!("../testdata/captures/go-tls13.keylog"),
            include_str!("../testdata/captures/go-tls12-chacha.keylog"),
            include_str!("../testdata/captures/node-tls13-aes256.keylog"),
        ] {
            log.add_text(text, 1);
        }
        std::sync::Arc::new(log)
    });
    conn_with(
        data,
        DecoderLimits::default(),
        Some(keys.clone()),
        &mut NullSink,
    );
}

/// HTTP/2 connection decoding: bytes, gaps and closes in any order.
pub(crate) fn h2_conn(data: &[u8]) {
    conn(data, DecoderLimits::default(), &mut NullSink);
}

/// The schemas the payload harnesses decode with (google.rpc, built in).
fn schemas() -> &'static decoder::schema::Schemas {
    static S: OnceLock<decoder::schema::Schemas> = OnceLock::new();
    S.get_or_init(decoder::schema::Schemas::builtin)
}

/// A sink that turns everything into output as `--calls --metadata --bodies --messages` do.
struct Outputs;

impl Sink for Outputs {
    fn call_ended(&mut self, c: &CallRecord) {
        let mut budget = decoder::payload::OutputBudget::CALLS;
        for h in [&c.req, &c.resp] {
            for b in &h.bodies {
                let v = decoder::payload::message_json(
                    b,
                    h.encoding.as_deref(),
                    Some("google.rpc.Status"),
                    Some(schemas()),
                    1 << 20,
                    &mut budget,
                );
                let _ = serde_json::to_string(&v);
            }
        }
        if let Some(d) = &c.status_details {
            let _ = serde_json::to_string(&decoder::payload::status_details_json(d, schemas()));
        }
    }

    fn message_body(&mut self, c: &CallRecord, from: Side, _: u64, b: &decoder::grpc::msg::Body) {
        let h = if from == Side::Client {
            &c.req
        } else {
            &c.resp
        };
        let mut budget = decoder::payload::OutputBudget::CALLS;
        let v = decoder::payload::message_json(
            b,
            h.encoding.as_deref(),
            None,
            None,
            1 << 20,
            &mut budget,
        );
        let _ = serde_json::to_string(&v);
    }
}

/// The connection decoder with metadata, bodies and per-message output on, every message
/// and rich error decoded into JSON.
pub(crate) fn h2_bodies(data: &[u8]) {
    let limits = DecoderLimits {
        capture_metadata: true,
        bodies_per_call: usize::MAX,
        body_bytes: 1 << 16,
        body_budget: 1 << 18,
        stream_bodies: true,
        infer_methods: Some(1 << 16),
        ..DecoderLimits::default()
    };
    conn(data, limits, &mut Outputs);
}

/// Link/IP/TCP parsing and reassembly: chunks `[link type selector][len][bytes]`.
pub(crate) fn packet(data: &[u8]) {
    let mut r = Reassembler::new(CaptureLimits {
        max_connections: 8,
        ..CaptureLimits::default()
    });
    let mut sink = |_: StreamEvent<'_>| {};
    const LINKS: [u32; 8] = [0, 1, 101, 108, 113, 228, 229, 276];
    let mut rest = data;
    let mut ts = 0;
    while let [lt, n, tail @ ..] = rest {
        let n = usize::from(*n).min(tail.len());
        ts += 1_000_000;
        let pkt = Packet {
            ts: Nanos(ts),
            linktype: LINKS[usize::from(*lt) % 8],
            data: &tail[..n],
            orig_len: 65535,
            interface: 0,
        };
        r.handle_packet(&pkt, &mut sink);
        rest = &tail[n..];
    }
    r.finish(&mut sink);
}

/// A file of these bytes in the temporary directory, unique to this thread.
fn temp_file(tag: &str, data: &[u8]) -> Option<std::path::PathBuf> {
    let path = std::env::temp_dir().join(format!(
        "grpctap-fuzz-{}-{:?}-{tag}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&path, data).ok()?;
    Some(path)
}

/// pcap/pcapng/gzip reading: any file reads to its end or to a clear error.
pub(crate) fn capture_file(data: &[u8]) {
    let Some(path) = temp_file("in", data) else {
        return;
    };
    if let Ok(mut src) = FileSource::open(&path, 1 << 20) {
        while let Ok(Some(_)) = src.next_packet() {}
        let _ = src.remarks();
    }
}

/// What the pcapng writer writes reads back the same: the packets of any readable file, written
/// (those of the first packet's link type) and read again.
pub(crate) fn pcapng_roundtrip(data: &[u8]) {
    let Some(path) = temp_file("rt-in", data) else {
        return;
    };
    let Ok(mut src) = FileSource::open(&path, 1 << 20) else {
        return;
    };
    let out = path.with_extension("out.pcapng");
    let mut w: Option<capture::write::PcapngWriter> = None;
    let mut want = Vec::new();
    while let Ok(Some(p)) = src.next_packet() {
        if p.linktype > u32::from(u16::MAX) {
            continue;
        }
        if w.is_none() {
            match capture::write::PcapngWriter::create(
                &out,
                p.linktype,
                262_144,
                Default::default(),
            ) {
                Ok(x) => w = Some(x),
                Err(_) => return,
            }
        }
        let Some(wr) = w.as_mut() else { return };
        if p.linktype != want.first().map_or(p.linktype, |(_, l, _, _)| *l) {
            continue;
        }
        if wr.write(&p).is_err() {
            return;
        }
        want.push((p.ts.0, p.linktype, p.data.to_vec(), p.orig_len));
    }
    let Some(mut w) = w else { return };
    if w.flush().is_err() {
        return;
    }
    let mut back = FileSource::open(&out, 1 << 20).expect("what the writer wrote opens");
    let mut got = Vec::new();
    while let Some(p) = back.next_packet().expect("what the writer wrote reads") {
        got.push((p.ts.0, p.linktype, p.data.to_vec(), p.orig_len));
    }
    assert!(
        got == want,
        "pcapng round trip: {} packets written, {} read",
        want.len(),
        got.len()
    );
}

/// Message payloads: a selector byte picks the encoding, the rest is decompressed (bounded),
/// decoded without a schema and as google.rpc.Status, and as rich error details.
pub(crate) fn payload(data: &[u8]) {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let enc = ["identity", "gzip", "deflate", "snappy", "zstd", "x-unknown"][usize::from(sel) % 6];
    let body = decoder::grpc::msg::Body {
        compressed: sel & 0x80 != 0,
        len: u32::try_from(rest.len()).unwrap_or(u32::MAX),
        data: rest.to_vec(),
        ts: Nanos(0),
    };
    let mut budget = decoder::payload::OutputBudget::CALLS;
    for ty in [None, Some("google.rpc.Status")] {
        let v = decoder::payload::message_json(
            &body,
            Some(enc),
            ty,
            Some(schemas()),
            1 << 20,
            &mut budget,
        );
        let _ = serde_json::to_string(&v);
    }
    let _ = serde_json::to_string(&decoder::payload::status_details_json(rest, schemas()));
}
