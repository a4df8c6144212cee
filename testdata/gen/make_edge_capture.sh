#!/usr/bin/env bash
# Makes testdata/captures/py-edge-lo.pcap.gz: the hard cases (see scenario_edge in py_echo.py)
# between python grpcio client and servers on loopback. Needs root, tcpdump, tshark, python3
# with grpcio + grpcio-tools.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/.." && pwd)/captures
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "py_echo.py server --host 127.0.0.1 --port 5008" || true; rm -rf "$work"' EXIT
python3 -m grpc_tools.protoc -I "$here/../proto" --python_out="$work" --grpc_python_out="$work" echo.proto
export ECHO_PB_DIR=$work
for port in 50081 50082; do
  python3 "$here/py_echo.py" server --host 127.0.0.1 --port $port --workers 400 > "$work/server-$port.log" 2>&1 &
  for _ in $(seq 100); do grep -q ready "$work/server-$port.log" 2>/dev/null && break; sleep 0.1; done
done
tcpdump -i lo -B 262144 -U -w "$work/edge.pcap" "tcp port 50081 or tcp port 50082" 2> "$out/py-edge-lo.pcap.gz.capture.txt" & td=$!
sleep 2
python3 "$here/py_echo.py" client --target 127.0.0.1:50081 --target 127.0.0.1:50082 --scenario edge \
  --log "$out/py-edge.calls.jsonl"
sleep 1; kill -INT $td; wait $td || true
gzip -9 -c "$work/edge.pcap" > "$out/py-edge-lo.pcap.gz"
python3 "$here/oracle.py" "$out/py-edge-lo.pcap.gz" > "$out/py-edge-lo.pcap.gz.streams.json"
grep dropped "$out/py-edge-lo.pcap.gz.capture.txt"

# Calls carrying W3C traceparent (exemplars); the log also has {trace_id, call_id} lines.
python3 "$here/py_echo.py" server --host 127.0.0.1 --port 50083 > "$work/server-50083.log" 2>&1 &
for _ in $(seq 100); do grep -q ready "$work/server-50083.log" 2>/dev/null && break; sleep 0.1; done
tcpdump -i lo -B 262144 -U -w "$out/py-traced-lo.pcap" "tcp port 50083" 2> "$out/py-traced-lo.pcap.capture.txt" & td=$!
sleep 2
python3 "$here/py_echo.py" client --target 127.0.0.1:50083 --scenario traced --log "$out/py-traced.calls.jsonl"
sleep 1; kill -INT $td; wait $td || true
python3 "$here/oracle.py" "$out/py-traced-lo.pcap" > "$out/py-traced-lo.pcap.streams.json"

# Payloads logged by the client as protobuf JSON, compressed gzip / deflate / not at all.
python3 "$here/py_echo.py" server --host 127.0.0.1 --port 50084 > "$work/server-50084.log" 2>&1 &
for _ in $(seq 100); do grep -q ready "$work/server-50084.log" 2>/dev/null && break; sleep 0.1; done
tcpdump -i lo -B 262144 -U -w "$out/py-bodies-lo.pcap" "tcp port 50084" 2> "$out/py-bodies-lo.pcap.capture.txt" & td=$!
sleep 2
python3 "$here/py_echo.py" client --target 127.0.0.1:50084 --scenario bodies --log "$out/py-bodies.calls.jsonl"
sleep 1; kill -INT $td; wait $td || true
python3 "$here/oracle.py" "$out/py-bodies-lo.pcap" > "$out/py-bodies-lo.pcap.streams.json"
chown root:root "$out"/*
ls -l "$out"/py-edge*
