#!/usr/bin/env bash
# Makes the streams captures in testdata/captures/: long streams and protobuf float fields, with a
# per-message ground truth. One connection captured from its start (tcpdump first), on which the
# client makes, in order (scenario_streams in py_echo.py): Echo.Unary; Gauge.Latest; Echo.Bidi
# 200 requests / 200 replies in lockstep (each request sent after the reply to the one before);
# Echo.Bidi 200 / 300 (reply_count 1 and 2 in turn, sent without waiting); Echo.ServerStream
# 1 / 120 and 1 / 1000; Echo.ClientStream 250 / 1; Gauge.Sample 1 / 50; Gauge.Report 40 / 1;
# Echo.ServerStream 1 / 70 ending UNAVAILABLE; Gauge.Latest INVALID_ARGUMENT; Gauge.Latest;
# Echo.Unary. The Gauge messages (proto/gauge.proto) carry float, double and repeated float
# fields: values no float32 holds exactly, the float32 extremes, NaN and the infinities. Besides
# NAME.calls.jsonl the client writes NAME.messages.jsonl: every message it sent or received, in
# the order it did, as protobuf JSON (python: json_format.MessageToDict; grpc-go: jsonpb).
# The server is python grpcio (Echo, Store and Gauge); go-to-py-streams is the same calls from
# the grpc-go client (go-echo, built offline from Debian's grpc-go, no cargo).
# Needs root. Installs what it needs (GRPCTAP_NO_INSTALL=1 skips that): tcpdump, tshark (and for
# go-to-py-streams golang-go golang-google-grpc-dev golang-goprotobuf-dev protobuf-compiler) from
# Debian; grpcio, grpcio-tools, grpcio-status from PyPI. GRPCTAP_CAPTURES_OUT writes elsewhere.
# Usage: testdata/gen/make_streams_capture.sh [NAME...]   (default: py-streams go-to-py-streams)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=capture_lib.sh
source "$here/capture_lib.sh"
names=${*:-py-streams go-to-py-streams}
want_go=
case " $names " in *" go-to-py-streams "*) want_go=1 ;; esac

if [ -z "${GRPCTAP_NO_INSTALL:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  pkgs="tcpdump tshark"
  if [ -n "$want_go" ]; then pkgs="$pkgs golang-go golang-google-grpc-dev golang-goprotobuf-dev protobuf-compiler"; fi
  # shellcheck disable=SC2086
  apt-get install -y -q $pkgs > "$work/apt.log" 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q $pkgs > "$work/apt.log"; }
  python3 -c "import grpc, grpc_tools, grpc_status" 2> /dev/null || pip install -q grpcio grpcio-tools grpcio-status
fi
build_py
if [ -n "$want_go" ]; then build_go; fi

# streams NAME CLIENT PORT: the server, then tcpdump, then the client's one connection.
streams() {
  local name=$1 cstack=$2 port=$3
  server py "$port"
  tcpdump -i lo -B 262144 -U -w "$work/$name-lo.pcap" "tcp port $port" 2> "$out/$name-lo.pcap.gz.capture.txt" &
  td=$!
  sleep 2
  client "$cstack" "$port" --scenario streams --log "$out/$name.calls.jsonl" --messages "$out/$name.messages.jsonl" \
    > "$work/$name.client.log" 2>&1 || { echo "$name: client failed" >&2; cat "$work/$name.client.log" >&2; exit 1; }
  sleep 1
  kill -INT $td
  wait $td || true
  td=
  stop_servers
  gzip -9 -c "$work/$name-lo.pcap" > "$out/$name-lo.pcap.gz"
  python3 "$here/oracle.py" "$out/$name-lo.pcap.gz" > "$out/$name-lo.pcap.gz.streams.json"
  check "$name" "$port"
  echo "$name: $(wc -l < "$out/$name.messages.jsonl") messages logged"
}

for name in $names; do
  case $name in
    py-streams) streams "$name" py 50231 ;;
    go-to-py-streams) streams "$name" go 50232 ;;
    *) echo "unknown capture $name" >&2; exit 2 ;;
  esac
done
ls -l "$out"/*-streams[.-]*
