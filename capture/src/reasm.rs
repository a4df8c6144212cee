//! One direction of a TCP connection: sequence space to ordered bytes.
//!
//! Bytes are delivered exactly once, in order. Where copies of the same sequence range differ
//! (retransmission with other content, overlapping segments), the first copy received wins:
//! bytes already delivered cannot be taken back, and for buffered bytes we keep the same rule so
//! the outcome does not depend on whether a hole was open. Differing overlaps are counted.
//!
//! A hole (bytes not seen, later bytes buffered) becomes a `Gap` when waiting can no longer fill
//! it: the peer acknowledged past it (acknowledged data is never retransmitted, so the capture
//! lost it), the reorder buffer is full, the hole is older than `reorder_timeout`, the connection
//! is reset, expires or is evicted, or the capture ends.

use std::collections::VecDeque;

use crate::config::CaptureLimits;
use crate::event::{
    CloseReason, ConnId, Dir, EventKind, HalfStats, Nanos, StreamEvent, StreamSink,
};
use crate::stats::CaptureStats;

/// Bytes buffered ahead of a hole, at stream offset `off`.
#[derive(Debug)]
struct Pending {
    off: u64,
    data: Vec<u8>,
}

impl Pending {
    fn end(&self) -> u64 {
        self.off + self.data.len() as u64
    }
}

/// The part of a TCP segment one direction needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SegIn<'a> {
    pub(crate) seq: u32,
    pub(crate) syn: bool,
    pub(crate) fin: bool,
    pub(crate) payload: &'a [u8],
    /// Payload bytes the capture cut off after `payload`.
    pub(crate) missing: usize,
}

/// Everything a half-stream needs from its surroundings to emit events and count.
pub(crate) struct Ctx<'c, S: StreamSink + ?Sized> {
    pub(crate) conn: ConnId,
    pub(crate) dir: Dir,
    pub(crate) ts: Nanos,
    pub(crate) sink: &'c mut S,
    pub(crate) stats: &'c mut CaptureStats,
    pub(crate) ooo_total: &'c mut usize,
    pub(crate) limits: &'c CaptureLimits,
}

impl<S: StreamSink + ?Sized> Ctx<'_, S> {
    fn emit(&mut self, kind: EventKind<'_>) {
        self.sink.on_event(StreamEvent {
            conn: self.conn,
            dir: self.dir,
            ts: self.ts,
            kind,
        });
    }
}

/// Reassembly state of one direction.
#[derive(Debug, Default)]
pub(crate) struct HalfStream {
    synced: bool,
    /// Sequence number of stream offset 0 (first byte after the SYN, or first byte seen).
    base_seq: u32,
    /// Stream offset of the next byte to deliver.
    next_off: u64,
    /// Stream offset the FIN occupies, once seen.
    fin_off: Option<u64>,
    closed: bool,
    /// The ISN when the SYN was seen (to tell a retransmitted SYN from a new connection).
    isn: Option<u32>,
    pending: VecDeque<Pending>,
    pending_bytes: usize,
    /// When the oldest open hole appeared.
    hole_since: Nanos,
    pub(crate) stats: HalfStats,
}

impl HalfStream {
    pub(crate) fn is_closed(&self) -> bool {
        self.closed
    }

    pub(crate) fn isn(&self) -> Option<u32> {
        self.isn
    }

    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    // Stream offsets are 64-bit; sequence numbers are the low 32 bits of base + offset.
    #[allow(clippy::cast_possible_truncation)]
    fn seq_at(&self, off: u64) -> u32 {
        self.base_seq.wrapping_add(off as u32)
    }

    /// Signed distance from the next expected byte to `seq` (RFC 9293 modular comparison).
    fn rel(&self, seq: u32) -> i64 {
        i64::from(seq.wrapping_sub(self.seq_at(self.next_off)).cast_signed())
    }

