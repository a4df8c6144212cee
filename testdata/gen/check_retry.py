#!/usr/bin/env python3
"""Checks a capture of make_retry_captures.sh against its ground truth with tshark, and prints
what both say: check_retry.py NAME CAPTURE PORT (NAME: retries, hedging, app-retries,
keepalive-pings, keepalive-ok; the logs are NAME.calls.jsonl, NAME.attempts.jsonl,
NAME.events.jsonl next to CAPTURE). Exits 1 on a disagreement.

Every HTTP/2 frame is read from `tshark -T json --no-duplicate-keys` (-d tcp.port==PORT,http2);
a gRPC stream is a (TCP stream, HTTP/2 stream id) the client opened with a HEADERS frame."""
import collections, json, os, subprocess, sys

def listify(x):
    return [] if x is None else x if isinstance(x, list) else [x]

def frames(path, port):
    out = subprocess.run(["tshark", "-n", "-r", path, "-d", f"tcp.port=={port},http2", "-Y", "http2",
                          "-T", "json", "--no-duplicate-keys"], check=True, capture_output=True, text=True).stdout
    for p in json.loads(out):
        l = p["_source"]["layers"]
        t = float(listify(l["frame"]["frame.time_epoch"])[0])
        tcp = l["tcp"]
        conn, from_client = int(listify(tcp["tcp.stream"])[0]), int(listify(tcp["tcp.srcport"])[0]) != port
        for h2 in listify(l.get("http2")):
            for f in listify(h2.get("http2.stream")):
                if "http2.type" not in f:
                    continue
                yield dict(t=t, conn=conn, from_client=from_client, type=int(f["http2.type"]),
                           sid=int(f["http2.streamid"]), flags=int(f["http2.flags"], 16), f=f,
                           headers=[(h.get("http2.header.name"), h.get("http2.header.value"))
                                    for h in listify(f.get("http2.header"))])

def hexbytes(s):
    return bytes.fromhex((s or "").replace(":", ""))

def grpc_streams(fr):
    """(conn, sid) -> request headers, response headers/trailers, client DATA, RST_STREAMs."""
    st = {}
    for x in fr:
        if x["sid"] == 0:
            continue
        k = (x["conn"], x["sid"])
        s = st.setdefault(k, dict(conn=x["conn"], sid=x["sid"], req={}, resp=[], data=b"", rst=[], start=x["t"], end=x["t"]))
        s["end"] = x["t"]
        if x["type"] == 1:
            (s["req"].update if x["from_client"] else s["resp"].append)(dict(x["headers"]) if x["from_client"] else dict(x["headers"]))
        elif x["type"] == 0 and x["from_client"]:
            s["data"] += hexbytes(x["f"].get("http2.data.data"))
        elif x["type"] == 3:
            s["rst"].append(("client" if x["from_client"] else "server", int(x["f"].get("http2.rst_stream.error", "-1"))))
    for s in st.values():
        s["status"] = next((int(h["grpc-status"]) for h in s["resp"] if "grpc-status" in h), None)
        s["call_id"] = s["req"].get("x-call-id")
        s["prev"] = s["req"].get("grpc-previous-rpc-attempts")
    return sorted(st.values(), key=lambda s: (s["start"], s["conn"], s["sid"]))

def read(path):
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []

CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS",
         "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
         "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"]
H2_ERRORS = {0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 8: "CANCEL", 11: "ENHANCE_YOUR_CALM"}

problems = []
def expect(ok, what):
    if not ok:
        problems.append(what)

def check_attempts(name, streams, calls, attempts, hedged):
    by_call = collections.defaultdict(list)
    for s in streams:
        by_call[s["call_id"]].append(s)
    att = collections.defaultdict(list)
    for a in attempts:
        att[a["call_id"]].append(a)
    expect(len(by_call) == len(calls), f"{len(by_call)} call ids on the wire, {len(calls)} calls logged")
    prev_headers = 0
    for c in calls:
        cid = str(c["call_id"])
        ws, sa = by_call.get(cid, []), sorted(att.get(cid, []), key=lambda a: a["attempt"])
        expect(len(ws) == len(sa), f"call {cid}: {len(ws)} streams on the wire, {len(sa)} attempts in the server log")
        for i, s in enumerate(ws):
            want = None if i == 0 else str(i)
            expect(s["prev"] == want, f"call {cid} stream {s['sid']}: grpc-previous-rpc-attempts {s['prev']!r}, want {want!r}")
            prev_headers += s["prev"] is not None
        for a in sa:
            expect(a["previous_rpc_attempts"] == (a["attempt"] - 1 or None),
                   f"call {cid} attempt {a['attempt']}: the server saw grpc-previous-rpc-attempts {a['previous_rpc_attempts']}")
        if not hedged:  # the answer is the last attempt's
            last = ws[-1] if ws else None
            if last and last["status"] is not None:
                expect(CODES[last["status"]] == c["status"], f"call {cid}: wire {CODES[last['status']]}, log {c['status']}")
            expect(c.get("attempts") == len(sa), f"call {cid}: the client's x-attempt {c.get('attempts')}, the server counted {len(sa)}")
    return by_call, att, prev_headers

