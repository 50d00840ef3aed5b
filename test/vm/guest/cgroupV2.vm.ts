import { readdir, readFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { INIT_LEAF, prepareContainerCgroup } from '../../../src/container/cgroupV2Scopes.js';
import { locateLimits } from '../../../src/container/cgroupLimits.js';
import { locateFreezer } from '../../../src/container/freezer.js';
import { MemoryMeter } from '../../../src/container/memoryMeter.js';
import { buildZip } from '../../../src/local/client.js';
import { SAMPLES } from '../../../src/local/samples.js';
import type { ThreadPool } from '../../../src/core/threads.js';
import { waitUntil } from '../../../src/core/timeout.js';
import { docker, ONE_PYTHON, startHarness, type Harness } from '../../helpers/harness.js';
import { FILL, hostSecret, parse, PID_EXHAUSTION, PROBE, storedOutputs } from '../../helpers/hostileFunctions.js';

// Runs in the VM suite's guest (ops/vm): the fleet's kind of host, cgroup v2 on kernel 6.1,
// with the real engine. What test/unit/cgroupV2.test.ts, freezer.test.ts and
// cgroupLimits.test.ts check on a fake tree is checked here on the kernel's own.

const MiB = 1024 * 1024;
// The guest has one runtime image: the cpp runtime is pointed at it too (nothing to pull).
const GUEST = { ...ONE_PYTHON, NANOGRID_IMAGE_CPP: 'nanogrid/python:local', NANOGRID_RUNTIMES: 'python,cpp' };
const CGROUP = '/sys/fs/cgroup';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** The cgroup (v2 path) of every process of the host, keyed by pid and start time. */
async function hostCgroups(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const pid of (await readdir('/proc')).filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      const start = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
      const cg = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).trim();
      out.set(`${pid}@${start}`, cg);
    } catch {
      /* exited while read */
    }
  }
  return out;
}

/** A container's own cgroup folder: the scope its init was started in. */
async function scopeOf(id: string): Promise<string> {
  const info = await docker.getContainer(id).inspect();
  return join(CGROUP, `system.slice/docker-${info.Id}.scope`);
}

async function plainContainer(t: { teardown(fn: () => unknown): void }): Promise<{ id: string; pid: number; scope: string }> {
  const c = await docker.createContainer({ Image: 'nanogrid/python:local', Cmd: ['sleep', 'infinity'], HostConfig: { NetworkMode: 'none', Memory: 128 * MiB } });
  t.teardown(() => c.remove({ force: true }));
  await c.start();
  const pid = (await c.inspect()).State.Pid;
  return { id: c.id, pid, scope: await scopeOf(c.id) };
}

async function runAllocation(h: Harness, version: string, bytes: number) {
  const key = `mem/${version}.zip`;
  await h.client.upload(key, await buildZip(SAMPLES.pythonAllocate(bytes, 100)));
  const m = h.message('mem', { s3Key: key, memoryMb: 768, timeoutMs: 120_000 });
  await h.client.send(m);
  return h.client.waitForResult(m.requestId, 240_000);
}

t.test('the guest is the fleet\'s kind of host: kernel 6.1, cgroup v2 only, every controller', async (t) => {
  t.match(release(), /^6\.1\./);
  const controllers = (await readFile(join(CGROUP, 'cgroup.controllers'), 'utf8')).trim().split(' ');
  for (const c of ['cpu', 'io', 'memory', 'pids', 'cpuset']) t.ok(controllers.includes(c), `controller ${c}`);
  t.match((await readFile('/proc/self/cgroup', 'utf8')).trim(), /^0::\/[^\n]*$/, 'one unified hierarchy');
  const info = (await docker.info()) as { CgroupVersion?: string; CgroupDriver?: string };
  t.same([info.CgroupVersion, info.CgroupDriver], ['2', 'systemd']);
});

t.test('a container\'s processes move to a leaf and its children get the memory controller (the kernel\'s tree)', async (t) => {
  const c = await plainContainer(t);
  await prepareContainerCgroup(c.scope);
  t.equal((await readFile(join(c.scope, 'cgroup.procs'), 'utf8')).trim(), '', 'the scope itself holds no process');
  t.equal((await readFile(join(c.scope, INIT_LEAF, 'cgroup.procs'), 'utf8')).trim(), String(c.pid));
  t.match(await readFile(join(c.scope, 'cgroup.subtree_control'), 'utf8'), /\bmemory\b/);
  await prepareContainerCgroup(c.scope);
  t.equal((await readFile(join(c.scope, INIT_LEAF, 'cgroup.procs'), 'utf8')).trim(), String(c.pid), 'idempotent');
});

t.test('a pid the container does not have is moved nowhere: no host process is touched', async (t) => {
  const c = await plainContainer(t);
  const noThreads = { run: () => Promise.reject(new Error('no sampling expected')) } as unknown as ThreadPool;
  const session = await new MemoryMeter(noThreads).begin({ version: 2, dir: c.scope }, 1000);
  t.ok(session.attach, 'memory.peak exists: a run cgroup is used');
  // pid 1 of the container is its init; pid 1 of the host is systemd: 2 is neither here.
  const before = await readFile('/proc/1/cgroup', 'utf8');
  await t.rejects(session.attach!(2), /no process of the container has pid 2/);
  t.equal(await readFile('/proc/1/cgroup', 'utf8'), before, 'the host\'s pid 1 kept its cgroup');
  await session.end();
});