    /// Feeds one segment of this direction.
    pub(crate) fn segment<S: StreamSink + ?Sized>(&mut self, seg: &SegIn<'_>, cx: &mut Ctx<'_, S>) {
        self.stats.packets += 1;
        if self.closed {
            if !seg.payload.is_empty() {
                cx.stats.retransmitted += 1;
            }
            return;
        }
        let data_seq = if seg.syn {
            // A retransmitted SYN changes nothing; a SYN seen after the first data (capture
            // reordering) still fixes the start of the stream.
            let fresh = self.isn.is_none() && self.next_off == 0 && self.pending.is_empty();
            if !self.synced || fresh {
                self.isn = Some(seg.seq);
                self.base_seq = seg.seq.wrapping_add(1);
                self.synced = true;
            }
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        if !self.synced {
            // Joined mid-stream: the first byte we see is offset 0.
            self.base_seq = data_seq;
            self.synced = true;
        }
        let rel = self.rel(data_seq);
        if rel.unsigned_abs() > u64::from(cx.limits.max_seq_jump) {
            cx.stats.out_of_window += 1;
            return;
        }
        let len = seg.payload.len() as u64;
        let start = self.next_off as i64 + rel;
        let end = start + len as i64;
        if seg.fin && self.fin_off.is_none() {
            // The FIN occupies the sequence number after the last byte, cut bytes included.
            self.fin_off = u64::try_from(end + seg.missing as i64).ok();
        }
        if len > 0 || seg.missing > 0 {
            self.data(start, seg.payload, seg.missing, cx);
        }
        self.maybe_fin(cx);
    }

    fn data<S: StreamSink + ?Sized>(
        &mut self,
        start: i64,
        payload: &[u8],
        missing: usize,
        cx: &mut Ctx<'_, S>,
    ) {
        let next = self.next_off as i64;
        let end = start + payload.len() as i64;
        if end + missing as i64 <= next {
            cx.stats.retransmitted += 1;
            return;
        }
        // Drop what lies before the next expected byte (retransmitted overlap).
        let skip = usize::try_from((next - start).max(0))
            .unwrap_or(usize::MAX)
            .min(payload.len());
        let start = u64::try_from(start.max(next)).unwrap_or(0);
        let payload = &payload[skip..];
        if start == self.next_off {
            self.deliver_from(start, payload, cx);
            if missing > 0 && self.next_off == start + payload.len() as u64 {
                // The capture cut this segment; no copy of the rest will be seen.
                self.gap(missing as u64, cx);
                self.drain(cx);
            }
        } else {
            self.buffer(start, payload, cx);
        }
    }

    /// Delivers `data` (which starts at `off` <= next_off) merged with buffered bytes: where a
    /// buffered copy exists it was received first and wins.
    fn deliver_from<S: StreamSink + ?Sized>(&mut self, off: u64, data: &[u8], cx: &mut Ctx<'_, S>) {
        let end = off + data.len() as u64;
        loop {
            if self.pop_ready(cx) {
                continue;
            }
            if self.next_off >= end {
                break;
            }
            let limit = self.pending.front().map_or(end, |p| p.off.min(end));
            let from = usize::try_from(self.next_off - off).unwrap_or(usize::MAX);
            let to = usize::try_from(limit - off).unwrap_or(usize::MAX);
            if let Some(bytes) = data.get(from..to) {
                self.emit_data(bytes, cx);
            }
            self.next_off = limit;
        }
        if self.pending.is_empty() {
            self.hole_since = Nanos::default();
        }
    }

    /// Delivers the first buffered segment if it starts at or before `next_off`.
    fn pop_ready<S: StreamSink + ?Sized>(&mut self, cx: &mut Ctx<'_, S>) -> bool {
        if self.pending.front().is_none_or(|p| p.off > self.next_off) {
            return false;
        }
        let Some(p) = self.pending.pop_front() else {
            return false;
        };
        self.pending_bytes -= p.data.len();
        *cx.ooo_total -= p.data.len();
        if p.end() > self.next_off {
            let from = usize::try_from(self.next_off - p.off).unwrap_or(usize::MAX);
            if let Some(bytes) = p.data.get(from..) {
                self.emit_data(bytes, cx);
            }
            self.next_off = p.end();
        }
        true
    }

    fn drain<S: StreamSink + ?Sized>(&mut self, cx: &mut Ctx<'_, S>) {
        while self.pop_ready(cx) {}
        if self.pending.is_empty() {
            self.hole_since = Nanos::default();
        }
    }

    fn emit_data<S: StreamSink + ?Sized>(&mut self, bytes: &[u8], cx: &mut Ctx<'_, S>) {
        if bytes.is_empty() {
            return;
        }
        self.stats.bytes += bytes.len() as u64;
        cx.stats.tcp_bytes += bytes.len() as u64;
        cx.emit(EventKind::Data(bytes));
    }

    fn gap<S: StreamSink + ?Sized>(&mut self, len: u64, cx: &mut Ctx<'_, S>) {
        if len == 0 {
            return;
        }
        self.stats.gaps += 1;
        self.stats.gap_bytes += len;
        cx.stats.gaps += 1;
        cx.stats.gap_bytes += len;
        cx.emit(EventKind::Gap { len });
        self.next_off += len;
    }

    /// Buffers bytes that start after a hole; the parts already buffered keep their first copy.
    fn buffer<S: StreamSink + ?Sized>(&mut self, start: u64, data: &[u8], cx: &mut Ctx<'_, S>) {
        if data.is_empty() {
            return;
        }
        let end = start + data.len() as u64;
        let mut added = false;
        let mut conflict = false;
        let mut cur = start;
        let mut idx = self.pending.partition_point(|p| p.end() <= start);
        while cur < end {
            let next_start = self.pending.get(idx).map_or(end, |p| p.off.min(end));
            if cur < next_start {
                let piece = &data[to_usize(cur - start)..to_usize(next_start - start)];
                self.pending.insert(
                    idx,
                    Pending {
                        off: cur,
                        data: piece.to_vec(),
                    },
                );
                self.pending_bytes += piece.len();
                *cx.ooo_total += piece.len();
                added = true;
                idx += 1;
                cur = next_start;
                continue;
            }
            let Some(p) = self.pending.get(idx) else {
                break;
            };
            // Overlap with buffered bytes [cur, min(end, p.end)): keep p's copy, compare.
            let ov_end = end.min(p.end());
            let ours = &data[to_usize(cur - start)..to_usize(ov_end - start)];
            let theirs = &p.data[to_usize(cur - p.off)..to_usize(ov_end - p.off)];
            conflict |= ours != theirs;
            cur = ov_end;
            idx += 1;
        }
        if conflict {
            cx.stats.overlap_conflicts += 1;
        }
        if !added {
            cx.stats.retransmitted += 1;
            return;
        }
        cx.stats.out_of_order += 1;
        if self.hole_since == Nanos::default() {
            self.hole_since = cx.ts;
        }
        while self.pending_bytes > cx.limits.max_ooo_bytes_per_direction
            || self.pending.len() > cx.limits.max_ooo_segments_per_direction
            || *cx.ooo_total > cx.limits.max_ooo_bytes_total
        {
            if !self.skip_hole(cx) {
                break;
            }
        }
    }

    /// Gives up on the first hole: emits a gap up to the first buffered byte (or to the FIN) and
    /// delivers what follows. Returns false when there was no hole.
    fn skip_hole<S: StreamSink + ?Sized>(&mut self, cx: &mut Ctx<'_, S>) -> bool {
        let target = match (self.pending.front(), self.fin_off) {
            (Some(p), _) => p.off,
            (None, Some(fin)) if fin > self.next_off => fin,
            _ => return false,
        };
        self.gap(target - self.next_off, cx);
        self.drain(cx);
        if !self.pending.is_empty() {
            self.hole_since = cx.ts;
        }
        true
    }

    /// The peer acknowledged `ack`: holes below it were lost by the capture, not the network.
    pub(crate) fn peer_acked<S: StreamSink + ?Sized>(&mut self, ack: u32, cx: &mut Ctx<'_, S>) {
        if self.closed || !self.synced {
            return;
        }
        let rel = self.rel(ack);
        if rel <= 0 || rel.unsigned_abs() > u64::from(cx.limits.max_seq_jump) {
            return;
        }
        let ack_off = self.next_off + rel.unsigned_abs();
        while self.pending.front().is_some_and(|p| p.off <= ack_off) {
            if !self.skip_hole(cx) {
                break;
            }
        }
        // An acknowledged FIN with a hole before it: that data is gone too.
        if self.pending.is_empty() && self.fin_off.is_some_and(|f| f < ack_off) {
            self.skip_hole(cx);
        }
        self.maybe_fin(cx);
    }

    /// Declares holes older than `reorder_timeout` lost.
    pub(crate) fn check_timeout<S: StreamSink + ?Sized>(
        &mut self,
        now: Nanos,
        cx: &mut Ctx<'_, S>,
    ) {
        while !self.closed
            && !self.pending.is_empty()
            && now.saturating_since(self.hole_since) >= cx.limits.reorder_timeout
        {
            if !self.skip_hole(cx) {
                break;
            }
        }
        self.maybe_fin(cx);
    }

    fn maybe_fin<S: StreamSink + ?Sized>(&mut self, cx: &mut Ctx<'_, S>) {
        if !self.closed
            && self.pending.is_empty()
            && self.fin_off.is_some_and(|f| self.next_off >= f)
        {
            self.close_now(CloseReason::Fin, cx);
        }
    }

    /// Ends the direction: every hole becomes a gap, buffered bytes are delivered, then `Close`.
    pub(crate) fn close<S: StreamSink + ?Sized>(
        &mut self,
        reason: CloseReason,
        cx: &mut Ctx<'_, S>,
    ) {
        if self.closed {
            return;
        }
        while self.skip_hole(cx) {}
        // A FIN reached in sequence is the real end even when an RST or the end of the capture
        // is what made us look.
        let reason = if self.fin_off.is_some_and(|f| self.next_off >= f) {
            CloseReason::Fin
        } else {
            reason
        };
        self.close_now(reason, cx);
    }

    fn close_now<S: StreamSink + ?Sized>(&mut self, reason: CloseReason, cx: &mut Ctx<'_, S>) {
        self.closed = true;
        cx.emit(EventKind::Close {
            reason,
            stats: self.stats,
        });
    }

    /// Releases buffered bytes without events (the connection is being dropped after close).
    pub(crate) fn release(&mut self, ooo_total: &mut usize) {
        *ooo_total -= self.pending_bytes;
        self.pending_bytes = 0;
        self.pending.clear();
    }
}

fn to_usize(n: u64) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and known
mod tests {
    use super::*;

