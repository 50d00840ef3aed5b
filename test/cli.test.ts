import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';
import { startHarness } from './helpers/harness.js';
import { removeStackFile, writeStackFile } from '../src/local/stackFile.js';

const exec = promisify(execFile);
const CLI = fileURLToPath(new URL('../dist/src/cli/nanogrid.js', import.meta.url));

async function nanogrid(args: string[], env: Record<string, string>): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], { env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env }, timeout: 120_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

t.test('nanogrid: invoke a folder with input, read the result, status and drain', async (t) => {
  const h = await startHarness(t);
  const env = { SQS_QUEUE_URL: h.stack.queueUrl, AWS_ENDPOINT_URL: h.stack.endpoint, S3_CODE_BUCKET: h.stack.bucket, REDIS_URL: h.stack.redisUrl };
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'main.py'), 'import json, sys\nd = json.load(sys.stdin)\nprint("hi " + d["who"])\n');

  const inv = await nanogrid(['invoke', dir, '--function', 'cli-hello', '--input', '{"who": "operator"}'], env);
  t.equal(inv.code, 0, inv.stderr);
  const r = JSON.parse(inv.stdout) as { requestId: string; status: string; stdout: string };
  t.equal(r.status, 'SUCCESS');
  t.equal(r.stdout.trim(), 'hi operator');

  const again = await nanogrid(['result', r.requestId], env);
  t.equal(again.code, 0);
  t.equal((JSON.parse(again.stdout) as { requestId: string }).requestId, r.requestId);

  const inline = await nanogrid(['invoke', '--code', 'raise SystemExit(4)', '--function', 'cli-inline'], env);
  t.equal(inline.code, 1, 'a failed function is a failed command');
  t.equal((JSON.parse(inline.stdout) as { exitCode: number }).exitCode, 4);

  const url = `http://127.0.0.1:${h.agent.httpPort}`;
  const status = await nanogrid(['status', '--url', url], env);
  t.equal(status.code, 0);
  t.ok((JSON.parse(status.stdout) as { supervisor: unknown }).supervisor);
  const drain = await nanogrid(['drain', '--url', url], env);
  t.equal(drain.code, 0);
  t.equal((JSON.parse(drain.stdout) as { state: string }).state, 'draining');

  const missing = await nanogrid(['invoke', dir], env);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /missing --function/);
  const none = await nanogrid(['result', 'no-such-request'], env);
  t.equal(none.code, 1);
});

t.test('nanogrid with message keys and an admin token: invoke signs, drain and undrain send the token', async (t) => {
  const keys = `cli:${Buffer.alloc(32, 7).toString('base64')}`;
  const token = 'an-admin-token-of-the-operator';
  const h = await startHarness(t, { env: { NANOGRID_MESSAGE_KEYS: keys, NANOGRID_ADMIN_TOKEN: token } });
  const base = { SQS_QUEUE_URL: h.stack.queueUrl, AWS_ENDPOINT_URL: h.stack.endpoint, S3_CODE_BUCKET: h.stack.bucket, REDIS_URL: h.stack.redisUrl };
  const signed = await nanogrid(['invoke', '--code', 'print("signed")', '--function', 'cli-signed'], { ...base, NANOGRID_MESSAGE_KEYS: keys });
  t.equal(signed.code, 0, signed.stderr);
  t.equal((JSON.parse(signed.stdout) as { stdout: string }).stdout, 'signed\n', 'a worker with keys ran it');
  const unsigned = await nanogrid(['invoke', '--code', 'print("x")', '--function', 'cli-unsigned', '--wait-ms', '3000'], base);
  t.equal(unsigned.code, 1, 'unsigned: no answer');
  t.match(unsigned.stderr, /no result within 3000 ms/);
  const url = `http://127.0.0.1:${h.agent.httpPort}`;
  const refused = await nanogrid(['drain', '--url', url], base);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /HTTP 401/);
  const drain = await nanogrid(['drain', '--url', url], { ...base, NANOGRID_ADMIN_TOKEN: token });
  t.equal(drain.code, 0, drain.stderr);
  const undrain = await nanogrid(['undrain', '--url', url], { ...base, NANOGRID_ADMIN_TOKEN: token });
  t.equal(undrain.code, 0, undrain.stderr);
  t.equal((JSON.parse(undrain.stdout) as { phase: string }).phase, 'ready');
});

t.test('nanogrid --local: the queue, bucket, Redis and endpoint of the stack npm run local keeps in its file', async (t) => {
  const h = await startHarness(t);
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-cli-local-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const stackFile = join(dir, 'local-stack.json');
  await writeStackFile(stackFile, h.stack);
  await writeFile(join(dir, 'main.py'), 'print("hello local")\n');
  // Nothing else in the environment says where the stack is.
  const env = { NANOGRID_LOCAL_STACK_FILE: stackFile, SQS_QUEUE_URL: '', AWS_ENDPOINT_URL: '', S3_CODE_BUCKET: '', REDIS_URL: '', REDIS_HOST: '' };
  const inv = await nanogrid(['invoke', dir, '--function', 'cli-local', '--local'], env);
  t.equal(inv.code, 0, inv.stderr);
  t.equal((JSON.parse(inv.stdout) as { stdout: string }).stdout.trim(), 'hello local');
  await removeStackFile(stackFile, h.stack);
  const gone = await nanogrid(['invoke', dir, '--function', 'cli-local', '--local'], env);
  t.not(gone.code, 0);
  t.match(gone.stderr, /no embedded stack is running .*npm run local/);
});
