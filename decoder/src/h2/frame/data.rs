//! DATA (RFC 9113 section 6.1). The framer never buffers DATA: it hands the payload on as it
//! arrives, so this module only says where the data lies inside a (possibly padded) frame.

use super::head::{Flags, Head};
use crate::h2::error::{Error, Invalid};

/// The data bytes of a DATA frame whose pad-length byte (when PADDED) is `pad`: the frame
/// length less the pad-length byte and the padding.
pub fn data_len(head: &Head, pad: Option<u8>) -> Result<u32, Error> {
    match (head.has(Flags::PADDED), pad) {
        (false, _) => Ok(head.len),
        (true, None) => Err(Error::NeedMore { needed: 1, got: 0 }),
        (true, Some(pad)) => head
            .len
            .checked_sub(1)
            .and_then(|body| body.checked_sub(u32::from(pad)))
            .ok_or(head.invalid(Invalid::Padding)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::h2::frame::kind::Kind;

    #[test]
    fn padded_lengths() {
        let h = |flags, len| Head {
            len,
            kind: Kind::DATA,
            flags: Flags(flags),
            stream: 1,
        };
        assert_eq!(data_len(&h(0, 10), None), Ok(10));
        assert_eq!(data_len(&h(0x8, 10), Some(3)), Ok(6));
        assert_eq!(data_len(&h(0x8, 10), Some(9)), Ok(0));
        assert!(data_len(&h(0x8, 10), Some(10)).is_err());
        assert!(matches!(
            data_len(&h(0x8, 10), None),
            Err(Error::NeedMore { .. })
        ));
    }
}
