#!/usr/bin/env node
// The Echo test service (testdata/proto/echo.proto) on connect-node, serving the Connect, gRPC and
// gRPC-Web protocols on one port, with a scripted client that logs every call, for making
// captures. The server behaves like node-echo and py_echo.py (reply_count, reply_size,
// status_code / status_message, sleep_ms; the reply echoes the client's address as `peer`, the
// response header x-peer carries it too, and an x-request-tag comes back as the trailer
// x-echo-tag). The code for echo.proto is gen/echo_pb.js (`npm run generate`: protoc with
// @bufbuild/protoc-gen-es).
//
//   node connect_echo.js server --addr 127.0.0.1:50241 --http 2      (h2c: connect, grpc, grpc-web)
//   node connect_echo.js server --addr 127.0.0.1:50242 --http 1.1    (HTTP/1.1: connect, grpc-web)
//   node connect_echo.js client --target 127.0.0.1:50241 --http 2 --log calls.jsonl
//   node connect_echo.js client --scenario details --target 127.0.0.1:50245 --target-h1 127.0.0.1:50246 --log calls.jsonl
//
// The details scenario (detailsScenario): errors carrying error details (google.rpc.Status
// details, as Connect puts them in its JSON error and end-of-stream message, gRPC and gRPC-Web in
// grpc-status-details-bin), over every protocol on an HTTP/2 server (--target) and an HTTP/1.1
// one (--target-h1); its log has each call's "details" as the client decoded them. A request
// asks for details with a message beginning "details=1" or "details=2" (errorDetails), which no
// request of the default scenario has.
//
// Connect GET: echo.proto gives Echo.Unary no idempotency_level, and connect-node serves (and
// its client sends) GET only for a method marked NO_SIDE_EFFECTS. Both the server and the client
// mark Unary so in their own copy of the descriptor (markUnaryNoSideEffects) as if echo.proto
// said `option idempotency_level = NO_SIDE_EFFECTS;`; nothing else changes (that option is not on
// the wire), and only the client transports made with useHttpGet send GET.
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import { performance } from 'node:perf_hooks';
import { create, createRegistry, toJson } from '@bufbuild/protobuf';
import { MethodOptions_IdempotencyLevel } from '@bufbuild/protobuf/wkt';
import { Code, ConnectError, createClient, createContextKey, createContextValues } from '@connectrpc/connect';
import {
  connectNodeAdapter, createConnectTransport, createGrpcTransport, createGrpcWebTransport, Http2SessionManager,
} from '@connectrpc/connect-node';
import { Echo, EchoReplySchema, EchoRequestSchema } from './gen/echo_pb.js';

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  if (!signal) return void setTimeout(resolve, ms);
  if (signal.aborted) return reject(signal.reason);
  const t = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
  const onAbort = () => { clearTimeout(t); reject(signal.reason); };
  signal.addEventListener('abort', onAbort, { once: true });
});
const now = () => (performance.timeOrigin + performance.now()) / 1000;

function markUnaryNoSideEffects() {
  const m = Echo.method.unary;
  Object.defineProperty(m, 'idempotency', { value: MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS });
}

// ------------------------------------------------------------------ server

const kPeer = createContextKey('', { description: 'the client address' });

function peerOf(req) {
  const s = req.socket || (req.stream && req.stream.session && req.stream.session.socket);
  if (!s || !s.remoteAddress) return '';
  return s.remoteFamily === 'IPv6' ? `ipv6:[${s.remoteAddress}]:${s.remotePort}` : `ipv4:${s.remoteAddress}:${s.remotePort}`;
}

function begin(ctx) {
  const peer = ctx.values.get(kPeer);
  ctx.responseHeader.set('x-peer', peer);
  const tag = ctx.requestHeader.get('x-request-tag');
  if (tag) ctx.responseTrailer.set('x-echo-tag', tag);
  return peer;
}

const reply = (r, index, peer) => create(EchoReplySchema, {
  message: r.message, index, payload: new Uint8Array(r.replySize).fill(0x72), peer,
});

