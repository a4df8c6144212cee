#!/usr/bin/env bash
# Makes testdata/captures/py-mixed-veth.pcap: python grpcio traffic between two network
# namespaces over a veth pair with MTU 1500 and segmentation offloads off, so packets have the
# sizes they have on Ethernet. Needs root, iproute2, ethtool, tcpdump, python3 with grpcio.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(cd "$here/.." && pwd)/captures
work=$(mktemp -d)
srv=gtap-srv-$$ cli=gtap-cli-$$
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  ip netns pids "$srv" 2>/dev/null | xargs -r kill 2>/dev/null || true
  ip netns del "$srv" 2>/dev/null || true; ip netns del "$cli" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
python3 -m grpc_tools.protoc -I "$here/../proto" --python_out="$work" --grpc_python_out="$work" echo.proto
export ECHO_PB_DIR=$work

ip netns add "$srv"; ip netns add "$cli"
ip link add veth-s netns "$srv" type veth peer name veth-c netns "$cli"
ip -n "$srv" addr add 10.99.0.1/24 dev veth-s
ip -n "$cli" addr add 10.99.0.2/24 dev veth-c
for ns in "$srv" "$cli"; do
  ip -n "$ns" link set lo up
  dev=$([ "$ns" = "$srv" ] && echo veth-s || echo veth-c)
  ip -n "$ns" link set "$dev" mtu 1500 up
  ip netns exec "$ns" ethtool -K "$dev" tso off gso off gro off >/dev/null
done

ip netns exec "$srv" python3 "$here/py_echo.py" server --host 10.99.0.1 --port 50051 > "$work/server.log" 2>&1 &
for _ in $(seq 100); do grep -q ready "$work/server.log" 2>/dev/null && break; sleep 0.1; done
ip netns exec "$cli" tcpdump -i veth-c -B 262144 -U -w "$out/py-mixed-veth.pcap" tcp port 50051 \
  2> "$out/py-mixed-veth.pcap.capture.txt" & td=$!
sleep 2
ip netns exec "$cli" python3 "$here/py_echo.py" client --target 10.99.0.1:50051 --scenario mixed \
  --log "$out/py-mixed-veth.calls.jsonl"
sleep 1; kill -INT $td; wait $td || true
python3 "$here/oracle.py" "$out/py-mixed-veth.pcap" > "$out/py-mixed-veth.pcap.streams.json"
grep dropped "$out/py-mixed-veth.pcap.capture.txt"
ls -l "$out"/py-mixed-veth*
