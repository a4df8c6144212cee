#!/usr/bin/env python3
"""Checks a TLS capture made by make_tls_captures.sh against the client's log, with tshark
decrypting it: from the key log given (tshark -o tls.keylog_file:KEYLOG) or, without one, from
the secrets in the file itself (a pcapng Decryption Secrets Block).

Per TCP connection it reads the handshake as Wireshark dissects it: the ClientHello (SNI, the
versions and key share groups offered, a PSK or TLS 1.2 session ticket offered), a
HelloRetryRequest (a ServerHello with the HRR random) and the group it asks for, the ServerHello
(version: supported_versions, else the legacy field; cipher suite; pre_shared_key accepted),
whether a Certificate was sent, ALPN, and whether the session was resumed (TLS 1.3: the server
accepted a PSK; TLS 1.2: the ServerHello echoes the ClientHello's session id and no Certificate
follows). Then every decrypted HTTP/2 stream with a :path is paired with its logged call by
x-call-id (or, when the log has no call ids, as tonic's basic scenario has not, in order: the
calls of one connection are made one at a time), and its :path, grpc-status (trailers, or a
trailers-only response; `reset` when only RST_STREAM reached the wire, which agrees with a logged
DEADLINE_EXCEEDED or CANCELLED) and gRPC messages each way (5-byte envelopes in the DATA frames)
are compared with the log.

Prints one line per connection and a summary; exits 1 if a logged call is missing, a call on the
wire has no log line, or they disagree, or the handshakes are not those --expect says: "VERSION
SUITE HRR RESUMED", e.g. "TLS 1.3 TLS_AES_128_GCM_SHA256 0 0,1": every connection of that version
and IANA suite, HelloRetryRequest (1) or not (0) on each, and per connection in order whether it
resumed. With --json F writes the facts as JSON to F.
With --clear the capture is a cleartext twin (go-clear, node-clear: HTTP/2 with prior knowledge,
no TLS): tshark reads PORT as HTTP/2 (-d tcp.port==PORT,http2), there are no handshakes to check,
and the calls are paired with the log the same way.
Usage: check_tls.py CAPTURE PORT CALLS [KEYLOG] [--json F] [--expect "..."] [--clear]"""
import json, subprocess, sys
from collections import Counter

from check_connect import CODES, aslist, multi

HRR_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"
GROUPS = {"29": "x25519", "23": "secp256r1", "24": "secp384r1", "25": "secp521r1", "30": "x448"}
HS = {"1": "ClientHello", "2": "ServerHello", "4": "NewSessionTicket", "8": "EncryptedExtensions",
      "11": "Certificate", "12": "ServerKeyExchange", "13": "CertificateRequest", "14": "ServerHelloDone",
      "15": "CertificateVerify", "16": "ClientKeyExchange", "20": "Finished"}
VERSIONS = {"0x0304": "TLS 1.3", "0x0303": "TLS 1.2", "0x0302": "TLS 1.1", "0x0301": "TLS 1.0"}
DECODE = []  # --clear: ["-d", "tcp.port==PORT,http2"]


def tshark(path, keylog, *args):
    opts = ["-o", f"tls.keylog_file:{keylog}"] if keylog else ["-o", "tls.keylog_file:"]
    return subprocess.run(["tshark", "-n", "-r", path, *opts, *DECODE, *args], check=True, capture_output=True,
                          text=True).stdout


def walk(x, key):
    """Every value of `key` in the tree x, depth first, in document order."""
    if isinstance(x, dict):
        for k, v in x.items():
            for w in aslist(v):
                if k == key:
                    yield w
                else:
                    yield from walk(w, key)
    elif isinstance(x, list):
        for w in x:
            yield from walk(w, key)


def extensions(hs):
    """The extensions of a handshake message: {type: extension tree}."""
    return {e["tls.handshake.extension.type"]: e for k, v in hs.items() if k.startswith("Extension: ")
            for e in aslist(v)}


def first(tree, key, default=None):
    return next(walk(tree, key), default)


def hexstr(s):
    return (s or "").replace(":", "").lower()


def names():
    """Cipher suite numbers to IANA names, from tshark's own table (tshark -G values)."""
    out = subprocess.run(["tshark", "-G", "values"], check=True, capture_output=True, text=True).stdout
    m = {}
    for line in out.splitlines():
        f = line.split("\t")
        if len(f) == 4 and f[0] == "V" and f[1] == "tls.handshake.ciphersuite":
            m[int(f[2], 16) if f[2].startswith("0x") else int(f[2])] = f[3]
    return m


