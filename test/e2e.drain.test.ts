import t from 'tap';
import { waitUntil } from '../src/core/timeout.js';
import { SAMPLES } from '../src/local/samples.js';
import { startHarness } from './helpers/harness.js';

t.test('POST /drain: no new messages, the running one finishes, the agent stays up drained', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=1,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1' } });
  await h.client.uploadZip('slow/v1.zip', SAMPLES.pythonSleep(2000));
  const base = `http://127.0.0.1:${h.agent.httpPort}`;
  const running = h.message('slow');
  await h.client.send(running);
  await waitUntil('running', () => h.agent.status().supervisor.running === 1, { timeoutMs: 30_000 });

  const res = await fetch(`${base}/drain`, { method: 'POST' });
  t.equal(res.status, 202);
  const d = (await res.json()) as { state: string; running: number };
  t.same({ state: d.state, running: d.running }, { state: 'draining', running: 1 });
  t.equal((await fetch(`${base}/drain`, { method: 'POST' })).status, 202, 'a second drain is the same drain');

  const after = h.message('slow');
  await h.client.send(after);
  const r = await h.client.waitForResult(running.requestId, 30_000);
  t.equal(r.status, 'SUCCESS', 'the running invocation finished');
  const status = await waitUntil('drained', async () => {
    const s = (await (await fetch(`${base}/status`)).json()) as { phase: string; drain: { state: string; stillRunning: number; finishedAt: string | null } };
    return s.drain?.state === 'drained' ? s : undefined;
  });
  t.equal(status.phase, 'drained');
  t.equal(status.drain.stillRunning, 0);
  t.ok(status.drain.finishedAt);
  t.same(await h.client.queueDepth(), { visible: 1, inflight: 0 }, 'the message sent during the drain waits in the queue for another worker');
  t.equal((await fetch(`${base}/health/ready`)).status, 503, 'a drained worker is not ready');
  t.equal((await fetch(`${base}/health/live`)).status, 200, 'but alive');

  // Another worker on the same queue takes it: nothing lost.
  const other = await startHarness(t, { stack: h.stack });
  const taken = await other.client.waitForResult(after.requestId, 60_000);
  t.equal(taken.status, 'SUCCESS');
  t.equal(taken.workerId, other.agentId);
});
