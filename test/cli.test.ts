import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { createServer, type AddressInfo } from 'node:net';
import { startHarness, type Harness } from './helpers/harness.js';
import { removeStackFile, writeStackFile } from '../src/local/stackFile.js';

const CLI = fileURLToPath(new URL('../dist/src/cli/nanogrid.js', import.meta.url));

async function nanogrid(args: string[], env: Record<string, string>, stdin?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = execFile(process.execPath, [CLI, ...args], { env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true', ...env }, timeout: 120_000 });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d));
  child.stderr!.on('data', (d: Buffer) => (stderr += d));
  child.stdin!.end(stdin ?? '');
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  return { code, stdout, stderr };
}

/** What points the CLI at a harness's stack. */
const stackEnv = (h: Harness) => ({ SQS_QUEUE_URL: h.stack.queueUrl, AWS_ENDPOINT_URL: h.stack.endpoint, S3_CODE_BUCKET: h.stack.bucket, REDIS_URL: h.stack.redisUrl });

t.test('nanogrid: invoke a folder with input, read the result, status and drain', async (t) => {
  const h = await startHarness(t);
  const env = stackEnv(h);
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'main.py'), 'import json, sys\nd = json.load(sys.stdin)\nprint("hi " + d["who"])\n');

  const inv = await nanogrid(['invoke', dir, '--function', 'cli-hello', '--input', '{"who": "operator"}', '--json'], env);
  t.equal(inv.code, 0, inv.stderr);
  const r = JSON.parse(inv.stdout) as { requestId: string; status: string; stdout: string };
  t.equal(r.status, 'SUCCESS');
  t.equal(r.stdout.trim(), 'hi operator');

  const again = await nanogrid(['result', r.requestId, '--json'], env);
  t.equal(again.code, 0);
  t.equal((JSON.parse(again.stdout) as { requestId: string }).requestId, r.requestId);

  const inline = await nanogrid(['invoke', '--code', 'raise SystemExit(4)', '--function', 'cli-inline', '--json'], env);
  t.equal(inline.code, 1, 'a failed function is a failed command');
  t.equal((JSON.parse(inline.stdout) as { exitCode: number }).exitCode, 4);

  const url = `http://127.0.0.1:${h.agent.httpPort}`;
  const status = await nanogrid(['status', '--url', url, '--json'], env);
  t.equal(status.code, 0);
  t.ok((JSON.parse(status.stdout) as { supervisor: unknown }).supervisor);
  const drain = await nanogrid(['drain', '--url', url, '--json'], env);
  t.equal(drain.code, 0);
  t.equal((JSON.parse(drain.stdout) as { state: string }).state, 'draining');

  // Inline code has no folder to take a name from.
  const missing = await nanogrid(['invoke', '--code', 'print(1)'], env);
  t.equal(missing.code, 2);
  t.match(missing.stderr, /missing --function/);
  const none = await nanogrid(['result', 'no-such-request'], env);
  t.equal(none.code, 1);
});

t.test('nanogrid with message keys and an admin token: invoke signs, drain and undrain send the token', async (t) => {
  const keys = `cli:${Buffer.alloc(32, 7).toString('base64')}`;
  const token = 'an-admin-token-of-the-operator';
  const h = await startHarness(t, { env: { NANOGRID_MESSAGE_KEYS: keys, NANOGRID_ADMIN_TOKEN: token } });
  const base = stackEnv(h);
  const signed = await nanogrid(['invoke', '--code', 'print("signed")', '--function', 'cli-signed', '--json'], { ...base, NANOGRID_MESSAGE_KEYS: keys });
  t.equal(signed.code, 0, signed.stderr);
  t.equal((JSON.parse(signed.stdout) as { stdout: string }).stdout, 'signed\n', 'a worker with keys ran it');
  const unsigned = await nanogrid(['invoke', '--code', 'print("x")', '--function', 'cli-unsigned', '--wait-ms', '3000'], base);
  t.equal(unsigned.code, 3, 'unsigned: no answer (yet)');
  t.match(unsigned.stderr, /no result within 3000 ms/);
  const url = `http://127.0.0.1:${h.agent.httpPort}`;
  const refused = await nanogrid(['drain', '--url', url], base);
  t.equal(refused.code, 1);
  t.match(refused.stderr, /HTTP 401/);
  const drain = await nanogrid(['drain', '--url', url], { ...base, NANOGRID_ADMIN_TOKEN: token });
  t.equal(drain.code, 0, drain.stderr);
  const undrain = await nanogrid(['undrain', '--url', url, '--json'], { ...base, NANOGRID_ADMIN_TOKEN: token });
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
  const env = { NANOGRID_LOCAL_STACK_FILE: stackFile, SQS_QUEUE_URL: '', AWS_ENDPOINT_URL: '', S3_CODE_BUCKET: '', REDIS_URL: '', REDIS_HOST: '', NANOGRID_LOCAL_WAIT_S: '2' };
  const inv = await nanogrid(['invoke', dir, '--function', 'cli-local', '--local', '--json'], env);
  t.equal(inv.code, 0, inv.stderr);
  t.equal((JSON.parse(inv.stdout) as { stdout: string }).stdout.trim(), 'hello local');
  await removeStackFile(stackFile, h.stack);
  const gone = await nanogrid(['invoke', dir, '--function', 'cli-local', '--local'], env);
  t.not(gone.code, 0);
  t.match(gone.stderr, /no embedded stack is running .*npm run local/);
  t.match(gone.stderr, /waiting for the embedded stack .*up to 2 s/, 'it waited for one still starting, and said so');
  // One that appears while the CLI waits (npm run local's agent starting) is used.
  const late = nanogrid(['invoke', dir, '--function', 'cli-local', '--local', '--json'], { ...env, NANOGRID_LOCAL_WAIT_S: '60' });
  await new Promise((r) => setTimeout(r, 1500));
  await writeStackFile(stackFile, h.stack);
  const got = await late;
  t.equal(got.code, 0, got.stderr);
  t.match(got.stderr, /waiting for the embedded stack/);
});

