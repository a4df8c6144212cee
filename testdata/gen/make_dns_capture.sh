#!/usr/bin/env bash
# Makes testdata/captures/dns-names-lo.pcap.gz: gRPC clients that reach their servers by DNS name,
# with the DNS queries and answers in the capture next to the gRPC connections they led to. All
# of it in a network namespace of its own (grpctap-dns), on its lo, tcpdump running from before
# the first query (filter: port 53 or the two servers' ports):
#   dnsmasq on 127.0.0.1:53 (UDP and TCP), the only resolver (the namespace's resolv.conf; its
#     hosts file has only localhost), answering from its own records, TTL 60, no AAAA (NOERROR,
#     no answer), anything else in grpctap.test NXDOMAIN:
#       echo.grpctap.test   A 127.0.0.1
#       store.grpctap.test  A 127.0.0.2
#       api.grpctap.test    CNAME echo.grpctap.test (and its A in the same answer)
#   python grpcio Echo servers (py_echo.py) on 127.0.0.1:50281 and 127.0.0.2:50282.
# In this order: dig echo.grpctap.test (UDP); python grpcio client dns:///echo.grpctap.test:50281
# with GRPC_DNS_RESOLVER=ares (c-ares: A and AAAA over UDP), 6 Unary calls (4 OK,
# INVALID_ARGUMENT, NOT_FOUND); dig +tcp store.grpctap.test (DNS over TCP); client
# dns:///store.grpctap.test:50282 with GRPC_DNS_RESOLVER=native (getaddrinfo: A and AAAA over
# UDP), 6 calls (4 OK, UNAVAILABLE, PERMISSION_DENIED); client dns:///api.grpctap.test:50281 (the
# CNAME, c-ares), 3 calls (2 OK, FAILED_PRECONDITION); dig missing.grpctap.test (NXDOMAIN).
# One channel, so one connection, per client (dns_client.py). The source address is 127.0.0.1
# for both servers.
# Writes dns-names-lo.pcap.gz, its .capture.txt (tcpdump's stderr) and .streams.json
# (oracle.py), and dns-names.calls.jsonl: one line per call, with call_id (sent as x-call-id),
# target (the name dialed) and server_addr (the address the connection went to, as the client's
# socket had it). check_dns.py checks the capture against it.
# Needs root, iproute2, python3 with grpcio and grpcio-tools. Installs dnsmasq-base (the binary,
# no system service), bind9-dnsutils (dig), tcpdump and tshark from Debian, unless
# GRPCTAP_NO_INSTALL is set. GRPCTAP_CAPTURES_OUT writes elsewhere.
# Usage: testdata/gen/make_dns_capture.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=capture_lib.sh
source "$here/capture_lib.sh"
ns=grpctap-dns
name=dns-names
f=$out/$name-lo.pcap.gz
log=$out/$name.calls.jsonl
p1=50281 p2=50282

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2> /dev/null || true; done
  sleep 0.3
  ip netns pids "$ns" 2> /dev/null | xargs -r kill 2> /dev/null || true # only what ran in it
  ip netns del "$ns" 2> /dev/null || true
  rm -rf "/etc/netns/$ns" "$work"
  rmdir /etc/netns 2> /dev/null || true # if this made it and nothing else is in it
}
trap cleanup EXIT

if [ -z "${GRPCTAP_NO_INSTALL:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  pkgs="dnsmasq-base bind9-dnsutils tcpdump tshark"
  # shellcheck disable=SC2086
  apt-get install -y -q $pkgs > "$work/apt.log" 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q $pkgs > "$work/apt.log"; }
  python3 -c "import grpc, grpc_tools" 2> /dev/null || pip install -q grpcio grpcio-tools
fi
build_py

# A namespace of this name left by an earlier run that was killed: start afresh.
if ip netns list | cut -d" " -f1 | grep -qx "$ns"; then
  ip netns pids "$ns" | xargs -r kill 2> /dev/null || true
  ip netns del "$ns"
