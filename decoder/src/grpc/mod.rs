//! gRPC over HTTP/2 facts (grpc/grpc doc/PROTOCOL-HTTP2.md and doc/statuscodes.md): status
//! codes, `grpc-timeout`, `grpc-message`, the HTTP and HTTP/2 error mappings, and message
//! framing ([`msg`]). Pure functions; no state.

pub mod msg;

use std::time::Duration;

/// Canonical status names, indexed by code (statuscodes.md).
const CANONICAL: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// Go's spelling of the same codes (google.golang.org/grpc/codes), used by go-grpc-prometheus.
const GO: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];

/// A gRPC status code (0..=16 are defined; others are carried as they came).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Code(pub u32);

impl Code {
    /// OK.
    pub const OK: Code = Code(0);
    /// CANCELLED.
    pub const CANCELLED: Code = Code(1);
    /// UNKNOWN.
    pub const UNKNOWN: Code = Code(2);
    /// DEADLINE_EXCEEDED.
    pub const DEADLINE_EXCEEDED: Code = Code(4);
    /// PERMISSION_DENIED.
    pub const PERMISSION_DENIED: Code = Code(7);
    /// RESOURCE_EXHAUSTED.
    pub const RESOURCE_EXHAUSTED: Code = Code(8);
    /// ABORTED.
    pub const ABORTED: Code = Code(10);
    /// UNIMPLEMENTED.
    pub const UNIMPLEMENTED: Code = Code(12);
    /// INTERNAL.
    pub const INTERNAL: Code = Code(13);
    /// UNAVAILABLE.
    pub const UNAVAILABLE: Code = Code(14);
    /// UNAUTHENTICATED.
    pub const UNAUTHENTICATED: Code = Code(16);

    /// Canonical name ("DEADLINE_EXCEEDED"); codes past 16 are "UNKNOWN" as gRPC treats them.
    pub fn name(self) -> &'static str {
        CANONICAL.get(self.0 as usize).copied().unwrap_or("UNKNOWN")
    }

    /// Go's name ("DeadlineExceeded").
    pub fn go_name(self) -> &'static str {
        GO.get(self.0 as usize).copied().unwrap_or("Unknown")
    }
}

/// Parses `grpc-status`: ASCII digits only.
pub fn parse_status(v: &[u8]) -> Option<Code> {
    if v.is_empty() || v.len() > 10 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(v).ok()?.parse().ok().map(Code)
}

/// Parses `grpc-timeout`: up to 8 digits and a unit, H M S m u n (PROTOCOL-HTTP2.md).
pub fn parse_timeout(v: &[u8]) -> Option<Duration> {
    let (&unit, digits) = v.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Decodes `grpc-message` (percent-encoded UTF-8, PROTOCOL-HTTP2.md); invalid escapes and
/// invalid UTF-8 are kept as they are, as gRPC implementations do.
pub fn decode_message(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%'
            && let Some(b) = v
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(v[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gRPC status of a response that ended with HTTP status `http` and no `grpc-status`
/// (grpc/grpc doc/http-grpc-status-mapping.md).
pub fn from_http_status(http: u16) -> Code {
    match http {
        400 => Code::INTERNAL,
        401 => Code::UNAUTHENTICATED,
        403 => Code::PERMISSION_DENIED,
        404 => Code::UNIMPLEMENTED,
        429 | 502 | 503 | 504 => Code::UNAVAILABLE,
        _ => Code::UNKNOWN,
    }
}

/// The gRPC status of a stream reset with an HTTP/2 error code (PROTOCOL-HTTP2.md, "Errors").
pub fn from_reset(code: u32) -> Code {
    match code {
        0x7 => Code::UNAVAILABLE, // REFUSED_STREAM: not processed, safe to retry
        0x8 => Code::CANCELLED,   // CANCEL
        0xb => Code::RESOURCE_EXHAUSTED, // ENHANCE_YOUR_CALM
        0xc => Code::PERMISSION_DENIED, // INADEQUATE_SECURITY
        _ => Code::INTERNAL,
    }
}

/// The `code` of a serialized google.rpc.Status (the bytes of `grpc-status-details-bin`):
/// field 1, a varint. `None` when the bytes do not hold one.
pub fn details_code(status: &[u8]) -> Option<Code> {
    let mut at = 0;
    let varint = |at: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *status.get(*at)?;
            *at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    let mut code = None;
    while at < status.len() {
        let key = varint(&mut at)?;
        match (key >> 3, key & 7) {
            (1, 0) => code = Some(Code(u32::try_from(varint(&mut at)?).ok()?)),
            (_, 0) => {
                varint(&mut at)?;
            }
            (_, 1) => at = at.checked_add(8)?,
            (_, 2) => {
                let len = usize::try_from(varint(&mut at)?).ok()?;
                at = at.checked_add(len)?;
            }
            (_, 5) => at = at.checked_add(4)?,
            _ => return None,
        }
    }
    // proto3 leaves out a zero: a Status without field 1 is OK.
    (at == status.len()).then(|| code.unwrap_or(Code::OK))
}

/// Splits "/pkg.Service/Method" into ("pkg.Service", "Method").
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix('/')?;
    let (svc, rpc) = rest.split_once('/')?;
    (!svc.is_empty() && !rpc.is_empty() && !rpc.contains('/')).then_some((svc, rpc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_in_every_unit() {
        assert_eq!(parse_timeout(b"1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout(b"2M"), Some(Duration::from_secs(120)));
        assert_eq!(parse_timeout(b"3S"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_timeout(b"99999999m"),
            Some(Duration::from_millis(99_999_999))
        );
        assert_eq!(parse_timeout(b"100u"), Some(Duration::from_micros(100)));
        assert_eq!(parse_timeout(b"7n"), Some(Duration::from_nanos(7)));
        for bad in [&b""[..], b"S", b"123456789S", b"1x", b"-1S", b"1 S"] {
            assert_eq!(parse_timeout(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn messages_statuses_and_paths() {
        assert_eq!(
            decode_message(b"bad%20argument%3A%20%E2%9C%93"),
            "bad argument: \u{2713}"
        );
        assert_eq!(decode_message(b"100%"), "100%");
        assert_eq!(parse_status(b"14"), Some(Code::UNAVAILABLE));
        assert_eq!(parse_status(b"1a"), None);
        assert_eq!(Code(4).name(), "DEADLINE_EXCEEDED");
        assert_eq!(Code(1).go_name(), "Canceled");
        assert_eq!(Code(99).name(), "UNKNOWN");
        assert_eq!(from_http_status(503), Code::UNAVAILABLE);
        assert_eq!(from_reset(7), Code::UNAVAILABLE);
        assert_eq!(
            split_path("/grpctap.test.Echo/Unary"),
            Some(("grpctap.test.Echo", "Unary"))
        );
        assert_eq!(split_path("/nope"), None);
        // google.rpc.Status { code: 5, message: "x", details: [..] }.
        assert_eq!(
            details_code(&[0x08, 0x05, 0x12, 0x01, b'x', 0x1a, 0x00]),
            Some(Code(5))
        );
        assert_eq!(details_code(&[0x12, 0x01, b'x']), Some(Code::OK));
        assert_eq!(details_code(&[0x12, 0x05, b'x']), None, "cut");
    }
}
