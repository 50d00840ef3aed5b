import { mkdtemp, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { waitUntil } from '../src/core/timeout.js';
import { AgentProcess } from '../src/local/agentProcess.js';
import { LocalClient } from '../src/local/client.js';
import { SAMPLES } from '../src/local/samples.js';
import { startLocalStack, startRedisServer, type RedisServer } from '../src/local/stack.js';
import { removeLeftovers, shutdownRedis, uniqueId } from './helpers/harness.js';

t.test('a worker SIGKILLed while Redis is down loses no result and runs nothing twice', async (t) => {
  const stack = await startLocalStack();
  const workRoot = await mkdtemp(join(tmpdir(), 'nanogrid-outbox-'));
  const agentId = uniqueId('outbox');
  const agents: AgentProcess[] = [];
  let redis: RedisServer | undefined;
  t.teardown(async () => {
    for (const a of agents) a.signal('SIGKILL');
    await Promise.all(agents.map((a) => a.exited));
    await removeLeftovers(agentId, workRoot);
    await redis?.stop();
    await stack.stop();
  });
  const client = new LocalClient({ ...stack });
  await client.connect();
  t.teardown(() => client.close());
  const env = { NANOGRID_PREWARM: 'python=1,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=1' };

  const first = new AgentProcess({ stack, agentId, workRoot, env });
  agents.push(first);
  await first.started();
  await client.uploadZip('kept/v1.zip', SAMPLES.pythonHello);
  const msg = (id: string) => ({ requestId: id, functionId: 'kept', runtime: 'python', s3Bucket: stack.bucket, s3Key: 'kept/v1.zip' });
  const warm = uniqueId('warm');
  await client.send(msg(warm));
  t.equal((await client.waitForResult(warm, 60_000)).status, 'SUCCESS');

  await shutdownRedis(stack.redisUrl);
  const ids = [uniqueId('kept'), uniqueId('kept'), uniqueId('kept')];
  for (const id of ids) await client.send(msg(id));
  await waitUntil('three results kept', () => first.count('result not delivered; kept for retry') >= 3, { timeoutMs: 60_000 });
  await waitUntil('messages deleted', async () => {
    const d = await client.queueDepth();
    return d.visible === 0 && d.inflight === 0;
  });
  const outboxDir = join(workRoot, 'outbox', agentId);
  t.equal((await readdir(outboxDir)).filter((f) => f.endsWith('.json')).length, 3, 'each result is a file on disk');
  first.signal('SIGKILL');
  await first.exited;

  redis = await startRedisServer(Number(new URL(stack.redisUrl).port));
  const second = new AgentProcess({ stack, agentId, workRoot, env });
  agents.push(second);
  await second.started();
  for (const id of ids) {
    const r = await waitUntil(`result ${id} delivered`, () => client.readStored(id).catch(() => undefined), { timeoutMs: 30_000 });
    t.equal(r.status, 'SUCCESS', `${id}: delivered by the restarted agent`);
  }
  t.equal(second.runs().length, 0, 'the restarted agent ran nothing again');
  t.ok(second.count('result delivered from outbox') >= 3);
  await waitUntil('outbox emptied', async () => (await readdir(outboxDir)).length === 0);
  second.signal('SIGTERM');
  t.equal((await second.exited).code, 0);
});
