#!/usr/bin/env bash
# Makes the Connect and gRPC-Web captures in testdata/captures/: connect-node (gen/connect-echo)
# serving the Connect, gRPC and gRPC-Web protocols for Echo on one port, and its client making
# calls over each (scenario() in connect_echo.js), tcpdump running from before the first
# connection.
#   connect-h2: the server over HTTP/2 cleartext (h2c, prior knowledge). One connection per
#     transport: Connect with application/proto, Connect with application/json, gRPC-Web
#     (application/grpc-web+proto), gRPC (application/grpc), each the same 17 calls (Unary OK,
#     empty and 70 000 bytes, Unary NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE, PERMISSION_DENIED,
#     INTERNAL, RESOURCE_EXHAUSTED with a non-ASCII multi-line message, ServerStream 1/5 and 1/2
#     ending UNAVAILABLE, Unary and ServerStream past their timeout, ClientStream 3/1 and 2/0
#     ABORTED, Bidi 3/4 and 2/2 FAILED_PRECONDITION); Connect GET (proto, then json: 3 calls each,
#     one per connection); then one connection carrying the four kinds in turn (OK, NOT_FOUND) and
#     four ServerStreams of different kinds at once.
#   connect-h1: the server over HTTP/1.1. The same over Connect proto, Connect json and gRPC-Web
#     (no gRPC: it needs HTTP/2), 16 calls each: the Bidi is answered HTTP 505 by the server and
#     there is no failing Bidi; ClientStreams go as chunked request bodies. Each transport has its
#     own keep-alive agent of one socket: a call past its timeout closes the socket, the next call
#     opens another. Then one keep-alive connection carrying the three kinds in turn.
#   connect-details (not made by default): errors carrying error details, from both servers at once
#     (HTTP/2 on port 50245, HTTP/1.1 on 50246; client --scenario details, detailsScenario() in
#     connect_echo.js). One connection per transport: Connect proto, Connect json, gRPC-Web, gRPC
#     (HTTP/2 only), each Unary INVALID_ARGUMENT with one detail, Unary FAILED_PRECONDITION with
#     two, ServerStream 2 replies then UNAVAILABLE with one detail, Unary NOT_FOUND without
#     details; then Connect GET proto and json, each a Unary PERMISSION_DENIED with two details.
#     The details are an EchoReply (index: the call's call_id) and an EchoRequest; the log's
#     "details" field has them as the client decoded them (type, proto3 JSON value).
#     check_connect.py and check_connect_details.py check each port's half.
# Every call sends x-call-id (its call_id in NAME.calls.jsonl); the reply and the response header
# x-peer carry the client's address as the server saw it (client_peer). Connect GET needs the
# method marked NO_SIDE_EFFECTS, which echo.proto does not say: both ends mark Echo.Unary so in
# their copy of the descriptor (see connect_echo.js). check_connect.py then pairs every logged call
# with its request on the wire (x-call-id) and checks method, path, content-types and status.
# Node only: no Go, no python stack, no cargo. Needs root. Installs what it needs
# (GRPCTAP_NO_INSTALL=1 skips that): tcpdump, tshark (and nodejs, npm if there is no npm) from
# Debian; npm ci in gen/connect-echo. GRPCTAP_CAPTURES_OUT writes elsewhere.
# Usage: testdata/gen/make_connect_captures.sh [NAME...]   (default: connect-h2 connect-h1; also
# connect-details)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=capture_lib.sh
source "$here/capture_lib.sh"
names=${*:-connect-h2 connect-h1}

if [ -z "${GRPCTAP_NO_INSTALL:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  pkgs="tcpdump tshark"
  command -v npm > /dev/null || pkgs="$pkgs nodejs npm" # a machine's own node (with npm) is kept
  # shellcheck disable=SC2086
  apt-get install -y -q $pkgs > "$work/apt.log" 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q $pkgs > "$work/apt.log"; }
  (cd "$here/connect-echo" && nice -n 19 npm ci --no-audit --no-fund --loglevel=error)
fi

