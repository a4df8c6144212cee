#!/usr/bin/env python3
"""Makes calls again from grpcurl commands, with python grpcio's generic client (grpcurl
itself is in no package registry): each command's method, -d JSON messages, -H metadata and
-max-time, sent to a real grpcio server (testdata/gen/py_echo.py) this script starts, and the
outcome printed as JSON lines for the test to compare with the capture.

usage: grpcurl_replay.py PROTO_DIR CASES.json   (CASES: a list of grpcurl command strings)
prints per case: {"status": "OK", "message": "...", "response": [{...}, ...]}"""
import json, os, shlex, socket, subprocess, sys, tempfile, time

import grpc
from grpc_tools import protoc
from google.protobuf import json_format

here = os.path.dirname(os.path.abspath(__file__))
proto_dir, cases_path = sys.argv[1], sys.argv[2]
out = tempfile.mkdtemp()
protos = ["echo.proto", "shared.proto", "gauge.proto"]
rc = protoc.main(["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}", *protos])
assert rc == 0, "protoc failed"
sys.path.insert(0, out)
import echo_pb2, shared_pb2, gauge_pb2  # noqa: E402
from google.protobuf import descriptor_pool, message_factory  # noqa: E402

pool = descriptor_pool.Default()

with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
env = dict(os.environ, ECHO_PB_DIR=out)
server = subprocess.Popen(
    [sys.executable, os.path.join(here, "..", "testdata", "gen", "py_echo.py"), "server", "--port", str(port)],
    env=env, stdout=subprocess.PIPE, text=True)
try:
    assert server.stdout.readline().strip() == "ready", "the server did not start"
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    grpc.channel_ready_future(channel).result(timeout=10)
    for cmd in json.load(open(cases_path)):
        words = shlex.split(cmd, comments=True)
        assert words[0] == "grpcurl", cmd
        args = words[1:]
        metadata, data, timeout = [], None, None
        positional = []
        i = 0
        while i < len(args):
            a = args[i]
            if a == "-plaintext":
                i += 1
                continue
            if a in ("-H", "-d", "-max-time", "-authority", "-servername", "-import-path", "-proto"):
                v = args[i + 1]
                if a == "-H":
                    k, _, val = v.partition(":")
                    metadata.append((k.strip().lower(), val.strip()))
                elif a == "-d":
                    data = v
                elif a == "-max-time":
                    timeout = float(v)
                i += 2
                continue
            positional.append(a)
            i += 1
        target, method = positional  # the captured server's address, then the method
        service_name, method_name = method.rsplit("/", 1)
        svc = pool.FindServiceByName(service_name)
        m = svc.FindMethodByName(method_name)
        req_cls = message_factory.GetMessageClass(m.input_type)
        resp_cls = message_factory.GetMessageClass(m.output_type)
        # -d holds the messages one after another (a JSON object each, as grpcurl reads them).
        dec = json.JSONDecoder()
        reqs, at = [], 0
        text = data or ""
        while at < len(text):
            while at < len(text) and text[at].isspace():
                at += 1
            if at >= len(text):
                break
            obj, at = dec.raw_decode(text, at)
            reqs.append(json_format.ParseDict(obj, req_cls()))
        path = "/" + method
        ser, de = req_cls.SerializeToString, resp_cls.FromString
        result = {"status": "OK", "message": "", "response": []}
        try:
            if m.client_streaming and m.server_streaming:
                it = channel.stream_stream(path, ser, de)(iter(reqs), metadata=metadata, timeout=timeout)
                result["response"] = [json_format.MessageToDict(r) for r in it]
            elif m.client_streaming:
                r = channel.stream_unary(path, ser, de)(iter(reqs), metadata=metadata, timeout=timeout)
                result["response"] = [json_format.MessageToDict(r)]
            elif m.server_streaming:
                it = channel.unary_stream(path, ser, de)(reqs[0] if reqs else req_cls(), metadata=metadata, timeout=timeout)
                result["response"] = [json_format.MessageToDict(r) for r in it]
            else:
                r = channel.unary_unary(path, ser, de)(reqs[0] if reqs else req_cls(), metadata=metadata, timeout=timeout)
                result["response"] = [json_format.MessageToDict(r)]
        except grpc.RpcError as e:
            result["status"] = e.code().name
            result["message"] = e.details() or ""
        print(json.dumps(result), flush=True)
finally:
    server.kill()
