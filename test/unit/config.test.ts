import t from 'tap';
import { ConfigError, loadConfig, parsePerRuntime } from '../../src/config.js';
import { loadCliEnv } from '../../src/cli/cliEnv.js';
import { DEFAULT_RUNTIMES } from '../../src/core/runtimeConfig.js';

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
  t.same([c.runtimes.require('python').prewarm, c.runtimes.require('cpp').prewarm], [2, 1], 'the original prewarm counts');
  t.same([c.runtimes.require('python').prewarmMax, c.runtimes.require('cpp').prewarmMax], [4, 2], 'the reactive stock may grow by 2 (cpp 1), within capacity');
  t.same([c.runtimes.require('python').prewarmTtlMs, c.runtimes.require('python').prewarmWindowMs, c.scratchSpare], [60_000, 10_000, 2]);
  t.equal(c.runtimes.require('python').command, 'python main.py');
  t.equal(c.runtimes.require('cpp').command, '/bin/bash run.sh');
  t.equal(c.tipLanguage, 'en');
});

t.test('a runtime asked for no prewarm gets no reactive stock unless NANOGRID_PREWARM_MAX asks', async (t) => {
  t.equal(loadConfig({ NANOGRID_PREWARM: 'python=0,cpp=0' }).runtimes.require('python').prewarmMax, 0);
  t.equal(loadConfig({ NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_PREWARM_MAX: 'python=3' }).runtimes.require('python').prewarmMax, 3);
  t.equal(loadConfig({ NANOGRID_PREWARM: 'python=1,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1' }).runtimes.require('python').prewarmMax, 2, 'never above capacity by default');
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
    [{ NANOGRID_PREWARM: 'python=2', NANOGRID_PREWARM_MAX: 'python=1' }, 'NANOGRID_PREWARM_MAX'],
    [{ NANOGRID_PREWARM_TTL_S: '0' }, 'NANOGRID_PREWARM_TTL_S'],
    [{ NANOGRID_SCRATCH_SPARE: '-1' }, 'NANOGRID_SCRATCH_SPARE'],
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
  t.equal(DEFAULT_RUNTIMES.resolve('C++'), 'cpp');
  t.equal(DEFAULT_RUNTIMES.resolve('python3'), 'python');
  t.equal(DEFAULT_RUNTIMES.resolve('java'), undefined);
});

t.test('the CLI environment: defaults, REDIS_HOST/PORT, the first code bucket, blanks as unset', async (t) => {
  const none = loadCliEnv({});
  t.equal(none.agentUrl, 'http://127.0.0.1:8080');
  t.equal(none.redisUrl, undefined);
  t.equal(none.region, 'us-east-1');
  t.notOk(none.hasAccessKey);
  const e = loadCliEnv({ REDIS_HOST: 'r', REDIS_PORT: '7000', S3_CODE_BUCKET: ' a , b', AWS_ACCESS_KEY_ID: 'k', NANOGRID_URL: ' ', SQS_QUEUE_URL: 'http://q' });
  t.equal(e.redisUrl, 'redis://r:7000');
  t.equal(e.codeBucket, 'a');
  t.ok(e.hasAccessKey);
  t.equal(e.agentUrl, 'http://127.0.0.1:8080', 'a blank variable is unset');
  t.equal(e.queueUrl, 'http://q');
  t.equal(loadCliEnv({ REDIS_URL: 'redis://u:1', REDIS_HOST: 'r' }).redisUrl, 'redis://u:1', 'REDIS_URL wins');
});

t.test('the agent reads DOCKER_SOCKET, NANOGRID_LOCAL(_PORT) and AWS_EC2_METADATA_DISABLED here only', async (t) => {
  const d = loadConfig({});
  t.same([d.dockerSocket, d.local, d.metadataDisabled], ['/var/run/docker.sock', { requested: false, port: 4566, stackFile: '/var/lib/nanogrid/local-stack.json' }, false]);
  const c = loadConfig({ DOCKER_SOCKET: '/run/x.sock', NANOGRID_LOCAL: '1', NANOGRID_LOCAL_PORT: '4600', AWS_EC2_METADATA_DISABLED: 'TRUE', NANOGRID_LOCAL_STACK_FILE: '/run/s.json' });
  t.same([c.dockerSocket, c.local, c.metadataDisabled], ['/run/x.sock', { requested: true, port: 4600, stackFile: '/run/s.json' }, true]);
  t.throws(() => loadConfig({ DOCKER_SOCKET: 'relative.sock' }), ConfigError);
});
