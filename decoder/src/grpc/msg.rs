//! gRPC length-prefixed messages (PROTOCOL-HTTP2.md "Length-Prefixed-Message") across DATA
//! frames and TCP segments: a 1-byte compressed flag, a 4-byte big-endian length, the bytes.
//! Nothing is buffered but the 5-byte prefix, so a hostile 4 GiB length costs nothing.

use types::Nanos;

/// One message's bytes, kept when asked (`--bodies`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// The compressed flag of the prefix.
    pub compressed: bool,
    /// The bytes kept (at most the per-message bound).
    pub data: Vec<u8>,
    /// Length the prefix announced.
    pub len: u32,
    /// When the message's prefix began.
    pub ts: Nanos,
}

impl Body {
    /// True when the message was longer than the bound and `data` is its beginning.
    pub fn cut(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.len)
    }
}

/// What a kept message costs its direction's budget beyond its bytes (its record).
pub(crate) const BODY_OVERHEAD: usize = 64;

/// Which messages to keep, when keeping any: the first ones of the direction, whole up to
/// `per_message` bytes each, while they fit `messages` and `bytes` (each costing its kept
/// bytes plus [`BODY_OVERHEAD`]); past that, none (they are counted as dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Keep {
    pub(crate) per_message: usize,
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
    /// Also hold each message past the bounds until the tracker has handed it on
    /// (`--messages`); [`MsgParser::release_passing`] lets it go.
    pub(crate) passing: bool,
}

/// Message counting for one direction of one stream.
#[derive(Debug, Default, Clone)]
pub(crate) struct MsgParser {
    prefix: [u8; 5],
    have: u8,
    /// Bytes of the current message still to come; `None` while reading a prefix.
    left: Option<u32>,
    /// Bytes were lost mid-stream: counting stopped (counts are lower bounds).
    pub(crate) lost: bool,
    /// The stream was joined mid-way: where a message starts is not known until
    /// [`MsgParser::align`] finds a DATA frame that holds exactly one.
    pub(crate) aligning: bool,
    pub(crate) msgs: u64,
    /// The largest message completed.
    pub(crate) max_len: u32,
    pub(crate) bytes: u64,
    pub(crate) compressed: u64,
    /// When the first message's prefix began.
    pub(crate) first_start: Option<Nanos>,
    /// When the current message's prefix began.
    current_start: Nanos,
    /// Keep message bytes (bounded), and the messages kept so far.
    pub(crate) keep: Option<Keep>,
    /// The messages kept (the first `retained`), then those only passing through.
    pub(crate) bodies: Vec<Body>,
    /// How many of `bodies` are kept for the call's record.
    pub(crate) retained: usize,
    /// How many of `bodies` the tracker has handed on (`--messages`).
    pub(crate) handed: usize,
    current: Vec<u8>,
    /// The current message's bytes are being held, and whether it is kept for the record.
    holding: bool,
    retaining: bool,
    /// The bounds were reached (or the state budget said no): no later message is kept.
    pub(crate) full: bool,
    /// Messages not kept because of the bounds.
    pub(crate) dropped: u64,
    /// Bytes held now (kept and passing messages with their overhead, and the current one's).
    pub(crate) kept: usize,
    /// The flag of the envelope that ends the stream instead of carrying a message: gRPC-Web's
    /// trailers (0x80), Connect's end-of-stream message (0x02); 0 for gRPC.
    pub(crate) end_flag: u8,
    /// That envelope's bytes (the first [`END_MAX`]), once it began.
    pub(crate) end: Option<Vec<u8>>,
    in_end: bool,
    /// Connect unary: the body is one message without an envelope; `raw_keep` says whether its
    /// first [`END_MAX`] bytes are kept (an error response's JSON), in `end`.
    pub(crate) raw: bool,
    pub(crate) raw_keep: bool,
    /// A digest of the first message while it is being read (requests: the same request sent
    /// again is an application's retry; none once it completed), and the digest then.
    pub(crate) digest: Option<Digest>,
    pub(crate) first_digest: Option<u64>,
}

/// A digest of a message: its first [`Digest::MAX`] bytes and its length, the same however
/// the bytes were cut into DATA frames and TCP segments (eight bytes a step; not for hostile
/// input: a collision only makes two requests look alike).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Digest {
    h: u64,
    /// Bytes not yet a whole word, and how many.
    word: [u8; 8],
    have: u8,
    seen: u32,
}