t.test('nanogrid init: a first function per runtime, which runs; never into a folder with files', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=1,node=1' } });
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-cli-init-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const answers: Record<string, RegExp> = { python: /^hello, you$/, node: /^hello, you$/, cpp: /^hello from C\+\+, input: \{"who": ?"you"\}$/ };
  for (const runtime of ['python', 'node', 'cpp']) {
    const fn = join(dir, runtime);
    const made = await nanogrid(['init', fn, ...(runtime === 'python' ? [] : ['--runtime', runtime])], {});
    t.equal(made.code, 0, made.stderr);
    t.match(made.stdout, new RegExp(`next: npm run -s nanogrid -- invoke ${fn.replace(/[/.]/g, '\\$&')}${runtime === 'python' ? '' : ` --runtime ${runtime}`} --local`), 'it says what to run next');
    // No --function: the folder's name is the function's.
    const run = await nanogrid(['invoke', fn, '--input', '{"who": "you"}', '--json', ...(runtime === 'python' ? [] : ['--runtime', runtime])], stackEnv(h));
    t.equal(run.code, 0, `${runtime}: ${run.stderr}${run.stdout}`);
    const res = JSON.parse(run.stdout) as { stdout: string; functionId: string };
    t.match(res.stdout.trim(), answers[runtime]!, `${runtime}: the first function runs`);
    t.equal(res.functionId, runtime, 'named after its folder');
  }
  const again = await nanogrid(['init', join(dir, 'python')], {});
  t.equal(again.code, 2);
  t.match(again.stderr, /is not empty: init writes only into a new or empty folder/);
  const bad = await nanogrid(['init', join(dir, 'ruby'), '--runtime', 'ruby'], {});
  t.equal(bad.code, 2);
  t.match(bad.stderr, /init knows python, node and cpp/);
  t.equal((await nanogrid(['init'], {})).code, 2);
});

t.test('nanogrid for a person: a summary by default, stdin input, the same folder the same key, a running job\'s state', async (t) => {
  const h = await startHarness(t);
  const env = stackEnv(h);
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-cli-human-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'main.py'), 'import json, sys\nd = json.load(sys.stdin)\nprint("hi " + d["who"])\n');
  const a = await nanogrid(['invoke', dir, '--function', 'cli-human', '--input', '-'], env, '{"who": "stdin"}');
  t.equal(a.code, 0, a.stderr);
  t.match(a.stdout, /^SUCCESS {2}exit 0 {2}python/, 'the status first');
  t.match(a.stdout, /--- stdout\nhi stdin\n/, 'then the output');
  t.match(a.stdout, /peak [\d.]+ MB of 128 MB/);
  const b = await nanogrid(['invoke', dir, '--function', 'cli-human', '--input', '{"who": "again"}', '--json'], env);
  const c = await nanogrid(['invoke', dir, '--function', 'cli-human', '--input', '{"who": "again"}', '--json'], env);
  const loc = (x: { stdout: string }) => (JSON.parse(x.stdout) as { codeLocation: string }).codeLocation;
  t.equal(loc(b), loc(c), 'the same folder is the same zip, key and code version');

  await writeFile(join(dir, 'main.py'), 'import time\ntime.sleep(3)\n');
  const sent = await nanogrid(['invoke', dir, '--function', 'cli-slow', '--no-wait', '--json'], env);
  t.equal(sent.code, 0, sent.stderr);
  const { requestId } = JSON.parse(sent.stdout) as { requestId: string };
  let running = await nanogrid(['result', requestId], env);
  for (let i = 0; i < 50 && running.code === 1; i++) running = await nanogrid(['result', requestId], env);
  t.equal(running.code, 3, running.stderr);
  t.match(running.stdout, new RegExp(`^${requestId} is (PENDING|PROCESSING)`), 'the job\'s state, not "no result"');
});

