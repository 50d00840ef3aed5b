// The container side of a run alone: a trivial function through one container's runner
// and zygote, straight from the bench (no agent), its cgroup's CPU time per run.
import type Docker from 'dockerode';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DockerContainer } from '../src/container/dockerContainer.js';
import { soloContainerSpec } from '../src/local/soloContainer.js';
import { LABEL_AGENT, WORKDIR } from '../src/core/sandbox.js';
import { SAMPLES } from '../src/local/samples.js';
import { readProcCgroups } from '../src/container/cgroupFiles.js';
import { writeFunction } from './direct.js';
import { childrenOf, commOf, processRssMb, TICK_MS } from './procCpu.js';

export const CONTAINER_SIDE_AGENT = 'bench-cside';

export interface ContainerSideRun {
  runs: number;
  /** CPU ms per run in the container's cgroup (runner, zygote, the child, their kernel time), user and system apart. */
  cpuMsPerRun: { total: number; user: number; system: number };
  /** Wall time per run, p50 (ms), one at a time. */
  wallMsP50: number;
  /** The zygote's resident memory (MB): its fork copies this many pages' tables. */
  zygoteRssMb: number;
}

/**
 * The container side alone: runs of a trivial function through one container's runner
 * and zygote, straight from this process (no agent), one at a time.
 */
export async function measureContainerSide(o: { docker: Docker; image: string; runs: number; workRoot: string; progress: (m: string) => void }): Promise<ContainerSideRun> {
  const c = new DockerContainer(
    o.docker,
    soloContainerSpec(join(o.workRoot, 'container-side'), { image: o.image, name: `ng-bench-cside-${process.pid}`, labels: { [LABEL_AGENT]: CONTAINER_SIDE_AGENT }, zygote: ['python3', '/nanogrid/zygote.py'], memoryMb: 256 }),
  );
  try {
    await c.create();
    await writeFunction(c.workspaceHostPath, SAMPLES.pythonHello);
    const cg = await readProcCgroups(c.pid!);
    const v1 = cg?.v1('cpuacct');
    const usage = async () => {
      if (v1?.path) {
        const dir = join('/sys/fs/cgroup', v1.mount, v1.path);
        const stat = await readFile(join(dir, 'cpuacct.stat'), 'utf8');
        return { total: Number(await readFile(join(dir, 'cpuacct.usage'), 'utf8')) / 1e6, user: Number(/user (\d+)/.exec(stat)?.[1]) * TICK_MS, system: Number(/system (\d+)/.exec(stat)?.[1]) * TICK_MS };
      }
      const s = await readFile(join('/sys/fs/cgroup', cg!.v2!, 'cpu.stat'), 'utf8');
      const n = (k: string) => Number(new RegExp(`${k} (\\d+)`).exec(s)?.[1] ?? NaN) / 1000;
      return { total: n('usage_usec'), user: n('user_usec'), system: n('system_usec') };
    };
    const runner = c.runner!;
    const req = { mode: 'zygote' as const, argv: ['python', 'main.py'], cwd: WORKDIR, uid: c.uid!, gid: c.uid!, env: ['PYTHONUNBUFFERED=1', 'HOME=/tmp'], timeoutMs: 10_000, outputLimitBytes: 1 << 20 };
    for (let i = 0; i < 20; i++) await runner.run(req, 5000);
    const walls: number[] = [];
    const before = await usage();
    for (let i = 0; i < o.runs; i++) {
      const t = performance.now();
      const r = await runner.run(req, 5000);
      walls.push(performance.now() - t);
      if (r.exitCode !== 0) throw new Error(`container side: a run failed: ${r.stderr.slice(0, 300)}`);
    }
    const after = await usage();
    walls.sort((a, b) => a - b);
    let zygoteRssMb = NaN;
    for (const pid of childrenOf(c.pid!)) if (commOf(pid).startsWith('python')) zygoteRssMb = processRssMb(pid);
    o.progress(`container side: ${o.runs} runs`);
    return {
      runs: o.runs,
      cpuMsPerRun: { total: (after.total - before.total) / o.runs, user: (after.user - before.user) / o.runs, system: (after.system - before.system) / o.runs },
      wallMsP50: walls[Math.floor(walls.length / 2)]!,
      zygoteRssMb,
    };
  } finally {
    await c.destroy();
  }
}
