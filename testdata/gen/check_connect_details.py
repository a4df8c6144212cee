#!/usr/bin/env python3
"""Checks the error details of a capture made by `make_connect_captures.sh connect-details`
against the client's log of them: for every logged call (found on the wire by its x-call-id, as
check_connect.py does, whose readers this uses), the details on the wire are the ones in the
log's "details" field ([{"type", "value": the detail's proto3 JSON}]), in order, and a call
logged without details has none on the wire. Where the wire carries them:
  Connect unary (POST and GET): the JSON error body, "details": [{"type", "value": base64 of the
    message (unpadded), "debug": its JSON}];
  Connect streams: the same list in the end-of-stream message's "error";
  gRPC, gRPC-Web: grpc-status-details-bin (base64 of a google.rpc.Status: code, message, details
    as google.protobuf.Any) in the trailers (HTTP/2 trailers, a trailers-only response, or
    gRPC-Web's trailer frame); its code and message also agree with grpc-status and grpc-message.
The detail messages are decoded here from echo.proto's two messages (their fields written out
below). Prints what it found per protocol and one line per disagreement; exits 1 if there is any.
With --examples prints the raw wire form of the first call with two details of each kind.
Usage: check_connect_details.py CAPTURE PORT CALLS HTTP(2|1.1) [--examples]"""
import base64, gzip, json, os, sys, tempfile, urllib.parse
from collections import Counter

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_connect import read_exchanges, envelopes, unbase64, first, wire_view  # noqa: E402

# echo.proto's messages: field number -> (JSON name, type).
SCHEMAS = {
    "grpctap.test.EchoRequest": {1: ("message", "string"), 2: ("replyCount", "int32"), 3: ("replySize", "int32"),
                                 4: ("statusCode", "int32"), 5: ("statusMessage", "string"), 6: ("sleepMs", "int32"),
                                 7: ("payload", "bytes")},
    "grpctap.test.EchoReply": {1: ("message", "string"), 2: ("index", "int32"), 3: ("payload", "bytes"),
                               4: ("peer", "string")},
}
ANY_PREFIX = "type.googleapis.com/"


def varint(buf, pos):
    v = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, pos


def pb_fields(buf):
    """A protobuf message's fields: [(number, wire type, value)]."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, pos = varint(buf, pos)
        elif wt == 2:
            n, pos = varint(buf, pos)
            v, pos = bytes(buf[pos:pos + n]), pos + n
        elif wt == 1:
            v, pos = bytes(buf[pos:pos + 8]), pos + 8
        elif wt == 5:
            v, pos = bytes(buf[pos:pos + 4]), pos + 4
        else:
            raise ValueError(f"wire type {wt}")
        out.append((num, wt, v))
    return out


def int32(v):
    v &= (1 << 64) - 1
    if v >= 1 << 63:
        v -= 1 << 64
    v = ((v + (1 << 31)) % (1 << 32)) - (1 << 31)
    return v


def to_json(type_name, buf):
    """A detail's message as proto3 JSON (lowerCamelCase names, defaults left out, bytes in
    padded standard base64), as protobuf-es's toJson writes it; None for a type not in SCHEMAS."""
    schema = SCHEMAS.get(type_name)
    if schema is None:
        return None
    out = {}
    for num, _, v in pb_fields(buf):
        if num not in schema:
            out[f"#{num}"] = v.hex() if isinstance(v, bytes) else v
            continue
        name, ty = schema[num]
        if ty == "string":
            out[name] = v.decode("utf-8")
        elif ty == "bytes":
            out[name] = base64.b64encode(v).decode()
        else:
            out[name] = int32(v)
    return {k: v for k, v in out.items() if v not in ("", 0)}


def b64(s):
    s = s.strip()
    return base64.b64decode(s + "=" * (-len(s) % 4))


def grpc_status(value):
    """grpc-status-details-bin: (code, message, [(type, value bytes)])."""
    code, message, details = 0, "", []
    for num, _, v in pb_fields(b64(value)):
        if num == 1:
            code = int32(v)
        elif num == 2:
            message = v.decode("utf-8")
        elif num == 3:
            url = val = b""
            for n2, _, v2 in pb_fields(v):
                if n2 == 1:
                    url = v2
                elif n2 == 2:
                    val = v2
            details.append((url.decode(), val))
    return code, message, details


