import t from 'tap';
import { functionKey } from '../src/core/invocation.js';
import { SAMPLES } from '../src/local/samples.js';
import { sleep, waitUntil } from '../src/core/timeout.js';
import { ONE_PYTHON, startHarness } from './helpers/harness.js';

const burst = async (h: Awaited<ReturnType<typeof startHarness>>, functionId: string, n: number) => {
  const messages = Array.from({ length: n }, () => h.message(functionId));
  await h.client.sendBatch(messages);
  return Promise.all(messages.map((m) => h.client.waitForResult(m.requestId, 60_000)));
};

t.test('a waiting request of the same function gets the container handed over, unpaused', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  await h.client.uploadZip('handoff/v1.zip', SAMPLES.pythonSleep(200));
  const results = await burst(h, 'handoff', 4);
  t.ok(results.every((r) => r.status === 'SUCCESS'));
  t.same(results.map((r) => r.startKind).sort(), ['prewarm', 'warm', 'warm', 'warm']);
  await h.quiet();
  const python = () => h.agent.status().pools.find((p) => p.runtime === 'python')!;
  t.ok(python().handoffs >= 1, `hand-overs without a pause: ${python().handoffs}`);
  await waitUntil('frozen after its pause grace', () => python().containers.paused === 1);
  t.equal(python().retired, 0);
});

// Whether a request waits for a busy warm container is placement's rule, unit-tested
// in test/unit/placement.test.ts on made-up snapshots. Here: a function known to run
// far longer than a cold start never waits.
t.test('a function that runs longer than a cold start scales out instead of waiting', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=3,cpp=1' } });
  const first = await h.invoke('slow-known', SAMPLES.pythonSleep(2500));
  t.equal(first.startKind, 'cold');
  await h.quiet();
  const pool = h.agent.pools.get('python')!;
  // A function is its id and its code's home (Invocation.functionKey).
  const run = pool.runEstimate(functionKey('slow-known', `s3://${h.stack.bucket}/slow-known/v1.zip`))!;
  t.ok(run > pool.status().coldStartMs, `run estimate ${Math.round(run)} ms is above the cold start's ${pool.status().coldStartMs} ms`);
  const results = await burst(h, 'slow-known', 2);
  t.same(results.map((r) => r.startKind).sort(), ['cold', 'warm'], 'one took the warm container, the other did not wait for it');
});

t.test('an unknown function scales out on its first burst', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=3,cpp=1' } });
  await h.client.uploadZip('fresh/v1.zip', SAMPLES.pythonSleep(300));
  const results = await burst(h, 'fresh', 2);
  t.same(results.map((r) => r.startKind), ['cold', 'cold'], 'no run-time estimate yet: both start cold, side by side');
});

// The reactive stock's target rises by a spare after any new function; only the need the
// rate shows in whole containers may take an idle container's slot. In a pool of two
// (cpp's), the spare evicted the warm container a new function had just made (the demo's
// second C++ call started prewarm), and a second new function made the stock evict one.
t.test('new functions keep their warm containers in a pool of two while the stock rises for them', async (t) => {
  // Reaped (and the stock replenished) every 2 s: at least once in the wait below, well
  // before the 8 s idle timeout could remove a container.
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=1,cpp=0', NANOGRID_PREWARM_MAX: 'python=2', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1', NANOGRID_PAUSE_GRACE_MS: '50', NANOGRID_IDLE_TIMEOUT_MS: '8000' } });
  const python = () => h.agent.status().pools.find((p) => p.runtime === 'python')!;
  const pastEvictionAge = async () => {
    // Past the idle time after which the stock may evict (500 ms, or the pause grace), with a reap in between.
    await sleep(3000);
    await h.quiet();
  };
  await waitUntil('the prewarm stock', () => python().idlePrewarm === 1);
  t.equal((await h.invoke('solo-a', SAMPLES.pythonHello)).startKind, 'prewarm');
  t.equal(python().prewarmTarget, 2, 'one new function raised the target by its spare');
  await pastEvictionAge();
  t.equal(python().retired, 0, 'nothing was evicted for the spare');
  t.equal(python().idleWarm, 1, 'the warm container is still there');
  t.equal(python().idlePrewarm, 1, 'the free slot made the stock');
  t.equal((await h.invoke('solo-b', SAMPLES.pythonHello)).startKind, 'prewarm', 'a second new function takes the stock: the pool is full');
  await pastEvictionAge();
  t.equal(python().retired, 0, 'nothing was evicted for the minimum stock either: it is made only where there is room');
  t.equal(python().idleWarm, 2);
  t.equal((await h.invoke('solo-a', SAMPLES.pythonHello)).startKind, 'warm');
  t.equal((await h.invoke('solo-b', SAMPLES.pythonHello)).startKind, 'warm');
});
