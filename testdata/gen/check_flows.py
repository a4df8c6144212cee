#!/usr/bin/env python3
"""Reads the flow captures (make_flow_captures.sh) with tshark, not with grpctap, and checks them
against the clients' logs; prints what the wire shows. Exits non-zero when they disagree.

  check_flows.py slow-consumer CAPTURE PORT CALLS MESSAGES
      the client's SETTINGS_INITIAL_WINDOW_SIZE; the stream's DATA (bytes = the logged messages'
      wire sizes), the client's WINDOW_UPDATEs on it and on the connection; the server's stream
      send window replayed from them: how long it sat at 0, the stalls (gaps in DATA); the Unary
      calls made meanwhile.
  check_flows.py unbounded-window CAPTURE PORT CALLS
      the client's SETTINGS_INITIAL_WINDOW_SIZE and connection WINDOW_UPDATEs against the log's
      window; every WINDOW_UPDATE's size; the server's stream and connection send windows
      replayed (never 0); the ServerStream's DATA (bytes = the logged resp_wire_bytes), how fast
      the server sent it against how slowly the client read it; TCP zero windows.
  check_flows.py max-streams CAPTURE PORT CALLS
      the server's SETTINGS_MAX_CONCURRENT_STREAMS; the most streams open at once (from the
      client's HEADERS to the server's END_STREAM or a RST_STREAM); per wave, the time each call
      waited in the client (its HEADERS minus the logged start) and the calls that never left.
  check_flows.py leaks-idle CAPTURE PORT,PYPORT CALLS
      the streams still open when the capture ends against the log's OPEN calls; per method,
      requests with and without grpc-timeout, durations; for every call past its grpc-timeout,
      what each side sent after request + timeout and after the client's RST_STREAM.
  check_flows.py deadlines-nested CAPTURE PORT,UPPORT CALLS CHILDREN
      each call to the relay paired with the relay's call upstream by trace id (traceparent), their
      grpc-timeout and ends, against both logs.
  --json (last): the per-call rows as JSON too.
"""
import json, statistics, subprocess, sys

UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
FAIL = []


def fail(msg):
    FAIL.append(msg)
    print("  MISMATCH: " + msg)


def timeout_s(v):
    return None if v is None else int(v[:-1]) * UNITS[v[-1]]


def one_or_list(x):
    return x if isinstance(x, list) else [x]


def stats(xs, scale=1.0, nd=1):
    xs = sorted(x * scale for x in xs)
    if not xs:
        return "n=0"
    return f"n={len(xs)} min {xs[0]:.{nd}f} median {statistics.median(xs):.{nd}f} max {xs[-1]:.{nd}f}"


def frames(capture, ports):
    """Every HTTP/2 frame: dicts with t, tcp, from_server, server_port, client_port, type, sid,
    len, flags, headers (name -> first value), settings (id -> value), inc, rst."""
    args = ["tshark", "-n", "-r", capture]
    for p in ports:
        args += ["-d", f"tcp.port=={p},http2"]
    out = subprocess.run(args + ["-Y", "http2", "-T", "json", "--no-duplicate-keys", "-J", "frame tcp http2"],
                         check=True, capture_output=True, text=True).stdout
    last = 0.0
    for pkt in json.loads(out):
        L = pkt["_source"]["layers"]
        t = float(L["frame"]["frame.time_epoch"])
        last = max(last, t)
        sport, dport = int(L["tcp"]["tcp.srcport"]), int(L["tcp"]["tcp.dstport"])
        from_server = sport in ports
        for h2 in one_or_list(L["http2"]):
            for f in one_or_list(h2.get("http2.stream", [])):
                if "http2.type" not in f:
                    continue
                hs = {}
                for h in one_or_list(f.get("http2.header", [])):
                    hs.setdefault(h.get("http2.header.name"), h.get("http2.header.value"))
                st = {}
                for s in one_or_list(f.get("http2.settings", [])):
                    vals = [v for k, v in s.items() if k != "http2.settings.id"]
                    st[int(s["http2.settings.id"])] = int(vals[0]) if vals else None
                yield {"t": t, "tcp": int(L["tcp"]["tcp.stream"]), "from_server": from_server,
                       "server_port": sport if from_server else dport, "client_port": dport if from_server else sport,
                       "type": int(f["http2.type"]), "sid": int(f["http2.streamid"]), "len": int(f.get("http2.length", 0)),
                       "flags": int(f.get("http2.flags", "0"), 16), "headers": hs, "settings": st,
                       "inc": int(f.get("http2.window_update.window_size_increment", 0) or 0),
                       "rst": int(f["http2.rst_stream.error"]) if "http2.rst_stream.error" in f else None}
    frames.last = last


