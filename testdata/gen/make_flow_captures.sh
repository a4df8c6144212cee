#!/usr/bin/env bash
# Makes the flow captures in testdata/captures/: how calls use (or misuse) their connection and
# their deadlines, each captured from before its connections (tcpdump first), the client's own log
# as ground truth. The clients are go-echo's (Debian's grpc-go 1.33; scenarios in go-echo/flows.go).
#   slow-consumer     a ServerStream of 50 replies of 24 KiB read one every 200 ms by a client
#                     with 65535-byte stream and connection windows (no BDP): the grpc-go server
#                     sits at a zero stream window with data waiting; one Unary a second on the
#                     same connection meanwhile. NAME.messages.jsonl: each reply's size and when
#                     Recv returned it.
#   unbounded-window  the opposite: a client dialled with 1 GiB stream and connection windows
#                     (SETTINGS_INITIAL_WINDOW_SIZE 1073741824, a connection WINDOW_UPDATE to 1 GiB)
#                     reads a ServerStream of 50 replies of 64 KiB one every 50 ms: the server
#                     sends them all at once, its windows never near 0, no WINDOW_UPDATE after the
#                     first. NAME.calls.jsonl has window: the windows the client configured.
#   max-streams       a grpc-go server with MaxConcurrentStreams(2) (SETTINGS_MAX_CONCURRENT_STREAMS
#                     2) whose Unary sleeps 200 ms; three waves of 20 calls issued at once on one
#                     connection (at once, one every 50 ms, at once with 1 s deadlines): they queue
#                     in the client; start is when the application issued the call.
#   leaks-idle        streams opened and never closed (3 Bidi, a Store.Watch, 2 ServerStreams, a
#                     ClientStream), idle to the end of the capture (the client process is released
#                     after tcpdump stops and logs them OPEN), amid ~130 short calls: Echo.Unary
#                     always with a deadline, Store.Get never; Echo.Unary calls whose server
#                     sleeps 300 ms past a 100 ms deadline: from the grpc-go client to the grpc-go
#                     server (client RST_STREAM, the server sends nothing after it) and to the
#                     python server (C-core ends the call at the deadline itself), and from curl
#                     (curl_calls.py: grpc-timeout sent, never enforced) to both: the grpc-go
#                     server's OK reply goes out 200 ms after the deadline, C-core's grpc-status 4
#                     at it.
#   deadlines-nested  a client calls a relay (go-echo relay) with a 1 s deadline and a W3C
#                     traceparent; the relay calls a second server with the same trace id and a new
#                     span id, with no deadline (drop), a 10 s one (long) or the remaining budget
#                     (budget, the control); some upstream calls outlive the client's deadline.
#                     NAME.children.jsonl is the relay's log of its outgoing calls.
# Then check_flows.py reads each capture with tshark and compares it with the logs.
# Needs root. Installs what it needs (GRPCTAP_NO_INSTALL=1 skips that): tcpdump, tshark, curl,
# golang-go golang-google-grpc-dev golang-goprotobuf-dev protobuf-compiler from Debian; grpcio,
# grpcio-tools, grpcio-status from PyPI. No cargo, no node. GRPCTAP_CAPTURES_OUT writes elsewhere.
# Usage: testdata/gen/make_flow_captures.sh [NAME...]   (default: all five)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=capture_lib.sh
source "$here/capture_lib.sh"
names=${*:-slow-consumer unbounded-window max-streams leaks-idle deadlines-nested}

if [ -z "${GRPCTAP_NO_INSTALL:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  pkgs="tcpdump tshark curl golang-go golang-google-grpc-dev golang-goprotobuf-dev protobuf-compiler"
  # shellcheck disable=SC2086
  apt-get install -y -q $pkgs > "$work/apt.log" 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q $pkgs > "$work/apt.log"; }
  python3 -c "import grpc, grpc_tools, grpc_status" 2> /dev/null || pip install -q grpcio grpcio-tools grpcio-status
fi
curl --version | grep -q nghttp2 || { echo "curl without nghttp2 (no HTTP/2)" >&2; exit 1; }
build_go
build_py

# capture_start NAME PORT...: tcpdump on lo for those server ports.
capture_start() {
  local name=$1 filter="tcp port $2" p
  for p in "${@:3}"; do filter="$filter or tcp port $p"; done
  tcpdump -i lo -B 262144 -U -w "$work/$name-lo.pcap" "$filter" 2> "$out/$name-lo.pcap.gz.capture.txt" &
  td=$!
  sleep 2
}
# capture_stop NAME PORT: stops tcpdump and the servers, writes the gzipped pcap and its streams.
capture_stop() { stop_capture "$1"; }
# goclient NAME PORT ARGS...: the go client, its output kept for when it fails.
goclient() {
  local name=$1 port=$2
  shift 2
  client go "$port" "$@" > "$work/$name.client.log" 2>&1 || { echo "$name: client failed" >&2; cat "$work/$name.client.log" >&2; exit 1; }
}