    /// Collects what one direction emits, as the model sees it.
    #[derive(Default, Debug)]
    struct Out {
        bytes: Vec<u8>,
        gaps: Vec<(usize, u64)>,
        close: Option<CloseReason>,
    }

    struct Rig {
        half: HalfStream,
        out: Out,
        stats: CaptureStats,
        ooo: usize,
        limits: CaptureLimits,
    }

    impl Rig {
        fn new() -> Self {
            Rig {
                half: HalfStream::default(),
                out: Out::default(),
                stats: CaptureStats::default(),
                ooo: 0,
                limits: CaptureLimits::default(),
            }
        }
        fn run(
            &mut self,
            ts: u64,
            f: impl FnOnce(&mut HalfStream, &mut Ctx<'_, dyn StreamSink + '_>),
        ) {
            let out = &mut self.out;
            let mut sink = |ev: StreamEvent<'_>| match ev.kind {
                EventKind::Data(d) => out.bytes.extend_from_slice(d),
                EventKind::Gap { len } => out.gaps.push((out.bytes.len(), len)),
                EventKind::Close { reason, .. } => out.close = Some(reason),
                EventKind::Open(_) => {}
            };
            let mut cx = Ctx {
                conn: ConnId::new(0, 1),
                dir: Dir::ToServer,
                ts: Nanos(ts),
                sink: &mut sink as &mut dyn StreamSink,
                stats: &mut self.stats,
                ooo_total: &mut self.ooo,
                limits: &self.limits,
            };
            f(&mut self.half, &mut cx);
        }
        fn seg(&mut self, ts: u64, seq: u32, payload: &[u8], syn: bool, fin: bool) {
            let s = SegIn {
                seq,
                syn,
                fin,
                payload,
                missing: 0,
            };
            self.run(ts, |h, cx| h.segment(&s, cx));
        }
    }

