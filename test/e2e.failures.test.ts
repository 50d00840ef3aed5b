import t from 'tap';
import { buildZip } from '../src/local/client.js';
import { rawZip } from './helpers/rawZip.js';
import { waitUntil } from '../src/core/timeout.js';
import { startHarness, uniqueId } from './helpers/harness.js';

const main = { name: 'main.py', data: Buffer.from('print("should never run")\n') };

t.test('permanent failures are answered FAILED with their reason and deleted', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_ZIP_MAX_ENTRIES: '10', NANOGRID_ZIP_MAX_BYTES: '1048576' } });

  const cases: Array<[string, Buffer | Promise<Buffer>]> = [
    ['ZIP_SLIP', rawZip([main, { name: '../../escape.py', data: Buffer.from('x') }])],
    ['ZIP_ABSOLUTE_PATH', rawZip([main, { name: '/etc/cron.d/evil', data: Buffer.from('x') }])],
    ['ZIP_LINK', rawZip([main, { name: 'link', data: Buffer.from('/etc/shadow'), mode: 0o120777 }])],
    ['ZIP_TOO_MANY_ENTRIES', rawZip(Array.from({ length: 11 }, (_, i) => ({ name: `f${i}.txt`, data: Buffer.from('x') })))],
    ['ZIP_TOO_LARGE', buildZip({ 'main.py': 'print(1)', 'zeros.bin': { content: Buffer.alloc(2 * 1024 * 1024) } })],
    // A header that claims 10 bytes for 2 MiB: refused as soon as inflation passes the claim.
    ['ZIP_INVALID', rawZip([main, { name: 'bomb.bin', data: Buffer.alloc(2 * 1024 * 1024), deflate: true, declaredSize: 10 }])],
    ['ZIP_INVALID', Promise.resolve(Buffer.from('this is not a zip file at all'))],
  ];
  for (const [reason, body] of cases) {
    t.test(reason, async (t) => {
      const functionId = uniqueId('bad');
      await h.client.upload(`${functionId}/v1.zip`, await body);
      const r = await h.invoke(functionId, undefined);
      t.equal(r.status, 'FAILED');
      t.equal(r.reason, reason);
      t.equal(r.exitCode, -1);
      t.match(r.stderr, `[${reason}]`);
      t.equal(r.startKind, null, 'nothing ran');
    });
  }

  t.test('unsupported runtime', async (t) => {
    const m = h.message('rb', { runtime: 'ruby' });
    await h.client.send(m);
    const r = await h.client.waitForResult(m.requestId);
    t.equal(r.status, 'FAILED');
    t.equal(r.reason, 'RUNTIME_NOT_SUPPORTED');
    t.equal(r.runtime, 'ruby');
  });

  t.test('invalid messages are answered on whatever id they carry', async (t) => {
    const m = h.message('x', { timeoutMs: -5 });
    await h.client.send(m);
    const r = await h.client.waitForResult(m.requestId);
    t.equal(r.reason, 'INVALID_MESSAGE');
    t.match(r.stderr, 'timeoutMs');
    await h.client.send({ requestId: 'no-fields-at-all' });
    const r2 = await h.client.waitForResult('no-fields-at-all');
    t.equal(r2.reason, 'INVALID_MESSAGE');
  });

  t.test('nothing is left in the queue or the DLQ', async (t) => {
    await waitUntil('queue drained', async () => {
      const d = await h.client.queueDepth();
      return d.visible + d.inflight === 0 ? true : undefined;
    });
    const dlq = await h.client.queueDepth(h.stack.dlqUrl);
    t.same(dlq, { visible: 0, inflight: 0 });
    t.equal(h.agent.status().supervisor.totals.retried, 0, 'no permanent failure was retried');
  });
});

t.test('a missing S3 key is retried, answered on its last try, and ends in the DLQ', async (t) => {
  const h = await startHarness(t, { maxReceiveCount: 2 });
  const m = h.message('ghost');
  await h.client.send(m);
  const r = await h.client.waitForResult(m.requestId, 60_000);
  t.equal(r.status, 'FAILED');
  t.equal(r.reason, 'S3_NOT_FOUND');
  t.equal(r.attempt, 2, 'answered on the last of maxReceiveCount=2 tries');
  const dlq = await waitUntil('message in the DLQ', async () => {
    const d = await h.client.queueDepth(h.stack.dlqUrl);
    return d.visible > 0 ? d : undefined;
  });
  t.equal(dlq.visible, 1);
  t.same(await h.client.queueDepth(), { visible: 0, inflight: 0 });
  const totals = h.agent.status().supervisor.totals;
  t.equal(totals.retried, 1);
  t.equal(totals.deadLettered, 1);
  const python = () => h.agent.status().pools.find((p) => p.runtime === 'python')!;
  await h.quiet();
  // The stock's target may have risen by one for the new function (the reactive stock).
  t.equal(python().idlePrewarm, python().prewarmTarget, 'the prewarm container was not spent on it: the stock is at its target');
  t.equal(python().retired, 0, 'nothing was retired');
  t.equal(python().idleWarm, 0);
  t.same(python().served, { cold: 0, prewarm: 0, warm: 0 }, 'no start counted: nothing ran');
});
