import t from 'tap';
import { SAMPLES } from '../src/local/samples.js';
import { startRedisServer, type RedisServer } from '../src/local/stack.js';
import { waitUntil } from '../src/core/timeout.js';
import { shutdownRedis, startHarness } from './helpers/harness.js';

t.test('Redis down after a run: the message is deleted, the function is not re-run, the result is delivered later', async (t) => {
  const h = await startHarness(t);
  const warmup = await h.invoke('outage', SAMPLES.pythonHello);
  t.equal(warmup.status, 'SUCCESS');
  const port = Number(new URL(h.stack.redisUrl).port);
  // The result is published before its message is deleted: wait for the warm-up's delete.
  await waitUntil('warm-up deleted', async () => (h.agent.status().supervisor.inflight === 0 ? true : undefined));
  const before = h.agent.status().supervisor.totals.deleted;

  await shutdownRedis(h.stack.redisUrl);
  const m = h.message('outage');
  await h.client.send(m);
  await waitUntil('message deleted', async () => (h.agent.status().supervisor.totals.deleted === before + 1 ? true : undefined), { timeoutMs: 30_000 });
  t.same(await h.client.queueDepth(), { visible: 0, inflight: 0 }, 'deleted, so never redelivered and re-run');
  t.equal(h.agent.status().results.outbox, 1, 'the result waits in the outbox');

  let redis: RedisServer | undefined;
  t.teardown(() => redis?.stop());
  redis = await startRedisServer(port);
  await waitUntil('outbox drained', async () => (h.agent.status().results.outbox === 0 ? true : undefined), { timeoutMs: 30_000 });
  const stored = await waitUntil('stored result', async () => h.client.readStored(m.requestId).catch(() => undefined), { timeoutMs: 10_000 });
  t.equal(stored.status, 'SUCCESS');
  const python = h.agent.status().pools.find((p) => p.runtime === 'python')!;
  t.equal(python.served.prewarm + python.served.warm + python.served.cold, 2, 'the function ran exactly twice: warm-up and this one');
});
