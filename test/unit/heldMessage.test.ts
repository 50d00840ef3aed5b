import t from 'tap';
import { countStates, HELD_STATES, HeldMessage, type HeldState } from '../../src/intake/heldMessage.js';

const walk = (...states: HeldState[]) => {
  const h = new HeldMessage('rh', 'm');
  const moved = states.map((s) => h.to(s));
  return { h, moved };
};

t.test('a message moves forward only, along the life it is allowed', async (t) => {
  const { h, moved } = walk('admitting', 'waiting', 'running', 'settled');
  t.same(moved, [true, true, true, true]);
  t.equal(h.state, 'settled');
  t.notOk(h.to('running'), 'settled is final');
  t.notOk(h.to('givenBack'), 'a settled message is never given back: its answer is being made');
  t.equal(h.state, 'settled');

  const skip = walk('running');
  t.same(skip.moved, [false], 'received cannot run before it is admitted and waits');
  t.equal(skip.h.state, 'received');

  const back = walk('admitting', 'givenBack', 'waiting', 'settled');
  t.same(back.moved, [true, true, false, false], 'a message given back stays so: its late run is discarded');
  t.ok(back.h.givenBack);
});

t.test('slots: held until its container is free, also after a give-back', async (t) => {
  const running = walk('admitting', 'waiting', 'running').h;
  t.ok(running.takesSlot);
  t.ok(running.unfinished);
  t.notOk(running.cancellable, 'running is committed: a drain lets it finish');

  const given = walk('admitting', 'waiting', 'running', 'givenBack').h;
  t.ok(given.takesSlot, 'its container is still busy');
  t.notOk(given.unfinished);
  given.containerFree = true;
  t.notOk(given.takesSlot, 'the slot is free once its run ended');

  const settled = walk('settled').h;
  t.ok(settled.containerFree, 'settling frees its container');
  t.notOk(settled.takesSlot);
});

t.test('cancellable only before the run is committed', async (t) => {
  const by = (states: HeldState[]) => walk(...states).h.cancellable;
  t.notOk(by([]), 'received: still being read');
  t.ok(by(['admitting']));
  t.ok(by(['admitting', 'waiting']));
  t.notOk(by(['admitting', 'waiting', 'running']));
  t.notOk(by(['settled']));
});

t.test('countStates counts every state, zero included', async (t) => {
  const held = [walk().h, walk('admitting').h, walk('admitting', 'waiting', 'running').h, walk('admitting', 'waiting', 'running').h, walk('givenBack').h];
  const n = countStates(held);
  t.same(Object.keys(n).sort(), [...HELD_STATES].sort());
  t.same(n, { received: 1, admitting: 1, waiting: 0, running: 2, settled: 0, givenBack: 1 });
});
