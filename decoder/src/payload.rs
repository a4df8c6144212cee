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
    /// Decoded, the message would be bigger than the output budget allows: more fields (at
    /// every depth) than `nodes`, or nesting deeper than `depth`.
    TooComplex {
        /// What was exceeded.
        what: &'static str,
    },
    /// The call's output budget was used up by its earlier messages.
    BudgetUsed,
}

/// Bounds on what decoding produces (not only on what it reads): a message of 16 KiB that
/// inflates to 16 MiB of tiny nested submessages would otherwise become millions of JSON nodes.
/// One budget per call; each message takes from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputBudget {
    /// Fields (at every depth) one message may have.
    pub message_nodes: usize,
    /// Fields left for the call's remaining messages.
    pub call_nodes: usize,
    /// Decompressed bytes left for the call's remaining messages.
    pub call_bytes: usize,
    /// Nesting of messages (and `Any`) a message may have.
    pub depth: usize,
}

impl OutputBudget {
    /// For `--calls` with `--bodies`: 200,000 fields a message, 1,000,000 and 64 MiB a call,
    /// 64 levels (JSON parsers commonly stop at 128).
    pub const CALLS: OutputBudget = OutputBudget {
        message_nodes: 200_000,
        call_nodes: 1_000_000,
        call_bytes: 64 << 20,
        depth: 64,
    };
    /// For one call shown in the terminal UI: 20,000 fields a message, 100,000 and 16 MiB a call.
    pub const SCREEN: OutputBudget = OutputBudget {
        message_nodes: 20_000,
        call_nodes: 100_000,
        call_bytes: 16 << 20,
        depth: 64,
    };
}

/// What a message would produce, found with bounded work: its fields at every depth (a
/// length-delimited field is looked into when it parses as a message) and its nesting.
#[derive(Debug, Default)]
struct Shape {
    nodes: usize,
    depth: usize,
    work: usize,
}

/// Walks `b` as a message at `depth`; false when it does not parse as one (the caller then
/// takes it as bytes). Stops early once over `limit` nodes, `max_depth` levels or `max_work`.
fn shape(b: &[u8], depth: usize, st: &mut Shape, limit: (usize, usize, usize)) -> bool {
    let (max_nodes, max_depth, max_work) = limit;
    st.depth = st.depth.max(depth);
    st.work += b.len();
    let mut at = 0;
    while at < b.len() {
        if st.nodes > max_nodes || st.depth > max_depth || st.work > max_work {
            return true;
        }
        let Some(key) = varint(b, &mut at) else {
            return false;
        };
        if key >> 3 == 0 {
            return false;
        }
        st.nodes += 1;
        match key & 7 {
            0 => {
                if varint(b, &mut at).is_none() {
                    return false;
                }
            }
            1 => at += 8,
            5 => at += 4,
            2 => {
                let Some(len) = varint(b, &mut at).and_then(|l| usize::try_from(l).ok()) else {
                    return false;
                };
                let Some(sub) = at.checked_add(len).and_then(|end| b.get(at..end)) else {
                    return false;
                };
                at += len;
                // Text is a leaf, as `raw` shows it (a schema's strings and bytes are leaves too).
                if !sub.is_empty() && !is_text(sub) {
                    let saved = (st.nodes, st.depth);
                    if !shape(sub, depth + 1, st, limit) {
                        (st.nodes, st.depth) = saved;
                    }
                }
            }
            _ => return false,
        }
    }
    at == b.len()
}

/// Text a person reads: no control characters but newlines and tabs.
fn printable(t: &str) -> bool {
    t.chars().all(|c| !c.is_control() || c == '\n' || c == '\t')
}

/// Whether `b` is printable UTF-8 text.
fn is_text(b: &[u8]) -> bool {
    std::str::from_utf8(b).is_ok_and(printable)
}

