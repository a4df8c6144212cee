#!/usr/bin/env python3
"""A python grpcio client that reaches its server by a DNS name, for make_dns_capture.sh.

python3 dns_client.py --target dns:///echo.grpctap.test:50281 --conn 0 --first-id 1 \
    --calls echo --log dns-names.calls.jsonl

One channel (so one resolution and one connection), a fixed list of Echo.Unary calls (--calls:
echo and store are 6 calls, OK and errors; alias is 3), each sent with x-call-id metadata. Every
call is appended to --log as one JSON line, as py_echo.py's run_call writes them, plus "target"
(the name dialed: echo.grpctap.test), "dial" (the channel's target as given), "resolver"
(GRPC_DNS_RESOLVER, which the script sets per process) and "server_addr": the address the
channel's TCP connection went to, read from /proc/net/tcp by the client port the server saw (the
reply's peer), so it is what the name resolved to and was dialed, not what the script expects.
Error calls have no reply: client_peer is null, as in the other logs, and server_addr is that of
the channel's connection (the calls before it on it).
"""
import argparse, json, os, socket, sys, time

import grpc

sys.path.insert(0, os.environ.get("ECHO_PB_DIR", os.path.dirname(__file__)))
import echo_pb2, echo_pb2_grpc  # noqa: E402  (generated as capture_lib.sh's build_py does)

E = echo_pb2.EchoRequest
CALLS = {
    "echo": [
        E(message="hello echo", reply_size=8),
        E(message="second"),
        E(message="bad", status_code=3, status_message="bad argument"),
        E(message="slow", sleep_ms=20, reply_size=100),
        E(message="missing", status_code=5, status_message="no such thing"),
        E(message="last", reply_size=1),
    ],
    "store": [
        E(message="hello store", reply_size=16),
        E(message="again"),
        E(message="later", status_code=14, status_message="try later"),
        E(message="big", payload=b"p" * 3000, reply_size=3000),
        E(message="denied", status_code=7, status_message="read-only"),
        E(message="last"),
    ],
    "alias": [
        E(message="via cname", reply_size=4),
        E(message="nope", status_code=9, status_message="not now"),
        E(message="bye"),
    ],
}


def remote_of(peer):
    """The remote end of this namespace's TCP socket whose local end is `peer`
    ("ipv4:127.0.0.1:51790"), from /proc/net/tcp and tcp6 (grpcio's sockets are AF_INET6, the
    IPv4 addresses mapped): "127.0.0.2:50282"."""
    host, port = peer.removeprefix("ipv4:").rsplit(":", 1)
    v4 = socket.inet_aton(host)
    want = {socket.inet_pton(socket.AF_INET6, "::ffff:" + host), v4}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, remote = line.split()[1:3]
                addr, lport = proc_addr(local)
                if addr in want and lport == int(port):
                    raddr, rport = proc_addr(remote)
                    return f"{socket.inet_ntoa(raddr[-4:])}:{rport}"
    sys.exit(f"no socket {host}:{port} ({peer}) in /proc/net/tcp or tcp6")


def proc_addr(field):
    """An address of /proc/net/tcp{,6} ("0100007F:BE02": 32-bit words in host order) as (the
    address's bytes, port)."""
    addr, port = field.split(":")
    raw = bytes.fromhex(addr)
    return b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)), int(port, 16)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--target", required=True)
    p.add_argument("--calls", choices=sorted(CALLS), required=True)
    p.add_argument("--conn", type=int, default=0)
    p.add_argument("--first-id", type=int, default=1)
    p.add_argument("--log", required=True, help="appended to")
    args = p.parse_args()
    log = open(args.log, "a")
    server_addr = None
    name = args.target.removeprefix("dns:///").rsplit(":", 1)[0]
    with grpc.insecure_channel(args.target) as ch:
        stub = echo_pb2_grpc.EchoStub(ch)
        for i, r in enumerate(CALLS[args.calls]):
            call_id = args.first_id + i
            start = time.time()
            peer, resp, code, details = None, 0, "OK", ""
            try:
                reply = stub.Unary(r, timeout=10, metadata=[("x-call-id", str(call_id))])
                peer, resp = reply.peer, 1
                addr = remote_of(peer)
                if server_addr not in (None, addr):
                    sys.exit(f"call {call_id}: a new connection, to {addr} (was {server_addr})")
                server_addr = addr
            except grpc.RpcError as e:
                code, details = e.code().name, e.details() or ""
            end = time.time()
            if server_addr is None:
                sys.exit(f"call {call_id}: {code} before any reply told the connection")
            log.write(json.dumps(dict(
                call_id=call_id, cancelled=False, client_peer=peer, conn=args.conn, end=end,
                message=details, method="/grpctap.test.Echo/Unary", req_msgs=1, resp_msgs=resp,
                resolver=os.environ.get("GRPC_DNS_RESOLVER"), server_addr=server_addr, start=start,
                status=code, target=name, dial=args.target, timeout_s=10), sort_keys=True) + "\n")
            log.flush()
    print(f"{args.target}: {len(CALLS[args.calls])} calls to {server_addr}")


if __name__ == "__main__":
    main()
