import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { INIT_LEAF, prepareContainerCgroup, RunScope } from '../../src/container/cgroupV2Scopes.js';
import { MemoryMeter, type CgroupRef } from '../../src/container/memoryMeter.js';
import type { ThreadPool } from '../../src/core/threads.js';

// This machine is cgroup v1 (and stays so): the v2 method is tested on a fake cgroup tree
// laid out as the kernel's, with the test writing what the kernel would.
async function containerCgroup(t: { teardown(fn: () => unknown): void }, withPeak = true) {
  const root = await mkdtemp(join(tmpdir(), 'nanogrid-v2-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const dir = join(root, 'system.slice', 'docker-abc.scope');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'cgroup.procs'), '4101\n4102\n');
  await writeFile(join(dir, 'cgroup.subtree_control'), '');
  await writeFile(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n');
  if (withPeak) await writeFile(join(dir, 'memory.peak'), '999999999\n');
  return dir;
}

const noThreads = { run: () => Promise.reject(new Error('no sampling expected')) } as unknown as ThreadPool;

/**
 * A fake /proc: each host pid with its NSpid line (host pid first, then its pid in the
 * container's namespace) and its real uid.
 */
async function fakeProc(t: { teardown(fn: () => unknown): void }, procs: Record<number, { ns: number[]; uid?: number }>) {
  const root = await mkdtemp(join(tmpdir(), 'nanogrid-proc-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  for (const [pid, p] of Object.entries(procs)) {
    await mkdir(join(root, pid));
    await writeFile(join(root, pid, 'status'), `Name:\tpython3\nUid:\t${p.uid ?? 1879048200}\t${p.uid ?? 1879048200}\t0\t0\nNSpid:\t${p.ns.join('\t')}\n`);
  }
  return root;
}

t.test('the container\'s own processes move to a leaf; children get the memory controller', async (t) => {
  const dir = await containerCgroup(t);
  await prepareContainerCgroup(dir);
  // The fake file keeps only the last write; the kernel appends: both pids were written.
  t.equal((await readFile(join(dir, INIT_LEAF, 'cgroup.procs'), 'utf8')).trim(), '4102');
  t.equal(await readFile(join(dir, 'cgroup.subtree_control'), 'utf8'), '+memory');
  await writeFile(join(dir, 'cgroup.subtree_control'), 'memory');
  await prepareContainerCgroup(dir);
  t.equal(await readFile(join(dir, 'cgroup.subtree_control'), 'utf8'), 'memory', 'idempotent');
});

t.test('each run is measured in a cgroup of its own: its peak, not the container\'s', async (t) => {
  const dir = await containerCgroup(t);
  // The runner reports pids of the container's namespace: 7 and 8 there are 7301 and 7302 here.
  const proc = await fakeProc(t, { 4101: { ns: [4101, 1], uid: 0 }, 4102: { ns: [4102, 2], uid: 0 }, 7301: { ns: [7301, 7] }, 7302: { ns: [7302, 8] } });
  const meter = new MemoryMeter(noThreads, { procRoot: proc });
  const cg: CgroupRef = { version: 2, dir };
  const session = await meter.begin(cg, 1000);
  t.ok(session.attach, 'the runner must hold the first process for the move');
  t.ok(cg.prepared, 'the container cgroup was prepared once');
  await writeFile(join(dir, INIT_LEAF, 'cgroup.procs'), '4101\n4102\n7301\n');
  await session.attach!(7);
  const runDir = join(dir, 'nanogrid-run-1');
  t.equal(await readFile(join(runDir, 'cgroup.procs'), 'utf8'), '7301', 'the host pid of the run\'s process is moved, not the number the runner saw');
  // What the kernel would show for this run: its own high-water mark and one OOM kill.
  await writeFile(join(runDir, 'memory.peak'), '52428800\n');
  await writeFile(join(runDir, 'memory.events'), 'oom 1\noom_kill 1\n');
  await writeFile(join(runDir, 'memory.stat'), 'anon 40000000\nfile 12582912\nkernel 100\nfile_mapped 4096\n');
  const m = await session.end();
  t.same(m, { peakBytes: 52428800, method: 'cgroup-v2-run-cgroup', oomKilled: true, fileBytes: 12582912 }, "the run cgroup's `file` is its file-backed share");
  const second = await meter.begin(cg, 1000);
  await writeFile(join(dir, INIT_LEAF, 'cgroup.procs'), '4101\n4102\n7302\n');
  await second.attach!(8);
  t.equal(await readFile(join(dir, 'nanogrid-run-2', 'cgroup.procs'), 'utf8'), '7302', 'a fresh cgroup for the next run');
});

t.test('a pid the container does not have is moved nowhere: no host process is touched', async (t) => {
  const dir = await containerCgroup(t);
  // 9 is a pid of the host too (a daemon), but no process of the container has it.
  const proc = await fakeProc(t, { 4101: { ns: [4101, 1], uid: 0 }, 9: { ns: [9], uid: 0 }, 7301: { ns: [7301, 7] } });
  const session = await new MemoryMeter(noThreads, { procRoot: proc }).begin({ version: 2, dir }, 1000);
  await writeFile(join(dir, INIT_LEAF, 'cgroup.procs'), '4101\n7301\n');
  await t.rejects(session.attach!(9), /no process of the container has pid 9/);
  await t.rejects(readFile(join(dir, 'nanogrid-run-1', 'cgroup.procs'), 'utf8'), { code: 'ENOENT' }, 'nothing was written');
  t.same(await session.end(), { peakBytes: null, method: null, oomKilled: false }, 'and the run has no figure');
});

t.test('a run whose process was never moved in has no figure (never the container\'s)', async (t) => {
  const dir = await containerCgroup(t);
  const session = await new MemoryMeter(noThreads).begin({ version: 2, dir }, 1000);
  t.same(await session.end(), { peakBytes: null, method: null, oomKilled: false });
});

t.test('without memory.peak (kernel < 5.19) it samples, on the sampler\'s pool', async (t) => {
  const dir = await containerCgroup(t, false);
  await writeFile(join(dir, 'memory.current'), '1000');
  const calls: string[] = [];
  const sampler = {
    run: async (task: { stop: SharedArrayBuffer }, file: string) => {
      calls.push(file);
      Atomics.store(new Int32Array(task.stop), 1, 1);
      return { peakBytes: 4096, samples: 3 };
    },
  } as unknown as ThreadPool;
  const session = await new MemoryMeter(sampler).begin({ version: 2, dir }, 1000);
  t.equal(session.attach, undefined, 'nothing to hold');
  const m = await session.end();
  t.same([m.peakBytes, m.method, calls], [3096, 'sampled', ['memorySampler']], 'the peak above what the container held before the run');
});

t.test('RunScope.remove waits for a busy cgroup and gives up on other errors', async (t) => {
  const dir = await containerCgroup(t);
  const scope = await RunScope.create(dir, 'nanogrid-run-x');
  t.equal(await scope.remove(), true, 'an empty cgroup goes');
  t.equal(await scope.remove(), true, 'gone already is fine');
  const full = await RunScope.create(dir, 'nanogrid-run-y');
  await writeFile(join(full.dir, 'file'), 'x');
  t.equal(await full.remove(), false, 'a directory that is not empty is not a cgroup to wait for');
});
