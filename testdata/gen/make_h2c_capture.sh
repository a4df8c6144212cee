#!/usr/bin/env bash
# Makes testdata/captures/go-h2c-lo.pcap.gz: gRPC over HTTP/2 cleartext reached by the HTTP/1.1
# upgrade of RFC 7540 section 3.2, not by prior knowledge. The server is go-echo server --h2c
# (grpc-go's ServeHTTP behind net/http and x/net/http2/h2c, see go-echo/h2c.go); the client is
# curl --http2 (Debian's 7.88, nghttp2), one invocation per connection, several transfers each
# (--next): the first is sent as HTTP/1.1 with "Connection: Upgrade, HTTP2-Settings",
# "Upgrade: h2c" and "HTTP2-Settings", the server answers "HTTP/1.1 101 Switching Protocols" and
# then HTTP/2 (its preface SETTINGS, the response to the first request on stream 1); curl sends the
# client preface after the 101 and its later requests as HTTP/2 streams 3, 5, 7. curl upgrades
# a POST with a body too: the upgrading request of connections 0, 1 and 3 is a gRPC call (its
# request message in the HTTP/1.1 body, Content-Length), that of connection 2 a plain GET.
#   conn 0: Unary OK (upgrade, stream 1); Unary NOT_FOUND with a percent-encoded non-ASCII
#     grpc-message; ServerStream of 4 replies, OK; Unary OK with grpc-timeout 2S and x-request-tag
#     (answered with trailer x-echo-tag).
#   conn 1: ServerStream with grpc-timeout 5S, 3 replies then UNAVAILABLE (upgrade, stream 1);
#     Store.Put OK; Store.Get of a missing id, NOT_FOUND (after response headers with x-peer);
#     Unary with a 70 000-byte reply; Unary PERMISSION_DENIED.
#   conn 2: GET / (upgrade, stream 1; 200 text, not a gRPC call, not in the log); Unary OK with a
#     70 000-byte request and grpc-timeout 1S; Unary INVALID_ARGUMENT.
#   conn 3: Unary with a 70 000-byte request in the upgrading HTTP/1.1 body, OK; Unary OK.
# On the wire, besides: after every stream that ended with trailers, curl sends RST_STREAM
# (STREAM_CLOSED) on it, in the segment of the next request's HEADERS (not after the GET, whose
# response ends with DATA, nor after a connection's last call); curl ends each connection with a
# FIN, no GOAWAY. Neither shows in curl's log: these calls completed (status from the trailers).
# Wireshark's gRPC dissector, lacking the path and content-type of stream 1 (they came in the
# HTTP/1.1 request), reports a dissector bug on stream 1's DATA frames.
# grpc-go answers every call with headers, then trailers (no trailers-only response); its
# ServeHTTP transport does not end a call at its grpc-timeout (curl does not either), so every
# timeout here is ample. Every gRPC call sends x-call-id (its call_id in go-h2c.calls.jsonl).
# The log is the client's: h2c_curl.py reads curl -v --trace-time (request and response headers,
# trailers, stream ids, times), curl -w '%{json}' (local port, status, sizes) and the response
# bodies curl wrote (-o; resp_msgs counts their length-prefixed messages), and h2c_curl.py check
# verifies with tshark that each connection carries one HTTP/1.1 upgrade request, one 101 and
# then HTTP/2 with HEADERS on every stream of the log. tcpdump runs from before the first
# connection. Needs root; installs (GRPCTAP_NO_INSTALL=1 skips that) curl, tcpdump, tshark, Go
# and Debian's grpc-go, goprotobuf, x/net, protobuf-compiler. GRPCTAP_CAPTURES_OUT writes
# elsewhere.
# Usage: testdata/gen/make_h2c_capture.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=capture_lib.sh
source "$here/capture_lib.sh"
name=go-h2c
port=50271

if [ -z "${GRPCTAP_NO_INSTALL:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  pkgs="curl tcpdump tshark protobuf-compiler golang-go golang-google-grpc-dev golang-goprotobuf-dev golang-golang-x-net-dev"
  # shellcheck disable=SC2086
  apt-get install -y -q $pkgs > "$work/apt.log" 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q $pkgs > "$work/apt.log"; }
fi
curl --version | grep -q nghttp2 || { echo "curl without nghttp2 (no --http2)" >&2; exit 1; }
build_go

