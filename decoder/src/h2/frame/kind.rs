//! Frame types (RFC 9113 section 6).

use std::fmt;

/// A frame type (RFC 9113 section 6). Unknown types are carried as they came and skipped
/// (section 5.5).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kind(pub u8);

impl Kind {
    /// DATA.
    pub const DATA: Kind = Kind(0);
    /// HEADERS.
    pub const HEADERS: Kind = Kind(1);
    /// PRIORITY.
    pub const PRIORITY: Kind = Kind(2);
    /// RST_STREAM.
    pub const RST_STREAM: Kind = Kind(3);
    /// SETTINGS.
    pub const SETTINGS: Kind = Kind(4);
    /// PUSH_PROMISE.
    pub const PUSH_PROMISE: Kind = Kind(5);
    /// PING.
    pub const PING: Kind = Kind(6);
    /// GOAWAY.
    pub const GOAWAY: Kind = Kind(7);
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: Kind = Kind(8);
    /// CONTINUATION.
    pub const CONTINUATION: Kind = Kind(9);

    /// The type's name, for diagnostics.
    pub fn name(self) -> &'static str {
        match self {
            Kind::DATA => "DATA",
            Kind::HEADERS => "HEADERS",
            Kind::PRIORITY => "PRIORITY",
            Kind::RST_STREAM => "RST_STREAM",
            Kind::SETTINGS => "SETTINGS",
            Kind::PUSH_PROMISE => "PUSH_PROMISE",
            Kind::PING => "PING",
            Kind::GOAWAY => "GOAWAY",
            Kind::WINDOW_UPDATE => "WINDOW_UPDATE",
            Kind::CONTINUATION => "CONTINUATION",
            _ => "UNKNOWN",
        }
    }

    /// Frames whose payload is (part of) a header block.
    pub fn carries_header_block(self) -> bool {
        matches!(
            self,
            Kind::HEADERS | Kind::CONTINUATION | Kind::PUSH_PROMISE
        )
    }
}

impl fmt::Debug for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            "UNKNOWN" => write!(f, "Kind(0x{:02x})", self.0),
            n => f.write_str(n),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}
