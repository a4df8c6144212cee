//! Payload decode throughput: the messages of a real capture (testdata/captures/py-bodies-lo.pcap:
//! python grpcio, gzip / deflate / identity, payloads of 0-3 KB) decompressed and decoded to
//! JSON, with the schema and without (field numbers), one core.
//!
//! Run: `cargo bench --bench decode` (GRPCTAP_BENCH_ROUNDS, default 2000 passes over the messages)

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Instant;

use capture::{CaptureLimits, EventKind, FileSource, Reassembler, StreamEvent};
use decoder::grpc::msg::Body;
use decoder::schema::Schemas;
use decoder::{CallRecord, ConnDecoder, DecoderLimits, Sink};

/// (message, grpc-encoding, type name) of every message in the capture.
type Message = (Body, Option<String>, String);

#[derive(Default)]
struct Collect {
    messages: Vec<Message>,
    schemas: Option<Schemas>,
}

impl Sink for Collect {
    fn call_ended(&mut self, c: &CallRecord) {
        let Some(info) = c
            .method
            .as_deref()
            .and_then(|m| self.schemas.as_ref()?.method(m))
            .cloned()
        else {
            return;
        };
        for (half, ty) in [(&c.req, &info.input), (&c.resp, &info.output)] {
            for b in &half.bodies {
                let enc = half.encoding.as_deref().map(str::to_owned);
                self.messages.push((b.clone(), enc, ty.clone()));
            }
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--test" || a == "--list") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let fds = protox::compile(["echo.proto"], [root.join("testdata/proto")]).unwrap();
    let mut pool = prost_reflect::DescriptorPool::new();
    pool.add_file_descriptor_set(fds).unwrap();
    decoder::schema::add_google_rpc(&mut pool).unwrap();
    let schemas = Schemas::new(pool);
    let mut collect = Collect {
        schemas: Some(schemas.clone()),
        ..Collect::default()
    };
    let limits = DecoderLimits {
        bodies_per_call: 64,
        ..DecoderLimits::default()
    };
    let mut decoders: std::collections::HashMap<u64, ConnDecoder> =
        std::collections::HashMap::new();
    let mut reasm = Reassembler::new(CaptureLimits::default());
    let mut src =
        FileSource::open(&root.join("testdata/captures/py-bodies-lo.pcap"), 16 << 20).unwrap();
    let mut sink = |ev: StreamEvent<'_>| match ev.kind {
        EventKind::Open(i) => {
            decoders.insert(
                ev.conn.get(),
                ConnDecoder::new(ev.conn, (i.client, i.server), ev.ts, true, limits),
            );
        }
        EventKind::Data(d) => {
            if let Some(dec) = decoders.get_mut(&ev.conn.get()) {
                dec.handle_data(ev.dir, ev.ts, d, &mut collect);
            }
        }
        EventKind::Close { .. } => {
            if let Some(mut dec) = decoders.remove(&ev.conn.get()) {
                dec.finish(&mut collect);
            }
        }
        EventKind::Gap { .. } => {}
    };
    while let Some(p) = src.next_packet().unwrap() {
        reasm.handle_packet(&p, &mut sink);
    }
    reasm.finish(&mut sink);
    let messages = collect.messages;
    let bytes: usize = messages.iter().map(|m| m.0.data.len()).sum();
    let compressed = messages.iter().filter(|m| m.0.compressed).count();
    let rounds: usize = std::env::var("GRPCTAP_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    println!(
        "{} messages ({compressed} compressed), {bytes} bytes on the wire, {rounds} passes",
        messages.len()
    );
    for (name, with_schema) in [("schema JSON", true), ("raw (no schema)", false)] {
        let t = Instant::now();
        let mut out = 0usize;
        for _ in 0..rounds {
            for (body, enc, ty) in &messages {
                let plain = if body.compressed {
                    decoder::payload::decompress(enc.as_deref(), &body.data, 16 << 20).unwrap()
                } else {
                    body.data.clone()
                };
                let v = if with_schema {
                    decoder::payload::to_json(schemas.pool(), ty, &plain).unwrap()
                } else {
                    decoder::payload::decode_raw(&plain).unwrap()
                };
                out += std::hint::black_box(&v).is_object() as usize;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(out, rounds * messages.len());
        println!(
            "{name:>16}: {:>9.0} messages/s, {:>7.1} MB/s of wire bytes",
            (rounds * messages.len()) as f64 / secs,
            (rounds * bytes) as f64 / 1e6 / secs
        );
    }
}
