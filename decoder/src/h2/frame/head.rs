//! The 9-byte frame header (RFC 9113 section 4.1), the newtypes its fields are read into, and
//! what a plausible header looks like to an observer hunting for a frame boundary.

use super::kind::Kind;
use crate::h2::error::Error;

/// Length of a frame header.
pub const HEADER_LEN: usize = 9;

/// The client connection preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame flags (RFC 9113 section 6). The same bit means different things for different types,
/// so each constant says which types define it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Flags(pub u8);

impl Flags {
    /// DATA, HEADERS: last frame of the stream from this side.
    pub const END_STREAM: Flags = Flags(0x1);
    /// SETTINGS, PING: acknowledgment.
    pub const ACK: Flags = Flags(0x1);
    /// HEADERS, PUSH_PROMISE, CONTINUATION: the header block ends here.
    pub const END_HEADERS: Flags = Flags(0x4);
    /// DATA, HEADERS, PUSH_PROMISE: a pad length byte leads, padding trails.
    pub const PADDED: Flags = Flags(0x8);
    /// HEADERS: exclusive flag, stream dependency and weight follow.
    pub const PRIORITY: Flags = Flags(0x20);

    /// Whether every bit of `f` is set.
    #[inline]
    pub fn contains(self, f: Flags) -> bool {
        self.0 & f.0 == f.0
    }
}

/// An HTTP/2 error code (RFC 9113 section 7), as carried by RST_STREAM and GOAWAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u32);

impl ErrorCode {
    /// NO_ERROR.
    pub const NO_ERROR: ErrorCode = ErrorCode(0x0);
    /// PROTOCOL_ERROR.
    pub const PROTOCOL_ERROR: ErrorCode = ErrorCode(0x1);
    /// INTERNAL_ERROR.
    pub const INTERNAL_ERROR: ErrorCode = ErrorCode(0x2);
    /// REFUSED_STREAM: the stream was not processed (safe to retry).
    pub const REFUSED_STREAM: ErrorCode = ErrorCode(0x7);
    /// CANCEL: the stream is no longer needed.
    pub const CANCEL: ErrorCode = ErrorCode(0x8);
    /// ENHANCE_YOUR_CALM.
    pub const ENHANCE_YOUR_CALM: ErrorCode = ErrorCode(0xb);
    /// INADEQUATE_SECURITY.
    pub const INADEQUATE_SECURITY: ErrorCode = ErrorCode(0xc);

    /// The code's name in RFC 9113 section 7.
    pub fn name(self) -> &'static str {
        match self.0 {
            0x0 => "NO_ERROR",
            0x1 => "PROTOCOL_ERROR",
            0x2 => "INTERNAL_ERROR",
            0x3 => "FLOW_CONTROL_ERROR",
            0x4 => "SETTINGS_TIMEOUT",
            0x5 => "STREAM_CLOSED",
            0x6 => "FRAME_SIZE_ERROR",
            0x7 => "REFUSED_STREAM",
            0x8 => "CANCEL",
            0x9 => "COMPRESSION_ERROR",
            0xa => "CONNECT_ERROR",
            0xb => "ENHANCE_YOUR_CALM",
            0xc => "INADEQUATE_SECURITY",
            0xd => "HTTP_1_1_REQUIRED",
            _ => "UNKNOWN_ERROR_CODE",
        }
    }
}

/// A SETTINGS parameter identifier (RFC 9113 section 6.5.2); unknown ids are carried too (gRPC
/// C-core sends 0xfe03).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SettingId(pub u16);

impl SettingId {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: SettingId = SettingId(0x1);
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: SettingId = SettingId(0x3);
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: SettingId = SettingId(0x4);
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: SettingId = SettingId(0x5);
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: SettingId = SettingId(0x6);

    /// The name without the `SETTINGS_` prefix, or the id in hex.
    pub fn name(self) -> String {
        match self.0 {
            0x1 => "HEADER_TABLE_SIZE".into(),
            0x2 => "ENABLE_PUSH".into(),
            0x3 => "MAX_CONCURRENT_STREAMS".into(),
            0x4 => "INITIAL_WINDOW_SIZE".into(),
            0x5 => "MAX_FRAME_SIZE".into(),
            0x6 => "MAX_HEADER_LIST_SIZE".into(),
            0x8 => "ENABLE_CONNECT_PROTOCOL".into(),
            0x9 => "NO_RFC7540_PRIORITIES".into(),
            other => format!("0x{other:04x}"),
        }
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Payload length.
    pub len: u32,
    /// Frame type.
    pub kind: Kind,
    /// Flags.
    pub flags: Flags,
    /// Stream identifier (reserved bit cleared).
    pub stream: u32,
}

impl Head {
    /// Parses the 9 header bytes.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Head {
        Head {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: Kind(b[3]),
            flags: Flags(b[4]),
            stream: u32::from_be_bytes([b[5] & 0x7f, b[6], b[7], b[8]]),
        }
    }

    /// Parses the header at the start of `b`.
    pub fn parse_slice(b: &[u8]) -> Result<Head, Error> {
        let raw: &[u8; HEADER_LEN] =
            b.get(..HEADER_LEN)
                .and_then(|s| s.try_into().ok())
                .ok_or(Error::NeedMore {
                    needed: HEADER_LEN,
                    got: b.len(),
                })?;
        Ok(Head::parse(raw))
    }

    /// Whether a flag is set.
    #[inline]
    pub fn has(&self, f: Flags) -> bool {
        self.flags.contains(f)
    }

