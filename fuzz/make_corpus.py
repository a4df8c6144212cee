#!/usr/bin/env python3
"""Writes the seed corpus (fuzz/seeds/TARGET/*) from real captures in testdata/captures, in
each harness's input format (see fuzz/harness.rs). Deterministic: run it again and the files
are the same. Usage: python3 fuzz/make_corpus.py"""
import gzip, hashlib, os, struct, zlib

here = os.path.dirname(os.path.abspath(__file__))
caps = os.path.join(here, "..", "testdata", "captures")
out = os.path.join(here, "seeds")


def records(path):
    d = open(path, "rb").read()
    if path.endswith(".gz"):
        d = gzip.decompress(d)
    at = 24
    while at + 16 <= len(d):
        sec, usec, caplen, orig = struct.unpack_from("<IIII", d, at)
        yield d[at + 16:at + 16 + caplen]
        at += 16 + caplen


def tcp(frame):
    """(src port, dst port, payload) of an Ethernet/IPv4/TCP frame, or None."""
    if len(frame) < 54 or frame[12:14] != b"\x08\x00":
        return None
    ip = frame[14:]
    ihl = (ip[0] & 15) * 4
    total = struct.unpack(">H", ip[2:4])[0]
    t = ip[ihl:total]
    off = (t[12] >> 4) * 4
    return struct.unpack(">HH", t[:4]) + (t[off:],)


def streams(path):
    """Per connection: the payload chunks in order, as (dir, bytes); the client is the side
    that sent the connection's first packet (its SYN)."""
    conns, server_of = {}, {}
    for f in records(path):
        p = tcp(f)
        if not p:
            continue
        src, dst, data = p
        key = frozenset((src, dst))
        server = server_of.setdefault(key, dst)
        if not data:
            continue
        conns.setdefault(key, []).append((1 if src == server else 0, data))
    return [conns[k] for k in sorted(conns, key=lambda k: sorted(k))]


def chunks(parts, limit):
    """[dir][len][bytes] chunks, each at most 255 bytes, up to `limit` bytes in all."""
    b = bytearray()
    for d, data in parts:
        for i in range(0, len(data), 255):
            piece = data[i:i + 255]
            b += bytes([d, len(piece)]) + piece
            if len(b) >= limit:
                return bytes(b)
    return bytes(b)


def frames(data):
    """HTTP/2 frames of one direction's bytes (the client preface skipped)."""
    if data.startswith(b"PRI * HTTP/2.0"):
        data = data[24:]
    at = 0
    while at + 9 <= len(data):
        n = int.from_bytes(data[at:at + 3], "big")
        kind, flags = data[at + 3], data[at + 4]
        yield kind, flags, data[at + 9:at + 9 + n]
        at += 9 + n


def header_blocks(parts, d):
    data = b"".join(x for dd, x in parts if dd == d)
    for kind, flags, p in frames(data):
        if kind != 1:
            continue
        if flags & 0x8:
            p = p[1:len(p) - p[0]]
        if flags & 0x20:
            p = p[5:]
        yield p


def messages(parts, d):
    data = b"".join(x for dd, x in parts if dd == d)
    body = b"".join(p for kind, flags, p in frames(data) if kind == 0)
    at = 0
    while at + 5 <= len(body):
        n = int.from_bytes(body[at + 1:at + 5], "big")
        yield body[at], body[at + 5:at + 5 + n]
        at += 5 + n


def write(target, name, data):
    d = os.path.join(out, target)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)


for cap in ["py-basic-lo.pcap", "tonic-basic-lo.pcap", "py-bodies-lo.pcap",
            "connect-h2-lo.pcap.gz", "connect-h1-lo.pcap.gz", "go-h2c-lo.pcap.gz"]:
    stem = cap.split("-lo")[0]
    for i, parts in enumerate(streams(os.path.join(caps, cap))):
        write("h2_conn", f"{stem}-{i}", b"\x01" + chunks(parts, 6000))
        if stem == "connect-h1":
            # Joined mid-way (mode 0): from a third of the connection's chunks on.
            write("h2_conn", f"{stem}-{i}-joined", b"\x00" + chunks(parts[len(parts) // 3:], 6000))
        write("h2_bodies", f"{stem}-{i}", b"\x01" + chunks(parts, 12000))
        for d in (0, 1):
            blocks = [b for b in header_blocks(parts, d) if len(b) < 256][:12]
            write("hpack", f"{stem}-{i}-{d}", b"".join(bytes([len(b)]) + b for b in blocks))
        for j, (flag, m) in enumerate(list(messages(parts, 1))[:3]):
            if len(m) < 4096:
                write("payload", f"{stem}-{i}-{j}", bytes([0x80 | 1 if flag else 0]) + m)
                write("payload", f"{stem}-{i}-{j}-gz", bytes([0x81]) + gzip.compress(m, mtime=0))
                write("payload", f"{stem}-{i}-{j}-zl", bytes([0x82]) + zlib.compress(m))
    if cap.startswith("connect"):
        continue
    frames_ = list(records(os.path.join(caps, cap)))[:24]
    write("packet", stem, b"".join(bytes([1, min(len(f), 255)]) + f[:255] for f in frames_))
for cap in ["go-tls13-lo.pcap.gz", "go-tls12-chacha-lo.pcap.gz", "node-tls13-aes256-lo.pcap.gz"]:
    stem = cap.split("-lo")[0]
    for i, parts in enumerate(streams(os.path.join(caps, cap))):
        write("tls_records", f"{stem}-{i}", b"\x01" + chunks(parts, 16000))
for cap, n in [("py-basic-lo.pcap", 3000), ("tonic-basic-lo.pcap", 3000), ("py-basic-multi.pcapng", 4000)]:
    head = open(os.path.join(caps, cap), "rb").read()[:n]
    stem = cap.replace(".", "-")
    write("capture_file", stem, head)
    write("pcapng_roundtrip", stem, head)
    write("capture_file", stem + "-gz", gzip.compress(head, mtime=0))