def handshakes(path, keylog, port):
    """Per TCP stream, the handshake facts."""
    pk = json.loads(tshark(path, keylog, "-Y", "tls.handshake", "-T", "json", "-J", "tcp tls"), object_pairs_hook=multi)
    conns = {}
    for p in pk:
        layers = p["_source"]["layers"]
        t = layers["tcp"]
        sid = int(t["tcp.stream"])
        to_server = t["tcp.dstport"] == str(port)
        c = conns.setdefault(sid, {"tcp_stream": sid, "client": None, "messages": [], "hrr": False})
        if to_server:
            c["client"] = f"127.0.0.1:{t['tcp.srcport']}"
        for tls in aslist(layers.get("tls", [])):
            for hs in walk(tls, "tls.handshake"):
                ty = hs.get("tls.handshake.type")
                if ty is None:
                    continue
                ext = extensions(hs)
                name = HS.get(ty, ty)
                if ty == "2" and hexstr(hs.get("tls.handshake.random")) == HRR_RANDOM:
                    name = "HelloRetryRequest"
                    c["hrr"] = True
                    c["hrr_group"] = GROUPS.get(first(ext.get("51", {}), "tls.handshake.extensions_key_share_selected_group"), "?")
                c["messages"].append(("C>S " if to_server else "S>C ") + name)
                if ty == "1":
                    ch = {"sni": first(ext.get("0", {}), "tls.handshake.extensions_server_name"),
                          "versions": list(walk(ext.get("43", {}), "tls.handshake.extensions.supported_version")),
                          "key_share_groups": [GROUPS.get(g, g) for g in walk(ext.get("51", {}), "tls.handshake.extensions_key_share_group")],
                          "psk_offered": "41" in ext,
                          "ticket_offered": int(ext.get("35", {}).get("tls.handshake.extension.len", "0")) > 0,
                          "session_id": hexstr(hs.get("tls.handshake.session_id")),
                          "alpn": list(walk(ext.get("16", {}), "tls.handshake.extensions_alpn_str"))}
                    c.setdefault("client_hellos", []).append(ch)
                elif ty == "2" and name == "ServerHello":
                    sv = first(ext.get("43", {}), "tls.handshake.extensions.supported_version")
                    c["version"] = VERSIONS.get(sv or hs.get("tls.handshake.version"), sv)
                    c["cipher_suite"] = int(hs["tls.handshake.ciphersuite"], 16)
                    c["psk_accepted"] = "41" in ext
                    c["server_session_id"] = hexstr(hs.get("tls.handshake.session_id"))
                    if "51" in ext:
                        c["key_share"] = GROUPS.get(first(ext["51"], "tls.handshake.extensions_key_share_group"), "?")
                    if "16" in ext:
                        c["alpn"] = first(ext["16"], "tls.handshake.extensions_alpn_str")
                elif ty == "8" and "16" in ext:
                    c["alpn"] = first(ext["16"], "tls.handshake.extensions_alpn_str")
    out = []
    for sid, c in sorted(conns.items()):
        ch = (c.get("client_hellos") or [{}])[-1]
        cert = any(m.endswith(" Certificate") for m in c["messages"])
        if c.get("version") == "TLS 1.3":
            c["resumed"] = bool(c.get("psk_accepted"))
        else:
            c["resumed"] = bool(ch.get("session_id")) and c.get("server_session_id") == ch.get("session_id") and not cert
        c["certificate_sent"] = cert
        c.pop("server_session_id", None)
        out.append(c)
    return out


def read_h2(path, keylog, port):
    """Each decrypted HTTP/2 stream: request headers, response headers and trailers, bodies, reset."""
    pk = json.loads(tshark(path, keylog, "-Y", "http2", "-T", "json", "-J", "tcp http2"), object_pairs_hook=multi)
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
                e = ex.setdefault((conn, int(sid)), {"tcp_stream": conn, "req": [], "resp": [], "trailers": [],
                                                     "req_body": b"", "resp_body": b"", "reset": None})
                if ty == "1":
                    hs = [(x["http2.header.name"], x["http2.header.value"]) for x in aslist(s.get("http2.header", []))]
                    if to_server:
                        e["req"] += hs
                    elif not e["resp"]:
                        e["resp"] = hs
                    else:
                        e["trailers"] += hs
                elif ty == "0":
                    data = bytes.fromhex(s.get("http2.data.data", "").replace(":", ""))
                    # On a stream's last DATA frame tshark shows the reassembled body: the frame's
                    # own payload is its tail (no padding here).
                    n = int(s.get("http2.length", "0"))
                    data = data[len(data) - n:] if n else b""
                    e["req_body" if to_server else "resp_body"] += data
                elif ty == "3":
                    e["reset"] = ("client" if to_server else "server") + ":" + s.get("http2.rst_stream.error", "?")
    return [e for _, e in sorted(ex.items())]


def envelopes(body):
    n, i = 0, 0
    while i + 5 <= len(body):
        i += 5 + int.from_bytes(body[i + 1:i + 5], "big")
        n += 1
    return n


def hget(hs, name):
    return next((v for k, v in hs if k == name), None)


