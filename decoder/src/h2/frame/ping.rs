//! PING (RFC 9113 section 6.7): 8 opaque bytes; the receiver answers with ACK. gRPC keepalive
//! and BDP probes use it.

use super::head::{Flags, Head};
use crate::h2::error::Error;

/// A PING frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// ACK: the answer to a PING.
    pub ack: bool,
    /// The opaque data.
    pub data: [u8; 8],
}

impl Ping {
    /// Reads the payload: exactly 8 bytes.
    pub fn load(head: &Head, p: &[u8]) -> Result<Ping, Error> {
        head.check_len(p.len(), 8, false)?;
        let mut data = [0; 8];
        data.copy_from_slice(p);
        Ok(Ping {
            ack: head.has(Flags::ACK),
            data,
        })
    }
}
