#!/usr/bin/env python3
"""Checks a balance capture against its client log, with tshark: check_balance.py CAPTURE LOG PORT
[EVENTS]

Reads every HTTP/2 header block of CAPTURE (tshark -d tcp.port==PORT,http2). Each request (a
header block with :path, sent to PORT) is paired with its log line by x-call-id: the log's
server_addr must be the request's destination address and port, the log's client_peer port its
source port, the log's method its :path, and its :authority the log's authority. Every logged
call is on the wire, and nothing else is. The grpc-status values the backends sent, counted per
backend, are the log's statuses counted per server_addr. The client ports of the connections
are distinct (the capture tests tell connections apart by client port). With EVENTS (the
scaleout capture), the added backend's first SYN comes after its "at", and only the new client
connects to it. Prints the calls per backend as the log and tshark count them, and per client
and backend from the log; exits 1 on any disagreement.
"""
import collections, json, subprocess, sys

CODES = {0: "OK", 1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED",
         5: "NOT_FOUND", 6: "ALREADY_EXISTS", 7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED",
         9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE", 12: "UNIMPLEMENTED",
         13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED"}
SEP = "\x1f"


def tshark(cap, port, *args):
    return subprocess.run(["tshark", "-n", "-r", cap, "-d", f"tcp.port=={port},http2", *args],
                          check=True, capture_output=True, text=True).stdout


def main(cap, log_path, port, events_path=None):
    port = int(port)
    bad = []
    log = [json.loads(l) for l in open(log_path)]
    by_id = {c["call_id"]: c for c in log}
    if len(by_id) != len(log):
        bad.append("call ids repeat in the log")
    out = tshark(cap, port, "-Y", "http2.header", "-T", "fields", "-E", "separator=\t",
                 "-E", "occurrence=a", "-E", f"aggregator={SEP}", "-e", "frame.time_epoch",
                 "-e", "ip.src", "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport",
                 "-e", "http2.header.name", "-e", "http2.header.value")
    wire, statuses = {}, collections.Counter()
    for line in out.splitlines():
        t, src, sport, dst, dport, names, values = line.split("\t")
        names, values = names.split(SEP), values.split(SEP)
        if len(names) != len(values):
            sys.exit(f"{cap}: frame at {t}: {len(names)} header names, {len(values)} values")
        if int(dport) == port:
            req = None
            for n, v in zip(names, values):
                if n == ":path":
                    req = {"path": v, "server": f"{dst}:{dport}", "sport": int(sport), "time": float(t)}
                elif n == ":authority" and req is not None:
                    req["authority"] = v
                elif n == "x-call-id" and req is not None:
                    if int(v) in wire:
                        bad.append(f"call id {v} twice on the wire")
                    wire[int(v)] = req
                    req = None
        else:
            for n, v in zip(names, values):
                if n == "grpc-status":
                    statuses[(f"{src}:{sport}", CODES[int(v)])] += 1
    paths = collections.Counter()
    for line in tshark(cap, port, "-Y", 'http2.header.name == ":path"', "-T", "fields", "-e", "ip.dst").splitlines():
        paths[f"{line}:{port}"] += 1  # packets with a :path, as `tshark -Y ... | wc -l` counts them

    if set(wire) != set(by_id):
        bad.append(f"{len(set(by_id) - set(wire))} logged calls not on the wire, "
                   f"{len(set(wire) - set(by_id))} on the wire not logged")
    for cid in sorted(set(wire) & set(by_id)):
        w, c = wire[cid], by_id[cid]
        if w["server"] != c["server_addr"]:
            bad.append(f"call {cid}: logged to {c['server_addr']}, on the wire to {w['server']}")
        if w["sport"] != int(c["client_peer"].rsplit(":", 1)[1]):
            bad.append(f"call {cid}: logged from {c['client_peer']}, on the wire from port {w['sport']}")
        if w["path"] != c["method"] or w.get("authority") != c["authority"]:
            bad.append(f"call {cid}: {w['path']} {w.get('authority')} on the wire, {c['method']} {c['authority']} logged")
        if not c["start"] - 0.002 <= w["time"] <= c["end"] + 0.002:
            bad.append(f"call {cid}: on the wire at {w['time']}, outside its logged start and end")
    logged_status = collections.Counter((c["server_addr"], c["status"]) for c in log)
    if logged_status != statuses:
        bad.append(f"grpc-status per backend: log {sorted(logged_status.items())}, wire {sorted(statuses.items())}")
    conns = {}
    for c in log:
        conns.setdefault(c["conn"], set()).add(int(c["client_peer"].rsplit(":", 1)[1]))
    ports = [p for ps in conns.values() for p in ps]
    if any(len(ps) != 1 for ps in conns.values()) or len(set(ports)) != len(ports):
        bad.append(f"client ports do not tell connections apart: {sorted(conns.items())}")

    dialed = {a for c in log for a in c["dial"].removeprefix("ipv4:").split(",")}
    backends = sorted(dialed | {c["server_addr"] for c in log} | {w["server"] for w in wire.values()} | set(paths))
    logged = collections.Counter(c["server_addr"] for c in log)
    on_wire = collections.Counter(w["server"] for w in wire.values())
    print(f"{cap}: {len(log)} calls logged, {len(wire)} requests on the wire")
    print(f"  {'backend':18} {'log':>6} {'tshark':>6} {':path pkts':>10}  statuses (log = wire)")
    for b in backends:
        st = ", ".join(f"{s} {n}" for (a, s), n in sorted(logged_status.items()) if a == b)
        print(f"  {b:18} {logged[b]:6} {on_wire[b]:6} {paths[b]:10}  {st}")
        if not logged[b] == on_wire[b] == paths[b]:
            bad.append(f"{b}: {logged[b]} calls logged, {on_wire[b]} x-call-id and {paths[b]} :path packets on the wire")
    per_client = collections.defaultdict(collections.Counter)
    for c in log:
        per_client[(c["client"], c["lb_policy"])][c["server_addr"]] += 1
    for (client, pol), cnt in sorted(per_client.items()):
        print(f"  client {client} ({pol}): " + ", ".join(f"{b} {cnt[b]}" for b in backends if cnt[b]))

    if events_path:
        ev = json.load(open(events_path))
        added = ev["backend_added"]
        host = added.rsplit(":", 1)[0]
        syns = tshark(cap, port, "-Y", f"ip.dst == {host} && tcp.dstport == {port} && tcp.flags.syn == 1 && tcp.flags.ack == 0",
                      "-T", "fields", "-e", "frame.time_epoch", "-e", "tcp.srcport").split()
        if not syns or float(syns[0]) < ev["at"]:
            bad.append(f"{added}: first SYN {syns[:1]} not after {ev['at']}")
        clients = {c["client"] for c in log if c["server_addr"] == added}
        if clients != {ev["new_client"]["client"]}:
            bad.append(f"{added}: called by clients {sorted(clients)}")
        first = min((c["start"] for c in log if c["server_addr"] == added), default=None)
        print(f"  {added} added at {ev['at']:.3f}; first SYN to it {float(syns[0]) - ev['at']:+.3f} s; "
              f"its first call {first - ev['at']:+.3f} s; {logged[added]} of {len(log)} calls "
              f"({100 * logged[added] / len(log):.1f} %), "
              f"{sum(1 for c in log if c['start'] >= ev['at'] and c['server_addr'] == added)} of "
              f"{sum(1 for c in log if c['start'] >= ev['at'])} made after it was added")
    for b in bad[:20]:
        print(f"  MISMATCH: {b}", file=sys.stderr)
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main(*sys.argv[1:])