fi
ip netns add "$ns"
ip -n "$ns" link set lo up
mkdir -p "/etc/netns/$ns"
echo "nameserver 127.0.0.1" > "/etc/netns/$ns/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' > "/etc/netns/$ns/hosts"
in_ns() { ip netns exec "$ns" "$@"; }
# Background jobs run `ip netns exec` itself (it execs its command), not in_ns in a subshell: $!
# is then the process, for kill -INT and cleanup.

ip netns exec "$ns" dnsmasq -k --no-resolv --no-hosts --no-poll --listen-address=127.0.0.1 --bind-interfaces \
  --local=/grpctap.test/ --local-ttl=60 \
  --host-record=echo.grpctap.test,127.0.0.1 --host-record=store.grpctap.test,127.0.0.2 \
  --cname=api.grpctap.test,echo.grpctap.test \
  --log-queries --log-facility=- > "$work/dnsmasq.log" 2>&1 &
pids+=($!)
ip netns exec "$ns" python3 "$here/py_echo.py" server --host 127.0.0.1 --port $p1 > "$work/server-$p1.log" 2>&1 &
pids+=($!)
ip netns exec "$ns" python3 "$here/py_echo.py" server --host 127.0.0.2 --port $p2 > "$work/server-$p2.log" 2>&1 &
pids+=($!)
wait_ready "$work/server-$p1.log"
wait_ready "$work/server-$p2.log"
for _ in $(seq 50); do grep -q started "$work/dnsmasq.log" && break; sleep 0.1; done
# Before the capture: the names resolve in the namespace, by DNS only.
[ "$(in_ns dig +short @127.0.0.1 echo.grpctap.test)" = 127.0.0.1 ] || { echo "dnsmasq does not answer" >&2; cat "$work/dnsmasq.log" >&2; exit 1; }
[ "$(in_ns getent hosts store.grpctap.test | cut -d' ' -f1)" = 127.0.0.2 ] || { echo "getaddrinfo does not resolve" >&2; exit 1; }

ip netns exec "$ns" tcpdump -i lo -B 262144 -U -w "$work/$name-lo.pcap" "port 53 or tcp port $p1 or tcp port $p2" 2> "$f.capture.txt" &
td=$!
pids+=($td)
sleep 2

rm -f "$log"
client() { # RESOLVER CALLS CONN FIRST_ID TARGET
  in_ns env GRPC_DNS_RESOLVER="$1" python3 "$here/dns_client.py" --calls "$2" --conn "$3" --first-id "$4" \
    --target "$5" --log "$log"
}
in_ns dig @127.0.0.1 echo.grpctap.test > "$work/dig-udp.txt"
sleep 0.2
client ares echo 0 1 "dns:///echo.grpctap.test:$p1"
sleep 0.2
in_ns dig +tcp @127.0.0.1 store.grpctap.test > "$work/dig-tcp.txt"
sleep 0.2
client native store 1 7 "dns:///store.grpctap.test:$p2"
sleep 0.2
client ares alias 2 13 "dns:///api.grpctap.test:$p1"
sleep 0.2
in_ns dig @127.0.0.1 missing.grpctap.test > "$work/dig-nx.txt" || true
grep -q "status: NXDOMAIN" "$work/dig-nx.txt" || { echo "missing.grpctap.test: not NXDOMAIN" >&2; exit 1; }

sleep 1
kill -INT $td
wait $td || true
gzip -9 -c "$work/$name-lo.pcap" > "$f"
python3 "$here/oracle.py" "$f" > "$f.streams.json"
grep -q "^0 packets dropped by kernel" "$f.capture.txt" || { echo "$name: drops: $(cat "$f.capture.txt")" >&2; exit 1; }
python3 "$here/check_dns.py" "$f" "$log" store.grpctap.test missing.grpctap.test
echo "dnsmasq: $(grep -c 'query\[' "$work/dnsmasq.log") queries logged"
echo "$name: $(wc -l < "$log") calls, $(stat -c %s "$f") bytes; $(grep dropped "$f.capture.txt" | tr '\n' ' ')"
ls -l "$out/$name"*
