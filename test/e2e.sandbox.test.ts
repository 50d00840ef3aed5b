import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { waitUntil } from '../src/core/timeout.js';
import { cgroupLimitsOf } from './helpers/cgroupRead.js';
import { sharesToWeight } from '../src/container/cgroupLimits.js';
import { unmountUnder } from '../src/container/scratch.js';
import { docker, ONE_PYTHON, startHarness } from './helpers/harness.js';
import { FILL, LOOK, parse } from './helpers/hostileFunctions.js';

const MB = 1024 * 1024;
const exec = promisify(execFile);



// Leaves 48 MB in /tmp and exits 0: charged to memory, it would skew the next run's peak.
const LEAVE = `
open('/tmp/big.bin', 'wb').write(b'y' * (48 << 20))
open('/dev/shm/seg', 'wb').write(b'z' * (1 << 20))
open('mine.txt', 'w').write('left')
print('left')
`;


t.test('writable space: one hard limit on workspace, /tmp and /dev/shm; each run starts clean', async (t) => {
  // No spare file systems: the folder holds exactly the images of the containers there are.
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_DISK_MB: '64', NANOGRID_SCRATCH_SPARE: '0' } });

  const before = await h.invoke('looker', { 'main.py': LOOK, 'data.txt': 'd' });
  t.equal(before.status, 'SUCCESS', before.stderr);
  const fresh = parse(before.stdout);
  t.equal(fresh.work, 'data.txt,main.py', 'the workspace holds only the code');
  t.equal(fresh.tmp, '', 'an empty /tmp');
  t.equal(fresh.shm, '', 'an empty /dev/shm');
  t.ok(Number(fresh.free_mb) >= 64, `the whole limit is free (${fresh.free_mb} MB)`);

  const fill = await h.invoke('filler', { 'main.py': FILL });
  const out = parse(fill.stdout);
  t.equal(out.errno, 'ENOSPC', 'past the limit a write fails with ENOSPC');
  t.ok(Number(out.written_mb) >= 60 && Number(out.written_mb) <= 68, `about the limit was written (${out.written_mb} MB of 64)`);
  t.equal(fill.status, 'FAILED');
  t.equal(fill.reason, 'DISK_FULL', 'the result says why');
  t.ok(fill.diskUsedBytes! >= 60 * MB, `the result carries the bytes used (${fill.diskUsedBytes})`);

  // The host holds only the image, whose size was fixed when the container was made.
  // The evicted container's image goes once the engine removed it (after this cold start).
  const imagesNow = async () => (await readdir(join(h.workRoot, h.agentId, 'scratch'))).filter((f) => f.endsWith('.img'));
  await waitUntil('the evicted container image gone', async () => (await imagesNow()).length === 1, { timeoutMs: 10_000, intervalMs: 50 }).catch(() => undefined);
  const images = await imagesNow();
  t.equal(images.length, 1, 'one container, one image');
  const image = await stat(join(h.workRoot, h.agentId, 'scratch', images[0]!));
  t.ok(image.size < 80 * MB, `the host file never grows past the image (${image.size} bytes)`);
  t.ok(image.blocks * 512 <= image.size + MB, 'and holds no more blocks than its size');

  // Same container (one python slot): nothing of the fill is left, all space is back.
  const after = await h.invoke('looker', undefined);
  t.equal(after.status, 'SUCCESS', after.stderr);
  const clean = parse(after.stdout);
  t.equal(clean.tmp, '');
  t.equal(clean.shm, '');
  t.ok(Number(clean.free_mb) >= 64, `the space is free again (${clean.free_mb} MB)`);
  await h.quiet();
  t.equal((await h.containers()).length, 1, 'one container at a time (an evicted one is removed after the cold start it made room for)');
});

t.test('a warm run of the same function sees nothing the last one wrote, and its peak is its own', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  const code = { 'main.py': `import sys\nif len(sys.argv) > 1: pass\n${LOOK}` };
  const baseline = await h.invoke('slate', code);
  t.equal(baseline.status, 'SUCCESS', baseline.stderr);

  const leave = await h.invoke('slate-writer', { 'main.py': LEAVE });
  t.equal(leave.status, 'SUCCESS', leave.stderr);

  // The writer's container is the one python slot; run the writer again warm, then the looker there.
  const again = await h.invoke('slate-writer', undefined);
  t.equal(again.startKind, 'warm');
  t.equal(again.status, 'SUCCESS', again.stderr);
  const seen = await h.invoke('slate', undefined);
  const s = parse(seen.stdout);
  t.equal(s.work, 'main.py');
  t.equal(s.tmp, '');
  t.equal(s.shm, '');
  t.ok(seen.peakMemoryBytes! < baseline.peakMemoryBytes! + 16 * MB, `the peak is not skewed by files an earlier run left (${seen.peakMemoryBytes} vs ${baseline.peakMemoryBytes})`);
});

