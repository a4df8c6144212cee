#!/usr/bin/env python3
"""Helpers of make_h2c_capture.sh (gRPC made with curl over HTTP/2 reached by Upgrade: h2c).

  h2c_curl.py frame < MSG > REQ
      MSG (a serialized protobuf message, from protoc --encode) as one gRPC length-prefixed
      message: flag 0 (not compressed), 4-byte big-endian length, the message.
  h2c_curl.py calls DIR CONN... > NAME.calls.jsonl
      The client's own log of each connection CONN (0, 1, ...: one curl invocation each) turned
      into one JSON line per gRPC call. DIR holds, per connection, conn-CONN.t0 (the wall clock,
      Unix seconds, just before curl started), conn-CONN.curl.txt (curl -v --trace-time's
      stderr), conn-CONN.wout (one -w '%{json}' line per transfer); and per call resp-ID.bin (the
      response body curl wrote with -o) and req-ID.bin (the request body it sent), ID being the
      x-call-id request header. Transfers that are not gRPC (a plain GET) are not calls; they are
      listed on stderr.
  h2c_curl.py check CAPTURE PORT CALLS
      Reads CAPTURE with tshark (-d tcp.port==PORT,http) and checks it against CALLS: one TCP
      connection per curl connection, each with one HTTP/1.1 request asking for the upgrade and
      one "HTTP/1.1 101 Switching Protocols", then HTTP/2 with a HEADERS frame on every stream
      the log names; prints a short summary.
"""
import datetime, json, os, re, struct, subprocess, sys, urllib.parse

CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
         "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
         "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
         "UNAUTHENTICATED"]
UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}


def die(msg):
    sys.exit("h2c_curl.py: " + msg)


def frames(data, what):
    """The gRPC length-prefixed messages of a body: their count (the body must be whole)."""
    n, i = 0, 0
    while i < len(data):
        if len(data) - i < 5:
            die(f"{what}: {len(data) - i} bytes left, not a message prefix")
        flag, size = data[i], struct.unpack(">I", data[i + 1:i + 5])[0]
        if flag not in (0, 1) or i + 5 + size > len(data):
            die(f"{what}: bad message at {i} (flag {flag}, length {size}, body {len(data)})")
        n, i = n + 1, i + 5 + size
    return n


# ------------------------------------------------------------------ curl's verbose output

LINE = re.compile(r"^(\d\d):(\d\d):(\d\d)\.(\d{6}) (.*)$")
END = re.compile(r"^\* (Connection #\d+ to host .* left intact|Closing connection)")


def transfers(path, t0):
    """curl -v --trace-time's stderr, cut into transfers: lists of (unix time, text)."""
    midnight = datetime.datetime.fromtimestamp(t0).replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
    out, cur = [], []
    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            m = LINE.match(raw.rstrip("\r\n"))
            if not m:
                die(f"{path}: not a --trace-time line: {raw!r}")
            h, mi, s, us, text = int(m[1]), int(m[2]), int(m[3]), int(m[4]), m[5]
            t = midnight + h * 3600 + mi * 60 + s + us / 1e6
            if t < t0 - 60:  # past midnight
                t += 86400
            cur.append((t, text))
            if END.match(text):
                out.append(cur)
                cur = []
    if any(not text.startswith("*") for _, text in cur):
        die(f"{path}: output after the last transfer: {cur}")
    return out


def header(text):
    name, _, value = text.partition(":")
    return name.strip().lower(), value.strip()


def parse_transfer(lines):
    """One transfer as curl printed it: request line and headers, the response status lines,
    headers and trailers, the stream id, whether the connection was upgraded."""
    t = {"start": lines[0][0], "end": lines[-1][0], "req_headers": {}, "statuses": [],
         "headers": {}, "trailers": {}, "stream": None, "upgraded": False, "request": None}
    state = None  # req, resp (a header block), body (past the blank line: trailers)
    for _, text in lines:
        if text.startswith("> "):
            body = text[2:]
            if t["request"] is None:
                t["request"], state = body, "req"
            elif state == "req" and body:
                k, v = header(body)
                t["req_headers"][k] = v
            elif not body:
                state = None
        elif text.startswith("< ") or text == "<":
            body = text[2:]
            m = re.match(r"^HTTP/[\d.]+ (\d{3})", body)
            if m:
                t["statuses"].append(int(m[1]))
                state = "info" if m[1].startswith("1") else "resp"
            elif not body:
                if state == "resp":
                    state = "body"
            elif state == "resp":
                k, v = header(body)
                t["headers"].setdefault(k, v)
            elif state == "body":
                k, v = header(body)
                t["trailers"].setdefault(k, v)
        else:
            m = re.match(r"^\* Using Stream ID: (\d+)", text)
            if m:
                t["stream"] = int(m[1])
            if text.startswith("* Received 101, Switching to HTTP/2"):
                t["upgraded"] = True
    if t["upgraded"]:
        t["stream"] = 1  # RFC 7540 section 3.2: the upgrading request is answered on stream 1
    return t


