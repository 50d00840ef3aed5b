import { randomBytes } from 'node:crypto';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { waitUntil } from '../src/core/timeout.js';
import { docker, ONE_PYTHON, startHarness } from './helpers/harness.js';
import { hostSecret, PID_EXHAUSTION, PROBE, PY_SYSCALL, storedOutputs } from './helpers/hostileFunctions.js';

// Hostile functions against the sandbox's second line of defence (docs/sandbox.md), on the
// real engine: each one tries what a determined tenant would.





t.test('pid exhaustion cannot deny the clean-up, and a link swapped into output/ is never followed', async (t) => {
  process.env.NANOGRID_TEST_AGENT_MARKER = `agent-env-${randomBytes(6).toString('hex')}`;
  t.teardown(() => delete process.env.NANOGRID_TEST_AGENT_MARKER);
  const h = await startHarness(t, { env: { ...ONE_PYTHON, S3_USER_DATA_BUCKET: 'user-data' } });
  await h.client.createBucket('user-data');
  const secret = await hostSecret(t);
  const r = await h.invoke('pid-hog', { 'main.py': PID_EXHAUSTION(secret) }, { timeoutMs: 4000 });
  t.equal(r.status, 'TIMEOUT', r.stderr);
  t.equal(r.reason, 'TIMEOUT', 'the run ended and was verified clean: no pid was needed to kill it');
  t.match(r.stdout, /fork refused 11/, 'every pid of the container was taken');
  const threads = Number(/threads (\d+)/.exec(r.stdout)?.[1]);
  t.ok(threads > 400, `${threads} threads`);
  const stored = await storedOutputs(h, `pid-hog/${r.requestId}/`);
  for (const [key, body] of stored) {
    t.notOk(body.includes(secret.text), `${key}: nothing of the host file`);
    t.notOk(body.includes(process.env.NANOGRID_TEST_AGENT_MARKER!), `${key}: nothing of the agent's environment`);
  }
  t.notOk([...stored.keys()].some((k) => /secret|environ|deep\/dir/.test(k)), 'no link was stored');
  t.ok(r.outputErrors.some((e) => /secret: not a regular file/.test(e)), r.outputErrors.join('\n'));
  // A new version of the same function (its folder of the code bucket): the same container.
  const next = await h.invoke('pid-hog', { 'main.py': PROBE }, { s3Key: 'pid-hog/v2.zip' });
  t.equal(next.status, 'SUCCESS', next.stderr);
  t.equal(next.startKind, 'warm', 'the same container serves again');
  t.equal(next.stdout.trim(), 'left=0 output=False', 'nothing of the run is left: no process, no file');
});

t.test('a run not verified clean: its container is frozen and destroyed, its outputs never read', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, S3_USER_DATA_BUCKET: 'user-data' } });
  await h.client.createBucket('user-data');
  await h.client.uploadZip('unclean/v1.zip', { 'main.py': "import os, time\nos.makedirs('output')\nopen('output/report.txt', 'w').write('r')\nprint('wrote', flush=True)\ntime.sleep(60)\n" });
  const m = h.message('unclean', { timeoutMs: 1000 });
  await h.client.send(m);
  await waitUntil('run started', () => h.agent.status().supervisor.running === 1);
  const [c] = await h.containers();
  const runner = (await docker.getContainer(c!.Id).inspect()).State.Pid;
  // The runner stops: it can neither end the run nor vouch for it.
  process.kill(runner, 'SIGSTOP');
  t.teardown(() => {
    try {
      process.kill(runner, 'SIGCONT');
    } catch {
      // gone with its container
    }
  });
  const r = await h.client.waitForResult(m.requestId, 30_000);
  t.equal(r.status, 'FAILED');
  t.equal(r.reason, 'CLEANUP_FAILED');
  t.match(r.stderr, /frozen and destroyed, and its outputs were not read/);
  t.same(r.outputs, [], 'nothing stored');
  t.same([...(await storedOutputs(h, `unclean/${r.requestId}/`)).keys()], []);
  await h.quiet();
  t.notOk((await h.containers()).some((x) => x.Id === c!.Id), 'the container is gone');
});