class Stream:
    def __init__(self, f):
        self.tcp, self.sid, self.server_port, self.client_port = f["tcp"], f["sid"], f["server_port"], f["client_port"]
        self.req_t = self.req_h = self.req_end_t = self.resp_t = self.trailers_t = self.status = None
        self.cli_rst = self.srv_rst = None  # (t, code)
        self.srv_data, self.cli_data, self.cli_wu, self.srv_frames = [], [], [], []

    @property
    def call_id(self):
        return int(self.req_h["x-call-id"]) if self.req_h and self.req_h.get("x-call-id") else None

    @property
    def timeout(self):
        return timeout_s(self.req_h.get("grpc-timeout")) if self.req_h else None

    @property
    def end(self):
        """The first end of the stream on the wire: trailers or a reset (None: still open)."""
        ends = [x for x in (self.trailers_t, self.cli_rst and self.cli_rst[0], self.srv_rst and self.srv_rst[0]) if x]
        return min(ends) if ends else None

    def how(self):
        e = self.end
        if e is None:
            return "open"
        if self.trailers_t == e:
            return f"trailers grpc-status {self.status}"
        if self.cli_rst and self.cli_rst[0] == e:
            return f"client RST_STREAM({self.cli_rst[1]})"
        return f"server RST_STREAM({self.srv_rst[1]})"


def streams(fs):
    """(streams by (tcp, sid), connection facts by tcp: settings each way, connection
    WINDOW_UPDATEs from the client, all DATA from the server)."""
    ss, conns = {}, {}
    for f in fs:
        c = conns.setdefault(f["tcp"], {"srv_settings": {}, "cli_settings": {}, "cli_wu": [], "srv_data": [],
                                        "client_port": f["client_port"], "server_port": f["server_port"], "pings": [0, 0]})
        if f["type"] == 6 and not f["flags"] & 1:
            c["pings"][f["from_server"]] += 1
        if f["type"] == 4 and not f["flags"] & 1:
            c["srv_settings" if f["from_server"] else "cli_settings"].update(f["settings"])
        if f["type"] == 8 and f["sid"] == 0 and not f["from_server"]:
            c["cli_wu"].append((f["t"], f["inc"]))
        if f["type"] == 0 and f["from_server"]:
            c["srv_data"].append((f["t"], f["len"]))
        if f["sid"] == 0:
            continue
        s = ss.get((f["tcp"], f["sid"]))
        if s is None:
            s = ss[(f["tcp"], f["sid"])] = Stream(f)
        end_stream = f["type"] in (0, 1) and f["flags"] & 1
        if f["from_server"]:
            if f["type"] in (0, 1):
                s.srv_frames.append((f["t"], f["type"], f["len"], bool(end_stream)))
            if f["type"] == 1:
                if s.resp_t is None:
                    s.resp_t = f["t"]
                if "grpc-status" in f["headers"] and s.trailers_t is None:
                    s.trailers_t, s.status = f["t"], int(f["headers"]["grpc-status"])
            elif f["type"] == 0:
                s.srv_data.append((f["t"], f["len"]))
            elif f["type"] == 3 and s.srv_rst is None:
                s.srv_rst = (f["t"], f["rst"])
        else:
            if f["type"] == 1 and s.req_t is None:
                s.req_t, s.req_h = f["t"], f["headers"]
            elif f["type"] == 0:
                s.cli_data.append((f["t"], f["len"]))
            elif f["type"] == 8:
                s.cli_wu.append((f["t"], f["inc"]))
            elif f["type"] == 3 and s.cli_rst is None:
                s.cli_rst = (f["t"], f["rst"])
            if end_stream and s.req_end_t is None:
                s.req_end_t = f["t"]
    return ss, conns


def read(capture, ports):
    ss, conns = streams(frames(capture, ports))
    return ss, conns, frames.last


