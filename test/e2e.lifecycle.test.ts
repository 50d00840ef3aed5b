import { spawn } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { LocalClient } from '../src/local/client.js';
import { SAMPLES } from '../src/local/samples.js';
import { startLocalStack } from '../src/local/stack.js';
import { LABEL_AGENT, LABEL_RUN } from '../src/core/sandbox.js';
import { listAgentContainers } from '../src/pool/leftovers.js';
import { waitUntil } from '../src/core/timeout.js';
import { AgentProcess } from '../src/local/agentProcess.js';
import { docker, removeLeftovers, startHarness, uniqueId } from './helpers/harness.js';

const MAIN = fileURLToPath(new URL('../dist/src/main.js', import.meta.url));

t.test('SIGTERM: finishes the running invocation, releases held ones, removes containers, exits 0', async (t) => {
  const stack = await startLocalStack();
  t.teardown(() => stack.stop());
  const workRoot = await mkdtemp(join(tmpdir(), 'nanogrid-sig-'));
  const client = new LocalClient({ ...stack });
  await client.connect();
  t.teardown(() => client.close());
  const agentId = uniqueId('sig');
  t.teardown(async () => {
    await removeLeftovers(agentId, workRoot);
  });

  const child = spawn(process.execPath, [MAIN], {
    env: {
      ...process.env,
      NANOGRID_AGENT_ID: agentId,
      SQS_QUEUE_URL: stack.queueUrl,
      AWS_ENDPOINT_URL: stack.endpoint,
      AWS_REGION: stack.region,
      AWS_ACCESS_KEY_ID: 'local',
      AWS_SECRET_ACCESS_KEY: 'local',
      REDIS_URL: stack.redisUrl,
      HTTP_PORT: '0',
      HTTP_HOST: '127.0.0.1',
      NANOGRID_WORK_ROOT: workRoot,
      NANOGRID_PREWARM: 'python=1,cpp=0',
      NANOGRID_MAX_CONTAINERS: 'python=1,cpp=1',
      NANOGRID_CLOUDWATCH: 'off',
      NANOGRID_SHUTDOWN_GRACE_MS: '20000',
      NANOGRID_RECEIVE_WAIT_S: '2',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  await waitUntil('agent started', async () => (out.includes('agent started') ? true : undefined), { timeoutMs: 60_000 });
  t.ok(out.split('\n').filter(Boolean).every((l) => JSON.parse(l).level), 'logs are JSON lines');

  // One slot: the first runs for 2 s, the second waits in the pool, unstarted.
  await client.uploadZip('slow/v1.zip', SAMPLES.pythonSleep(2000));
  const first = { requestId: uniqueId('slow'), functionId: 'slow', runtime: 'python', s3Bucket: stack.bucket, s3Key: 'slow/v1.zip' };
  const second = { ...first, requestId: uniqueId('slow') };
  await client.send(first);
  const port = await waitUntil('http port', async () => {
    const line = out.split('\n').find((l) => l.includes('agent started'));
    return line ? (JSON.parse(line) as { httpPort: number }).httpPort : undefined;
  });
  // Running means the function's process has started, not only that the message was taken.
  await waitUntil('first running', async () => {
    const s = (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { supervisor: { running: number } };
    return s.supervisor.running === 1 ? true : undefined;
  });
  await client.send(second);
  await waitUntil('second held', async () => ((await client.queueDepth()).inflight === 2 ? true : undefined));
  child.kill('SIGTERM');

  t.equal(await exited, 0, 'exit code 0');
  const r = await client.readStored(first.requestId);
  t.equal(r?.status, 'SUCCESS', 'the running invocation finished within the grace period');
  t.equal(await client.readStored(second.requestId), undefined, 'the unstarted one did not run');
  const depth = await client.queueDepth();
  t.equal(depth.visible, 1, 'the unstarted message is visible again for another worker');
  t.same(await listAgentContainers(docker, agentId), [], 'no containers left');
  for (const line of out.split('\n').filter((l) => l.includes(first.requestId))) {
    t.equal(JSON.parse(line).requestId, first.requestId, 'requestId on every line of the invocation');
  }
});

t.test('a restart removes the containers a killed run left behind', async (t) => {
  const agentId = uniqueId('left');
  t.teardown(async () => {
    for (const c of await listAgentContainers(docker, agentId)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  });
  const labels = { [LABEL_AGENT]: agentId, [LABEL_RUN]: 'killed-run' };
  const exited = await docker.createContainer({ Image: 'nanogrid/python:local', Cmd: ['true'], Labels: labels });
  await exited.start();
  await exited.wait();
  const paused = await docker.createContainer({ Image: 'nanogrid/python:local', Cmd: ['sleep', 'infinity'], Labels: labels });
  await paused.start();
  await paused.pause();
  t.equal((await listAgentContainers(docker, agentId)).length, 2, 'two leftovers: one Exited, one paused');

  const h = await startHarness(t, { env: { NANOGRID_AGENT_ID: agentId } });
  const ids = (await h.containers()).map((c) => c.Id);
  t.notOk(ids.includes(exited.id), 'the Exited leftover is gone');
  t.notOk(ids.includes(paused.id), 'the paused leftover is gone');
  t.equal(ids.length, 1, 'only the new prewarm container remains');
});

t.test('stop removes every container of the agent', async (t) => {
  const h = await startHarness(t);
  const r = await h.invoke('hello', SAMPLES.pythonHello);
  t.equal(r.status, 'SUCCESS');
  t.ok((await h.containers()).length >= 1);
  await h.agent.stop();
  t.same(await h.containers(), []);
});

t.test('GET /health and /status', async (t) => {
  const h = await startHarness(t);
  await h.invoke('hello', SAMPLES.pythonHello);
  const base = `http://127.0.0.1:${h.agent.httpPort}`;
  const health = await fetch(`${base}/health`);
  t.equal(health.status, 200);
  const hb = (await health.json()) as { status: string; parts: Record<string, { ok: boolean }> };
  t.equal(hb.status, 'UP');
  t.equal(hb.parts.docker?.ok, true);
  t.equal(hb.parts.queue?.ok, true);

  type Status = {
    supervisor: { inflight: number; freeSlots: number; capacity: number; totals: { deleted: number } };
    pools: Array<{ runtime: string; containers: Record<'creating' | 'thawing' | 'resetting' | 'pausing' | 'paused', number>; served: Record<string, number> }>;
  };
  // The result is published before the message is deleted and the container paused.
  const status = await waitUntil('agent quiet', async () => {
    const s = (await (await fetch(`${base}/status`)).json()) as Status;
    const quiet = s.supervisor.inflight === 0 && s.pools.every((p) => p.containers.creating + p.containers.thawing + p.containers.resetting + p.containers.pausing === 0);
    return quiet ? s : undefined;
  });
  t.equal(status.supervisor.inflight, 0);
  // python 2 + cpp 1 + node 2 (the harness's default pools): every pool's containers are slots.
  t.equal(status.supervisor.capacity, 5);
  t.equal(status.supervisor.freeSlots, 5);
  t.equal(status.supervisor.totals.deleted, 1);
  const py = status.pools.find((p) => p.runtime === 'python')!;
  t.same(py.served, { cold: 0, prewarm: 1, warm: 0 });
  t.ok(py.containers.paused! >= 1);
  t.equal((await fetch(`${base}/nope`)).status, 404);

  // The queue endpoint goes away: health turns 503 and names the part.
  await h.stack.stop();
  const down = await waitUntil(
    'health 503',
    async () => {
      const res = await fetch(`${base}/health`);
      return res.status === 503 ? ((await res.json()) as { parts: Record<string, { ok: boolean }> }) : undefined;
    },
    { timeoutMs: 60_000 },
  );
  t.equal(down.parts.queue?.ok, false);
  t.equal(down.parts.docker?.ok, true);
  // Liveness is this worker alone: a shared dependency down does not make it unhealthy.
  const live = await fetch(`${base}/health/live`);
  t.equal(live.status, 200, 'still alive with the queue gone');
  t.equal(((await live.json()) as { status: string }).status, 'UP');
  t.equal((await fetch(`${base}/health/ready`)).status, 503, 'but not ready');
});

t.test('the HTTP server answers from the start: STARTING until the pools are ready', async (t) => {
  const stack = await startLocalStack();
  t.teardown(() => stack.stop());
  const workRoot = await mkdtemp(join(tmpdir(), 'nanogrid-starting-'));
  const agentId = uniqueId('starting');
  const a = new AgentProcess({ stack, agentId, workRoot, env: { NANOGRID_PREWARM: 'python=2,cpp=1' } });
  t.teardown(async () => {
    a.signal('SIGKILL');
    await a.exited;
    await removeLeftovers(agentId, workRoot);
  });
  const port = await waitUntil('http listening', () => a.lines.find((l) => l.msg === 'http listening: starting')?.httpPort as number | undefined, { timeoutMs: 30_000, intervalMs: 5 });
  const answers: string[] = [];
  await waitUntil(
    'ready',
    async () => {
      const res = await fetch(`http://127.0.0.1:${port}/health/ready`);
      const body = (await res.json()) as { status: string };
      answers.push(`${res.status} ${body.status}`);
      return res.status === 200;
    },
    { timeoutMs: 60_000, intervalMs: 20 },
  );
  t.equal(answers[0], '503 STARTING', `the first answer (${answers.slice(0, 3).join(', ')})`);
  t.equal(answers.at(-1), '200 UP');
  t.equal((await fetch(`http://127.0.0.1:${port}/health/live`)).status, 200);
  a.signal('SIGTERM');
  t.equal((await a.exited).code, 0);
});

t.test('a stopped agent leaves no message stranded in a dead long poll', async (t) => {
  // Aborting a long poll client-side lets the queue hand the next message to a dead
  // request, invisible for the whole visibility timeout (60 s): stop must not do that.
  const first = await startHarness(t, { env: { NANOGRID_RECEIVE_WAIT_S: '5' } });
  await first.client.uploadZip('after-stop/v1.zip', SAMPLES.pythonHello);
  await first.agent.stop();
  const m = first.message('after-stop');
  await first.client.send(m);
  const second = await startHarness(t, { stack: first.stack });
  t.ok(second);
  // Far below the 60 s visibility timeout a stranded message would wait out.
  const r = await first.client.waitForResult(m.requestId, 20_000);
  t.equal(r.status, 'SUCCESS');
});
