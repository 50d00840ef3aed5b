import t from 'tap';
import { waitUntil } from '../src/core/timeout.js';
import { SAMPLES } from '../src/local/samples.js';
import { startHarness } from './helpers/harness.js';

t.test('capacity by memory: runs start only while their memory fits the budget', async (t) => {
  // Two containers' worth of slots, but memory for one 128 MB run at a time; the default
  // size (64 MB) lets the agent take the second message, which then waits for memory.
  const h = await startHarness(t, {
    env: { NANOGRID_PREWARM: 'python=2,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1', NANOGRID_MEMORY_BUDGET_MB: '200', NANOGRID_DEFAULT_MEMORY_MB: '64' },
  });
  const base = `http://127.0.0.1:${h.agent.httpPort}`;
  await h.client.uploadZip('mem/v1.zip', SAMPLES.pythonSleep(1500));
  const a = h.message('mem', { memoryMb: 128 });
  const b = h.message('mem', { memoryMb: 128 });
  let maxInUse = 0;
  let sawWaiting = false;
  const sampler = setInterval(() => {
    const s = h.agent.status();
    maxInUse = Math.max(maxInUse, s.memory.inUseMb);
    if (s.supervisor.waitingForMemory > 0) sawWaiting = true;
  }, 20);
  t.teardown(() => clearInterval(sampler));
  await h.client.sendBatch([a, b]);
  await waitUntil('one waiting for memory', () => h.agent.status().supervisor.waitingForMemory === 1, { timeoutMs: 30_000 });
  const status = (await (await fetch(`${base}/status`)).json()) as { memory: { budgetMb: number; inUseMb: number; waiting: number } };
  t.same(status.memory, { budgetMb: 200, inUseMb: 128, freeMb: 72, waiting: 1 }, '/status shows the budget in use');
  const metrics = await (await fetch(`${base}/metrics`)).text();
  t.match(metrics, /^nanogrid_memory_budget_bytes 209715200$/m);
  t.match(metrics, /^nanogrid_memory_in_use_bytes 134217728$/m);
  t.match(metrics, /^nanogrid_memory_waiting_invocations 1$/m);
  const [ra, rb] = await Promise.all([h.client.waitForResult(a.requestId, 30_000), h.client.waitForResult(b.requestId, 30_000)]);
  clearInterval(sampler);
  t.same([ra.status, rb.status], ['SUCCESS', 'SUCCESS'], 'both ran: the second after the first');
  t.equal(maxInUse, 128, 'never two 128 MB runs in a 200 MB budget');
  t.ok(sawWaiting);
  await h.quiet();
  t.equal(h.agent.status().memory.inUseMb, 0, 'all returned');

  // More than this worker can ever give: a permanent error naming the limit, not a wait.
  const big = await h.invoke('mem', undefined, { memoryMb: 4096 });
  t.equal(big.status, 'FAILED');
  t.equal(big.reason, 'INVALID_MESSAGE');
  const after = await (await fetch(`${base}/metrics`)).text();
  t.match(after, /^nanogrid_answers_total\{status="FAILED",ran="no"\} 1$/m, 'a failure that never ran counts in the answers (the success ratio\'s base)');
  t.match(after, /^nanogrid_answers_total\{status="SUCCESS",ran="yes"\} 2$/m);
  t.match(big.stderr, /memoryMb 4096 exceeds this worker's memory budget of 200 MB \(NANOGRID_MEMORY_BUDGET_MB\)/);
});

t.test('a drain gives back a message waiting for memory at once', async (t) => {
  const h = await startHarness(t, {
    env: { NANOGRID_PREWARM: 'python=2,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1', NANOGRID_MEMORY_BUDGET_MB: '200', NANOGRID_DEFAULT_MEMORY_MB: '64' },
  });
  await h.client.uploadZip('mem/v1.zip', SAMPLES.pythonSleep(2000));
  const a = h.message('mem', { memoryMb: 128 });
  const b = h.message('mem', { memoryMb: 128 });
  await h.client.sendBatch([a, b]);
  await waitUntil('one running, one waiting for memory', () => h.agent.status().supervisor.waitingForMemory === 1 && h.agent.status().supervisor.running === 1, { timeoutMs: 30_000 });
  h.agent.drain();
  await waitUntil('given back', async () => (await h.client.queueDepth()).visible === 1, { timeoutMs: 5000 });
  t.equal(h.agent.status().supervisor.running, 1, 'while the first still runs');
  // Either may have come first: one ran, the other waits in the queue unanswered.
  const ran = await waitUntil('one answered', async () => (await h.client.readStored(a.requestId)) ?? (await h.client.readStored(b.requestId)), { timeoutMs: 30_000 });
  t.equal(ran.status, 'SUCCESS');
  await h.quiet();
  const other = ran.requestId === a.requestId ? b : a;
  t.equal(await h.client.readStored(other.requestId), undefined, 'the waiting one was not answered: it waits in the queue');
  t.same(await h.client.queueDepth(), { visible: 1, inflight: 0 });
});
