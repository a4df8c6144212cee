#!/usr/bin/env bash
# Makes the deadlines captures in testdata/captures/: per client stack (grpc-go, grpc-js, python
# grpcio, tonic) against the grpc-go server (which never ends a call at its deadline itself, so
# every reset on the wire is the client's), and against the python server (which does), one
# connection captured from its start: ~60 Unary
# calls past their grpc-timeout (20 ms .. 1 s, some 4 at once), calls that finish just before it,
# ServerStreams that hit it mid-stream, client cancellations at 70-80 % of it. See
# scenario_deadlines in py_echo.py. Then measures, with tshark, how early each stack resets:
# measure_deadlines.py, written up in DEADLINES.md.
# Needs root; installs what it needs like make_midjoin_captures.sh (GRPCTAP_NO_INSTALL=1 skips).
# Usage: testdata/gen/make_deadline_captures.sh [NAME...]   (default: every capture)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=capture_lib.sh
source "$here/capture_lib.sh"
install_deps
build

# deadlines NAME CLIENT SERVER PORT: tcpdump first, then the server and the client.
deadlines() {
  local name=$1 cstack=$2 sstack=$3 port=$4
  tcpdump -i lo -B 262144 -U -w "$work/$name-lo.pcap" "tcp port $port" 2> "$out/$name-lo.pcap.gz.capture.txt" &
  td=$!
  sleep 2
  server "$sstack" "$port"
  client "$cstack" "$port" --scenario deadlines --log "$out/$name.calls.jsonl"
  sleep 1
  kill -INT $td
  wait $td || true
  td=
  stop_servers
  gzip -9 -c "$work/$name-lo.pcap" > "$out/$name-lo.pcap.gz"
  python3 "$here/oracle.py" "$out/$name-lo.pcap.gz" > "$out/$name-lo.pcap.gz.streams.json"
  check "$name" "$port"
}

# NAME-deadlines: NAME's client against the grpc-go server; X-to-py-deadlines: against the
# python server (C-core ends a call at its deadline itself: trailers with grpc-status 4).
all="go-deadlines node-deadlines py-deadlines tonic-deadlines go-to-py-deadlines node-to-py-deadlines py-to-py-deadlines tonic-to-py-deadlines"
for name in ${*:-$all}; do
  case $name in
    go-deadlines) deadlines "$name" go go 50211 ;;
    node-deadlines) deadlines "$name" node go 50212 ;;
    py-deadlines) deadlines "$name" py go 50213 ;;
    tonic-deadlines) deadlines "$name" tonic go 50214 ;;
    go-to-py-deadlines) deadlines "$name" go py 50215 ;;
    node-to-py-deadlines) deadlines "$name" node py 50216 ;;
    py-to-py-deadlines) deadlines "$name" py py 50217 ;;
    tonic-to-py-deadlines) deadlines "$name" tonic py 50218 ;;
    *) echo "unknown capture $name" >&2; exit 2 ;;
  esac
done
for name in ${*:-$all}; do
  python3 "$here/measure_deadlines.py" "$out/$name-lo.pcap.gz" "$out/$name.calls.jsonl"
done
ls -l "$out"/*deadlines*
