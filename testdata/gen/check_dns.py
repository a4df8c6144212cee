#!/usr/bin/env python3
"""Checks a capture of make_dns_capture.sh against its call log, with tshark:
  - every connection of the log (by its client port and server_addr) opens after a DNS answer over
    UDP whose question is the log's target and whose A records hold the server's address (through
    a CNAME for an alias);
  - the DNS-over-TCP answer (dig +tcp) for TCP_NAME holds an A record, and NX_NAME is NXDOMAIN;
  - per server port, the x-call-id values of the requests and the grpc-status values of the
    replies are those of the log.
Prints the counts. Usage: check_dns.py CAPTURE CALLS.jsonl TCP_NAME NX_NAME"""
import collections, json, subprocess, sys

CODES = ["OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
         "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
         "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
         "UNAUTHENTICATED"]


def tshark(path, *args):
    out = subprocess.run(["tshark", "-n", "-r", path, *args, "-T", "fields", "-E", "separator=\t",
                          "-E", "aggregator=|"], check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def fail(msg):
    sys.exit(f"check_dns: {msg}")


def main(path, calls_path, tcp_name, nx_name):
    calls = [json.loads(line) for line in open(calls_path)]
    dns = []
    for t, proto, resp, qname, qtype, rcode, a, cname in tshark(
            path, "-Y", "dns", "-e", "frame.time_epoch", "-e", "ip.proto", "-e", "dns.flags.response",
            "-e", "dns.qry.name", "-e", "dns.qry.type", "-e", "dns.flags.rcode", "-e", "dns.a",
            "-e", "dns.cname"):
        dns.append(dict(t=float(t), proto={"6": "tcp", "17": "udp"}[proto], resp=resp in ("1", "True"),
                        name=qname, qtype=int(qtype), rcode=int(rcode or 0), a=set(filter(None, a.split("|"))),
                        cname=set(filter(None, cname.split("|")))))
    answers = [d for d in dns if d["resp"]]
    syns = {}
    for t, src, sport, dst, dport in tshark(
            path, "-Y", "tcp.flags.syn==1 && tcp.flags.ack==0", "-e", "frame.time_epoch", "-e", "ip.src",
            "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport"):
        syns[(f"{src}:{sport}", f"{dst}:{dport}")] = float(t)

    conns = {}
    for c in calls:
        if c["client_peer"]:
            conns.setdefault(c["conn"], (c["target"], c["client_peer"].removeprefix("ipv4:"), c["server_addr"]))
    for conn, (name, client, server) in sorted(conns.items()):
        syn = syns.get((client, server))
        if syn is None:
            fail(f"conn {conn}: no SYN {client} -> {server}")
        ip = server.rsplit(":", 1)[0]
        before = [d for d in answers if d["proto"] == "udp" and d["name"] == name and d["qtype"] == 1
                  and ip in d["a"] and d["t"] < syn]
        if not before:
            fail(f"conn {conn}: no UDP DNS answer {name} A {ip} before its SYN")
    tcp = [d for d in answers if d["proto"] == "tcp" and d["name"] == tcp_name and d["a"]]
    if not tcp:
        fail(f"no DNS answer over TCP for {tcp_name}")
    if not [d for d in answers if d["name"] == nx_name and d["rcode"] == 3]:
        fail(f"no NXDOMAIN for {nx_name}")

    ports = sorted({c["server_addr"].rsplit(":", 1)[1] for c in calls})
    dec = [a for p in ports for a in ("-d", f"tcp.port=={p},http2")]
    ids, statuses = collections.defaultdict(list), collections.defaultdict(list)
    for sport, dport, names, values in tshark(path, *dec, "-Y", "http2.type==1", "-e", "tcp.srcport",
                                              "-e", "tcp.dstport", "-e", "http2.header.name",
                                              "-e", "http2.header.value"):
        for n, v in zip(names.split("|"), values.split("|")):
            if n == "x-call-id":
                ids[dport].append(int(v))
            elif n == "grpc-status":
                statuses[sport].append(CODES[int(v)])
    for p in ports:
        mine = [c for c in calls if c["server_addr"].endswith(f":{p}")]
        if sorted(ids[p]) != sorted(c["call_id"] for c in mine):
            fail(f"port {p}: x-call-id on the wire {sorted(ids[p])}, in the log {[c['call_id'] for c in mine]}")
        if sorted(statuses[p]) != sorted(c["status"] for c in mine):
            fail(f"port {p}: grpc-status on the wire {sorted(statuses[p])}, in the log {sorted(c['status'] for c in mine)}")

    count = collections.Counter((d["proto"], "answers" if d["resp"] else "queries") for d in dns)
    print("DNS: " + ", ".join(f"{k[0].upper()} {k[1]} {v}" for k, v in sorted(count.items())))
    for d in answers:
        rr = sorted(d["cname"]) + sorted(d["a"])
        qt = {1: "A", 28: "AAAA"}.get(d["qtype"], d["qtype"])
        print(f"  {d['proto']} {d['name']} {qt} rcode {d['rcode']}: {' '.join(rr) or '-'}")
    for conn, (name, client, server) in sorted(conns.items()):
        n = sum(1 for c in calls if c["conn"] == conn)
        print(f"conn {conn}: {name} -> {server} from {client}, {n} calls")
    for p in ports:
        print(f"port {p}: {len(ids[p])} calls on the wire, statuses {dict(collections.Counter(statuses[p]))}")


if __name__ == "__main__":
    main(*sys.argv[1:])