def main(name, capture, port):
    base = os.path.join(os.path.dirname(capture), name)
    calls, attempts, events = read(base + ".calls.jsonl"), read(base + ".attempts.jsonl"), read(base + ".events.jsonl")
    fr = list(frames(capture, port))
    streams = grpc_streams(fr)
    conns = sorted({x["conn"] for x in fr})
    print(f"{name}: tshark: {len(conns)} TCP connection(s), {len(streams)} gRPC streams; "
          f"logs: {len(calls)} calls, {len(attempts)} server attempts, {len(events)} events")
    if name == "retries":
        by_call, att, prev_headers = check_attempts(name, streams, calls, attempts, False)
        retried = [c for c in calls if len(att[str(c["call_id"])]) > 1]
        print(f"  attempts {len(attempts)} (server) = {len(streams)} streams (tshark); retried calls {len(retried)}; "
              f"HEADERS with grpc-previous-rpc-attempts {prev_headers} (tshark) = {len(attempts) - len(calls)} retries (server)")
        print("  attempts per call:", dict(sorted(collections.Counter(len(v) for v in att.values()).items())),
              "final status:", dict(collections.Counter(c["status"] for c in calls)))
        for ph in (1, 2, 3):
            cs = [c for c in calls if c["phase"] == ph]
            r = [c for c in cs if len(att[str(c["call_id"])]) > 1]
            n = sum(len(att[str(c["call_id"])]) for c in cs)
            refused = sum(1 for c in cs for a in att[str(c["call_id"])] if a["status"] != "OK")
            print(f"  phase {ph}: {len(cs)} calls, {n} attempts, {refused} refused ({100 * refused / n:.0f} %), "
                  f"{len(r)} retried ({100 * len(r) / len(cs):.0f} %)")
        print("  retried per method:", dict(collections.Counter(c["method"].rsplit("/", 1)[1] for c in retried)),
              "of", dict(collections.Counter(c["method"].rsplit("/", 1)[1] for c in calls)))
    elif name == "hedging":
        by_call, att, prev_headers = check_attempts(name, streams, calls, attempts, True)
        cancelled_att = sum(1 for a in attempts if a["status"] in ("CANCELLED", "DEADLINE_EXCEEDED"))
        rst = [s for s in streams if ("client", 8) in s["rst"]]
        print(f"  attempts {len(attempts)} (server) = {len(streams)} streams (tshark); hedged calls (>1 attempt) "
              f"{sum(1 for v in att.values() if len(v) > 1)}; HEADERS with grpc-previous-rpc-attempts {prev_headers}; "
              f"attempts the server saw cancelled or past their deadline {cancelled_att}, streams the client reset with RST_STREAM(CANCEL) {len(rst)}, "
              f"trailers from the server then RST_STREAM(NO_ERROR) {sum(1 for s in streams if ('server', 0) in s['rst'])}")
        for kind in dict.fromkeys(c["kind"] for c in calls):
            cs = [c for c in calls if c["kind"] == kind]
            shapes = collections.Counter((c["status"], c["answered_by"], "/".join(a["status"] for a in sorted(att[str(c["call_id"])], key=lambda a: a["attempt"]))) for c in cs)
            print(f"  {kind} ({cs[0]['plan']}): " + "; ".join(f"{n}x {st} answered by {ab}, attempts {sh}" for (st, ab, sh), n in shapes.items()))
        gaps = collections.defaultdict(list)
        for c in calls:
            ws = by_call.get(str(c["call_id"]), [])
            for a, b in zip(ws, ws[1:]):
                gaps[c["kind"]].append(b["start"] - a["start"])
        print("  HEADERS of attempt n+1 after attempt n's (tshark), ms: " + "; ".join(
            f"{k} {min(v) * 1000:.0f}-{max(v) * 1000:.0f}" for k, v in gaps.items()))
        expect(len(rst) >= cancelled_att, f"{len(rst)} client resets, {cancelled_att} attempts cancelled")
    elif name == "app-retries":
        by_id = {str(s["call_id"]): s for s in streams}
        expect(len(by_id) == len(streams) == len(calls), f"{len(streams)} streams, {len(by_id)} call ids, {len(calls)} calls")
        expect(all(s["prev"] is None for s in streams), "grpc-previous-rpc-attempts on the wire")
        log = {str(c["call_id"]): c for c in calls}
        for cid, c in log.items():
            s = by_id.get(cid)
            expect(s is not None and s["status"] is not None and CODES[s["status"]] == c["status"], f"call {cid}: status")
            if c["retry_of"] is not None and s is not None:
                o = by_id[str(c["retry_of"])]
                expect(o["data"] == s["data"] and o["req"][":path"] == s["req"][":path"], f"call {cid}: not the bytes of {c['retry_of']}")
                expect(c["start"] - log[str(c["retry_of"])]["end"] < 0.15, f"call {cid}: retry late")
        retries = [c for c in calls if c["retry_of"] is not None]
        gaps = [s["start"] - by_id[str(log[cid]["retry_of"])]["end"] for cid, s in by_id.items() if log[cid]["retry_of"] is not None]
        srv = collections.Counter(a["status"] for a in attempts)
        print(f"  calls {len(calls)}: first tries {len(calls) - len(retries)}, retries {len(retries)} "
              f"(try 1/2/3: {[sum(1 for c in retries if c['try'] == t) for t in (1, 2, 3)]}), repeats on purpose "
              f"(repeat_of_op) {sum(1 for c in calls if c['repeat_of_op'] is not None)}; status {dict(collections.Counter(c['status'] for c in calls))}; "
              f"server {dict(srv)}; chains given up {sum(1 for c in calls if c['try'] == 3 and c['status'] != 'OK')}")
        print(f"  wire: no grpc-previous-rpc-attempts; a retry's DATA equals its original's on all {len(retries)}; "
              f"gap from the failed call's last frame to the retry's HEADERS {min(gaps) * 1000:.0f}-{max(gaps) * 1000:.0f} ms")
    else:  # keepalive
        goaways = [x for x in fr if x["type"] == 7]
        pings = [x for x in fr if x["type"] == 6]
        cping = [x for x in pings if x["from_client"] and not x["flags"] & 1]
        sack = [x for x in pings if not x["from_client"] and x["flags"] & 1]
        sping = [x for x in pings if not x["from_client"] and not x["flags"] & 1]
        cack = [x for x in pings if x["from_client"] and x["flags"] & 1]
        sent = [e for e in events if e["event"] == "ping_sent"]
        got = [e for e in events if e["event"] == "goaway_received"]
        print(f"  PING frames {len(pings)}: client {len(cping)} (acked by the server {len(sack)}), server {len(sping)} (acked {len(cack)}); "
              f"C-core logged {len(sent)} pings sent")
        expect(len(cping) == len(sent), f"{len(cping)} client PINGs on the wire, {len(sent)} logged")
        expect([hexbytes(x["f"]["http2.ping"]).hex() for x in cping] == [e["opaque"] for e in sent], "ping opaque data differ")
        for g in goaways:
            f = g["f"]
            err = int(f.get("http2.goaway.error", "-1"))
            dd = hexbytes(f.get("http2.goaway.addata")).decode(errors="replace") if "http2.goaway.addata" in f else ""
            print(f"  GOAWAY at {g['t']:.3f} from the {'client' if g['from_client'] else 'server'} on connection {g['conn']}: "
                  f"{H2_ERRORS.get(err, err)} ({err}), last stream {f.get('http2.goaway.last_stream_id')}, debug data {dd!r}")
        expect(len([g for g in goaways if not g["from_client"]]) == len(got), f"{len(goaways)} GOAWAYs on the wire, {len(got)} received (trace)")
        errs = [e for e in events if e["event"] == "call_error"]
        for e in errs:
            print(f"  call {e['call_id']} failed: {e['status']} {e['message']!r}")
        by_conn = collections.Counter(x["conn"] for x in cping)
        print(f"  client PINGs per connection: {dict(sorted(by_conn.items()))}; calls {len(calls)} "
              f"{dict(collections.Counter(c['status'] for c in calls))}; streams {len(streams)} "
              f"(with grpc-status {sum(1 for s in streams if s['status'] is not None)})")
        expect(len(streams) == len(calls), f"{len(streams)} streams, {len(calls)} calls")
        if name == "keepalive-ok":
            expect(not goaways and len(sack) == len(cping) and not errs, "keepalive-ok: a GOAWAY, an unanswered PING or an error")
    for p in problems[:20]:
        print("  PROBLEM:", p)
    if problems:
        sys.exit(1)

if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
