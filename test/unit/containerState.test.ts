import t from 'tap';
import { checkTransition, IllegalTransition, type Phase } from '../../src/pool/containerState.js';

const ok = (from: Phase, to: Phase, hasRun = true) => () => checkTransition('c', from, to, hasRun);

t.test('the lifecycle of a stock container and of a cold one', async (t) => {
  const stock: Array<[Phase, Phase]> = [
    [{ state: 'creating', fn: null }, { state: 'pausing', fn: null }],
    [{ state: 'pausing', fn: null }, { state: 'paused', fn: null }],
    [{ state: 'paused', fn: null }, { state: 'thawing', fn: 'f' }],
    [{ state: 'thawing', fn: 'f' }, { state: 'running', fn: 'f' }],
    [{ state: 'running', fn: 'f' }, { state: 'resetting', fn: 'f' }],
    [{ state: 'resetting', fn: 'f' }, { state: 'pausing', fn: 'f' }],
    [{ state: 'resetting', fn: 'f' }, { state: 'running', fn: 'f' }],
    [{ state: 'creating', fn: 'f' }, { state: 'running', fn: 'f' }],
  ];
  for (const [from, to] of stock) t.doesNotThrow(ok(from, to), `${from.state} -> ${to.state}`);
});

t.test('any state but retiring can retire, keeping its affinity', async (t) => {
  const states: Phase[] = [
    { state: 'creating', fn: null },
    { state: 'thawing', fn: 'f' },
    { state: 'running', fn: 'f' },
    { state: 'resetting', fn: 'f' },
    { state: 'pausing', fn: 'f' },
    { state: 'paused', fn: null },
  ];
  for (const from of states) t.doesNotThrow(ok(from, { state: 'retiring', fn: from.fn }), from.state);
  t.throws(ok({ state: 'retiring', fn: null }, { state: 'retiring', fn: null }), IllegalTransition, 'retiring is final');
  t.throws(ok({ state: 'retiring', fn: 'f' }, { state: 'paused', fn: 'f' }), IllegalTransition);
});

t.test('edges that do not exist are refused', async (t) => {
  t.throws(ok({ state: 'paused', fn: 'f' }, { state: 'running', fn: 'f' }), /no such edge/, 'running needs a thaw first');
  t.throws(ok({ state: 'running', fn: 'f' }, { state: 'paused', fn: 'f' }), /no such edge/, 'no pause without a reset');
  t.throws(ok({ state: 'creating', fn: null }, { state: 'paused', fn: null }), /no such edge/, 'pausing is its own state');
});

t.test('a container is never handed from one function to another', async (t) => {
  t.throws(ok({ state: 'paused', fn: 'f' }, { state: 'thawing', fn: 'g' }), /never handed/);
  t.throws(ok({ state: 'resetting', fn: 'f' }, { state: 'running', fn: 'g' }), /never handed/);
  t.throws(ok({ state: 'creating', fn: 'f' }, { state: 'running', fn: 'g' }), /never handed/);
});

t.test('a claimed container in which nothing ran goes back to the stock; one that ran does not', async (t) => {
  t.doesNotThrow(ok({ state: 'resetting', fn: 'f' }, { state: 'pausing', fn: null }, false));
  t.throws(ok({ state: 'resetting', fn: 'f' }, { state: 'pausing', fn: null }, true), /never handed/);
  t.throws(ok({ state: 'pausing', fn: 'f' }, { state: 'paused', fn: null }, false), /never handed/, 'only on the way from resetting');
});

t.test('the pause grace: resetting -> ready -> running, or ready -> pausing', async (t) => {
  t.doesNotThrow(ok({ state: 'resetting', fn: 'f' }, { state: 'ready', fn: 'f' }));
  t.doesNotThrow(ok({ state: 'ready', fn: 'f' }, { state: 'running', fn: 'f' }));
  t.doesNotThrow(ok({ state: 'ready', fn: 'f' }, { state: 'pausing', fn: 'f' }));
  t.throws(ok({ state: 'ready', fn: 'f' }, { state: 'running', fn: 'g' }), /never handed/);
  t.throws(ok({ state: 'ready', fn: 'f' }, { state: 'thawing', fn: 'f' }), /no such edge/, 'a thawed container needs no thaw');
});
