//! RST_STREAM (RFC 9113 section 6.4): one side ends a stream at once, with an error code. gRPC
//! cancellation travels this way (CANCEL), and so do deadline expiries.

use super::head::{ErrorCode, Head};
use crate::h2::error::Error;

/// A RST_STREAM frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RstStream {
    /// Why.
    pub code: ErrorCode,
}

impl RstStream {
    /// Reads the payload: exactly 4 bytes (a different length is FRAME_SIZE_ERROR).
    pub fn load(head: &Head, p: &[u8]) -> Result<RstStream, Error> {
        head.check_len(p.len(), 4, false)?;
        Ok(RstStream {
            code: ErrorCode(u32::from_be_bytes([p[0], p[1], p[2], p[3]])),
        })
    }
}
