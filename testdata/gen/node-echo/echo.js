#!/usr/bin/env node
// The Echo and Store test services (testdata/proto/echo.proto, shared.proto) on @grpc/grpc-js,
// with a scripted client that logs every call, for making captures. Behaves like py_echo.py;
// the midjoin and deadlines scenarios are the same calls as in go-echo, py_echo.py, tonic-echo.
//
//   node echo.js server --addr 127.0.0.1:50300
//   node echo.js client --target 127.0.0.1:50300 --scenario midjoin|deadlines|reflect --log calls.jsonl [--marker F]
//   node echo.js server --addr 127.0.0.1:50300 --tls-cert server.pem --tls-key server.key
//   [GRPC_SSL_CIPHER_SUITES=TLS_AES_256_GCM_SHA384] node [--tls-keylog=F] [--tls-max-v1.2] echo.js client \
//       --target 127.0.0.1:50300 --scenario tls --log calls.jsonl --tls-ca ca.pem
//
// TLS is off unless --tls-cert (server) or --tls-ca (client: trust this CA, server name
// localhost) is given; any scenario can run over it. grpc-js has no key log or version
// option: node's own --tls-keylog (OpenSSL's key log callback, every TLS socket of the process)
// and --tls-max-v1.2 do it, and grpc-js hands GRPC_SSL_CIPHER_SUITES to the secure context as
// its cipher list (node gives the TLS_* names to OpenSSL as the TLS 1.3 suites).
'use strict';
const fs = require('fs');
const path = require('path');
const { performance } = require('perf_hooks');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const protoDir = process.env.PROTO_DIR || path.join(__dirname, '..', '..', 'proto');
const def = protoLoader.loadSync(['echo.proto', 'shared.proto'], {
  includeDirs: [protoDir], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
});
const pkg = grpc.loadPackageDefinition(def).grpctap.test;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => (performance.timeOrigin + performance.now()) / 1000;

// ------------------------------------------------------------------ TLS

const tlsArgs = {};
function serverCreds() {
  if (!tlsArgs.cert) return grpc.ServerCredentials.createInsecure();
  return grpc.ServerCredentials.createSsl(null, [{ cert_chain: fs.readFileSync(tlsArgs.cert), private_key: fs.readFileSync(tlsArgs.key) }], false);
}
function channelCreds() {
  if (!tlsArgs.ca) return grpc.credentials.createInsecure();
  return grpc.credentials.createSsl(fs.readFileSync(tlsArgs.ca));
}
// The channel options TLS needs: the name the certificate is checked against (and sent as SNI).
const tlsOptions = () => (tlsArgs.ca ? { 'grpc.ssl_target_name_override': 'localhost' } : {});

// ------------------------------------------------------------------ server

function peerOf(call) {
  const p = call.getPeer();
  if (/^\d+\.\d+\.\d+\.\d+:\d+$/.test(p)) return `ipv4:${p}`;
  const m = /^(.*):(\d+)$/.exec(p);
  return m ? `ipv6:[${m[1]}]:${m[2]}` : p;
}

// The trailers of a call: x-echo-tag echoes an x-request-tag.
function trailers(call) {
  const md = new grpc.Metadata();
  const tag = call.metadata.get('x-request-tag');
  if (tag.length) md.set('x-echo-tag', String(tag[0]));
  return md;
}

const reply = (r, index, peer) => ({ message: r.message, index, payload: Buffer.alloc(r.reply_size, 'r'), peer });
const statusErr = (code, details, md) => ({ code, details, metadata: md });

async function finish(r, md) {
  if (r.sleep_ms) await sleep(r.sleep_ms);
  if (r.status_code) throw statusErr(r.status_code, r.status_message, md);
}

