import { readFile } from 'node:fs/promises';
import t from 'tap';
import { waitUntil } from '../src/core/timeout.js';
import { SAMPLES } from '../src/local/samples.js';
import { docker, ONE_PYTHON, startHarness } from './helpers/harness.js';

/** The container's freezer state, read from its cgroup (v1: this machine). */
async function freezerState(containerId: string): Promise<string> {
  const pid = (await docker.getContainer(containerId).inspect()).State.Pid;
  const line = (await readFile(`/proc/${pid}/cgroup`, 'utf8')).split('\n').find((l) => l.split(':')[1] === 'freezer')!;
  return (await readFile(`/sys/fs/cgroup/freezer${line.split(':')[2]}/freezer.state`, 'utf8')).trim();
}

t.test('idle containers are frozen through their cgroup, after the pause grace', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_PAUSE_GRACE_MS: '1500' } });
  const [c] = await h.containers();
  t.equal(await freezerState(c!.Id), 'FROZEN', 'a prewarm container waits frozen');
  t.equal((await docker.getContainer(c!.Id).inspect()).State.Paused, false, 'not through dockerd');
  const python = () => h.agent.status().pools.find((p) => p.runtime === 'python')!;

  const first = await h.invoke('graceful', SAMPLES.pythonHello);
  t.equal(first.startKind, 'prewarm');
  await h.quiet();
  t.equal(python().containers.ready, 1, 'thawed and idle during the grace');
  t.equal(await freezerState(c!.Id), 'THAWED');
  const second = await h.invoke('graceful', undefined);
  t.equal(second.startKind, 'warm', 'taken within the grace');
  t.ok(second.timings.acquireMs! < 20, `no thaw on the way (acquire ${second.timings.acquireMs} ms)`);
  await waitUntil('frozen after the grace', () => python().containers.paused === 1, { timeoutMs: 10_000 });
  t.equal(await freezerState(c!.Id), 'FROZEN');
  const third = await h.invoke('graceful', undefined);
  t.equal(third.startKind, 'warm', 'thawed for the next run');
  t.equal(third.stdout, 'hello from python\n');
});

t.test('with no pause grace a container is frozen as soon as it is reset', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_PAUSE_GRACE_MS: '0' } });
  await h.invoke('no-grace', SAMPLES.pythonHello);
  await h.quiet();
  const pool = h.agent.status().pools.find((p) => p.runtime === 'python')!;
  t.same([pool.containers.ready, pool.containers.paused], [0, 1]);
  t.equal(await freezerState((await h.containers())[0]!.Id), 'FROZEN');
});

t.test('dockerd pause remains available as the freezer', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_FREEZER: 'docker', NANOGRID_PAUSE_GRACE_MS: '0' } });
  const [c] = await h.containers();
  t.equal((await docker.getContainer(c!.Id).inspect()).State.Paused, true, 'paused by dockerd');
  const r = await h.invoke('docker-freezer', SAMPLES.pythonHello);
  t.equal(r.status, 'SUCCESS');
  await h.quiet();
  t.equal((await docker.getContainer(c!.Id).inspect()).State.Paused, true, 'paused again');
});

t.test('a frozen container is removed cleanly at stop', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  t.equal(await freezerState((await h.containers())[0]!.Id), 'FROZEN');
  await h.agent.stop();
  t.same(await h.containers(), []);
});
