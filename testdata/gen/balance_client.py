#!/usr/bin/env python3
"""A python grpcio client of several backends behind one name, for make_balance_captures.sh.

python3 balance_client.py --client 0 --addrs 127.0.0.1:50300,127.0.0.2:50300,127.0.0.3:50300 \
    --authority echo.internal:50300 --policy default --rate 15 --until T --log client-0.jsonl

One channel for the whole run, target ipv4:ADDR,ADDR,... (grpcio's static address list: resolved
once, never again) with grpc.default_authority set, so every connection says the same
:authority whichever backend it goes to. --policy is the service config:
  default              none: the channel's default LB policy, pick_first in list order
  pick_first_shuffle   {"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}
  round_robin          {"loadBalancingConfig":[{"round_robin":{}}]}
The channel waits for ready, then makes steady calls, one at a time, at --rate per second (on a
fixed schedule from its first call, not after each call) until the unix time --until. Each call
has a 5 s deadline and x-call-id metadata (call ids client * 10000 + i + 1). Call i is
Echo.Unary (OK), except: i % 40 == 39 is Store.Get of a missing key (NOT_FOUND), i % 57 == 56
Store.Get of "unavailable-..." (UNAVAILABLE); the Store server sends x-peer in its response
headers before the error, so those calls too say which connection they went on.

Every call is written to --log when it ended, one JSON line with the fields of py_echo.py's logs
(conn, call_id, method, req_msgs, resp_msgs, status, message, timeout_s, cancelled,
client_peer, start, end) and client (--client), server_addr, lb_policy (--policy), dial (the
channel target), authority. client_peer is the client's address as the server saw it
("ipv4:127.0.0.1:PORT": the Echo reply's peer, the x-peer header of a Store call). server_addr
is the backend the call went to, as the client's own socket has it: grpcio's client-side Call
has no peer(), so the socket of this process (/proc/self/fd) whose local port is client_peer's,
its remote address in /proc/net/tcp{,6} ("127.0.0.2:50300"). conn is one number per TCP
connection: client * 10 + the last byte of the backend's address (conn 32: client 3 to
127.0.0.2).
"""
import argparse, json, os, socket, sys, time

import grpc

sys.path.insert(0, os.environ.get("ECHO_PB_DIR", os.path.dirname(__file__)))
import echo_pb2, echo_pb2_grpc  # noqa: E402  (generated as capture_lib.sh's build_py does)
import shared_pb2, shared_pb2_grpc  # noqa: E402

POLICIES = {
    "default": None,
    "pick_first_shuffle": {"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": True}}]},
    "round_robin": {"loadBalancingConfig": [{"round_robin": {}}]},
}
TIMEOUT = 5.0


def proc_addr(field):
    """An address of /proc/net/tcp{,6} ("0100007F:BE02": 32-bit words in host order) as (the
    address's bytes, port)."""
    addr, port = field.split(":")
    raw = bytes.fromhex(addr)
    return b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)), int(port, 16)


def own_sockets():
    """Inodes of this process's sockets."""
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            out.add(link[8:-1])
    return out


def remote_of(peer):
    """The remote end ("127.0.0.2:50300") of this process's TCP socket whose local end is `peer`
    ("ipv4:127.0.0.1:51790"). grpcio's sockets are AF_INET6 with the IPv4 addresses mapped."""
    host, port = peer.removeprefix("ipv4:").rsplit(":", 1)
    want = {socket.inet_pton(socket.AF_INET6, "::ffff:" + host), socket.inet_aton(host)}
    mine, found = own_sockets(), set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                cols = line.split()
                addr, lport = proc_addr(cols[1])
                if cols[9] in mine and addr in want and lport == int(port) and cols[3] == "01":
                    raddr, rport = proc_addr(cols[2])
                    found.add(f"{socket.inet_ntoa(raddr[-4:])}:{rport}")
    if len(found) != 1:
        sys.exit(f"{peer}: {len(found)} established sockets of this process ({sorted(found)})")
    return found.pop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--client", type=int, required=True)
    p.add_argument("--addrs", required=True, help="comma-separated host:port list")
    p.add_argument("--authority", required=True)
    p.add_argument("--policy", choices=sorted(POLICIES), required=True)
    p.add_argument("--rate", type=float, default=15.0, help="calls per second")
    p.add_argument("--until", type=float, required=True, help="unix time to stop at")
    p.add_argument("--log", required=True)
    args = p.parse_args()
    target = "ipv4:" + args.addrs
    opts = [("grpc.default_authority", args.authority)]
    if POLICIES[args.policy] is not None:
        opts.append(("grpc.service_config", json.dumps(POLICIES[args.policy])))
    log = open(args.log, "w")
    remote = {}  # client_peer -> server_addr (connections are long-lived)
    counts = {}
    with grpc.insecure_channel(target, options=opts) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        echo, store = echo_pb2_grpc.EchoStub(ch), shared_pb2_grpc.StoreStub(ch)
        t0, i = time.time(), 0
        while True:
            due = t0 + i / args.rate
            if due >= args.until:
                break
            if due > time.time():
                time.sleep(due - time.time())
            call_id = args.client * 10000 + i + 1
            md = [("x-call-id", str(call_id))]
            start = time.time()
            peer, resp, code, details = None, 0, "OK", ""
            try:
                if i % 40 == 39 or i % 57 == 56:
                    method = "/grpctap.test.Store/Get"
                    key = f"missing-{call_id}" if i % 40 == 39 else f"unavailable-{call_id}"
                    _, call = store.Get.with_call(shared_pb2.Key(id=key), timeout=TIMEOUT, metadata=md)
                    resp = 1
                else:
                    method = "/grpctap.test.Echo/Unary"
                    r = echo_pb2.EchoRequest(message=f"c{args.client}-{i}", reply_size=32)
                    reply, call = echo.Unary.with_call(r, timeout=TIMEOUT, metadata=md)
                    peer, resp = reply.peer, 1
            except grpc.RpcError as e:
                code, details, call = e.code().name, e.details() or "", e
            end = time.time()
            if peer is None:
                peer = dict(call.initial_metadata() or ()).get("x-peer")
            if peer is None:
                sys.exit(f"call {call_id}: {code} {details}: no peer")
            if peer not in remote:
                remote[peer] = remote_of(peer)
            server_addr = remote[peer]
            conn = args.client * 10 + int(server_addr.rsplit(":", 1)[0].rsplit(".", 1)[1])
            log.write(json.dumps(dict(
                call_id=call_id, cancelled=False, client=args.client, client_peer=peer, conn=conn,
                end=end, message=details, method=method, req_msgs=1, resp_msgs=resp,
                server_addr=server_addr, start=start, status=code, timeout_s=TIMEOUT,
                lb_policy=args.policy, dial=target, authority=args.authority), sort_keys=True) + "\n")
            log.flush()
            counts[server_addr] = counts.get(server_addr, 0) + 1
            i += 1
    print(f"client {args.client} ({args.policy}): {i} calls: "
          + ", ".join(f"{a} {n}" for a, n in sorted(counts.items())), flush=True)


if __name__ == "__main__":
    main()