def wire_details(e, v, problems):
    """The details of one exchange as on the wire: (kind, [{"type", "value"}] or None, raw form)."""
    rs, tr = e["resp_headers"], e["resp_trailers"]
    rct = v["resp_content_type"] or ""
    proto = v["protocol"]
    if not rs:
        return "none", None, None
    if proto == "connect" and not rct.startswith("application/connect+"):
        body = e["resp_body"]
        if first(rs, "content-encoding") == "gzip" and body:
            body = gzip.decompress(body)
        if first(rs, ":status") == "200" or not body:
            return "connect-unary", None, None
        err = json.loads(body)
        return "connect-unary", connect_list(err.get("details"), problems), body.decode("utf-8")
    if proto == "connect":
        for flags, payload in envelopes(e["resp_body"], first(rs, "connect-content-encoding") == "gzip"):
            if flags & 2:
                err = json.loads(payload).get("error") or {}
                return "connect-end-stream", connect_list(err.get("details"), problems), payload.decode("utf-8")
        return "connect-end-stream", None, None
    trailers, where = list(tr), "trailers"
    if first(rs, "grpc-status") is not None:
        trailers, where = list(rs), "trailers-only"
    body = e["resp_body"]
    if rct.startswith("application/grpc-web-text"):
        body = unbase64(body)
    for flags, payload in envelopes(body, first(rs, "grpc-encoding") == "gzip"):
        if flags & 0x80:
            where = "trailer frame"
            for ln in payload.decode("latin-1").split("\r\n"):
                k, _, val = ln.partition(":")
                if k:
                    trailers.append((k.strip().lower(), val.strip()))
    kind = f"{proto} {where}"
    raw = first(trailers, "grpc-status-details-bin")
    if raw is None:
        return kind, None, None
    code, message, anys = grpc_status(raw)
    want_code = int(first(trailers, "grpc-status") or -1)
    want_msg = urllib.parse.unquote(first(trailers, "grpc-message") or "")
    if (code, message) != (want_code, want_msg):
        problems.append(f"google.rpc.Status code/message {code} {message!r}, grpc-status/grpc-message {want_code} {want_msg!r}")
    out = []
    for url, val in anys:
        if not url.startswith(ANY_PREFIX):
            problems.append(f"type_url {url!r}")
        t = url[len(ANY_PREFIX):] if url.startswith(ANY_PREFIX) else url
        out.append({"type": t, "value": to_json(t, val)})
    return kind, out, f"grpc-status-details-bin: {raw}"


def connect_list(details, problems):
    if details is None:
        return None
    out = []
    for d in details:
        t = d.get("type")
        val = to_json(t, b64(d.get("value", "")))
        if "debug" in d and d["debug"] != val:
            problems.append(f"detail {t}: debug {d['debug']!r}, value decodes to {val!r}")
        out.append({"type": t, "value": val})
    return out


def main(argv):
    path, port, calls_path, httpv = argv[1], int(argv[2]), argv[3], argv[4]
    examples = "--examples" in argv
    exchanges = read_exchanges(path, port, httpv)
    wire = {}
    for e in exchanges:
        if e["req_headers"]:
            v = wire_view(e)
            wire[v["call_id"]] = (e, v)
    calls = [json.loads(ln) for ln in open(calls_path)]
    bad, seen, shown = [], Counter(), set()
    for c in calls:
        at = f"call {c['call_id']} {c['protocol']}/{c['codec']} {c['http_method']} {c['method']}"
        if c["call_id"] not in wire:
            bad.append(f"{at}: not on the wire")
            continue
        e, v = wire[c["call_id"]]
        problems = []
        kind, got, raw = wire_details(e, v, problems)
        want = c.get("details", [])
        seen[(c["protocol"], c["codec"], c["http_method"], kind, len(got or []))] += 1
        if (got or []) != want or (want and got is None):
            bad.append(f"{at}: details logged {json.dumps(want, ensure_ascii=False)}, wire {json.dumps(got, ensure_ascii=False)}")
        if not want and got is not None:
            bad.append(f"{at}: an empty details list on the wire ({raw})")
        bad += [f"{at}: {p}" for p in problems]
        if examples and len(want) == 2 and kind not in shown:
            shown.add(kind)
            print(f"  e.g. {at} ({kind}):\n    {raw}")
    print(f"{len(calls)} calls, HTTP/{httpv}; protocol codec method, where the details are -> calls (details each):")
    for (p, codec, m, kind, n), k in sorted(seen.items()):
        print(f"  {k:3d} {p:8s} {codec:5s} {m:4s} {kind:26s} ({n} details)")
    for b in bad:
        print(b)
    if bad:
        sys.exit(1)
    print(f"every logged call's details found on the wire as logged ({len(calls)})")


if __name__ == "__main__":
    main(sys.argv)
