import t from 'tap';
import type { ContainerState } from '../../src/pool/containerState.js';
import { stockPlan, type ContainerView } from '../../src/pool/placement.js';
import { ReactiveStock, STOCK_BUCKETS, type StockPolicy } from '../../src/pool/stockPolicy.js';

// 10 s window in 1 s buckets; T0 starts a bucket so that traces are easy to follow.
const T0 = 1_000_000;
const P: StockPolicy = { min: 1, max: 6, ttlMs: 30_000, windowMs: 10_000 };
const with_ = (extra: Partial<StockPolicy>) => new ReactiveStock({ ...P, ...extra });

/** One new function every `everyMs` in [from, to). */
const trace = (s: ReactiveStock, from: number, to: number, everyMs: number) => {
  for (let at = from; at < to; at += everyMs) s.noteNewFunction(at);
};

t.test('a quiet pool keeps the minimum', async (t) => {
  t.equal(with_({}).rate(T0), 0);
  t.equal(with_({}).target(T0, 200), 1);
  t.equal(with_({ min: 2 }).target(T0, 200), 2);
  t.equal(with_({ min: 0 }).target(T0, 200), 0);
});

t.test('a steady trickle: ceil(rate * refill / 1000) + 1, within [min, max]', async (t) => {
  const s = with_({});
  trace(s, T0, T0 + 10_000, 1000); // 10 starts, 1/s
  const now = T0 + 9500;
  t.equal(s.rate(now), 1);
  t.equal(s.target(now, 200), 2, 'ceil(0.2) + 1 = 2: min + 1');
  t.equal(s.target(now, 1000), 2, 'ceil(1) + 1: an exact product is not rounded up');
  t.equal(s.target(now, 1500), 3, 'ceil(1.5) + 1');
  t.equal(s.target(now, 0), 1, 'no refill time: the spare only');
  t.equal(s.target(now, -5), 1, 'a nonsense refill time counts as none');

  const atMin2 = with_({ min: 2 });
  trace(atMin2, T0, T0 + 10_000, 1000);
  t.equal(atMin2.target(now, 200), 2, 'the formula gives 2 = min');

  // The first start's bucket leaves the window at T0 + 10 s.
  t.equal(s.rate(T0 + 10_000), 0.9);
});

t.test('a burst raises the target up to max; a quiet window brings it back to min', async (t) => {
  const capped = with_({});
  const open = with_({ max: 10 });
  for (const s of [capped, open]) trace(s, T0, T0 + 10_000, 50); // 200 starts, 20/s
  const now = T0 + 9999;
  t.equal(capped.rate(now), 20);
  t.equal(open.target(now, 300), 7, 'ceil(20 * 0.3) + 1');
  t.equal(capped.target(now, 300), 6, 'clamped to max');

  // Only the last bucket (20 starts in T0 + 9 s .. T0 + 10 s) is left in the window.
  t.equal(capped.rate(T0 + 18_999), 2);
  t.equal(capped.target(T0 + 18_999, 300), 2, 'ceil(2 * 0.3) + 1');
  t.equal(capped.rate(T0 + 19_000), 0);
  t.equal(capped.target(T0 + 19_000, 300), 1, 'a whole window with nothing new: min');
});

t.test('expired: beyond the target, older than the TTL, oldest first', async (t) => {
  const s = with_({});
  trace(s, T0, T0 + 10_000, 50); // target 6 at refill 300 until T0 + 10 s
  const made = (k: number) => ({ name: `s${k}`, madeAt: T0 + 1000 * k });
  // Listed out of order: expired() sorts by age itself.
  const stock = [made(4), made(1), made(6), made(3), made(5), made(2)];

  t.same(s.expired(stock, T0 + 9999, 300), [], 'in the burst all six are within the target');
  const old = [{ name: 'o2', madeAt: T0 - 35_000 }, { name: 'o1', madeAt: T0 - 40_000 }];
  t.same(s.expired([...stock, ...old], T0 + 9999, 300), ['o1', 'o2'], 'in the burst only what exceeds the target goes');

  t.equal(s.target(T0 + 25_000, 300), 1);
  t.same(s.expired(stock, T0 + 25_000, 300), [], 'after the burst, nothing before the TTL');
  t.same(s.expired(stock, T0 + 31_000, 300), [], 's1 exactly ttlMs old: not yet');
  t.same(s.expired(stock, T0 + 33_500, 300), ['s1', 's2', 's3'], 'older than the TTL, oldest first');
  t.same(s.expired(stock, T0 + 100_000, 300), ['s1', 's2', 's3', 's4', 's5'], 'never below the target: the youngest stays');
  t.same(s.expired(stock, T0 - 50_000, 300), [], 'a clock behind the stock expires nothing');
});