/// Checks `plain` against the budget and takes its share; `Err` when it would produce too much.
fn within(plain: &[u8], budget: &mut OutputBudget) -> Result<(), PayloadError> {
    if plain.len() > budget.call_bytes {
        return Err(PayloadError::BudgetUsed);
    }
    let limit = budget.message_nodes.min(budget.call_nodes);
    let mut st = Shape::default();
    // Each byte is looked at once per level it is nested in: bounded by the depth limit, and
    // by 32 passes over the message.
    let max_work = plain.len().saturating_mul(32).max(1 << 20);
    shape(plain, 0, &mut st, (limit, budget.depth, max_work));
    if st.depth > budget.depth {
        return Err(PayloadError::TooComplex { what: "nesting" });
    }
    if st.nodes > limit {
        return Err(if limit < budget.message_nodes {
            PayloadError::BudgetUsed
        } else {
            PayloadError::TooComplex { what: "fields" }
        });
    }
    if st.work > max_work {
        return Err(PayloadError::TooComplex { what: "nesting" });
    }
    budget.call_nodes -= st.nodes;
    budget.call_bytes -= plain.len();
    Ok(())
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PayloadError::UnknownEncoding(e) => write!(f, "unknown grpc-encoding {e:?}"),
            PayloadError::Decompress(e) => write!(f, "does not decompress: {e}"),
            PayloadError::TooLarge { cap } => write!(f, "decompresses to more than {cap} bytes"),
            PayloadError::Decode(e) => write!(f, "does not decode: {e}"),
            PayloadError::TooComplex { what } => {
                write!(f, "too large to show: its {what} exceed the output budget")
            }
            PayloadError::BudgetUsed => {
                write!(
                    f,
                    "not shown: the call's output budget was used by its earlier messages"
                )
            }
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

/// Completes the proto3 JSON of `msg` at every level: adds the fields the schema does not
/// know (a newer sender) as `_unknown`, decoded by number like `protoc --decode_raw`, and
/// writes `float` fields in the shortest form that reads back as the same 32-bit float
/// (0.92650664, not the widened 0.9265066385269165), as protobuf's JSON printers do.
fn add_unknown(msg: &DynamicMessage, json: &mut Value, depth: usize) {
    use prost_reflect::{MapKey, Value as V};
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
    let complete = |value: &V, j: &mut Value| match value {
        V::Message(m) => add_unknown(m, j, depth + 1),
        V::F32(f) => shortest_f32(*f, j),
        _ => {}
    };
    for (field, value) in msg.fields() {
        let Some(child) = obj.get_mut(field.json_name()) else {
            continue;
        };
        match (value, child) {
            (V::List(items), Value::Array(js)) => {
                for (item, j) in items.iter().zip(js.iter_mut()) {
                    complete(item, j);
                }
            }
            (V::Map(entries), Value::Object(js)) => {
                for (k, item) in entries {
                    let key = match k {
                        MapKey::Bool(b) => b.to_string(),
                        MapKey::I32(n) => n.to_string(),
                        MapKey::I64(n) => n.to_string(),
                        MapKey::U32(n) => n.to_string(),
                        MapKey::U64(n) => n.to_string(),
                        MapKey::String(s) => s.clone(),
                    };
                    if let Some(j) = js.get_mut(&key) {
                        complete(item, j);
                    }
                }
            }
            (value, j) => complete(value, j),
        }
    }
}

/// `j`, the JSON of the float `f`, as the shortest decimal that reads back as `f`. NaN and
/// the infinities are strings in proto3 JSON and stay as they are.
fn shortest_f32(f: f32, j: &mut Value) {
    if !j.is_number() {
        return;
    }
    // Rust prints the shortest round-trip decimal of an f32; as an f64 it prints the same
    // digits (at most 9 significant ones round-trip through an f64).
    if let Some(n) = format!("{f}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
    {
        *j = Value::Number(n);
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
                let text = std::str::from_utf8(s).ok().filter(|t| printable(t));
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

/// A kept message's bytes as sent: decompressed by `encoding` when its flag says so, to no more
/// than `cap` nor what the call's budget has left; a message cut at the per-message bound, or
/// one that does not decompress, is the `{"error": ...}` to show instead.
fn plain_bytes<'a>(
    body: &'a crate::grpc::msg::Body,
    encoding: Option<&str>,
    cap: usize,
    budget: &OutputBudget,
) -> Result<std::borrow::Cow<'a, [u8]>, Value> {
    if body.cut() {
        return Err(
            serde_json::json!({"error": format!("message of {} bytes cut at {}", body.len, body.data.len())}),
        );
    }
    if !body.compressed {
        return Ok(std::borrow::Cow::Borrowed(&body.data));
    }
    decompress(encoding, &body.data, cap.min(budget.call_bytes))
        .map(std::borrow::Cow::Owned)
        .map_err(|e| serde_json::json!({"error": e.to_string()}))
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
    budget: &mut OutputBudget,
) -> Value {
    let plain = match plain_bytes(body, encoding, cap, budget) {
        Ok(p) => p,
        Err(e) => return e,
    };
    let plain = &plain[..];
    if let Err(e) = within(plain, budget) {
        return serde_json::json!({"error": e.to_string(), "truncated": true, "bytes": plain.len()});
    }
    let decoded = match (type_name, schemas) {
        (Some(t), Some(s)) => to_json(s.pool(), t, plain),
        _ => decode_raw(plain),
    };
    decoded.unwrap_or_else(|e| serde_json::json!({"error": e.to_string()}))
}

/// A message of a JSON codec (Connect `application/json`, `+json` content-types): its text
/// parsed as it is, within the call's byte budget (serde_json's nesting limit bounds depth).
pub fn json_codec_message(
    body: &crate::grpc::msg::Body,
    encoding: Option<&str>,
    cap: usize,
    budget: &mut OutputBudget,
) -> Value {
    let plain = match plain_bytes(body, encoding, cap, budget) {
        Ok(p) => p,
        Err(e) => return e,
    };
    if plain.len() > budget.call_bytes {
        return serde_json::json!({"error": "too large to show: the call's output budget is spent", "truncated": true, "bytes": plain.len()});
    }
    budget.call_bytes -= plain.len();
    serde_json::from_slice(&plain)
        .unwrap_or_else(|e| serde_json::json!({"error": format!("not JSON: {e}")}))
}

/// Whether a content-type names a JSON codec (Connect's `application/json`, `+json`).
pub fn is_json_codec(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    essence.eq_ignore_ascii_case("application/json")
        || essence.to_ascii_lowercase().ends_with("+json")
}

/// `grpc-status-details-bin` bytes as google.rpc.Status JSON with its details resolved, within
/// a budget of its own (its `Any` details nest: thousands of levels would take memory growing
/// with the square of the depth).
pub fn status_details_json(details: &[u8], schemas: &crate::schema::Schemas) -> Value {
    let mut budget = OutputBudget::SCREEN;
    if let Err(e) = within(details, &mut budget) {
        return serde_json::json!({"error": e.to_string(), "truncated": true, "bytes": details.len()});
    }
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
    fn floats_print_in_their_shortest_form() {
        let schemas = crate::schema::tests::from_source(
            "f.proto",
            "syntax = \"proto3\";\npackage f;\n\
             message In { float v = 1; }\n\
             message M { float a = 1; double d = 2; repeated float r = 3; \
             map<string, float> m = 4; In n = 5; repeated In rn = 6; }\n",
        );
        let f = |x: f32| x.to_le_bytes();
        let mut msg = vec![0x0d];
        msg.extend(f(0.926_506_64));
        msg.push(0x11);
        msg.extend(0.926_506_638_526_916_5f64.to_le_bytes());
        // packed repeated: 0.1, -1e-30, NaN
        msg.extend([0x1a, 12]);
        for x in [0.1f32, -1e-30, f32::NAN] {
            msg.extend(f(x));
        }
        // map entry {"k": 1/3}
        let mut entry = vec![0x0a, 1, b'k', 0x15];
        entry.extend(f(1.0 / 3.0));
        msg.extend([0x22, entry.len() as u8]);
        msg.extend(&entry);
        let mut inner = vec![0x0d];
        inner.extend(f(3.4e38));
        msg.extend([0x2a, inner.len() as u8]);
        msg.extend(&inner);
        msg.extend([0x32, inner.len() as u8]);
        msg.extend(&inner);
        let v = to_json(schemas.pool(), "f.M", &msg).expect("decodes");
        // serde_json prints what protobuf's printers print for these floats.
        assert_eq!(
            v.to_string(),
            r#"{"a":0.92650664,"d":0.9265066385269165,"m":{"k":0.33333334},"n":{"v":3.4e+38},"r":[0.1,-1e-30,"NaN"],"rn":[{"v":3.4e+38}]}"#
        );
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

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b).expect("gz");
        gz.finish().expect("gz")
    }

    fn body(data: Vec<u8>, compressed: bool) -> crate::grpc::msg::Body {
        crate::grpc::msg::Body {
            compressed,
            len: data.len() as u32,
            data,
            ts: types::Nanos(0),
        }
    }

    #[test]
    fn output_is_bounded_not_only_input() {
        // A few KiB of gzip that inflate to 16 MiB of tiny nested submessages (`0a 02 08 00`).
        let amp = gzip(&[0x0a, 0x02, 0x08, 0x00].repeat(4 << 20));
        assert!(amp.len() < 200 << 10, "{}", amp.len());
        let mut budget = OutputBudget::CALLS;
        let v = message_json(
            &body(amp, true),
            Some("gzip"),
            None,
            None,
            16 << 20,
            &mut budget,
        );
        assert_eq!(v["truncated"], true, "{v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("fields")),
            "{v}"
        );
        // The walk stopped at the fields budget (the error above), not at the end of the
        // 16 MiB: the work is bounded by the budget, whatever the clock of a loaded machine.
        assert_eq!(v["bytes"], 16 << 20);
        // A normal message still decodes, and takes its share of the call's budget.
        let ok = message_json(
            &body(vec![0x0a, 0x02, 0x68, 0x69], false),
            None,
            None,
            None,
            1 << 20,
            &mut budget,
        );
        assert_eq!(ok, serde_json::json!({"1": "hi"}));
        assert_eq!(budget.call_nodes, OutputBudget::CALLS.call_nodes - 1);
        // Messages that are each within bounds use the call's budget up; later ones say so.
        let mut budget = OutputBudget {
            call_nodes: 250_000,
            ..OutputBudget::CALLS
        };
        let big = [0x08, 0x01].repeat(150_000);
        let first = message_json(
            &body(big.clone(), false),
            None,
            None,
            None,
            1 << 20,
            &mut budget,
        );
        assert!(first.is_object() && first.get("error").is_none());
        let second = message_json(&body(big, false), None, None, None, 1 << 20, &mut budget);
        assert_eq!(second["truncated"], true, "{second}");
        assert!(
            second["error"]
                .as_str()
                .is_some_and(|e| e.contains("earlier messages"))
        );
    }

    #[test]
    fn deep_nesting_is_refused_before_decoding() {
        // google.rpc.Status whose details hold an Any holding a Status ..., 14,000 levels.
        let schemas =
            crate::schema::tests::from_source("x.proto", "syntax = \"proto3\"; package x;");
        let ld = |field: u8, b: &[u8]| {
            let mut v = vec![(field << 3) | 2];
            let mut n = b.len();
            while n >= 0x80 {
                v.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            v.push(n as u8);
            v.extend_from_slice(b);
            v
        };
        let mut status = vec![0x08, 0x05];
        for _ in 0..14_000 {
            let mut any = ld(1, b"type.googleapis.com/google.rpc.Status");
            any.extend(ld(2, &status));
            status = vec![0x08, 0x05];
            status.extend(ld(3, &any));
        }
        let v = status_details_json(&status, &schemas);
        assert_eq!(v["truncated"], true, "{v}");
        assert!(
            v["error"].as_str().is_some_and(|e| e.contains("nesting")),
            "{v}"
        );
        // A few levels are fine.
        let mut shallow = vec![0x08, 0x05];
        let mut any = ld(1, b"type.googleapis.com/google.rpc.ErrorInfo");
        any.extend(ld(2, &ld(1, b"QUOTA")));
        shallow.extend(ld(3, &any));
        let v = status_details_json(&shallow, &schemas);
        assert_eq!(v["code"], 5, "{v}");
        assert_eq!(v["details"][0]["reason"], "QUOTA", "{v}");
    }
}
