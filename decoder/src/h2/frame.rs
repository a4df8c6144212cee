//! HTTP/2 frame headers (RFC 9113 section 4.1) and what a plausible one looks like.

/// Length of a frame header.
pub const HEADER_LEN: usize = 9;

/// The client connection preface (RFC 9113 section 3.4).
pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Frame types (RFC 9113 section 6).
pub mod kind {
    /// DATA.
    pub const DATA: u8 = 0;
    /// HEADERS.
    pub const HEADERS: u8 = 1;
    /// PRIORITY.
    pub const PRIORITY: u8 = 2;
    /// RST_STREAM.
    pub const RST_STREAM: u8 = 3;
    /// SETTINGS.
    pub const SETTINGS: u8 = 4;
    /// PUSH_PROMISE.
    pub const PUSH_PROMISE: u8 = 5;
    /// PING.
    pub const PING: u8 = 6;
    /// GOAWAY.
    pub const GOAWAY: u8 = 7;
    /// WINDOW_UPDATE.
    pub const WINDOW_UPDATE: u8 = 8;
    /// CONTINUATION.
    pub const CONTINUATION: u8 = 9;
}

/// Frame flags (RFC 9113 section 6).
pub mod flag {
    /// DATA, HEADERS: last frame of the stream from this side.
    pub const END_STREAM: u8 = 0x1;
    /// SETTINGS, PING: acknowledgment.
    pub const ACK: u8 = 0x1;
    /// HEADERS, PUSH_PROMISE, CONTINUATION: the header block ends here.
    pub const END_HEADERS: u8 = 0x4;
    /// DATA, HEADERS, PUSH_PROMISE: a pad length byte leads, padding trails.
    pub const PADDED: u8 = 0x8;
    /// HEADERS: exclusive flag, stream dependency and weight follow.
    pub const PRIORITY: u8 = 0x20;
}

/// SETTINGS identifiers we track (RFC 9113 section 6.5.2).
pub mod setting {
    /// SETTINGS_HEADER_TABLE_SIZE.
    pub const HEADER_TABLE_SIZE: u16 = 0x1;
    /// SETTINGS_MAX_CONCURRENT_STREAMS.
    pub const MAX_CONCURRENT_STREAMS: u16 = 0x3;
    /// SETTINGS_INITIAL_WINDOW_SIZE.
    pub const INITIAL_WINDOW_SIZE: u16 = 0x4;
    /// SETTINGS_MAX_FRAME_SIZE.
    pub const MAX_FRAME_SIZE: u16 = 0x5;
    /// SETTINGS_MAX_HEADER_LIST_SIZE.
    pub const MAX_HEADER_LIST_SIZE: u16 = 0x6;
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Payload length.
    pub len: u32,
    /// Frame type.
    pub kind: u8,
    /// Flags.
    pub flags: u8,
    /// Stream identifier (reserved bit cleared).
    pub stream: u32,
}

impl Head {
    /// Parses the 9 header bytes.
    pub fn parse(b: &[u8; HEADER_LEN]) -> Head {
        Head {
            len: u32::from_be_bytes([0, b[0], b[1], b[2]]),
            kind: b[3],
            flags: b[4],
            stream: u32::from_be_bytes([b[5] & 0x7f, b[6], b[7], b[8]]),
        }
    }

    /// Whether a flag is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
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
        let (flags_ok, stream_ok, len_ok) = match h.kind {
            kind::DATA => (h.flags & !0x09 == 0, h.stream != 0, true),
            kind::HEADERS => (h.flags & !0x2d == 0, h.stream != 0, true),
            kind::PRIORITY => (h.flags == 0, h.stream != 0, h.len == 5),
            kind::RST_STREAM => (h.flags == 0, h.stream != 0, h.len == 4),
            kind::SETTINGS => (
                h.flags & !0x01 == 0,
                h.stream == 0,
                h.len.is_multiple_of(6) && (h.flags == 0 || h.len == 0),
            ),
            kind::PUSH_PROMISE => (h.flags & !0x0c == 0, h.stream != 0, h.len >= 4),
            kind::PING => (h.flags & !0x01 == 0, h.stream == 0, h.len == 8),
            kind::GOAWAY => (h.flags == 0, h.stream == 0, h.len >= 8),
            kind::WINDOW_UPDATE => (h.flags == 0, true, h.len == 4),
            kind::CONTINUATION => (h.flags & !0x04 == 0, h.stream != 0, true),
            _ => (false, false, false),
        };
        flags_ok && stream_ok && len_ok
    }
}

/// Name of a SETTINGS identifier (RFC 9113 section 6.5.2), or its hex value.
pub fn setting_name(id: u16) -> String {
    match id {
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

/// HTTP/2 error codes (RFC 9113 section 7), by name.
pub fn error_code_name(code: u32) -> &'static str {
    match code {
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
                kind: kind::HEADERS,
                flags: 0x05,
                stream: 1
            }
        );
        assert!(!Head::plausible(&raw, 16384), "reserved bit set");
        let ok = [0x00, 0x01, 0x02, 0x01, 0x05, 0x00, 0x00, 0x00, 0x01];
        assert!(Head::plausible(&ok, 16384));
        assert!(!Head::plausible(&ok, 100), "longer than allowed");
        let settings_ack = [0, 0, 0, kind::SETTINGS, flag::ACK, 0, 0, 0, 0];
        assert!(Head::plausible(&settings_ack, 16384));
        let ping_on_stream = [0, 0, 8, kind::PING, 0, 0, 0, 0, 3];
        assert!(!Head::plausible(&ping_on_stream, 16384));
        let unknown = [0, 0, 0, 0x20, 0, 0, 0, 0, 0];
        assert!(!Head::plausible(&unknown, 16384));
    }
}
