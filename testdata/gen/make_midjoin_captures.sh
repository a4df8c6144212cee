#!/usr/bin/env bash
# Makes the midjoin captures in testdata/captures/: captures that join two long-lived
# connections mid-way, as a tap started on a running host sees them. For each pairing, the
# client opens two connections, starts long-lived streams, makes 200 calls per connection over
# every method of Echo and Store (so both sides' HPACK tables are full of :path, grpc-status,
# x-request-tag values), then writes MARKER.ready; tcpdump starts; 2 s later MARKER releases the
# client, which makes 300 more calls per connection while the long streams end (OK, NOT_FOUND,
# cancelled). See scenario_midjoin in py_echo.py (the same calls in every stack).
# Needs root. Installs what it needs (GRPCTAP_NO_INSTALL=1 skips that): Debian's grpc-go,
# protoc, tcpdump, tshark; grpcio from PyPI; @grpc/grpc-js from npm (npm ci); cargo builds
# tonic-echo (CARGO_TARGET_DIR is honoured). GRPCTAP_CAPTURES_OUT writes elsewhere.
# Usage: testdata/gen/make_midjoin_captures.sh [NAME...]   (default: every pairing)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=capture_lib.sh
source "$here/capture_lib.sh"
install_deps
build

# midjoin NAME CLIENT SERVER PORT
midjoin() {
  local name=$1 cstack=$2 sstack=$3 port=$4 marker=$work/go-$1
  server "$sstack" "$port"
  client "$cstack" "$port" --scenario midjoin --marker "$marker" --log "$out/$name.calls.jsonl" > "$work/$name.client.log" 2>&1 &
  local pc=$!
  for _ in $(seq 600); do [ -e "$marker.ready" ] && break; sleep 0.1; done
  [ -e "$marker.ready" ] || { echo "$name: the client never got ready" >&2; cat "$work/$name.client.log" >&2; exit 1; }
  tcpdump -i lo -B 262144 -U -w "$work/$name-lo.pcap" "tcp port $port" 2> "$out/$name-lo.pcap.gz.capture.txt" &
  td=$!
  sleep 2
  touch "$marker"
  wait $pc || { echo "$name: client failed" >&2; cat "$work/$name.client.log" >&2; exit 1; }
  sleep 1
  kill -INT $td
  wait $td || true
  td=
  stop_servers
  gzip -9 -c "$work/$name-lo.pcap" > "$out/$name-lo.pcap.gz"
  python3 "$here/oracle.py" "$out/$name-lo.pcap.gz" > "$out/$name-lo.pcap.gz.streams.json"
  check "$name" "$port"
}

all="go-midjoin py-to-go-midjoin go-to-py-midjoin node-to-py-midjoin py-to-node-midjoin tonic-to-go-midjoin node-midjoin"
for name in ${*:-$all}; do
  case $name in
    go-midjoin) midjoin "$name" go go 50201 ;;
    py-to-go-midjoin) midjoin "$name" py go 50202 ;;
    go-to-py-midjoin) midjoin "$name" go py 50203 ;;
    node-to-py-midjoin) midjoin "$name" node py 50204 ;;
    py-to-node-midjoin) midjoin "$name" py node 50205 ;;
    tonic-to-go-midjoin) midjoin "$name" tonic go 50206 ;;
    node-midjoin) midjoin "$name" node node 50207 ;;
    *) echo "unknown capture $name" >&2; exit 2 ;;
  esac
done
ls -l "$out"/*midjoin*
