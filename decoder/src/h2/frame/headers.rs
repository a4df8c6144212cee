//! HEADERS (RFC 9113 section 6.2): a header block fragment, optionally padded and with
//! priority fields in front.

use super::head::{Flags, Head, unpad};
use crate::h2::error::Error;

/// A HEADERS frame's payload, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Headers<'a> {
    /// The header block fragment (padding and priority fields removed).
    pub fragment: &'a [u8],
    /// END_STREAM: the sender's last frame on the stream.
    pub end_stream: bool,
    /// END_HEADERS: no CONTINUATION follows.
    pub end_headers: bool,
}

impl<'a> Headers<'a> {
    /// Reads the payload of a HEADERS frame.
    pub fn load(head: &Head, payload: &'a [u8]) -> Result<Headers<'a>, Error> {
        let mut body = unpad(head, payload)?;
        if head.has(Flags::PRIORITY) {
            // Exclusive bit, stream dependency (4 bytes) and weight (1 byte); deprecated by
            // RFC 9113 5.3.2 but still sent.
            head.check_len(body.len(), 5, true)?;
            body = &body[5..];
        }
        Ok(Headers {
            fragment: body,
            end_stream: head.has(Flags::END_STREAM),
            end_headers: head.has(Flags::END_HEADERS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::error::Invalid;
    use crate::h2::frame::kind::Kind;

    fn head(flags: u8, len: usize) -> Head {
        Head {
            len: u32::try_from(len).unwrap_or(0),
            kind: Kind::HEADERS,
            flags: Flags(flags),
            stream: 1,
        }
    }

    #[test]
    fn padding_and_priority_are_removed() {
        let p = b"\x02\x80\x00\x00\x03\x10blockxx";
        let h = Headers::load(&head(0x2d, p.len()), p).expect("loads");
        assert_eq!(h.fragment, b"block");
        assert!(h.end_stream && h.end_headers);
        assert_eq!(
            Headers::load(&head(0x4, 3), b"abc").map(|h| h.fragment),
            Ok(&b"abc"[..])
        );
        assert!(matches!(
            Headers::load(&head(0x20, 3), b"abc"),
            Err(Error::Invalid {
                reason: Invalid::Length { needed: 5, got: 3 },
                ..
            })
        ));
        assert!(Headers::load(&head(0x8, 2), b"\x05a").is_err());
    }
}
