import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { Writable } from 'node:stream';
import t from 'tap';
import { createLogger, silentLogger } from '../../src/core/log.js';
import { EventBus } from '../../src/core/events.js';
import { failedResult } from '../../src/core/result.js';
import { loadConfig, ConfigError } from '../../src/config.js';
import { functionOutputEvent, OUTPUT_EVENT_BYTES } from '../../src/sinks/functionOutput.js';
import { LogShipper, MAX_EVENT_BYTES, PUT_LIMITS } from '../../src/sinks/logShipper.js';
import { functionOutputShipper, logsClient } from '../../src/observe/logShipping.js';
import { fakeLogs } from '../helpers/fakeLogs.js';

const CREDS = { accessKeyId: 'test', secretAccessKey: 'test' };
const client = (url: string) => new CloudWatchLogsClient({ region: 'us-east-1', endpoint: url, credentials: CREDS, maxAttempts: 2, retryStrategy: undefined });
const shipper = (over: Partial<ConstructorParameters<typeof LogShipper>[0]> = {}) =>
  new LogShipper({ group: '/nanogrid/agent', stream: 'w-1', flushMs: 3_600_000, timeoutMs: 5000, ...over });

/** A logger whose own lines are kept, to see what the shipper says of itself. */
function keptLogger() {
  const lines: string[] = [];
  const sink = new Writable({ write: (c: Buffer, _e, cb) => (lines.push(c.toString()), cb()) });
  return { log: createLogger('info', sink), lines };
}

t.test('lines pushed before the start are shipped in order, in one call, to a stream it makes once', async (t) => {
  const cw = await fakeLogs(t, ['/nanogrid/agent']);
  const s = shipper();
  const log = createLogger('info', new Writable({ write: (_c, _e, cb) => cb() }), s.destination);
  log.info({ tag: 'AGENT' }, 'first');
  log.warn({ tag: 'DONE][FAIL', requestId: 'r-1', reason: 'TIMEOUT' }, 'invocation finished');
  s.push('clock stepped back', Date.now() - 60_000);
  t.equal(cw.calls.length, 0, 'nothing sent before the start');
  s.start(client(cw.url), silentLogger);
  await s.flush();
  t.same(cw.calls.map((c) => c.op), ['CreateLogStream', 'PutLogEvents']);
  const events = cw.events('/nanogrid/agent', 'w-1');
  t.equal(events.length, 3);
  t.equal(events[0]!.message, 'clock stepped back', 'sorted by time: PutLogEvents refuses a batch out of order');
  const summary = JSON.parse(events[2]!.message) as Record<string, unknown>;
  t.match(summary, { tag: 'DONE][FAIL', requestId: 'r-1', reason: 'TIMEOUT', msg: 'invocation finished', service: 'nanogrid-worker' }, 'the JSON line, without its newline');
  t.equal(s.pending, 0);
  s.push('later');
  await s.flush();
  t.same(cw.calls.map((c) => c.op).slice(2), ['PutLogEvents'], 'the stream is made once');
  await s.close();
  s.push('after close');
  t.equal(s.pending, 0, 'a closed shipper takes nothing');
});

t.test('a stream that exists already is used; one deleted meanwhile is made again and the batch sent', async (t) => {
  const cw = await fakeLogs(t, ['/g']);
  const a = shipper({ group: '/g' });
  a.start(client(cw.url), silentLogger);
  a.push('one');
  await a.flush();
  const b = shipper({ group: '/g' });
  b.start(client(cw.url), silentLogger);
  b.push('two');
  await b.flush();
  t.same(cw.events('/g').map((e) => e.message), ['one', 'two'], 'a second agent with the same stream (a restart) carries on');
  cw.failNext('PutLogEvents', 'ResourceNotFoundException');
  b.push('three');
  await b.flush();
  t.same(cw.calls.slice(-3).map((c) => c.op), ['PutLogEvents', 'CreateLogStream', 'PutLogEvents']);
  t.same(cw.events('/g').map((e) => e.message), ['one', 'two', 'three']);
  await a.close();
  await b.close();
});

t.test('CloudWatch Logs down: the lines wait, bounded, the oldest dropped and counted; nothing thrown', async (t) => {
  const cw = await fakeLogs(t, ['/g']);
  const bus = new EventBus();
  const failures: string[] = [];
  bus.on('sinkFailure', (sink, op) => failures.push(`${sink}/${op}`));
  const { log, lines } = keptLogger();
  const s = shipper({ group: '/g', bufferBytes: 1000, events: bus });
  s.start(client(cw.url), log);
  cw.failNext('CreateLogStream', 'fail', 2);
  for (let i = 0; i < 5; i++) s.push(`line ${i}`);
  await s.flush();
  t.same(failures, ['cloudwatch_logs/put_log_events']);
  t.match(lines.join(''), /PutLogEvents failed: the lines wait/);
  t.equal(s.pending, 5, 'kept for the next flush');
  for (let i = 5; i < 100; i++) s.push(`line ${i} ${'x'.repeat(20)}`);
  t.ok(s.pending < 100, `bounded: ${s.pending} kept`);
  await s.flush();
  const got = cw.events('/g').map((e) => e.message);
  t.equal(got.at(-1), `line 99 ${'x'.repeat(20)}`, 'the newest kept');
  t.notOk(got.includes('line 0'), 'the oldest dropped');
  t.match(lines.join(''), /"dropped":\d+/, 'the drop is said');
  await s.close();
});

