#!/usr/bin/env bash
# Makes the balance captures in testdata/captures/: gRPC load balancing as the wire shows it.
# Python grpcio Echo servers (py_echo.py, with Store) on 127.0.0.1, 127.0.0.2 and 127.0.0.3, the
# same port (loopback answers on all of 127/8), "behind one name": every client's channel dials
# the static list ipv4:127.0.0.1:50300,127.0.0.2:50300,127.0.0.3:50300 with
# grpc.default_authority echo.internal:50300, so every connection's :authority is the same
# whichever backend it reached. Six client processes (balance_client.py), one channel each for
# the whole run, 15 calls/s each, one at a time (Echo.Unary; every 40th a Store.Get NOT_FOUND,
# every 57th a Store.Get UNAVAILABLE), each call with x-call-id and a 5 s deadline. tcpdump on lo
# from before the servers start (filter: tcp port 50300).
#   balance-pinned    pick_first, the default: clients 0-2 with no service config (pick_first
#                     takes the first address: all on 127.0.0.1), clients 3-5 with
#                     {"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}
#                     (each pins to the backend its shuffle put first). One connection per
#                     client; the backends get 3 + the shuffled ones, so at least half the calls
#                     go to 127.0.0.1, and a backend may get none.
#   balance-rr        {"loadBalancingConfig":[{"round_robin":{}}]}: each client connects to all
#                     three and rotates its calls over them (the healthy control: a third each).
#   balance-scaleout  the six round_robin clients over the three; ~10 s in a fourth backend
#                     starts on 127.0.0.4, which they never learn of (a static list: resolved
#                     once); 2 s later one new client (client 6) starts with all four addresses,
#                     round_robin: the new backend gets a quarter of that one client's calls.
#                     balance-scaleout.events.json says when (backend_added, at: when it was
#                     listening).
# Writes NAME-lo.pcap.gz, its .capture.txt (tcpdump's stderr, 0 drops) and .streams.json
# (oracle.py), NAME.calls.jsonl (the clients' logs merged, in the order the calls ended; the
# fields are in balance_client.py), then checks each with check_balance.py (tshark: every call
# paired with its log line by x-call-id, to the backend the log says; calls and statuses per
# backend as the log has them).
# Needs root, python3. Installs tcpdump and tshark (Debian), grpcio and grpcio-tools (PyPI) unless
# GRPCTAP_NO_INSTALL is set. GRPCTAP_CAPTURES_OUT writes elsewhere.
# Usage: testdata/gen/make_balance_captures.sh [NAME...]   (default: all three)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=capture_lib.sh
source "$here/capture_lib.sh"
port=50300
authority=echo.internal:$port
rate=15

if [ -z "${GRPCTAP_NO_INSTALL:-}" ]; then
  export DEBIAN_FRONTEND=noninteractive
  pkgs="tcpdump tshark"
  # shellcheck disable=SC2086
  apt-get install -y -q $pkgs > "$work/apt.log" 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q $pkgs > "$work/apt.log"; }
  python3 -c "import grpc, grpc_tools" 2> /dev/null || pip install -q grpcio grpcio-tools
fi
build_py

addrs() { local a=() n; for n in "$@"; do a+=("127.0.0.$n:$port"); done; (IFS=,; echo "${a[*]}"); }
now() { date +%s.%N; }
later() { python3 -c "import sys, time; print(f'{time.time() + float(sys.argv[1]):.6f}')" "$1"; }

# backend N: the python server on 127.0.0.N:$port, waited for.
backend() {
  python3 "$here/py_echo.py" server --host "127.0.0.$1" --port $port --workers 64 > "$work/server-$1.log" 2>&1 &
  servers+=($!)
  wait_ready "$work/server-$1.log"
}
# grpcio listens with SO_REUSEPORT: a server left listening would share the port unseen.
stop_backends() {
  local p
  for p in "${servers[@]}"; do kill "$p" 2> /dev/null || true; done
  for p in "${servers[@]}"; do wait "$p" 2> /dev/null || true; done
  servers=()
}
port_free() {
  [ -z "$(ss -Htln "sport = :$port")" ] || { echo "port $port is in use:" >&2; ss -tlnp "sport = :$port" >&2; exit 1; }
}