    /// Could this be a real frame header? Used only to find frame boundaries in bytes we joined
    /// mid-way, so it is strict: a known type, flags that type defines, the stream rules of
    /// section 6 and the fixed lengths, the reserved bit clear, and a length within
    /// `max_len`.
    pub fn plausible(raw: &[u8; HEADER_LEN], max_len: u32) -> bool {
        let h = Head::parse(raw);
        if raw[5] & 0x80 != 0 || h.len > max_len {
            return false;
        }
        let f = h.flags.0;
        let (flags_ok, stream_ok, len_ok) = match h.kind {
            Kind::DATA => (f & !0x09 == 0, h.stream != 0, true),
            Kind::HEADERS => (f & !0x2d == 0, h.stream != 0, true),
            Kind::PRIORITY => (f == 0, h.stream != 0, h.len == 5),
            Kind::RST_STREAM => (f == 0, h.stream != 0, h.len == 4),
            Kind::SETTINGS => (
                f & !0x01 == 0,
                h.stream == 0,
                h.len.is_multiple_of(6) && (f == 0 || h.len == 0),
            ),
            Kind::PUSH_PROMISE => (f & !0x0c == 0, h.stream != 0, h.len >= 4),
            Kind::PING => (f & !0x01 == 0, h.stream == 0, h.len == 8),
            Kind::GOAWAY => (f == 0, h.stream == 0, h.len >= 8),
            Kind::WINDOW_UPDATE => (f == 0, true, h.len == 4),
            Kind::CONTINUATION => (f & !0x04 == 0, h.stream != 0, true),
            _ => (false, false, false),
        };
        flags_ok && stream_ok && len_ok
    }

    /// An error about this frame.
    pub(crate) fn invalid(&self, reason: crate::h2::error::Invalid) -> Error {
        Error::Invalid {
            kind: self.kind,
            stream: self.stream,
            reason,
        }
    }

    /// Checks that the payload is exactly `needed` bytes (or at least, with `at_least`).
    pub(crate) fn check_len(&self, got: usize, needed: usize, at_least: bool) -> Result<(), Error> {
        let ok = if at_least {
            got >= needed
        } else {
            got == needed
        };
        if ok {
            Ok(())
        } else {
            Err(self.invalid(crate::h2::error::Invalid::Length { needed, got }))
        }
    }
}

/// Splits off padding (RFC 9113 6.1): with PADDED, the first byte is the pad length and that
/// many bytes at the end are padding. Returns the payload between.
pub(crate) fn unpad<'a>(head: &Head, p: &'a [u8]) -> Result<&'a [u8], Error> {
    if !head.has(Flags::PADDED) {
        return Ok(p);
    }
    let (&pad, rest) = p
        .split_first()
        .ok_or(head.invalid(crate::h2::error::Invalid::Length { needed: 1, got: 0 }))?;
    let end = rest
        .len()
        .checked_sub(usize::from(pad))
        .ok_or(head.invalid(crate::h2::error::Invalid::Padding))?;
    Ok(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_judges_headers() {
        // HEADERS, END_HEADERS|END_STREAM, stream 1, length 0x0102.
        let raw = [0x00, 0x01, 0x02, 0x01, 0x05, 0x80, 0x00, 0x00, 0x01];
        let h = Head::parse(&raw);
        assert_eq!(
            h,
            Head {
                len: 0x102,
                kind: Kind::HEADERS,
                flags: Flags(0x05),
                stream: 1
            }
        );
        assert!(!Head::plausible(&raw, 16384), "reserved bit set");
        let ok = [0x00, 0x01, 0x02, 0x01, 0x05, 0x00, 0x00, 0x00, 0x01];
        assert!(Head::plausible(&ok, 16384));
        assert!(!Head::plausible(&ok, 100), "longer than allowed");
        let settings_ack = [0, 0, 0, Kind::SETTINGS.0, Flags::ACK.0, 0, 0, 0, 0];
        assert!(Head::plausible(&settings_ack, 16384));
        let ping_on_stream = [0, 0, 8, Kind::PING.0, 0, 0, 0, 0, 3];
        assert!(!Head::plausible(&ping_on_stream, 16384));
        let unknown = [0, 0, 0, 0x20, 0, 0, 0, 0, 0];
        assert!(!Head::plausible(&unknown, 16384));
        assert_eq!(
            Head::parse_slice(&raw[..5]),
            Err(Error::NeedMore { needed: 9, got: 5 })
        );
        assert_eq!(Head::parse_slice(&raw), Ok(h));
    }

    #[test]
    fn names() {
        assert_eq!(Kind::GOAWAY.name(), "GOAWAY");
        assert_eq!(format!("{:?}", Kind(0x20)), "Kind(0x20)");
        assert_eq!(ErrorCode(8).name(), "CANCEL");
        assert_eq!(ErrorCode(99).name(), "UNKNOWN_ERROR_CODE");
        assert_eq!(SettingId(0xfe03).name(), "0xfe03");
        assert_eq!(SettingId::MAX_FRAME_SIZE.name(), "MAX_FRAME_SIZE");
    }

    #[test]
    fn padding_rules() {
        let h = |flags| Head {
            len: 0,
            kind: Kind::DATA,
            flags: Flags(flags),
            stream: 1,
        };
        assert_eq!(unpad(&h(0), b"abc"), Ok(&b"abc"[..]));
        assert_eq!(unpad(&h(0x8), b"\x01abc"), Ok(&b"ab"[..]));
        assert_eq!(unpad(&h(0x8), b"\x03abc"), Ok(&b""[..]));
        assert!(matches!(
            unpad(&h(0x8), b"\x04abc"),
            Err(Error::Invalid {
                reason: crate::h2::error::Invalid::Padding,
                ..
            })
        ));
        assert!(unpad(&h(0x8), b"").is_err());
    }
}