const echoImpl = {
  Unary(call, cb) {
    const md = trailers(call);
    finish(call.request, md).then(() => cb(null, reply(call.request, 0, peerOf(call)), md), (e) => cb(e));
  },
  async ServerStream(call) {
    const r = call.request, md = trailers(call), p = peerOf(call);
    let gone = false;
    call.on('cancelled', () => { gone = true; });
    for (let i = 0; i < r.reply_count; i++) {
      if (i && r.sleep_ms) await sleep(r.sleep_ms);
      if (gone) return;
      call.write(reply(r, i, p));
    }
    if (r.status_code) call.emit('error', statusErr(r.status_code, r.status_message, md));
    else call.end(md);
  },
  async ClientStream(call, cb) {
    const md = trailers(call);
    let last = { sleep_ms: 0, status_code: 0 }, n = 0;
    try {
      for await (const r of call) { last = r; n++; }
      await finish(last, md);
      cb(null, { message: String(n), index: n, payload: Buffer.alloc(0), peer: peerOf(call) }, md);
    } catch (e) { cb(e.code ? e : statusErr(grpc.status.CANCELLED, String(e), md)); }
  },
  Bidi(call) {
    const md = trailers(call), p = peerOf(call);
    let i = 0;
    inOrder(call, async (r) => {
      for (let j = 0; j < Math.max(r.reply_count, 1); j++) call.write(reply(r, i, p));
      if (r.status_code) await finish(r, md);
      i++;
    }, () => call.end(md));
  },
};

// inOrder runs onMessage for each message of a client stream, one after the other, then onEnd;
// a status thrown by onMessage ends the call with it.
function inOrder(call, onMessage, onEnd) {
  let chain = Promise.resolve(), failed = false;
  const step = (f) => { chain = chain.then(() => (failed ? undefined : f())).catch((e) => { failed = true; if (e && e.code) call.emit('error', e); }); };
  call.on('data', (m) => step(() => onMessage(m)));
  call.on('end', () => step(onEnd));
  call.on('error', () => { failed = true; });
}

const items = new Map();
function storeBegin(call) {
  const h = new grpc.Metadata();
  h.set('x-peer', peerOf(call));
  call.sendMetadata(h);
  return trailers(call);
}
function checkId(id, md) {
  if (!id) return statusErr(grpc.status.INVALID_ARGUMENT, 'id required', md);
  if (id.startsWith('denied')) return statusErr(grpc.status.PERMISSION_DENIED, 'read-only', md);
  if (id.startsWith('unavailable')) return statusErr(grpc.status.UNAVAILABLE, 'try later', md);
  return null;
}
const notFound = (id, md) => statusErr(grpc.status.NOT_FOUND, `no item ${id}`, md);

const storeImpl = {
  Get(call, cb) {
    const md = storeBegin(call), id = call.request.id;
    const e = checkId(id, md);
    if (e) return cb(e);
    if (!items.has(id)) return cb(notFound(id, md));
    cb(null, items.get(id), md);
  },
  Delete(call, cb) {
    const md = storeBegin(call), id = call.request.id;
    const e = checkId(id, md);
    if (e) return cb(e);
    if (!items.has(id)) return cb(notFound(id, md));
    const it = items.get(id);
    items.delete(id);
    cb(null, it, md);
  },
  Put(call, cb) {
    const md = storeBegin(call), it = call.request;
    const e = checkId(it.id, md);
    if (e) return cb(e);
    const old = items.get(it.id);
    items.set(it.id, { id: it.id, data: it.data, tags: it.tags, version: (old ? old.version : 0) + 1 });
    cb(null, { id: it.id }, md);
  },
  List(call) {
    const md = storeBegin(call), prefix = call.request.id;
    const e = checkId(prefix, md);
    if (e) return call.emit('error', e);
    const found = [...items.values()].filter((i) => i.id.startsWith(prefix)).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    for (const it of found) call.write(it);
    call.end(md);
  },
  Watch(call) {
    const md = storeBegin(call);
    inOrder(call, (k) => {
      const e = checkId(k.id, md) || (items.has(k.id) ? null : notFound(k.id, md));
      if (e) throw e;
      call.write(items.get(k.id));
    }, () => call.end(md));
  },
};

