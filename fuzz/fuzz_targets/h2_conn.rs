//! HTTP/2 connection decoding: bytes, gaps and closes in any order never panic.
#![no_main]
use decoder::{CallRecord, CallSink, ConnDecoder, ConnEvent, DecoderLimits};
use libfuzzer_sys::fuzz_target;

struct Null;
impl CallSink for Null {
    fn call_started(&mut self, _: &CallRecord) {}
    fn call_ended(&mut self, _: &CallRecord) {}
    fn conn_event(&mut self, _: u64, _: ConnEvent) {}
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let a = "10.0.0.1:40000".parse().unwrap();
    let b = "10.0.0.2:50051".parse().unwrap();
    let mut dec = ConnDecoder::new(1, a, b, mode & 1 == 1, DecoderLimits::default());
    let mut ts = 0;
    // Chunks: [dir|gap flag][len][bytes...]
    while let [op, n, tail @ ..] = rest {
        let n = usize::from(*n).min(tail.len());
        ts += 1_000;
        let d = usize::from(op & 1);
        if op & 2 != 0 {
            dec.handle_gap(d, ts, n as u64 + 1, &mut Null);
        } else {
            dec.handle_data(d, ts, &tail[..n], &mut Null);
        }
        rest = &tail[n..];
    }
    if mode & 2 == 0 { dec.finish(&mut Null) } else { dec.handle_closed(ts, &mut Null) }
});