// Links planted where the agent writes and wipes: nothing outside the workspace is touched.
const PLANT = (dir: string) => `
import os
os.symlink(${JSON.stringify(dir)}, '.nanogrid')
os.symlink(${JSON.stringify(dir)}, '/tmp/t')
os.makedirs('output/sub', exist_ok=True)
os.symlink(${JSON.stringify(dir)}, 'output/sub/host')
os.mkfifo('output/fifo')
print('planted')
`;

t.test('links and FIFOs planted where the agent reads, writes and wipes are never followed or waited on', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, S3_USER_DATA_BUCKET: 'user-data' } });
  await h.client.createBucket('user-data');
  const secret = await hostSecret(t);
  const before = (await readdir(secret.dir)).sort();
  const r = await h.invoke('planter', { 'main.py': PLANT(secret.dir) });
  t.equal(r.status, 'SUCCESS', r.stderr);
  t.ok(r.outputErrors.some((e) => /fifo: not a regular file/.test(e)), 'a FIFO is not opened');
  const next = await h.invoke('planter', { 'main.py': 'import sys\nprint(sys.stdin.read())\n' }, { s3Key: 'planter/v2.zip', inputData: { x: 1 } });
  t.equal(next.status, 'SUCCESS', next.stderr);
  t.equal(next.stdout.trim(), '{"x":1}', 'the input was written in the workspace');
  t.same((await readdir(secret.dir)).sort(), before, 'the host folder is as it was: nothing written, nothing wiped');
  t.equal((await stat(secret.file)).mode & 0o777, 0o600);
});

// Two containers, two functions at once: the first takes what the kernel counts per uid,
// the second must not notice.
const HOG_PER_UID = `
import ctypes, os, signal, time
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while True:
    fd = libc.inotify_init()
    if fd < 0:
        break
    fds.append(fd)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
queued = 0
try:
    while True:
        signal.pthread_kill(__import__('threading').get_ident(), signal.SIGRTMIN)
        queued += 1
        if queued > 100000:
            break
except OSError:
    pass
open('/tmp/ready', 'w').write('1')
print('inotify=%d queued=%d uid=%d' % (len(fds), queued, os.getuid()), flush=True)
time.sleep(6)
`;
const NEIGHBOUR = `
import ctypes, os, pwd, signal
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.inotify_init()
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
try:
    signal.pthread_kill(__import__('threading').get_ident(), signal.SIGRTMIN)
    sig = 'ok'
except OSError as e:
    sig = 'errno %d' % e.errno
print('inotify=%s signal=%s uid=%d user=%s' % ('ok' if fd >= 0 else 'errno %d' % ctypes.get_errno(), sig, os.getuid(), pwd.getpwuid(os.getuid()).pw_name))
`;

t.test('a host uid per container: what the kernel counts per uid is per container', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=2,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1' } });
  await h.client.uploadZip('uid-hog/v1.zip', { 'main.py': HOG_PER_UID });
  await h.client.uploadZip('uid-neighbour/v1.zip', { 'main.py': NEIGHBOUR });
  const hog = h.message('uid-hog', { timeoutMs: 15_000 });
  await h.client.send(hog);
  await waitUntil('the hog holds its limits', () => h.agent.status().supervisor.running === 1, { timeoutMs: 30_000 });
  await new Promise((r) => setTimeout(r, 1500));
  const n = h.message('uid-neighbour');
  await h.client.send(n);
  const neighbour = await h.client.waitForResult(n.requestId, 60_000);
  const hogged = await h.client.waitForResult(hog.requestId, 60_000);
  t.equal(hogged.status, 'SUCCESS', hogged.stderr);
  const a = /inotify=(\d+) queued=(\d+) uid=(\d+)/.exec(hogged.stdout);
  t.ok(a, hogged.stdout);
  t.equal(Number(a![1]), 128, 'the hog took every inotify instance of its uid');
  t.equal(Number(a![2]), 1024, 'and every queued signal its uid may have (sigpending 1024)');
  t.equal(neighbour.status, 'SUCCESS', neighbour.stderr);
  const b = /inotify=(\S+) signal=(\S+) uid=(\d+) user=(\S+)/.exec(neighbour.stdout);
  t.same(b?.slice(1, 3), ['ok', 'ok'], 'the neighbour still gets both');
  t.not(b?.[3], a![3], 'another uid');
  t.equal(b?.[4], 'sandbox', 'its uid has a name in its container');
  for (const uid of [a![3], b![3]]) t.ok(Number(uid) >= 1879048192 && Number(uid) <= 1879113727, `${uid} is from the sandbox range`);
});

