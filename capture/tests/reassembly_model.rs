//! The reassembler against a simple model: a byte array where each position takes its value
//! from the first segment received that covers it. Random segmentation, reordering, duplicate
//! and overlapping copies (with or without different content), sequence-number wrap, loss and
//! small buffer bounds.

// Test sizes are small and known; the truncation lint is for wire-facing code.
#![allow(clippy::cast_possible_truncation)]

use std::net::{IpAddr, Ipv4Addr};

use capture::wire::{TcpFlags, TcpSegment};
use capture::{CaptureLimits, CaptureStats, CloseReason, EventKind, FlowTable, Nanos, StreamEvent};
use proptest::prelude::*;
use proptest::sample::Index;

/// A segment to send: stream range and its content.
#[derive(Debug, Clone)]
struct Seg {
    off: usize,
    bytes: Vec<u8>,
    fin: bool,
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut s = seed | 1;
    for i in (1..v.len()).rev() {
        let j = (xorshift(&mut s) % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
}

/// Cuts `data` into consecutive segments with the given sizes (cycled).
fn segment(data: &[u8], cuts: &[usize]) -> Vec<Seg> {
    let mut out = Vec::new();
    let mut off = 0;
    let mut i = 0;
    while off < data.len() {
        let n = cuts[i % cuts.len()].min(data.len() - off);
        out.push(Seg {
            off,
            bytes: data[off..off + n].to_vec(),
            fin: false,
        });
        off += n;
        i += 1;
    }
    out
}

#[derive(Debug, Default)]
struct Delivered {
    /// (offset, bytes) of each Data event.
    chunks: Vec<(usize, Vec<u8>)>,
    gaps: Vec<(usize, usize)>,
    offset: usize,
    close: Option<CloseReason>,
}

fn run(isn: u32, segs: &[Seg], limits: CaptureLimits) -> (Delivered, CaptureStats) {
    let mut table = FlowTable::new(limits.clone());
    let mut stats = CaptureStats::default();
    let mut out = Delivered::default();
    let mut sink = |ev: StreamEvent<'_>| match ev.kind {
        EventKind::Data(d) => {
            assert!(out.close.is_none());
            out.chunks.push((out.offset, d.to_vec()));
            out.offset += d.len();
        }
        EventKind::Gap { len } => {
            out.gaps.push((out.offset, len as usize));
            out.offset += len as usize;
        }
        EventKind::Close { reason, .. } if ev.dir == capture::Dir::ToServer => {
            out.close = Some(reason)
        }
        _ => {}
    };
    let mk = |seq: u32, flags: u8, payload: &[u8]| -> TcpSegment<'static> {
        TcpSegment {
            src: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
            src_port: 40000,
            dst_port: 50051,
            seq,
            ack: 0,
            flags: TcpFlags(flags),
            payload: Vec::leak(payload.to_vec()),
            missing: 0,
        }
    };
    table.handle_segment(
        &mk(isn, TcpFlags::SYN, b""),
        Nanos(0),
        &mut stats,
        &mut sink,
    );
    for s in segs {
        let seq = isn.wrapping_add(1).wrapping_add(s.off as u32);
        let flags = if s.fin { TcpFlags::FIN } else { 0 };
        table.handle_segment(&mk(seq, flags, &s.bytes), Nanos(0), &mut stats, &mut sink);
        assert!(table.buffered_bytes() <= limits.max_ooo_bytes_per_direction);
    }
    table.finish(&mut stats, &mut sink);
    (out, stats)
}

/// Value of each stream byte under first-arrival-wins, `None` where nothing was received.
fn model(len: usize, segs: &[Seg]) -> Vec<Option<u8>> {
    let mut m = vec![None; len];
    for s in segs {
        for (i, b) in s.bytes.iter().enumerate() {
            m[s.off + i].get_or_insert(*b);
        }
    }
    m
}

