#!/usr/bin/env bash
# Makes testdata/captures/sonora-web-lo.pcap.gz: a second gRPC-Web implementation, python sonora
# 0.2.3 (gen/sonora_echo.py), over HTTP/1.1, binary and text mode, tcpdump running from before
# the first connection.
#   The server: sonora's WSGI app (sonora.wsgi.grpcWSGI) on waitress 3.0.2, HTTP/1.1. Unary
#     responses have a Content-Length and keep the connection; waitress ends every chunked
#     response (the ServerStreams) with "Connection: close", so the client opens a new connection
#     for the call after a stream.
#   The client: the same 6 calls twice (Unary OK 1/1, Unary OK with a 70 000-byte reply, Unary
#     NOT_FOUND, Unary INVALID_ARGUMENT with a non-ASCII message sonora percent-encodes,
#     ServerStream 1/5 OK, ServerStream 1/2 ending UNAVAILABLE): first with sonora's own client
#     (urllib3; application/grpc-web+proto, no Accept header), then in gRPC-Web text mode with an
#     http.client client (content-type and accept application/grpc-web-text, x-grpc-web: 1, base64
#     bodies); sonora encodes each response frame as its own base64 piece, so a body of a message
#     and the trailer frame has padding in its middle.
# Every call sends x-call-id (its call_id in sonora-web.calls.jsonl); the reply and the response
# header x-peer carry the client's address as the server saw it (client_peer); an x-request-tag
# comes back as x-echo-tag in the trailer frame. check_connect.py then pairs every logged call with
# its request on the wire and checks method, path, content-types, messages each way and status.
# Python only: no Go, no node, no cargo. Needs root. Installs what it needs (GRPCTAP_NO_INSTALL=1
# skips that): tcpdump, tshark from Debian; grpcio-tools when python3 has none; sonora and waitress
# into a virtualenv in the temporary directory that sees the system's packages (sonora pins
# urllib3 < 2, which is kept out of the system's python). With GRPCTAP_NO_INSTALL=1 the python is
# GRPCTAP_SONORA_PYTHON (default python3), which must import sonora, waitress, grpc and grpc_tools.
# GRPCTAP_CAPTURES_OUT writes elsewhere.
# Usage: testdata/gen/make_sonora_capture.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
out=${GRPCTAP_CAPTURES_OUT:-$root/testdata/captures}
mkdir -p "$out"
work=$(mktemp -d)
name=sonora-web
port=50243
td=
srv=
trap '[ -n "$td" ] && kill -INT $td 2> /dev/null; [ -n "$srv" ] && kill $srv 2> /dev/null; rm -rf "$work"' EXIT

py=${GRPCTAP_SONORA_PYTHON:-python3}
if [ -z "${GRPCTAP_NO_INSTALL:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  pkgs="tcpdump tshark"
  # shellcheck disable=SC2086
  apt-get install -y -q $pkgs > "$work/apt.log" 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q $pkgs > "$work/apt.log"; }
  python3 -c "import grpc, grpc_tools" 2> /dev/null || pip install -q grpcio grpcio-tools
  python3 -m venv --system-site-packages "$work/venv"
  nice -n 19 "$work/venv/bin/pip" install -q --disable-pip-version-check sonora==0.2.3 waitress==3.0.2
  py=$work/venv/bin/python
fi
"$py" -c "import sonora, waitress, grpc, grpc_tools"
mkdir -p "$work/py"
"$py" -m grpc_tools.protoc -I "$here/../proto" --python_out="$work/py" --grpc_python_out="$work/py" echo.proto
export ECHO_PB_DIR=$work/py

"$py" "$here/sonora_echo.py" server --host 127.0.0.1 --port $port > "$work/server.log" 2>&1 &
srv=$!
for _ in $(seq 150); do grep -q ready "$work/server.log" 2> /dev/null && break; sleep 0.1; done
grep -q ready "$work/server.log" || { echo "no server" >&2; cat "$work/server.log" >&2; exit 1; }
tcpdump -i lo -B 262144 -U -w "$work/$name-lo.pcap" "tcp port $port" 2> "$out/$name-lo.pcap.gz.capture.txt" &
td=$!
sleep 2
nice -n 10 "$py" "$here/sonora_echo.py" client --target "127.0.0.1:$port" --log "$out/$name.calls.jsonl" \
  > "$work/client.log" 2>&1 || { echo "$name: client failed" >&2; cat "$work/client.log" >&2; exit 1; }
sleep 1
kill -INT $td
wait $td || true
td=
kill $srv
wait $srv 2> /dev/null || true
srv=
f=$out/$name-lo.pcap.gz
gzip -9 -c "$work/$name-lo.pcap" > "$f"
python3 "$here/oracle.py" "$f" > "$f.streams.json"
grep -q "^0 packets dropped by kernel" "$f.capture.txt" || { echo "$name: drops: $(cat "$f.capture.txt")" >&2; exit 1; }
echo "$name: $(wc -l < "$out/$name.calls.jsonl") calls, $(stat -c %s "$f") bytes; $(grep dropped "$f.capture.txt" | tr '\n' ' ')"
python3 "$here/check_connect.py" "$f" "$port" "$out/$name.calls.jsonl" 1.1
ls -l "$out/$name"*
