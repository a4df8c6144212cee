//! Method inference: a call whose `:path` could not be read is named from its messages when
//! exactly one method of the schemas fits them, and every call of its group (calls whose `:path`
//! was the same unseen header table entry) with them.
//!
//! The fit is strict, so that a message of another type (or of a method the schemas lack) is
//! turned away rather than named: the message decodes as the type, every field number is one the
//! type defines with the wire type it declares (prost checks the wire type and UTF-8 of strings
//! while decoding), no field is unknown at any depth, and every enum value is one the enum
//! defines. The call's message counts must be allowed by the method's `stream` keywords. Empty
//! messages fit every type, so they never name a method on their own.

use prost_reflect::{DynamicMessage, Kind, ReflectMessage, Value};

use super::record::{CallRecord, CallType};
use crate::grpc::msg::Body;
use crate::payload::decompress;
use crate::schema::Schemas;

/// Nesting followed when checking a message; deeper messages are not checked further (prost
/// itself refuses nesting past its recursion limit).
const MAX_DEPTH: usize = 32;

/// Whether every field of `msg`, at every depth, is one its type defines, with enum values the
/// enums define.
fn strict(msg: &DynamicMessage, depth: usize) -> bool {
    if msg.unknown_fields().next().is_some() {
        return false;
    }
    if depth > MAX_DEPTH {
        return true;
    }
    let value_ok = |field: &prost_reflect::FieldDescriptor, v: &Value| -> bool {
        match (v, field.kind()) {
            (Value::Message(m), _) => strict(m, depth + 1),
            (Value::EnumNumber(n), Kind::Enum(e)) => e.get_value(*n).is_some(),
            _ => true,
        }
    };
    msg.fields().all(|(field, v)| match v {
        Value::List(items) => items.iter().all(|i| value_ok(&field, i)),
        Value::Map(entries) => entries.values().all(|i| {
            value_ok(
                &field
                    .kind()
                    .as_message()
                    .map_or(field.clone(), |m| m.map_entry_value_field()),
                i,
            )
        }),
        other => value_ok(&field, other),
    })
}

/// Does `body` read strictly as message type `type_name`? A message that was cut, or does not
/// decompress, fits nothing.
fn fits(
    schemas: &Schemas,
    type_name: &str,
    body: &Body,
    encoding: Option<&str>,
    cap: usize,
) -> bool {
    if body.cut() {
        return false;
    }
    let plain = if body.compressed {
        match decompress(encoding, &body.data, cap) {
            Ok(p) => p,
            Err(_) => return false,
        }
    } else {
        body.data.clone()
    };
    let Some(desc) = schemas.pool().get_message_by_name(type_name) else {
        return false;
    };
    DynamicMessage::decode(desc, plain.as_slice()).is_ok_and(|m| {
        debug_assert!(m.descriptor().full_name() == type_name);
        strict(&m, 0)
    })
}

/// Whether the call's kept messages tell anything (an empty message fits every type).
pub fn has_evidence(call: &CallRecord) -> bool {
    call.req
        .bodies
        .iter()
        .chain(&call.resp.bodies)
        .any(|b| !b.data.is_empty())
}

/// The methods (indexes into [`Schemas::method_list`]) among `among` (all when `None`) whose
/// streaming allows the call's message counts and whose types every kept message fits.
pub fn candidates(
    schemas: &Schemas,
    call: &CallRecord,
    cap: usize,
    among: Option<&[u32]>,
) -> Vec<u32> {
    let list = schemas.method_list();
    let all: Vec<u32>;
    let among = match among {
        Some(a) => a,
        None => {
            all = (0..u32::try_from(list.len()).unwrap_or(u32::MAX)).collect();
            &all
        }
    };
    among
        .iter()
        .copied()
        .filter(|&i| {
            let Some((_, info)) = list.get(i as usize) else {
                return false;
            };
            let ty = CallType::from_streaming(info.client_streaming, info.server_streaming);
            let (client_streams, server_streams) = ty.streaming();
            if (!client_streams && call.req.msgs > 1) || (!server_streams && call.resp.msgs > 1) {
                return false;
            }
            let half = |h: &super::record::Half, ty: &str| {
                h.bodies
                    .iter()
                    .all(|b| fits(schemas, ty, b, h.encoding.as_deref(), cap))
            };
            half(&call.req, &info.input) && half(&call.resp, &info.output)
        })
        .collect()
}

