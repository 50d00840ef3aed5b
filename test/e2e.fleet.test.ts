import t from 'tap';
import { sleep, waitUntil } from '../src/core/timeout.js';
import { startHarness, type Harness } from './helpers/harness.js';

const runs = (h: Harness) => h.agent.status().pools.reduce((n, p) => n + p.served.cold + p.served.prewarm + p.served.warm, 0);

// A fleet on one machine: three agents on one queue, one drained mid-stream.
t.test('three agents on one queue, one drained mid-stream: nothing lost, nothing run twice', async (t) => {
  const env = { NANOGRID_PREWARM: 'python=1,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1' };
  const a = await startHarness(t, { env });
  const b = await startHarness(t, { env, stack: a.stack });
  const c = await startHarness(t, { env, stack: a.stack });
  await a.client.uploadZip('fleet/v1.zip', { 'main.py': 'import os, time\ntime.sleep(0.2)\nprint(os.environ["NANOGRID_REQUEST_ID"])\n' });

  const ids: string[] = [];
  const sending = (async () => {
    for (let i = 0; i < 60; i++) {
      const m = a.message('fleet');
      ids.push(m.requestId);
      await a.client.send(m);
      await sleep(50);
    }
  })();
  await waitUntil('b is running something', () => b.agent.status().supervisor.running > 0, { timeoutMs: 30_000, intervalMs: 10 });
  const drain = await fetch(`http://127.0.0.1:${b.agent.httpPort}/drain`, { method: 'POST' });
  t.equal(drain.status, 202);
  const drainedAt = b.agent.status().supervisor.totals.received;
  await sending;

  const results = await Promise.all(ids.map((id) => a.client.waitForResult(id, 120_000)));
  t.equal(results.filter((r) => r.status === 'SUCCESS' && r.stdout.trim() === r.requestId).length, 60, 'every invocation answered by its own run');
  await Promise.all([a, b, c].map((h) => h.quiet()));
  t.equal(runs(a) + runs(b) + runs(c), 60, 'and run exactly once');
  t.same(await a.client.queueDepth(a.stack.dlqUrl), { visible: 0, inflight: 0 }, 'nothing dead-lettered');
  const status = await waitUntil('b drained', () => (b.agent.status().drain?.state === 'drained' ? b.agent.status() : undefined), { timeoutMs: 30_000 });
  t.equal(status.drain?.stillRunning, 0);
  t.equal(b.agent.status().supervisor.totals.received, drainedAt, 'the drained agent received nothing more');
  const by = (h: Harness) => results.filter((r) => r.workerId === h.agentId).length;
  t.ok(by(a) > 0 && by(c) > 0, `the others shared the rest (${by(a)} / ${by(b)} / ${by(c)})`);
});
