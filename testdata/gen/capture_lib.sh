# Shared by the make_*_capture(s).sh scripts (all but make_sonora_capture.sh): installs and
# builds the four stacks (grpc-go from Debian's packages, @grpc/grpc-js from npm, python grpcio
# from PyPI, tonic from crates.io) and starts their servers. Sourced, not run.
# Needs: here (testdata/gen). Sets root (the repository), out (where captures go:
# GRPCTAP_CAPTURES_OUT or testdata/captures), work (a temporary directory), td (tcpdump's pid,
# empty), and an EXIT trap that stops tcpdump and the servers and removes work (a script with
# more to clean sets its own).
root=$(cd "$here/../.." && pwd)
out=${GRPCTAP_CAPTURES_OUT:-$root/testdata/captures}
mkdir -p "$out"
work=$(mktemp -d)
td=
trap '[ -n "$td" ] && kill -INT $td 2> /dev/null; stop_servers; rm -rf "$work"' EXIT

# install_deps: what the stacks need, unless GRPCTAP_NO_INSTALL is set.
install_deps() {
  [ -n "${GRPCTAP_NO_INSTALL:-}" ] && return
  local pkgs="golang-go golang-google-grpc-dev golang-goprotobuf-dev protobuf-compiler tcpdump tshark"
  command -v npm > /dev/null || pkgs="$pkgs nodejs npm" # a machine's own node (with npm) is kept
  export DEBIAN_FRONTEND=noninteractive
  # shellcheck disable=SC2086
  apt-get install -y -q $pkgs > "$work/apt.log" 2>&1 || { apt-get update -q > /dev/null && apt-get install -y -q $pkgs > "$work/apt.log"; }
  python3 -c "import grpc, grpc_tools, grpc_status" 2> /dev/null || pip install -q grpcio grpcio-tools grpcio-status
  (cd "$here/node-echo" && nice -n 19 npm ci --no-audit --no-fund --loglevel=error)
}

# build: go-echo into $work/go-echo, tonic-echo (cargo, CARGO_TARGET_DIR or the repository's
# target/), the python stubs into $work/py.
build() {
  build_go
  local target=${CARGO_TARGET_DIR:-$root/target}
  CARGO_TARGET_DIR=$target nice -n 19 cargo build --release -q -p tonic-echo --manifest-path "$root/Cargo.toml"
  tonic=$target/release/tonic-echo
  build_py
}

# build_go: go-echo into $work/go-echo (GOPATH mode, offline, Debian's grpc-go).
build_go() {
  local gopath=$work/gopath
  mkdir -p "$gopath/src/goecho/pb"
  cp "$here"/go-echo/*.go "$gopath/src/goecho/"
  # protoc-gen-go 1.3 (Debian's golang-goprotobuf-dev) writes the messages and, with
  # plugins=grpc, the grpc-go services.
  protoc -I "$here/../proto" --go_out=plugins=grpc:"$gopath/src/goecho/pb" echo.proto shared.proto gauge.proto
  (cd "$gopath/src/goecho" && GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off GOFLAGS= GOPROXY=off \
    nice -n 19 go build -o "$work/go-echo" .)
}

# build_py: the python stubs into $work/py.
build_py() {
  mkdir -p "$work/py"
  python3 -m grpc_tools.protoc -I "$here/../proto" --python_out="$work/py" --grpc_python_out="$work/py" echo.proto shared.proto gauge.proto
  export ECHO_PB_DIR=$work/py
}

servers=()
wait_ready() { for _ in $(seq 150); do grep -q ready "$1" 2> /dev/null && return; sleep 0.1; done; echo "no server: $1" >&2; exit 1; }
# server STACK PORT [ARGS...]: a server of STACK (go, py, node, tonic) on 127.0.0.1:PORT, waited
# for; ARGS go to the python server (--reflection) and the go, node and tonic ones (--tls-cert ...).
server() {
  local log=$work/server-$2.log
  case $1 in
    go) "$work/go-echo" server --addr "127.0.0.1:$2" "${@:3}" > "$log" 2>&1 & ;;
    py) python3 "$here/py_echo.py" server --host 127.0.0.1 --port "$2" --workers 64 "${@:3}" > "$log" 2>&1 & ;;
    node) node "$here/node-echo/echo.js" server --addr "127.0.0.1:$2" "${@:3}" > "$log" 2>&1 & ;;
    tonic) "$tonic" server --addr "127.0.0.1:$2" "${@:3}" > "$log" 2>&1 & ;;
  esac
  servers+=($!)
  wait_ready "$log"
}
stop_servers() { for p in "${servers[@]}"; do kill "$p" 2> /dev/null || true; done; servers=(); }

# client STACK PORT ARGS...: runs STACK's scripted client against 127.0.0.1:PORT.
client() {
  local stack=$1 port=$2; shift 2
  case $stack in
    go) "$work/go-echo" client --target "127.0.0.1:$port" "$@" ;;
    py) python3 "$here/py_echo.py" client --target "127.0.0.1:$port" "$@" ;;
    node) node "$here/node-echo/echo.js" client --target "127.0.0.1:$port" "$@" ;;
    tonic) "$tonic" client --target "http://127.0.0.1:$port" "$@" ;;
  esac
}

# check NAME PORT: the capture is complete and tshark sees HTTP/2 in it.
check() {
  local f=$out/$1-lo.pcap.gz
  grep -q "^0 packets dropped by kernel" "$f.capture.txt" || { echo "$1: drops: $(cat "$f.capture.txt")" >&2; exit 1; }
  local n
  n=$(tshark -n -r "$f" -d "tcp.port==$2,http2" -Y http2 2> /dev/null | wc -l)
  [ "$n" -gt 0 ] || { echo "$1: tshark sees no HTTP/2" >&2; exit 1; }
  echo "$1: $(wc -l < "$out/$1.calls.jsonl") calls, $n HTTP/2 packets, $(stat -c %s "$f") bytes; $(grep dropped "$f.capture.txt" | tr '\n' ' ')"
}

# stop_capture NAME: stops tcpdump and the servers, writes the gzipped pcap and its streams
# (the capture was written to $work/NAME-lo.pcap).
stop_capture() {
  kill -INT $td
  wait $td || true
  td=
  stop_servers
  gzip -9 -c "$work/$1-lo.pcap" > "$out/$1-lo.pcap.gz"
  python3 "$here/oracle.py" "$out/$1-lo.pcap.gz" > "$out/$1-lo.pcap.gz.streams.json"
}
