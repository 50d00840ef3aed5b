import { Writable } from 'node:stream';
import t from 'tap';
import type { Result } from '../src/core/result.js';
import { sleep, waitUntil } from '../src/core/timeout.js';
import { createLogger } from '../src/core/log.js';
import { EngineProxy } from './helpers/engineProxy.js';
import { startHarness } from './helpers/harness.js';

/** Every JSON log line the agent writes, parsed. */
function captureLog(): { lines: Record<string, unknown>[]; log: ReturnType<typeof createLogger> } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { lines, log: createLogger('info', sink) };
}

// The engine goes away mid-stream (its socket refuses, as when dockerd is stopped) and
// comes back: the agent stops receiving, gives back what it had not started, backs off,
// says so on /health and /metrics, and resumes; nothing is lost or dead-lettered.
t.test('an engine outage under a steady stream: intake pauses, nothing lost, nothing dead-lettered', async (t) => {
  const proxy = await EngineProxy.start();
  t.teardown(() => proxy.stop());
  const { lines, log } = captureLog();
  const h = await startHarness(t, {
    maxReceiveCount: 2,
    log,
    agent: { dockerSocket: proxy.socketPath, engineCheckMs: 500 },
    env: { NANOGRID_PREWARM: 'python=2,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=3,cpp=1' },
  });
  await h.client.uploadZip('echo/v1.zip', { 'main.py': 'import os, time\ntime.sleep(0.05)\nprint(os.environ["NANOGRID_REQUEST_ID"])\n' });

  const ids: string[] = [];
  const sending = (async () => {
    for (let i = 0; i < 40; i++) {
      const m = h.message('echo');
      ids.push(m.requestId);
      await h.client.send(m);
      await sleep(150);
    }
  })();

  await sleep(1500);
  await proxy.cut();
  const cutAt = Date.now();
  await waitUntil('the agent sees the outage', () => !h.agent.engine.isUp, { timeoutMs: 10_000 });
  const health = await fetch(`http://127.0.0.1:${h.agent.httpPort}/health`);
  const body = (await health.json()) as { ok: boolean; parts: { docker: { ok: boolean; detail?: string } } };
  t.equal(health.status, 503, '/health fails while the engine is unreachable');
  t.equal(body.parts.docker.ok, false);
  t.match(body.parts.docker.detail, /intake paused/);
  const metrics = await (await fetch(`http://127.0.0.1:${h.agent.httpPort}/metrics`)).text();
  t.match(metrics, /^nanogrid_docker_up 0$/m);
  t.match(metrics, /^nanogrid_engine_outages_total 1$/m);
  // A long poll already in flight when intake paused may still return messages (they go
  // back at once): count from after it (the receive wait is 1 s here).
  await sleep(1500);
  const receivedDuring = h.agent.supervisor.status().totals.received;
  await sleep(Math.max(0, 6000 - (Date.now() - cutAt)));
  t.equal(h.agent.supervisor.status().totals.received, receivedDuring, 'nothing was received while the engine was down');
  await proxy.restore();
  await sending;

  const results = new Map<string, Result>();
  for (const id of ids) results.set(id, await h.client.waitForResult(id, 120_000));
  const bad = [...results.values()].filter((r) => r.status !== 'SUCCESS' || r.stdout.trim() !== r.requestId);
  t.same(
    bad.map((r) => `${r.requestId}: ${r.reason} ${r.stderr.slice(0, 80)}`),
    [],
    'every invocation ran and printed its own request id',
  );
  t.same(await h.client.queueDepth(h.stack.dlqUrl), { visible: 0, inflight: 0 }, 'nothing went to the dead-letter queue');
  t.equal(h.agent.supervisor.status().totals.deadLettered, 0);
  t.equal(h.agent.engine.status().outages, 1);
  t.equal(h.agent.engine.isUp, true);

  // The pools rebuilt: the prewarm stock is back and no container of the outage is left over.
  await waitUntil('stock rebuilt', () => h.agent.pools.get('python')!.status().containers.paused >= 1, { timeoutMs: 30_000 });
  const created = lines.filter((l) => l.msg === 'prewarm container could not be created').length;
  t.ok(created <= 10, `prewarm retries backed off (${created} warnings)`);
  t.ok(lines.some((l) => l.msg === 'intake paused: the engine is unreachable'));
  t.ok(lines.some((l) => l.msg === 'intake resumed'));
  const running = (await h.containers()).filter((c) => c.State === 'running').length;
  t.ok(running <= 3, `no more containers than capacity after the rebuild (${running})`);
});
