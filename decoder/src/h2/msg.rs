//! gRPC length-prefixed messages (PROTOCOL-HTTP2.md "Length-Prefixed-Message") across DATA
//! frames and TCP segments: a 1-byte compressed flag, a 4-byte big-endian length, the bytes.
//! Nothing is buffered but the 5-byte prefix, so a hostile 4 GiB length costs nothing.

/// Message counting for one direction of one stream.
#[derive(Debug, Default, Clone)]
pub(crate) struct MsgParser {
    prefix: [u8; 5],
    have: u8,
    /// Bytes of the current message still to come; `None` while reading a prefix.
    left: Option<u32>,
    /// Bytes were lost mid-stream: counting stopped (counts are lower bounds).
    pub(crate) lost: bool,
    pub(crate) msgs: u64,
    pub(crate) bytes: u64,
    pub(crate) compressed: u64,
    /// When the first message's prefix began.
    pub(crate) first_start: Option<u64>,
}

impl MsgParser {
    /// Feeds DATA payload bytes that arrived at `ts`; `on_msg` hears each completed message's
    /// length.
    pub(crate) fn feed(&mut self, mut data: &[u8], ts: u64, on_msg: &mut impl FnMut(u32)) {
        if self.lost {
            return;
        }
        while !data.is_empty() {
            match self.left {
                None => {
                    if self.have == 0 && self.first_start.is_none() {
                        self.first_start = Some(ts);
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
                        if self.prefix[0] & 1 != 0 {
                            self.compressed += 1;
                        }
                        self.have = 0;
                        self.left = Some(len);
                        if len == 0 {
                            self.complete(0);
                            on_msg(0);
                        }
                    }
                }
                Some(left) => {
                    let n = data.len().min(left as usize);
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

    fn complete(&mut self, len: u32) {
        self.msgs += 1;
        self.bytes += u64::from(len);
        self.left = None;
    }

    /// A parser for a stream whose start we did not see: it counts nothing.
    pub(crate) fn lost() -> MsgParser {
        MsgParser {
            lost: true,
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
                p.feed(&stream[..cut], 1, &mut |_| {});
                p.feed(&stream[cut..cut2], 2, &mut |_| {});
                p.feed(&stream[cut2..], 3, &mut |_| {});
                assert_eq!((p.msgs, p.bytes, p.compressed), (3, 305, 1));
                assert!(p.have == 0 && p.left.is_none());
            }
        }
    }

    #[test]
    fn hostile_length_costs_nothing() {
        let mut p = MsgParser::default();
        p.feed(&[0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3], 1, &mut |_| {});
        assert_eq!(p.msgs, 0);
        assert_eq!(p.left, Some(0xffff_ffff - 3));
    }
}