impl Digest {
    /// Bytes of a message looked at.
    pub(crate) const MAX: u32 = 4096;
    const K: u64 = 0x9e37_79b9_7f4a_7c15;

    #[inline]
    fn mix(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(Self::K).rotate_left(31);
    }

    pub(crate) fn feed(&mut self, data: &[u8]) {
        let room = (Self::MAX - self.seen) as usize;
        let mut data = &data[..data.len().min(room)];
        self.seen += u32::try_from(data.len()).unwrap_or(0); // <= MAX
        if self.have > 0 {
            let n = (8 - usize::from(self.have)).min(data.len());
            let at = usize::from(self.have);
            self.word[at..at + n].copy_from_slice(&data[..n]);
            self.have += u8::try_from(n).unwrap_or(0); // n <= 8
            data = &data[n..];
            if self.have < 8 {
                return;
            }
            self.have = 0;
            self.mix(u64::from_le_bytes(self.word));
        }
        let mut words = data.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().unwrap_or_default()));
        }
        let rest = words.remainder();
        self.word[..rest.len()].copy_from_slice(rest);
        self.have = u8::try_from(rest.len()).unwrap_or(0); // < 8
    }

    /// The digest of a message of `len` bytes fed so far.
    pub(crate) fn finish(mut self, len: u32) -> u64 {
        if self.have > 0 {
            self.word[usize::from(self.have)..].fill(0);
            self.mix(u64::from_le_bytes(self.word) ^ (u64::from(self.have) << 56));
        }
        self.mix(u64::from(len));
        // murmur3's finaliser.
        let mut h = self.h;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// Bytes kept of an end-of-stream envelope or a Connect unary error body.
pub(crate) const END_MAX: usize = 16 << 10;

impl MsgParser {
    /// For a stream joined mid-way: `data` lies at `at.0` of a DATA frame of `at.1` data bytes.
    /// A frame whose data is exactly one message (a compressed flag of 0 or 1 and a length of
    /// the rest of the frame: gRPC stacks write a message per frame when it fits) starts one
    /// for sure; from there on the parser follows the messages.
    pub(crate) fn align(&mut self, data: &[u8], at: (u32, u32)) {
        let (offset, frame) = at;
        if offset != 0 || data.len() < 5 || data[0] > 1 {
            return;
        }
        let len = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
        if len.checked_add(5) == Some(frame) {
            self.aligning = false;
        }
    }

    /// Feeds DATA payload bytes that arrived at `ts`; `on_msg` hears each completed message's
    /// length.
    pub(crate) fn feed(&mut self, mut data: &[u8], ts: Nanos, on_msg: &mut impl FnMut(u32)) {
        if self.lost || self.aligning {
            return;
        }
        if self.raw {
            self.feed_raw(data, ts);
            return;
        }
        while !data.is_empty() {
            match self.left {
                None => {
                    if self.have == 0 {
                        self.first_start.get_or_insert(ts);
                        self.current_start = ts;
                    }
                    let need = 5 - usize::from(self.have);
                    let n = need.min(data.len());
                    let at = usize::from(self.have);
                    self.prefix[at..at + n].copy_from_slice(&data[..n]);
                    self.have += u8::try_from(n).unwrap_or(5); // n <= 5
                    data = &data[n..];
                    if self.have == 5 {
                        let len = u32::from_be_bytes([
                            self.prefix[1],
                            self.prefix[2],
                            self.prefix[3],
                            self.prefix[4],
                        ]);
                        self.have = 0;
                        self.left = Some(len);
                        if self.prefix[0] & self.end_flag != 0 {
                            // The end of the stream, not a message.
                            self.in_end = true;
                            self.end = Some(Vec::with_capacity((len as usize).min(END_MAX)));
                            if len == 0 {
                                self.in_end = false;
                                self.left = None;
                            }
                            continue;
                        }
                        if self.prefix[0] & 1 != 0 {
                            self.compressed += 1;
                        }
                        self.hold(len);
                        if len == 0 {
                            self.complete(0);
                            on_msg(0);
                        }
                    }
                }
                Some(left) if self.in_end => data = self.feed_end(data, left),
                Some(left) => {
                    let n = data.len().min(left as usize);
                    // Only while the first message is being read (taken when it completes).
                    if let Some(d) = self.digest.as_mut() {
                        d.feed(&data[..n]);
                    }
                    if let Some(k) = self.keep
                        && self.holding
                    {
                        let room = k.per_message.saturating_sub(self.current.len());
                        self.current.extend_from_slice(&data[..n.min(room)]);
                        self.kept += n.min(room);
                    }
                    data = &data[n..];
                    let left = left - u32::try_from(n).unwrap_or(left); // n <= left
                    if left == 0 {
                        let len = u32::from_be_bytes([
                            self.prefix[1],
                            self.prefix[2],
                            self.prefix[3],
                            self.prefix[4],
                        ]);
                        self.complete(len);
                        on_msg(len);
                    } else {
                        self.left = Some(left);
                    }
                }
            }
        }
    }

    /// The envelope that ends the stream (gRPC-Web's trailers, Connect's end-of-stream
    /// message) came whole: the stream's status is in it.
    pub(crate) fn end_complete(&self) -> bool {
        self.end.is_some() && !self.in_end && !self.raw
    }

    /// A body without envelope (Connect unary): counted, and kept when asked.
    #[cold]
    #[inline(never)]
    fn feed_raw(&mut self, data: &[u8], ts: Nanos) {
        if self.first_start.is_none() {
            self.first_start = Some(ts);
            self.current_start = ts;
        }
        self.bytes += data.len() as u64;
        if self.raw_keep {
            let end = self.end.get_or_insert_with(Vec::new);
            let room = END_MAX.saturating_sub(end.len());
            end.extend_from_slice(&data[..data.len().min(room)]);
        } else if let Some(k) = self.keep {
            // The body is the one message: kept as it comes, to the per-message bound.
            let room = k.per_message.saturating_sub(self.current.len());
            self.current
                .extend_from_slice(&data[..data.len().min(room)]);
            self.kept += data.len().min(room);
        }
    }

    /// Bytes of the end-of-stream envelope (`left` of it to come); returns what follows it.
    #[cold]
    #[inline(never)]
    fn feed_end<'a>(&mut self, data: &'a [u8], left: u32) -> &'a [u8] {
        let n = data.len().min(left as usize);
        if let Some(end) = self.end.as_mut() {
            let room = END_MAX.saturating_sub(end.len());
            end.extend_from_slice(&data[..n.min(room)]);
        }
        let left = left - u32::try_from(n).unwrap_or(left); // n <= left
        if left == 0 {
            self.in_end = false;
            self.left = None;
        } else {
            self.left = Some(left);
        }
        &data[n..]
    }

    /// A message of `len` bytes begins: whether to hold it, and to keep it.
    #[inline]
    fn hold(&mut self, len: u32) {
        if self.keep.is_some() {
            self.hold_kept(len);
        }
    }

    #[cold]
    #[inline(never)]
    fn hold_kept(&mut self, len: u32) {
        let Some(k) = self.keep else { return };
        let cost = (len as usize).min(k.per_message) + BODY_OVERHEAD;
        self.retaining =
            !self.full && self.retained < k.messages && self.kept.saturating_add(cost) <= k.bytes;
        if !self.retaining {
            self.full = true;
        }
        self.holding = self.retaining || k.passing;
        if self.holding {
            self.kept += BODY_OVERHEAD;
        }
    }

    #[inline]
    fn complete(&mut self, len: u32) {
        if let Some(d) = self.digest.take() {
            self.first_digest = Some(d.finish(len));
        }
        self.msgs += 1;
        self.max_len = self.max_len.max(len);
        self.bytes += u64::from(len);
        self.left = None;
        if self.keep.is_some() {
            self.complete_kept(len);
        }
    }

    /// The message just completed, when messages are kept.
    #[cold]
    #[inline(never)]
    fn complete_kept(&mut self, len: u32) {
        if !self.retaining {
            self.dropped += 1;
        }
        if self.holding {
            let data = std::mem::take(&mut self.current);
            let body = Body {
                compressed: self.prefix[0] & 1 != 0,
                data,
                len,
                ts: self.current_start,
            };
            if self.retaining {
                // Kept ones stay in front of those passing through.
                self.bodies.insert(self.retained, body);
                self.retained += 1;
            } else {
                self.bodies.push(body);
            }
        }
        self.holding = false;
        self.retaining = false;
    }

    /// A body without envelope (Connect unary) ended: it is the one message, kept when
    /// messages are kept; `compressed`: its body had a content-encoding.
    pub(crate) fn finish_raw(&mut self, compressed: bool) {
        if !self.raw || self.raw_keep || self.keep.is_none() || !self.bodies.is_empty() {
            return;
        }
        let data = std::mem::take(&mut self.current);
        self.bodies.push(Body {
            compressed,
            len: u32::try_from(self.bytes).unwrap_or(u32::MAX),
            data,
            ts: self.current_start,
        });
        self.retained = self.bodies.len();
    }

    /// Lets go of the messages held only to be handed on; returns the bytes freed.
    pub(crate) fn release_passing(&mut self) -> usize {
        let freed: usize = self.bodies[self.retained..]
            .iter()
            .map(|b| b.data.len() + BODY_OVERHEAD)
            .sum();
        self.bodies.truncate(self.retained);
        self.handed = self.handed.min(self.retained);
        self.kept -= freed.min(self.kept);
        freed
    }

    /// Lets go of every held message (kept for inference or reflection only).
    pub(crate) fn release_all(&mut self) {
        self.bodies.clear();
        self.retained = 0;
        self.handed = 0;
        self.kept = self.current.len() + if self.holding { BODY_OVERHEAD } else { 0 };
    }

    /// Whether the stream stopped inside a message (its prefix or its bytes).
    pub(crate) fn mid_message(&self) -> bool {
        !self.lost && !self.aligning && (self.left.is_some() || self.have > 0)
    }

    /// A parser that keeps message bytes within `keep`.
    pub(crate) fn keeping(keep: Option<Keep>) -> MsgParser {
        MsgParser {
            keep,
            ..MsgParser::default()
        }
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test values are small and known
mod tests {
    use super::*;

    fn msg(compressed: bool, body: &[u8]) -> Vec<u8> {
        let mut m = vec![u8::from(compressed)];
        m.extend((body.len() as u32).to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn messages_split_anywhere_are_counted_once() {
        let mut stream = msg(false, b"hello");
        stream.extend(msg(true, b""));
        stream.extend(msg(false, &[7u8; 300]));
        for cut in 0..stream.len() {
            for cut2 in cut..stream.len() {
                let mut p = MsgParser::default();
                p.feed(&stream[..cut], Nanos(1), &mut |_| {});
                p.feed(&stream[cut..cut2], Nanos(2), &mut |_| {});
                p.feed(&stream[cut2..], Nanos(3), &mut |_| {});
                assert_eq!((p.msgs, p.bytes, p.compressed), (3, 305, 1));
                assert!(p.have == 0 && p.left.is_none());
            }
        }
    }

    /// The first message's digest, `stream` fed in three pieces cut at `cut` and `cut2`.
    fn digest(stream: &[u8], cut: usize, cut2: usize) -> Option<u64> {
        let mut p = MsgParser {
            digest: Some(Digest::default()),
            ..MsgParser::default()
        };
        p.feed(&stream[..cut], Nanos(1), &mut |_| {});
        p.feed(&stream[cut..cut2], Nanos(2), &mut |_| {});
        p.feed(&stream[cut2..], Nanos(3), &mut |_| {});
        p.first_digest
    }

    #[test]
    fn the_first_messages_digest_is_the_same_however_it_is_cut() {
        let body: Vec<u8> = (0..45u8).collect();
        let mut stream = msg(false, &body);
        stream.extend(msg(false, b"a second message does not count"));
        let whole = digest(&stream, 0, 0).expect("a digest");
        for cut in 0..stream.len() {
            for cut2 in cut..stream.len() {
                assert_eq!(digest(&stream, cut, cut2), Some(whole), "{cut} {cut2}");
            }
        }
        // Another byte, another length, a longer run of the same byte: another digest.
        let mut other = body.clone();
        other[44] ^= 1;
        let n = stream.len();
        assert_ne!(digest(&msg(false, &other), 0, 0), Some(whole));
        assert_ne!(digest(&msg(false, &body[..44]), 0, 0), Some(whole));
        assert_ne!(
            digest(&msg(false, &[0u8; 8]), 0, 0),
            digest(&msg(false, &[0u8; 9]), 0, 0)
        );
        assert_eq!(
            digest(&stream[..n - 3], 2, 9),
            Some(whole),
            "a later message unfinished"
        );
        // Past MAX bytes only the length tells messages apart; an unfinished one has none.
        let big = msg(false, &vec![1u8; Digest::MAX as usize + 100]);
        assert!(digest(&big, 7, 4150).is_some());
        assert_eq!(digest(&big[..big.len() - 1], 7, 4150), None);
    }

    #[test]
    fn kept_bodies_stay_within_their_bounds() {
        let mut p = MsgParser::keeping(Some(Keep {
            per_message: 16,
            messages: 2,
            bytes: usize::MAX,
            passing: false,
        }));
        let mut stream = msg(false, b"short");
        stream.extend(msg(true, &[9u8; 100]));
        stream.extend(msg(false, b"third"));
        p.feed(&stream, Nanos(1), &mut |_| {});
        assert_eq!(p.msgs, 3);
        assert_eq!(p.bodies.len(), 2, "at most 2 kept");
        assert_eq!((p.retained, p.dropped), (2, 1));
        assert_eq!(p.bodies[0].data, b"short");
        assert!(p.bodies[1].cut() && p.bodies[1].data.len() == 16 && p.bodies[1].compressed);
        // A 4 GiB length prefix with bodies kept: the buffer stops at the per-message bound.
        let mut h = MsgParser::keeping(Some(Keep {
            per_message: 1024,
            messages: 8,
            bytes: usize::MAX,
            passing: false,
        }));
        h.feed(&[0, 0xff, 0xff, 0xff, 0xff], Nanos(1), &mut |_| {});
        h.feed(&vec![7u8; 1 << 20], Nanos(2), &mut |_| {});
        assert!(h.current.len() <= 1024);
    }

    #[test]
    fn a_byte_budget_keeps_the_first_messages_and_counts_the_rest() {
        // 120 messages of 10 bytes, a budget of 10 messages' cost: the first 10 are kept
        // whole, 110 dropped; a later small message is not kept out of order.
        let cost = 10 + BODY_OVERHEAD;
        let mut stream = Vec::new();
        for i in 0..120u8 {
            stream.extend(msg(false, &[i; 10]));
        }
        stream.extend(msg(false, b""));
        let mut p = MsgParser::keeping(Some(Keep {
            per_message: 1 << 20,
            messages: usize::MAX,
            bytes: 10 * cost,
            passing: false,
        }));
        for chunk in stream.chunks(7) {
            p.feed(chunk, Nanos(1), &mut |_| {});
        }
        assert_eq!((p.msgs, p.retained, p.dropped), (121, 10, 111));
        assert_eq!(p.bodies.len(), 10);
        assert!(
            p.bodies
                .iter()
                .enumerate()
                .all(|(i, b)| b.data == [i as u8; 10])
        );
        assert_eq!(p.kept, 10 * cost);
        // Passing through: every message is held until released, the first 10 stay kept.
        let mut q = MsgParser::keeping(Some(Keep {
            per_message: 1 << 20,
            messages: usize::MAX,
            bytes: 10 * cost,
            passing: true,
        }));
        let mut seen = 0;
        for chunk in stream.chunks(7) {
            q.feed(chunk, Nanos(1), &mut |_| {});
            seen += q.bodies.len() - q.retained.min(q.bodies.len());
            q.release_passing();
        }
        assert_eq!((q.retained, q.dropped, seen), (10, 111, 111));
        assert_eq!(q.kept, 10 * cost, "passing messages let go");
        q.release_all();
        assert_eq!((q.bodies.len(), q.kept), (0, 0));
    }

    #[test]
    fn hostile_length_costs_nothing() {
        let mut p = MsgParser::default();
        p.feed(&[0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3], Nanos(1), &mut |_| {});
        assert_eq!(p.msgs, 0);
        assert_eq!(p.left, Some(0xffff_ffff - 3));
    }
}
