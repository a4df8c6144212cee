#!/usr/bin/env python3
"""gRPC calls made with curl (HTTP/2 prior knowledge), a client that sends grpc-timeout but never
enforces it: no RST_STREAM at the deadline, it waits for whatever the server sends. For
make_flow_captures.sh (leaks-idle: a grpc-go server answering after the deadline).

  curl_calls.py PORT CONN FIRST_ID LOG SPEC...
      One curl invocation (one TCP connection) per SPEC, one after the other, to
      127.0.0.1:PORT; SPEC is GRPC_TIMEOUT:SLEEP_MS (e.g. 100m:300), an Echo.Unary whose request
      asks the server to sleep SLEEP_MS before answering, with header grpc-timeout GRPC_TIMEOUT.
      Call ids FIRST_ID, FIRST_ID + 1, ... (x-call-id), connections CONN, CONN + 1, ... Appends
      one JSON line per call to LOG, read from curl -v --trace-time and -w '%{json}' (as
      h2c_curl.py does): start is when curl wrote the request headers, end when it had the
      trailers (curl's "left intact").
Needs ECHO_PB_DIR (the python stubs).
"""
import json, os, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import h2c_curl  # transfers, parse_transfer, frames, timeout_s, CODES

sys.path.insert(0, os.environ.get("ECHO_PB_DIR", "."))
import echo_pb2

PATH = "/grpctap.test.Echo/Unary"


def one(port, conn, cid, grpc_timeout, sleep_ms, d):
    msg = echo_pb2.EchoRequest(message=f"curl-{cid}", sleep_ms=sleep_ms, reply_size=8).SerializeToString()
    req = os.path.join(d, f"req-{cid}.bin")
    resp = os.path.join(d, f"resp-{cid}.bin")
    trace = os.path.join(d, f"conn-{conn}.curl.txt")
    with open(req, "wb") as f:
        f.write(b"\0" + len(msg).to_bytes(4, "big") + msg)
    t0 = float(subprocess.run(["date", "+%s.%N"], capture_output=True, text=True).stdout)
    with open(trace, "w") as err:
        w = subprocess.run(["curl", "-sS", "-v", "--trace-time", "--http2-prior-knowledge",
                            f"http://127.0.0.1:{port}{PATH}", "-H", "content-type: application/grpc",
                            "-H", "te: trailers", "-H", f"grpc-timeout: {grpc_timeout}", "-H", f"x-call-id: {cid}",
                            "--data-binary", "@" + req, "-o", resp, "-w", "%{json}\n"],
                           stdout=subprocess.PIPE, stderr=err, text=True)
    if w.returncode:
        sys.exit(f"curl_calls.py: call {cid}: curl failed\n" + open(trace).read())
    wout = json.loads(w.stdout)
    ts = h2c_curl.transfers(trace, t0)
    if len(ts) != 1:
        sys.exit(f"curl_calls.py: call {cid}: {len(ts)} transfers")
    lines = ts[0]
    t = h2c_curl.parse_transfer(lines)
    start = next(tm for tm, text in lines if text.startswith("> POST "))
    end = lines[-1][0]
    block, trailers_only = (t["trailers"], False) if "grpc-status" in t["trailers"] else (t["headers"], True)
    body = open(resp, "rb").read() if os.path.exists(resp) else b""
    return {
        "call_id": cid, "method": PATH, "status": h2c_curl.CODES[int(block["grpc-status"])],
        "message": block.get("grpc-message", ""), "req_msgs": 1, "resp_msgs": h2c_curl.frames(body, f"call {cid}"),
        "timeout_s": h2c_curl.timeout_s(t["req_headers"].get("grpc-timeout")), "cancelled": False,
        "client_peer": f"ipv4:127.0.0.1:{wout['local_port']}", "conn": conn, "stream": t["stream"],
        "trailers_only": trailers_only, "server_sleep_ms": sleep_ms, "client": "curl",
        "start": round(start, 6), "end": round(end, 6), "phase": "curl",
    }


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    port, conn, cid, log = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    with tempfile.TemporaryDirectory() as d, open(log, "a") as out:
        for spec in sys.argv[5:]:
            grpc_timeout, sleep_ms = spec.split(":")
            rec = one(port, conn, cid, grpc_timeout, int(sleep_ms), d)
            out.write(json.dumps(rec, sort_keys=True, separators=(",", ":")) + "\n")
            out.flush()
            conn, cid = conn + 1, cid + 1


if __name__ == "__main__":
    main()
