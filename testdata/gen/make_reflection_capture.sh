#!/usr/bin/env bash
# Makes the reflection captures in testdata/captures/: a tap that joined a long-lived connection
# mid-way (its HPACK tables full, :path referenced by index) sees a server reflection exchange
# on new connections, whose FileDescriptorProtos name the services and methods of the calls it
# could not read. The client opens one connection, makes 150 calls over every method of Echo and
# Store (plan() of the midjoin scenario), writes MARKER.ready; tcpdump starts; 2 s later MARKER
# releases the client, which makes, on a new connection, a grpc.reflection.v1
# ServerReflectionInfo exchange as grpcurl does (list_services, file_containing_symbol for each
# service, file_by_filename for missing dependencies) and one Echo call, on another new
# connection the same over v1alpha (plus a method symbol, a file by name, a missing symbol) and
# one Store call, then 200 more calls on the long-lived connection. See scenario_reflect in
# py_echo.py. The server is python grpcio with --reflection (grpcio-reflection's v1alpha
# servicer, and the same under the v1 name: see enable_reflection). node-reflection is the same
# calls from the grpc-js client (echo.js, scenario reflect) against the same python server.
# Python stack only, plus node for node-reflection: no Go, no cargo. Needs root. Installs what it
# needs (GRPCTAP_NO_INSTALL=1 skips that): tcpdump, tshark from Debian; grpcio, grpcio-tools,
# grpcio-status, grpcio-reflection from PyPI; npm ci in gen/node-echo (for node-reflection).
# GRPCTAP_CAPTURES_OUT writes elsewhere.
# Usage: testdata/gen/make_reflection_capture.sh [NAME...]   (default: py-reflection node-reflection)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=capture_lib.sh
source "$here/capture_lib.sh"
names=${*:-py-reflection node-reflection}

if [ -z "${GRPCTAP_NO_INSTALL:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  command -v tcpdump > /dev/null && command -v tshark > /dev/null \
    || { apt-get update -q > /dev/null && apt-get install -y -q tcpdump tshark > "$work/apt.log"; }
  python3 -c "import grpc, grpc_tools, grpc_status, grpc_reflection" 2> /dev/null \
    || pip install -q grpcio grpcio-tools grpcio-status grpcio-reflection
  case " $names " in *" node-reflection "*)
    command -v npm > /dev/null || { apt-get update -q > /dev/null && apt-get install -y -q nodejs npm > "$work/apt.log"; }
    (cd "$here/node-echo" && nice -n 19 npm ci --no-audit --no-fund --loglevel=error) ;;
  esac
fi
mkdir -p "$work/py"
python3 -m grpc_tools.protoc -I "$here/../proto" --python_out="$work/py" --grpc_python_out="$work/py" echo.proto shared.proto
export ECHO_PB_DIR=$work/py
# The node client has no reflection.proto: it loads the two reflection files as the python
# server serves them (a FileDescriptorSet).
python3 "$here/py_echo.py" reflection-descriptors "$work/reflection.fds"
export REFLECTION_FDS=$work/reflection.fds

# reflect NAME CLIENT PORT JOINED_PATH (indexed or literal: see check_reflection.py)
reflect() {
  local name=$1 cstack=$2 port=$3 joined_path=$4 marker=$work/marker-$1
  server py "$port" --reflection
  client "$cstack" "$port" --scenario reflect --marker "$marker" --log "$out/$name.calls.jsonl" > "$work/$name.client.log" 2>&1 &
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
  python3 "$here/check_reflection.py" "$out/$name-lo.pcap.gz" "$port" "$out/$name.calls.jsonl" "$joined_path"
}

for name in $names; do
  case $name in
    py-reflection) reflect "$name" py 50221 indexed ;;
    # grpc-js (nghttp2) never indexes :path: the joined connection's calls stay readable, so this
    # one exercises learning from a grpc-js client's reflection exchange, not naming unread calls.
    node-reflection) reflect "$name" node 50222 literal ;;
    *) echo "unknown capture $name" >&2; exit 2 ;;
  esac
done
ls -l "$out"/*reflection*