t.test('CPU follows memory: the weight and the limit of each container', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_MB_PER_VCPU: '1024', NANOGRID_CPU_FLOOR: '0.1' } });
  const r = await h.invoke('cpu-probe', { 'main.py': 'print(1)' }, { memoryMb: 512 });
  t.equal(r.status, 'SUCCESS', r.stderr);
  const [c] = await h.containers();
  // Written into the cgroup by the agent (dockerd's record keeps the stock container's create).
  const limits = await cgroupLimitsOf((await docker.getContainer(c!.Id).inspect()).State.Pid);
  t.equal(limits.nanoCpus, 0.5e9, '512 MB at 1024 MB per vCPU: half a CPU');
  t.equal(limits.weight, sharesToWeight(512), 'a weight of 512 shares');
});

// IPC objects outlive their processes: System V shared memory (charged to the container),
// message queues and semaphores, and POSIX message queues.
const IPC_LEAVE = `
import ctypes, ctypes.util
libc = ctypes.CDLL(ctypes.util.find_library('c'), use_errno=True)
libc.shmat.restype = ctypes.c_void_p
IPC_PRIVATE, IPC_CREAT = 0, 0o1000
shm = libc.shmget(IPC_PRIVATE, 32 << 20, IPC_CREAT | 0o600)
addr = libc.shmat(shm, None, 0)
ctypes.memset(addr, 1, 32 << 20)
libc.shmdt(ctypes.c_void_p(addr))
msg = libc.msgget(IPC_PRIVATE, IPC_CREAT | 0o600)
sem = libc.semget(IPC_PRIVATE, 1, IPC_CREAT | 0o600)
rt = ctypes.CDLL(ctypes.util.find_library('rt'), use_errno=True)
mq = rt.mq_open(b'/left-behind', 0o100 | 0o2, 0o600, None)
print('made', shm, msg, sem, mq)
`;

const IPC_LOOK = `
import os
def rows(kind):
    return len(open('/proc/sysvipc/' + kind).read().strip().splitlines()) - 1
print('shm=%d msg=%d sem=%d mq=%d' % (rows('shm'), rows('msg'), rows('sem'), len(os.listdir('/dev/mqueue'))))
`;

t.test('IPC objects a run leaves are removed before the next run', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  await h.client.uploadZip('ipc/v2.zip', { 'main.py': IPC_LOOK });
  const before = await h.invoke('ipc', undefined, { s3Key: 'ipc/v2.zip' });
  t.equal(before.stdout.trim(), 'shm=0 msg=0 sem=0 mq=0', before.stderr);
  const made = await h.invoke('ipc', { 'main.py': IPC_LEAVE });
  t.equal(made.status, 'SUCCESS', made.stderr);
  t.match(made.stdout, /^made \d+ \d+ \d+ \d+/, 'every object was created');
  t.notMatch(made.stdout, / -1/, 'none failed');
  const after = await h.invoke('ipc', undefined, { s3Key: 'ipc/v2.zip' });
  t.equal(after.startKind, 'warm', 'the same container');
  t.equal(after.stdout.trim(), 'shm=0 msg=0 sem=0 mq=0');
});

// The mechanism must not depend on the host's file system: the same limit with the work
// folder on XFS (an XFS file system of the test's own, loop-mounted).
t.test('the writable-space limit holds on a worker whose work folder is on XFS', async (t) => {
  const base = await mkdtemp(join(tmpdir(), 'nanogrid-xfs-'));
  const image = join(base, 'xfs.img');
  const root = join(base, 'root');
  await mkdir(root);
  await exec('truncate', ['-s', '2G', image]);
  await exec('mkfs.xfs', ['-q', image]);
  await exec('mount', ['-o', 'loop', image, root]);
  // Registered first, so it runs after the harness's own teardown has stopped the agent.
  t.teardown(async () => {
    await unmountUnder(root, 10_000);
    await exec('umount', [root]).catch(() => exec('umount', ['-l', root]));
    await rm(base, { recursive: true, force: true });
  });
  const { stdout: fstype } = await exec('stat', ['-f', '-c', '%T', root]);
  t.equal(fstype.trim(), 'xfs');
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_DISK_MB: '64', NANOGRID_WORK_ROOT: root } });
  const fill = await h.invoke('xfs-filler', { 'main.py': FILL });
  t.equal(parse(fill.stdout).errno, 'ENOSPC');
  t.equal(fill.reason, 'DISK_FULL');
  const after = await h.invoke('looker', { 'main.py': LOOK });
  t.equal(after.status, 'SUCCESS', after.stderr);
});
