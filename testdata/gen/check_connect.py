#!/usr/bin/env python3
"""Checks a Connect / gRPC-Web / gRPC capture made by make_connect_captures.sh (or
make_sonora_capture.sh) against the client's log: every call of CALLS is found on the wire by its
x-call-id request header, and its HTTP method, :path, request content-type (application/proto,
application/json, application/connect+proto, application/connect+json,
application/grpc-web+proto, application/grpc-web-text, application/grpc), message counts each way
and final status agree with what the client logged.

HTTP/2 is read by tshark (headers after HPACK, DATA frame payloads, RST_STREAM); HTTP/1.1 from the
TCP streams as tshark reassembles them (-z follow,tcp,raw), parsed here (Content-Length and
chunked bodies, one request after another on a keep-alive connection). Bodies are unframed here:
Connect unary (the body is the message, Content-Encoding gzip; GET carries it in the query),
Connect streams (5-byte envelopes, flag 0x01 compressed with Connect-Content-Encoding, 0x02 the
end-of-stream JSON with the error), gRPC-Web (flag 0x80: the trailers as an HTTP/1 header block;
application/grpc-web-text, protocol `grpc-web-text`: the same frames in base64, a piece per frame
as sonora writes them) and gRPC (grpc-status in the trailers or a trailers-only response).

A call past its timeout may be ended by the server (connect-node answers DEADLINE_EXCEEDED itself)
or by the client (RST_STREAM, or on HTTP/1.1 the socket closed) first: the wire status of such a
call is `reset` when no status reached the wire, which agrees with a logged DEADLINE_EXCEEDED.
Prints a summary of content-types per protocol and codec and one line per disagreement; exits 1
if there is any. With --table F writes the per-call wire view as JSON lines to F.
Usage: check_connect.py CAPTURE PORT CALLS HTTP(2|1.1) [--table F]"""
import base64, gzip, json, subprocess, sys, tempfile, os, urllib.parse
from collections import Counter, OrderedDict

CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
         "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED",
         "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]
# Connect's error codes are the gRPC names in snake case ("canceled" with one l).
CONNECT_CODES = {("canceled" if n == "CANCELLED" else n.lower()): n for n in CODES}


def tshark(path, *args):
    return subprocess.run(["tshark", "-n", "-r", path, *args], check=True, capture_output=True, text=True).stdout


def multi(pairs):
    """json object_pairs_hook: tshark repeats keys; keep every value (a list when repeated)."""
    d = OrderedDict()
    for k, v in pairs:
        if k in d:
            if not isinstance(d[k], list) or k not in d.get("__lists__", ()):
                d[k] = [d[k]]
                d.setdefault("__lists__", set()).add(k)
            d[k].append(v)
        else:
            d[k] = v
    d.pop("__lists__", None)
    return d


def aslist(x):
    return x if isinstance(x, list) else [x]


def new_exchange(conn):
    return {"conn": conn, "req_headers": [], "resp_headers": [], "resp_trailers": [], "req_body": b"",
            "resp_body": b"", "reset": None, "closed": False}


def read_h2(path, port):
    """Each HTTP/2 stream: its request headers, response headers and trailers, bodies, reset."""
    pk = json.loads(tshark(path, "-d", f"tcp.port=={port},http2", "-Y", "http2", "-T", "json", "-J", "tcp http2"),
                    object_pairs_hook=multi)
    ex = {}
    for p in pk:
        layers = p["_source"]["layers"]
        t = layers["tcp"]
        to_server = t["tcp.dstport"] == str(port)
        conn = int(t["tcp.stream"])
        for h in aslist(layers.get("http2", [])):
            for s in aslist(h.get("http2.stream", [])):
                ty, sid = s.get("http2.type"), s.get("http2.streamid")
                if sid in (None, "0"):
                    continue
                e = ex.setdefault((conn, int(sid)), new_exchange(conn))
                if ty == "1":
                    hs = [(x["http2.header.name"], x["http2.header.value"]) for x in aslist(s.get("http2.header", []))]
                    if to_server:
                        e["req_headers"] += hs
                    elif not e["resp_headers"]:
                        e["resp_headers"] = hs
                    else:
                        e["resp_trailers"] += hs
                elif ty == "0":
                    data = bytes.fromhex(s.get("http2.data.data", "").replace(":", ""))
                    # On a stream's last DATA frame tshark shows the whole reassembled body:
                    # the frame's own payload is its tail (no padding here).
                    n = int(s.get("http2.length", "0"))
                    if s.get("http2.flags_tree", {}).get("http2.flags.padded") == "1":
                        n -= int(s.get("http2.pad_length", "0")) + 1
                    data = data[len(data) - n:] if n else b""
                    e["req_body" if to_server else "resp_body"] += data
                elif ty == "3":
                    e["reset"] = ("client" if to_server else "server") + ":" + s.get("http2.rst_stream.error", "?")
    return [e for _, e in sorted(ex.items())]