// Everything a function might raise or call that it does not need.
const LIMITS = `
import ctypes, errno, os, resource, socket
${PY_SYSCALL}
out = {}
for name in ('CORE', 'NOFILE', 'NPROC', 'SIGPENDING', 'MSGQUEUE'):
    out[name] = resource.getrlimit(getattr(resource, 'RLIMIT_' + name))
try:
    resource.setrlimit(resource.RLIMIT_CORE, (1 << 30, 1 << 30))
    out['raise'] = 'raised'
except (ValueError, OSError) as e:
    out['raise'] = 'refused'
params = ctypes.create_string_buffer(120)
out['io_uring_setup'] = call(425, 8, ctypes.addressof(params))
out['io_uring_enter'] = call(426, 0, 0, 0, 0, 0)
out['ptrace'] = call(101, 0, 0, 0, 0)
out['unshare_user'] = call(272, 0x10000000)
out['keyctl'] = call(250, 0, 0, 0, 0, 0)
out['bpf'] = call(321, 0, 0, 0)
out['clone3'] = call(435, 0, 0)
for fam, name in ((38, 'AF_ALG'), (40, 'AF_VSOCK'), (21, 'AF_RDS')):
    try:
        socket.socket(fam, socket.SOCK_SEQPACKET if fam == 38 else socket.SOCK_STREAM).close()
        out[name] = 'ok'
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.bind(('127.0.0.1', 0))
out['AF_INET'] = 'ok'
pid = os.fork()
if pid == 0:
    ctypes.string_at(0)
_, status = os.waitpid(pid, 0)
out['segv'] = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 'no'
out['cores'] = [f for d in ('.', '/tmp') for f in os.listdir(d) if f.startswith('core')]
print(repr(out))
`;

