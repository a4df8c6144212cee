#!/usr/bin/env bash
# Makes the TLS captures in testdata/captures/: gRPC over TLS between grpc-go 1.33 (Debian, Go
# 1.19's crypto/tls) and @grpc/grpc-js 1.14 (node's OpenSSL), one connection (two with
# --tls-resume) captured from its start, the tls scenario of go-echo/tls.go and node-echo/echo.js
# (30 calls of the four kinds: OK, 12 error codes, a deadline, a cancellation, 4 calls at once,
# a 20 000-byte reply and two 17 000-byte stream messages that span TLS records). The TLS key log
# is the client stack's own: go-echo's --tls-keylog (tls.Config.KeyLogWriter), node's
# --tls-keylog (OpenSSL's key log callback). A throwaway CA and a certificate for localhost and
# 127.0.0.1 (RSA 2048) are made with openssl in the work directory and thrown away with it.
#
# Per capture NAME: NAME-lo.pcap.gz (tcpdump -i lo, gzipped), its .capture.txt (tcpdump's
# stderr), its .streams.json (oracle.py: the TCP streams, ciphertext, as tshark reassembles them),
# its .tls.json (check_tls.py: each handshake as tshark dissects it, and the calls it decrypted),
# NAME.keylog (the key log as the client wrote it; go-to-tonic-tls12: the server),
# NAME-dsb.pcapng.gz (the same packets with NAME.keylog in a pcapng Decryption Secrets Block:
# editcap --inject-secrets) and NAME.calls.jsonl (the client's log). go-tls12 also keeps the node
# server's key log, NAME.server.keylog: a Go client writes no CLIENT_RANDOM line for a resumed
# TLS 1.2 session (crypto/tls logs the master secret only after a full handshake), OpenSSL's
# server does.
# tonic-tls13, go-to-tonic-tls13 and go-to-tonic-tls12 have tonic 0.14's server (rustls 0.23, ring;
# the same certificate): tonic-tls13 is tonic-echo's client too, the basic scenario (8 calls one at
# a time, no call ids: check_tls.py pairs them in order; 1 MiB each way), its key log the client's
# (rustls KeyLogFile, SSLKEYLOGFILE); the go-to-tonic ones are go-echo's tls scenario, and
# go-to-tonic-tls12's NAME.keylog is the tonic server's (SSLKEYLOGFILE on the server; the script
# checks it has the CLIENT_RANDOM line the go client wrote, and nothing else). tonic-echo is not
# built here: the release build in CARGO_TARGET_DIR or target/ must exist.
# check_tls.py then checks each capture twice, decrypted by tshark with the key log and with the
# DSB copy alone, against the log and the handshake the capture is meant to have.
# go-clear and node-clear are the cleartext twins (h2c, prior knowledge): the same tls scenario
# between the same stacks with no TLS flags, one connection, to compare a decryption with the
# cleartext of the same calls. They have no key log, .tls.json or DSB copy; check_tls.py --clear
# pairs their calls (tshark -d tcp.port==PORT,http2) with the log, and the script checks that
# tshark reads one :path per logged call.
# Needs root; installs what it needs like make_midjoin_captures.sh (GRPCTAP_NO_INSTALL=1 skips),
# and openssl; go-echo is built with Debian's grpc-go in GOPATH mode, offline (no cargo).
# Ports 50251..50263.
# Usage: testdata/gen/make_tls_captures.sh [NAME...]   (default: every capture, the clear ones too)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=capture_lib.sh
source "$here/capture_lib.sh"
unset SSLKEYLOGFILE # rustls (tonic-echo) writes its key log where this names, and only where the script says
install_deps
if [ -z "${GRPCTAP_NO_INSTALL:-}" ] && ! command -v openssl > /dev/null; then
  apt-get install -y -q openssl > "$work/apt-openssl.log"
fi
build_go

# The throwaway CA and the server's certificate (SAN localhost, 127.0.0.1).
cat > "$work/openssl.cnf" << 'EOF'
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
authorityKeyIdentifier = keyid
EOF
openssl req -x509 -config "$work/openssl.cnf" -extensions ca -newkey rsa:2048 -nodes -days 2 \
  -subj "/CN=grpctap throwaway test CA" -keyout "$work/ca.key" -out "$work/ca.pem" 2> /dev/null
openssl req -new -config "$work/openssl.cnf" -newkey rsa:2048 -nodes -subj "/CN=localhost" \
  -keyout "$work/server.key" -out "$work/server.csr" 2> /dev/null
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial -days 2 \
  -extfile "$work/openssl.cnf" -extensions server -out "$work/server.pem" 2> /dev/null

# end_capture: the client is done; tcpdump writes out what it has, the servers stop.
end_capture() {
  sleep 1
  kill -INT $td
  wait $td || true
  td=
  stop_servers
}

# capture NAME CLIENT SERVER PORT EXPECT: tcpdump first, then the server (with sargs), then the
# client: go-echo with cargs, or node with nflags (node's own flags) and GRPC_SSL_CIPHER_SUITES
# from suites, or tonic-echo (basic scenario); skeylog=1 has the node server write its key log too,
# skeylog=tonic has the tonic server write NAME.keylog (the go client's own key log stays in the
# work directory, to compare). EXPECT is check_tls.py's.