    #[test]
    fn in_order_reorder_retransmit_and_fin() {
        let mut r = Rig::new();
        r.seg(0, 99, b"", true, false);
        r.seg(1, 100, b"abc", false, false);
        r.seg(2, 106, b"ghi", false, true); // ahead of a hole
        assert_eq!(r.out.bytes, b"abc");
        r.seg(3, 103, b"def", false, false);
        r.seg(4, 100, b"abcdef", false, false); // retransmission
        assert_eq!(r.out.bytes, b"abcdefghi");
        assert_eq!(r.out.close, Some(CloseReason::Fin));
        assert_eq!(r.stats.out_of_order, 1);
        assert_eq!(
            r.stats.retransmitted, 1,
            "a copy after the FIN is a retransmission"
        );
        assert_eq!(r.ooo, 0);
    }

    #[test]
    fn first_copy_wins_and_conflict_is_counted() {
        let mut r = Rig::new();
        r.seg(0, 0, b"A", false, false);
        r.seg(1, 3, b"XYZ", false, false);
        r.seg(2, 2, b"-xyz!", false, false); // overlaps XYZ with different bytes
        r.seg(3, 1, b"B", false, false);
        assert_eq!(r.out.bytes, b"AB-XYZ!");
        assert_eq!(r.stats.overlap_conflicts, 1);
    }