def main(argv):
    args = argv[1:]
    clear = "--clear" in args
    if clear:
        args.remove("--clear")
    opt = {}
    for name in ("--json", "--expect"):
        if name in args:
            i = args.index(name)
            opt[name] = args[i + 1]
            del args[i:i + 2]
    json_out = opt.get("--json")
    path, port, calls_path = args[0], int(args[1]), args[2]
    keylog = args[3] if len(args) > 3 else None
    if clear:
        DECODE[:] = ["-d", f"tcp.port=={port},http2"]
    suites = names()
    conns = [] if clear else handshakes(path, keylog, port)
    streams = read_h2(path, keylog, port)
    lines = [c for c in map(json.loads, open(calls_path)) if "method" in c and "status" in c]
    # A log with no call ids (tonic's basic scenario: one call at a time, no x-call-id) is paired
    # in order: its calls by (conn, start) with the calls on the wire by TCP stream and HTTP/2
    # stream id, numbered 1, 2, ... on both sides.
    by_order = bool(lines) and all(c.get("call_id") is None for c in lines)
    if by_order:
        lines.sort(key=lambda c: (c.get("conn", 0), c["start"]))
        for i, c in enumerate(lines, 1):
            c["call_id"] = i
    log = {c["call_id"]: c for c in lines}
    bad, seen = [], set()
    per_conn = Counter()
    for e in streams:
        p = hget(e["req"], ":path")
        if p is None:
            continue
        per_conn[e["tcp_stream"]] += 1
        cid = str(sum(per_conn.values())) if by_order else hget(e["req"], "x-call-id")
        t = log.get(int(cid)) if cid and cid.isdigit() else None
        if t is None:
            what = f"call {cid} in order" if by_order else f"x-call-id {cid}"
            bad.append(f"stream {e['tcp_stream']}: {p} with {what}: no such call in the log")
            continue
        seen.add(t["call_id"])
        st = hget(e["trailers"], "grpc-status") or hget(e["resp"], "grpc-status")
        wire = CODES[int(st)] if st is not None else ("reset" if e["reset"] else "none")
        ok = wire == t["status"] or (wire == "reset" and t["status"] in ("DEADLINE_EXCEEDED", "CANCELLED"))
        if p != t["method"] or not ok:
            bad.append(f"call {t['call_id']}: wire {p} {wire} ({e['reset']}), logged {t['method']} {t['status']}")
        nreq, nresp = envelopes(e["req_body"]), envelopes(e["resp_body"])
        if t["status"] not in ("DEADLINE_EXCEEDED", "CANCELLED") and (nreq, nresp) != (t["req_msgs"], t["resp_msgs"]):
            bad.append(f"call {t['call_id']}: wire {nreq}/{nresp} messages, logged {t['req_msgs']}/{t['resp_msgs']}")
    for cid in sorted(set(log) - seen):
        bad.append(f"call {cid} ({log[cid]['method']} {log[cid]['status']}) not {'read' if clear else 'decrypted'} on the wire")
    if clear:
        for sid, n in sorted(per_conn.items()):
            print(f"  tcp {sid}: cleartext HTTP/2, {n} gRPC calls read")
        print(f"{path}: cleartext, {len(per_conn)} connections, {sum(per_conn.values())} calls read,"
              f" {len(log)} calls in the log, {len(bad)} disagreements")
        for b in bad:
            print("  " + b)
        return 1 if bad else 0
    for c in conns:
        c["cipher_suite_name"] = suites.get(c.get("cipher_suite"), "?")
        c["grpc_calls_decrypted"] = per_conn[c["tcp_stream"]]
        ch = (c.get("client_hellos") or [{}])[0]
        print(f"  tcp {c['tcp_stream']} client {c['client']}: {c.get('version')} {c['cipher_suite_name']}"
              f" (0x{c.get('cipher_suite', 0):04x}), key share {c.get('key_share', '-')}, hrr {c['hrr']}"
              f"{' (asks ' + c['hrr_group'] + ')' if c['hrr'] else ''}, resumed {c['resumed']}"
              f" (psk offered {ch.get('psk_offered')}, ticket offered {ch.get('ticket_offered')}),"
              f" certificate {c['certificate_sent']}, alpn {c.get('alpn')}, sni {ch.get('sni')},"
              f" {c['grpc_calls_decrypted']} gRPC calls decrypted")
        print(f"    {' '.join(m.replace(' ', ':') for m in c['messages'])}")
    if "--expect" in opt:
        *version, suite, hrr, resumed = opt["--expect"].split()
        want = [(" ".join(version), suite, hrr == "1", r == "1") for r in resumed.split(",")]
        got = [(c.get("version"), c["cipher_suite_name"], c["hrr"], c["resumed"]) for c in conns]
        if got != want:
            bad.append(f"handshakes {got}, expected {want}")
    total = sum(per_conn.values())
    print(f"{path}: {len(conns)} TLS connections, {total} calls decrypted ({'key log ' + keylog if keylog else 'secrets in the file'}),"
          f" {len(log)} calls in the log, {len(bad)} disagreements")
    for b in bad:
        print("  " + b)
    if json_out:
        with open(json_out, "w") as f:
            json.dump({"oracle": "tshark " + ("-o tls.keylog_file" if keylog else "(Decryption Secrets Block)"),
                       "calls_logged": len(log), "calls_decrypted": total, "connections": conns}, f, indent=1)
            f.write("\n")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
