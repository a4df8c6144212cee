#!/usr/bin/env bash
# Makes testdata/captures/py-edge-lo.pcap.gz: the hard cases (see scenario_edge in py_echo.py)
# between python grpcio client and servers on loopback; and py-traced-lo.pcap, py-bodies-lo.pcap.
# GRPCTAP_CAPTURES_OUT writes them elsewhere. Needs root, tcpdump, tshark, python3
# with grpcio + grpcio-tools.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${GRPCTAP_CAPTURES_OUT:-$(cd "$here/.." && pwd)/captures}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "py_echo.py server --host 127.0.0.1 --port 5008" || true; rm -rf "$work"' EXIT
python3 -m grpc_tools.protoc -I "$here/../proto" --python_out="$work" --grpc_python_out="$work" echo.proto
export ECHO_PB_DIR=$work

# start_server PORT [ARGS...]: a python server on loopback, waited for until it is ready.
start_server() {
  local port=$1; shift
  python3 "$here/py_echo.py" server --host 127.0.0.1 --port "$port" "$@" > "$work/server-$port.log" 2>&1 &
  for _ in $(seq 100); do grep -q ready "$work/server-$port.log" 2>/dev/null && break; sleep 0.1; done
}

# one_server_capture PORT NAME SCENARIO: NAME-lo.pcap of SCENARIO against one server, the
# client's log as NAME.calls.jsonl, and the Wireshark digest.
one_server_capture() {
  local port=$1 name=$2 scenario=$3
  start_server "$port"
  tcpdump -i lo -B 262144 -U -w "$out/$name-lo.pcap" "tcp port $port" 2> "$out/$name-lo.pcap.capture.txt" & td=$!
  sleep 2
  python3 "$here/py_echo.py" client --target "127.0.0.1:$port" --scenario "$scenario" --log "$out/$name.calls.jsonl"
  sleep 1; kill -INT $td; wait $td || true
  python3 "$here/oracle.py" "$out/$name-lo.pcap" > "$out/$name-lo.pcap.streams.json"
}

for port in 50081 50082; do
  start_server $port --workers 400
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
one_server_capture 50083 py-traced traced

# Payloads logged by the client as protobuf JSON, compressed gzip / deflate / not at all.
one_server_capture 50084 py-bodies bodies
chown root:root "$out"/*
ls -l "$out"/py-edge*
