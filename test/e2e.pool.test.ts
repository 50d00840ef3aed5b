import t from 'tap';
import { SAMPLES } from '../src/local/samples.js';
import { startHarness } from './helpers/harness.js';

const burst = async (h: Awaited<ReturnType<typeof startHarness>>, functionId: string, n: number) => {
  const messages = Array.from({ length: n }, () => h.message(functionId));
  await h.client.sendBatch(messages);
  return Promise.all(messages.map((m) => h.client.waitForResult(m.requestId, 60_000)));
};

t.test('a waiting request of the same function gets the container handed over, unpaused', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=1,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=1' } });
  await h.client.uploadZip('handoff/v1.zip', SAMPLES.pythonSleep(200));
  const results = await burst(h, 'handoff', 4);
  t.ok(results.every((r) => r.status === 'SUCCESS'));
  t.same(results.map((r) => r.startKind).sort(), ['prewarm', 'warm', 'warm', 'warm']);
  await h.settle();
  const pool = h.agent.status().pools.find((p) => p.runtime === 'python')!;
  t.ok(pool.handoffs >= 1, `hand-overs without a pause: ${pool.handoffs}`);
  t.equal(pool.containers.paused, 1, 'paused again once nobody waits');
  t.equal(pool.retired, 0);
});

t.test('a busy warm container expected back sooner than a cold start is waited for', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=3,cpp=1' } });
  const first = await h.invoke('quick', SAMPLES.pythonHello);
  t.equal(first.startKind, 'cold');
  await h.settle();
  const pool = h.agent.pools.get('python')!;
  const run = pool.runEstimate('quick')!;
  const cold = pool.status().coldStartMs;
  t.ok(run > 0, `run estimate ${Math.round(run)} ms, cold start ${cold} ms`);
  const results = await burst(h, 'quick', 2);
  await h.settle();
  const kinds = results.map((r) => r.startKind).sort();
  if (run + 30 < cold) {
    t.same(kinds, ['warm', 'warm'], 'the second request waited for the busy container');
    t.equal((await h.containers()).length, 1, 'no second container was created');
  } else {
    t.same(kinds, ['cold', 'warm'], 'a slow function scales out instead of waiting');
  }
});

t.test('an unknown function scales out on its first burst', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=3,cpp=1' } });
  await h.client.uploadZip('fresh/v1.zip', SAMPLES.pythonSleep(300));
  const results = await burst(h, 'fresh', 2);
  t.same(results.map((r) => r.startKind), ['cold', 'cold'], 'no run-time estimate yet: both start cold, side by side');
});
