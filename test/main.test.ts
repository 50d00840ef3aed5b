import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { fakeLogs } from './helpers/fakeLogs.js';
import { waitUntil } from '../src/core/timeout.js';
import { removeLeftovers, uniqueId } from './helpers/harness.js';

const MAIN = fileURLToPath(new URL('../dist/src/main.js', import.meta.url));

/** The environment without anything that points the agent somewhere. */
function bareEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['SQS_QUEUE_URL', 'REDIS_URL', 'REDIS_HOST', 'REDIS_PORT', 'NANOGRID_LOCAL', 'AWS_ENDPOINT_URL']) delete env[k];
  return { ...env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...extra };
}

function run(args: string[], env: NodeJS.ProcessEnv): { done: Promise<{ code: number | null; out: string }>; child: ReturnType<typeof spawn>; out: () => string } {
  const child = spawn(process.execPath, [MAIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const done = new Promise<{ code: number | null; out: string }>((resolve) => child.once('exit', (code) => resolve({ code, out })));
  return { done, child, out: () => out };
}

t.test('without SQS_QUEUE_URL the agent refuses to start', async (t) => {
  const { code, out } = await run([], bareEnv({})).done;
  t.equal(code, 2);
  t.match(out, /SQS_QUEUE_URL is not set/);
  t.match(out, /npm run local/);
});

t.test('a queue without a Redis is refused too', async (t) => {
  const { code, out } = await run([], bareEnv({ SQS_QUEUE_URL: 'http://127.0.0.1:9/000000000000/q' })).done;
  t.equal(code, 2);
  t.match(out, /REDIS_URL/);
});

t.test('--local runs the embedded stack, asked for explicitly', async (t) => {
  const workRoot = await mkdtemp(join(tmpdir(), 'nanogrid-local-'));
  const agentId = uniqueId('local');
  const stackFile = join(workRoot, 'local-stack.json');
  // Its lines shipped to CloudWatch Logs too (a ten-minute timer: only the shutdown's flush sends).
  const logs = await fakeLogs(t, ['/nanogrid/agent']);
  const p = run(['--local'], bareEnv({ NANOGRID_LOCAL_PORT: '0', HTTP_PORT: '0', HTTP_HOST: '127.0.0.1', NANOGRID_AGENT_ID: agentId, NANOGRID_WORK_ROOT: workRoot, NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_RECEIVE_WAIT_S: '1', NANOGRID_CLOUDWATCH: 'off', NANOGRID_LOCAL_STACK_FILE: stackFile,
    NANOGRID_LOG_GROUP: '/nanogrid/agent', AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: logs.url, NANOGRID_LOG_FLUSH_MS: '600000' }));
  t.teardown(async () => {
    if (p.child.exitCode === null) p.child.kill('SIGKILL');
    await removeLeftovers(agentId, workRoot);
  });
  await waitUntil('the stack ready', () => p.out().includes('local stack is ready') || p.child.exitCode !== null, { timeoutMs: 60_000 });
  t.match(p.out(), /embedded local stack started/);
  t.match(p.out(), /export SQS_QUEUE_URL=http:\/\/\S+nanogrid-invocations S3_CODE_BUCKET=\S+ AWS_ENDPOINT_URL=http:\/\/127\.0\.0\.1:\d+ REDIS_URL=redis:\/\/127\.0\.0\.1:\d+ NANOGRID_URL=http:\/\/127\.0\.0\.1:\d+/, 'settings ready to paste');
  const address = JSON.parse(await readFile(stackFile, 'utf8')) as { queueUrl: string; redisUrl: string };
  t.match(address, { queueUrl: /nanogrid-invocations$/, redisUrl: /^redis:\/\/127\.0\.0\.1:\d+$/ }, 'where nanogrid --local finds the stack');
  t.equal((await stat(stackFile)).mode & 0o777, 0o600);
  p.child.kill('SIGTERM');
  t.equal((await p.done).code, 0);
  await t.rejects(stat(stackFile), 'removed when the stack stops');
  const shipped = logs.events('/nanogrid/agent', agentId).map((e) => JSON.parse(e.message) as { msg: string; version?: string });
  t.ok(shipped.some((l) => l.msg === 'embedded local stack started'), 'the start\'s lines, buffered before the region was known');
  t.equal(shipped.at(-1)?.msg, 'stopped', 'the last line too: flushed at shutdown');
  t.match(p.out(), /"msg":"stopped"/, 'and on stdout, written out before the exit');
  t.ok(shipped.every((l) => typeof l.version === 'string'));
});

t.test('a taken port stops the agent with one line naming the setting', async (t) => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = String((server.address() as AddressInfo).port);
  const workRoot = await mkdtemp(join(tmpdir(), 'nanogrid-port-'));
  const agentId = uniqueId('port');
  t.teardown(() => removeLeftovers(agentId, workRoot));
  const base = { HTTP_HOST: '127.0.0.1', NANOGRID_AGENT_ID: agentId, NANOGRID_WORK_ROOT: workRoot, NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_CLOUDWATCH: 'off', NANOGRID_LOCAL_STACK_FILE: join(workRoot, 'stack.json') };
  const stackPort = await run(['--local'], bareEnv({ ...base, NANOGRID_LOCAL_PORT: port, HTTP_PORT: '0' })).done;
  t.equal(stackPort.code, 2);
  t.match(stackPort.out, new RegExp(`nanogrid-worker: port ${port} is taken \\(NANOGRID_LOCAL_PORT\\)`));
  t.notMatch(stackPort.out, /\n\s+at /, 'no stack trace');
  const httpPort = await run(['--local'], bareEnv({ ...base, NANOGRID_LOCAL_PORT: '0', HTTP_PORT: port })).done;
  t.equal(httpPort.code, 2);
  t.match(httpPort.out, new RegExp(`nanogrid-worker: port ${port} is taken \\(HTTP_PORT\\)`));
});
