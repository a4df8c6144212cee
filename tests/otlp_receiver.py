#!/usr/bin/env python3
"""An OTLP/HTTP receiver for the tests, built from the official OTLP protobuf definitions
(PyPI opentelemetry-proto): it decodes what grpctap sends as a collector would, and writes each
span and metric data point as a JSON line.

Usage: otlp_receiver.py --out FILE [--fail N] [--status CODE] [--retry-after S] [--slow S]
Prints "port P" once listening on 127.0.0.1. --fail N answers the first N requests with
--status (default 503) and Retry-After; --slow S waits S seconds before answering each."""
import argparse, gzip, json, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2 as ms
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as ts

ap = argparse.ArgumentParser()
ap.add_argument("--out", required=True)
ap.add_argument("--fail", type=int, default=0)
ap.add_argument("--status", type=int, default=503)
ap.add_argument("--retry-after", default="1")
ap.add_argument("--slow", type=float, default=0)
args = ap.parse_args()

lock = threading.Lock()
out = open(args.out, "a")
state = {"requests": 0}


def value(v):
    kind = v.WhichOneof("value")
    return getattr(v, kind) if kind else None


def attrs(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def write(obj):
    with lock:
        out.write(json.dumps(obj) + "\n")
        out.flush()


class H(BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            state["requests"] += 1
            n = state["requests"]
        if args.slow:
            time.sleep(args.slow)
        if n <= args.fail:
            self.send_response(args.status)
            self.send_header("Retry-After", args.retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()
            write({"kind": "refused", "path": self.path, "request": n})
            return
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            if self.path == "/v1/traces":
                req = ts.ExportTraceServiceRequest.FromString(body)
                for rs in req.resource_spans:
                    res = attrs(rs.resource.attributes)
                    for ss in rs.scope_spans:
                        for s in ss.spans:
                            write({
                                "kind": "span",
                                "resource": res,
                                "scope": ss.scope.name,
                                "trace_id": s.trace_id.hex(),
                                "span_id": s.span_id.hex(),
                                "parent_span_id": s.parent_span_id.hex(),
                                "trace_state": s.trace_state,
                                "name": s.name,
                                "span_kind": s.kind,
                                "start": s.start_time_unix_nano,
                                "end": s.end_time_unix_nano,
                                "attributes": attrs(s.attributes),
                                "events": [{"name": e.name, "time": e.time_unix_nano, "attributes": attrs(e.attributes)} for e in s.events],
                                "status": {"code": s.status.code, "message": s.status.message},
                                "headers": headers,
                            })
            elif self.path == "/v1/metrics":
                req = ms.ExportMetricsServiceRequest.FromString(body)
                for rm in req.resource_metrics:
                    for sm in rm.scope_metrics:
                        for m in sm.metrics:
                            for p in m.sum.data_points:
                                write({
                                    "kind": "sum",
                                    "name": m.name,
                                    "monotonic": m.sum.is_monotonic,
                                    "temporality": m.sum.aggregation_temporality,
                                    "attributes": attrs(p.attributes),
                                    "value": p.as_int,
                                })
                            for p in m.histogram.data_points:
                                write({
                                    "kind": "histogram",
                                    "name": m.name,
                                    "unit": m.unit,
                                    "temporality": m.histogram.aggregation_temporality,
                                    "attributes": attrs(p.attributes),
                                    "count": p.count,
                                    "sum": p.sum,
                                    "bucket_counts": list(p.bucket_counts),
                                    "bounds": list(p.explicit_bounds),
                                    "start": p.start_time_unix_nano,
                                    "time": p.time_unix_nano,
                                })
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
        except DecodeError as e:
            write({"kind": "bad", "error": str(e)})
            self.send_response(400)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print("port", srv.server_address[1], flush=True)
srv.serve_forever()