def timeout_s(v):
    if v is None:
        return None
    m = re.fullmatch(r"(\d{1,8})([HMSmun])", v)
    if not m:
        die(f"bad grpc-timeout {v!r}")
    return round(int(m[1]) * UNITS[m[2]], 9)


def calls(d, conns):
    recs = []
    for conn in conns:
        base = os.path.join(d, f"conn-{conn}")
        t0 = float(open(base + ".t0").read())
        ts = transfers(base + ".curl.txt", t0)
        wout = [json.loads(l) for l in open(base + ".wout") if l.strip()]
        if len(ts) != len(wout):
            die(f"conn {conn}: {len(ts)} transfers in curl -v, {len(wout)} in -w")
        ports = {w["local_port"] for w in wout}
        if len(ports) != 1 or wout[0]["num_connects"] != 1 or any(w["num_connects"] for w in wout[1:]):
            die(f"conn {conn}: not one connection: ports {ports}, connects {[w['num_connects'] for w in wout]}")
        port = ports.pop()
        peer = f"ipv4:127.0.0.1:{port}"
        for i, (lines, w) in enumerate(zip(ts, wout)):
            t = parse_transfer(lines)
            method_s, path, version = t["request"].split(" ")
            if not w["url_effective"].endswith(path):
                die(f"conn {conn}: transfer {i}: {path} in -v, {w['url_effective']} in -w")
            final = [s for s in t["statuses"] if s >= 200]
            if len(final) != 1 or final[0] != w["response_code"]:
                die(f"conn {conn} {path}: statuses {t['statuses']}, -w {w['response_code']}")
            if t["upgraded"] != (i == 0) or (i == 0) != (version == "HTTP/1.1") or (i == 0) != ("upgrade" in t["req_headers"]):
                die(f"conn {conn} {path}: transfer {i}: {version}, upgraded {t['upgraded']}")
            desc = f"conn {conn} stream {t['stream']}: {method_s} {path} -> {final[0]}" + (" (upgraded)" if t["upgraded"] else "")
            if not t["req_headers"].get("content-type", "").startswith("application/grpc"):
                print(desc + ", not gRPC", file=sys.stderr)
                continue
            cid = int(t["req_headers"]["x-call-id"])
            body = open(os.path.join(d, f"resp-{cid}.bin"), "rb").read()
            if len(body) != w["size_download"]:
                die(f"call {cid}: {len(body)} bytes in the file, {w['size_download']} downloaded")
            req = open(os.path.join(d, f"req-{cid}.bin"), "rb").read()
            if len(req) != w["size_upload"]:
                die(f"call {cid}: {len(req)} bytes in the request file, {w['size_upload']} uploaded")
            if "grpc-status" in t["trailers"]:
                block, trailers_only = t["trailers"], False
            elif "grpc-status" in t["headers"]:
                block, trailers_only = t["headers"], True
            else:
                die(f"call {cid}: no grpc-status ({t['headers']}, {t['trailers']})")
            code = int(block["grpc-status"])
            # The server's view of the client (x-peer, Store; the reply's peer field, Echo).
            if "x-peer" in t["headers"] and t["headers"]["x-peer"] != peer:
                die(f"call {cid}: x-peer {t['headers']['x-peer']}, curl's port {port}")
            if "/grpctap.test.Echo/" in path and body and peer.encode() not in body:
                die(f"call {cid}: the reply does not name {peer}")
            recs.append({
                "call_id": cid, "method": path, "status": CODES[code],
                "message": urllib.parse.unquote(block.get("grpc-message", "")),
                "req_msgs": frames(req, f"call {cid} request"), "resp_msgs": frames(body, f"call {cid} response"),
                "http": "2", "protocol": "grpc", "http_method": method_s, "http_status": final[0],
                "conn": conn, "stream": t["stream"], "upgrade": t["upgraded"],
                "trailers_only": trailers_only, "timeout_s": timeout_s(t["req_headers"].get("grpc-timeout")),
                "cancelled": False, "client_peer": peer, "echo_tag": t["trailers"].get("x-echo-tag"),
                "start": round(t["start"], 6), "end": round(t["end"], 6),
            })
            print(desc + f", {path.rsplit('/', 1)[1]} {CODES[code]}, {recs[-1]['resp_msgs']} messages", file=sys.stderr)
    for r in recs:
        print(json.dumps(r, sort_keys=True, separators=(",", ":"), ensure_ascii=False))


