//! Errors of the HTTP/2 layer. "Need more bytes" is kept apart from "invalid": a frame that is
//! still arriving is not a fault, and the streaming framer never asks a loader to parse a
//! frame it has not fully buffered.

use super::frame::kind::Kind;

/// Why a frame could not be read. Reaches only that frame: the framer counts it as an
/// anomaly and goes on with the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Fewer bytes than the structure needs.
    #[error("need {needed} bytes, have {got}")]
    NeedMore {
        /// Bytes the structure needs.
        needed: usize,
        /// Bytes there are.
        got: usize,
    },
    /// The bytes break a rule of RFC 9113 for this frame type.
    #[error("invalid {kind} frame on stream {stream}: {reason}")]
    Invalid {
        /// The frame's type.
        kind: Kind,
        /// The frame's stream.
        stream: u32,
        /// Which rule.
        reason: Invalid,
    },
}

/// The rule an invalid frame breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// The payload length is not what the type fixes (RFC 9113 6.3, 6.4, 6.7, 6.8, 6.9).
    #[error("payload of {got} bytes where the type needs {needed}")]
    Length {
        /// What the type needs (the minimum, for types with a variable tail).
        needed: usize,
        /// What came.
        got: usize,
    },
    /// Padding at least as long as the payload (RFC 9113 6.1, 6.2, 6.6).
    #[error("padding longer than the payload")]
    Padding,
}