def follow(path, sid):
    text = tshark(path, "-q", "-z", f"follow,tcp,raw,{sid}")
    data = {0: bytearray(), 1: bytearray()}
    for line in text.splitlines():
        if line and not line.startswith(("=", "Follow", "Filter", "Node")):
            data[1 if line.startswith("\t") else 0] += bytes.fromhex(line.strip())
    return bytes(data[0]), bytes(data[1])


def h1_message(buf, pos, is_request):
    """One HTTP/1.1 message at buf[pos:]: (start line, headers, body, next pos); None when cut."""
    end = buf.find(b"\r\n\r\n", pos)
    if end < 0:
        return None
    lines = buf[pos:end].decode("latin-1").split("\r\n")
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.append((k.strip().lower(), v.strip()))
    h = dict(headers)
    pos = end + 4
    if "chunked" in h.get("transfer-encoding", ""):
        body = bytearray()
        while True:
            nl = buf.find(b"\r\n", pos)
            if nl < 0:
                return lines[0], headers, bytes(body), None
            size = int(buf[pos:nl].split(b";")[0], 16)
            pos = nl + 2
            if size == 0:
                # trailer fields (none here), then the empty line
                while True:
                    nl = buf.find(b"\r\n", pos)
                    if nl < 0:
                        return lines[0], headers, bytes(body), None
                    ln, pos = buf[pos:nl], nl + 2
                    if not ln:
                        return lines[0], headers, bytes(body), pos
                    k, _, v = ln.decode("latin-1").partition(":")
                    headers.append((k.strip().lower(), v.strip()))
            if pos + size > len(buf):
                return lines[0], headers, bytes(body + buf[pos:]), None
            body += buf[pos:pos + size]
            pos += size + 2
    n = int(h.get("content-length", "0"))
    if pos + n > len(buf):
        return lines[0], headers, buf[pos:], None
    return lines[0], headers, buf[pos:pos + n], pos + n


def read_h1(path, port):
    out = []
    for sid in sorted({int(x) for x in tshark(path, "-T", "fields", "-e", "tcp.stream").split() if x}):
        c2s, s2c = follow(path, sid)
        rp = sp = 0
        while rp is not None and rp < len(c2s):
            m = h1_message(c2s, rp, True)
            if m is None:
                break
            line, hs, body, rp = m
            method, target, _ = line.split(" ", 2)
            e = new_exchange(sid)
            e["req_headers"] = [(":method", method), (":path", target)] + hs
            e["req_body"] = body
            r = h1_message(s2c, sp, False) if sp is not None and sp < len(s2c) else None
            if r is None:
                e["closed"] = True
                sp = None
            else:
                rline, rhs, rbody, sp = r
                e["resp_headers"] = [(":status", rline.split(" ")[1])] + rhs
                e["resp_body"] = rbody
                if sp is None:
                    e["closed"] = True
            out.append(e)
    return out


def envelopes(body, decompress):
    """5-byte prefixed messages: [(flags, payload)]; a cut last one is left out."""
    out, pos = [], 0
    while pos + 5 <= len(body):
        flags, n = body[pos], int.from_bytes(body[pos + 1:pos + 5], "big")
        if pos + 5 + n > len(body):
            break
        payload = body[pos + 5:pos + 5 + n]
        if flags & 1 and decompress:
            payload = gzip.decompress(payload)
        out.append((flags, payload))
        pos += 5 + n
    return out