t.test('nanogrid usage errors exit 2 before anything is sent; failures name the URL or the setting', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-cli-usage-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'main.cpp'), 'int main() { return 0; }\n');
  await writeFile(join(dir, 'run.sh'), 'g++ -o p main.cpp && ./p\n');
  // A queue no one listens on: nothing may get as far as a send.
  const env = { SQS_QUEUE_URL: 'http://127.0.0.1:1/000000000000/q', AWS_ENDPOINT_URL: 'http://127.0.0.1:1', S3_CODE_BUCKET: 'b', REDIS_URL: 'redis://127.0.0.1:1' };
  const usage = async (args: string[], re: RegExp, what: string) => {
    const r = await nanogrid(args, env);
    t.equal(r.code, 2, `${what}: exit 2 (${r.stderr.trim()})`);
    t.match(r.stderr, re, what);
    t.notMatch(r.stderr, /sent /, `${what}: nothing sent`);
  };
  await usage(['invoke', dir, '--function', 'f'], /holds C\+\+ .*--runtime cpp/, 'a C++ folder sent as python');
  await usage(['invoke', dir, '--function', 'f', '--runtime', 'ruby'], /RUNTIME_NOT_SUPPORTED.*ruby/, 'a runtime no worker runs');
  await usage(['invoke', dir, '--function', 'bad id!', '--runtime', 'cpp'], /functionId/, 'an id the agent refuses');
  await usage(['invoke', dir, '--function', 'f', '--runtime', 'cpp', '--memory', 'lots'], /--memory must be a whole number/, 'memory not a number');
  await usage(['invoke', dir, '--function', 'f', '--runtime', 'cpp', '--memory', '999999'], /memoryMb 999999 is outside/, 'memory out of range');
  await usage(['invoke', dir, '--function', 'f', '--runtime', 'cpp', '--timeout', '99999999'], /timeoutMs 99999999 exceeds/, 'timeout past the maximum');
  await usage(['invoke', dir, '--function', 'f', '--runtime', 'cpp', '--input', '{not json'], /--input is not JSON/, 'input not JSON');
  await usage(['invoke', dir, '--function', 'f', '--frobnicate'], /Unknown option '--frobnicate'/, 'an unknown option');
  await usage(['invoke', join(dir, 'nowhere'), '--function', 'f'], /nowhere: no such file or folder/, 'a folder that is not there');
  await usage(['invoke', '--code', 'print(1)', '--function', 'f', '--runtime', 'cpp'], /inline code runs only as python/, 'inline code as cpp');
  await usage(['explode'], /unknown command explode/, 'an unknown command');

  const version = await nanogrid(['--version'], env);
  t.equal(version.code, 0);
  t.match(version.stdout, /^nanogrid \d+\.\d+\.\d+/);
  // A port nothing listens on (fetch refuses the well-known low ones outright).
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
  const port = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const down = await nanogrid(['status', '--url', `http://127.0.0.1:${port}`], env);
  t.equal(down.code, 1);
  t.match(down.stderr, new RegExp(`GET http://127\\.0\\.0\\.1:${port}/status: ECONNREFUSED \\(is the agent running there`), 'the URL and why');
  const noQueue = await nanogrid(['invoke', '--code', 'print(1)', '--function', 'f'], { ...env, SQS_QUEUE_URL: '' });
  t.equal(noQueue.code, 2);
  t.match(noQueue.stderr, /missing --queue or SQS_QUEUE_URL/, 'the missing setting');
  const noRedis = await nanogrid(['result', 'r-1'], env);
  t.equal(noRedis.code, 1);
  t.match(noRedis.stderr, /cannot reach Redis at redis:\/\/127\.0\.0\.1:1/);
});

t.test('npm run nanogrid waits for a setup and build another npm run holds, then runs the CLI from the caller\'s folder', async (t) => {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const lock = join(root, '.nanogrid-prepare.lock');
  // Another npm run (npm run local on a fresh clone) in its setup: it holds the lock.
  const holder = spawn('flock', [lock, 'sleep', '2'], { stdio: 'ignore' });
  let holderDone = false;
  const holderExit = new Promise<void>((r) => holder.on('exit', () => ((holderDone = true), r())));
  t.teardown(() => void holder.kill());
  await new Promise((r) => setTimeout(r, 300));
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-cli-wrap-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const r = await new Promise<{ code: number; out: string; err: string; holderDoneAtExit: boolean }>((resolve) => {
    const c = execFile('bash', [join(root, 'ops/nanogrid.sh'), 'init', 'fn'], { env: { ...process.env, INIT_CWD: dir } }, (err, out, e) => resolve({ code: err ? (err as { code?: number }).code ?? 1 : 0, out, err: e, holderDoneAtExit: holderDone }));
    c.stdin?.end();
  });
  await holderExit;
  t.equal(r.code, 0, r.err);
  t.match(r.err, /waiting for the setup and build an npm run is doing/);
  t.ok(r.holderDoneAtExit, 'it ran once the other one was done');
  t.match(r.out, /^fn: main\.py \(python\)/, 'the folder is the caller\'s');
  t.ok(await readFile(join(dir, 'fn', 'main.py'), 'utf8'));
});