# tls=0: the cleartext twin (no TLS flags at either end, no key log; EXPECT unused).
capture() {
  local name=$1 cstack=$2 sstack=$3 port=$4 expect=$5 keylog=$out/$1.keylog
  local calls=$out/$name.calls.jsonl pcap=$work/$name-lo.pcap
  [ "$tls" = 1 ] || { capture_clear "$@"; return; }
  rm -f "$keylog" "$out/$name.server.keylog" # both stacks append
  tcpdump -i lo -B 262144 -U -w "$pcap" "tcp port $port" 2> "$out/$name-lo.pcap.gz.capture.txt" &
  td=$!
  sleep 2
  # skeylog=tonic: NAME.keylog is the tonic server's; the go client's goes to the work directory.
  local ckeylog=$keylog
  [ "$skeylog" = tonic ] && ckeylog=$work/$name.client.keylog
  if [ "$skeylog" = 1 ]; then
    NODE_OPTIONS="--tls-keylog=$out/$name.server.keylog --no-warnings" server "$sstack" "$port" \
      --tls-cert "$work/server.pem" --tls-key "$work/server.key" "${sargs[@]}"
  elif [ "$skeylog" = tonic ]; then
    SSLKEYLOGFILE=$keylog server "$sstack" "$port" --tls-cert "$work/server.pem" --tls-key "$work/server.key" "${sargs[@]}"
  else
    server "$sstack" "$port" --tls-cert "$work/server.pem" --tls-key "$work/server.key" "${sargs[@]}"
  fi
  case $cstack in
    go) "$work/go-echo" client --target "127.0.0.1:$port" --scenario tls --log "$calls" \
      --tls-ca "$work/ca.pem" --tls-keylog "$ckeylog" "${cargs[@]}" ;;
    node) env ${suites:+GRPC_SSL_CIPHER_SUITES=$suites} node --no-warnings --tls-keylog="$keylog" "${nflags[@]}" \
      "$here/node-echo/echo.js" client --target "127.0.0.1:$port" --scenario tls --log "$calls" --tls-ca "$work/ca.pem" ;;
    tonic) SSLKEYLOGFILE=$keylog "$tonic" client --target "https://127.0.0.1:$port" --scenario basic --log "$calls" \
      --tls-ca "$work/ca.pem" ;;
  esac
  end_capture
  chmod 644 "$keylog" "$out/$name".server.keylog 2> /dev/null || true # node writes them 0600
  if [ "$skeylog" = tonic ]; then # the server's key log has the go client's CLIENT_RANDOM line, and only it
    grep -q "^CLIENT_RANDOM " "$keylog" || { echo "$name: no CLIENT_RANDOM line in the server's key log" >&2; exit 1; }
    cmp -s <(sort "$keylog") <(sort "$ckeylog") || { echo "$name: the server's and the client's key logs differ" >&2; exit 1; }
  fi
  grep -q "^0 packets dropped by kernel" "$out/$name-lo.pcap.gz.capture.txt" || { echo "$name: drops: $(cat "$out/$name-lo.pcap.gz.capture.txt")" >&2; exit 1; }
  gzip -9 -c "$pcap" > "$out/$name-lo.pcap.gz"
  python3 "$here/oracle.py" "$out/$name-lo.pcap.gz" > "$out/$name-lo.pcap.gz.streams.json"
  editcap --inject-secrets "tls,$keylog" "$pcap" "$work/$name-dsb.pcapng"
  gzip -9 -c "$work/$name-dsb.pcapng" > "$out/$name-dsb.pcapng.gz"
  echo "== $name ($cstack client, $sstack server, port $port)"
  python3 "$here/check_tls.py" "$out/$name-lo.pcap.gz" "$port" "$calls" "$keylog" --expect "$expect" \
    --json "$out/$name-lo.pcap.gz.tls.json"
  python3 "$here/check_tls.py" "$out/$name-dsb.pcapng.gz" "$port" "$calls" --expect "$expect" > "$work/dsb.txt" ||
    { cat "$work/dsb.txt"; exit 1; }
  tail -n 1 "$work/dsb.txt"
  echo "$name: $(wc -l < "$calls") calls logged, $(wc -l < "$keylog") key log lines; $(stat -c %s "$out/$name-lo.pcap.gz") + $(stat -c %s "$out/$name-dsb.pcapng.gz") bytes; $(grep dropped "$out/$name-lo.pcap.gz.capture.txt" | tr '\n' ' ')"
}

