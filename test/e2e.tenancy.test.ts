import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { connect } from 'node:net';
import { networkInterfaces } from 'node:os';
import t from 'tap';
import { sleep, waitUntil } from '../src/core/timeout.js';
import { signMessage } from '../src/intake/messageAuth.js';
import { SAMPLES } from '../src/local/samples.js';
import { startLocalStack } from '../src/local/stack.js';
import { ONE_PYTHON, startHarness, uniqueId, type Harness } from './helpers/harness.js';

// Tenancy between message senders, and who may change what the worker does (docs/sandbox.md).

/** An address of this machine that is not loopback (the Docker bridge's, or any other). */
function hostAddress(): string {
  for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  throw new Error('no address of this machine other than loopback');
}

/** Everything Redis holds under a request id. */
async function keysOf(h: Harness, requestId: string): Promise<string[]> {
  const r = h.agent.redis.redis;
  const found: string[] = [];
  for (const k of [`result:${requestId}`, `job:${requestId}`, `owner:${requestId}`]) if (await r.exists(k)) found.push(k);
  return found;
}

const secret = randomBytes(32);
const KEYS = `k1:${secret.toString('base64')}`;
const key = { id: 'k1', secret };

t.test('with message keys, only what they sign runs; the rest is deleted and nothing is written under its id', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_MESSAGE_KEYS: KEYS } });
  await h.client.uploadZip('signed/v1.zip', SAMPLES.pythonHello);
  const ok = signMessage(h.message('signed'), key, { lifetimeMs: 60_000 });
  await h.client.send(ok);
  const r = await h.client.waitForResult(String(ok.requestId), 60_000);
  t.equal(r.status, 'SUCCESS', 'a signed message runs');

  const victim = uniqueId('victim');
  const wrongKey = { id: 'k1', secret: randomBytes(32) };
  const bad: Array<[string, Record<string, unknown>]> = [
    ['unsigned', h.message('signed', { requestId: victim })],
    ['forged', { ...signMessage(h.message('signed', { requestId: victim }), key, { lifetimeMs: 60_000 }), functionId: 'other' }],
    ['signed with another secret', signMessage(h.message('signed', { requestId: victim }), wrongKey, { lifetimeMs: 60_000 })],
    ['expired', signMessage(h.message('signed', { requestId: victim }), key, { now: Date.now() - 3_600_000, lifetimeMs: 60_000 })],
    ['legacy, unsigned', { job_id: victim, function_id: 'signed', code: 'print("inline")' }],
  ];
  for (const [, m] of bad) await h.client.send(m);
  await waitUntil('all refused', () => h.agent.status().supervisor.totals.refused >= bad.length, { timeoutMs: 30_000 });
  t.equal(h.agent.status().supervisor.totals.refused, bad.length, 'each refused');
  t.same(await keysOf(h, victim), [], 'nothing stored, no job state, no owner under the id they name');
  await waitUntil('queue empty', async () => {
    const d = await h.client.queueDepth();
    return d.visible + d.inflight === 0;
  });
  const python = h.agent.status().pools.find((p) => p.runtime === 'python')!;
  t.equal(python.served.prewarm + python.served.warm + python.served.cold, 1, 'only the signed one ran');
});

t.test('the first function to claim a request id owns it: another\'s message is not run and replaces nothing', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  await h.client.uploadZip('owner/v1.zip', { 'main.py': 'print("the owner")' });
  await h.client.uploadZip('intruder/v1.zip', { 'main.py': 'print("the intruder")' });
  const id = uniqueId('claimed');
  const first = await h.invoke('owner', undefined, { requestId: id });
  t.equal(first.stdout, 'the owner\n');

  const sub = new Redis(h.stack.redisUrl);
  t.teardown(() => sub.disconnect());
  const published: string[] = [];
  await sub.subscribe(`result:${id}`);
  sub.on('message', (_c, m) => published.push(m));
  const runs = () => {
    const p = h.agent.status().pools.find((x) => x.runtime === 'python')!;
    return p.served.prewarm + p.served.warm + p.served.cold;
  };
  const before = runs();
  // Another function id; the owner's id with code from another folder; the owner's own message again.
  await h.client.send(h.message('intruder', { requestId: id }));
  await h.client.send(h.message('owner', { requestId: id, s3Key: 'intruder/v1.zip' }));
  await h.client.send(h.message('owner', { requestId: id }));
  await waitUntil('all three handled', () => h.agent.status().supervisor.totals.refused === 2 && h.agent.status().supervisor.totals.deleted >= 2, { timeoutMs: 30_000 });
  await sleep(300);
  t.equal(runs(), before, 'none of them ran');
  t.same(published, [], 'nothing was published on the owner\'s channel');
  const stored = await h.client.readStored(id);
  t.equal(stored?.stdout, 'the owner\n', 'the owner\'s result stands');
  t.equal(stored?.finishedAt, first.finishedAt);
});

