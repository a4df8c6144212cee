//! Message payloads made readable, only when someone asks (`--bodies`): per-message
//! decompression by `grpc-encoding` with a cap on the output (a decompression bomb is an error,
//! not an allocation), protobuf to JSON with a schema, and a schemaless decode like
//! `protoc --decode_raw` without one.

use std::io::Read;

use prost_reflect::{DescriptorPool, DynamicMessage};
use serde_json::{Map, Value};

/// Why a payload could not be made readable. Each is about one message only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    /// `grpc-encoding` names a compression we do not know.
    UnknownEncoding(String),
    /// The compressed bytes are invalid.
    Decompress(String),
    /// Decompressed, the message would be larger than the cap.
    TooLarge {
        /// The cap, bytes.
        cap: usize,
    },
    /// The bytes are not a message of the expected type.
    Decode(String),
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadError::UnknownEncoding(e) => write!(f, "unknown grpc-encoding {e:?}"),
            PayloadError::Decompress(e) => write!(f, "does not decompress: {e}"),
            PayloadError::TooLarge { cap } => write!(f, "decompresses to more than {cap} bytes"),
            PayloadError::Decode(e) => write!(f, "does not decode: {e}"),
        }
    }
}

impl std::error::Error for PayloadError {}

/// Reads at most `cap` bytes from `r`; more is a bomb.
fn capped(mut r: impl Read, cap: usize) -> Result<Vec<u8>, PayloadError> {
    let mut out = Vec::new();
    let n = (&mut r)
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| PayloadError::Decompress(e.to_string()))?;
    if n > cap {
        return Err(PayloadError::TooLarge { cap });
    }
    Ok(out)
}

const SNAPPY_STREAM: &[u8] = b"\xff\x06\x00\x00sNaPpY";

/// Decompresses one message sent with `grpc-encoding: encoding` (gzip, deflate, snappy, zstd;
/// identity or none returns the bytes as they are), producing at most `cap` bytes.
pub fn decompress(
    encoding: Option<&str>,
    data: &[u8],
    cap: usize,
) -> Result<Vec<u8>, PayloadError> {
    match encoding.unwrap_or("identity") {
        "identity" => Ok(data.to_vec()),
        "gzip" => capped(flate2::read::MultiGzDecoder::new(data), cap),
        // gRPC's deflate is zlib-wrapped; some senders send raw deflate.
        "deflate" => match capped(flate2::read::ZlibDecoder::new(data), cap) {
            Err(PayloadError::Decompress(_)) => {
                capped(flate2::read::DeflateDecoder::new(data), cap)
            }
            other => other,
        },
        "snappy" if data.starts_with(SNAPPY_STREAM) => {
            capped(snap::read::FrameDecoder::new(data), cap)
        }
        "snappy" => {
            // The raw format states its length first: refuse a lie before allocating.
            let len = snap::raw::decompress_len(data)
                .map_err(|e| PayloadError::Decompress(e.to_string()))?;
            if len > cap {
                return Err(PayloadError::TooLarge { cap });
            }
            snap::raw::Decoder::new()
                .decompress_vec(data)
                .map_err(|e| PayloadError::Decompress(e.to_string()))
        }
        "zstd" => {
            let d = ruzstd::decoding::StreamingDecoder::new(data)
                .map_err(|e| PayloadError::Decompress(e.to_string()))?;
            capped(d, cap)
        }
        other => Err(PayloadError::UnknownEncoding(other.to_owned())),
    }
}

/// Decodes `bytes` as message type `type_name` of `pool`, as proto3 JSON (camelCase names,
/// defaults omitted, bytes as base64). Nesting past prost's recursion limit is an error.
pub fn to_json(
    pool: &DescriptorPool,
    type_name: &str,
    bytes: &[u8],
) -> Result<Value, PayloadError> {
    let desc = pool
        .get_message_by_name(type_name)
        .ok_or_else(|| PayloadError::Decode(format!("no message type {type_name}")))?;
    let msg =
        DynamicMessage::decode(desc, bytes).map_err(|e| PayloadError::Decode(e.to_string()))?;
    let mut v = match serde_json::to_value(&msg) {
        Ok(v) => v,
        // An Any whose type is not loaded, and the like: show the message raw, not an error.
        Err(e) => {
            return Ok(serde_json::json!({"_raw": decode_raw(bytes)?, "_error": e.to_string()}));
        }
    };
    add_unknown(&msg, &mut v, 0);
    Ok(v)
}