t.test('limits written to the cgroup: memory.max, no swap, cpu.max and cpu.weight', async (t) => {
  const c = await plainContainer(t);
  const limits = await locateLimits(c.pid);
  t.equal(limits?.kind, 'cgroup-v2');
  await limits!.apply({ memoryBytes: 256 * MiB, nanoCpus: 500_000_000, shares: 512 });
  const read = (f: string) => readFile(join(c.scope, f), 'utf8').then((s) => s.trim());
  t.equal(await read('memory.max'), String(256 * MiB));
  t.equal(await read('memory.swap.max'), '0');
  t.match(await read('cpu.max'), /^50000 100000$/);
  t.equal(await read('cpu.weight'), '20');
});

t.test('the freezer freezes and thaws through cgroup.freeze (timed)', async (t) => {
  const c = await plainContainer(t);
  const f = await locateFreezer(c.pid);
  t.equal(f?.kind, 'cgroup-v2');
  const events = async () => /frozen (\d)/.exec(await readFile(join(c.scope, 'cgroup.events'), 'utf8'))?.[1];
  const freezeMs: number[] = [];
  const thawMs: number[] = [];
  for (let i = 0; i < 10; i++) {
    let s = performance.now();
    await f!.freeze();
    freezeMs.push(performance.now() - s);
    t.equal(await events(), '1', `frozen (${i})`);
    s = performance.now();
    await f!.thaw();
    thawMs.push(performance.now() - s);
    t.equal(await events(), '0', `thawed (${i})`);
  }
  t.comment(`measure freeze median ${median(freezeMs).toFixed(2)} ms, thaw median ${median(thawMs).toFixed(2)} ms (10 cycles, cgroup v2)`);
  await f!.freeze();
  t.equal(await f!.killAll(), 1, 'kill while frozen: its one process');
  // On v2 a fatal signal reaches a frozen task at once (v1 kills on thaw): the container
  // exits while frozen, and its scope may already be gone for the thaw (the agent's thaw
  // after a kill ignores that).
  await waitUntil('the container exited while frozen', async () => !(await docker.getContainer(c.id).inspect()).State.Running, { timeoutMs: 30_000 });
  await f!.thaw().catch(() => undefined);
});

t.test('per-run peak on cgroup v2 is exact: 200 MiB reads 200 MiB +- 5 on a container that peaked higher, run after run', async (t) => {
  const h = await startHarness(t, { env: { ...GUEST, NANOGRID_DISK_MB: '64' } });
  const before = await hostCgroups();
  const [container] = await h.containers();
  const scope = await scopeOf(container!.Id);
  const big = await runAllocation(h, 'v1', 400 * MiB);
  t.equal(big.status, 'SUCCESS', big.stderr);
  t.equal(big.peakMemoryMethod, 'cgroup-v2-run-cgroup');
  t.ok(big.peakMemoryFileBytes !== null && big.peakMemoryFileBytes < 64 * MiB, `the run cgroup's file-backed share is read (${big.peakMemoryFileBytes} B)`);
  t.ok(big.peakMemoryBytes! >= 400 * MiB, `the first run peaks above 400 MiB (${(big.peakMemoryBytes! / MiB).toFixed(1)})`);
  const peaks: string[] = [];
  for (let i = 2; i <= 4; i++) {
    const r = await runAllocation(h, `v${i}`, 200 * MiB);
    t.equal(r.status, 'SUCCESS', r.stderr);
    t.equal(r.startKind, 'warm', 'the container that peaked at 400 MiB');
    t.equal(r.peakMemoryMethod, 'cgroup-v2-run-cgroup');
    const mib = r.peakMemoryBytes! / MiB;
    peaks.push(mib.toFixed(1));
    t.ok(Math.abs(mib - 200) <= 5, `peak ${mib.toFixed(1)} MiB within 200 +- 5`);
  }
  t.comment(`measure peaks after a 400 MiB run: ${(big.peakMemoryBytes! / MiB).toFixed(1)} then ${peaks.join(', ')} MiB (cgroup v2 run cgroup)`);
  // The move went to the run's own process: everything outside the container kept its cgroup.
  const after = await hostCgroups();
  let compared = 0;
  for (const [key, cg] of before) {
    if (cg.includes(`docker-${container!.Id}.scope`) || !after.has(key)) continue;
    compared++;
    if (after.get(key) !== cg) t.fail(`host process ${key} moved from ${cg} to ${after.get(key)}`);
  }
  t.ok(compared > 10, `${compared} host processes kept their cgroup`);
  const leftover = (await readdir(scope)).filter((d) => d.startsWith('nanogrid-run-'));
  t.same(leftover, [], 'every run cgroup was removed');
});

