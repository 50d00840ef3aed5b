import t from 'tap';
import { ConfigError, loadConfig, parsePerRuntime } from '../../src/config.js';
import { normalizeRuntime } from '../../src/core/runtimes.js';

t.test('defaults run on one machine with no AWS settings', async (t) => {
  const c = loadConfig({});
  t.equal(c.queueUrl, undefined, 'no queue: main.ts starts the embedded stack');
  t.equal(c.httpPort, 8080);
  t.equal(c.region, undefined, 'no hard-coded region: the SDK chain decides');
  t.equal(c.shutdownGraceMs, c.maxTimeoutMs + 30_000, 'SIGTERM lets the longest allowed run finish');
  t.equal(c.termination.watch, 'off', 'no metadata polling off EC2 unless asked');
  t.equal(c.imagePull, 'never', 'images are built locally unless a registry is configured');
  t.equal(c.resultTtlSeconds, 86_400);
  t.equal(c.network, 'none');
  t.equal(c.defaultTimeoutMs, 10_000);
  t.equal(c.defaultMemoryMb, 128);
  t.same([c.runtimes.python.prewarm, c.runtimes.cpp.prewarm], [2, 1], 'the original prewarm counts');
  t.equal(c.runtimes.python.command, 'python main.py');
  t.equal(c.runtimes.cpp.command, '/bin/bash run.sh');
  t.equal(c.tipLanguage, 'en');
});

t.test('the original REDIS_HOST / REDIS_PORT still work', async (t) => {
  t.equal(loadConfig({ REDIS_HOST: 'cache.internal', REDIS_PORT: '6380' }).redisUrl, 'redis://cache.internal:6380');
  t.equal(loadConfig({ REDIS_URL: 'redis://a:1', REDIS_HOST: 'b' }).redisUrl, 'redis://a:1', 'REDIS_URL wins');
});

t.test('invalid configuration fails naming the variable', async (t) => {
  const bad: Array<[Record<string, string>, string]> = [
    [{ HTTP_PORT: 'eighty' }, 'HTTP_PORT'],
    [{ HTTP_PORT: '70000' }, 'HTTP_PORT'],
    [{ SQS_QUEUE_URL: 'not a url' }, 'SQS_QUEUE_URL'],
    [{ NANOGRID_PREWARM: 'python=two' }, 'NANOGRID_PREWARM'],
    [{ NANOGRID_PREWARM: 'ruby=1' }, 'NANOGRID_PREWARM'],
    [{ NANOGRID_PREWARM: 'python=9' }, 'NANOGRID_PREWARM'],
    [{ NANOGRID_MAX_CONTAINERS: 'cpp=0' }, 'NANOGRID_MAX_CONTAINERS'],
    [{ NANOGRID_TIP_LANGUAGE: 'fr' }, 'NANOGRID_TIP_LANGUAGE'],
    [{ NANOGRID_WORK_ROOT: 'relative/path' }, 'NANOGRID_WORK_ROOT'],
    [{ NANOGRID_DEFAULT_TIMEOUT_MS: '5000', NANOGRID_MAX_TIMEOUT_MS: '1000' }, 'NANOGRID_DEFAULT_TIMEOUT_MS'],
    [{ NANOGRID_AGENT_ID: 'has spaces' }, 'NANOGRID_AGENT_ID'],
  ];
  for (const [env, variable] of bad) {
    let caught: unknown;
    try {
      loadConfig(env);
    } catch (err) {
      caught = err;
    }
    t.ok(caught instanceof ConfigError, `${variable}: a ConfigError`);
    t.equal((caught as ConfigError).variable, variable);
    t.match((caught as ConfigError).message, variable, 'the message names the variable');
  }
});

t.test('per-runtime lists and runtime names', async (t) => {
  t.same(parsePerRuntime('X', 'python=3, c++=2', { python: 0, cpp: 0 }), { python: 3, cpp: 2 });
  t.same(parsePerRuntime('X', '', { python: 1, cpp: 1 }), { python: 1, cpp: 1 });
  t.equal(normalizeRuntime('C++'), 'cpp');
  t.equal(normalizeRuntime('python3'), 'python');
  t.equal(normalizeRuntime('java'), undefined);
});
