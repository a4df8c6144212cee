#!/usr/bin/env bash
# Makes the retry and keepalive captures in testdata/captures/, each one client and one server on
# loopback, tcpdump started before the first connection:
#   retries          python grpcio client, service-config retryPolicy (maxAttempts 4, 50 ms
#                    backoff) on every Echo method, against retry_echo.py's server, which refuses
#                    the first K attempts of each call with UNAVAILABLE; K rises over the run
#   hedging          @grpc/grpc-js client (node-echo/hedging.js), service-config hedgingPolicy
#                    (maxAttempts 3, hedgingDelay 0.1s), against the same server, whose
#                    attempts are slow, fail non-fatally or fatally as each call asks
#   app-retries      python grpcio client with gRPC retries off that re-sends the same request
#                    as a new call after an error (up to 3 times), against the server refusing
#                    ~30 % of calls
#   keepalive-pings  python grpcio client pinging every second against a grpc-go server with the
#                    default keepalive policy: GOAWAY ENHANCE_YOUR_CALM "too_many_pings"
#   keepalive-ok     a client pinging every 10 s against a grpc-go server allowing every 5 s
# Ground truth: NAME.calls.jsonl (the client's log, one line per logical call),
# NAME.attempts.jsonl (retry_echo.py's server: one line per attempt it saw), NAME.events.jsonl
# (keepalive: the client's connectivity states, call errors and C-core's trace of its PINGs and
# the GOAWAYs it received). check_retry.py compares them with what tshark reads in the capture.
# Needs root; installs what it needs like the other scripts (GRPCTAP_NO_INSTALL=1 skips).
# Usage: testdata/gen/make_retry_captures.sh [NAME...]   (default: every capture)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=capture_lib.sh
source "$here/capture_lib.sh"
install_deps
build_go
build_py

# retry_server PORT ATTEMPTS_LOG [ARGS...]: retry_echo.py's server, waited for.
retry_server() {
  local log=$work/server-$1.log
  python3 "$here/retry_echo.py" server --host 127.0.0.1 --port "$1" --attempts-log "$2" "${@:3}" > "$log" 2>&1 &
  servers+=($!)
  wait_ready "$log"
}

# begin_capture NAME PORT / end_capture NAME PORT: tcpdump around one capture; end also writes the
# streams.json and checks the capture.
begin_capture() {
  tcpdump -i lo -B 262144 -U -w "$work/$1-lo.pcap" "tcp port $2" 2> "$out/$1-lo.pcap.gz.capture.txt" &
  td=$!
  sleep 2
}
end_capture() {
  sleep 1
  stop_capture "$1"
  check "$1" "$2"
  python3 "$here/check_retry.py" "$1" "$out/$1-lo.pcap.gz" "$2"
}

# keepalive NAME PORT SCENARIO [SERVER ARGS...]: the python client (C-core's keepalive trace on
# its stderr, merged into NAME.events.jsonl) against the grpc-go server.
keepalive() {
  local name=$1 port=$2 scenario=$3
  begin_capture "$name" "$port"
  server go "$port" "${@:4}"
  GRPC_VERBOSITY=debug GRPC_TRACE=http_keepalive python3 "$here/retry_echo.py" client --target "127.0.0.1:$port" \
    --scenario "$scenario" --log "$out/$name.calls.jsonl" --events "$out/$name.events.jsonl" 2> "$work/$name.trace"
  python3 "$here/retry_echo.py" merge-trace "$out/$name.events.jsonl" "$work/$name.trace"
  end_capture "$name" "$port"
}

all="retries hedging app-retries keepalive-pings keepalive-ok"
for name in ${*:-$all}; do
  case $name in
    retries)
      begin_capture "$name" 50301
      retry_server 50301 "$out/$name.attempts.jsonl"
      python3 "$here/retry_echo.py" client --target 127.0.0.1:50301 --scenario retries --log "$out/$name.calls.jsonl"
      end_capture "$name" 50301 ;;
    hedging)
      begin_capture "$name" 50302
      retry_server 50302 "$out/$name.attempts.jsonl"
      node "$here/node-echo/hedging.js" --target 127.0.0.1:50302 --log "$out/$name.calls.jsonl"
      end_capture "$name" 50302 ;;
    app-retries)
      begin_capture "$name" 50303
      retry_server 50303 "$out/$name.attempts.jsonl" --fail-percent 30
      python3 "$here/retry_echo.py" client --target 127.0.0.1:50303 --scenario app-retries --log "$out/$name.calls.jsonl"
      end_capture "$name" 50303 ;;
    keepalive-pings) keepalive "$name" 50304 keepalive ;;
    keepalive-ok) keepalive "$name" 50305 keepalive-ok --keepalive-min-time 5s --keepalive-permit-without-stream ;;
    *) echo "unknown capture $name" >&2; exit 2 ;;
  esac
done
ls -l "$out"/retries* "$out"/hedging* "$out"/app-retries* "$out"/keepalive-* 2> /dev/null || true