# ------------------------------------------------------------------ the capture, by tshark

def check(capture, port, calls_path):
    recs = [json.loads(l) for l in open(calls_path)]
    fields = ["frame.number", "tcp.stream", "tcp.srcport", "http.request.method", "http.request.version",
              "http.upgrade", "http.response.code", "http2.streamid", "http2.type"]
    out = subprocess.run(["tshark", "-n", "-r", capture, "-d", f"tcp.port=={port},http", "-Y", "http or http2",
                          "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=;"] + sum([["-e", f] for f in fields], []),
                         check=True, capture_output=True, text=True).stdout
    conns = {}  # tcp.stream -> what it carried, in order
    for line in out.splitlines():
        v = dict(zip(fields, line.split("\t")))
        c = conns.setdefault(int(v["tcp.stream"]), {"client": None, "h1_requests": [], "h1_responses": [],
                                                   "h2_headers": {}, "h2_frames": 0, "first_h2": None})
        no = int(v["frame.number"])
        if v["http.request.method"]:
            c["client"] = int(v["tcp.srcport"])
            c["h1_requests"].append((no, v["http.request.method"], v["http.request.version"], v["http.upgrade"]))
        if v["http.response.code"]:
            c["h1_responses"].append((no, int(v["http.response.code"])))
        if v["http2.type"]:
            types = v["http2.type"].split(";")
            ids = v["http2.streamid"].split(";")
            c["h2_frames"] += len(types)
            c["first_h2"] = c["first_h2"] or no
            for ty, sid in zip(types, ids):
                if ty == "1":  # HEADERS
                    c["h2_headers"][int(sid)] = c["h2_headers"].get(int(sid), 0) + 1
    byport = {}
    for r in recs:
        byport.setdefault(int(r["client_peer"].rsplit(":", 1)[1]), []).append(r)
    if len(conns) != len({r["conn"] for r in recs}) or {c["client"] for c in conns.values()} != set(byport):
        die(f"{len(conns)} TCP connections in the capture, clients {[c['client'] for c in conns.values()]}; log: {sorted(byport)}")
    for sid, c in sorted(conns.items()):
        calls_here = byport[c["client"]]
        up = [x for x in c["h1_requests"] if x[3].lower() == "h2c"]
        if len(c["h1_requests"]) != 1 or len(up) != 1 or up[0][2] != "HTTP/1.1":
            die(f"tcp stream {sid}: HTTP/1.1 requests {c['h1_requests']}")
        if [x[1] for x in c["h1_responses"]] != [101]:
            die(f"tcp stream {sid}: HTTP/1.1 responses {c['h1_responses']}, not one 101")
        if not c["first_h2"] or c["first_h2"] < c["h1_responses"][0][0]:
            die(f"tcp stream {sid}: HTTP/2 before the 101")
        want = {r["stream"] for r in calls_here}
        if not want <= set(c["h2_headers"]):
            die(f"tcp stream {sid}: HEADERS on streams {sorted(c['h2_headers'])}, the log has {sorted(want)}")
        if c["h2_headers"].get(1) is None:
            die(f"tcp stream {sid}: no HTTP/2 response on stream 1")
        first = c["h1_requests"][0]
        print(f"  tcp stream {sid} (client port {c['client']}): {first[1]} {first[2]} Upgrade: h2c (frame {first[0]}), "
              f"101 Switching Protocols (frame {c['h1_responses'][0][0]}), then {c['h2_frames']} HTTP/2 frames; "
              f"HEADERS frames per stream {dict(sorted(c['h2_headers'].items()))}; gRPC calls on streams "
              + ", ".join(f"{r['stream']}:{r['method'].rsplit('/', 1)[1]}={r['status']}" for r in sorted(calls_here, key=lambda r: r["stream"])))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "frame":
        msg = sys.stdin.buffer.read()
        sys.stdout.buffer.write(b"\0" + struct.pack(">I", len(msg)) + msg)
    elif cmd == "calls" and len(sys.argv) > 3:
        calls(sys.argv[2], [int(c) for c in sys.argv[3:]])
    elif cmd == "check" and len(sys.argv) == 5:
        check(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    else:
        sys.exit(__doc__)
