import t from 'tap';
import { parseLifecycleState, parseSpotAction } from '../../src/fleet/notice.js';

t.test('lifecycle state: only Terminated is a termination', async (t) => {
  t.same(parseLifecycleState('Terminated\n'), { kind: 'lifecycle', state: 'Terminated' });
  for (const s of ['InService', 'Standby', 'Warmed:Running', 'Detached', '', null]) t.equal(parseLifecycleState(s), null, String(s));
});

t.test('Spot notice: its action and time; a malformed one still counts, two minutes out', async (t) => {
  const now = Date.parse('2026-11-23T10:00:00Z');
  t.same(parseSpotAction('{"action": "terminate", "time": "2026-11-23T10:02:00Z"}', now), { kind: 'spot', action: 'terminate', deadline: now + 120_000 });
  t.same(parseSpotAction('{"action": "stop", "time": "2026-11-23T10:01:00Z"}', now), { kind: 'spot', action: 'stop', deadline: now + 60_000 });
  t.same(parseSpotAction('not json', now), { kind: 'spot', action: 'terminate', deadline: now + 120_000 });
  t.same(parseSpotAction('{"action": 3, "time": "soon"}', now), { kind: 'spot', action: 'terminate', deadline: now + 120_000 });
  t.equal(parseSpotAction(null, now), null, '404: no notice');
  t.equal(parseSpotAction('  ', now), null);
});
