import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { waitUntil } from '../../../src/core/timeout.js';
import { anatomySplitLines, anatomySummary, anatomyTable, measureAnatomy, type AnatomyRun } from '../../../bench/anatomy.js';
import { docker } from '../../helpers/harness.js';

// Runs in the VM suite's guest: crun against runc as Docker's OCI runtime, on the fleet's
// kind of host (cgroup v2; this machine's hybrid cgroups make crun refuse to run). The
// anatomy cell takes a cold start through the agent's own container code (scratch stock,
// create, start, runner, a run, the zygote, freeze through cgroup v2, kill, remove,
// recycle) with each runtime, side by side: that it completes is the test, the figures
// are measures. Under QEMU's software emulation the times are those of an emulated CPU:
// compare the two runtimes with each other, not with the host's.

const run = promisify(execFile);
const DAEMON_JSON = '/etc/docker/daemon.json';
const N = Number(process.env.NANOGRID_VM_ANATOMY_N ?? 4);

const offered = async () => Object.keys(((await docker.info()) as { Runtimes?: Record<string, unknown> }).Runtimes ?? {});

// The guest's engine runs with its defaults (as the fleet's): crun is registered for this
// file only, and dockerd reloads its runtimes on SIGHUP (no restart).
async function reloadDockerd(): Promise<void> {
  const { stdout } = await run('pidof', ['dockerd']);
  process.kill(Number(stdout.trim().split(/\s+/)[0]), 'SIGHUP');
}

t.before(async () => {
  await writeFile(DAEMON_JSON, JSON.stringify({ runtimes: { crun: { path: '/usr/bin/crun' } } }));
  await reloadDockerd();
  await waitUntil('dockerd offers crun', async () => (await offered()).includes('crun'), { timeoutMs: 30_000, intervalMs: 200 });
});
t.teardown(async () => {
  await rm(DAEMON_JSON, { force: true });
  await reloadDockerd().catch(() => undefined);
});

t.test('a cold start through the agent\'s container code runs with runc and with crun, measured side by side', async (t) => {
  t.ok((await offered()).includes('crun'), 'crun is registered with dockerd');
  const { stdout } = await run('crun', ['--version']);
  t.comment(`measure ${stdout.split('\n')[0]}`);
  const workRoot = await mkdtemp(join(tmpdir(), 'nanogrid-anatomy-'));
  t.teardown(() => rm(workRoot, { recursive: true, force: true }));
  const runs: AnatomyRun[] = [];
  for (const ociRuntime of ['runc', 'crun']) {
    const r = await measureAnatomy({ docker, image: 'nanogrid/python:local', workRoot, n: N, ociRuntime, progress: (m) => t.comment(m) });
    t.equal(r.steps['first run (exec)']?.cpuMs.length, N, `${ociRuntime}: every cold start ran its function`);
    t.equal(r.steps['remove']?.cpuMs.length, N, `${ociRuntime}: and was removed`);
    runs.push(r);
  }
  for (const line of [...anatomyTable(runs), ...anatomySplitLines(runs), ...anatomySummary(runs)]) t.comment(`measure ${line}`);
  const left = await docker.listContainers({ all: true, filters: { label: ['nanogrid.agent=bench-anatomy'] } });
  t.same(left, [], 'no container left');
});
