//! PRIORITY (RFC 9113 section 6.3, deprecated by section 5.3.2): carried for completeness.

use super::head::Head;
use crate::h2::error::Error;

/// A PRIORITY frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Priority {
    /// The stream this one depends on.
    pub depends_on: u32,
    /// Exclusive dependency.
    pub exclusive: bool,
    /// Weight minus one.
    pub weight: u8,
}

impl Priority {
    /// Reads the payload: exactly 5 bytes.
    pub fn load(head: &Head, p: &[u8]) -> Result<Priority, Error> {
        head.check_len(p.len(), 5, false)?;
        Ok(Priority {
            depends_on: u32::from_be_bytes([p[0] & 0x7f, p[1], p[2], p[3]]),
            exclusive: p[0] & 0x80 != 0,
            weight: p[4],
        })
    }
}
