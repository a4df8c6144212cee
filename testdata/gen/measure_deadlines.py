#!/usr/bin/env python3
"""How early a client stack ends a call at its deadline, measured on the wire with tshark (not
with grpctap). For every call of a deadlines capture (full capture: tshark decodes HPACK from the
first frame), pairs the request HEADERS (x-call-id, grpc-timeout) with the first end of the
stream on the wire: the client's RST_STREAM or the server's trailers (grpc-status). For the calls
the client logged as DEADLINE_EXCEEDED, prints min/median/max of (end - request HEADERS) minus
the grpc-timeout on the wire, in ms; the same for client cancellations, also against the delay
the scenario cancels after (70 % of the timeout for Unary, 80 % for ServerStream).
Usage: measure_deadlines.py CAPTURE CALLS.jsonl [--json]"""
import gzip, json, os, statistics, subprocess, sys, tempfile

UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
CANCEL_FRACTION = {"/grpctap.test.Echo/Unary": 0.7, "/grpctap.test.Echo/ServerStream": 0.8}

def frames(path):
    """(time, tcp stream, src port, h2 frame dict) for every HTTP/2 frame."""
    tmp = None
    if path.endswith(".gz"):
        tmp = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False)
        tmp.write(gzip.open(path).read()); tmp.close()
        path = tmp.name
    ports = subprocess.run(["tshark", "-n", "-r", path, "-T", "fields", "-e", "tcp.dstport", "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0"],
                           check=True, capture_output=True, text=True).stdout.split()
    server_port = ports[0]
    out = subprocess.run(["tshark", "-n", "-r", path, "-d", f"tcp.port=={server_port},http2", "-Y", "http2",
                          "-T", "json", "--no-duplicate-keys", "-J", "frame tcp http2"],
                         check=True, capture_output=True, text=True).stdout
    if tmp:
        os.unlink(tmp.name)
    for pkt in json.loads(out):
        layers = pkt["_source"]["layers"]
        t = float(layers["frame"]["frame.time_epoch"])
        stream = layers["tcp"]["tcp.stream"]
        src = layers["tcp"]["tcp.srcport"]
        h2s = layers["http2"]
        for h2 in h2s if isinstance(h2s, list) else [h2s]:
            fs = h2["http2.stream"]
            for f in fs if isinstance(fs, list) else [fs]:
                yield t, stream, src == server_port, f

def headers(f):
    hs = f.get("http2.header", [])
    hs = hs if isinstance(hs, list) else [hs]
    return {h.get("http2.header.name"): h.get("http2.header.value") for h in hs}

def timeout_s(v):
    return int(v[:-1]) * UNITS[v[-1]]

def measure(capture, calls_path):
    streams = {}  # (tcp stream, h2 stream) -> facts
    for t, tcp, from_server, f in frames(capture):
        typ, sid = f.get("http2.type"), f.get("http2.streamid")
        if sid in (None, "0"):
            continue
        s = streams.setdefault((tcp, sid), {})
        if typ == "1":
            h = headers(f)
            if not from_server and "request" not in s:
                s["request"] = t
                s["call_id"] = h.get("x-call-id")
                s["timeout"] = timeout_s(h["grpc-timeout"]) if h.get("grpc-timeout") else None
                s["grpc_timeout"] = h.get("grpc-timeout")
            elif from_server and "grpc-status" in h and "trailers" not in s:
                s["trailers"], s["status"] = t, int(h["grpc-status"])
        elif typ == "3":
            key = "server_rst" if from_server else "client_rst"
            if key not in s:
                s[key], s[key + "_code"] = t, int(f.get("http2.rst_stream.error", -1))
    by_id = {s["call_id"]: s for s in streams.values() if s.get("call_id")}
    rows = []
    for line in open(calls_path):
        c = json.loads(line)
        s = by_id.get(str(c["call_id"]))
        if not s or s.get("timeout") is None:
            continue
        ends = [(s[k], k) for k in ("client_rst", "trailers") if k in s]
        if not ends:
            continue
        end, how = min(ends)
        rows.append(dict(call_id=c["call_id"], method=c["method"], status=c["status"], cancelled=c["cancelled"],
                         timeout_s=c["timeout_s"], grpc_timeout=s["grpc_timeout"], wire_timeout_s=s["timeout"], elapsed_s=end - s["request"],
                         end=how, rst_code=s.get("client_rst_code"), server_status=s.get("status")))
    return rows

def stats(xs):
    xs = sorted(xs)
    return {"n": len(xs), "min": round(xs[0], 2), "median": round(statistics.median(xs), 2), "max": round(xs[-1], 2)} if xs else {"n": 0}

def summary(rows):
    ms = lambda r: (r["elapsed_s"] - r["wire_timeout_s"]) * 1000
    # tonic's client reports its own deadline (grpc-timeout layer) as CANCELLED "Timeout expired".
    dl = [r for r in rows if not r["cancelled"] and r["status"] in ("DEADLINE_EXCEEDED", "CANCELLED")]
    by_rst = [r for r in dl if r["end"] == "client_rst"]
    by_server = [r for r in dl if r["end"] == "trailers" and r["server_status"] == 4]
    # A call the client failed at its deadline although the server's OK came first (the client's
    # timer ran from before the request left): not an end at the deadline, listed, not measured.
    odd = [r for r in dl if r not in by_rst and r not in by_server]
    first = by_rst + by_server
    cn = [r for r in rows if r["cancelled"] and r["status"] == "CANCELLED"]
    return {
        "deadline_first_end": stats([ms(r) for r in first]),
        "deadline_first_end_by_timeout": {str(t): stats([ms(r) for r in first if r["timeout_s"] == t])
                                          for t in sorted({r["timeout_s"] for r in first})},
        "deadline_client_rst": stats([ms(r) for r in by_rst]),
        "deadline_client_rst_codes": sorted({r["rst_code"] for r in by_rst}),
        "deadline_server_status_4": stats([ms(r) for r in by_server]),
        "deadline_other_first_end": [(r["call_id"], r["end"], r["server_status"], round(ms(r), 2)) for r in odd],
        "grpc_timeout_on_wire_min_max": {str(t): [min(v, key=timeout_s), max(v, key=timeout_s)] for t, v in sorted(
            {t: [r["grpc_timeout"] for r in rows if r["timeout_s"] == t] for t in {r["timeout_s"] for r in rows}}.items())},
        "wire_minus_configured_timeout_ms": stats([(r["wire_timeout_s"] - r["timeout_s"]) * 1000 for r in rows]),
        "cancelled_vs_wire_timeout": stats([ms(r) for r in cn]),
        "cancelled_vs_cancel_delay": stats([(r["elapsed_s"] - CANCEL_FRACTION[r["method"]] * r["timeout_s"]) * 1000 for r in cn]),
        "cancelled_rst_codes": sorted({r["rst_code"] for r in cn}),
        "other_calls": sorted({(r["status"], r["cancelled"]) for r in rows if r not in dl and r not in cn}),
    }

def main():
    rows = measure(sys.argv[1], sys.argv[2])
    s = summary(rows)
    if "--json" in sys.argv:
        json.dump({"rows": rows, "summary": s}, sys.stdout, indent=1)
        return
    print(os.path.basename(sys.argv[1]))
    for k, v in s.items():
        print(f"  {k}: {v}")

if __name__ == "__main__":
    main()