# The transfers of the connection being built, as curl arguments; conn its index.
args=()
conn=0
# grpc ID PATH TYPE TEXT [HEADER...]: a gRPC call x-call-id ID to PATH, its one request the
# message TYPE (grpctap.test) written in protobuf text format.
grpc() {
  local id=$1 path=$2 type=$3 text=$4
  shift 4
  printf '%s\n' "$text" | protoc -I "$here/../proto" --encode="grpctap.test.$type" echo.proto shared.proto > "$work/msg-$id"
  python3 "$here/h2c_curl.py" frame < "$work/msg-$id" > "$work/req-$id.bin"
  [ ${#args[@]} -eq 0 ] || args+=(--next)
  args+=(--http2 "http://127.0.0.1:$port$path" -H 'content-type: application/grpc' -H 'te: trailers' -H "x-call-id: $id")
  local h
  for h in "$@"; do args+=(-H "$h"); done
  args+=(--data-binary "@$work/req-$id.bin" -o "$work/resp-$id.bin" -w '%{json}\n')
}
# get PATH: a plain GET.
get() {
  [ ${#args[@]} -eq 0 ] || args+=(--next)
  args+=(--http2 "http://127.0.0.1:$port$1" -o "$work/get-$conn-${#args[@]}.txt" -w '%{json}\n')
}
# connect: one curl invocation making the transfers built so far, on one connection.
connect() {
  date +%s.%N > "$work/conn-$conn.t0"
  curl -sS -v --trace-time "${args[@]}" > "$work/conn-$conn.wout" 2> "$work/conn-$conn.curl.txt" \
    || { echo "conn $conn: curl failed" >&2; cat "$work/conn-$conn.curl.txt" >&2; exit 1; }
  args=()
  conn=$((conn + 1))
  sleep 0.2
}

big=$(head -c 70000 /dev/zero | tr '\0' p)
server go "$port" --h2c
tcpdump -i lo -B 262144 -U -w "$work/$name-lo.pcap" "tcp port $port" 2> "$out/$name-lo.pcap.gz.capture.txt" &
td=$!
sleep 2

grpc 1 /grpctap.test.Echo/Unary EchoRequest 'message: "hello h2c" reply_size: 16'
grpc 2 /grpctap.test.Echo/Unary EchoRequest 'message: "missing" status_code: 5 status_message: "no such thing: café 100%"'
grpc 3 /grpctap.test.Echo/ServerStream EchoRequest 'message: "four" reply_count: 4 reply_size: 8 sleep_ms: 5'
grpc 4 /grpctap.test.Echo/Unary EchoRequest 'message: "timed" sleep_ms: 20' 'grpc-timeout: 2S' 'x-request-tag: tag-h2c'
connect

grpc 5 /grpctap.test.Echo/ServerStream EchoRequest 'message: "broken" reply_count: 3 reply_size: 4 status_code: 14 status_message: "stream broke"' 'grpc-timeout: 5S'
grpc 6 /grpctap.test.Store/Put Item 'id: "h2c-1" data: "stored" tags: "t0"'
grpc 7 /grpctap.test.Store/Get Key 'id: "missing-1"'
grpc 8 /grpctap.test.Echo/Unary EchoRequest 'message: "big reply" reply_size: 70000'
grpc 9 /grpctap.test.Echo/Unary EchoRequest 'message: "denied" status_code: 7 status_message: "read-only"'
connect

get /
grpc 10 /grpctap.test.Echo/Unary EchoRequest "message: \"big request\" payload: \"$big\"" 'grpc-timeout: 1S'
grpc 11 /grpctap.test.Echo/Unary EchoRequest 'message: "bad" status_code: 3 status_message: "bad argument"'
connect

grpc 12 /grpctap.test.Echo/Unary EchoRequest "message: \"big upgrade\" payload: \"$big\" reply_size: 10"
grpc 13 /grpctap.test.Echo/Unary EchoRequest 'message: "after big upgrade"'
connect

sleep 1
kill -INT $td
wait $td || true
td=
stop_servers
if grep -v '^ready$' "$work/server-$port.log" > /dev/null; then
  echo "server said:" >&2
  cat "$work/server-$port.log" >&2
fi
gzip -9 -c "$work/$name-lo.pcap" > "$out/$name-lo.pcap.gz"
python3 "$here/oracle.py" "$out/$name-lo.pcap.gz" > "$out/$name-lo.pcap.gz.streams.json"
python3 "$here/h2c_curl.py" calls "$work" $(seq 0 $((conn - 1))) > "$out/$name.calls.jsonl"
f=$out/$name-lo.pcap.gz
grep -q "^0 packets dropped by kernel" "$f.capture.txt" || { echo "$name: drops: $(cat "$f.capture.txt")" >&2; exit 1; }
echo "$name: $conn connections, $(wc -l < "$out/$name.calls.jsonl") gRPC calls, $(stat -c %s "$f") bytes; $(grep dropped "$f.capture.txt" | tr '\n' ' ')"
echo "tshark -d tcp.port==$port,http -Y 'http or http2':"
python3 "$here/h2c_curl.py" check "$f" "$port" "$out/$name.calls.jsonl"
tshark -n -r "$f" -d "tcp.port==$port,http" -Y 'http.response.code == 101' 2> /dev/null | sed 's/^/  /'