function serve(addr) {
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20, 'grpc.max_send_message_length': 64 << 20 });
  server.addService(pkg.Echo.service, echoImpl);
  server.addService(pkg.Store.service, storeImpl);
  server.bindAsync(addr, serverCreds(), (err) => {
    if (err) throw err;
    console.log('ready');
  });
}

// ------------------------------------------------------------------ client

const codeName = (c) => grpc.status[c];

class Log {
  constructor(file) { this.fd = fs.openSync(file, 'w'); }
  call(rec) {
    const sorted = {};
    for (const k of Object.keys(rec).sort()) sorted[k] = rec[k];
    fs.writeSync(this.fd, JSON.stringify(sorted) + '\n');
  }
}

class Conn {
  // One channel: a local subchannel pool gives each its own TCP connection.
  constructor(target) {
    const opts = { 'grpc.use_local_subchannel_pool': 1, ...tlsOptions() };
    this.echo = new pkg.Echo(target, channelCreds(), opts);
    // Both stubs on one channel: the Store client reuses the Echo client's channel.
    this.store = new pkg.Store(target, channelCreds(), { channelOverride: this.echo.getChannel() });
  }
  close() { this.echo.close(); }
}

function mdPeer(...mds) {
  for (const md of mds) {
    if (!md) continue;
    const v = md.get('x-peer');
    if (v.length) return String(v[0]);
  }
  return null;
}

// run makes one call of a scenario spec ({svc, method, reqs, timeout, cancelAfter, tag}) and
// logs what the client saw; resolves when the call has ended.
function run(conn, c, log, s, callId, phase) {
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set('x-call-id', String(callId));
    if (s.tag) md.set('x-request-tag', s.tag);
    const opts = s.timeout ? { deadline: Date.now() + s.timeout * 1000 } : {};
    const stub = s.svc === 'Echo' ? c.echo : c.store;
    const start = now();
    let nResp = 0, peer = null, headers = null;
    const got = (m) => { nResp++; if (s.svc === 'Echo') peer = m.peer; };
    let call;
    const single = ['Unary', 'Get', 'Delete', 'Put'].includes(s.method);
    const cb = (err, m) => { if (!err) got(m); };
    if (single) call = stub[s.method](s.reqs[0], md, opts, cb);
    else if (s.method === 'ClientStream') call = stub[s.method](md, opts, cb);
    else if (s.method === 'ServerStream' || s.method === 'List') call = stub[s.method](s.reqs[0], md, opts);
    else call = stub[s.method](md, opts);
    if (s.method === 'ClientStream' || s.method === 'Bidi' || s.method === 'Watch') {
      for (const r of s.reqs) call.write(r);
      call.end();
    }
    if (!single && s.method !== 'ClientStream') {
      call.on('data', got);
      call.on('error', () => {});
    }
    call.on('metadata', (h) => { headers = h; });
    let timer = null;
    if (s.cancelAfter) timer = setTimeout(() => call.cancel(), s.cancelAfter * 1000);
    call.on('status', (st) => {
      if (timer) clearTimeout(timer);
      if (s.svc === 'Store') peer = mdPeer(headers, st.metadata);
      const rec = {
        conn, call_id: callId, method: `/grpctap.test.${s.svc}/${s.method}`, req_msgs: s.reqs.length,
        resp_msgs: nResp, status: codeName(st.code), message: st.details || '', timeout_s: s.timeout || null,
        cancelled: !!s.cancelAfter, client_peer: peer, start, end: now(),
      };
      if (phase) rec.phase = phase;
      log.call(rec);
      resolve(rec);
    });
  });
}

const CODES = [5, 3, 7, 14, 9, 8, 6, 16, 13, 10, 11, 2];

const E = (o) => Object.assign({ message: '', reply_count: 0, reply_size: 0, status_code: 0, status_message: '', sleep_ms: 0, payload: Buffer.alloc(0) }, o);

