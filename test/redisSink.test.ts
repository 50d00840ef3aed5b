import t from 'tap';
import { failedResult, type Result } from '../src/core/result.js';
import { startRedisServer } from '../src/local/stack.js';
import { silentLogger } from '../src/core/log.js';
import { RedisSink } from '../src/sinks/redisSink.js';
import { waitUntil } from '../src/core/timeout.js';
import { MemoryHistory } from '../src/sinks/memoryHistory.js';
import { historyKey } from '../src/sinks/redisKeys.js';
import { functionKey } from '../src/core/invocation.js';

// The sink's scripts on a real redis-server: who owns a request id, first writer wins.
const result = (requestId: string, functionId: string, codeLocation: string | null, stdout = ''): Result => ({
  ...failedResult({ requestId, functionId, codeLocation, runtime: 'python', reason: 'NON_ZERO_EXIT', message: 'm', memoryMb: 128, attempt: 1, workerId: 'w', totalMs: 1 }),
  stdout,
});

t.test('a request id is its first owner\'s: claims, writes and the outbox replay all check it', async (t) => {
  const server = await startRedisServer();
  t.teardown(() => server.stop());
  // No retry loop of its own: the outbox is replayed when the test says (at close).
  const sink = new RedisSink({ url: server.url, ttlSeconds: 60, workerId: 'w', log: silentLogger, resultMaxBytes: 1 << 20, retryEveryMs: 3_600_000 });
  t.teardown(() => sink.close());
  await sink.connect();
  const r = sink.redis;

  t.equal(await sink.claim('r1', 'a', 's3://code/a/v1.zip', { attempt: 1 }, silentLogger), 'claimed');
  t.equal(await r.hget('job:r1', 'state'), 'PROCESSING');
  t.equal(await sink.claim('r1', 'a', 's3://code/a/v2.zip', { attempt: 2 }, silentLogger), 'claimed', 'the same function (another version) claims again');
  t.equal(await sink.claim('r1', 'b', 's3://code/b/v1.zip', { attempt: 1 }, silentLogger), 'foreign', 'another function id');
  t.equal(await sink.claim('r1', 'a', 's3://code/x/v1.zip', { attempt: 1 }, silentLogger), 'foreign', 'the same id with code from elsewhere');

  await sink.deliver(result('r1', 'b', 's3://code/b/v1.zip', 'intruder'));
  t.equal(await r.get('result:r1'), null, 'another function\'s result is not stored');
  await sink.deliver(result('r1', 'a', 's3://code/a/v1.zip', 'owner'));
  t.equal((JSON.parse((await r.get('result:r1'))!) as Result).stdout, 'owner');
  t.equal(await sink.claim('r1', 'a', 's3://code/a/v1.zip', { attempt: 3 }, silentLogger), 'answered', 'answered already: a replay is not run');
  await sink.deliver(result('r1', 'b', 's3://code/b/v1.zip', 'intruder'));
  await sink.deliver(result('r1', 'x', null, 'a refusal'));
  t.equal((JSON.parse((await r.get('result:r1'))!) as Result).stdout, 'owner', 'neither another function nor a refused message replaces it');

  // A message refused before its code was known writes only where nobody owns the id, and claims nothing.
  await sink.deliver(result('r2', 'unknown', null, 'refused'));
  t.equal((JSON.parse((await r.get('result:r2'))!) as Result).stdout, 'refused');
  t.equal(await r.get('owner:r2'), null);
  t.equal(await sink.claim('r2', 'a', 's3://code/a/v1.zip', {}, silentLogger), 'claimed');

  // Redis down: the result waits in the outbox; Redis comes back, another function claims
  // the id meanwhile; the replay finds it owned and does not replace it.
  await server.stop();
  t.equal(await sink.deliver(result('r3', 'a', 's3://code/a/v1.zip', 'late')), false, 'kept for retry');
  t.equal(sink.pending, 1);
  const again = await startRedisServer(server.port);
  t.teardown(() => again.stop());
  const other = new RedisSink({ url: server.url, ttlSeconds: 60, workerId: 'w2', log: silentLogger, resultMaxBytes: 1 << 20 });
  t.teardown(() => other.close());
  await other.connect();
  t.equal(await other.claim('r3', 'b', 's3://code/b/v1.zip', {}, silentLogger), 'claimed', 'another worker, another function');
  await other.deliver(result('r3', 'b', 's3://code/b/v1.zip', 'first'));
  await waitUntil('the sink reconnected', async () => sink.ping());
  await sink.close();
  t.equal(sink.pending, 0, 'the replay settled it');
  t.equal((JSON.parse((await other.redis.get('result:r3'))!) as Result).stdout, 'first', 'the replayed result did not replace the owner\'s');
});

t.test('the claim reads the memory history and the result write records the peak: no call of its own', async (t) => {
  const server = await startRedisServer();
  t.teardown(() => server.stop());
  const sink = new RedisSink({ url: server.url, ttlSeconds: 60, workerId: 'w', log: silentLogger, resultMaxBytes: 1 << 20, retryEveryMs: 3_600_000 });
  t.teardown(() => sink.close());
  await sink.connect();
  const history = new MemoryHistory(sink.redis, { size: 3, ttlSeconds: 600, log: silentLogger, health: sink.health });
  sink.useHistory(history);
  const key = functionKey('a', 's3://code/a/v1.zip');
  await sink.redis.rpush(historyKey(key), '100', '200', '300');
  const calls: string[] = [];
  const monitor = await sink.redis.duplicate().monitor();
  t.teardown(() => monitor.disconnect());
  // What the client sent (not what the scripts ran inside Redis).
  monitor.on('monitor', (_time: string, args: string[], source: string) => void (source !== 'lua' && calls.push(String(args[0]).toLowerCase())));

  t.equal(await sink.claim('h1', 'a', 's3://code/a/v1.zip', { attempt: 1 }, silentLogger), 'claimed');
  const peaks = await history.record(key, 400, silentLogger, 'h1');
  t.same(peaks, [200, 300, 400], 'the peaks the claim read, with this run\'s, the newest 3');
  await sink.deliver({ ...result('h1', 'a', 's3://code/a/v1.zip'), peakMemoryBytes: 400 });
  t.same(await sink.redis.lrange(historyKey(key), 0, -1), ['200', '300', '400'], 'the write recorded the peak, trimmed to the size');
  t.ok(await sink.redis.ttl(historyKey(key)) > 500, 'with the history\'s TTL');
  await waitUntil('monitor lines', () => calls.includes('evalsha') || calls.includes('eval'), { timeoutMs: 5000 });
  t.notOk(calls.includes('multi') || calls.includes('rpush'), `no call of the history's own (${calls.join(', ')})`);

  // Without a claim's read (Redis was down at the claim), the history is read and written on its own.
  const alone = await history.record(key, 500, silentLogger, 'h2');
  t.same(alone, [300, 400, 500]);
  t.equal(history.takePending('h2'), undefined, 'nothing left for the write to add');

  // A refused write (another function's id) records no peak.
  t.equal(await sink.claim('h3', 'b', 's3://code/b/v1.zip', { attempt: 1 }, silentLogger), 'claimed');
  await history.record(key, 999, silentLogger, 'h3');
  await sink.deliver({ ...result('h3', 'a', 's3://code/a/v1.zip'), peakMemoryBytes: 999 });
  t.same(await sink.redis.lrange(historyKey(key), 0, -1), ['300', '400', '500'], 'the refused write added nothing');
});
