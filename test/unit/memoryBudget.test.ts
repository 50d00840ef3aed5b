import t from 'tap';
import { MemoryBudget } from '../../src/intake/memoryBudget.js';

t.test('admits while the memory fits, in order, and frees on release', async (t) => {
  const b = new MemoryBudget(1000);
  const r1 = await b.acquire(600);
  t.equal(b.inUseMb, 600);
  t.equal(b.freeMb, 400);
  const order: string[] = [];
  const big = b.acquire(500).then((r) => (order.push('big'), r));
  // A small one behind a waiting big one waits too: the big one is not starved.
  const small = b.acquire(100).then((r) => (order.push('small'), r));
  await new Promise((r) => setImmediate(r));
  t.same(order, [], 'neither fits ahead of the first in line');
  t.equal(b.waiting, 2);
  t.equal(b.admissible(128), 0, 'nothing more is received while any waits');
  r1();
  r1();
  const [rb, rs] = await Promise.all([big, small]);
  t.same(order, ['big', 'small']);
  t.equal(b.inUseMb, 600, 'a double release counts once');
  rb();
  rs();
  t.equal(b.inUseMb, 0);
  t.equal(b.admissible(128), 7);
});

t.test('a request larger than the budget is refused, and waiters can be cancelled', async (t) => {
  const b = new MemoryBudget(256);
  await t.rejects(b.acquire(512), /512 MB exceeds the memory budget of 256 MB/);
  const r = await b.acquire(200);
  const waiting = b.acquire(100);
  b.cancelWaiters(new Error('stopping'));
  await t.rejects(waiting, /stopping/);
  t.equal(b.waiting, 0);
  r();
  t.equal(b.freeMb, 256);
  t.throws(() => new MemoryBudget(0), RangeError);
  t.equal(new MemoryBudget(100).admissible(128), 1, 'a budget below the default size still receives');
});
