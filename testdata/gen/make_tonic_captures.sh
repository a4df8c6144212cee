#!/usr/bin/env bash
# Makes the tonic captures in testdata/captures/ with their ground truth: tonic <-> tonic, python
# client -> tonic server, tonic client -> python server, all on loopback. Needs root, tcpdump,
# tshark, python3 with grpcio + grpcio-tools, and cargo (builds testdata/gen/tonic-echo).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=$root/testdata/captures
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; pkill -f "tonic-echo server" || true; pkill -f "py_echo.py server --host 127.0.0.1 --port 5009" || true; rm -rf "$work"' EXIT
cargo build --release -q -p tonic-echo --manifest-path "$root/Cargo.toml"
tonic=$root/target/release/tonic-echo
python3 -m grpc_tools.protoc -I "$here/../proto" --python_out="$work" --grpc_python_out="$work" echo.proto
export ECHO_PB_DIR=$work

wait_ready() { for _ in $(seq 100); do grep -q ready "$1" 2>/dev/null && return; sleep 0.1; done; echo "no server: $1" >&2; exit 1; }
tonic_server() { "$tonic" server --addr "127.0.0.1:$1" > "$work/s-$1.log" 2>&1 & wait_ready "$work/s-$1.log"; }
py_server() { python3 "$here/py_echo.py" server --host 127.0.0.1 --port "$1" --workers 400 > "$work/s-$1.log" 2>&1 & wait_ready "$work/s-$1.log"; }

# capture NAME PORT1 PORT2 CLIENT-COMMAND...: records loopback traffic on the two ports.
capture() {
  local name=$1 p1=$2 p2=$3; shift 3
  tcpdump -i lo -B 262144 -U -w "$work/$name.pcap" "tcp port $p1 or tcp port $p2" 2> "$out/$name.capture.txt" & local td=$!
  sleep 2
  "$@"
  sleep 1; kill -INT $td; wait $td || true
}

tonic_server 50091; tonic_server 50092
capture tonic-basic-lo 50091 50092 "$tonic" client --target http://127.0.0.1:50091 --target http://127.0.0.1:50092 \
  --scenario basic --log "$out/tonic-basic.calls.jsonl"
cp "$work/tonic-basic-lo.pcap" "$out/tonic-basic-lo.pcap"

tonic_server 50093; tonic_server 50094
capture tonic-edge-lo 50093 50094 "$tonic" client --target http://127.0.0.1:50093 --target http://127.0.0.1:50094 \
  --scenario edge --log "$out/tonic-edge.calls.jsonl"
gzip -9 -c "$work/tonic-edge-lo.pcap" > "$out/tonic-edge-lo.pcap.gz"

tonic_server 50095; tonic_server 50096
capture py-to-tonic-edge-lo 50095 50096 python3 "$here/py_echo.py" client --target 127.0.0.1:50095 \
  --target 127.0.0.1:50096 --scenario edge --log "$out/py-to-tonic-edge.calls.jsonl"
gzip -9 -c "$work/py-to-tonic-edge-lo.pcap" > "$out/py-to-tonic-edge-lo.pcap.gz"

py_server 50097; py_server 50098
capture tonic-to-py-basic-lo 50097 50098 "$tonic" client --target http://127.0.0.1:50097 \
  --target http://127.0.0.1:50098 --scenario basic --log "$out/tonic-to-py-basic.calls.jsonl"
cp "$work/tonic-to-py-basic-lo.pcap" "$out/tonic-to-py-basic-lo.pcap"

# A join after both HPACK tables filled and evicted: 300 calls, then the capture, then 240.
tonic_server 50101
"$tonic" client --target http://127.0.0.1:50101 --scenario midstream --marker "$work/go" \
  --log "$out/tonic-midstream.calls.jsonl" & pc=$!
for _ in $(seq 300); do [ -e "$work/go.ready" ] && break; sleep 0.1; done
tcpdump -i lo -B 262144 -U -w "$out/tonic-midstream-lo.pcap" tcp port 50101 2> "$work/tonic-midstream-lo.capture.txt" & td=$!
sleep 2; touch "$work/go"; wait $pc; sleep 1; kill -INT $td; wait $td || true
mv "$work/tonic-midstream-lo.capture.txt" "$out/tonic-midstream-lo.pcap.capture.txt"

# Payloads the tonic client logs as proto3 JSON, compressed with zstd, gzip and deflate.
tonic_server 50102
tcpdump -i lo -B 262144 -U -w "$out/tonic-bodies-lo.pcap" tcp port 50102 2> "$out/tonic-bodies-lo.pcap.capture.txt" & td=$!
sleep 2
"$tonic" client --target http://127.0.0.1:50102 --scenario bodies --log "$out/tonic-bodies.calls.jsonl"
sleep 1; kill -INT $td; wait $td || true

for f in tonic-basic-lo.pcap tonic-edge-lo.pcap.gz py-to-tonic-edge-lo.pcap.gz tonic-to-py-basic-lo.pcap tonic-midstream-lo.pcap tonic-bodies-lo.pcap; do
  python3 "$here/oracle.py" "$out/$f" > "$out/$f.streams.json"
done
for n in tonic-basic-lo tonic-edge-lo py-to-tonic-edge-lo tonic-to-py-basic-lo; do
  case $n in *.pcap) ;; esac
  f=$out/$n.capture.txt; g=$(ls "$out/$n".pcap* | grep -v json | grep -v txt | head -1); mv "$f" "$g.capture.txt"
done
# Metadata too big for one 16 KiB frame must have travelled in CONTINUATION frames.
zcat "$out/py-to-tonic-edge-lo.pcap.gz" > "$work/c.pcap"
tshark -r "$work/c.pcap" -d tcp.port==50095,http2 -Y "http2.type == 9" 2>/dev/null | grep -q . || { echo "no CONTINUATION" >&2; exit 1; }
grep -H dropped "$out"/*tonic*.capture.txt
ls -l "$out" | grep tonic