fn check_against_model(total: usize, segs: &[Seg], out: &Delivered, expect_no_gaps: bool) {
    let m = model(total, segs);
    let delivered: usize = out.chunks.iter().map(|c| c.1.len()).sum();
    let gap_bytes: usize = out.gaps.iter().map(|g| g.1).sum();
    assert_eq!(
        delivered + gap_bytes,
        total,
        "every byte delivered or skipped exactly once"
    );
    for (off, chunk) in &out.chunks {
        for (i, b) in chunk.iter().enumerate() {
            assert_eq!(
                m[off + i],
                Some(*b),
                "byte {} differs from the first copy received",
                off + i
            );
        }
    }
    if expect_no_gaps {
        assert!(out.gaps.is_empty(), "gaps {:?}", out.gaps);
    }
    // Bytes never received are inside gaps.
    for (pos, v) in m.iter().enumerate() {
        if v.is_none() {
            assert!(
                out.gaps.iter().any(|&(o, l)| pos >= o && pos < o + l),
                "lost byte {pos} not in a gap"
            );
        }
    }
    assert_eq!(out.close, Some(CloseReason::Fin));
}

/// Inserts the FIN at position `at` of the arrival order (clamped to the end).
/// Limits that never force a gap in these tests.
fn roomy() -> CaptureLimits {
    CaptureLimits {
        max_ooo_segments_per_direction: 1 << 20,
        ..CaptureLimits::default()
    }
}

fn with_fin(mut segs: Vec<Seg>, total: usize, at: usize) -> Vec<Seg> {
    segs.insert(
        at.min(segs.len()),
        Seg {
            off: total,
            bytes: Vec::new(),
            fin: true,
        },
    );
    segs
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn reorder_duplicates_and_conflicting_overlaps(
        data in prop::collection::vec(any::<u8>(), 0..3000),
        cuts in prop::collection::vec(1usize..400, 1..20),
        extras in prop::collection::vec((any::<Index>(), 1usize..500, any::<bool>()), 0..20),
        seed in any::<u64>(),
        isn in prop_oneof![any::<u32>(), (u32::MAX - 2000)..=u32::MAX],
        fin_at in any::<Index>(),
    ) {
        let total = data.len();
        let mut segs = segment(&data, &cuts);
        if total > 0 {
            for (at, len, flip) in &extras {
                let off = at.index(total);
                let end = (off + len).min(total);
                let bytes = data[off..end].iter().map(|b| if *flip { !b } else { *b }).collect();
                segs.push(Seg { off, bytes, fin: false });
            }
        }
        shuffle(&mut segs, seed);
        let at = fin_at.index(segs.len() + 1);
        let segs = with_fin(segs, total, at);
        // Room to buffer every segment (up to 3,000 one-byte segments, fully shuffled): only
        // then does "no loss" mean "no gaps". The bounds have their own test below.
        let (out, _) = run(isn, &segs, roomy());
        check_against_model(total, &segs, &out, true);
    }

    #[test]
    fn loss_becomes_gaps_and_nothing_else_is_lost(
        data in prop::collection::vec(any::<u8>(), 1..3000),
        cuts in prop::collection::vec(1usize..300, 1..20),
        lost in prop::collection::vec(any::<bool>(), 1..40),
        seed in any::<u64>(),
        isn in any::<u32>(),
        fin_at in any::<Index>(),
    ) {
        let total = data.len();
        let mut segs: Vec<Seg> = segment(&data, &cuts)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| !lost[i % lost.len()])
            .map(|(_, s)| s)
            .collect();
        shuffle(&mut segs, seed);
        let at = fin_at.index(segs.len() + 1);
        let segs = with_fin(segs, total, at);
        let (out, _) = run(isn, &segs, roomy());
        // With room to buffer everything, only bytes never received are skipped.
        let m = model(total, &segs);
        let received = m.iter().filter(|v| v.is_some()).count();
        let delivered: usize = out.chunks.iter().map(|c| c.1.len()).sum();
        prop_assert_eq!(delivered, received);
        check_against_model(total, &segs, &out, false);
    }

    #[test]
    fn tiny_buffers_force_gaps_but_stay_correct(
        data in prop::collection::vec(any::<u8>(), 1..3000),
        cuts in prop::collection::vec(1usize..200, 1..20),
        seed in any::<u64>(),
        max_segs in 1usize..4,
        max_bytes in 1usize..600,
    ) {
        let total = data.len();
        let mut segs = segment(&data, &cuts);
        shuffle(&mut segs, seed);
        let segs = with_fin(segs, total, usize::MAX);
        let limits = CaptureLimits {
            max_ooo_segments_per_direction: max_segs,
            max_ooo_bytes_per_direction: max_bytes,
            ..CaptureLimits::default()
        };
        let (out, stats) = run(1, &segs, limits);
        check_against_model(total, &segs, &out, false);
        prop_assert_eq!(stats.gaps as usize, out.gaps.len());
    }
}
