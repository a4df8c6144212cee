//! PUSH_PROMISE (RFC 9113 section 6.6). gRPC never pushes, but the header block it carries still
//! changes the sender's HPACK table, so it is decoded.

use super::head::{Flags, Head, unpad};
use crate::h2::error::Error;

/// A PUSH_PROMISE frame's payload, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushPromise<'a> {
    /// The stream the server promises to open.
    pub promised: u32,
    /// The header block fragment.
    pub fragment: &'a [u8],
    /// END_HEADERS: no CONTINUATION follows.
    pub end_headers: bool,
}

impl<'a> PushPromise<'a> {
    /// Reads the payload of a PUSH_PROMISE frame.
    pub fn load(head: &Head, payload: &'a [u8]) -> Result<PushPromise<'a>, Error> {
        let body = unpad(head, payload)?;
        head.check_len(body.len(), 4, true)?;
        Ok(PushPromise {
            promised: u32::from_be_bytes([body[0] & 0x7f, body[1], body[2], body[3]]),
            fragment: &body[4..],
            end_headers: head.has(Flags::END_HEADERS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::frame::kind::Kind;

    #[test]
    fn padded_promise() {
        let h = Head {
            len: 9,
            kind: Kind::PUSH_PROMISE,
            flags: Flags(0x0c),
            stream: 1,
        };
        let p = PushPromise::load(&h, b"\x02\x00\x00\x00\x02abpp").expect("loads");
        assert_eq!(
            (p.promised, p.fragment, p.end_headers),
            (2, &b"ab"[..], true)
        );
        assert!(PushPromise::load(&h, b"\x00\x00\x00").is_err());
    }
}
