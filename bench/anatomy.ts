// The anatomy of a cold start: each step's wall time and machine CPU, one container at a
// time on a quiet machine, through the same DockerContainer and scratch code the pools use,
// then the engine's own floor (a bare container's create + start + remove) beside it.
import Docker from 'dockerode';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DockerContainer, type ContainerStep } from '../src/container/dockerContainer.js';
import { Scratch } from '../src/container/scratch.js';
import { ScratchStock } from '../src/container/scratchStock.js';
import { soloContainerSpec } from '../src/local/soloContainer.js';
import { LABEL_AGENT, WORKDIR } from '../src/core/sandbox.js';
import { SAMPLES } from '../src/local/samples.js';
import { silentLogger } from '../src/core/log.js';
import { writeFunction } from './direct.js';
import { cpuSplitMs, daemonPids, splitDelta, SPLIT_PARTS, type CpuSplit } from './procCpu.js';

export const ANATOMY_AGENT = 'bench-anatomy';

/** Steps in the order a cold start (and the eviction that made room for it) takes them. */
export const ANATOMY_STEPS = [
  'scratch: mkfs + mount (no stock)',
  'scratch: taken from the stock',
  'create',
  'start',
  'inspect',
  'connect',
  'first run (exec)',
  'zygote start',
  'run (zygote)',
  'freeze',
  'kill (frozen)',
  'remove',
  'scratch: recycle (off the path)',
  'scratch: unmount + delete (no stock)',
] as const;
export type AnatomyStep = (typeof ANATOMY_STEPS)[number];

/** The floor: a bare container (no binds, limits or runner) created, started and removed by the engine. */
export const FLOOR_STEPS = ['bare: create', 'bare: start', 'bare: remove'] as const;

export interface AnatomyRun {
  ociRuntime: string;
  n: number;
  /** Per step: wall ms and machine CPU ms of each sample. */
  steps: Record<string, { wallMs: number[]; cpuMs: number[] }>;
  /** Per step, the CPU by process summed over the samples (10 ms ticks per process: only sums over many samples mean anything). */
  split?: Record<string, CpuSplit>;
}

const STEP_NAMES: Partial<Record<ContainerStep, AnatomyStep>> = {
  scratch: 'scratch: taken from the stock',
  create: 'create',
  start: 'start',
  inspect: 'inspect',
  connect: 'connect',
  kill: 'kill (frozen)',
  remove: 'remove',
};

/**
 * CPU time of every task on the machine, ns: the root cgroup's counter (v1 cpuacct, v2
 * cpu.stat), which counts kernel threads too (the loop device's, dockerd's, the shims')
 * and has none of /proc/stat's 10 ms ticks.
 */
export function machineCpuNs(): number {
  try {
    return Number(readFileSync('/sys/fs/cgroup/cpuacct/cpuacct.usage', 'utf8'));
  } catch {
    const m = /usage_usec (\d+)/.exec(readFileSync('/sys/fs/cgroup/cpu.stat', 'utf8'));
    return Number(m?.[1] ?? NaN) * 1000;
  }
}

class Clock {
  readonly steps: AnatomyRun['steps'] = {};
  readonly split: Record<string, CpuSplit> = {};
  private open = new Map<string, { wall: number; cpu: number; split: CpuSplit }>();
  private pids = daemonPids();

  begin(step: string): void {
    const cpu = machineCpuNs();
    this.open.set(step, { wall: performance.now(), cpu, split: cpuSplitMs(this.pids, cpu / 1e6) });
  }

  end(step: string): void {
    const b = this.open.get(step);
    if (!b) return;
    this.open.delete(step);
    const s = (this.steps[step] ??= { wallMs: [], cpuMs: [] });
    const cpu = machineCpuNs();
    s.wallMs.push(performance.now() - b.wall);
    s.cpuMs.push((cpu - b.cpu) / 1e6);
    const d = splitDelta(b.split, cpuSplitMs(this.pids, cpu / 1e6));
    const sum = (this.split[step] ??= Object.fromEntries(SPLIT_PARTS.map((k) => [k, 0])) as CpuSplit);
    for (const k of SPLIT_PARTS) sum[k] += d[k];
  }

