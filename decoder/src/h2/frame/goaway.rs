//! GOAWAY (RFC 9113 section 6.8): the sender will process no stream above `last_stream`.

use super::head::{ErrorCode, Head};
use crate::h2::error::Error;

/// A GOAWAY frame, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoAway<'a> {
    /// The highest stream id the sender processed (or may still process).
    pub last_stream: u32,
    /// Why.
    pub code: ErrorCode,
    /// Opaque debug data.
    pub debug: &'a [u8],
}

impl<'a> GoAway<'a> {
    /// Reads the payload: at least 8 bytes.
    pub fn load(head: &Head, p: &'a [u8]) -> Result<GoAway<'a>, Error> {
        head.check_len(p.len(), 8, true)?;
        Ok(GoAway {
            last_stream: u32::from_be_bytes([p[0] & 0x7f, p[1], p[2], p[3]]),
            code: ErrorCode(u32::from_be_bytes([p[4], p[5], p[6], p[7]])),
            debug: &p[8..],
        })
    }
}