// plan is call i of connection conn in the midjoin scenario (the same function in every stack).
function plan(conn, i) {
  const k = i % 16, r = Math.floor(i / 16);
  const tag = i % 3 !== 2 ? `tag-${String(Math.floor(i / 2) % 40).padStart(2, '0')}` : null;
  const cid = (n) => `c${conn}-k${n}`;
  const echo = (method, reqs, o = {}) => Object.assign({ svc: 'Echo', method, reqs, tag }, o);
  const store = (method, reqs, o = {}) => Object.assign({ svc: 'Store', method, reqs, tag }, o);
  const K = (id) => ({ id });
  switch (k) {
    case 0: return echo('Unary', [E({ message: `u${i}`, reply_size: 20 + (i % 7) * 10 })]);
    case 1: return store('Put', [{ id: cid(i % 23), data: Buffer.alloc(i % 50, 'd'), tags: [`t${r % 3}`] }]);
    case 2: {
      const c = CODES[r % CODES.length];
      return echo('Unary', [E({ message: `e${i}`, status_code: c, status_message: `error ${c}` })]);
    }
    case 3: return store('Get', [K(cid((i * 7) % 29))]);
    case 4: {
      const e = E({ message: `s${i}`, reply_count: 3, reply_size: 10 });
      if (r % 4 === 3) Object.assign(e, { status_code: 14, status_message: 'stream broke' });
      return echo('ServerStream', [e]);
    }
    case 5: return store('List', [K(`c${conn}-k1`)]);
    case 6: {
      const reqs = [0, 1, 2].map((j) => E({ message: `c${i}-${j}` }));
      if (r % 3 === 2) Object.assign(reqs[2], { status_code: 3, status_message: 'bad stream' });
      return echo('ClientStream', reqs);
    }
    case 7: return store('Delete', [K(cid((i * 3) % 23))]);
    case 8: {
      const reqs = [0, 1].map((j) => E({ message: `b${i}-${j}`, reply_count: 1 }));
      if (r % 4 === 1) Object.assign(reqs[1], { status_code: 7, status_message: 'no bidi' });
      return echo('Bidi', reqs);
    }
    case 9: return store('Watch', [K(cid((i * 5) % 23)), K(cid((i * 11) % 23))]);
    case 10: return echo('Unary', [E({ message: `t${i}`, reply_size: 5 })], { timeout: 5.0 });
    case 11:
      if (r % 2 === 0) return store('Put', [{ id: '', data: Buffer.from('x'), tags: [] }]);
      return store('Put', [{ id: cid(i % 23), data: Buffer.alloc(0), tags: [`t${r % 3}`, 'extra'] }], { timeout: 10.0 });
    case 12:
      if (r % 3 === 0) return echo('Unary', [E({ message: `slow${i}`, sleep_ms: 200 })], { timeout: 0.05 });
      return echo('Unary', [E({ message: `q${i}`, sleep_ms: 3 })], { timeout: 2.0 });
    case 13: return store('Get', [K(`missing-${r}`)], { timeout: 1.0 });
    case 14:
      if (r % 2 === 1) return echo('ServerStream', [E({ message: `x${i}`, reply_count: 5, sleep_ms: 40 })], { cancelAfter: 0.07 });
      return echo('ServerStream', [E({ message: `y${i}`, reply_count: 5, sleep_ms: 2 })]);
    default:
      if (r % 2 === 0) return store('Get', [K(`denied-${conn}`)]);
      return store('List', [K('unavailable')]);
  }
}

// plan(conn, i) for i in [lo, hi); at every i % 50 == 25, calls i..i+3 run at once.
async function calls(conn, c, log, lo, hi, phase) {
  for (let i = lo; i < hi;) {
    if (i % 50 === 25 && i + 4 <= hi) {
      const jobs = [];
      for (let j = i; j < i + 4; j++) jobs.push(run(conn, c, log, plan(conn, j), conn * 10000 + j + 1, phase));
      await Promise.all(jobs);
      i += 4;
      continue;
    }
    await run(conn, c, log, plan(conn, i), conn * 10000 + i + 1, phase);
    i++;
  }
}

