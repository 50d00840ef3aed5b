import t from 'tap';
import { waitUntil } from '../../src/core/timeout.js';
import { silentLogger } from '../../src/core/log.js';
import { Backoff } from '../../src/core/backoff.js';
import { EngineWatch } from '../../src/pool/engineWatch.js';

t.test('backoff: full jitter under a doubling, capped bound', async (t) => {
  const top = new Backoff(100, 1000, () => 1);
  t.same([1, 2, 3, 4, 5, 6].map(() => top.next()), [100, 200, 400, 800, 1000, 1000], 'the bound doubles up to the cap');
  const bottom = new Backoff(100, 1000, () => 0);
  t.equal(bottom.next(), 0, 'the wait may be anything from 0');
  top.reset();
  t.equal(top.next(), 100, 'reset starts over');
  const real = new Backoff(100, 1000);
  const waits = Array.from({ length: 200 }, () => real.next());
  t.ok(new Set(waits).size > 50, 'waits spread out');
  t.ok(waits.every((w) => w >= 0 && w <= 1000));
});

const refused = () => Object.assign(new Error('connect ENOENT /var/run/docker.sock'), { code: 'ENOENT', syscall: 'connect' });

t.test('an unreachable error is confirmed by a ping; the watch probes until the engine answers', async (t) => {
  let engineUp = true;
  let pings = 0;
  const w = new EngineWatch({ ping: async () => (pings++, engineUp ? 'OK' : Promise.reject(refused())), log: silentLogger, checkEveryMs: 0, probeBaseMs: 5, probeMaxMs: 20 });
  t.teardown(() => w.stop());
  const events: string[] = [];
  w.on('down', () => events.push('down'));
  w.on('up', () => events.push('up'));

  t.equal(await w.suspect(Object.assign(new Error('no such container'), { statusCode: 404 })), false, 'a refusal by a live engine is no outage');
  t.equal(pings, 0, 'and costs no ping');
  t.equal(await w.suspect(refused()), false, 'an unreachable error the ping contradicts');
  engineUp = false;
  t.equal(await w.suspect(refused()), true, 'confirmed: down');
  t.equal(w.isUp, false);
  t.equal(await w.suspect(new Error('anything')), true, 'while down, every suspicion is the outage');
  const up = w.whenUp();
  const before = pings;
  await waitUntil('probes', () => pings > before + 3, { timeoutMs: 5000 });
  engineUp = true;
  await up;
  t.equal(w.isUp, true);
  t.same(events, ['down', 'up']);
  t.equal(w.status().outages, 1);
});

t.test('the periodic check finds an outage nobody called into', async (t) => {
  let engineUp = true;
  const w = new EngineWatch({ ping: async () => (engineUp ? 'OK' : Promise.reject(refused())), log: silentLogger, checkEveryMs: 10, probeBaseMs: 5, probeMaxMs: 10 });
  t.teardown(() => w.stop());
  w.start();
  engineUp = false;
  await waitUntil('down', () => !w.isUp, { timeoutMs: 5000 });
  engineUp = true;
  await w.whenUp();
  t.equal(w.status().state, 'up');
});

t.test('a ping that hangs counts as down the second time in a row (a busy engine is not an outage)', async (t) => {
  const w = new EngineWatch({ ping: () => new Promise(() => undefined), log: silentLogger, checkEveryMs: 0, pingTimeoutMs: 20, probeBaseMs: 1000 });
  t.teardown(() => w.stop());
  t.equal(await w.check(), true, 'one slow ping: still up');
  t.equal(w.isUp, true);
  t.equal(await w.check(), false, 'two in a row: down');
  t.equal(w.isUp, false);
  w.stop();
  await w.whenUp();
  t.pass('stop releases whoever waits');
});