def unbase64(body):
    """A gRPC-Web text body: base64 pieces one after another, each padded (a server may encode
    every frame on its own), so decoded 4 characters at a time; a cut last quantum is left out."""
    body = b"".join(body.split())
    out = bytearray()
    for i in range(0, len(body) - len(body) % 4, 4):
        out += base64.b64decode(body[i:i + 4], validate=True)
    return bytes(out)


def first(hs, name):
    for k, v in hs:
        if k == name:
            return v
    return None


def wire_view(e):
    """What the wire says about one exchange: protocol, codec, messages each way, status, message."""
    rq, rs, tr = e["req_headers"], e["resp_headers"], e["resp_trailers"]
    ct = first(rq, "content-type")
    method, path = first(rq, ":method"), first(rq, ":path")
    url = urllib.parse.urlsplit(path)
    q = urllib.parse.parse_qs(url.query)
    v = {"conn": e["conn"], "call_id": int(first(rq, "x-call-id") or 0), "http_method": method, "path": url.path,
         "req_content_type": ct, "resp_status_http": first(rs, ":status"), "resp_content_type": first(rs, "content-type"),
         "timeout_header": first(rq, "connect-timeout-ms") or first(rq, "grpc-timeout"),
         "resp_encoding": first(rs, "content-encoding") or first(rs, "connect-content-encoding") or first(rs, "grpc-encoding"),
         "reset": e["reset"], "closed": e["closed"]}
    status = message = None
    if method == "GET":
        proto, codec = "connect", q.get("encoding", ["?"])[0]
        req_msgs = 1 if "message" in q else 0
    elif ct in ("application/proto", "application/json"):
        proto, codec, req_msgs = "connect", ct.split("/")[1], 1
    elif ct.startswith("application/connect+"):
        proto, codec = "connect", ct.split("+")[1]
        req_msgs = len(envelopes(e["req_body"], True))
    elif ct.startswith("application/grpc-web-text"):
        proto, codec = "grpc-web-text", ct.partition("+")[2] or "proto"
        req_msgs = len(envelopes(unbase64(e["req_body"]), True))
    elif ct.startswith("application/grpc-web"):
        proto, codec = "grpc-web", ct.partition("+")[2] or "proto"
        req_msgs = len(envelopes(e["req_body"], True))
    else:
        proto, codec = "grpc", ct.partition("+")[2] or "proto"
        req_msgs = len(envelopes(e["req_body"], True))
    v.update(protocol=proto, codec=codec, req_msgs=req_msgs)
    rct = v["resp_content_type"] or ""
    resp_msgs = 0
    if not rs:
        pass
    elif proto == "connect" and not rct.startswith("application/connect+"):
        body = e["resp_body"]
        if first(rs, "content-encoding") == "gzip" and body:
            body = gzip.decompress(body)
        if rs and first(rs, ":status") == "200":
            if not e["closed"] or first(rs, "content-length") is not None:
                status, message, resp_msgs = "OK", "", 1
        elif body:
            try:
                err = json.loads(body)
                status, message = CONNECT_CODES.get(err.get("code"), err.get("code")), err.get("message", "")
            except ValueError:
                status, message = f"http {first(rs, ':status')}", body.decode("utf-8", "replace")
        else:
            status, message = f"http {first(rs, ':status')}", ""
    elif proto == "connect":
        for flags, payload in envelopes(e["resp_body"], first(rs, "connect-content-encoding") == "gzip"):
            if flags & 2:
                end = json.loads(payload)
                err = end.get("error")
                status = CONNECT_CODES.get(err.get("code"), err.get("code")) if err else "OK"
                message = err.get("message", "") if err else ""
            else:
                resp_msgs += 1
    else:
        trailers = tr
        if first(rs, "grpc-status") is not None:  # trailers-only
            trailers = rs
        body = e["resp_body"]
        if rct.startswith("application/grpc-web-text"):
            body = unbase64(body)
        for flags, payload in envelopes(body, first(rs, "grpc-encoding") == "gzip"):
            if flags & 0x80:
                for ln in payload.decode("latin-1").split("\r\n"):
                    k, _, val = ln.partition(":")
                    if k:
                        trailers = trailers + [(k.strip().lower(), val.strip())]
            else:
                resp_msgs += 1
        if first(trailers, "grpc-status") is not None:
            code = int(first(trailers, "grpc-status"))
            status = CODES[code] if code < len(CODES) else str(code)
            message = urllib.parse.unquote(first(trailers, "grpc-message") or "", errors="replace")
        elif first(rs, ":status") not in (None, "200"):
            status, message = f"http {first(rs, ':status')}", ""
    v.update(resp_msgs=resp_msgs, status=status or "reset", message=message if message is not None else "")
    return v


