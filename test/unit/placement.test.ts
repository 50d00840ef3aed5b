import t from 'tap';
import type { ContainerState } from '../../src/pool/containerState.js';
import { Estimates, HANDOFF_MS, idleSince, leastRecentlyUsedIdle, place, type ContainerView, type PoolSnapshot } from '../../src/pool/placement.js';

const NOW = 1_000_000;
let seq = 0;
const c = (state: ContainerState, fn: string | null, extra: Partial<ContainerView> = {}): ContainerView => ({
  name: `c${++seq}`,
  state,
  fn,
  lastUsedAt: NOW - 1000,
  runStartedAt: state === 'running' ? NOW - 10 : null,
  ...extra,
});
const snap = (containers: ContainerView[], extra: Partial<PoolSnapshot> = {}): PoolSnapshot => ({
  containers,
  capacity: 4,
  now: NOW,
  coldStartMs: 500,
  runMs: () => undefined,
  ...extra,
});
const req = (functionId: string, ahead = 0) => ({ functionId, ahead });

t.test('warm: the same function\'s idle container, most recently used first', async (t) => {
  const older = c('paused', 'f', { lastUsedAt: NOW - 5000 });
  const newer = c('paused', 'f', { lastUsedAt: NOW - 100 });
  const stock = c('paused', null);
  t.same(place(snap([older, stock, newer]), req('f')), { kind: 'warm', name: newer.name });
});

t.test('prewarm: a stock container when the function has none idle', async (t) => {
  const other = c('paused', 'g');
  const stock = c('paused', null);
  t.same(place(snap([other, stock]), req('f')), { kind: 'prewarm', name: stock.name });
});

t.test('a container of another function is never used for this one', async (t) => {
  const other = c('paused', 'g');
  t.same(place(snap([other]), req('f')), { kind: 'cold', evict: null }, 'room: cold, the other keeps its container');
});

t.test('wait (returning): the function\'s own container is being reset or paused', async (t) => {
  for (const state of ['resetting', 'pausing'] as const) {
    const own = c(state, 'f');
    const stock = c('paused', null);
    t.same(place(snap([own, stock]), req('f')), { kind: 'wait', why: 'returning' }, `${state}: waits rather than spend the stock`);
  }
});

t.test('cold: nothing idle fits and there is room', async (t) => {
  t.same(place(snap([c('running', 'g')]), req('f')), { kind: 'cold', evict: null });
  t.same(place(snap([]), req('f')), { kind: 'cold', evict: null });
});

t.test('cold with eviction at capacity: the least recently used idle container goes', async (t) => {
  const lru = c('paused', 'a', { lastUsedAt: NOW - 9000 });
  const mru = c('paused', 'b', { lastUsedAt: NOW - 10 });
  const busy = [c('running', 'c'), c('running', 'd')];
  t.same(place(snap([mru, lru, ...busy]), req('f')), { kind: 'cold', evict: lru.name });
});

t.test('wait (full): at capacity with nothing idle to evict', async (t) => {
  const all = [c('running', 'a'), c('running', 'b'), c('creating', 'c'), c('retiring', 'd')];
  t.same(place(snap(all), req('f')), { kind: 'wait', why: 'full' });
});

t.test('wait (busy-sooner): a busy container of the function is back before a cold start', async (t) => {
  const busy = c('running', 'f', { runStartedAt: NOW - 50 });
  // 100 ms runs, 50 ms in: back in 50 + handoff, far below a 500 ms cold start.
  t.same(place(snap([busy], { runMs: () => 100 }), req('f')), { kind: 'wait', why: 'busy-sooner' });
});

t.test('no wait for a function that runs longer than a cold start', async (t) => {
  const busy = c('running', 'f', { runStartedAt: NOW - 50 });
  t.same(place(snap([busy], { runMs: () => 2000 }), req('f')), { kind: 'cold', evict: null });
});

t.test('no wait for an unknown function: its first burst scales out', async (t) => {
  const busy = c('running', 'f');
  t.same(place(snap([busy]), req('f')), { kind: 'cold', evict: null });
});

t.test('requests queued ahead add their runs to the expected wait', async (t) => {
  const busy = c('running', 'f', { runStartedAt: NOW });
  const s = snap([busy], { runMs: () => 200 });
  // ahead 0: 200 + 30 = 230 < 500: wait. ahead 1: 230 + 230 = 460 < 500: wait. ahead 2: 690: cold.
  t.equal(place(s, req('f', 0)).kind, 'wait');
  t.equal(place(s, req('f', 1)).kind, 'wait');
  t.same(place(s, req('f', 2)), { kind: 'cold', evict: null });
  t.equal(HANDOFF_MS, 30);
});

t.test('a container still coming up for the function counts as busy with its whole run ahead', async (t) => {
  for (const state of ['creating', 'thawing'] as const) {
    const coming = c(state, 'f');
    t.same(place(snap([coming], { runMs: () => 100 }), req('f')), { kind: 'wait', why: 'busy-sooner' }, `${state}, 100 ms runs: wait`);
    t.same(place(snap([coming], { runMs: () => 600 }), req('f')), { kind: 'cold', evict: null }, `${state}, 600 ms runs: cold`);
  }
});

t.test('idleSince names idle warm containers past the cutoff, never stock or busy ones', async (t) => {
  const old = c('paused', 'f', { lastUsedAt: NOW - 10_000 });
  const recent = c('paused', 'g', { lastUsedAt: NOW - 10 });
  const stock = c('paused', null, { lastUsedAt: NOW - 10_000 });
  const busy = c('running', 'h', { lastUsedAt: NOW - 10_000 });
  t.same(idleSince([old, recent, stock, busy], NOW - 1000), [old.name]);
});

t.test('leastRecentlyUsedIdle considers paused containers only', async (t) => {
  t.equal(leastRecentlyUsedIdle([c('running', 'a', { lastUsedAt: 0 })]), undefined);
  const p = c('paused', null, { lastUsedAt: 5 });
  t.equal(leastRecentlyUsedIdle([c('paused', 'a', { lastUsedAt: 9 }), p])?.name, p.name);
});

t.test('Estimates: running averages of run and creation times', async (t) => {
  const e = new Estimates(500, 0.5);
  t.equal(e.runMs('f'), undefined);
  e.noteRun('f', 100);
  t.equal(e.runMs('f'), 100, 'the first sample is the estimate');
  e.noteRun('f', 200);
  t.equal(e.runMs('f'), 150);
  t.equal(e.coldStartMs, 500);
  e.noteCreated(300);
  t.equal(e.coldStartMs, 400);
});

t.test('warm prefers a container still thawed in its pause grace over a frozen one', async (t) => {
  const frozen = c('paused', 'f', { lastUsedAt: NOW - 10 });
  const thawed = c('ready', 'f', { lastUsedAt: NOW - 500 });
  t.same(place(snap([frozen, thawed]), req('f')), { kind: 'warm', name: thawed.name });
  const other = c('ready', 'g');
  t.same(place(snap([other]), req('f')), { kind: 'cold', evict: null }, 'another function\'s thawed container is not used');
});

t.test('idle means paused or ready: both can be evicted and reaped', async (t) => {
  const ready = c('ready', 'a', { lastUsedAt: NOW - 9000 });
  const busy = [c('running', 'b'), c('running', 'c'), c('running', 'd')];
  t.same(place(snap([ready, ...busy]), req('f')), { kind: 'cold', evict: ready.name });
  t.same(idleSince([ready], NOW - 1000), [ready.name]);
});