t.test('the minimum stock never expires', async (t) => {
  const ancient = (k: number) => ({ name: `a${k}`, madeAt: -1e9 + k });
  t.same(with_({}).expired([ancient(1)], T0, 300), []);
  t.same(with_({ min: 2 }).expired([ancient(1), ancient(2)], T0, 300), []);
  t.same(with_({ min: 2 }).expired([ancient(2), ancient(3), ancient(1)], T0, 300), ['a1']);
  t.same(with_({ min: 0 }).expired([ancient(2), ancient(1)], T0, 300), ['a1', 'a2'], 'min 0: all of it may go');
});

t.test('memory is bounded: a million starts change counts, not storage', async (t) => {
  const s = with_({});
  t.equal(s.slots, STOCK_BUCKETS);
  t.equal(STOCK_BUCKETS, 10);
  for (let i = 0; i < 1_000_000; i++) s.noteNewFunction(T0);
  t.equal(s.slots, STOCK_BUCKETS);
  t.equal(s.rate(T0), 100_000);
  t.equal(s.target(T0, 300), 6);
  t.equal(s.rate(T0 + 10_000), 0, 'gone once its bucket leaves the window');

  const spread = with_({});
  for (let ms = 0; ms < 1_000_000; ms++) spread.noteNewFunction(ms);
  t.equal(spread.slots, STOCK_BUCKETS);
  t.equal(spread.rate(999_999), 1000, 'only the last 10 s (10 000 starts) count');
});

t.test('a clock going backwards: no throw, never a negative rate', async (t) => {
  const s = with_({});
  for (let i = 0; i < 5; i++) s.noteNewFunction(T0 + 10_000);
  t.equal(s.rate(T0 + 10_000), 0.5);
  t.equal(s.rate(T0), 0, 'a bucket from the future does not count');
  s.noteNewFunction(T0); // same slot as the future bucket: it starts over
  t.equal(s.rate(T0), 0.1);
  t.equal(s.target(T0, 300), 2);
  t.equal(s.rate(T0 + 10_000), 0, 'the stale slot was reset, not mixed in');

  t.equal(s.rate(-1e15), 0);
  s.noteNewFunction(-1e15);
  t.equal(s.rate(-1e15), 0.1, 'a negative clock still counts');
  s.noteNewFunction(Number.NaN);
  t.equal(s.rate(Number.NaN), 0);
  t.equal(s.target(Number.NaN, 300), 1);
  t.equal(s.rate(T0 + 10_000), 0);
});

t.test('the constructor refuses bad policies', async (t) => {
  const bad: Partial<StockPolicy>[] = [
    { min: -1 },
    { min: 3, max: 2 },
    { min: 1.5 },
    { max: 2.5 },
    { max: Number.POSITIVE_INFINITY },
    { min: Number.NaN },
    { ttlMs: 0 },
    { ttlMs: -1 },
    { ttlMs: Number.NaN },
    { windowMs: 0 },
    { windowMs: -10 },
    { windowMs: Number.POSITIVE_INFINITY },
  ];
  for (const b of bad) {
    let err: unknown;
    try {
      with_(b);
    } catch (e) {
      err = e;
    }
    t.ok(err instanceof RangeError, `refused: ${JSON.stringify(b)}`);
  }
  t.equal(with_({ min: 2, max: 2 }).target(T0, 300), 2, 'min === max is fine');
  const mine = { ...P };
  const s = new ReactiveStock(mine);
  mine.max = 100;
  t.equal(s.policy.max, 6, 'the policy is copied');
  t.ok(Object.isFrozen(s.policy));
});

// ---- stockPlan ----

const NOW = 1_000_000;
let seq = 0;
const c = (state: ContainerState, fn: string | null, lastUsedAt = NOW - 60_000): ContainerView => ({
  name: `c${++seq}`,
  state,
  fn,
  lastUsedAt,
  runStartedAt: state === 'running' ? NOW - 10 : null,
});
const snap = (containers: ContainerView[], capacity = 4) => ({ containers, capacity, now: NOW });
const MIN_IDLE = 1000;

