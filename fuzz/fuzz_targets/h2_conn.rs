//! HTTP/2 connection decoding: bytes, gaps and closes in any order never panic.
#![no_main]
use decoder::{ConnDecoder, ConnId, DecoderLimits, Dir, Nanos, NullSink};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, mut rest)) = data.split_first() else { return };
    let a = "10.0.0.1:40000".parse().unwrap();
    let b = "10.0.0.2:50051".parse().unwrap();
    let mut dec =
        ConnDecoder::new(ConnId::new(0, 1), (a, b), Nanos(0), mode & 1 == 1, DecoderLimits::default());
    let mut ts = 0;
    // Chunks: [dir|gap flag][len][bytes...]
    while let [op, n, tail @ ..] = rest {
        let n = usize::from(*n).min(tail.len());
        ts += 1_000;
        let d = Dir::BOTH[usize::from(op & 1)];
        if op & 2 != 0 {
            dec.handle_gap(d, Nanos(ts), n as u64 + 1, &mut NullSink);
        } else {
            dec.handle_data(d, Nanos(ts), &tail[..n], &mut NullSink);
        }
        rest = &tail[n..];
    }
    if mode & 2 == 0 {
        dec.finish(&mut NullSink)
    } else {
        dec.handle_closed(Nanos(ts), &mut NullSink)
    }
});