t.test('a missing group is named, and never created (its retention would be forever)', async (t) => {
  const cw = await fakeLogs(t, []);
  const { log, lines } = keptLogger();
  const s = shipper({ group: '/not/made' });
  s.start(client(cw.url), log);
  s.push('x');
  await s.flush();
  t.notOk(cw.calls.some((c) => c.op === 'CreateLogGroup'));
  t.match(lines.join(''), /log group \/not\/made does not exist: the stack creates it/);
  t.equal(s.pending, 1);
});

t.test('batches keep to PutLogEvents limits; an event past its limit is cut and says so', async (t) => {
  const cw = await fakeLogs(t, ['/g']);
  const s = shipper({ group: '/g', bufferBytes: 64 * 1_048_576 });
  for (let i = 0; i < PUT_LIMITS.batchEvents + 5; i++) s.push(`e${i}`);
  const big = 'y'.repeat(400 * 1024);
  for (let i = 0; i < 5; i++) s.push(big);
  s.push('é'.repeat(200 * 1024));
  const old = Date.now() - PUT_LIMITS.spanMs - 1000;
  s.start(client(cw.url), silentLogger);
  await s.flush();
  const puts = cw.calls.filter((c) => c.op === 'PutLogEvents').map((c) => c.body.logEvents!);
  t.ok(puts.every((b) => b.length <= PUT_LIMITS.batchEvents), 'at most 10,000 events a call');
  t.ok(puts.every((b) => b.reduce((n, e) => n + Buffer.byteLength(e.message) + 26, 0) <= PUT_LIMITS.batchBytes), 'at most 1 MiB a call');
  const events = cw.events('/g');
  t.equal(events.length, PUT_LIMITS.batchEvents + 11, 'every line sent');
  const cut = events.filter((e) => /\.\.\.\[truncated: \d+ bytes\]$/.test(e.message));
  t.equal(cut.length, 6);
  t.ok(cut.every((e) => Buffer.byteLength(e.message) <= MAX_EVENT_BYTES));
  t.notOk(cut.at(-1)!.message.includes('\uFFFD'), 'cut on a character, not inside one');
  // A long outage: lines more than a day apart go in two calls.
  const before = cw.calls.length;
  s.push('old', old);
  s.push('new');
  await s.flush();
  t.equal(cw.calls.length - before, 2, 'a call spans under 24 hours');
  await s.close();
});

t.test('a batch\'s worth waiting is sent at once, not at the timer', async (t) => {
  const cw = await fakeLogs(t, ['/g']);
  const s = shipper({ group: '/g', bufferBytes: 64 * 1_048_576 });
  s.start(client(cw.url), silentLogger);
  const line = 'z'.repeat(1000);
  for (let i = 0; i < 1100; i++) s.push(line);
  for (let i = 0; i < 100 && cw.events('/g').length === 0; i++) await new Promise((r) => setTimeout(r, 20));
  t.ok(cw.events('/g').length > 0, 'sent before the hour-long timer');
  await s.close();
});

t.test('function output: one event per run, each stream cut, marked; shipped from the ran event', async (t) => {
  const r = { ...failedResult({ requestId: 'r-9', functionId: 'fn-9', runtime: 'python', reason: 'NON_ZERO_EXIT', message: 'x', memoryMb: 128, attempt: 1, workerId: 'w', totalMs: 1 }), stdout: 'o'.repeat(OUTPUT_EVENT_BYTES + 10), stderr: 'boom\n', exitCode: 1 };
  const e = JSON.parse(functionOutputEvent(r)) as Record<string, unknown>;
  t.match(e, { requestId: 'r-9', functionId: 'fn-9', stderr: 'boom\n', stdoutTruncated: true, stderrTruncated: false, exitCode: 1 });
  t.equal((e.stdout as string).length, OUTPUT_EVENT_BYTES - 2, 'the head that fits, quotes counted');
  // Multi-byte text and control characters (6 bytes each as JSON) on both streams: still one whole JSON event under the limit.
  const wide = functionOutputEvent({ ...r, stdout: '漢'.repeat(OUTPUT_EVENT_BYTES), stderr: '\u0001'.repeat(OUTPUT_EVENT_BYTES) });
  t.ok(Buffer.byteLength(wide) <= MAX_EVENT_BYTES, `${Buffer.byteLength(wide)} bytes: the shipper never cuts it`);
  t.match(JSON.parse(wide), { stdoutTruncated: true, stderrTruncated: true });

  const cw = await fakeLogs(t, ['/fn']);
  const bus = new EventBus();
  const c = loadConfig({ SQS_QUEUE_URL: 'http://127.0.0.1:1/q', REDIS_URL: 'redis://127.0.0.1:1', NANOGRID_AGENT_ID: 'w-7', NANOGRID_FUNCTION_LOG_GROUP: '/fn', AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: cw.url, AWS_REGION: 'us-east-1' });
  const fs = functionOutputShipper(c, CREDS, silentLogger, bus)!;
  bus.emit('ran', { ...r, stdout: 'hello\n' }, 'warm');
  await fs.close();
  const got = cw.events('/fn', 'w-7').map((x) => JSON.parse(x.message) as Record<string, unknown>);
  t.match(got, [{ requestId: 'r-9', stdout: 'hello\n' }]);
});

