import t from 'tap';
import { Prefetch } from '../../src/intake/prefetch.js';

const run = (execMs: number) => ({ timings: { execMs } });

t.test('no prefetch until runs are known to be short, and never past one batch ahead', async (t) => {
  const p = new Prefetch({ messages: 10, maxRunMs: 1000 });
  t.equal(p.wanted({ capacity: 8, taking: 8, free: 0, memoryBound: false }), 0, 'no run seen yet: free slots only');
  t.equal(p.wanted({ capacity: 8, taking: 5, free: 3, memoryBound: false }), 3);
  p.observe(run(5));
  t.ok(p.active);
  t.equal(p.wanted({ capacity: 8, taking: 8, free: 0, memoryBound: false }), 10, 'a full pool: one batch ahead');
  t.equal(p.wanted({ capacity: 8, taking: 14, free: 0, memoryBound: false }), 0, 'fewer than half a batch of room: wait for more');
  t.equal(p.wanted({ capacity: 8, taking: 13, free: 0, memoryBound: false }), 5, 'half a batch of room');
  t.equal(p.wanted({ capacity: 8, taking: 18, free: 0, memoryBound: false }), 0, 'a batch ahead already');
  t.equal(p.wanted({ capacity: 8, taking: 20, free: 0, memoryBound: false }), 0, 'never negative');
  t.equal(p.wanted({ capacity: 8, taking: 2, free: 6, memoryBound: true }), 6, 'memory, not slots, is short: no prefetch');
});

t.test('long runs turn it off, short ones on again (a moving average)', async (t) => {
  const p = new Prefetch({ messages: 10, maxRunMs: 1000 });
  p.observe(run(100));
  t.ok(p.active);
  for (let i = 0; i < 10; i++) p.observe(run(5000));
  t.notOk(p.active, 'recent runs take seconds: a held message would wait while another worker idles');
  t.equal(p.wanted({ capacity: 4, taking: 4, free: 0, memoryBound: false }), 0);
  for (let i = 0; i < 30; i++) p.observe(run(10));
  t.ok(p.active);
  p.observe({});
  t.ok(p.active, 'a result without a run (never ran) changes nothing');
});

t.test('0 messages: never', async (t) => {
  const p = new Prefetch({ messages: 0, maxRunMs: 1000 });
  p.observe(run(1));
  t.notOk(p.active);
  t.equal(p.wanted({ capacity: 8, taking: 8, free: 0, memoryBound: false }), 0);
});

t.test('not while results are not getting through', async (t) => {
  let through = true;
  const p = new Prefetch({ messages: 10, maxRunMs: 1000, allowed: () => through });
  p.observe(run(5));
  t.equal(p.wanted({ capacity: 8, taking: 8, free: 0, memoryBound: false }), 10);
  through = false;
  t.notOk(p.active, 'Redis down or the outbox holding results: what waited ahead would only add to it');
  t.equal(p.wanted({ capacity: 8, taking: 8, free: 0, memoryBound: false }), 0);
  t.equal(p.wanted({ capacity: 8, taking: 6, free: 2, memoryBound: false }), 2, 'free slots still fill');
});
