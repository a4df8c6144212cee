#!/usr/bin/env python3
"""Checks a reflection capture with tshark against the client's log, and prints what it has.

Usage: check_reflection.py CAPTURE PORT CALLS.jsonl [indexed|literal]

- Each TCP connection: request HEADERS frames, how many of them tshark shows a :path for (on the
  connection the capture joined mid-way, :path is an index into an HPACK table it never saw);
  the SETTINGS each side sent (seen only on connections captured from their start).
- The gRPC messages of every ServerReflectionInfo call tshark can decode, parsed as
  ServerReflectionRequest / ServerReflectionResponse: file_descriptor_responses and the
  FileDescriptorProtos in them, compared (SHA-256) with those the client logged.
Exits non-zero when the capture lacks a reflection response the client logged, or when the
:path of the joined connection's calls is not as expected: "indexed" (the default; python
C-core indexes :path, so tshark reads it for few calls if any) or "literal" (nghttp2, under
grpc-js, never indexes :path: tshark reads it for every call).
"""
import collections, gzip, hashlib, json, os, subprocess, sys, tempfile

from google.protobuf import descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2 as R

SEP = "\x1f"

def tshark(path, port, filt, *fields):
    cmd = ["tshark", "-n", "-r", path, "-d", f"tcp.port=={port},http2", "-Y", filt, "-T", "fields",
           "-E", "occurrence=a", "-E", f"aggregator={SEP}", "-E", "separator=\t"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return [[c.split(SEP) if c else [] for c in line.split("\t")] for line in out.splitlines()]

def main(capture, port, calls_path, joined_path="indexed"):
    port = int(port)
    tmp = None
    if capture.endswith(".gz"):
        tmp = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False)
        tmp.write(gzip.open(capture).read()); tmp.close()
        path = tmp.name
    else:
        path = capture
    calls = [json.loads(l) for l in open(calls_path) if l.strip()]
    ok = True

    # request HEADERS per connection, and the :path tshark could read
    conns = collections.defaultdict(lambda: dict(headers=0, paths=collections.Counter(), client=None))
    for st, src, types, paths in tshark(path, port, f"http2.type == 1 && tcp.dstport == {port}",
                                        "tcp.stream", "tcp.srcport", "http2.type", "http2.headers.path"):
        c = conns[int(st[0])]
        c["client"] = int(src[0])
        c["headers"] += sum(1 for t in types if t == "1")
        c["paths"].update(paths)
    settings = collections.defaultdict(dict)
    for st, src, frame_size, window, table in tshark(path, port, "http2.type == 4 && http2.flags.ack.settings == 0",
                                                     "tcp.stream", "tcp.srcport", "http2.settings.max_frame_size",
                                                     "http2.settings.initial_window_size",
                                                     "http2.settings.header_table_size"):
        side = "server" if int(src[0]) == port else "client"
        settings[int(st[0])][side] = dict(max_frame_size=frame_size, initial_window_size=window,
                                          header_table_size=table)

    # gRPC messages of the reflection calls
    msgs = tshark(path, port, "grpc.message_data", "tcp.stream", "tcp.srcport", "http2.streamid",
                  "grpc.message_data", "grpc.message_length")
    stream_path = {}
    for st, types, sids, paths in tshark(path, port, f"http2.headers.path && tcp.dstport == {port}",
                                         "tcp.stream", "http2.type", "http2.streamid", "http2.headers.path"):
        hs = [s for s, t in zip(sids, types) if t == "1"]
        for sid, p in zip(hs, paths):
            stream_path[(int(st[0]), int(sid))] = p
    seen = collections.defaultdict(lambda: dict(requests=[], responses=[]))
    for st, src, sids, datas, lens in msgs:
        key_st = int(st[0])
        # a packet may carry several frames: the message's stream is that of a DATA frame; the
        # reflection calls here are one at a time per connection, so the first stream id that is
        # a reflection call is the one
        sid = next((int(s) for s in sids if "ServerReflection" in stream_path.get((key_st, int(s)), "")), None)
        if sid is None:
            continue
        for d in datas:
            raw = bytes.fromhex(d.replace(":", ""))
            if int(src[0]) == port:
                seen[(key_st, sid)]["responses"].append(R.ServerReflectionResponse.FromString(raw))
            else:
                seen[(key_st, sid)]["requests"].append(R.ServerReflectionRequest.FromString(raw))

    phases = collections.Counter(c.get("phase") for c in calls)
    print(f"ground truth: {len(calls)} calls; per phase: {dict(sorted(phases.items()))}")
    statuses = collections.Counter(c["status"] for c in calls if c.get("phase") == "after")
    print(f"  after: statuses {dict(statuses.most_common())}")
    methods = collections.Counter(c["method"] for c in calls if c.get("phase") == "after")
    print(f"  after: {len(methods)} methods")
    refl = [c for c in calls if "reflection" in c]
    logged = {}
    for c in refl:
        r = c["reflection"]
        print(f"  {c['method']}: {c['status']}, {c['req_msgs']} requests, {c['resp_msgs']} responses, "
              f"{r['file_descriptor_protos']} FileDescriptorProtos ({r['file_descriptor_proto_bytes']} bytes), "
              f"files {r['files']}, client_peer {c['client_peer']}")
        for ex in r["exchanges"]:
            for f in ex.get("files", []):
                logged[f["sha256"]] = f["name"]

    print("capture: per TCP connection (client port): request HEADERS, with :path read by tshark")
    for st in sorted(conns):
        c = conns[st]
        read = sum(c["paths"].values())
        print(f"  tcp.stream {st} ({c['client']}): {c['headers']} request HEADERS, :path read in {read}: "
              f"{dict(c['paths'])}; SETTINGS {settings.get(st, 'none seen')}")
    joined = [st for st in conns if not settings.get(st)]
    for st in joined:
        c = conns[st]
        read = sum(c["paths"].values())
        if joined_path == "indexed" and read * 2 > c["headers"]:
            print(f"  FAIL: tshark reads :path for most calls on joined tcp.stream {st}")
            ok = False
        if joined_path == "literal" and read != c["headers"]:
            print(f"  FAIL: tshark reads :path for {read} of {c['headers']} calls on joined tcp.stream {st}, not all")
            ok = False
    total_fdp, n_fdp, n_fdresp, got = 0, 0, 0, set()
    for (st, sid), m in sorted(seen.items()):
        kinds = collections.Counter(r.WhichOneof("message_response") for r in m["responses"])
        fdps = [raw for r in m["responses"] if r.WhichOneof("message_response") == "file_descriptor_response"
                for raw in r.file_descriptor_response.file_descriptor_proto]
        names = [descriptor_pb2.FileDescriptorProto.FromString(raw).name for raw in fdps]
        got |= {hashlib.sha256(raw).hexdigest() for raw in fdps}
        size = sum(len(raw) for raw in fdps)
        total_fdp += size; n_fdp += len(fdps); n_fdresp += kinds["file_descriptor_response"]
        reqs = collections.Counter(r.WhichOneof("message_request") for r in m["requests"])
        print(f"  tcp.stream {st} stream {sid} {stream_path[(st, sid)]}: requests {dict(reqs)}; "
              f"responses {dict(kinds)}; {len(fdps)} FileDescriptorProtos, {size} bytes: {names}")
    print(f"capture: {len(seen)} reflection calls, {n_fdresp} file_descriptor_responses, "
          f"{n_fdp} FileDescriptorProtos, {total_fdp} bytes")
    want = sum(sum(1 for ex in c["reflection"]["exchanges"] if ex["response"] == "file_descriptor_response") for c in refl)
    if len(seen) != len(refl) or n_fdresp != want or set(logged) - got:
        print(f"  FAIL: the client logged {len(refl)} reflection calls, {want} file_descriptor_responses, "
              f"files {sorted(logged.values())}; missing from the capture: {sorted(logged[h] for h in set(logged) - got)}")
        ok = False
    if tmp:
        os.unlink(tmp.name)
    sys.exit(0 if ok else 1)

if __name__ == "__main__":
    main(*sys.argv[1:])