// Started before the capture, ended inside it: a client-paced Bidi that ends OK 8 messages after
// go, a Watch that ends NOT_FOUND 6 keys after go, a slow ServerStream the client cancels 1.5 s
// after go. Resolves (a promise per stream) when they end.
async function longStreams(conn, c, log, state) {
  const base = conn * 10000 + 9000;
  await run(conn, c, log, { svc: 'Store', method: 'Put', tag: 'long', reqs: [{ id: `c${conn}-watch`, data: Buffer.from('watched'), tags: [] }] }, base, 'before');
  const meta = (id, tag) => { const m = new grpc.Metadata(); m.set('x-call-id', String(id)); m.set('x-request-tag', tag); return m; };
  const logEnd = (callId, method, sent, nResp, st, peer, start, cancelled) => log.call({
    conn, call_id: callId, method, req_msgs: sent, resp_msgs: nResp, status: codeName(st.code), message: st.details || '',
    timeout_s: null, cancelled, client_peer: peer, start, end: now(), phase: 'before',
  });
  const ended = (call) => new Promise((resolve) => call.on('status', resolve));

  const bidi = (async () => {
    const start = now();
    const call = c.echo.Bidi(meta(base + 1, 'long-bidi'));
    let sent = 0, nResp = 0, peer = null, after = 0;
    call.on('data', (m) => { nResp++; peer = m.peer; });
    call.on('error', () => {});
    const done = ended(call);
    for (;;) {
      await sleep(200);
      if (state.go) { after++; if (after > 8) { call.end(); break; } }
      call.write(E({ message: `tick-${sent}`, reply_count: 1 }));
      sent++;
    }
    const st = await done;
    logEnd(base + 1, '/grpctap.test.Echo/Bidi', sent, nResp, st, peer, start, false);
  })();

  const watch = (async () => {
    const start = now();
    const call = c.store.Watch(meta(base + 2, 'long-watch'));
    let sent = 0, nResp = 0, after = 0, headers = null;
    call.on('data', () => { nResp++; });
    call.on('error', () => {});
    call.on('metadata', (h) => { headers = h; });
    const done = ended(call);
    for (;;) {
      await sleep(250);
      let id = `c${conn}-watch`;
      if (state.go) { after++; if (after > 6) id = `c${conn}-gone`; }
      call.write({ id });
      sent++;
      if (after > 6) break;
    }
    const st = await done;
    logEnd(base + 2, '/grpctap.test.Store/Watch', sent, nResp, st, mdPeer(headers, st.metadata), start, false);
  })();

  const slow = (async () => {
    const start = now();
    const call = c.echo.ServerStream(E({ message: 'slow-stream', reply_count: 100000, sleep_ms: 100 }), meta(base + 3, 'long-stream'));
    let nResp = 0, peer = null;
    call.on('data', (m) => { nResp++; peer = m.peer; });
    call.on('error', () => {});
    const done = ended(call);
    state.onGo.push(() => setTimeout(() => call.cancel(), 1500));
    const st = await done;
    logEnd(base + 3, '/grpctap.test.Echo/ServerStream', 1, nResp, st, peer, start, true);
  })();
  return [bidi, watch, slow];
}

async function midjoin(target, log, marker) {
  const conns = [new Conn(target), new Conn(target)];
  const state = { go: false, onGo: [] };
  let long = [];
  for (let conn = 0; conn < 2; conn++) long = long.concat(await longStreams(conn, conns[conn], log, state));
  await Promise.all(conns.map((c, conn) => calls(conn, c, log, 0, 200, 'before')));
  fs.writeFileSync(`${marker}.ready`, '');
  while (!fs.existsSync(marker)) await sleep(50);
  state.go = true;
  for (const f of state.onGo) f();
  await Promise.all(conns.map((c, conn) => calls(conn, c, log, 200, 500, 'during')));
  await Promise.all(long);
  for (const c of conns) c.close();
}