def log(path):
    return [json.loads(l) for l in open(path)]


def by_call_id(ss):
    out = {}
    for s in ss.values():
        if s.call_id is not None:
            out.setdefault(s.call_id, s)
    return out


# ------------------------------------------------------------------ slow-consumer

def window_replay(init, data, wu, t0, t1):
    """The send window from data [(t, len)] and updates [(t, inc)]: (time at 0 within [t0, t1],
    lowest value, [(t, window)])."""
    ev = sorted([(t, -n) for t, n in data] + [(t, n) for t, n in wu])
    w, low, at_zero, since, trace = init, init, 0.0, None, []
    for t, d in ev:
        w += d
        low = min(low, w)
        trace.append((t, w))
        if w <= 0 and since is None:
            since = t
        elif w > 0 and since is not None:
            at_zero += t - since
            since = None
    if since is not None:
        at_zero += t1 - since
    return at_zero, low, trace


def slow_consumer(capture, port, calls_path, messages_path):
    ss, conns, _ = read(capture, [port])
    calls, msgs = log(calls_path), log(messages_path)
    byid = by_call_id(ss)
    (tcp, c), = conns.items()
    # grpc-go sends INITIAL_WINDOW_SIZE only when it is not HTTP/2's default, 65535; its
    # connection WINDOW_UPDATE on top of 65535 only when the connection window is larger.
    iws = c["cli_settings"].get(4, 65535)
    first_cwu = c["cli_wu"][0][0] if c["cli_wu"] else None
    first_data = min((t for t, _ in c["srv_data"]), default=None)
    print(f"  client SETTINGS: {c['cli_settings'] or 'empty'} (no INITIAL_WINDOW_SIZE: the default 65535), "
          f"server SETTINGS: {c['srv_settings']}; stream window {iws}, connection window 65535"
          f"{'' if first_cwu is None or first_cwu > first_data else ' + an early connection WINDOW_UPDATE'}; "
          f"PINGs (not ACKs) from the client {c['pings'][0]}, from the server {c['pings'][1]}")
    if iws != 65535 or (first_cwu is not None and first_cwu < first_data):
        fail(f"client INITIAL_WINDOW_SIZE {iws}, connection WINDOW_UPDATE before any DATA")
    stream_call = next(r for r in calls if r["method"].endswith("/ServerStream"))
    s = byid[stream_call["call_id"]]
    total = sum(n for _, n in s.srv_data)
    logged = sum(m["wire_size"] for m in msgs)
    print(f"  the ServerStream (call {stream_call['call_id']}, stream {s.sid}): logged {stream_call['status']}, "
          f"{stream_call['resp_msgs']} messages, {len(msgs)} in the messages log, {logged} bytes with prefixes "
          f"({min(m['size'] for m in msgs)}-{max(m['size'] for m in msgs)} bytes each); on the wire "
          f"{len(s.srv_data)} DATA frames, {total} bytes, {s.how()}, {s.end - s.req_t:.2f} s")
    if total != logged or len(msgs) != stream_call["resp_msgs"]:
        fail(f"DATA {total} bytes, messages {logged}")
    gaps = [(b["time"] - a["time"]) for a, b in zip(msgs, msgs[1:])]
    print(f"  the client's Recv intervals, ms: {stats(gaps, 1000)}")
    wu = s.cli_wu
    print(f"  client WINDOW_UPDATEs on the stream: {len(wu)}, increments {stats([n for _, n in wu], 1, 0)}, "
          f"intervals ms {stats([b[0] - a[0] for a, b in zip(wu, wu[1:])], 1000)}")
    print(f"  client WINDOW_UPDATEs on the connection: {len(c['cli_wu'])}, increments {stats([n for _, n in c['cli_wu']], 1, 0)}")
    end = s.end
    zero, low, trace = window_replay(iws, s.srv_data, wu, s.req_t, end)
    life = end - s.req_t
    print(f"  the server's stream send window (65535 + updates - DATA): lowest {low}, at 0 for {zero:.3f} s "
          f"of the stream's {life:.3f} s on the wire ({100 * zero / life:.1f} %); the trailers came "
          f"{stream_call['end'] - end:.2f} s before the client's logged end (its last replies were in its window)")
    czero, clow, _ = window_replay(65535, c["srv_data"], c["cli_wu"], s.req_t, end)
    print(f"  the connection send window: lowest {clow}, at 0 for {czero:.2f} s")
    # Stalls: gaps of more than 50 ms between the server's DATA frames of the stream.
    d = s.srv_data
    stalls = [(a[0], b[0] - a[0]) for a, b in zip(d, d[1:]) if b[0] - a[0] > 0.05]
    # the window just after the DATA frame each stall begins with
    w_at = dict(trace)
    zero_stalls = sum(1 for t, _ in stalls if w_at.get(t, 1) == 0)
    print(f"  DATA stalls (gaps > 50 ms): {len(stalls)}, ms {stats([g for _, g in stalls], 1000)}; "
          f"{zero_stalls} begin at a zero window; bursts between stalls: {len(stalls) + 1}")
    if low != 0 or zero < 0.8 * life or len(stalls) < 40:
        fail(f"the stream did not sit at a zero window (lowest {low}, {zero:.2f} s, {len(stalls)} stalls)")
    unary = [r for r in calls if r["method"].endswith("/Unary")]
    lat = [byid[r["call_id"]].end - byid[r["call_id"]].req_t for r in unary]
    print(f"  Unary calls on the same connection: {len(unary)} ({sum(r['status'] == 'OK' for r in unary)} OK), "
          f"request HEADERS to trailers ms {stats(lat, 1000)}")