def read_exchanges(path, port, httpv):
    """The exchanges of PORT in the capture at PATH (gzipped or not), by HTTP version."""
    tmp = None
    if path.endswith(".gz"):
        tmp = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False)
        tmp.write(gzip.open(path).read())
        tmp.close()
        path = tmp.name
    try:
        return read_h2(path, port) if httpv == "2" else read_h1(path, port)
    finally:
        if tmp:
            os.unlink(tmp.name)


def main(argv):
    path, port, calls_path, httpv = argv[1], int(argv[2]), argv[3], argv[4]
    table = argv[argv.index("--table") + 1] if "--table" in argv else None
    exchanges = read_exchanges(path, port, httpv)
    wire = {}
    for e in exchanges:
        if not e["req_headers"]:
            continue
        v = wire_view(e)
        if v["call_id"] in wire:
            print(f"call {v['call_id']}: twice on the wire")
        wire[v["call_id"]] = v
    calls = [json.loads(ln) for ln in open(calls_path)]
    bad = []
    for c in calls:
        v = wire.pop(c["call_id"], None)
        if v is None:
            bad.append(f"call {c['call_id']}: not on the wire")
            continue
        want = {"protocol": c["protocol"], "codec": c["codec"], "http_method": c["http_method"], "path": c["method"],
                "req_msgs": c["req_msgs"], "resp_msgs": c["resp_msgs"], "status": c["status"], "message": c["message"]}
        for k, w in want.items():
            got = v[k]
            if got == w:
                continue
            if c["status"] == "DEADLINE_EXCEEDED" and v["status"] == "reset" and k in ("status", "message"):
                continue  # the client gave up first: no status on the wire
            if c["status"] == "UNKNOWN" and c["message"].startswith("HTTP ") and v["status"] == "http " + c["message"][5:] and k in ("status", "message"):
                continue  # an HTTP error without a Connect / gRPC status (HTTP/1.1 Bidi: 505)
            if k == "req_msgs" and got < w and v["status"] not in ("OK",) and c["method"].endswith(("Bidi", "ClientStream")):
                continue  # the client had queued more than reached the wire before the call ended
            bad.append(f"call {c['call_id']} {c['protocol']}/{c['codec']} {c['method']}: {k} logged {w!r}, wire {got!r}")
    for cid in wire:
        bad.append(f"call {cid}: on the wire, not in the log")
    views = [wire_view(e) for e in exchanges if e["req_headers"]]
    kinds = Counter()
    for v in views:
        kinds[(v["protocol"], v["codec"], v["http_method"], v["req_content_type"] or "-", v["resp_content_type"] or "-")] += 1
    print(f"{len(calls)} calls, HTTP/{httpv}; request content-type -> response content-type:")
    for (p, codec, m, rq, rs), n in sorted(kinds.items()):
        print(f"  {n:3d} {p:8s} {codec:5s} {m:4s} {rq:28s} -> {rs}")
    statuses = Counter(v["status"] for v in views)
    print("  wire statuses: " + ", ".join(f"{k} {n}" for k, n in sorted(statuses.items())))
    if table:
        with open(table, "w") as f:
            for v in views:
                f.write(json.dumps(v, sort_keys=True) + "\n")
    for b in bad:
        print(b)
    if bad:
        sys.exit(1)
    print(f"every logged call found on the wire and agreeing with the log ({len(calls)})")


if __name__ == "__main__":
    main(sys.argv)