// The grpc.reflection.v1 and v1alpha clients. grpc-js has no reflection client and this
// package ships no reflection.proto: they are loaded from the FileDescriptorSet that
// `py_echo.py reflection-descriptors F` writes (the files the python server serves), named by
// REFLECTION_FDS.
function reflectionClients() {
  const def = protoLoader.loadFileDescriptorSetFromBuffer(fs.readFileSync(process.env.REFLECTION_FDS), {
    keepCase: true, longs: Number, enums: String, defaults: false, oneofs: true,
  });
  const r = grpc.loadPackageDefinition(def).grpc.reflection;
  return { v1: r.v1.ServerReflection, v1alpha: r.v1alpha.ServerReflection };
}

// One ServerReflectionInfo call as grpcurl makes it, on connection c (see reflection_info in
// py_echo.py): one bidi stream, each request written after the previous response arrived; a
// list_services answer is followed by file_containing_symbol for each service, a file naming a
// dependency not received yet by file_by_filename for it. Resolves with the log record.
function reflectionInfo(c, conn, callId, version, asks) {
  const descriptor = require('protobufjs/ext/descriptor');
  const crypto = require('crypto');
  const Client = reflectionClients()[version];
  const client = new Client('unused', grpc.credentials.createInsecure(), { channelOverride: c.echo.getChannel() });
  const method = `/grpc.reflection.${version}.ServerReflection/ServerReflectionInfo`;
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set('x-call-id', String(callId));
    const start = now();
    const call = client.ServerReflectionInfo(md);
    const todo = asks.slice(), exchanges = [], files = new Map(), services = [];
    let got = 0, current = null;
    const next = () => {
      if (!todo.length) { call.end(); return; }
      current = todo.shift();
      call.write({ [current[0]]: current[1] });
    };
    call.on('data', (resp) => {
      got++;
      const kind = resp.message_response;
      const ex = { request: current[0], value: current[1], response: kind };
      if (kind === 'list_services_response') {
        ex.services = resp.list_services_response.service.map((sv) => sv.name);
        services.push(...ex.services);
        for (const sv of ex.services) todo.push(['file_containing_symbol', sv]);
      } else if (kind === 'file_descriptor_response') {
        ex.files = [];
        for (const raw of resp.file_descriptor_response.file_descriptor_proto) {
          const fdp = descriptor.FileDescriptorProto.decode(raw);
          ex.files.push({
            bytes: raw.length, dependencies: fdp.dependency || [], name: fdp.name, package: fdp.package,
            services: (fdp.service || []).map((sv) => `${fdp.package}.${sv.name}`),
            sha256: crypto.createHash('sha256').update(raw).digest('hex'),
          });
          if (!files.has(fdp.name)) files.set(fdp.name, raw.length);
          for (const dep of fdp.dependency || []) {
            if (!files.has(dep) && !todo.some(([k, v]) => k === 'file_by_filename' && v === dep)) todo.push(['file_by_filename', dep]);
          }
        }
      } else if (kind === 'error_response') {
        ex.error_code = resp.error_response.error_code;
        ex.error_message = resp.error_response.error_message;
      }
      exchanges.push(ex);
      next();
    });
    call.on('error', () => {});
    call.on('status', (st) => {
      const fdps = exchanges.flatMap((ex) => ex.files || []);
      resolve({
        conn, call_id: callId, method, req_msgs: exchanges.length, resp_msgs: got, status: codeName(st.code),
        message: st.details || '', timeout_s: null, cancelled: false, client_peer: null, start, end: now(),
        phase: 'reflect',
        reflection: {
          exchanges, file_descriptor_proto_bytes: fdps.reduce((n, f) => n + f.bytes, 0),
          file_descriptor_protos: fdps.length, files: [...files.keys()].sort(), services, version,
        },
      });
    });
    next();
  });
}