    #[test]
    fn sequence_wraps_around_zero() {
        let mut r = Rig::new();
        r.seg(0, u32::MAX - 1, b"", true, false);
        r.seg(1, u32::MAX, b"ab", false, false);
        r.seg(2, 1, b"cd", false, false);
        assert_eq!(r.out.bytes, b"abcd");
    }

    #[test]
    fn peer_ack_past_a_hole_makes_it_a_gap() {
        let mut r = Rig::new();
        r.seg(0, 1000, b"aaaa", false, false);
        r.seg(1, 1010, b"bbbb", false, false);
        r.run(2, |h, cx| h.peer_acked(1012, cx));
        assert_eq!(r.out.bytes, b"aaaabbbb");
        assert_eq!(r.out.gaps, vec![(4, 6)]);
        assert_eq!(r.stats.gap_bytes, 6);
    }

    #[test]
    fn reorder_timeout_makes_a_gap() {
        let mut r = Rig::new();
        r.seg(0, 0, b"a", false, false);
        r.seg(1_000, 5, b"f", false, false);
        r.run(2_000_000_000, |h, cx| {
            h.check_timeout(Nanos(2_000_000_000), cx)
        });
        assert!(r.out.gaps.is_empty());
        r.run(3_000_001_000, |h, cx| {
            h.check_timeout(Nanos(3_000_001_000), cx)
        });
        assert_eq!(r.out.gaps, vec![(1, 4)]);
        assert_eq!(r.out.bytes, b"af");
    }

    #[test]
    fn buffer_bound_forces_gaps() {
        let mut r = Rig::new();
        r.limits.max_ooo_segments_per_direction = 2;
        r.seg(0, 0, b"a", false, false);
        r.seg(1, 2, b"c", false, false);
        r.seg(2, 4, b"e", false, false);
        assert!(r.out.gaps.is_empty());
        r.seg(3, 6, b"g", false, false);
        assert_eq!(r.out.bytes, b"ac");
        assert_eq!(r.out.gaps, vec![(1, 1)]);
    }

    #[test]
    fn snaplen_cut_becomes_gap_and_stream_goes_on() {
        let mut r = Rig::new();
        let s = SegIn {
            seq: 0,
            syn: false,
            fin: false,
            payload: b"head",
            missing: 96,
        };
        r.run(0, |h, cx| h.segment(&s, cx));
        r.seg(1, 100, b"next", false, false);
        assert_eq!(r.out.bytes, b"headnext");
        assert_eq!(r.out.gaps, vec![(4, 96)]);
    }

    #[test]
    fn close_flushes_holes_and_fin_wins_over_later_reset() {
        let mut r = Rig::new();
        r.seg(0, 0, b"ab", false, false);
        r.seg(1, 5, b"fg", false, false);
        r.run(2, |h, cx| h.close(CloseReason::EndOfCapture, cx));
        assert_eq!(r.out.bytes, b"abfg");
        assert_eq!(r.out.gaps, vec![(2, 3)]);
        assert_eq!(r.out.close, Some(CloseReason::EndOfCapture));

        let mut r = Rig::new();
        r.seg(0, 0, b"ab", false, true);
        assert_eq!(r.out.close, Some(CloseReason::Fin));
    }

    #[test]
    fn implausible_jump_is_dropped() {
        let mut r = Rig::new();
        r.seg(0, 0, b"ab", false, false);
        r.seg(1, 0x8000_0000, b"zz", false, false);
        assert_eq!(r.stats.out_of_window, 1);
        assert_eq!(r.out.bytes, b"ab");
    }
}
