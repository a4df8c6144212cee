//! WINDOW_UPDATE (RFC 9113 section 6.9): flow-control credit for a stream or the connection.

use super::head::Head;
use crate::h2::error::Error;

/// A WINDOW_UPDATE frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowUpdate {
    /// Bytes of credit (reserved bit cleared).
    pub increment: u32,
}

impl WindowUpdate {
    /// Reads the payload: exactly 4 bytes.
    pub fn load(head: &Head, p: &[u8]) -> Result<WindowUpdate, Error> {
        head.check_len(p.len(), 4, false)?;
        Ok(WindowUpdate {
            increment: u32::from_be_bytes([p[0] & 0x7f, p[1], p[2], p[3]]),
        })
    }
}
