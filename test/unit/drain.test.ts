import t from 'tap';
import { sleep } from '../../src/core/timeout.js';
import { silentLogger } from '../../src/core/log.js';
import { Drain, joinPlans, planDrain, type DrainHost } from '../../src/fleet/drain.js';

const policy = { spotMarginMs: 15_000, shutdownGraceMs: 60_000 };

t.test('the plan: what each notice asks, at a given time', async (t) => {
  const now = 1_000_000;
  t.same(planDrain({ trigger: 'http' }, now, policy), { deadline: null, holdLifecycle: false, undoable: true });
  t.same(planDrain({ trigger: 'signal' }, now, policy), { deadline: now + 60_000, holdLifecycle: false, undoable: false });
  t.same(planDrain({ trigger: 'lifecycle' }, now, policy), { deadline: null, holdLifecycle: true, undoable: false });
  t.same(planDrain({ trigger: 'spot', at: now + 120_000 }, now, policy), { deadline: now + 105_000, holdLifecycle: true, undoable: false }, 'the notice\'s time less the margin');
  const http = planDrain({ trigger: 'http' }, now, policy);
  const spot = planDrain({ trigger: 'spot', at: now + 120_000 }, now, policy);
  const signal = planDrain({ trigger: 'signal' }, now, policy);
  t.same(joinPlans(http, spot), { deadline: now + 105_000, holdLifecycle: true, undoable: false }, 'a Spot notice joining an operator\'s drain');
  t.same(joinPlans(spot, signal), { deadline: now + 60_000, holdLifecycle: true, undoable: false }, 'the earlier deadline wins');
  t.same(joinPlans(signal, spot).deadline, now + 60_000, 'either way round');
});

/** A host whose intake ends when the test says, recording what the drain asked of it. */
function fakeHost(opts: { running?: number; lifecycle?: boolean } = {}) {
  let endIntake: (left: number) => void = () => undefined;
  const calls: string[] = [];
  let released = 5;
  const host: DrainHost = {
    stopIntake: (waitMs) => {
      calls.push(`stopIntake ${waitMs}`);
      return new Promise((resolve) => (endIntake = resolve));
    },
    resumeIntake: () => void calls.push('resumeIntake'),
    giveBackRunning: async () => {
      calls.push('giveBackRunning');
      released += 2;
      return 2;
    },
    stopPools: async () => {
      calls.push('stopPools');
      endIntake(0);
    },
    running: () => opts.running ?? 1,
    released: () => released,
    lifecycle: opts.lifecycle
      ? {
          progress: { heartbeats: 0, completedAt: null } as never,
          heartbeat: async () => void calls.push('heartbeat'),
          complete: async () => {
            calls.push('complete');
            return true;
          },
        }
      : undefined,
  };
  return { host, calls, end: (left = 0) => endIntake(left), release: (n: number) => (released += n) };
}

t.test('an operator\'s drain: draining until the runs end, drained, and undone back to idle', async (t) => {
  const f = fakeHost();
  const d = new Drain({ host: f.host, policy, waitMs: 900_000, heartbeatMs: 60_000, log: silentLogger });
  t.equal(d.state, 'idle');
  t.equal(d.status(), null);
  const s = d.start({ trigger: 'http' });
  t.same([s.state, s.trigger, s.deadline, s.running], ['draining', 'http', null, 1]);
  t.same(f.calls, ['stopIntake 900000'], 'intake stops, waiting as long as a run may take');
  t.equal(d.start({ trigger: 'http' }).state, 'draining', 'a second call is the same drain');
  t.equal(f.calls.length, 1);
  f.release(3);
  f.end(0);
  await d.whenDrained();
  t.equal(d.state, 'drained');
  t.same([d.status()!.givenBack, d.status()!.stillRunning, d.status()!.finishedAt !== null], [3, 0, true], 'given back since it began');
  t.same(d.undo(), { ok: true });
  t.equal(d.state, 'idle');
  t.equal(d.status(), null);
  t.same(f.calls.at(-1), 'resumeIntake');
  t.same(d.undo(), { ok: false, why: 'the agent is not draining' });
});

t.test('undone while draining: the end of that drain is not the next one\'s', async (t) => {
  const f = fakeHost();
  const d = new Drain({ host: f.host, policy, waitMs: 1000, heartbeatMs: 60_000, log: silentLogger });
  d.start({ trigger: 'http' });
  const first = f.end;
  t.same(d.undo(), { ok: true });
  first(0);
  await d.whenDrained();
  t.equal(d.state, 'idle', 'still receiving');
  d.start({ trigger: 'http' });
  t.equal(d.state, 'draining', 'a new drain starts afresh');
});

t.test('a Spot notice: at its deadline what still runs is given back and its containers removed; it cannot be undone', async (t) => {
  const f = fakeHost({ lifecycle: true });
  let now = 10_000;
  const d = new Drain({ host: f.host, policy: { ...policy, spotMarginMs: 0 }, waitMs: 900_000, heartbeatMs: 5, log: silentLogger, now: () => now });
  const s = d.start({ trigger: 'spot', at: now + 40 });
  t.equal(s.deadline, new Date(10_040).toISOString());
  t.match(d.undo(), { ok: false, why: /spot notice cannot be undone/ });
  now += 40;
  await sleep(80);
  await d.whenDrained();
  t.equal(d.state, 'drained');
  t.equal(d.status()!.cutAtDeadline, 2, 'the runs cut at the deadline');
  t.ok(f.calls.indexOf('giveBackRunning') < f.calls.indexOf('stopPools'), 'given back before they are killed');
  await sleep(20);
  t.ok(f.calls.includes('heartbeat'), 'the lifecycle action was held');
  t.equal(f.calls.at(-1), 'complete', 'and completed once drained');
});

t.test('a signal joining an operator\'s drain gives it a deadline, and it can no longer be undone', async (t) => {
  const f = fakeHost();
  const d = new Drain({ host: f.host, policy: { ...policy, shutdownGraceMs: 30 }, waitMs: 900_000, heartbeatMs: 60_000, log: silentLogger });
  d.start({ trigger: 'http' });
  const s = d.start({ trigger: 'signal' });
  t.ok(s.deadline, 'a deadline now');
  t.match(d.undo(), { ok: false, why: /deadline cannot be undone/ });
  await sleep(60);
  await d.whenDrained();
  t.same([d.state, f.calls.includes('stopPools')], ['drained', true], 'cut at the grace\'s end');
  d.close();
});
