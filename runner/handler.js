// NanoGrid's Node.js handler runtime: imports a function's handler once, then calls it per
// invocation. The counterpart of runner/handler.py (its docstring has the protocol):
// NANOGRID_HANDLER=module.export (module.js, .mjs or .cjs in the workspace); the handler may
// return a value or a promise of one; it gets (event, context).
'use strict';
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { pathToFileURL } = require('node:url');

// The frame letters, from runner/protocol.h (a test compares them).
const HANDLER_CALL = 'C';
const HANDLER_READY = 'I';
const HANDLER_VALUE = 'V';
const HANDLER_ERROR = 'X';
const FRAME_MAX = 4 * 1024 * 1024;

const sock = new net.Socket({ fd: 3, readable: true, writable: true });

function send(kind, data) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(data.length + 1, 0);
  head.write(kind, 4, 'latin1');
  sock.write(Buffer.concat([head, data]));
}

function fields(payload) {
  const out = {};
  for (const item of payload.toString('utf8').split('\0')) {
    const eq = item.indexOf('=');
    if (eq > 0) out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

function readEvent(file) {
  if (!file) return null;
  const raw = fs.readFileSync(file);
  try {
    return JSON.parse(raw.toString('utf8'));
  } catch {
    return raw.toString('utf8');
  }
}

function context(ctx) {
  const deadlineMs = Number(ctx.deadlineMs) || 0;
  return {
    requestId: String(ctx.requestId ?? ''),
    awsRequestId: String(ctx.requestId ?? ''),
    functionId: String(ctx.functionId ?? ''),
    functionName: String(ctx.functionId ?? ''),
    memoryLimitInMB: Number(ctx.memoryMb) || 0,
    deadlineMs,
    getRemainingTimeInMillis: () => Math.max(0, deadlineMs - Date.now()),
  };
}

async function load(spec, cwd) {
  const dot = spec.lastIndexOf('.');
  if (dot <= 0 || dot === spec.length - 1) throw new Error(`NANOGRID_HANDLER must be module.export, not ${JSON.stringify(spec)}`);
  const name = spec.slice(0, dot);
  const attr = spec.slice(dot + 1);
  const file = ['.js', '.mjs', '.cjs'].map((ext) => path.resolve(cwd, name + ext)).find((f) => fs.existsSync(f));
  if (!file) throw new Error(`Cannot find module '${name}' (${name}.js, .mjs or .cjs) in ${cwd}`);
  const mod = await import(pathToFileURL(file).href);
  const fn = mod[attr] ?? mod.default?.[attr];
  if (typeof fn !== 'function') throw new TypeError(`${spec} is not a function`);
  return fn;
}

async function call(fn, req) {
  const ctx = context(JSON.parse(req.ctx || '{}'));
  process.env.NANOGRID_REQUEST_ID = ctx.requestId;
  let value;
  try {
    value = await fn(readEvent(req.input), ctx);
  } catch (err) {
    process.stderr.write(`${err && err.stack ? err.stack : String(err)}\n`);
    return [HANDLER_ERROR, { errorType: err && err.name ? err.name : typeof err, errorMessage: err && err.message !== undefined ? String(err.message) : String(err) }];
  }
  let out;
  try {
    out = Buffer.from(JSON.stringify(value === undefined ? null : value));
  } catch (err) {
    return [HANDLER_ERROR, { errorType: 'ReturnValueNotJSON', errorMessage: String(err.message) }];
  }
  if (out.length >= FRAME_MAX) return [HANDLER_ERROR, { errorType: 'ReturnValueTooLarge', errorMessage: `the return value is ${out.length} bytes of JSON; the most is ${FRAME_MAX - 1}` }];
  return [HANDLER_VALUE, out];
}

async function main() {
  const cwd = process.cwd();
  let fn;
  try {
    fn = await load(process.env.NANOGRID_HANDLER || '', cwd);
  } catch (err) {
    process.stderr.write(`${err && err.stack ? err.stack : String(err)}\n`);
    process.exit(1);
  }
  send(HANDLER_READY, Buffer.alloc(0));
  let buf = Buffer.alloc(0);
  let queue = Promise.resolve();
  sock.on('data', (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    while (buf.length >= 5) {
      const len = buf.readUInt32BE(0);
      if (buf.length < 4 + len) break;
      const kind = String.fromCharCode(buf[4]);
      const payload = buf.subarray(5, 4 + len);
      buf = buf.subarray(4 + len);
      if (kind !== HANDLER_CALL) continue;
      queue = queue.then(async () => {
        process.chdir(cwd);
        const [answer, value] = await call(fn, fields(payload));
        send(answer, Buffer.isBuffer(value) ? value : Buffer.from(JSON.stringify(value)));
      });
    }
  });
  sock.on('end', () => process.exit(0));
}

main();