// errorDetails: the error details a request asks for, by a message beginning "details=N" (N 1 or
// 2; only the details scenario's requests do), else none. The first is an EchoReply whose index is
// the call's x-call-id, the second an EchoRequest (a negative int32, non-ASCII text, bytes).
const DETAILS_ASKED = /^details=([12])\b/;
function errorDetails(r, ctx) {
  const m = DETAILS_ASKED.exec(r.message);
  if (!m) return undefined;
  const id = Number(ctx.requestHeader.get('x-call-id') || 0);
  const details = [{
    desc: EchoReplySchema,
    value: { message: `detail 1 of call ${id}`, index: id, payload: new Uint8Array([0xde, 0xad, 0xbe, 0xef]), peer: 'not-a-peer' },
  }];
  if (m[1] === '2') {
    details.push({
      desc: EchoRequestSchema,
      value: {
        message: 'detail 2: ünïcödé ✓', replyCount: 7, replySize: 1234, statusCode: Code.DataLoss,
        statusMessage: 'nested status', sleepMs: -1, payload: new Uint8Array([0x00, 0xff, 0x10]),
      },
    });
  }
  return details;
}

function fail(r, ctx) {
  if (r.statusCode) throw new ConnectError(r.statusMessage, r.statusCode, undefined, errorDetails(r, ctx));
}

// sleep_ms is waited for with the call's signal: a call past its deadline (connect-timeout-ms,
// grpc-timeout) or cancelled by the client stops waiting, and connect-node ends it.
const echoImpl = {
  async unary(r, ctx) {
    const peer = begin(ctx);
    if (r.sleepMs) await sleep(r.sleepMs, ctx.signal);
    fail(r, ctx);
    return reply(r, 0, peer);
  },
  async *serverStream(r, ctx) {
    const peer = begin(ctx);
    for (let i = 0; i < r.replyCount; i++) {
      if (i && r.sleepMs) await sleep(r.sleepMs, ctx.signal);
      yield reply(r, i, peer);
      // status_code with reply_count: the stream fails after its replies (as in node-echo).
    }
    fail(r, ctx);
  },
  async clientStream(reqs, ctx) {
    const peer = begin(ctx);
    let last = create(EchoRequestSchema), n = 0;
    for await (const r of reqs) { last = r; n++; }
    if (last.sleepMs) await sleep(last.sleepMs, ctx.signal);
    fail(last, ctx);
    return create(EchoReplySchema, { message: String(n), index: n, peer });
  },
  async *bidi(reqs, ctx) {
    const peer = begin(ctx);
    let i = 0;
    for await (const r of reqs) {
      for (let j = 0; j < Math.max(r.replyCount, 1); j++) yield reply(r, i, peer);
      if (r.sleepMs) await sleep(r.sleepMs, ctx.signal);
      fail(r, ctx);
      i++;
    }
  },
};

function serve(addr, httpVersion) {
  markUnaryNoSideEffects();
  const [host, port] = [addr.slice(0, addr.lastIndexOf(':')), Number(addr.slice(addr.lastIndexOf(':') + 1))];
  const handler = connectNodeAdapter({
    routes: (router) => router.service(Echo, echoImpl),
    contextValues: (req) => createContextValues().set(kPeer, peerOf(req)),
  });
  // Without TLS: h2c with prior knowledge, or HTTP/1.1. Every protocol connect-node has
  // (connect, grpc, grpc-web) is served on both; gRPC needs HTTP/2.
  const server = httpVersion === '2' ? http2.createServer({}, handler) : http.createServer({ keepAliveTimeout: 30000 }, handler);
  server.listen(port, host, () => console.log(`ready ${httpVersion}`));
}

// ------------------------------------------------------------------ client

// connect-es codes are the gRPC codes; their names, as gRPC spells them.
const CODE_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND',
  'ALREADY_EXISTS', 'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

// A Log made withDetails (the details scenario) gives every call a "details" field too.
class Log {
  constructor(file, withDetails = false) { this.fd = fs.openSync(file, 'w'); this.withDetails = withDetails; }
  call(rec) {
    const sorted = {};
    for (const k of Object.keys(rec).sort()) sorted[k] = rec[k];
    fs.writeSync(this.fd, JSON.stringify(sorted) + '\n');
  }
}

const E = (o) => create(EchoRequestSchema, o);

// One transport: protocol, codec, HTTP version, and whether Connect unary calls use GET.
// h2 transports each get their own Http2SessionManager (their own TCP connection) unless given
// one; HTTP/1.1 ones their own keep-alive agent with one socket.
function transport(base, t) {
  const common = { baseUrl: base, useBinaryFormat: t.codec === 'proto' };
  if (t.http === '2') {
    common.httpVersion = '2';
    common.sessionManager = t.session || new Http2SessionManager(base);
  } else {
    common.httpVersion = '1.1';
    common.nodeOptions = { agent: t.agent || new http.Agent({ keepAlive: true, maxSockets: 1 }) };
  }
  if (t.protocol === 'connect') return createConnectTransport({ ...common, useHttpGet: !!t.get });
  if (t.protocol === 'grpc-web') return createGrpcWebTransport(common);
  return createGrpcTransport(common);
}