// One long-lived connection: 150 calls (plan(0, i)) before the marker, then a reflection
// exchange over v1 on a new connection and one Echo call on it, the same over v1alpha (plus a
// method symbol, a file by name, a missing symbol) and one Store call, then 200 more calls on
// the long-lived connection. The same as scenario_reflect in py_echo.py.
async function reflect(target, log, marker) {
  const main = new Conn(target);
  await calls(0, main, log, 0, 150, 'before');
  fs.writeFileSync(`${marker}.ready`, '');
  while (!fs.existsSync(marker)) await sleep(50);
  const runs = [
    [1, 'v1', [['list_services', '*']],
      { svc: 'Echo', method: 'Unary', reqs: [E({ message: 'after reflection', reply_size: 10 })] }],
    [2, 'v1alpha', [['list_services', '*'], ['file_containing_symbol', 'grpctap.test.Store.Get'],
      ['file_by_filename', 'echo.proto'], ['file_containing_symbol', 'grpctap.test.Missing']],
    { svc: 'Store', method: 'List', reqs: [{ id: 'c0-k1' }] }],
  ];
  for (const [conn, version, asks, then] of runs) {
    const c = new Conn(target);
    const rec = await reflectionInfo(c, conn, conn * 10000 + 1, version, asks);
    const after = await run(conn, c, log, then, conn * 10000 + 2, 'reflect');
    rec.client_peer = after.client_peer; // the same channel, the same TCP connection
    log.call(rec);
    c.close();
  }
  await calls(0, main, log, 150, 350, 'after');
  main.close();
}

// One connection, captured from its start: Unary calls past their deadline (some 4 at once),
// calls that finish just before it, ServerStreams that hit it mid-stream, and client
// cancellations shortly before it.
async function deadlines(target, log) {
  const c = new Conn(target);
  let id = 0;
  const one = (method, r, t, cancelAfter) => run(0, c, log, { svc: 'Echo', method, reqs: [r], timeout: t, cancelAfter }, ++id, null);
  for (const t of [0.02, 0.05, 0.1, 0.25, 1.0]) {
    const m = t * 1000, margin = Math.max(8, m * 0.04);
    for (let rep = 0; rep < 3; rep++) {
      await one('Unary', E({ message: `late-${t}-${rep}`, sleep_ms: Math.trunc(m * 1.5 + 20) }), t);
      await one('Unary', E({ message: `ontime-${t}-${rep}`, sleep_ms: Math.trunc(m - margin) }), t);
    }
    await Promise.all([0, 1, 2, 3].map((j) => one('Unary', E({ message: `conc-${t}-${j}`, sleep_ms: Math.trunc(m * 2 + 20) }), t)));
    await one('Unary', E({ message: `cancel-u-${t}`, sleep_ms: Math.trunc(m * 2 + 20) }), t, t * 0.7);
    await one('ServerStream', E({ message: `cancel-s-${t}`, reply_count: 20, sleep_ms: Math.trunc(m / 4) }), t, t * 0.8);
    if (t >= 0.1) {
      for (let rep = 0; rep < 2; rep++) await one('ServerStream', E({ message: `midstream-${t}-${rep}`, reply_count: 20, sleep_ms: Math.trunc(m / 4) }), t);
    }
  }
  await sleep(500); // the last reset reaches the wire before the connection closes
  c.close();
}

