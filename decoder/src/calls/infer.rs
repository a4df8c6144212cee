//! Method inference: a call whose `:path` could not be read is named from its messages when
//! exactly one method of the schemas fits them.

use prost_reflect::{DescriptorPool, DynamicMessage};

use super::record::{CallRecord, CallType};
use crate::grpc::msg::Body;
use crate::payload::decompress;
use crate::schema::Schemas;

/// Does `body` read as message type `type_name`: decompresses, decodes, and uses no field
/// number the type does not define?
fn fits(
    pool: &DescriptorPool,
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
    let Some(desc) = pool.get_message_by_name(type_name) else {
        return false;
    };
    DynamicMessage::decode(desc, plain.as_slice())
        .is_ok_and(|m| m.unknown_fields().next().is_none())
}

/// For a call whose `:path` could not be read: the one method of `schemas` whose streaming
/// flags allow the call's message counts and whose request and response types every kept
/// message reads as. `None` when no method or more than one fits (empty messages fit anything,
/// so they never name a method on their own).
pub fn infer_method<'s>(schemas: &'s Schemas, call: &CallRecord, cap: usize) -> Option<&'s str> {
    if call
        .req
        .bodies
        .iter()
        .chain(&call.resp.bodies)
        .all(|b| b.data.is_empty())
    {
        return None;
    }
    let mut found = None;
    for (path, info) in schemas.methods() {
        let ty = CallType::from_streaming(info.client_streaming, info.server_streaming);
        let (client_streams, server_streams) = ty.streaming();
        if (!client_streams && call.req.msgs > 1) || (!server_streams && call.resp.msgs > 1) {
            continue;
        }
        let pool = schemas.pool();
        let ok = call
            .req
            .bodies
            .iter()
            .all(|b| fits(pool, &info.input, b, call.req.encoding.as_deref(), cap))
            && call
                .resp
                .bodies
                .iter()
                .all(|b| fits(pool, &info.output, b, call.resp.encoding.as_deref(), cap));
        if ok {
            if found.is_some() {
                return None; // ambiguous
            }
            found = Some(path);
        }
    }
    found
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)] // test messages are a few bytes
mod tests {
    use super::*;
    use types::Nanos;

    #[test]
    fn exactly_one_fitting_method_names_the_call() {
        let schemas = crate::schema::tests::from_source(
            "shop.proto",
            "syntax = \"proto3\";\npackage shop;\n\
             message Order { string id = 1; int64 cents = 2; }\n\
             message Receipt { string id = 1; bool paid = 3; }\n\
             message Item { string sku = 5; }\n\
             service Shop {\n  rpc Buy (Order) returns (Receipt);\n  rpc Browse (Item) returns (stream Item);\n}\n",
        );
        let body = |data: Vec<u8>| Body {
            compressed: false,
            len: data.len() as u32,
            data,
            ts: Nanos(0),
        };
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
}