t.test('idle containers wait frozen through cgroup.freeze; a run thaws them', async (t) => {
  const h = await startHarness(t, { env: { ...GUEST, NANOGRID_PAUSE_GRACE_MS: '0' } });
  const [c] = await h.containers();
  const scope = await scopeOf(c!.Id);
  const frozen = async () => /frozen (\d)/.exec(await readFile(join(scope, 'cgroup.events'), 'utf8'))?.[1];
  t.equal(await frozen(), '1', 'the prewarm container waits frozen');
  t.equal((await docker.getContainer(c!.Id).inspect()).State.Paused, false, 'not through dockerd');
  const r = await h.invoke('thawed', SAMPLES.pythonHello);
  t.equal(r.status, 'SUCCESS', r.stderr);
  t.equal(r.stdout, 'hello from python\n');
  await h.quiet();
  t.equal(await frozen(), '1', 'frozen again once reset');
  const again = await h.invoke('thawed', undefined);
  t.equal(again.startKind, 'warm');
});

t.test('the sandbox on cgroup v2: the disk limit, and pid exhaustion cannot deny the clean-up', async (t) => {
  const h = await startHarness(t, { env: { ...GUEST, NANOGRID_DISK_MB: '64', S3_USER_DATA_BUCKET: 'user-data' } });
  await h.client.createBucket('user-data');
  const fill = await h.invoke('filler', { 'main.py': FILL }, { timeoutMs: 120_000 });
  t.equal(parse(fill.stdout).errno, 'ENOSPC', 'past the limit a write fails with ENOSPC');
  t.equal(fill.reason, 'DISK_FULL');

  const secret = await hostSecret(t);
  const hog = await h.invoke('pid-hog', { 'main.py': PID_EXHAUSTION(secret) }, { timeoutMs: 15_000 });
  t.equal(hog.status, 'TIMEOUT', hog.stderr);
  t.equal(hog.reason, 'TIMEOUT', 'ended and verified clean with every pid taken');
  t.match(hog.stdout, /fork refused 11/);
  const stored = await storedOutputs(h, `pid-hog/${hog.requestId}/`);
  for (const [key, body] of stored) t.notOk(body.includes(secret.text), `${key}: nothing of the host file`);
  const next = await h.invoke('pid-hog', { 'main.py': PROBE }, { s3Key: 'pid-hog/v2.zip', timeoutMs: 60_000 });
  t.equal(next.status, 'SUCCESS', next.stderr);
  t.equal(next.startKind, 'warm');
  t.equal(next.stdout.trim(), 'left=0 output=False', 'nothing of the run is left');
});

t.test('handler mode on cgroup v2: its first call measured in a cgroup of its own, kept for its later calls (sampled), removed with it', async (t) => {
  const h = await startHarness(t, { env: GUEST });
  const [container] = await h.containers();
  const scope = await scopeOf(container!.Id);
  const runScopes = async () => (await readdir(scope)).filter((d) => d.startsWith('nanogrid-run-'));
  const src = 'import time\nkept = []\ndef handle(event, context):\n    if event == "keep":\n        kept.append(bytearray(64 << 20))\n    if event == "hang":\n        time.sleep(60)\n    return len(kept)\n';
  const files = { 'nanogrid.json': '{"handler": "main.handle"}', 'main.py': src };
  const first = await h.invoke('handler-v2', files, { inputData: 'keep', memoryMb: 256, timeoutMs: 120_000 });
  t.equal(first.status, 'SUCCESS', first.stderr);
  t.equal(first.handler?.initialised, true);
  t.equal(first.peakMemoryMethod, 'cgroup-v2-run-cgroup');
  t.ok(first.peakMemoryBytes! >= 64 * MiB, `the first call, exact: ${(first.peakMemoryBytes! / MiB).toFixed(1)} MiB`);
  t.equal((await runScopes()).length, 1, 'the handler\'s cgroup stays');
  const second = await h.invoke('handler-v2', undefined, { inputData: 'idle', memoryMb: 256, timeoutMs: 120_000 });
  t.equal(second.status, 'SUCCESS', second.stderr);
  t.equal(second.handler?.initialised, false, 'the same process');
  t.equal(second.handler?.returnValue, 1);
  t.equal(second.peakMemoryMethod, 'sampled', 'memory.peak cannot be reset on 6.1: sampled in its cgroup');
  t.ok(second.peakMemoryBytes! >= 64 * MiB, `what the handler holds counts: ${(second.peakMemoryBytes! / MiB).toFixed(1)} MiB`);
  const hang = await h.invoke('handler-v2', undefined, { inputData: 'hang', memoryMb: 256, timeoutMs: 3000 });
  t.equal(hang.status, 'TIMEOUT');
  t.same(await runScopes(), [], 'its cgroup went with it');
  const again = await h.invoke('handler-v2', undefined, { inputData: 'idle', memoryMb: 256, timeoutMs: 120_000 });
  t.equal(again.handler?.initialised, true, 'the next call started it again');
  t.equal(again.peakMemoryMethod, 'cgroup-v2-run-cgroup');
});