t.test('stockPlan: free room is used first', async (t) => {
  t.same(stockPlan(snap([]), 2, 0, MIN_IDLE), { create: 2, evict: [] });
  t.same(stockPlan(snap([c('paused', null)]), 2, 0, MIN_IDLE), { create: 1, evict: [] });
  t.same(stockPlan(snap([c('creating', null), c('pausing', null)]), 2, 0, MIN_IDLE), { create: 0, evict: [] }, 'stock being made counts');
  t.same(stockPlan(snap([c('running', 'a'), c('running', 'b'), c('running', 'c')]), 3, 0, MIN_IDLE), { create: 1, evict: [] }, 'one slot, nothing idle');
  t.same(stockPlan(snap([c('paused', 'f')]), 0, 0, MIN_IDLE), { create: 0, evict: [] }, 'target 0');
  t.same(stockPlan(snap([c('paused', null), c('paused', null), c('paused', null)]), 2, 0, MIN_IDLE), { create: 0, evict: [] }, 'stock above the target');
});

t.test('stockPlan: at capacity, idle warm containers go, least recently used first', async (t) => {
  const g = c('paused', 'g', NOW - 5000);
  const h = c('ready', 'h', NOW - 9000);
  const busy = [c('running', 'a'), c('running', 'b')];
  t.same(stockPlan(snap([g, h, ...busy]), 1, 0, MIN_IDLE), { create: 0, evict: [h.name] });
  t.same(stockPlan(snap([g, h, ...busy]), 2, 0, MIN_IDLE), { create: 0, evict: [h.name, g.name] });
});

t.test('stockPlan: a container used a moment ago is not evicted', async (t) => {
  const recent = c('paused', 'g', NOW - 500);
  const old = c('paused', 'h', NOW - 9000);
  const busy = [c('running', 'a'), c('running', 'b')];
  t.same(stockPlan(snap([recent, old, ...busy]), 2, 0, MIN_IDLE), { create: 0, evict: [old.name] });
  const three = [c('running', 'a'), c('running', 'b'), c('running', 'c')];
  const exactly = c('paused', 'g', NOW - MIN_IDLE);
  t.same(stockPlan(snap([exactly, ...three]), 1, 0, MIN_IDLE), { create: 0, evict: [exactly.name] }, 'idle exactly minIdleMs: evictable');
  const almost = c('ready', 'g', NOW - MIN_IDLE + 1);
  t.same(stockPlan(snap([almost, ...three]), 1, 0, MIN_IDLE), { create: 0, evict: [] }, 'one ms short: kept');
});

t.test('stockPlan: nothing while a request waits', async (t) => {
  t.same(stockPlan(snap([]), 2, 1, MIN_IDLE), { create: 0, evict: [] });
  const full = [c('paused', 'g'), c('paused', 'h'), c('paused', 'i'), c('paused', 'j')];
  t.same(stockPlan(snap(full), 2, 3, MIN_IDLE), { create: 0, evict: [] });
});

t.test('stockPlan: retiring containers hold their slot until removed', async (t) => {
  const retiring = () => c('retiring', 'x');
  t.same(stockPlan(snap([retiring(), c('running', 'a'), c('running', 'b')]), 2, 0, MIN_IDLE), { create: 1, evict: [] }, 'one slot free, not two');
  t.same(stockPlan(snap([retiring(), c('running', 'a'), c('running', 'b'), c('running', 'c')]), 1, 0, MIN_IDLE), { create: 0, evict: [] }, 'full: nothing to create yet');
  const older = c('paused', 'h', NOW - 9000);
  const old = c('paused', 'g', NOW - 5000);
  t.same(
    stockPlan(snap([retiring(), old, older, c('running', 'a')]), 2, 0, MIN_IDLE),
    { create: 0, evict: [older.name] },
    'the slot being freed covers one; one more is evicted',
  );
  t.same(
    stockPlan(snap([retiring(), retiring(), old, older]), 2, 0, MIN_IDLE),
    { create: 0, evict: [] },
    'a repeated plan does not evict again while its evictions are removed',
  );
});