# capture_clear NAME CLIENT SERVER PORT: capture's cleartext twin, the same calls with no TLS.
capture_clear() {
  local name=$1 cstack=$2 sstack=$3 port=$4
  local calls=$out/$name.calls.jsonl pcap=$work/$name-lo.pcap f=$out/$1-lo.pcap.gz
  tcpdump -i lo -B 262144 -U -w "$pcap" "tcp port $port" 2> "$f.capture.txt" &
  td=$!
  sleep 2
  server "$sstack" "$port"
  case $cstack in
    go) "$work/go-echo" client --target "127.0.0.1:$port" --scenario tls --log "$calls" ;;
    node) node --no-warnings "$here/node-echo/echo.js" client --target "127.0.0.1:$port" --scenario tls --log "$calls" ;;
  esac
  end_capture
  grep -q "^0 packets dropped by kernel" "$f.capture.txt" || { echo "$name: drops: $(cat "$f.capture.txt")" >&2; exit 1; }
  gzip -9 -c "$pcap" > "$f"
  python3 "$here/oracle.py" "$f" > "$f.streams.json"
  echo "== $name ($cstack client, $sstack server, port $port, cleartext)"
  python3 "$here/check_tls.py" "$f" "$port" "$calls" --clear
  local paths logged
  paths=$(tshark -n -r "$f" -d "tcp.port==$port,http2" -Y http2.headers.path -T fields -e http2.headers.path 2> /dev/null |
    tr ',' '\n' | grep -c . || true)
  logged=$(wc -l < "$calls")
  [ "$paths" = "$logged" ] || { echo "$name: tshark reads $paths :path, the log has $logged calls" >&2; exit 1; }
  echo "$name: $logged calls logged, $paths :path read by tshark; $(stat -c %s "$f") bytes; $(grep dropped "$f.capture.txt" | tr '\n' ' ')"
}

all="go-tls13 go-tls13-hrr go-tls12 go-tls12-chacha go-tls12-aes256 node-tls13-chacha node-tls13-aes256 node-tls12 go-clear node-clear
  tonic-tls13 go-to-tonic-tls13 go-to-tonic-tls12"
# tonic-echo is not built here (no cargo): CARGO_TARGET_DIR's (or the repository's target/) release build.
tonic=${CARGO_TARGET_DIR:-$root/target}/release/tonic-echo
case " ${*:-$all} " in
  *tonic*) [ -x "$tonic" ] || { echo "no $tonic: cargo build --release -p tonic-echo first" >&2; exit 1; } ;;
esac
for name in ${*:-$all}; do
  sargs=() cargs=() nflags=() suites= skeylog=0 tls=1
  case $name in
    # Go's TLS 1.3 default; the second connection resumes with the first's ticket (a PSK).
    go-tls13) cargs=(--tls-resume); capture "$name" go go 50251 "TLS 1.3 TLS_AES_128_GCM_SHA256 0 0,1" ;;
    # The server takes only P-256, the Go client sends only an X25519 key share: HelloRetryRequest.
    go-tls13-hrr) sargs=(--tls-curves p256); capture "$name" go go 50252 "TLS 1.3 TLS_AES_128_GCM_SHA256 1 0" ;;
    # TLS 1.2 to OpenSSL, the second connection resumed by session ticket.
    go-tls12) cargs=(--tls-max 1.2 --tls-resume) skeylog=1
      capture "$name" go node 50253 "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 0 0,1" ;;
    go-tls12-chacha) cargs=(--tls-max 1.2 --tls-suite TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)
      capture "$name" go go 50254 "TLS 1.2 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 0 0" ;;
    go-tls12-aes256) cargs=(--tls-max 1.2 --tls-suite TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)
      capture "$name" go go 50255 "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 0 0" ;;
    node-tls13-chacha) suites=TLS_CHACHA20_POLY1305_SHA256
      capture "$name" node go 50256 "TLS 1.3 TLS_CHACHA20_POLY1305_SHA256 0 0" ;;
    node-tls13-aes256) suites=TLS_AES_256_GCM_SHA384
      capture "$name" node node 50257 "TLS 1.3 TLS_AES_256_GCM_SHA384 0 0" ;;
    node-tls12) nflags=(--tls-max-v1.2); capture "$name" node go 50258 "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 0 0" ;;
    # The cleartext twins: the tls scenario, one connection, no TLS (h2c with prior knowledge).
    go-clear) tls=0; capture "$name" go go 50259 - ;;
    node-clear) tls=0; capture "$name" node node 50260 - ;;
    # rustls (tonic 0.14, rustls 0.23 with ring) at both ends: the basic scenario, the client's key log.
    tonic-tls13) capture "$name" tonic tonic 50261 "TLS 1.3 TLS_AES_256_GCM_SHA384 0 0" ;;
    # grpc-go to a rustls server, TLS 1.3 and TLS 1.2; the TLS 1.2 key log is the server's.
    go-to-tonic-tls13) capture "$name" go tonic 50262 "TLS 1.3 TLS_AES_128_GCM_SHA256 0 0" ;;
    go-to-tonic-tls12) cargs=(--tls-max 1.2) skeylog=tonic
      capture "$name" go tonic 50263 "TLS 1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 0 0" ;;
    *) echo "unknown capture $name" >&2; exit 2 ;;
  esac
done
ls -l "$out"/*-tls1[23]* "$out"/*-clear[-.]* 2> /dev/null || true
