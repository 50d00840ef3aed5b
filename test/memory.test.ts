import t from 'tap';
import { cgroupLimitsOf } from './helpers/cgroupRead.js';
import { MB } from '../src/run/autoTuner.js';
import { buildZip } from '../src/local/client.js';
import { SAMPLES } from '../src/local/samples.js';
import { historyKey } from '../src/sinks/redisKeys.js';
import { functionKey } from '../src/core/invocation.js';
import { waitUntil } from '../src/core/timeout.js';
import { docker, startHarness, type Harness } from './helpers/harness.js';

async function runVersion(h: Harness, functionId: string, version: string, bytes: number, memoryMb: number) {
  const key = `${functionId}/${version}.zip`;
  await h.client.upload(key, await buildZip(SAMPLES.pythonAllocate(bytes, 100)));
  const m = h.message(functionId, { s3Key: key, memoryMb });
  await h.client.send(m);
  return h.client.waitForResult(m.requestId, 60_000);
}

const within = (actual: number, expected: number, pct: number) => Math.abs(actual - expected) <= expected * (pct / 100);

for (const mode of ['exact', 'sampled'] as const) {
  t.test(`peak memory (${mode}) is per invocation and within 10% on a reused container`, async (t) => {
    const h = await startHarness(t, { agent: { forceMemorySampling: mode === 'sampled' } });
    const big = await runVersion(h, 'mem', 'v1', 300 * MB, 512);
    t.equal(big.status, 'SUCCESS', big.stderr);
    t.ok(big.peakMemoryBytes! >= 300 * MB, `first run peaks above 300 MB (${(big.peakMemoryBytes! / MB).toFixed(1)} MB)`);

    const target = 200 * MB;
    const small = await runVersion(h, 'mem', 'v2', target, 512);
    t.equal(small.status, 'SUCCESS', small.stderr);
    t.equal(small.startKind, 'warm', 'the same container as the larger run');
    t.equal(small.peakMemoryMethod, mode === 'exact' ? 'cgroup-v1-max-usage' : 'sampled');
    const peak = small.peakMemoryBytes!;
    t.ok(within(peak, target, 10), `peak ${(peak / MB).toFixed(1)} MB is within 10% of ${target / MB} MB`);
  });
}

t.test("the peak's file-backed share is reported beside it: written files and first reads are page cache", async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=1' } });
  // 64 MB written to /tmp from a small buffer: the page cache is the run's, its own memory is not.
  const writer = { 'main.py': 'b = b"x" * (1 << 20)\nwith open("/tmp/x", "wb") as f:\n    for _ in range(64):\n        f.write(b)\nprint("wrote")\n' };
  const first = await h.invoke('mem-file', writer, { memoryMb: 256 });
  t.equal(first.status, 'SUCCESS', first.stderr);
  const warm = await h.invoke('mem-file', undefined, { memoryMb: 256 });
  t.equal(warm.startKind, 'warm');
  const file = warm.peakMemoryFileBytes!;
  t.ok(file >= 64 * MB && file <= 72 * MB, `the written 64 MB are its file-backed share (${(file / MB).toFixed(1)} MB)`);
  t.ok(warm.peakMemoryBytes! >= file && warm.peakMemoryBytes! - file < 24 * MB, `and in its peak (${(warm.peakMemoryBytes! / MB).toFixed(1)} MB)`);
  // The file is wiped with the workspace: the next run of a hello holds none of it.
  await h.invoke('mem-hello', SAMPLES.pythonHello, { memoryMb: 128 });
  const again = await h.invoke('mem-hello', undefined, { memoryMb: 128 });
  t.equal(again.startKind, 'warm');
  t.ok(again.peakMemoryFileBytes! < 2 * MB, `a warm hello reads almost nothing new (${(again.peakMemoryFileBytes! / MB).toFixed(2)} MB)`);
});