// run makes one call ({method, reqs, timeoutMs, tag}) on client c of transport t and logs what
// the client saw.
async function run(conn, t, c, log, s, callId, segment) {
  const headers = { 'x-call-id': String(callId) };
  if (s.tag) headers['x-request-tag'] = s.tag;
  let respHeader = null, respTrailer = null;
  const opts = { headers, onHeader: (h) => { respHeader = h; }, onTrailer: (h) => { respTrailer = h; } };
  if (s.timeoutMs) opts.timeoutMs = s.timeoutMs;
  const start = now();
  let nResp = 0, sent = 0, peer = null, status = 'OK', message = '', wire = null, details = [];
  const got = (m) => { nResp++; peer = m.peer; };
  async function* requests() {
    for (const r of s.reqs) {
      if (s.gapMs && sent) await sleep(s.gapMs);
      sent++;
      yield r;
    }
  }
  try {
    if (s.method === 'Unary') { sent = 1; got(await c.unary(s.reqs[0], opts)); }
    else if (s.method === 'ServerStream') { sent = 1; for await (const m of c.serverStream(s.reqs[0], opts)) got(m); }
    else if (s.method === 'ClientStream') got(await c.clientStream(requests(), opts));
    else for await (const m of c.bidi(requests(), opts)) got(m);
  } catch (e) {
    const ce = ConnectError.from(e);
    status = CODE_NAMES[ce.code] || String(ce.code);
    message = ce.rawMessage;
    wire = ce.metadata;
    if (log.withDetails) details = receivedDetails(ce);
  }
  const hdr = (name) => (respHeader && respHeader.get(name)) || (wire && wire.get(name)) || null;
  const rec = {
    conn, call_id: callId, segment, protocol: t.protocol, codec: t.codec, http: t.http,
    http_method: t.get && s.method === 'Unary' ? 'GET' : 'POST',
    method: `/grpctap.test.Echo/${s.method}`, req_msgs: sent, resp_msgs: nResp, status, message,
    timeout_s: s.timeoutMs ? s.timeoutMs / 1000 : null, cancelled: false,
    client_peer: peer || hdr('x-peer'), echo_tag: (respTrailer && respTrailer.get('x-echo-tag')) || (wire && wire.get('x-echo-tag')) || null,
    start, end: now(),
  };
  if (log.withDetails) rec.details = details;
  log.call(rec);
  return rec;
}

// The types the details scenario's errors carry.
const detailTypes = createRegistry(EchoReplySchema, EchoRequestSchema);

// receivedDetails: the error details of ce as the client decodes them (findDetails), each
// {type, value: its proto3 JSON}. Every detail the error came with must be one of detailTypes.
function receivedDetails(ce) {
  const found = ce.findDetails(detailTypes);
  if (found.length !== ce.details.length) {
    throw new Error(`${ce.details.length} details received, ${found.length} decoded: ${JSON.stringify(ce.details)}`);
  }
  return found.map((m) => ({ type: m.$typeName, value: toJson(detailTypes.getMessage(m.$typeName), m) }));
}