clients=()
trap 'for p in "${clients[@]}"; do kill "$p" 2> /dev/null; done; [ -n "$td" ] && kill -INT $td 2> /dev/null; stop_servers; rm -rf "$work"' EXIT
# start_client ID POLICY UNTIL BACKEND...: balance_client.py in the background.
start_client() {
  local id=$1 policy=$2 until=$3; shift 3
  python3 "$here/balance_client.py" --client "$id" --addrs "$(addrs "$@")" --authority $authority \
    --policy "$policy" --rate $rate --until "$until" --log "$work/client-$id.jsonl" &
  clients+=($!)
}
wait_clients() { local p; for p in "${clients[@]}"; do wait "$p"; done; clients=(); }

start_capture() { # NAME
  port_free
  rm -f "$work"/client-*.jsonl
  tcpdump -i lo -B 262144 -U -w "$work/$1-lo.pcap" "tcp port $port" 2> "$out/$1-lo.pcap.gz.capture.txt" &
  td=$!
  sleep 2
}

finish_capture() { # NAME [EVENTS]
  local name=$1 f=$out/$1-lo.pcap.gz
  sleep 1
  kill -INT $td
  wait $td || true
  td=
  stop_backends
  gzip -9 -c "$work/$name-lo.pcap" > "$f"
  python3 "$here/oracle.py" "$f" > "$f.streams.json"
  python3 - "$out/$name.calls.jsonl" "$work"/client-*.jsonl << 'EOF'
import json, sys
calls = [json.loads(l) for p in sys.argv[2:] for l in open(p)]
with open(sys.argv[1], "w") as f:
    for c in sorted(calls, key=lambda c: (c["end"], c["call_id"])):
        f.write(json.dumps(c, sort_keys=True) + "\n")
EOF
  check "$name" $port
  python3 "$here/check_balance.py" "$f" "$out/$name.calls.jsonl" $port "${@:2}"
}

# 3 + 3 pick_first clients (list order, shuffled), 18 s of calls.
pinned() {
  start_capture balance-pinned
  backend 1; backend 2; backend 3
  local until i
  until=$(later 19)
  for i in 0 1 2; do start_client $i default "$until" 1 2 3; sleep 0.2; done
  for i in 3 4 5; do start_client $i pick_first_shuffle "$until" 1 2 3; sleep 0.2; done
  wait_clients
  finish_capture balance-pinned
}

# 6 round_robin clients, 18 s of calls.
rr() {
  start_capture balance-rr
  backend 1; backend 2; backend 3
  local until i
  until=$(later 19)
  for i in 0 1 2 3 4 5; do start_client $i round_robin "$until" 1 2 3; sleep 0.2; done
  wait_clients
  finish_capture balance-rr
}

# 6 round_robin clients over 3 backends for 26 s; a 4th backend ~10 s in; one new client over
# all four 2 s after it.
scaleout() {
  local name=balance-scaleout until i launched at joined
  start_capture $name
  backend 1; backend 2; backend 3
  until=$(later 27)
  for i in 0 1 2 3 4 5; do start_client $i round_robin "$until" 1 2 3; sleep 0.2; done
  sleep 9
  launched=$(now)
  backend 4
  at=$(now)
  sleep 2
  joined=$(now)
  start_client 6 round_robin "$until" 1 2 3 4
  wait_clients
  python3 - "$out/$name.events.json" << EOF
import json, sys
ev = ({"backend_added": "127.0.0.4:$port", "at": $at, "launched": $launched,
           "backends_before": ["127.0.0.1:$port", "127.0.0.2:$port", "127.0.0.3:$port"],
           "clients_before": [0, 1, 2, 3, 4, 5],
           "new_client": {"client": 6, "started": $joined, "dial": "ipv4:$(addrs 1 2 3 4)",
                          "lb_policy": "round_robin"},
           "note": "at: the new backend was listening (its ready line seen, within 0.1 s); launched: its process "
                   "started; the existing clients dial the three backends_before for the whole run"})
with open(sys.argv[1], "w") as f:
    json.dump(ev, f, indent=1)
    f.write("\n")
EOF
  finish_capture $name "$out/$name.events.json"
}

for name in ${*:-balance-pinned balance-rr balance-scaleout}; do
  case $name in
    balance-pinned) pinned ;;
    balance-rr) rr ;;
    balance-scaleout) scaleout ;;
    *) echo "unknown capture $name" >&2; exit 2 ;;
  esac
done
ls -l "$out"/balance-*