# ------------------------------------------------------------------ unbounded-window

def unbounded_window(capture, port, calls_path):
    ss, conns, _ = read(capture, [port])
    calls = log(calls_path)
    byid = by_call_id(ss)
    (tcp, c), = conns.items()
    win = calls[0]["window"]
    if any(r.get("window") != win for r in calls):
        fail("rows with different windows")
    iws = c["cli_settings"].get(4, 65535)
    first_data = min(t for t, _ in c["srv_data"])
    early = [n for t, n in c["cli_wu"] if t < first_data]
    conn_w = 65535 + sum(early)
    print(f"  logged window: {win}; client SETTINGS: {c['cli_settings']} (4 = INITIAL_WINDOW_SIZE), "
          f"server SETTINGS: {c['srv_settings']}; PINGs (not ACKs) from the client {c['pings'][0]}, "
          f"from the server {c['pings'][1]}")
    print(f"  client connection WINDOW_UPDATEs before the server's first DATA: {early} -> connection window "
          f"65535 + {sum(early)} = {conn_w}")
    if iws != win["stream"] or iws < 1 << 30:
        fail(f"client INITIAL_WINDOW_SIZE {iws}, logged {win['stream']}")
    if conn_w != win["conn"] or conn_w < 1 << 30:
        fail(f"connection window {conn_w}, logged {win['conn']}")
    later = [n for t, n in c["cli_wu"] if t >= first_data]
    swu = [(s.sid, n) for s in ss.values() for _, n in s.cli_wu]
    print(f"  client WINDOW_UPDATEs after that: connection {len(later)} {later}, streams {len(swu)} {swu}")
    stream_call = next(r for r in calls if r["method"].endswith("/ServerStream"))
    s = byid[stream_call["call_id"]]
    total = sum(n for _, n in s.srv_data)
    d = [t for t, _ in s.srv_data]
    print(f"  the ServerStream (call {stream_call['call_id']}, stream {s.sid}): logged {stream_call['status']}, "
          f"{stream_call['resp_msgs']} messages, {stream_call['resp_wire_bytes']} bytes with prefixes; on the wire "
          f"{len(s.srv_data)} DATA frames ({stats([n for _, n in s.srv_data], 1, 0)} bytes), {total} bytes, {s.how()}")
    if total != stream_call["resp_wire_bytes"] or stream_call["status"] != "OK":
        fail(f"DATA {total} bytes, logged {stream_call['resp_wire_bytes']} ({stream_call['status']})")
    gaps = [b - a for a, b in zip(d, d[1:])]
    stalls = [g for g in gaps if g > 0.05]
    print(f"  the server sent it in {1000 * (d[-1] - d[0]):.1f} ms (request HEADERS to first DATA "
          f"{1000 * (d[0] - s.req_t):.2f} ms, to trailers {1000 * (s.trailers_t - s.req_t):.1f} ms); gaps between "
          f"its DATA frames ms {stats(gaps, 1000, 2)}, {len(stalls)} over 50 ms")
    print(f"  the client read it in {stream_call['last_msg'] - stream_call['first_msg']:.3f} s (first Recv "
          f"{1000 * (stream_call['first_msg'] - s.req_t):.1f} ms after the request HEADERS, last "
          f"{stream_call['last_msg'] - s.trailers_t:.3f} s after the trailers were on the wire; logged end "
          f"{stream_call['end'] - s.trailers_t:.3f} s after them)")
    low_s = {}
    for x in ss.values():
        if x.srv_data:
            zero, low, _ = window_replay(iws, x.srv_data, x.cli_wu, x.req_t, x.end)
            low_s[x.sid] = (low, zero)
    # the connection window from the server's first DATA on (65535 + the early updates before)
    czero, clow, _ = window_replay(conn_w, c["srv_data"], [(t, n) for t, n in c["cli_wu"] if t >= first_data],
                                   s.req_t, s.end)
    low, zero = low_s[s.sid]
    print(f"  the server's send windows replayed: the ServerStream's lowest {low} ({iws} - {iws - low}), "
          f"at 0 for {zero:.3f} s; the connection's lowest {clow} ({conn_w} - {conn_w - clow}), at 0 for {czero:.3f} s; "
          f"every stream's lowest {sorted(low_s.items())}")
    if min(l for l, _ in low_s.values()) <= 0 or clow <= 0:
        fail(f"a zero window (streams {low_s}, connection {clow})")
    # TCP, below HTTP/2: the client kernel's receive buffer may fill for a moment while the
    # server writes megabytes in milliseconds (reported, not a mismatch: HTTP/2 never pushed back).
    out = subprocess.run(["tshark", "-n", "-r", capture, "-T", "fields", "-e", "frame.time_epoch", "-e", "tcp.srcport",
                          "-e", "tcp.len", "-e", "tcp.window_size", "-e", "tcp.analysis.zero_window",
                          "-e", "tcp.analysis.window_full"], check=True, capture_output=True, text=True).stdout
    zw, full, since = [], 0, None
    for line in out.splitlines():
        t, sport, n, w, z, f = (line.split("\t") + [""] * 6)[:6]
        if int(sport) == port:
            full += bool(f)
            continue
        if z and since is None:
            since = float(t)
        elif since is not None and w and int(w) > 0:
            zw.append(float(t) - since)
            since = None
    print(f"  TCP: the client's kernel advertised a zero receive window {len(zw) + (since is not None)} times, "
          f"for ms {stats(zw, 1000, 3)}; server segments that filled the client's TCP window: {full} "
          f"(HTTP/2 flow control not involved)")
    unary = [r for r in calls if r["method"].endswith("/Unary")]
    lat = [byid[r["call_id"]].end - byid[r["call_id"]].req_t for r in unary]
    print(f"  Unary calls on the same connection: {len(unary)} ({sum(r['status'] == 'OK' for r in unary)} OK), "
          f"request HEADERS to trailers ms {stats(lat, 1000)}")
    return [{"call_id": r["call_id"], "method": r["method"], "status": r["status"], "window": r["window"],
             "sid": byid[r["call_id"]].sid, "server_lowest_stream_window": low_s.get(byid[r["call_id"]].sid, (None,))[0]}
            for r in calls]