// suite is the calls made on one transport: Unary OK (an empty request; a 70 000-byte reply,
// which connect-node gzips, as every response message past 1 KiB), Unary errors, a non-ASCII
// error message, ServerStream 1/5 and one failing after 2 replies, a Unary and a ServerStream
// past their timeout, ClientStream 3/1 and one failing (both also over HTTP/1.1: a chunked
// request body), Bidi 3/4 (HTTP/2; over HTTP/1.1 the server refuses it) and on HTTP/2 a Bidi
// failing after 2 replies.
function suite(t) {
  const calls = [
    { method: 'Unary', reqs: [E({ message: 'hello', replySize: 10 })], tag: 'tag-a' },
    { method: 'Unary', reqs: [E({})] },
    { method: 'Unary', reqs: [E({ message: 'big', replySize: 70000 })] },
    { method: 'Unary', reqs: [E({ message: 'e5', statusCode: Code.NotFound, statusMessage: 'no such item' })], tag: 'tag-e' },
    { method: 'Unary', reqs: [E({ message: 'e3', statusCode: Code.InvalidArgument, statusMessage: 'bad request: id required' })] },
    { method: 'Unary', reqs: [E({ message: 'e14', statusCode: Code.Unavailable, statusMessage: 'try later' })] },
    { method: 'Unary', reqs: [E({ message: 'e7', statusCode: Code.PermissionDenied, statusMessage: 'read-only' })] },
    { method: 'Unary', reqs: [E({ message: 'e13', statusCode: Code.Internal, statusMessage: 'boom' })] },
    { method: 'Unary', reqs: [E({ message: 'e8', statusCode: Code.ResourceExhausted, statusMessage: 'quota 100% used: ünïcödé ✓ "quoted"\nline 2' })] },
    { method: 'ServerStream', reqs: [E({ message: 'stream', replyCount: 5, replySize: 20 })], tag: 'tag-s' },
    { method: 'ServerStream', reqs: [E({ message: 'broken', replyCount: 2, replySize: 20, statusCode: Code.Unavailable, statusMessage: 'stream broke' })] },
    { method: 'Unary', reqs: [E({ message: 'slow', sleepMs: 400 })], timeoutMs: 150 },
    { method: 'ServerStream', reqs: [E({ message: 'slow-stream', replyCount: 5, sleepMs: 100 })], timeoutMs: 250 },
  ];
  calls.push(
    { method: 'ClientStream', reqs: [0, 1, 2].map((j) => E({ message: `c${j}` })), gapMs: 10 },
    { method: 'ClientStream', reqs: [0, 1].map((j) => E({ message: `cf${j}`, ...(j === 1 ? { statusCode: Code.Aborted, statusMessage: 'bad stream' } : {}) })) },
    { method: 'Bidi', reqs: [1, 2, 1].map((n, j) => E({ message: `b${j}`, replyCount: n, replySize: 8 })), gapMs: 20 },
  );
  // On HTTP/1.1 the one Bidi is answered HTTP 505 by connect-node (bidi needs HTTP/2).
  if (t.http === '2') {
    calls.push({ method: 'Bidi', reqs: [E({ message: 'bf0', replyCount: 1 }), E({ message: 'bf1', replyCount: 1, statusCode: Code.FailedPrecondition, statusMessage: 'no bidi' })], gapMs: 20 });
  }
  return calls;
}

// The Connect GET calls (Unary only): OK, an error, past a timeout.
const getSuite = () => [
  { method: 'Unary', reqs: [E({ message: 'get me', replySize: 10 })], tag: 'tag-g' },
  { method: 'Unary', reqs: [E({ message: 'get e5', statusCode: Code.NotFound, statusMessage: 'no such item' })] },
  { method: 'Unary', reqs: [E({ message: 'get slow', sleepMs: 400 })], timeoutMs: 150 },
];

async function scenario(target, httpVersion, log) {
  markUnaryNoSideEffects();
  const base = `http://${target}`;
  const segs = [];
  const add = (t, calls) => segs.push({ t, calls });
  const h = httpVersion;
  add({ protocol: 'connect', codec: 'proto', http: h }, suite({ http: h }));
  add({ protocol: 'connect', codec: 'json', http: h }, suite({ http: h }));
  add({ protocol: 'grpc-web', codec: 'proto', http: h }, suite({ http: h }));
  if (h === '2') add({ protocol: 'grpc', codec: 'proto', http: h }, suite({ http: h }));
  add({ protocol: 'connect', codec: 'proto', http: h, get: true }, getSuite());
  add({ protocol: 'connect', codec: 'json', http: h, get: true }, getSuite());
  let conn = 0;
  for (const { t, calls } of segs) {
    const c = createClient(Echo, transport(base, t));
    for (let i = 0; i < calls.length; i++) await run(conn, t, c, log, calls[i], conn * 10000 + i + 1, 'suite');
    if (t.session) t.session.abort();
    conn++;
  }
  // Mixed: the protocols one after the other on one connection (one HTTP/2 session, or one
  // keep-alive HTTP/1.1 socket), then (HTTP/2) four calls of different protocols at once.
  const mixed = h === '2'
    ? [['connect', 'proto'], ['grpc', 'proto'], ['grpc-web', 'proto'], ['connect', 'json']]
    : [['connect', 'proto'], ['grpc-web', 'proto'], ['connect', 'json']];
  const shared = h === '2' ? { session: new Http2SessionManager(base) } : { agent: new http.Agent({ keepAlive: true, maxSockets: 1 }) };
  const ts = mixed.map(([protocol, codec]) => ({ protocol, codec, http: h, ...shared }));
  const clients = ts.map((t) => createClient(Echo, transport(base, t)));
  let i = 0;
  for (let round = 0; round < 2; round++) {
    for (let k = 0; k < ts.length; k++) {
      const s = round === 0
        ? { method: 'Unary', reqs: [E({ message: `mixed-${k}`, replySize: 5 })] }
        : { method: 'Unary', reqs: [E({ message: `mixed-e${k}`, statusCode: Code.NotFound, statusMessage: `missing ${k}` })] };
      await run(conn, ts[k], clients[k], log, s, conn * 10000 + ++i, 'mixed');
    }
  }
  if (h === '2') {
    const first = i + 1;
    i += ts.length;
    await Promise.all(ts.map((t, k) => run(conn, t, clients[k], log,
      { method: 'ServerStream', reqs: [E({ message: `conc-${k}`, replyCount: 3, sleepMs: 15, replySize: 10 })] },
      conn * 10000 + first + k, 'mixed-concurrent')));
  }
  await sleep(300); // the last frames reach the wire before the connections close
  if (shared.session) shared.session.abort();
  if (shared.agent) shared.agent.destroy();
}

