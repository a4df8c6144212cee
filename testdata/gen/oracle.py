#!/usr/bin/env python3
"""Wireshark's reassembly of every TCP stream of a capture, as JSON on stdout: for each stream,
the two endpoints and, per direction, the byte count and SHA-256 of the reassembled bytes.
grpctap's tests compare their own reassembly with this. Usage: oracle.py CAPTURE"""
import gzip, hashlib, json, os, subprocess, sys, tempfile

def tshark(path, *args):
    return subprocess.run(["tshark", "-n", "-r", path, *args], check=True, capture_output=True, text=True).stdout

def main(path):
    tmp = None
    if path.endswith(".gz"):  # tshark reads gzip too; decompress to keep the follow fast
        tmp = tempfile.NamedTemporaryFile(suffix=".pcap", delete=False)
        tmp.write(gzip.open(path).read()); tmp.close()
        path = tmp.name
    ids = sorted({int(x) for x in tshark(path, "-T", "fields", "-e", "tcp.stream").split() if x})
    streams = []
    for sid in ids:
        text = tshark(path, "-q", "-z", f"follow,tcp,raw,{sid}")
        nodes, data = {}, {0: bytearray(), 1: bytearray()}
        for line in text.splitlines():
            if line.startswith("Node 0: ") or line.startswith("Node 1: "):
                nodes[int(line[5])] = line[8:]
            elif line and not line.startswith(("=", "Follow", "Filter", "Node")):
                side = 1 if line.startswith("\t") else 0
                data[side] += bytes.fromhex(line.strip())
        streams.append({
            "stream": sid, "node0": nodes.get(0), "node1": nodes.get(1),
            "node0_to_node1": {"bytes": len(data[0]), "sha256": hashlib.sha256(data[0]).hexdigest()},
            "node1_to_node0": {"bytes": len(data[1]), "sha256": hashlib.sha256(data[1]).hexdigest()},
        })
    json.dump({"oracle": "tshark -z follow,tcp,raw",
               "streams": streams}, sys.stdout, indent=1)
    print()
    if tmp:
        os.unlink(tmp.name)

if __name__ == "__main__":
    main(sys.argv[1])