# ------------------------------------------------------------------ max-streams

def max_streams(capture, port, calls_path):
    ss, conns, _ = read(capture, [port])
    calls = log(calls_path)
    byid = by_call_id(ss)
    (tcp, c), = conns.items()
    mcs = c["srv_settings"].get(3)
    print(f"  server SETTINGS: {c['srv_settings']} (3 = MAX_CONCURRENT_STREAMS); client SETTINGS: {c['cli_settings']}")
    if mcs != 2:
        fail(f"MAX_CONCURRENT_STREAMS {mcs}")
    ev = []
    for s in ss.values():
        if s.req_t is not None:
            ev.append((s.req_t, 1, s.sid))
            if s.end is not None:
                ev.append((s.end, -1, s.sid))
    ev.sort(key=lambda e: (e[0], e[1]))
    n = most = 0
    at_most = 0.0
    for (t, d, _), nxt in zip(ev, ev[1:] + [None]):
        n += d
        most = max(most, n)
        if n == 2 and nxt:
            at_most += nxt[0] - t
    refused = [s.sid for s in ss.values() if s.srv_rst and s.srv_rst[1] == 7]
    print(f"  streams on the wire: {len([s for s in ss.values() if s.req_t])}, at most {most} open at once "
          f"(2 open for {at_most:.2f} s), REFUSED_STREAM resets: {len(refused)}")
    if most > 2 or refused:
        fail(f"{most} streams open at once, refused {refused}")
    rows = []
    for phase in ["warmup", "burst", "staggered", "deadline"]:
        rs = [r for r in calls if r.get("phase") == phase]
        sent = [r for r in rs if r["call_id"] in byid]
        wait = [byid[r["call_id"]].req_t - r["start"] for r in sent]
        wire = [byid[r["call_id"]].end - byid[r["call_id"]].req_t for r in sent]
        total = [r["end"] - r["start"] for r in rs]
        statuses = {}
        for r in rs:
            statuses[r["status"]] = statuses.get(r["status"], 0) + 1
        print(f"  {phase}: {len(rs)} calls {statuses}, {len(sent)} on the wire; waited in the client ms "
              f"{stats(wait, 1000)}; on the wire ms {stats(wire, 1000)}; issued to end ms {stats(total, 1000)}")
        for r in rs:
            s = byid.get(r["call_id"])
            row = {"call_id": r["call_id"], "phase": phase, "status": r["status"], "start": r["start"], "end": r["end"],
                   "on_wire": s is not None}
            if s:
                row.update(headers_t=s.req_t, wire_end=s.end, how=s.how(), grpc_timeout=s.req_h.get("grpc-timeout"))
                if r["timeout_s"]:
                    row["budget_left_at_headers_s"] = r["start"] + r["timeout_s"] - s.req_t
            rows.append(row)
        if phase == "deadline":
            late = [x for x in rows if x["phase"] == phase and x["status"] == "DEADLINE_EXCEEDED"]
            on = [x for x in late if x["on_wire"]]
            print(f"    DEADLINE_EXCEEDED: {len(late)}, {len(on)} of them on the wire ({sorted({x['how'] for x in on})}), "
                  f"{len(late) - len(on)} expired while queued (never on the wire)")
            sent_rows = [x for x in rows if x["phase"] == phase and x["on_wire"]]
            print("    grpc-timeout on the wire vs the budget left when the HEADERS left, ms: " + ", ".join(
                f"{timeout_s(x['grpc_timeout']) * 1000:.0f}/{x['budget_left_at_headers_s'] * 1000:.0f}" for x in sorted(sent_rows, key=lambda x: x["headers_t"])))
    return rows


