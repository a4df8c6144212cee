//! Link/IP/TCP parsing and reassembly: any packet under any link type never panics.
#![no_main]
use capture::{CaptureLimits, Packet, Reassembler, StreamEvent, Nanos};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut r = Reassembler::new(CaptureLimits { max_connections: 8, ..CaptureLimits::default() });
    let mut sink = |_: StreamEvent<'_>| {};
    // Chunks: [linktype selector][len][bytes...]
    const LINKS: [u32; 8] = [0, 1, 101, 108, 113, 228, 229, 276];
    let mut rest = data;
    let mut ts = 0;
    while let [lt, n, tail @ ..] = rest {
        let n = usize::from(*n).min(tail.len());
        ts += 1_000_000;
        let pkt = Packet { ts: Nanos(ts), linktype: LINKS[usize::from(*lt) % 8], data: &tail[..n], orig_len: 65535, interface: 0 };
        r.handle_packet(&pkt, &mut sink);
        rest = &tail[n..];
    }
    r.finish(&mut sink);
});
