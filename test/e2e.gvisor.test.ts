import { readFile } from 'node:fs/promises';
import t from 'tap';
import { Agent } from '../src/agent.js';
import { LOCAL_CREDENTIALS, localAgentConfig } from '../src/local/agentConfig.js';
import { startLocalStack } from '../src/local/stack.js';
import { silentLogger } from '../src/core/log.js';
import { docker, ONE_PYTHON, startHarness } from './helpers/harness.js';
import { PY_SYSCALL } from './helpers/hostileFunctions.js';

// The gVisor tier (NANOGRID_OCI_RUNTIME=python=runsc): the same runner, limits and clean-up,
// with the function's system calls answered by gVisor's kernel in user space.
const PROBE = `
import os
mine = {os.getpid(), os.getppid(), 1}
left = [p for p in os.listdir('/proc') if p.isdigit() and int(p) not in mine and os.stat('/proc/' + p).st_uid == os.getuid()]
print('kernel=%s uid=%d left=%d tmp=%s' % (open('/proc/version').read().split()[2], os.getuid(), len(left), ','.join(os.listdir('/tmp'))))
`;
const DAEMON = "import os, subprocess, time\nsubprocess.Popen(['sleep', '600'], start_new_session=True)\nopen('/tmp/left', 'w').write('x')\nos.makedirs('output')\nopen('output/r.txt', 'w').write('r')\nprint('daemonized')\n";

t.test('python in gVisor: runs, warm, timed out, cleaned up like any container', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_OCI_RUNTIME: 'python=runsc' } });
  const [c] = await h.containers();
  t.equal((await docker.getContainer(c!.Id).inspect()).HostConfig.Runtime, 'runsc', 'the pool\'s containers run in runsc');
  const first = await h.invoke('gv', { 'main.py': PROBE });
  t.equal(first.status, 'SUCCESS', first.stderr);
  const hostKernel = (await import('node:os')).release();
  const kernel = /kernel=(\S+)/.exec(first.stdout)?.[1];
  t.not(kernel, hostKernel, `the function sees gVisor's kernel (${kernel}), not the host's (${hostKernel})`);
  t.ok(Number(/uid=(\d+)/.exec(first.stdout)?.[1]) >= 1879048192, 'as a uid of its own');
  const daemon = await h.invoke('gv', { 'main.py': DAEMON }, { s3Key: 'gv/v2.zip' });
  t.equal(daemon.status, 'SUCCESS', daemon.stderr);
  const after = await h.invoke('gv', undefined);
  t.equal(after.startKind, 'warm');
  t.match(after.stdout, /left=0 tmp=$/m, 'the daemon was killed and /tmp emptied');
  const slow = await h.invoke('gv', { 'main.py': 'while True: pass\n' }, { s3Key: 'gv/v3.zip', timeoutMs: 1500 });
  t.equal(slow.status, 'TIMEOUT');
  t.equal(slow.reason, 'TIMEOUT', 'killed and verified clean');
  t.ok(first.peakMemoryBytes === null || first.peakMemoryBytes > 0, 'a peak, where the sandbox\'s cgroup gives one');
});

t.test('python in gVisor: a stock container serves a run of another memory size (runsc has no update: the cgroup is written)', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_OCI_RUNTIME: 'python=runsc' } });
  await h.quiet();
  const [c] = await h.containers();
  const id = c!.Id;
  const readLimit = async () => {
    const pid = (await docker.getContainer(id).inspect()).State.Pid;
    const line = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').find((l) => l.split(':')[1]?.split(',').includes('memory'));
    return Number((await readFile(`/sys/fs/cgroup/memory${line!.split(':')[2]}/memory.limit_in_bytes`, 'utf8')).trim());
  };
  t.equal(await readLimit(), 128 * 2 ** 20, 'the stock is made at the default memory');
  const r = await h.invoke('gv-mem', { 'main.py': 'print("ok")\n' }, { memoryMb: 256 });
  t.equal(r.status, 'SUCCESS', r.stderr);
  t.equal(r.startKind, 'prewarm', 'served by the stock container, not retired for a cold one');
  t.equal(await readLimit(), 256 * 2 ** 20, "the run's memory is the sandbox's limit on the host");
  const again = await h.invoke('gv-mem', undefined, { memoryMb: 192 });
  t.equal(again.startKind, 'warm');
  t.equal(await readLimit(), 192 * 2 ** 20, 'and follows each run, down too');
  t.equal((await h.containers()).length, 1, 'no container was replaced');
});

// A kernel in user space answers most calls itself; the container's own profile still
// refuses what a function does not need (runsc --oci-seccomp, ops/setup.sh).
const SECCOMP = `
import ctypes, errno
${PY_SYSCALL}
params = ctypes.create_string_buffer(120)
print(' '.join('%s=%s' % kv for kv in (('io_uring_setup', call(425, 8, ctypes.addressof(params))), ('ptrace', call(101, 0, 0, 0, 0)), ('keyctl', call(250, 0, 0, 0, 0, 0)), ('unshare_user', call(272, 0x10000000)), ('getpid', call(39)))))
`;

t.test('python in gVisor: the seccomp profile of our own holds inside the sandbox too', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_OCI_RUNTIME: 'python=runsc' } });
  const r = await h.invoke('gv-sec', { 'main.py': SECCOMP });
  t.equal(r.status, 'SUCCESS', r.stderr);
  for (const call of ['io_uring_setup', 'ptrace', 'keyctl', 'unshare_user']) t.match(r.stdout, new RegExp(`${call}=EPERM`), `${call}: EPERM`);
  t.match(r.stdout, /getpid=ok/, 'an ordinary call works');
});

t.test('an OCI runtime dockerd does not offer stops the agent at start, naming the setting', async (t) => {
  const stack = await startLocalStack();
  t.teardown(() => stack.stop());
  const config = localAgentConfig(stack, 'gv-missing', { NANOGRID_OCI_RUNTIME: 'python=kata', NANOGRID_WORK_ROOT: '/tmp/nanogrid-gv-missing' });
  const agent = new Agent({ config, log: silentLogger, credentials: LOCAL_CREDENTIALS });
  t.teardown(() => agent.stop());
  await t.rejects(agent.start(), /NANOGRID_OCI_RUNTIME asks for kata for python, but dockerd offers .*runsc/);
});
