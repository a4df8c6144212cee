//! Call metadata as a user may see it: bounded, with secrets redacted when captured (they are
//! never stored), `-bin` values kept in their wire form (base64, gRPC PROTOCOL-HTTP2.md).

use crate::hpack::{HeaderList, Text};

/// Fields kept per header block; the rest are counted.
const MAX_FIELDS: usize = 64;
/// Bytes kept of a value; longer values are cut and say how long they were.
const MAX_VALUE: usize = 256;

/// Parts of a header name that mark its value a secret ("authorization", "x-api-key",
/// "x-auth-token", "client-secret", "set-cookie", "x-session-id", "x-jwt", ...). Matched anywhere
/// in the name, ignoring ASCII case, after a `grpc-metadata-` prefix (gRPC-gateway's) is
/// stripped. docs/calls.md lists them; `--secret-header` adds more.
pub const SECRET_PARTS: [&str; 10] = [
    "auth",
    "token",
    "key",
    "secret",
    "password",
    "passwd",
    "cookie",
    "session",
    "jwt",
    "credential",
];

/// Parts added by the user, for the whole process (lowercase).
static EXTRA_PARTS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// Adds name parts that mark secrets (`--secret-header`); the first call wins. An empty part
/// would match every name and is left out.
pub fn add_secret_parts(parts: &[String]) {
    let v = parts
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| p.to_ascii_lowercase())
        .collect();
    let _ = EXTRA_PARTS.set(v);
}

/// Whether `hay` contains `needle` (lowercase ASCII), ignoring ASCII case; allocates nothing.
fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty()
        || hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Whether a header name carries secrets.
pub fn is_secret(name: &str) -> bool {
    let n = name.as_bytes();
    let prefix = b"grpc-metadata-";
    let n = if n.len() > prefix.len() && n[..prefix.len()].eq_ignore_ascii_case(prefix) {
        &n[prefix.len()..]
    } else {
        n
    };
    SECRET_PARTS.iter().any(|p| contains_ci(n, p.as_bytes()))
        || EXTRA_PARTS
            .get()
            .is_some_and(|v| v.iter().any(|p| contains_ci(n, p.as_bytes())))
}

/// The metadata of one header block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Block {
    /// `(name, value)` in wire order; pseudo-headers left out.
    pub fields: Vec<(String, String)>,
    /// Fields left out past the bound.
    pub dropped: usize,
}

/// Request headers, response headers and trailers of a call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Metadata {
    /// Request headers.
    pub request: Block,
    /// Response headers.
    pub response: Block,
    /// Trailers (or the trailers-only response).
    pub trailers: Block,
}

/// Copies the non-pseudo fields of `list`, redacting secrets and cutting long values.
/// Fields the sender marked never-indexed (RFC 7541 6.2.3) are treated as secrets too.
pub fn capture(list: &HeaderList) -> Block {
    let mut b = Block::default();
    for f in list.iter() {
        let name = match f.name {
            Text::Bytes(n) if n.first() == Some(&b':') => continue,
            Text::Bytes(n) => String::from_utf8_lossy(n).into_owned(),
            Text::Unknown(id) => format!("<unknown {id}>"),
        };
        if b.fields.len() >= MAX_FIELDS {
            b.dropped += 1;
            continue;
        }
        let value = match f.value {
            Text::Unknown(_) => "<unknown>".to_owned(),
            Text::Bytes(v) => shown_value(&name, v, f.sensitive),
        };
        b.fields.push((name, value));
    }
    b
}

/// A header value as grpctap shows it: secrets (by name, or marked never-indexed) redacted to
/// their length, `-bin` values as base64, long values cut. Pseudo-headers (`:authority`, ...)
/// are no secrets, whatever their names contain.
pub fn shown_value(name: &str, v: &[u8], sensitive: bool) -> String {
    if sensitive || (!name.starts_with(':') && is_secret(name)) {
        format!("<redacted {} bytes>", v.len())
    } else if name.ends_with("-bin") {
        bin_value(v)
    } else if v.len() > MAX_VALUE {
        format!(
            "{}...<{} bytes>",
            String::from_utf8_lossy(&v[..MAX_VALUE]),
            v.len()
        )
    } else {
        String::from_utf8_lossy(v).into_owned()
    }
}

/// A `-bin` value as base64. gRPC sends it base64-encoded, or, when both sides announced
/// "true binary" metadata (SETTINGS id 0xfe03, as gRPC C-core does), as raw bytes after a NUL.
fn bin_value(v: &[u8]) -> String {
    match decode_bin(v) {
        Some(bytes) if bytes.len() > MAX_VALUE => {
            format!("{}...<{} bytes>", base64(&bytes[..MAX_VALUE]), bytes.len())
        }
        // Padded or not on the wire, raw or base64: shown as standard padded base64.
        Some(bytes) => base64(&bytes),
        None => format!("<not base64: {} bytes>", v.len()),
    }
}

/// The bytes of a `-bin` value: raw after a NUL ("true binary"), else base64 with or without
/// padding (gRPC allows both). `None` when it is neither.
pub fn decode_bin(v: &[u8]) -> Option<Vec<u8>> {
    if let Some((0, raw)) = v.split_first() {
        return Some(raw.to_vec());
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let body: Vec<u8> = v.iter().copied().take_while(|&c| c != b'=').collect();
    if body.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(body.len() * 3 / 4);
    for chunk in body.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    Some(out)
}

/// Standard base64 with padding (RFC 4648 section 4).
pub fn base64(b: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(b.len().div_ceil(3) * 4);
    for chunk in b.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(chunk.get(1).copied().unwrap_or(0)) << 8)
            | u32::from(chunk.get(2).copied().unwrap_or(0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ABC[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised() {
        for n in [
            "authorization",
            "Authorization",
            "PROXY-AUTHORIZATION",
            "grpc-metadata-authorization",
            "cookie",
            "set-cookie",
            "x-auth-token",
            "x-custom-auth",
            "x-access-key",
            "x-goog-api-key",
            "x-jwt",
            "client-secret",
            "x-session-id",
            "x-amz-security-token",
            "google-credentials-bin",
        ] {
            assert!(is_secret(n), "{n}");
        }
        for n in [
            "x-request-id",
            "trace-bin",
            "user-agent",
            "grpc-timeout",
            "content-type",
            "x-call-id",
            "grpc-metadata-x-request-id",
        ] {
            assert!(!is_secret(n), "{n}");
        }
    }

    #[test]
    fn base64_and_binary_values() {
        // RFC 4648 section 10 vectors.
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
        assert_eq!(bin_value(b"\x00\x01\x02\xff"), "AQL/");
        assert_eq!(bin_value(b"AQL/"), "AQL/");
        assert_eq!(bin_value(b"Zm8"), "Zm8=", "unpadded base64 is normalised");
    }
}