// tlsPlan is call i (0..29) of the tls scenario; tlsPlan in go-echo/tls.go is the same.
function tlsPlan(i) {
  const echo = (method, reqs, o = {}) => Object.assign({ svc: 'Echo', method, reqs, tag: i % 3 === 0 ? `tls-${String(i).padStart(2, '0')}` : null }, o);
  const errU = (code, msg) => echo('Unary', [E({ message: `e${i}`, status_code: code, status_message: msg })]);
  const many = (n, f) => [...Array(n).keys()].map(f);
  switch (i) {
    case 0: case 1: case 2: case 3: case 29:
      return echo('Unary', [E({ message: `u${i}`, reply_size: { 0: 10, 1: 100, 2: 1000, 3: 20000, 29: 10 }[i] })]);
    case 4: return errU(5, 'no such thing');
    case 5: return errU(3, 'bad argument');
    case 6: return errU(7, 'denied');
    case 7: return errU(14, 'try later');
    case 8: return errU(8, 'quota');
    case 9: return errU(13, 'boom');
    case 10: return echo('ServerStream', [E({ message: 's10', reply_count: 5, reply_size: 10 })]);
    case 11: return echo('ServerStream', [E({ message: 's11', reply_count: 2, reply_size: 10, status_code: 14, status_message: 'stream broke' })]);
    case 12: return echo('ServerStream', [E({ message: 's12', reply_count: 2, reply_size: 17000 })]);
    case 13: return echo('ClientStream', many(3, (j) => E({ message: `c13-${j}` })));
    case 14: {
      const reqs = many(3, (j) => E({ message: `c14-${j}` }));
      Object.assign(reqs[2], { status_code: 3, status_message: 'bad stream' });
      return echo('ClientStream', reqs);
    }
    case 15: return echo('ClientStream', many(5, (j) => E({ message: `c15-${j}`, payload: Buffer.alloc(1000, 'p') })));
    case 16: return echo('Bidi', many(2, (j) => E({ message: `b16-${j}`, reply_count: 1 })));
    case 17: return echo('Bidi', many(3, (j) => E({ message: `b17-${j}`, reply_count: 2 })));
    case 18: {
      const reqs = many(2, (j) => E({ message: `b18-${j}`, reply_count: 1 }));
      Object.assign(reqs[1], { status_code: 9, status_message: 'no bidi' });
      return echo('Bidi', reqs);
    }
    case 19: return echo('Unary', [E({ message: 'late19', sleep_ms: 200 })], { timeout: 0.05 });
    case 20: return echo('Unary', [E({ message: 'u20', sleep_ms: 30, reply_size: 50 })]);
    case 21: return echo('ServerStream', [E({ message: 's21', reply_count: 4, reply_size: 10, sleep_ms: 10 })]);
    case 22: return echo('ClientStream', many(2, (j) => E({ message: `c22-${j}` })));
    case 23: return echo('Bidi', many(2, (j) => E({ message: `b23-${j}`, reply_count: 1 })));
    case 24: return echo('ServerStream', [E({ message: 'x24', reply_count: 5, sleep_ms: 40 })], { cancelAfter: 0.07 });
    case 25: return echo('Unary', [E({ message: 't25', reply_size: 5 })], { timeout: 5.0 });
    case 26: return errU(16, 'who are you');
    case 27: return errU(10, 'aborted');
    case 28: return echo('ServerStream', [E({ message: 's28', status_code: 5, status_message: 'nothing' })]); // only trailers
    default: throw new Error(`tlsPlan ${i}`);
  }
}

// The tls scenario: tlsPlan(i) for i in 0..29 on one connection (call ids 1..30), calls 20..23
// at once.
async function tlsScenario(target, log) {
  const c = new Conn(target);
  for (let i = 0; i < 30;) {
    if (i === 20) {
      await Promise.all([20, 21, 22, 23].map((j) => run(0, c, log, tlsPlan(j), j + 1, null)));
      i = 24;
      continue;
    }
    await run(0, c, log, tlsPlan(i), i + 1, null);
    i++;
  }
  await sleep(300); // the last reset reaches the wire before the connection closes
  c.close();
}

function main() {
  const args = process.argv.slice(2);
  const arg = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
  Object.assign(tlsArgs, { cert: arg('--tls-cert'), key: arg('--tls-key'), ca: arg('--tls-ca') });
  if (args[0] === 'server') return serve(arg('--addr'));
  if (args[0] !== 'client') {
    console.error('usage: echo.js server --addr A [--tls-cert F --tls-key F] | client --target H:P --scenario midjoin|deadlines|reflect|tls --log F [--marker M] [--tls-ca F]');
    process.exit(2);
  }
  const log = new Log(arg('--log'));
  const scenario = arg('--scenario');
  const p = scenario === 'midjoin' ? midjoin(arg('--target'), log, arg('--marker'))
    : scenario === 'reflect' ? reflect(arg('--target'), log, arg('--marker'))
    : scenario === 'deadlines' ? deadlines(arg('--target'), log)
    : scenario === 'tls' ? tlsScenario(arg('--target'), log) : Promise.reject(new Error(`unknown scenario ${scenario}`));
  p.then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
}

main();