# ------------------------------------------------------------------ leaks-idle

def leaks_idle(capture, ports, calls_path):
    ss, conns, last = read(capture, ports)
    calls = log(calls_path)
    byid = by_call_id(ss)
    logged_open = {r["call_id"] for r in calls if r["status"] == "OPEN"}
    wire_open = {s.call_id for s in ss.values() if s.req_t and s.end is None}
    print(f"  capture: {len(conns)} TCP connections, {len([s for s in ss.values() if s.req_t])} calls; last packet {last:.3f}")
    print(f"  open at the end on the wire: {sorted(wire_open)}; logged OPEN: {sorted(logged_open)}")
    if wire_open != logged_open:
        fail("open streams differ")
    for cid in sorted(wire_open):
        s = byid[cid]
        lastf = max([t for t, *_ in s.srv_frames] + [t for t, _ in s.cli_data] + [s.req_t])
        print(f"    {cid} {s.req_h.get(':path')}: opened {s.req_t:.3f}, last frame {lastf:.3f}, "
              f"open {last - s.req_t:.1f} s, idle {last - lastf:.1f} s; client DATA frames {len(s.cli_data)}, "
              f"server DATA {len(s.srv_data)}, client END_STREAM {s.req_end_t is not None}")
    print("  per method (on the wire): requests, with grpc-timeout, duration ms of the ended ones; open ones")
    methods = sorted({s.req_h.get(":path") for s in ss.values() if s.req_h})
    for m in methods:
        ms = [s for s in ss.values() if s.req_h and s.req_h.get(":path") == m]
        with_to = [s for s in ms if s.timeout is not None]
        ended = [s.end - s.req_t for s in ms if s.end]
        print(f"    {m}: {len(ms)}, {len(with_to)} with grpc-timeout, {stats(ended, 1000)}; "
              f"{len([s for s in ms if s.end is None])} open")
        lm = [r for r in calls if r["method"] == m and r["status"] != "OPEN"]
        lt = [r for r in lm if r["timeout_s"] is not None]
        if len(lm) != len([s for s in ms if s.end]) or len(lt) != len(with_to):
            fail(f"{m}: log {len(lm)} ended, {len(lt)} with timeout")
    # Calls past their grpc-timeout: what went out after request + timeout, and after the RST.
    print("  calls past their grpc-timeout (request HEADERS + grpc-timeout = the deadline):")
    rows = []
    for s in sorted(ss.values(), key=lambda s: s.req_t or 0):
        if not s.req_h or s.timeout is None or not s.end:
            continue
        dl = s.req_t + s.timeout
        srv = s.srv_frames
        last_srv = max([t for t, *_ in srv], default=None)
        if s.end < dl and (last_srv is None or last_srv < dl):
            continue  # on time
        r = next((r for r in calls if r["call_id"] == s.call_id), {})
        agent = s.req_h.get("user-agent", "").split()[0].split("/")[0]
        server = "grpc-go" if s.server_port == ports[0] else "python"
        after_dl = [(t - dl, ty, n, es) for t, ty, n, es in srv if t >= dl]
        # frames the server sent after the client's RST_STREAM had reached the wire (crossed it)
        after_rst = [x for x in srv if s.cli_rst and x[0] > s.cli_rst[0]]
        if s.srv_rst and s.cli_rst and s.srv_rst[0] > s.cli_rst[0]:
            after_rst.append((s.srv_rst[0], 3, 4, False))
        row = {"call_id": s.call_id, "client": agent, "server": server, "grpc_timeout": s.req_h.get("grpc-timeout"),
               "logged": r.get("status"), "end": s.how(), "end_after_deadline_ms": round((s.end - dl) * 1000, 2),
               "client_rst_after_deadline_ms": round((s.cli_rst[0] - dl) * 1000, 2) if s.cli_rst else None,
               "server_frames_after_deadline": [f"{['DATA', 'HEADERS'][ty]}{'+ES' if es else ''}@+{d * 1000:.1f}ms" for d, ty, n, es in after_dl]
               + ([f"RST_STREAM({s.srv_rst[1]})@+{(s.srv_rst[0] - dl) * 1000:.1f}ms"] if s.srv_rst and s.srv_rst[0] >= dl else []),
               "server_frames_after_client_rst": len(after_rst), "status_on_wire": s.status}
        rows.append(row)
        rst = "none" if s.cli_rst is None else f"{row['client_rst_after_deadline_ms']:+.1f} ms"
        print(f"    {row['call_id']} {agent} -> {server}: grpc-timeout {row['grpc_timeout']}, logged {row['logged']}; "
              f"first end {row['end']} at deadline {row['end_after_deadline_ms']:+.1f} ms; client RST {rst}; "
              f"server after the deadline: {', '.join(row['server_frames_after_deadline']) or 'nothing'}; "
              f"after the client's RST: {len(after_rst)} frames")
    for k in sorted({(r["client"], r["server"]) for r in rows}):
        rs = [r for r in rows if (r["client"], r["server"]) == k]
        print(f"    {k[0]} -> {k[1]}: {len(rs)} late calls, ended by {sorted({r['end'] for r in rs})}, "
              f"{sum(1 for r in rs if r['server_frames_after_deadline'])} with server frames after the deadline, "
              f"{sum(1 for r in rs if r['server_frames_after_client_rst'])} with server frames after the client's RST_STREAM")
    # The log agrees: every late grpc-go call DEADLINE_EXCEEDED, curl's as the server answered.
    for r in rows:
        want = "DEADLINE_EXCEEDED" if r["client"] != "curl" or r["status_on_wire"] == 4 else "OK"
        if r["logged"] != want:
            fail(f"call {r['call_id']}: logged {r['logged']}, the wire says {want}")
    return rows


