import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LABEL_AGENT, WORKDIR } from '../src/core/sandbox.js';
import { soloContainerSpec } from '../src/local/soloContainer.js';
import { hostPidFor, procStatus } from '../src/container/hostPid.js';
import { MemoryMeter } from '../src/container/memoryMeter.js';
import { sleep } from '../src/core/timeout.js';
import { DockerContainer } from '../src/container/dockerContainer.js';
import { docker, uniqueId } from './helpers/harness.js';

// The runner's hold (what the cgroup v2 meter relies on), on the real engine: the run's
// first process waits for the agent's go before it runs anything.
for (const zygote of [true, false]) {
  t.test(`a held run starts only when released (${zygote ? 'zygote' : 'exec'})`, async (t) => {
    const root = await mkdtemp(join(tmpdir(), 'nanogrid-hold-'));
    const c = new DockerContainer(
      docker,
      soloContainerSpec(root, { image: 'nanogrid/python:local', name: uniqueId('ng-hold'), labels: { [LABEL_AGENT]: uniqueId('hold') }, zygote: zygote ? ['python3', '/nanogrid/zygote.py'] : null }),
    );
    // The scratch file system is mounted under root: unmount it before removing root.
    t.teardown(async () => {
      await c.destroy();
      await rm(root, { recursive: true, force: true });
    });
    await c.create();
    t.equal(c.runner!.zygote, zygote ? 'ready' : 'off');
    const req = {
      mode: zygote ? ('zygote' as const) : ('exec' as const),
      argv: zygote ? ['python', '-'] : ['python3', '-c', 'import time; print(time.time())'],
      cwd: '/',
      uid: c.uid!,
      gid: c.uid!,
      env: [],
      timeoutMs: 5000,
      outputLimitBytes: 1024,
    };
    if (zygote) req.argv = ['python', `${WORKDIR}/../nanogrid-missing.py`];
    let heldFor = 0;
    const r = await c.runner!.run(
      {
        ...req,
        hold: async () => {
          const t0 = performance.now();
          await sleep(300);
          heldFor = performance.now() - t0;
        },
      },
      5000,
    );
    // A 300 ms timer can fire a hair early against a millisecond clock.
    t.ok(heldFor >= 295, `held for ${heldFor} ms`);
    t.ok(r.durationMs >= 300, `the run's time includes the hold (${r.durationMs} ms)`);
    t.equal(r.clean, true);
    if (zygote) t.match(r.stderr, /can't open file/, 'then it ran');
    else t.match(r.stdout, /^\d+\.\d+\n$/, 'then it ran');
  });
}

// cgroup v2 moves the held process into the run's own cgroup by its host pid: the runner
// names it by its pid in the container's namespace, which on the host is another process.
// Here (cgroup v1) the same lookup runs on the container's memory cgroup: the pid it finds
// must be the run's own process, never whatever the host has under the runner's number.
t.test('the held process is found by its host pid (NSpid), not by the number the runner sees', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'nanogrid-hostpid-'));
  const c = new DockerContainer(docker, soloContainerSpec(root, { image: 'nanogrid/python:local', name: uniqueId('ng-hostpid'), labels: { [LABEL_AGENT]: uniqueId('hostpid') }, zygote: ['python3', '/nanogrid/zygote.py'] }));
  t.teardown(async () => {
    await c.destroy();
    await rm(root, { recursive: true, force: true });
  });
  await c.create();
  const cg = await new MemoryMeter(undefined as never).locate(c.pid!);
  t.ok(cg, 'the container\'s memory cgroup');
  let found: { nsPid: number; hostPid: number | null; status: ReturnType<typeof procStatus>; sameNumber: ReturnType<typeof procStatus> } | undefined;
  const r = await c.runner!.run(
    {
      mode: 'zygote',
      argv: ['python', `${WORKDIR}/../nanogrid-missing.py`],
      cwd: '/',
      uid: c.uid!,
      gid: c.uid!,
      env: [],
      timeoutMs: 5000,
      outputLimitBytes: 1024,
      hold: async (nsPid) => {
        const hostPid = hostPidFor(nsPid, join(cg!.dir, 'cgroup.procs'));
        found = { nsPid, hostPid, status: hostPid ? procStatus(hostPid) : null, sameNumber: procStatus(nsPid) };
      },
    },
    5000,
  );
  t.equal(r.clean, true);
  t.ok(found && found.hostPid !== null, 'found');
  t.not(found!.hostPid, found!.nsPid, 'the host pid is not the number the runner saw');
  t.equal(found!.status?.nsPids.at(-1), found!.nsPid, 'its innermost NSpid is the one the runner named');
  t.equal(found!.status?.nsPids[0], found!.hostPid);
  t.equal(found!.status?.uid, 0, 'the zygote\'s child, still root while it waits to become the sandbox user');
  t.not(JSON.stringify(found!.sameNumber?.nsPids), JSON.stringify(found!.status?.nsPids), 'the host process with the runner\'s number (if any) is another one');
  t.equal(hostPidFor(999_999, join(cg!.dir, 'cgroup.procs')), null, 'a pid the container does not have names nothing');
});