/// Adds, at every level, the fields the schema does not know (a newer sender) as `_unknown`,
/// decoded by number like `protoc --decode_raw`.
fn add_unknown(msg: &DynamicMessage, json: &mut Value, depth: usize) {
    use prost_reflect::Value as V;
    if depth > RAW_DEPTH {
        return;
    }
    let Value::Object(obj) = json else { return };
    let mut unknown = Vec::new();
    for f in msg.unknown_fields() {
        f.encode(&mut unknown);
    }
    if !unknown.is_empty()
        && let Ok(raw) = decode_raw(&unknown)
    {
        obj.insert("_unknown".to_owned(), raw);
    }
    for (field, value) in msg.fields() {
        let Some(child) = obj.get_mut(field.json_name()) else {
            continue;
        };
        match (value, child) {
            (V::Message(m), j) => add_unknown(m, j, depth + 1),
            (V::List(items), Value::Array(js)) => {
                for (item, j) in items.iter().zip(js.iter_mut()) {
                    if let V::Message(m) = item {
                        add_unknown(m, j, depth + 1);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Nesting a schemaless decode follows before it shows bytes instead.
const RAW_DEPTH: usize = 32;

/// A schemaless decode: an object keyed by field number; varints and fixed values as numbers,
/// length-delimited fields as a nested object when the bytes parse as a message, a string when
/// they are UTF-8 text, else base64; repeated fields as arrays.
pub fn decode_raw(bytes: &[u8]) -> Result<Value, PayloadError> {
    raw(bytes, 0).ok_or_else(|| PayloadError::Decode("not a protobuf message".into()))
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn raw(b: &[u8], depth: usize) -> Option<Value> {
    let mut fields: Map<String, Value> = Map::new();
    let mut at = 0;
    while at < b.len() {
        let key = varint(b, &mut at)?;
        let (number, wire) = (key >> 3, key & 7);
        if number == 0 {
            return None;
        }
        let v = match wire {
            0 => Value::from(varint(b, &mut at)?),
            1 => {
                let s = b.get(at..at + 8)?;
                at += 8;
                // Fixed-width values in hex, as protoc --decode_raw shows them.
                Value::from(format!("0x{:016x}", u64::from_le_bytes(s.try_into().ok()?)))
            }
            5 => {
                let s = b.get(at..at + 4)?;
                at += 4;
                Value::from(format!("0x{:08x}", u32::from_le_bytes(s.try_into().ok()?)))
            }
            2 => {
                let len = usize::try_from(varint(b, &mut at)?).ok()?;
                let s = b.get(at..at.checked_add(len)?)?;
                at += len;
                // Printable text first: most text also parses as a message (every byte a small
                // varint field), and text is what a person wants to read.
                let text = std::str::from_utf8(s)
                    .ok()
                    .filter(|t| t.chars().all(|c| !c.is_control() || c == '\n' || c == '\t'));
                match text {
                    Some(t) => Value::from(t),
                    None => (depth < RAW_DEPTH && !s.is_empty())
                        .then(|| raw(s, depth + 1))
                        .flatten()
                        .unwrap_or_else(|| Value::from(crate::metadata::base64(s))),
                }
            }
            _ => return None, // groups (3, 4) and invalid wire types
        };
        match fields.get_mut(&number.to_string()) {
            Some(Value::Array(a)) => a.push(v),
            Some(prev) => *prev = Value::Array(vec![prev.take(), v]),
            None => {
                fields.insert(number.to_string(), v);
            }
        }
    }
    Some(Value::Object(fields))
}

/// One kept message as JSON: decompressed by the call's `grpc-encoding` (at most `cap`
/// bytes), then decoded as `type_name` with `schemas` when both are known, raw otherwise. A
/// message that cannot be read is `{"error": ...}` and costs only itself.
pub fn message_json(
    body: &crate::grpc::msg::Body,
    encoding: Option<&str>,
    type_name: Option<&str>,
    schemas: Option<&crate::schema::Schemas>,
    cap: usize,
) -> Value {
    if body.cut() {
        return serde_json::json!({"error": format!("message of {} bytes cut at {}", body.len, body.data.len())});
    }
    let decompressed;
    let plain = if body.compressed {
        match decompress(encoding, &body.data, cap) {
            Ok(p) => {
                decompressed = p;
                &decompressed
            }
            Err(e) => return serde_json::json!({"error": e.to_string()}),
        }
    } else {
        &body.data
    };
    let decoded = match (type_name, schemas) {
        (Some(t), Some(s)) => to_json(s.pool(), t, plain),
        _ => decode_raw(plain),
    };
    decoded.unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}))
}

/// `grpc-status-details-bin` bytes as google.rpc.Status JSON with its details resolved.
pub fn status_details_json(details: &[u8], schemas: &crate::schema::Schemas) -> Value {
    to_json(schemas.pool(), "google.rpc.Status", details)
        .unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}))
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // varint bytes are masked to 7 bits
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn every_encoding_round_trips_and_bombs_are_refused() {
        let text = b"gRPC message ".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&text).expect("gz");
        let gz = gz.finish().expect("gz");
        let mut zl = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zl.write_all(&text).expect("zlib");
        let zl = zl.finish().expect("zlib");
        let mut rawd =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        rawd.write_all(&text).expect("deflate");
        let rawd = rawd.finish().expect("deflate");
        let sn = snap::raw::Encoder::new()
            .compress_vec(&text)
            .expect("snappy");
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        framed.write_all(&text).expect("framed");
        let framed = framed.into_inner().expect("framed");
        for (enc, data) in [
            ("gzip", &gz),
            ("deflate", &zl),
            ("deflate", &rawd),
            ("snappy", &sn),
            ("snappy", &framed),
        ] {
            assert_eq!(
                decompress(Some(enc), data, 1 << 20).expect(enc),
                text,
                "{enc}"
            );
            assert_eq!(
                decompress(Some(enc), data, 100),
                Err(PayloadError::TooLarge { cap: 100 }),
                "{enc} bomb"
            );
        }
        // A snappy length that lies: 4 GB claimed in a few bytes.
        let lie = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00];
        assert_eq!(
            decompress(Some("snappy"), &lie, 1 << 20),
            Err(PayloadError::TooLarge { cap: 1 << 20 })
        );
        assert!(matches!(
            decompress(Some("gzip"), b"not gzip", 1 << 20),
            Err(PayloadError::Decompress(_))
        ));
        assert!(matches!(
            decompress(Some("br"), b"x", 1),
            Err(PayloadError::UnknownEncoding(_))
        ));
        // A gzip bomb: 16 MiB of zeros in a few KiB.
        let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        bomb.write_all(&vec![0u8; 16 << 20]).expect("bomb");
        let bomb = bomb.finish().expect("bomb");
        assert!(bomb.len() < 200_000, "{}", bomb.len());
        assert_eq!(
            decompress(Some("gzip"), &bomb, 1 << 20),
            Err(PayloadError::TooLarge { cap: 1 << 20 })
        );
    }

    #[test]
    fn unknown_fields_and_unloaded_any_are_shown_not_fatal() {
        let mut pool = prost_reflect::DescriptorPool::new();
        crate::schema::add_google_rpc(&mut pool).expect("google.rpc loads");
        let schemas = crate::schema::Schemas::new(pool);
        let pool = schemas.pool();
        // google.rpc.Status { code: 3, message: "x" } plus an unknown field 9 = 7.
        let msg = [0x08, 0x03, 0x12, 0x01, b'x', 0x48, 0x07];
        let v = to_json(pool, "google.rpc.Status", &msg).expect("decodes");
        assert_eq!(
            v,
            serde_json::json!({"code": 3, "message": "x", "_unknown": {"9": 7}})
        );
        // Unknown fields inside nested and repeated messages: BadRequest { field_violations:
        // [{ field: "f", 7: fixed32 1 }] }.
        let violation = [0x0a, 0x01, b'f', 0x3d, 0x01, 0x00, 0x00, 0x00];
        let mut bad = vec![0x0a, violation.len() as u8];
        bad.extend_from_slice(&violation);
        let v = to_json(pool, "google.rpc.BadRequest", &bad).expect("decodes");
        assert_eq!(
            v,
            serde_json::json!({"fieldViolations": [{"field": "f", "_unknown": {"7": "0x00000001"}}]})
        );
        // details: an Any of a type that is not loaded.
        let url = b"type.googleapis.com/acme.Secret";
        let mut any = vec![0x0a, url.len() as u8];
        any.extend_from_slice(url);
        any.extend_from_slice(&[0x12, 0x02, 0x08, 0x01]);
        let mut status = vec![0x08, 0x05, 0x1a, any.len() as u8];
        status.extend_from_slice(&any);
        let v = to_json(pool, "google.rpc.Status", &status).expect("shown raw");
        assert!(v["_error"].is_string(), "{v}");
        assert_eq!(v["_raw"]["1"], 5);
    }

    #[test]
    fn raw_decode_like_protoc() {
        // field 1 "hi", field 2 varint 150, field 3 nested {1: 1}, field 2 again.
        let msg = [
            0x0a, 0x02, b'h', b'i', 0x10, 0x96, 0x01, 0x1a, 0x02, 0x08, 0x01, 0x10, 0x01,
        ];
        let v = decode_raw(&msg).expect("decodes");
        assert_eq!(
            v,
            serde_json::json!({"1": "hi", "2": [150, 1], "3": {"1": 1}})
        );
        // A truncated varint and a 4 GB length are errors, not panics or allocations.
        assert!(decode_raw(&[0x08, 0x96]).is_err());
        assert!(decode_raw(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).is_err());
        // 10,000 levels of nesting stop at the depth limit and show bytes.
        let mut deep = vec![0x08, 0x01];
        for _ in 0..10_000 {
            let mut outer = vec![0x0a];
            let mut len = deep.len();
            while len >= 0x80 {
                outer.push((len as u8 & 0x7f) | 0x80);
                len >>= 7;
            }
            outer.push(len as u8);
            outer.extend_from_slice(&deep);
            deep = outer;
        }
        assert!(decode_raw(&deep).is_ok());
    }
}
