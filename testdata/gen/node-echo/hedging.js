#!/usr/bin/env node
// The hedging capture's client (make_retry_captures.sh): @grpc/grpc-js with a service config
// hedgingPolicy on the Echo service (maxAttempts 3, hedgingDelay 0.1s, nonFatalStatusCodes
// UNAVAILABLE), against retry_echo.py's server, which counts the attempts of each x-call-id
// and does what x-attempt-plan asks of each (see retry_echo.py).
//
//   node hedging.js --target 127.0.0.1:P --log calls.jsonl
//
// grpc-js sends a new attempt every hedgingDelay (or at once after a non-fatal status) until
// one attempt's response headers or status arrive: that attempt is committed and the others
// are cancelled (RST_STREAM CANCEL, "Discarded in favor of other hedged attempt"). Attempts after
// the first carry grpc-previous-rpc-attempts. The log has, per logical call, `kind` and `plan`
// (the x-attempt-plan sent) and `answered_by` (the x-attempt trailer of the attempt whose
// status the application got: which attempt won); every attempt is in the server's log.
'use strict';
const fs = require('fs');
const path = require('path');
const { performance } = require('perf_hooks');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const protoDir = process.env.PROTO_DIR || path.join(__dirname, '..', '..', 'proto');
const def = protoLoader.loadSync(['echo.proto'], {
  includeDirs: [protoDir], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true,
});
const pkg = grpc.loadPackageDefinition(def).grpctap.test;
const now = () => (performance.timeOrigin + performance.now()) / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const CODE_NAMES = Object.fromEntries(Object.entries(grpc.status).map(([k, v]) => [v, k === 'CANCELLED' ? 'CANCELLED' : k]));

const SERVICE_CONFIG = {
  methodConfig: [{
    name: [{ service: 'grpctap.test.Echo' }],
    hedgingPolicy: { maxAttempts: 3, hedgingDelay: '0.1s', nonFatalStatusCodes: ['UNAVAILABLE'] },
  }],
};

// The kinds of call, each an x-attempt-plan (per attempt: sleep ms, then status).
const KINDS = {
  fast: { plan: '5:OK' }, // one attempt, answered before the hedging delay
  'slow-first': { plan: '400:OK,20:OK' }, // attempt 2 (at 100 ms) wins, attempt 1 cancelled
  'all-slow': { plan: '250:OK,250:OK,250:OK' }, // 3 attempts in flight, the first wins
  'nonfatal-first': { plan: '0:UNAVAILABLE,30:OK' }, // UNAVAILABLE: the next attempt at once
  fatal: { plan: '150:INVALID_ARGUMENT,400:OK' }, // a fatal status ends the call, attempt 2 cancelled
  exhausted: { plan: '0:UNAVAILABLE,0:UNAVAILABLE,0:UNAVAILABLE' }, // every attempt non-fatal: UNAVAILABLE
  'stream-slow-first': { plan: '300:OK,20:OK', method: 'ServerStream' },
  deadline: { plan: '400:OK,400:OK,400:OK', timeout: 0.25 }, // past its deadline while hedging
};
const ORDER = ['fast', 'slow-first', 'fast', 'all-slow', 'nonfatal-first', 'fast', 'fatal',
  'stream-slow-first', 'fast', 'exhausted', 'slow-first', 'deadline'];

function one(stub, log, callId, kind) {
  const k = KINDS[kind];
  const method = k.method || 'Unary';
  return new Promise((resolve) => {
    const md = new grpc.Metadata();
    md.set('x-call-id', String(callId));
    md.set('x-attempt-plan', k.plan);
    const opts = k.timeout ? { deadline: Date.now() + k.timeout * 1000 } : {};
    const req = { message: `h${callId}`, reply_count: 3, reply_size: 16 };
    const start = now();
    let nResp = 0, peer = null;
    const got = (m) => { nResp++; peer = m.peer; };
    let call;
    if (method === 'Unary') {
      call = stub.Unary(req, md, opts, (err, m) => { if (!err) got(m); });
    } else {
      call = stub.ServerStream(req, md, opts);
      call.on('data', got);
      call.on('error', () => {});
    }
    call.on('status', (st) => {
      const a = st.metadata ? st.metadata.get('x-attempt') : [];
      const rec = {
        conn: 0, call_id: callId, method: `/grpctap.test.Echo/${method}`, req_msgs: 1, resp_msgs: nResp,
        status: CODE_NAMES[st.code], message: st.details || '', timeout_s: k.timeout || null, cancelled: false,
        client_peer: peer, start, end: now(), kind, plan: k.plan, answered_by: a.length ? Number(a[0]) : null,
      };
      log.write(JSON.stringify(rec, Object.keys(rec).sort()) + '\n');
      resolve(rec);
    });
  });
}

async function main() {
  const args = process.argv.slice(2);
  const arg = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
  const log = fs.createWriteStream(arg('--log'));
  const client = new pkg.Echo(arg('--target'), grpc.credentials.createInsecure(), {
    'grpc.service_config': JSON.stringify(SERVICE_CONFIG),
    'grpc.service_config_disable_resolution': 1,
  });
  await new Promise((res, rej) => client.waitForReady(Date.now() + 10000, (e) => (e ? rej(e) : res())));
  // 96 calls, one started every 120 ms (some overlap), the kinds in turn.
  const t0 = Date.now() + 100, pending = [];
  for (let i = 0; i < 96; i++) {
    const wait = t0 + i * 120 - Date.now();
    if (wait > 0) await sleep(wait);
    pending.push(one(client, log, i + 1, ORDER[i % ORDER.length]));
  }
  await Promise.all(pending);
  await sleep(500);
  client.close();
  await new Promise((r) => log.end(r));
}

main().then(() => process.exit(0), (e) => { console.error(e); process.exit(1); });