/// For a single call whose `:path` could not be read: the one method that fits, if exactly one
/// does and the call's messages say anything.
pub fn infer_method<'s>(schemas: &'s Schemas, call: &CallRecord, cap: usize) -> Option<&'s str> {
    if !has_evidence(call) {
        return None;
    }
    match candidates(schemas, call, cap, None).as_slice() {
        [one] => schemas
            .method_list()
            .get(*one as usize)
            .map(|(p, _)| p.as_str()),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test messages are a few bytes
mod tests {
    use super::*;
    use types::Nanos;

    fn schemas() -> Schemas {
        crate::schema::tests::from_source(
            "shop.proto",
            "syntax = \"proto3\";\npackage shop;\n\
             enum Kind { KIND_UNSPECIFIED = 0; BOOK = 1; }\n\
             message Order { string id = 1; int64 cents = 2; Kind kind = 3; }\n\
             message Receipt { string id = 1; bool paid = 3; }\n\
             message Item { string sku = 5; }\n\
             service Shop {\n  rpc Buy (Order) returns (Receipt);\n  rpc Browse (Item) returns (stream Item);\n}\n",
        )
    }

    fn body(data: Vec<u8>) -> Body {
        Body {
            compressed: false,
            len: data.len() as u32,
            data,
            ts: Nanos(0),
        }
    }

    #[test]
    fn exactly_one_fitting_method_names_the_call() {
        let schemas = schemas();
        // Order { id: "a", cents: 250 } and Receipt { id: "a", paid: true }.
        let mut call = crate::calls::record::test_record();
        call.req.bodies = vec![body(vec![0x0a, 0x01, b'a', 0x10, 0xfa, 0x01])];
        call.resp.bodies = vec![body(vec![0x0a, 0x01, b'a', 0x18, 0x01])];
        call.req.msgs = 1;
        call.resp.msgs = 1;
        assert_eq!(
            infer_method(&schemas, &call, 1 << 20),
            Some("/shop.Shop/Buy")
        );
        // Item { sku: "x" } both ways, three responses: only Browse streams responses.
        call.req.bodies = vec![body(vec![0x2a, 0x01, b'x'])];
        call.resp.bodies = vec![body(vec![0x2a, 0x01, b'x']); 3];
        call.resp.msgs = 3;
        assert_eq!(
            infer_method(&schemas, &call, 1 << 20),
            Some("/shop.Shop/Browse")
        );
        // Empty messages fit every method: no name.
        call.req.bodies = vec![body(vec![])];
        call.resp.bodies = vec![body(vec![])];
        call.resp.msgs = 1;
        assert_eq!(infer_method(&schemas, &call, 1 << 20), None);
    }

    #[test]
    fn the_fit_is_strict() {
        let schemas = schemas();
        let mut call = crate::calls::record::test_record();
        call.req.msgs = 1;
        call.resp.msgs = 1;
        call.resp.bodies = vec![body(vec![0x0a, 0x01, b'a'])];
        // An enum value Kind does not define: Order does not fit, so Buy is out.
        call.req.bodies = vec![body(vec![0x18, 0x07])];
        assert_eq!(
            candidates(&schemas, &call, 1 << 20, None),
            Vec::<u32>::new()
        );
        call.req.bodies = vec![body(vec![0x18, 0x01])];
        // Methods are indexed in path order: Browse is 0, Buy 1.
        assert_eq!(candidates(&schemas, &call, 1 << 20, None), vec![1]);
        // cents (int64) sent as a string: the wire type is wrong.
        call.req.bodies = vec![body(vec![0x12, 0x01, b'x'])];
        assert!(candidates(&schemas, &call, 1 << 20, None).is_empty());
        // A field Order does not have.
        call.req.bodies = vec![body(vec![0x48, 0x01])];
        assert!(candidates(&schemas, &call, 1 << 20, None).is_empty());
        // Invalid UTF-8 in a string field.
        call.req.bodies = vec![body(vec![0x0a, 0x01, 0xff])];
        assert!(candidates(&schemas, &call, 1 << 20, None).is_empty());
        // Among a given set only.
        call.req.bodies = vec![body(vec![0x18, 0x01])];
        assert!(candidates(&schemas, &call, 1 << 20, Some(&[0])).is_empty());
    }
}
