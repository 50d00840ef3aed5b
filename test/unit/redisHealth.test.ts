import t from 'tap';
import { RedisHealth } from '../../src/sinks/redisHealth.js';

t.test('a failed call makes Redis seem down until one succeeds; one call a second still tries', async (t) => {
  const h = new RedisHealth(50);
  t.equal(h.skip(), false, 'up: every call tries');
  h.failed();
  t.equal(h.isDown, true);
  t.same([h.skip(), h.skip(), h.skip()], [true, true, true], 'down: calls go on without it');
  await new Promise((r) => setTimeout(r, 60));
  t.equal(h.skip(), false, 'after the probe interval one call tries');
  t.equal(h.skip(), true, 'and only one');
  h.ok();
  t.same([h.isDown, h.skip(), h.skip()], [false, false, false], 'a success ends it');
});
