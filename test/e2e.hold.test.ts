import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { LABEL_AGENT, WORKDIR } from '../src/core/sandbox.js';
import { soloContainerSpec } from '../src/local/soloContainer.js';
import { sleep } from '../src/core/timeout.js';
import { DockerContainer } from '../src/pool/dockerContainer.js';
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