t.test('memoryMb is the container limit; exceeding it is OOM, not a generic failure', async (t) => {
  const h = await startHarness(t);
  const ok = await runVersion(h, 'limits', 'v1', 16 * MB, 96);
  t.equal(ok.status, 'SUCCESS', ok.stderr);
  const containers = await h.containers();
  // The agent writes a container's limits into its cgroup (dockerd's record keeps the create's): read the kernel's.
  const limits = await Promise.all(containers.map(async (c) => cgroupLimitsOf((await docker.getContainer(c.Id).inspect()).State.Pid)));
  t.ok(
    limits.some((l) => l.memory === 96 * MB && l.swapBeyond === 0),
    `the container serving it has a 96 MB limit and no swap beyond it (${JSON.stringify(limits)})`,
  );

  const r = await runVersion(h, 'hog', 'v1', 200 * MB, 64);
  t.equal(r.status, 'OOM');
  t.equal(r.reason, 'OOM');
  t.equal(r.success, false);
  t.equal(r.exitCode, 137);
  t.equal(r.recommendedMemoryMb, 128, 'advice: double the limit');
  t.match(r.optimizationTip, /increase memory/i);
  const after = await h.invoke('after-oom', SAMPLES.pythonHello);
  t.equal(after.status, 'SUCCESS', 'the pool keeps serving after an OOM kill');
});

t.test('peaks are kept per function in Redis and turn into a recommendation', async (t) => {
  const h = await startHarness(t);
  let last;
  for (let i = 0; i < 5; i++) {
    last = await h.invoke('right-size', SAMPLES.pythonHello, { memoryMb: 512 });
    t.equal(last.status, 'SUCCESS');
    if (i < 4) {
      t.equal(last.recommendedMemoryMb, null, `run ${i + 1}: too few runs to recommend`);
      t.match(last.optimizationTip, /not enough to recommend/);
    }
  }
  t.equal(last!.recommendedMemoryMb, 128, 'a tiny function is sized to the 128 MB floor');
  t.match(last!.optimizationTip, /Reduce to about 128 MB, saving about 75%/);
  const key = historyKey(functionKey('right-size', `s3://${h.stack.bucket}/right-size/v1.zip`));
  const history = await h.agent.redis.redis.lrange(key, 0, -1);
  t.equal(history.length, 5, 'five peaks in the function\'s history key (its id and code location)');
  t.ok(history.every((v) => Number(v) > 0));
  // A message naming this function's id with other code is another function: its peaks
  // go elsewhere and its tip says nothing of these runs.
  const other = await h.invoke('right-size', { 'main.py': 'x = bytearray(64 << 20)\nprint(len(x))\n' }, { memoryMb: 512, s3Key: 'attacker/v1.zip' });
  t.equal(other.status, 'SUCCESS', other.stderr);
  t.equal(other.recommendedMemoryMb, null, 'its own history: one run, no recommendation');
  t.equal((await h.agent.redis.redis.lrange(key, 0, -1)).length, 5, 'the function\'s history is untouched');
});

t.test('memory sampling never holds a thread that unzip needs', async (t) => {
  // Two unzip threads, two long sampled runs: with one shared pool the third function's
  // unzip would wait for a long run to end.
  const h = await startHarness(t, {
    env: { NANOGRID_THREADS: '2', NANOGRID_PREWARM: 'python=3,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=3,cpp=1' },
    agent: { forceMemorySampling: true },
  });
  await h.client.uploadZip('long/v1.zip', SAMPLES.pythonSleep(6000));
  const longs = [h.message('long'), h.message('long')];
  for (const m of longs) await h.client.send(m);
  await waitUntil('both long runs running', () => h.agent.status().supervisor.running === 2);
  const quick = await h.invoke('quick-unzip', SAMPLES.pythonHello);
  t.equal(quick.status, 'SUCCESS');
  t.ok(quick.timings.fetchMs! < 1000, `its unzip did not wait for a thread (fetch ${quick.timings.fetchMs} ms)`);
  t.same(await Promise.all(longs.map((m) => h.client.readStored(m.requestId))), [undefined, undefined], 'answered while both sampled runs still run');
  const done = await Promise.all(longs.map((m) => h.client.waitForResult(m.requestId, 30_000)));
  t.same(done.map((r) => r.peakMemoryMethod), ['sampled', 'sampled']);
});
