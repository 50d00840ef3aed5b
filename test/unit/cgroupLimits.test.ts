import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { locateLimits, sharesToWeight, v1WriteOrder } from '../../src/container/cgroupLimits.js';

// The limits of a container whose OCI runtime cannot update them (runsc), written into its
// cgroup: against fake trees of both versions (this machine is v1; the VM suite has v2).
async function fakeTree(t: { teardown(fn: () => unknown): void }, cgroupLine: string) {
  const root = await mkdtemp(join(tmpdir(), 'nanogrid-cgl-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'proc', '42'), { recursive: true });
  await writeFile(join(root, 'proc', '42', 'cgroup'), cgroupLine);
  return { root, opts: { proc: join(root, 'proc'), cgroup: join(root, 'cg') } };
}
const read = (f: string) => readFile(f, 'utf8');

t.test('cgroup v1: memory with memsw, and the CPU quota on the period the cgroup has', async (t) => {
  const { root, opts } = await fakeTree(t, '9:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/\n');
  const mem = join(root, 'cg', 'memory', 'docker', 'abc');
  const cpu = join(root, 'cg', 'cpu,cpuacct', 'docker', 'abc');
  await mkdir(mem, { recursive: true });
  await mkdir(cpu, { recursive: true });
  await writeFile(join(mem, 'memory.limit_in_bytes'), '134217728\n');
  await writeFile(join(mem, 'memory.memsw.limit_in_bytes'), '134217728\n');
  await writeFile(join(cpu, 'cpu.cfs_period_us'), '50000\n');
  const l = await locateLimits(42, opts);
  t.equal(l?.kind, 'cgroup-v1', 'v1 wins on a hybrid host (its 0::/ line names the root)');
  await l!.apply({ memoryBytes: 256 * 2 ** 20, nanoCpus: 500_000_000, shares: 512 });
  t.equal(await read(join(mem, 'memory.limit_in_bytes')), String(256 * 2 ** 20));
  t.equal(await read(join(mem, 'memory.memsw.limit_in_bytes')), String(256 * 2 ** 20), 'swap equal to memory: none beyond it');
  t.equal(await read(join(cpu, 'cpu.cfs_quota_us')), '25000', 'half a CPU of a 50 ms period');
  t.equal(await read(join(cpu, 'cpu.shares')), '512');
  await l!.apply({ memoryBytes: 64 * 2 ** 20, nanoCpus: 0, shares: 1024 });
  t.equal(await read(join(cpu, 'cpu.cfs_quota_us')), '-1', 'no quota');
  t.equal(await read(join(mem, 'memory.limit_in_bytes')), String(64 * 2 ** 20));
});

t.test('cgroup v1 without swap accounting: the limit alone', async (t) => {
  const { root, opts } = await fakeTree(t, '3:cpu:/x\n2:memory:/x\n');
  const mem = join(root, 'cg', 'memory', 'x');
  await mkdir(mem, { recursive: true });
  await mkdir(join(root, 'cg', 'cpu', 'x'), { recursive: true });
  await writeFile(join(mem, 'memory.limit_in_bytes'), '1000');
  await (await locateLimits(42, opts))!.apply({ memoryBytes: 2000, nanoCpus: 0, shares: 2 });
  t.equal(await read(join(mem, 'memory.limit_in_bytes')), '2000');
  await t.rejects(read(join(mem, 'memory.memsw.limit_in_bytes')), 'no memsw file is made');
});

t.test('v1 order: memsw raised first and lowered last, so limit <= memsw holds throughout', async (t) => {
  t.same(v1WriteOrder(100, 200), ['memsw', 'limit']);
  t.same(v1WriteOrder(200, 100), ['limit', 'memsw']);
  t.same(v1WriteOrder(100, 100), ['limit', 'memsw']);
});

t.test('cgroup v2: memory.max, no swap, cpu.max and cpu.weight', async (t) => {
  const { root, opts } = await fakeTree(t, '0::/system.slice/docker-abc.scope\n');
  const dir = join(root, 'cg', 'system.slice', 'docker-abc.scope');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'memory.swap.max'), 'max');
  const l = await locateLimits(42, opts);
  t.equal(l?.kind, 'cgroup-v2');
  await l!.apply({ memoryBytes: 256 * 2 ** 20, nanoCpus: 1_500_000_000, shares: 1024 });
  t.equal(await read(join(dir, 'memory.max')), String(256 * 2 ** 20));
  t.equal(await read(join(dir, 'memory.swap.max')), '0');
  t.equal(await read(join(dir, 'cpu.max')), '150000 100000');
  t.equal(await read(join(dir, 'cpu.weight')), String(sharesToWeight(1024)));
  await l!.apply({ memoryBytes: 1, nanoCpus: 0, shares: 2 });
  t.equal(await read(join(dir, 'cpu.max')), 'max 100000');
});

t.test('shares to weight as runc converts them, clamped', async (t) => {
  t.equal(sharesToWeight(2), 1);
  t.equal(sharesToWeight(262_144), 10_000);
  t.equal(sharesToWeight(1024), 39);
  t.equal(sharesToWeight(0), 1);
  t.equal(sharesToWeight(1e9), 10_000);
});

t.test('no cgroup found: null, never a guess', async (t) => {
  t.equal(await locateLimits(999_999_999, { proc: '/nonexistent' }), null);
  const { opts } = await fakeTree(t, '0::/\n');
  t.equal(await locateLimits(42, opts), null, 'the root cgroup is never written');
});