slow_consumer() {
  local name=slow-consumer port=50291
  capture_start "$name" $port
  server go $port
  goclient "$name" $port --scenario slow-consumer --log "$out/$name.calls.jsonl" --messages "$out/$name.messages.jsonl"
  sleep 1
  capture_stop "$name"
  check "$name" $port
  python3 "$here/check_flows.py" slow-consumer "$out/$name-lo.pcap.gz" $port "$out/$name.calls.jsonl" "$out/$name.messages.jsonl"
}

unbounded_window() {
  local name=unbounded-window port=50297
  capture_start "$name" $port
  server go $port
  goclient "$name" $port --scenario unbounded-window --window $((1 << 30)) --log "$out/$name.calls.jsonl"
  sleep 1
  capture_stop "$name"
  check "$name" $port
  python3 "$here/check_flows.py" unbounded-window "$out/$name-lo.pcap.gz" $port "$out/$name.calls.jsonl"
}

max_streams() {
  local name=max-streams port=50292
  capture_start "$name" $port
  server go $port --max-streams 2
  goclient "$name" $port --scenario max-streams --log "$out/$name.calls.jsonl"
  sleep 1
  capture_stop "$name"
  check "$name" $port
  python3 "$here/check_flows.py" max-streams "$out/$name-lo.pcap.gz" $port "$out/$name.calls.jsonl"
}

leaks_idle() {
  local name=leaks-idle port=50293 pyport=50294 marker=$work/leaks.marker
  capture_start "$name" $port $pyport
  server go $port
  server py $pyport
  rm -f "$marker" "$marker.ready" "$work/$name.curl.jsonl"
  client go $port --target2 "127.0.0.1:$pyport" --scenario leaks --log "$work/$name.go.jsonl" --marker "$marker" \
    > "$work/$name.client.log" 2>&1 &
  local cpid=$!
  # curl, on connections of its own while the go client's traffic goes on: grpc-timeout sent,
  # never enforced (no RST_STREAM at the deadline). Calls 501.. to the grpc-go server, 511.. to
  # the python one; connections 2...
  sleep 3
  python3 "$here/curl_calls.py" $port 2 501 "$work/$name.curl.jsonl" 100m:300 100m:300 1S:20 100m:300 \
    && sleep 1 && python3 "$here/curl_calls.py" $pyport 6 511 "$work/$name.curl.jsonl" 100m:300 1S:20 100m:300 \
    || { kill $cpid 2> /dev/null; exit 1; }
  for _ in $(seq 600); do [ -e "$marker.ready" ] && break; kill -0 $cpid 2> /dev/null || break; sleep 0.1; done
  [ -e "$marker.ready" ] || { echo "$name: client failed" >&2; cat "$work/$name.client.log" >&2; kill $cpid 2> /dev/null; exit 1; }
  sleep 1 # only the open streams left, idle (no packets: the capture's last packet is the traffic's)
  kill -INT $td
  wait $td || true
  td=
  touch "$marker" # the client logs its open streams OPEN and exits (its connections close unseen)
  wait $cpid || { echo "$name: client failed" >&2; cat "$work/$name.client.log" >&2; exit 1; }
  cat "$work/$name.go.jsonl" "$work/$name.curl.jsonl" > "$out/$name.calls.jsonl"
  stop_servers
  gzip -9 -c "$work/$name-lo.pcap" > "$out/$name-lo.pcap.gz"
  python3 "$here/oracle.py" "$out/$name-lo.pcap.gz" > "$out/$name-lo.pcap.gz.streams.json"
  check "$name" $port
  python3 "$here/check_flows.py" leaks-idle "$out/$name-lo.pcap.gz" $port,$pyport "$out/$name.calls.jsonl"
}

deadlines_nested() {
  local name=deadlines-nested port=50295 upport=50296
  capture_start "$name" $port $upport
  server go $upport
  "$work/go-echo" relay --addr "127.0.0.1:$port" --upstream "127.0.0.1:$upport" --children "$out/$name.children.jsonl" \
    > "$work/server-$port.log" 2>&1 &
  servers+=($!)
  wait_ready "$work/server-$port.log"
  goclient "$name" $port --scenario nested --log "$out/$name.calls.jsonl"
  sleep 1
  capture_stop "$name"
  check "$name" $port
  python3 "$here/check_flows.py" deadlines-nested "$out/$name-lo.pcap.gz" $port,$upport "$out/$name.calls.jsonl" "$out/$name.children.jsonl"
}

for name in $names; do
  case $name in
    slow-consumer) slow_consumer ;;
    unbounded-window) unbounded_window ;;
    max-streams) max_streams ;;
    leaks-idle) leaks_idle ;;
    deadlines-nested) deadlines_nested ;;
    *) echo "unknown capture $name" >&2; exit 2 ;;
  esac
done
for name in $names; do ls -l "$out/$name"[.-]*; done