t.test('configuration: off by default, names checked, and no shipping to an emulator that does not speak it', async (t) => {
  const base = { SQS_QUEUE_URL: 'http://127.0.0.1:1/q', REDIS_URL: 'redis://127.0.0.1:1', NANOGRID_AGENT_ID: 'w-1' };
  const c = loadConfig(base);
  t.same(c.logShipping, { group: undefined, functionGroup: undefined, stream: 'w-1', flushMs: 5000 });
  t.throws(() => loadConfig({ ...base, NANOGRID_LOG_GROUP: 'bad group!' }), ConfigError);
  t.throws(() => loadConfig({ ...base, NANOGRID_LOG_STREAM: 'a:b' }), ConfigError);
  const generic = loadConfig({ ...base, NANOGRID_LOG_GROUP: '/g', AWS_ENDPOINT_URL: 'http://127.0.0.1:4566' });
  t.match(logsClient(generic, CREDS), { off: /AWS_ENDPOINT_URL_CLOUDWATCH_LOGS/ });
  const own = logsClient(loadConfig({ ...base, AWS_ENDPOINT_URL: 'http://127.0.0.1:4566', AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: 'http://127.0.0.1:1' }), CREDS);
  t.ok(own instanceof CloudWatchLogsClient);
  (own as CloudWatchLogsClient).destroy();
  t.equal(functionOutputShipper(generic, CREDS, silentLogger, new EventBus()), undefined, 'no function group: nothing');
});

t.test('lines dropped while a call is in flight take from that call: no unsent line is lost, none sent twice', async (t) => {
  const cw = await fakeLogs(t, ['/g']);
  const s = shipper({ group: '/g', bufferBytes: 40 * 100 });
  s.start(client(cw.url), silentLogger);
  const line = (i: number) => `line ${String(i).padStart(4, '0')} ${'x'.repeat(60)}`;
  for (let i = 0; i < 40; i++) s.push(line(i));
  cw.delayMs = 300;
  const first = s.flush();
  await new Promise((r) => setTimeout(r, 100));
  // Mid-call: the buffer overflows, and its oldest lines (the ones being sent) go.
  for (let i = 40; i < 100; i++) s.push(line(i));
  await first;
  cw.delayMs = 0;
  await s.flush();
  const got = cw.events('/g').map((e) => e.message);
  t.equal(new Set(got).size, got.length, 'none twice');
  t.same(got.slice(-40), Array.from({ length: 40 }, (_, i) => line(60 + i)), 'every line that stayed in the buffer, in order');
  await s.close();
});

t.test('a flush sends what waited when it began; a batch the service refuses is dropped, not retried forever', async (t) => {
  const cw = await fakeLogs(t, ['/g']);
  const { log, lines } = keptLogger();
  const s = shipper({ group: '/g' });
  s.start(client(cw.url), log);
  s.push('a');
  cw.delayMs = 200;
  const f = s.flush();
  await new Promise((r) => setTimeout(r, 50));
  s.push('b');
  await f;
  cw.delayMs = 0;
  t.same(cw.events('/g').map((e) => e.message), ['a'], 'b waits for the next flush');
  cw.failNext('PutLogEvents', 'InvalidParameterException');
  await s.flush();
  t.equal(s.pending, 0, 'the refused batch is not kept');
  t.match(lines.join(''), /PutLogEvents refused a batch: its lines are dropped/);
  s.push('c');
  await s.flush();
  t.same(cw.events('/g').map((e) => e.message), ['a', 'c'], 'what follows goes on');
  t.match(lines.join(''), /"dropped":1/, 'the drop is counted');
  // A batch spans under 24 hours from its earliest line to its latest, in any order.
  const now = Date.now();
  const before = cw.calls.length;
  s.push('x', now);
  s.push('y', now - 23 * 3_600_000);
  s.push('z', now + 2 * 3_600_000);
  await s.flush();
  t.equal(cw.calls.length - before, 2, 'the third line starts a call of its own');
  await s.close();
});