// The details scenario's calls on one transport: a Unary error with one detail, one with two, a
// ServerStream of 2 replies ending in an error with one detail, and a Unary error without any.
const detailsSuite = () => [
  { method: 'Unary', reqs: [E({ message: 'details=1 unary', statusCode: Code.InvalidArgument, statusMessage: 'bad field: see details' })] },
  { method: 'Unary', reqs: [E({ message: 'details=2 unary', statusCode: Code.FailedPrecondition, statusMessage: 'two details: ünïcödé ✓ "quoted"' })] },
  { method: 'ServerStream', reqs: [E({ message: 'details=1 stream', replyCount: 2, replySize: 8, statusCode: Code.Unavailable, statusMessage: 'stream broke, with a detail' })] },
  { method: 'Unary', reqs: [E({ message: 'no details', statusCode: Code.NotFound, statusMessage: 'no such item (no details)' })] },
];
// And over Connect GET: a Unary error with two details.
const detailsGetSuite = () => [
  { method: 'Unary', reqs: [E({ message: 'details=2 get', statusCode: Code.PermissionDenied, statusMessage: 'read-only: see details' })] },
];

// detailsScenario: on each server (HTTP/2, then HTTP/1.1), one connection per transport: Connect
// proto, Connect json, gRPC-Web, gRPC (HTTP/2 only) each making detailsSuite, then Connect GET
// proto and json each making detailsGetSuite; each connection closed before the next one opens.
async function detailsScenario(targets, log) {
  markUnaryNoSideEffects();
  let conn = 0;
  for (const [target, h] of targets) {
    const base = `http://${target}`;
    const segs = [
      [{ protocol: 'connect', codec: 'proto' }, detailsSuite()],
      [{ protocol: 'connect', codec: 'json' }, detailsSuite()],
      [{ protocol: 'grpc-web', codec: 'proto' }, detailsSuite()],
      ...(h === '2' ? [[{ protocol: 'grpc', codec: 'proto' }, detailsSuite()]] : []),
      [{ protocol: 'connect', codec: 'proto', get: true }, detailsGetSuite()],
      [{ protocol: 'connect', codec: 'json', get: true }, detailsGetSuite()],
    ];
    for (const [kind, calls] of segs) {
      const t = { ...kind, http: h };
      if (h === '2') t.session = new Http2SessionManager(base);
      else t.agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const c = createClient(Echo, transport(base, t));
      for (let i = 0; i < calls.length; i++) await run(conn, t, c, log, calls[i], conn * 10000 + i + 1, 'details');
      await sleep(100); // the last frames reach the wire before the connection closes
      if (t.session) t.session.abort();
      if (t.agent) t.agent.destroy();
      conn++;
    }
  }
}

function main() {
  const args = process.argv.slice(2);
  const arg = (name, dflt) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : dflt; };
  const httpVersion = arg('--http', '2');
  if (!['2', '1.1'].includes(httpVersion)) throw new Error(`--http 2 or 1.1, not ${httpVersion}`);
  if (args[0] === 'server') return serve(arg('--addr'), httpVersion);
  if (args[0] !== 'client') {
    console.error('usage: connect_echo.js server --addr H:P --http 2|1.1 | client --target H:P --http 2|1.1 --log F'
      + ' | client --scenario details --target H:P --target-h1 H:P --log F');
    process.exit(2);
  }
  const done = (p) => p.then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
  const which = arg('--scenario', 'default');
  if (which === 'details') {
    const targets = [[arg('--target'), '2'], [arg('--target-h1'), '1.1']].filter(([a]) => a);
    if (!targets.length) throw new Error('--scenario details: --target (HTTP/2) and/or --target-h1 (HTTP/1.1)');
    return done(detailsScenario(targets, new Log(arg('--log'), true)));
  }
  if (which !== 'default') throw new Error(`--scenario default or details, not ${which}`);
  done(scenario(arg('--target'), httpVersion, new Log(arg('--log'))));
}

main();
