//! CONTINUATION (RFC 9113 section 6.10): more of the header block that HEADERS or PUSH_PROMISE
//! began; nothing may come between them on the connection.

use super::head::{Flags, Head};
use crate::h2::error::Error;

/// A CONTINUATION frame's payload, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuation<'a> {
    /// The header block fragment.
    pub fragment: &'a [u8],
    /// END_HEADERS: the block ends here.
    pub end_headers: bool,
}

impl<'a> Continuation<'a> {
    /// Reads the payload of a CONTINUATION frame (every payload is valid).
    pub fn load(head: &Head, payload: &'a [u8]) -> Result<Continuation<'a>, Error> {
        Ok(Continuation {
            fragment: payload,
            end_headers: head.has(Flags::END_HEADERS),
        })
    }
}