# ------------------------------------------------------------------ deadlines-nested

def nested(capture, ports, calls_path, children_path):
    ss, conns, _ = read(capture, ports)
    calls, children = log(calls_path), log(children_path)
    port, upport = ports
    def tp(s):
        v = s.req_h.get("traceparent", "")
        p = v.split("-")
        return (p[1], p[2]) if len(p) == 4 else (None, None)
    parents = {tp(s)[0]: s for s in ss.values() if s.req_h and s.server_port == port}
    kids = {tp(s)[0]: s for s in ss.values() if s.req_h and s.server_port == upport}
    print(f"  {len(conns)} TCP connections; {len(parents)} calls to the relay, {len(kids)} upstream; "
          f"{len(set(parents) & set(kids))} trace ids on both")
    rows = []
    for r in calls:
        p = parents.get(r["trace_id"])
        ch = next((c for c in children if c["parent_call_id"] == r["call_id"]), None)
        k = kids.get(r["trace_id"])
        if p is None or ch is None or k is None:
            fail(f"call {r['call_id']}: parent on wire {p is not None}, child logged {ch is not None}, on wire {k is not None}")
            continue
        ptrace, pspan = tp(p)
        ktrace, kspan = tp(k)
        if (ptrace, pspan) != (r["trace_id"], r["span_id"]) or (ktrace, kspan) != (ch["trace_id"], ch["span_id"]) \
                or ch["parent_span_id"] != r["span_id"] or kspan == pspan or k.call_id != ch["call_id"]:
            fail(f"call {r['call_id']}: traceparent {p.req_h.get('traceparent')} / {k.req_h.get('traceparent')} vs logs")
        if (k.timeout is None) != (ch["timeout_s"] is None):
            fail(f"child {ch['call_id']}: grpc-timeout {k.req_h.get('grpc-timeout')}, logged {ch['timeout_s']}")
        row = {"call_id": r["call_id"], "mode": r["mode"], "upstream_sleep_ms": r["upstream_sleep_ms"],
               "status": r["status"], "child_call_id": ch["call_id"], "child_status": ch["status"],
               "grpc_timeout": p.req_h.get("grpc-timeout"), "child_grpc_timeout": k.req_h.get("grpc-timeout"),
               "end": p.how(), "child_end": k.how(), "child_ends_after_parent_ms": round((k.end - p.end) * 1000, 1)}
        rows.append(row)
        print(f"    {r['call_id']:>2} {r['mode']:<6} upstream {r['upstream_sleep_ms']:>4} ms: "
              f"to relay grpc-timeout {row['grpc_timeout']}, {row['end']} after {1000 * (p.end - p.req_t):.0f} ms "
              f"(logged {r['status']}); upstream grpc-timeout {row['child_grpc_timeout'] or 'none'}, "
              f"{row['child_end']} after {1000 * (k.end - k.req_t):.0f} ms (logged {ch['status']}), "
              f"{row['child_ends_after_parent_ms']:+.0f} ms after its parent")
    for mode in ["budget", "drop", "long"]:
        rs = [x for x in rows if x["mode"] == mode]
        print(f"  {mode}: {len(rs)} calls; upstream grpc-timeout {sorted({str(x['child_grpc_timeout']) for x in rs})}; "
              f"{sum(1 for x in rs if x['child_ends_after_parent_ms'] > 5)} upstream calls outlived their parent")
    return rows


def main():
    a = [x for x in sys.argv[1:] if x != "--json"]
    cmd, capture = a[0], a[1]
    ports = [int(p) for p in a[2].split(",")]
    print(f"{capture}")
    if cmd == "slow-consumer":
        rows = slow_consumer(capture, ports[0], a[3], a[4])
    elif cmd == "unbounded-window":
        rows = unbounded_window(capture, ports[0], a[3])
    elif cmd == "max-streams":
        rows = max_streams(capture, ports[0], a[3])
    elif cmd == "leaks-idle":
        rows = leaks_idle(capture, ports, a[3])
    elif cmd == "deadlines-nested":
        rows = nested(capture, ports, a[3], a[4])
    else:
        sys.exit(__doc__)
    if "--json" in sys.argv and rows:
        json.dump(rows, sys.stdout, indent=1)
        print()
    if FAIL:
        sys.exit(f"check_flows.py: {len(FAIL)} mismatches")


if __name__ == "__main__":
    main()