  async time<T>(step: string, work: () => Promise<T>): Promise<T> {
    this.begin(step);
    try {
      return await work();
    } finally {
      this.end(step);
    }
  }
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function measureAnatomy(o: { docker: Docker; image: string; workRoot: string; n: number; ociRuntime?: string; progress: (m: string) => void }): Promise<AnatomyRun> {
  const clock = new Clock();
  const root = join(o.workRoot, `anatomy-${o.ociRuntime ?? 'default'}`);
  const stock = new ScratchStock({ root, limitBytes: 512 << 20, reserve: true, timeoutMs: 30_000, spare: 2, refillDelayMs: 3_600_000, log: silentLogger });
  stock.fill();
  await stock.settled();
  const labels = { [LABEL_AGENT]: ANATOMY_AGENT };
  try {
    for (let i = 0; i < o.n; i++) {
      // The file system a container without the stock would make, and remove after it.
      const own = await clock.time('scratch: mkfs + mount (no stock)', () =>
        Scratch.create({ imagePath: join(root, 'own.img'), mountDir: join(root, 'own'), viewDir: join(root, 'own-view'), limitBytes: 512 << 20, reserve: true, timeoutMs: 30_000 }),
      );
      await clock.time('scratch: unmount + delete (no stock)', () => own.destroy());
      await pause(50);

      const spec = soloContainerSpec(join(root, `c${i}`), { image: o.image, name: `ng-bench-anatomy-${process.pid}-${i}`, labels, zygote: ['python3', '/nanogrid/zygote.py'], memoryMb: 256, ...(o.ociRuntime ? { ociRuntime: o.ociRuntime } : {}) });
      const c = new DockerContainer(o.docker, {
        ...spec,
        scratch: stock,
        observe: (step, phase) => {
          const name = STEP_NAMES[step];
          if (name) clock[phase](name);
        },
      });
      try {
        await c.create(256, { awaitZygote: false });
        await writeFunction(c.workspaceHostPath, SAMPLES.pythonHello);
        const runner = c.runner!;
        const req = { argv: ['python', 'main.py'], cwd: WORKDIR, uid: c.uid!, gid: c.uid!, env: ['PYTHONUNBUFFERED=1', 'HOME=/tmp'], timeoutMs: 10_000, outputLimitBytes: 1 << 20 };
        const first = await clock.time('first run (exec)', () => runner.run({ ...req, mode: 'exec', argv: ['python3', 'main.py'] }, 5000));
        if (first.exitCode !== 0) throw new Error(`anatomy: the first run failed: ${first.stderr.slice(0, 300)}`);
        const ready = await clock.time('zygote start', async () => {
          c.startZygote();
          return runner.zygoteReady(15_000);
        });
        if (!ready) throw new Error('anatomy: the zygote did not start');
        const again = await clock.time('run (zygote)', () => runner.run({ ...req, mode: 'zygote' }, 5000));
        if (again.exitCode !== 0) throw new Error(`anatomy: the zygote run failed: ${again.stderr.slice(0, 300)}`);
        await clock.time('freeze', () => c.freeze());
      } finally {
        await c.destroy();
        await clock.time('scratch: recycle (off the path)', () => stock.settled());
      }
      if (stock.status().recycled < i + 1 || stock.status().dirty > 0) throw new Error(`anatomy: a scratch file system was not recycled (${JSON.stringify(stock.status())})`);
      await pause(50);

      // The floor: what the engine itself costs for a container that does nothing.
      const bare = await clock.time('bare: create', () =>
        o.docker.createContainer({
          Image: o.image,
          Entrypoint: ['/bin/sleep'],
          Cmd: ['600'],
          Labels: labels,
          HostConfig: { NetworkMode: 'none', ...(o.ociRuntime ? { Runtime: o.ociRuntime } : {}) },
        }),
      );
      try {
        await clock.time('bare: start', () => bare.start());
      } finally {
        await clock.time('bare: remove', () => bare.remove({ force: true }));
      }
      await pause(50);
      if ((i + 1) % 10 === 0) o.progress(`anatomy (${o.ociRuntime ?? 'default runtime'}): ${i + 1}/${o.n}`);
    }
  } finally {
    await stock.close();
  }
  return { ociRuntime: o.ociRuntime ?? 'default', n: o.n, steps: clock.steps, split: clock.split };
}

/** The mean of each step (CPU time is summed over steps, so means, not medians, add up). */
export function meanOf(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

/** The steps of a cold start and its eviction, with the stock. */
const COLD_PATH = ['scratch: taken from the stock', 'create', 'start', 'inspect', 'connect', 'first run (exec)', 'kill (frozen)', 'remove', 'scratch: recycle (off the path)'];

/** CPU of one cold start and its eviction, with the stock, from the anatomy's means. */
export function coldStartCpuMs(r: AnatomyRun, withZygote: boolean): number {
  const on = [...COLD_PATH, ...(withZygote ? ['zygote start'] : [])];
  return on.reduce((n, s) => n + meanOf(r.steps[s]?.cpuMs ?? []), 0);
}

/** Mean CPU by process of a set of steps (the cold path without the zygote, or the floor). */
export function splitOf(r: AnatomyRun, steps: readonly string[]): CpuSplit {
  const out = Object.fromEntries(SPLIT_PARTS.map((k) => [k, 0])) as CpuSplit;
  for (const st of steps) for (const k of SPLIT_PARTS) out[k] += (r.split?.[st]?.[k] ?? NaN) / r.n;
  return out;
}

export function anatomySplitLines(runs: readonly AnatomyRun[]): string[] {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(0) : '-');
  const lines = [`| ${'one at a time, mean per container (ms)'} | ${SPLIT_PARTS.join(' | ')} |`, `|---|${SPLIT_PARTS.map(() => '---:').join('|')}|`];
  for (const r of runs) {
    for (const [name, steps] of [['cold start + eviction, no zygote', COLD_PATH], ['floor: bare create + start + remove', FLOOR_STEPS]] as const) {
      const sp = splitOf(r, steps);
      lines.push(`| ${r.ociRuntime}: ${name} | ${SPLIT_PARTS.map((k) => f(sp[k])).join(' | ')} |`);
    }
  }
  return lines;
}

/** The engine's floor: a bare container's create + start + remove, CPU ms (mean). */
export function floorCpuMs(r: AnatomyRun): number {
  return FLOOR_STEPS.reduce((n, s) => n + meanOf(r.steps[s]?.cpuMs ?? []), 0);
}

/** The anatomy table (markdown): each step's wall p50 and mean CPU, per OCI runtime side by side. */
export function anatomyTable(runs: readonly AnatomyRun[]): string[] {
  const p50 = (xs: readonly number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
  };
  const lines = [`| step | ${runs.map((r) => `${r.ociRuntime}: wall p50 | CPU mean`).join(' | ')} |`, `|---|${runs.map(() => '---:|---:').join('|')}|`];
  for (const step of [...ANATOMY_STEPS, ...FLOOR_STEPS]) {
    lines.push(`| ${step} | ${runs.map((r) => `${p50(r.steps[step]?.wallMs ?? []).toFixed(1)} | ${meanOf(r.steps[step]?.cpuMs ?? []).toFixed(1)}`).join(' | ')} |`);
  }
  return lines;
}

/** The summary lines: CPU per cold start (with its eviction) from the anatomy, beside the engine's floor. */
export function anatomySummary(runs: readonly AnatomyRun[]): string[] {
  return runs.map(
    (r) =>
      `- cold start anatomy (${r.ociRuntime}, n=${r.n}): machine CPU per cold start and its eviction, with the scratch stock and no zygote **${coldStartCpuMs(r, false).toFixed(0)} ms** (with the zygote started ${coldStartCpuMs(r, true).toFixed(0)}); the engine's floor, a bare container's create + start + remove, **${floorCpuMs(r).toFixed(0)} ms**; mkfs + mount + unmount the stock saves ${(meanOf(r.steps['scratch: mkfs + mount (no stock)']?.cpuMs ?? []) + meanOf(r.steps['scratch: unmount + delete (no stock)']?.cpuMs ?? []) - meanOf(r.steps['scratch: recycle (off the path)']?.cpuMs ?? [])).toFixed(0)} ms`,
  );
}

// Run alone: `node dist/bench/anatomy.js [n] [ociRuntime ...]` (default: dockerd's default runtime).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const n = Number(process.argv[2] ?? 10);
  const runtimes = process.argv.slice(3);
  const docker = new Docker();
  const workRoot = await mkdtemp(join(tmpdir(), 'nanogrid-anatomy-'));
  const runs: AnatomyRun[] = [];
  try {
    for (const rt of runtimes.length ? runtimes : [undefined]) {
      runs.push(await measureAnatomy({ docker, image: process.env.NANOGRID_IMAGE_PYTHON ?? 'nanogrid/python:local', workRoot, n, ...(rt ? { ociRuntime: rt } : {}), progress: (m) => process.stderr.write(`[anatomy] ${m}\n`) }));
    }
  } finally {
    await rm(workRoot, { recursive: true, force: true });
  }
  process.stdout.write(`${[...anatomyTable(runs), '', ...anatomySplitLines(runs), '', ...anatomySummary(runs)].join('\n')}\n`);
}