# finish NAME: stops tcpdump and the servers, writes the capture (gzipped) and its oracle, checks
# that the kernel dropped nothing.
finish() {
  local name=$1 f=$out/$1-lo.pcap.gz
  sleep 1
  kill -INT $td
  wait $td || true
  td=
  stop_servers
  gzip -9 -c "$work/$name-lo.pcap" > "$f"
  python3 "$here/oracle.py" "$f" > "$f.streams.json"
  grep -q "^0 packets dropped by kernel" "$f.capture.txt" || { echo "$name: drops: $(cat "$f.capture.txt")" >&2; exit 1; }
  echo "$name: $(wc -l < "$out/$name.calls.jsonl") calls, $(stat -c %s "$f") bytes; $(grep dropped "$f.capture.txt" | tr '\n' ' ')"
}

# capture NAME HTTP PORT: the server, then tcpdump, then the client.
capture() {
  local name=$1 httpv=$2 port=$3 log=$work/server-$3.log
  node "$here/connect-echo/connect_echo.js" server --addr "127.0.0.1:$port" --http "$httpv" > "$log" 2>&1 &
  servers+=($!)
  wait_ready "$log"
  tcpdump -i lo -B 262144 -U -w "$work/$name-lo.pcap" "tcp port $port" 2> "$out/$name-lo.pcap.gz.capture.txt" &
  td=$!
  sleep 2
  nice -n 10 node "$here/connect-echo/connect_echo.js" client --target "127.0.0.1:$port" --http "$httpv" \
    --log "$out/$name.calls.jsonl" > "$work/$name.client.log" 2>&1 \
    || { echo "$name: client failed" >&2; cat "$work/$name.client.log" >&2; exit 1; }
  finish "$name"
  local f=$out/$name-lo.pcap.gz
  python3 "$here/check_connect.py" "$f" "$port" "$out/$name.calls.jsonl" "$httpv"
}

# capture_details NAME PORT_H2 PORT_H1: both servers, tcpdump on both ports, the client's details
# scenario against both; then each port's half checked on its own.
capture_details() {
  local name=$1 p2=$2 p1=$3 f=$out/$1-lo.pcap.gz
  node "$here/connect-echo/connect_echo.js" server --addr "127.0.0.1:$p2" --http 2 > "$work/server-$p2.log" 2>&1 &
  servers+=($!)
  node "$here/connect-echo/connect_echo.js" server --addr "127.0.0.1:$p1" --http 1.1 > "$work/server-$p1.log" 2>&1 &
  servers+=($!)
  wait_ready "$work/server-$p2.log"
  wait_ready "$work/server-$p1.log"
  tcpdump -i lo -B 262144 -U -w "$work/$name-lo.pcap" "tcp port $p2 or tcp port $p1" 2> "$f.capture.txt" &
  td=$!
  sleep 2
  nice -n 10 node "$here/connect-echo/connect_echo.js" client --scenario details --target "127.0.0.1:$p2" \
    --target-h1 "127.0.0.1:$p1" --log "$out/$name.calls.jsonl" > "$work/$name.client.log" 2>&1 \
    || { echo "$name: client failed" >&2; cat "$work/$name.client.log" >&2; exit 1; }
  finish "$name"
  local port httpv
  for port in $p2 $p1; do
    httpv=2
    [ "$port" = "$p1" ] && httpv=1.1
    tcpdump -r "$work/$name-lo.pcap" -w "$work/$name-$port.pcap" "tcp port $port" 2> /dev/null
    python3 -c 'import json, sys
for ln in open(sys.argv[1]):
    if json.loads(ln)["http"] == sys.argv[2]:
        sys.stdout.write(ln)' "$out/$name.calls.jsonl" "$httpv" > "$work/$name-$port.calls.jsonl"
    python3 "$here/check_connect.py" "$work/$name-$port.pcap" "$port" "$work/$name-$port.calls.jsonl" "$httpv"
    python3 "$here/check_connect_details.py" "$work/$name-$port.pcap" "$port" "$work/$name-$port.calls.jsonl" "$httpv" --examples
  done
}

for name in $names; do
  case $name in
    connect-h2) capture "$name" 2 50241 ;;
    connect-h1) capture "$name" 1.1 50242 ;;
    connect-details) capture_details "$name" 50245 50246 ;;
    *) echo "unknown capture $name" >&2; exit 2 ;;
  esac
done
ls -l "$out"/connect-*