t.test('stockPlan: never evicts more than is missing', async (t) => {
  const idle = [c('paused', 'g', NOW - 4000), c('paused', 'h', NOW - 8000), c('ready', 'i', NOW - 6000), c('paused', 'j', NOW - 2000)];
  t.same(stockPlan(snap(idle), 1, 0, MIN_IDLE), { create: 0, evict: [idle[1]!.name] });
  t.same(stockPlan(snap(idle.slice(0, 3)), 2, 0, MIN_IDLE), { create: 1, evict: [idle[1]!.name] }, 'one from room, one from eviction');
  t.same(stockPlan(snap(idle.slice(0, 3)), 1, 0, MIN_IDLE), { create: 1, evict: [] }, 'room covers it all');
  const stock = c('paused', null, NOW - 99_000);
  t.same(stockPlan(snap([stock, ...idle.slice(0, 3)]), 2, 0, MIN_IDLE), { create: 0, evict: [idle[1]!.name] }, 'existing stock counts; stock is never evicted');
  t.same(stockPlan(snap([stock, c('running', 'a', 0), c('running', 'b', 0), c('resetting', 'c', 0)]), 3, 0, MIN_IDLE), { create: 0, evict: [] }, 'busy containers are never evicted');
});

t.test('stockPlan: eviction only up to evictUpTo, the spare from free room only', async (t) => {
  const idle = [c('paused', 'g', NOW - 4000), c('paused', 'h', NOW - 8000)];
  t.same(stockPlan(snap(idle, 2), 2, 0, MIN_IDLE, 0), { create: 0, evict: [] }, 'full, nothing may be evicted');
  t.same(stockPlan(snap(idle, 3), 2, 0, MIN_IDLE, 1), { create: 1, evict: [] }, 'the room covers the demand; the spare is not evicted for');
  t.same(stockPlan(snap(idle, 2), 2, 0, MIN_IDLE, 1), { create: 0, evict: [idle[1]!.name] }, 'full: one evicted for the demand, none for the spare');
  t.same(stockPlan(snap([c('paused', null), ...idle], 3), 3, 0, MIN_IDLE, 1), { create: 0, evict: [] }, 'the stock already meets the demand');
});

t.test('demand: whole containers of measured need, within [min, max]', async (t) => {
  const s = with_({ max: 3 });
  t.equal(s.demand(T0, 300), 1, 'quiet: min');
  s.noteNewFunction(T0);
  t.equal(s.target(T0 + 500, 1300), 2, 'one new function: ceil(0.13) + 1');
  t.equal(s.demand(T0 + 500, 1300), 1, 'its demand is min: floor(0.13), nothing to evict for');
  const none = with_({ min: 0, max: 1 });
  none.noteNewFunction(T0);
  t.equal(none.target(T0 + 500, 1300), 1, 'min 0: one new function still raises the target');
  t.equal(none.demand(T0 + 500, 1300), 0, 'but not the demand: a pool with no minimum stock evicts nothing for it');
  t.equal(none.demand(T0 + 500, 12_000), 1, 'a container that takes longer to make than the window: one start is a whole one');
  trace(s, T0, T0 + 10_000, 100);
  t.equal(s.demand(T0 + 9999, 300), 3, 'floor(10.1 * 0.3) = 3: at max 3');
  t.equal(s.demand(T0 + 9999, 500), 3, 'floor(5.05) = 5: clamped to max 3');
  t.equal(with_({ min: 2 }).demand(T0, 300), 2);
});

t.test('one new function does not evict the warm container it has just made (a pool of 2)', async (t) => {
  const s = with_({ max: 2 });
  s.noteNewFunction(NOW - 2000);
  const warm = c('paused', 'f', NOW - 1500);
  const target = s.target(NOW, 1300);
  t.equal(target, 2);
  t.same(stockPlan(snap([warm], 2), target, 0, MIN_IDLE, s.demand(NOW, 1300)), { create: 1, evict: [] }, 'the free slot makes one; the warm container stays');
});

t.test('ReactiveStock and stockPlan together: a burst evicts for stock, a quiet pool does not', async (t) => {
  const s = with_({ max: 4 });
  const pool = [c('paused', null), c('paused', 'g', NOW - 9000), c('paused', 'h', NOW - 5000), c('running', 'a')];
  t.same(stockPlan(snap(pool), s.target(NOW, 300), 0, MIN_IDLE, s.demand(NOW, 300)), { create: 0, evict: [] }, 'quiet: min 1 is there');
  trace(s, NOW - 9000, NOW + 1000, 100); // 100 starts in the 10 buckets up to NOW + 999: 10/s
  const at = NOW + 999;
  t.equal(s.rate(at), 10);
  t.equal(s.target(at, 300), 4, 'ceil(10 * 0.3) + 1');
  t.equal(s.demand(at, 300), 3, 'floor(10 * 0.3)');
  t.same(stockPlan(snap(pool), s.target(at, 300), 0, MIN_IDLE, s.demand(at, 300)), { create: 0, evict: [pool[1]!.name, pool[2]!.name] }, 'two evicted for the demand of 3; the spare waits for room');
});
