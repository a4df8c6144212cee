#!/usr/bin/env bash
# Makes the python grpcio captures in testdata/captures/ with their ground truth.
# Needs root (tcpdump/dumpcap on loopback), python3 with grpcio + grpcio-tools, tshark.
# Usage: testdata/gen/make_captures.sh   (from the repository root)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/.." && pwd)/captures
mkdir -p "$out"
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "py_echo.py server" || true; rm -rf "$work"' EXIT

python3 -m grpc_tools.protoc -I "$here/../proto" --python_out="$work" --grpc_python_out="$work" echo.proto
export ECHO_PB_DIR=$work
py() { python3 "$here/py_echo.py" "$@"; }

start_server() { # host port
  py server --host "$1" --port "$2" > "$work/server-$2.log" 2>&1 &
  for _ in $(seq 100); do grep -q ready "$work/server-$2.log" 2>/dev/null && return; sleep 0.1; done
  echo "server $1:$2 did not start" >&2; exit 1
}
stop_captures() { # pids...
  sleep 1; kill -INT "$@"; wait "$@" 2>/dev/null || true
}
wait_file() { for _ in $(seq 200); do [ -e "$1" ] && return; sleep 0.1; done; echo "no $1" >&2; exit 1; }

# 1. IPv4, two servers: one run recorded three ways at once.
start_server 127.0.0.1 50051
start_server 127.0.0.1 50052
filter="tcp port 50051 or tcp port 50052"
tcpdump -i lo -B 262144 -U -w "$out/py-basic-lo.pcap" $filter 2> "$out/py-basic-lo.pcap.capture.txt" & p1=$!
tcpdump -i lo -B 262144 -U -s 96 -w "$out/py-basic-snap96.pcap" $filter 2> "$out/py-basic-snap96.pcap.capture.txt" & p2=$!
dumpcap -i lo -B 256 -i any -B 256 -f "$filter" -w "$out/py-basic-multi.pcapng" > "$out/py-basic-multi.pcapng.capture.txt" 2>&1 & p3=$!
sleep 2
py client --target 127.0.0.1:50051 --target 127.0.0.1:50052 --scenario basic --log "$out/py-basic.calls.jsonl"
stop_captures $p1 $p2 $p3

# 2. IPv6 through `-i any` (Linux cooked v2), nanosecond timestamps, gzip-compressed.
start_server "[::1]" 50061
tcpdump -i any -B 262144 -y LINUX_SLL2 --time-stamp-precision nano -U -w "$work/v6.pcap" tcp port 50061 2> "$out/py-v6-any.pcap.gz.capture.txt" & p4=$!
sleep 2
py client --target "[::1]:50061" --scenario basic --log "$out/py-v6-any.calls.jsonl"
stop_captures $p4
gzip -9 -c "$work/v6.pcap" > "$out/py-v6-any.pcap.gz"

# 3. Capture joins a connection that has been up for 30 calls.
start_server 127.0.0.1 50071
py client --target 127.0.0.1:50071 --scenario midstream --marker "$work/go" --log "$out/py-midstream.calls.jsonl" &
pc=$!
wait_file "$work/go.ready"
tcpdump -i lo -B 262144 -U -w "$out/py-midstream.pcap" tcp port 50071 2> "$out/py-midstream.pcap.capture.txt" & p5=$!
sleep 2
touch "$work/go"
wait $pc
stop_captures $p5

for f in "$out"/*.pcap "$out"/*.pcapng "$out"/*.pcap.gz; do
  base=${f%.gz}; base=${base%.pcapng}; base=${base%.pcap}
  python3 "$here/oracle.py" "$f" > "$base.$(basename "${f#"$base".}").streams.json"
done
chown root:root "$out"/*
# Every capture must be complete: the capture tools report their own drops.
grep -H "dropped" "$out"/*.capture.txt
ls -l "$out"