t.test('limits of our own: no core, nofile and nproc fixed, a seccomp profile without io_uring', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  const r = await h.invoke('limits', { 'main.py': LIMITS });
  t.equal(r.status, 'SUCCESS', r.stderr);
  const out = r.stdout.trim()
    .replace(/^\{|\}$/g, '')
    .split(/, (?=')/)
    .map((kv) => kv.split(': '));
  const got = Object.fromEntries(out.map(([k, v]) => [k!.replace(/'/g, ''), v!.replace(/'/g, '')]));
  t.same(
    [got.CORE, got.NOFILE, got.NPROC, got.SIGPENDING, got.MSGQUEUE],
    ['(0, 0)', '(1024, 1024)', '(512, 512)', '(1024, 1024)', '(819200, 819200)'],
    'set by the agent, soft equal to hard, not dockerd\'s',
  );
  t.equal(got.raise, 'refused', 'a limit cannot be raised');
  for (const call of ['io_uring_setup', 'io_uring_enter', 'ptrace', 'unshare_user', 'keyctl', 'bpf', 'AF_ALG', 'AF_VSOCK', 'AF_RDS']) t.equal(got[call], 'EPERM', `${call}: EPERM`);
  t.equal(got.clone3, 'ENOSYS', 'clone3: ENOSYS, so that the C library falls back to clone');
  t.equal(got.AF_INET, 'ok', 'an ordinary socket works');
  t.equal(got.segv, '11', 'the child died of SIGSEGV');
  t.equal(got.cores, '[]', 'and left no core (core_pattern here is "core", in its folder)');
});

t.test('huge results stay within their byte budget; outputErrors is capped with a count', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, S3_USER_DATA_BUCKET: 'user-data', NANOGRID_RESULT_MAX_BYTES: String(1 << 20), NANOGRID_OUTPUTS_MAX_FILES: '10' } });
  await h.client.createBucket('user-data');
  const control = await h.invoke('control-bytes', { 'main.py': "import sys\nsys.stdout.write('\\x01' * (1 << 20))\nsys.stderr.write('\\x02' * (1 << 20))\n" });
  t.equal(control.status, 'SUCCESS', control.stderr.slice(0, 200));
  const raw = await h.agent.redis.redis.get(`result:${control.requestId}`);
  t.ok(raw && Buffer.byteLength(raw) <= 1 << 20, `the stored result is ${raw?.length} bytes, within 1 MiB (unbounded it would be 12 MiB)`);
  t.same([control.stdoutTruncated, control.stderrTruncated], [true, true], 'both streams marked cut');
  t.ok(control.stdout.length > 60_000 && control.stderr.length > 60_000, 'each kept a share');

  const many = await h.invoke('many-outputs', { 'main.py': "import os\nos.makedirs('output')\nfor i in range(3000):\n    open('output/f%04d' % i, 'w').close()\n" });
  t.equal(many.status, 'SUCCESS', many.stderr);
  t.equal(many.outputs.length, 10);
  t.equal(many.outputErrors.length, 20, 'at most 20 lines');
  t.match(many.outputErrors[0], /holds more than 1000 entries: the rest were not looked at/, 'the walk stops at ten times the files it may store');
  t.match(many.outputErrors.at(-1), /and 972 more not stored \(only the first 19 are listed\)/, 'the last line counts the rest');
});

t.test('an output limit above the runner\'s frame size works; the spool counts against the disk limit', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_OUTPUT_LIMIT_BYTES: String(6 << 20) } });
  const big = await h.invoke('five-mib', { 'main.py': "import sys\nsys.stdout.write('y' * (5 << 20))\n" });
  t.equal(big.status, 'SUCCESS', big.stderr);
  t.equal(big.stdout.length, 5 << 20, 'all 5 MiB, in 1 MiB frames');
  t.equal(big.stdoutTruncated, false);

  const s = await startHarness(t, { env: { ...ONE_PYTHON, S3_USER_DATA_BUCKET: 'user-data', NANOGRID_DISK_MB: '16', NANOGRID_OUTPUT_LIMIT_BYTES: '1024' } });
  await s.client.createBucket('user-data');
  // 17 MB of files first, then 40 MB of stdout: the spool gets only what is left of the
  // container's space (16 MB for the function, and ext4's own share).
  const flood = await s.invoke('spool-flood', { 'main.py': "import sys\nopen('/tmp/fill', 'wb').write(b'f' * (17 << 20))\nfor _ in range(40):\n    sys.stdout.write('z' * (1 << 20))\n" });
  t.equal(flood.stdoutTruncated, true);
  const spooled = flood.outputs.find((o) => o.key.endsWith('stdout.txt'));
  t.ok(spooled, `the stream was kept as far as the disk allowed: ${JSON.stringify([flood.status, flood.outputs, flood.outputErrors])}`);
  t.ok(spooled!.bytes > 1 << 20 && spooled!.bytes < 7 << 20, `${spooled!.bytes} bytes: what the container's space had left, not 40 MB on the host`);
  const hostDirs = join(s.workRoot, s.agentId, 'containers');
  for (const d of await readdir(hostDirs)) {
    for (const f of await readdir(join(hostDirs, d), { recursive: true })) {
      const st = await stat(join(hostDirs, d, String(f))).catch(() => undefined);
      t.ok(!st || !st.isFile() || st.size < 1 << 20, `${d}/${String(f)} on the host disk is small`);
    }
  }
});
