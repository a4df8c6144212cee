#!/usr/bin/env bash
# Live capture at line rate: a capture file sent onto a veth pair between two network
# namespaces by tcpreplay while `grpctap capture` decodes it on the other end, for each
# --threads given. Prints the rate tcpreplay reached, the packets the kernel dropped, those
# dropped at a full decoding thread's queue, and the calls against a replay of the same file.
#
# Needs root, tcpreplay (Debian's), and a grpctap built with live capture:
#   cargo build-live && sudo benches/live_rate.sh FILE.pcap [THREADS...]
# Extra tcpreplay options in TCPREPLAY_ARGS (default --topspeed).
set -euo pipefail
file=${1:?usage: live_rate.sh FILE.pcap [THREADS...]}
shift
threads=("${@:-1 2}")
bin=${GRPCTAP:-target/live/release/grpctap}
rate=${TCPREPLAY_ARGS:---topspeed}
[ -x "$bin" ] || { echo "no $bin: cargo build-live" >&2; exit 1; }
command -v tcpreplay >/dev/null || { echo "apt-get install tcpreplay" >&2; exit 1; }

tmp=$(mktemp -d)
cleanup() {
  ip netns del glr-s 2>/dev/null || true
  ip netns del glr-c 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
cleanup
tmp=$(mktemp -d)
chmod 777 "$tmp"
ip netns add glr-s
ip netns add glr-c
ip link add glrs0 netns glr-s type veth peer name glrc0 netns glr-c
for ns in glr-s glr-c; do ip -n $ns link set lo up; done
ip -n glr-s link set glrs0 up
ip -n glr-c link set glrc0 up
# The frames are addressed to other MACs: the receiving end takes them all.
ip -n glr-c link set glrc0 promisc on

want=$("$bin" replay --threads 1 --summary-json - "$file" 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["totals"]["calls"])')
mb=$(( $(stat -c %s "$file") / 1000000 ))
echo "file: $file ($mb MB, $want calls in a replay); tcpreplay $rate"
printf '%8s %12s %12s %14s %14s %12s %10s\n' threads "sent Mbps" "sent pps" "kernel drops" "queue drops" calls "calls ok"
for n in ${threads[@]}; do
  ip netns exec glr-c "$bin" capture -i glrc0 --no-tui --threads "$n" -B 262144 \
    --summary-json "$tmp/sum-$n.json" >/dev/null 2>"$tmp/err-$n" &
  tap=$!
  # Until it has given up root (the interface is open).
  for _ in $(seq 100); do
    grep -q '^Uid:[[:space:]]*65534' /proc/$tap/status 2>/dev/null && break
    sleep 0.05
  done
  sleep 0.3
  out=$(ip netns exec glr-s tcpreplay -i glrs0 $rate "$file" 2>&1)
  sleep 1
  kill -TERM $tap
  wait $tap || true
  mbps=$(echo "$out" | sed -n 's/.*Rated: [0-9.]* Bps, \([0-9.]*\) Mbps, \([0-9.]*\) pps.*/\1/p')
  pps=$(echo "$out" | sed -n 's/.*Rated: [0-9.]* Bps, \([0-9.]*\) Mbps, \([0-9.]*\) pps.*/\2/p')
  kdrops=$(sed -n 's/.*received by the filter, \([0-9]*\) dropped by the kernel.*/\1/p' "$tmp/err-$n")
  qdrops=$(sed -n 's/.*grpctap: \([0-9]*\) packets dropped: a decoding thread.*/\1/p' "$tmp/err-$n")
  got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["totals"]["calls"])' "$tmp/sum-$n.json")
  printf '%8s %12s %12s %14s %14s %12s %10s\n' "$n" "${mbps:-?}" "${pps:-?}" "${kdrops:-?}" "${qdrops:-0}" "$got" \
    "$([ "$got" = "$want" ] && echo yes || echo no)"
done