t.test('a message naming another function\'s id with other code gets neither its warm container nor its history', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=1,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1' } });
  const victim = await h.invoke('victim', { 'main.py': 'open("/tmp/state", "w").write("v")\nprint("victim")' });
  t.equal(victim.status, 'SUCCESS');
  const again = await h.invoke('victim', undefined);
  t.equal(again.startKind, 'warm', 'the victim\'s own next run is warm');
  const intruder = await h.invoke('victim', { 'main.py': 'print("intruder")' }, { s3Key: 'intruder/v1.zip' });
  t.equal(intruder.stdout, 'intruder\n');
  t.not(intruder.startKind, 'warm', `not the victim's container (${intruder.startKind})`);
  t.equal(intruder.recommendedMemoryMb, null, 'no history of the victim\'s to advise from');
});

t.test('POST /drain: loopback only without a token; with one, only with it; a drain is undone by DELETE', async (t) => {
  const ip = hostAddress();
  const open = await startHarness(t, { env: { ...ONE_PYTHON, HTTP_HOST: '0.0.0.0' } });
  const remote = `http://${ip}:${open.agent.httpPort}`;
  t.equal((await fetch(`${remote}/status`)).status, 200, 'anyone may read the status');
  t.equal((await fetch(`${remote}/metrics`)).status, 200);
  const refused = await fetch(`${remote}/drain`, { method: 'POST' });
  t.equal(refused.status, 403, `from ${ip}, without a token: refused`);
  t.match(((await refused.json()) as { error: string }).error, /only a client on this host/);
  t.equal(open.agent.status().phase, 'ready', 'still receiving');
  t.equal((await fetch(`http://127.0.0.1:${open.agent.httpPort}/drain`, { method: 'POST' })).status, 202, 'from loopback: drained');
  const undone = await fetch(`http://127.0.0.1:${open.agent.httpPort}/drain`, { method: 'DELETE' });
  t.equal(undone.status, 200);
  t.equal(open.agent.status().phase, 'ready', 'the drain is undone');
  t.equal((await open.invoke('after-undo', SAMPLES.pythonHello)).status, 'SUCCESS', 'and the agent receives again');
  t.equal((await fetch(`http://127.0.0.1:${open.agent.httpPort}/drain`, { method: 'DELETE' })).status, 409, 'nothing to undo');

  const token = randomBytes(24).toString('hex');
  const guarded = await startHarness(t, { env: { ...ONE_PYTHON, HTTP_HOST: '0.0.0.0', NANOGRID_ADMIN_TOKEN: token } });
  const url = `http://${ip}:${guarded.agent.httpPort}/drain`;
  t.equal((await fetch(url, { method: 'POST' })).status, 401, 'no token');
  t.equal((await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}x` } })).status, 401, 'a wrong one');
  t.equal((await fetch(`http://127.0.0.1:${guarded.agent.httpPort}/drain`, { method: 'POST' })).status, 401, 'loopback needs it too once it is set');
  t.equal((await fetch(url, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).status, 202, 'the token: drained');
  await waitUntil('drained', () => guarded.agent.status().drain?.state === 'drained');
  t.equal((await fetch(url, { method: 'DELETE' })).status, 401, 'undoing needs it too');
  t.equal((await fetch(url, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } })).status, 200);
  t.equal((await guarded.invoke('after-undo-2', SAMPLES.pythonHello)).status, 'SUCCESS', 'a drained agent receives again once undone');
});

t.test('the embedded SQS/S3 and Redis listen on loopback only', async (t) => {
  const stack = await startLocalStack();
  t.teardown(() => stack.stop());
  const ip = hostAddress();
  const reach = (host: string, port: number) =>
    new Promise<string>((resolve) => {
      const s = connect({ host, port, timeout: 2000 });
      s.once('connect', () => {
        s.destroy();
        resolve('open');
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
      s.once('timeout', () => {
        s.destroy();
        resolve('timeout');
      });
    });
  const sqsPort = Number(new URL(stack.endpoint).port);
  const redisPort = Number(new URL(stack.redisUrl).port);
  t.equal(await reach('127.0.0.1', sqsPort), 'open');
  t.equal(await reach(ip, sqsPort), 'ECONNREFUSED', `fauxqs is not reachable at ${ip}`);
  t.equal(await reach(ip, redisPort), 'ECONNREFUSED', 'nor redis-server');
});
