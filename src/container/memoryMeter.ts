import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SampleOutcome, SampleTask } from '../../workers/memorySampler.js';
import { sleep } from '../core/timeout.js';
import { cgroupFileExists, readOomKills, readProcCgroups } from './cgroupFiles.js';
import { INIT_LEAF, prepareContainerCgroup, RunScope } from './cgroupV2Scopes.js';
import { hostPidFor } from './hostPid.js';
import type { ThreadPool } from '../core/threads.js';
import { CgroupHandles, oomKillsIn } from './cgroupHandles.js';

export type MeterMethod = 'cgroup-v1-max-usage' | 'cgroup-v2-run-cgroup' | 'sampled';

export interface Measurement {
  peakBytes: number | null;
  method: MeterMethod | null;
  /** The kernel's OOM killer acted in the container's cgroup during the run. */
  oomKilled: boolean;
  /**
   * The run's file-backed memory at its end, from the cgroup's memory.stat: page cache the
   * run brought in or wrote (files in the workspace, /tmp, /dev/shm; files read for the
   * first time in the container) and still held. It counts in the peak as the kernel
   * charges it; null where it is not known (sampling).
   */
  fileBytes?: number | null;
  samples?: number;
}

export interface CgroupRef {
  version: 1 | 2;
  dir: string;
  /** v2: the container's cgroup is ready for per-run children (see cgroupV2Scopes.ts). */
  prepared?: boolean;
  /** v1: its files every run reads, kept open (closed with the container). */
  handles?: CgroupHandles;
}

export interface MeterSession {
  /** When set, the run's first process must be held until this resolves (it is moved into the run's cgroup). */
  attach?: (pid: number) => Promise<void>;
  /** What the container held when the run began (v1 and sampling): a new handler's baseline. */
  idleBytes?: number;
  /**
   * Ends the measurement. `keepScope` (v2, a handler that lives on): the run's cgroup is
   * not removed but given back, for the handler's later calls.
   */
  end(opts?: { keepScope?: boolean }): Promise<Measurement>;
  /** v2: the run's cgroup (where its first process is moved), and the same once end() kept it. */
  scopeDir?: string;
  kept?: RunScope;
}

/** A handler-mode call to a live handler (liveHandler.ts): where its memory is counted from. */
export interface HandlerMeter {
  baselineBytes: number;
  scope?: { readonly dir: string } | undefined;
}

/** How long a run waits for its sampler's thread to start. */
const SAMPLER_START_MS = 2000;

/** No figure: what every failure of a measurement yields. */
export const NO_MEASUREMENT: Measurement = { peakBytes: null, method: null, oomKilled: false };

/**
 * Measures one invocation's true peak memory. On cgroup v1 the container cgroup's peak
 * counter is reset before the run and read after it, less what the container held before
 * the run (the runner and the zygote). On v2 each run gets a cgroup of its
 * own (cgroupV2Scopes.ts), whose memory.peak is the run's: exact on every kernel with
 * memory.peak (5.19+), 6.1 included. Elsewhere usage is sampled on a thread of the
 * sampler's own pool, never one that unzip needs. Every failure yields a null figure,
 * never an exception.
 */
export class MemoryMeter {
  private seq = 0;

  constructor(
    private readonly sampler: ThreadPool,
    private readonly opts: { cgroupRoot?: string; procRoot?: string; sampleIntervalMs?: number; forceSampling?: boolean } = {},
  ) {}

  /** Finds the memory cgroup of a process (the container's PID 1) from /proc. */
  async locate(pid: number): Promise<CgroupRef | null> {
    const root = this.opts.cgroupRoot ?? '/sys/fs/cgroup';
    const cg = await readProcCgroups(pid, this.opts.procRoot);
    const v1 = cg?.v1('memory')?.path;
    if (v1) return { version: 1, dir: join(root, 'memory', v1) };
    if (cg?.v2) return { version: 2, dir: join(root, cg.v2) };
    return null;
  }

  /**
   * `live`: the run is a call to a live handler. On v1 the peak counter is reset as for any
   * run, and the peak is counted above what the container held before the handler started
   * (the handler's own memory is the function's). On v2 its cgroup's memory.peak spans the
   * handler's life and cannot be reset on 6.1, so the calls after its first are sampled
   * there.
   */
  async begin(cg: CgroupRef | null, timeoutMs: number, live?: HandlerMeter): Promise<MeterSession> {
    if (!cg) return { end: async () => NO_MEASUREMENT };
    try {
      if (live && cg.version === 2) return await this.beginSampling(live.scope ? { version: 2, dir: live.scope.dir } : cg, timeoutMs, live.scope ? 0 : undefined);
      if (this.opts.forceSampling) return await this.beginSampling(cg, timeoutMs, live?.baselineBytes);
      if (cg.version === 1) return await this.beginV1(cg, live?.baselineBytes);
      return await this.beginV2(cg, timeoutMs);
    } catch {
      return { end: async () => NO_MEASUREMENT };
    }
  }

  private async beginV1(cg: CgroupRef, baselineBytes?: number): Promise<MeterSession> {
    // cgroup files answer from memory: synchronous access, on files kept open, is cheaper
    // than the thread pool (four preads and a write per run).
    const files = (cg.handles ??= new CgroupHandles(cg.dir));
    const oomBefore = oomKillsIn(files.read('memory.oom_control'));
    // Writing 0 resets the high-water mark to the current usage. What the container holds
    // before the run (the runner, the zygote's interpreter) is not the run's: the figure is
    // the peak above it, as a v2 run cgroup counts only the run's own pages.
    files.write('memory.max_usage_in_bytes', '0');
    const idleBytes = Number(files.read('memory.usage_in_bytes').trim()) || 0;
    const idle = baselineBytes ?? idleBytes;
    const cacheBefore = statField(files.read('memory.stat'), 'total_cache');
    return {
      idleBytes,
      end: async () => {
        try {
          const peak = Number(files.read('memory.max_usage_in_bytes').trim());
          const oomAfter = oomKillsIn(files.read('memory.oom_control'));
          const cacheAfter = statField(files.read('memory.stat'), 'total_cache');
          const fileBytes = cacheBefore === null || cacheAfter === null ? null : Math.max(0, cacheAfter - cacheBefore);
          return { peakBytes: Number.isFinite(peak) ? Math.max(0, peak - idle) : null, method: 'cgroup-v1-max-usage', oomKilled: oomAfter > oomBefore, fileBytes };
        } catch {
          return NO_MEASUREMENT;
        }
      },
    };
  }

  private async beginV2(cg: CgroupRef, timeoutMs: number): Promise<MeterSession> {
    // Without memory.peak (kernels before 5.19) only sampling is left.
    if (!(await cgroupFileExists(join(cg.dir, 'memory.peak')))) return this.beginSampling(cg, timeoutMs);
    if (!cg.prepared) {
      await prepareContainerCgroup(cg.dir);
      cg.prepared = true;
    }
    const scope = await RunScope.create(cg.dir, `nanogrid-run-${++this.seq}`);
    let attached = false;
    const session: MeterSession = {
      scopeDir: scope.dir,
      // The runner names the held process by its pid in the container's namespace: on the
      // host that number is another process. Moved is the process of the container's
      // cgroup whose innermost NSpid it is, or nothing.
      attach: async (nsPid) => {
        const hostPid = hostPidFor(nsPid, join(cg.dir, INIT_LEAF, 'cgroup.procs'), this.opts.procRoot);
        if (hostPid === null) throw new Error(`no process of the container has pid ${nsPid} in its namespace`);
        await scope.attach(hostPid);
        attached = true;
      },
      end: async (opts) => {
        const keep = attached && opts?.keepScope === true;
        try {
          if (!attached) return NO_MEASUREMENT;
          const { peakBytes, oomKilled, fileBytes } = await scope.peak();
          return { peakBytes, method: 'cgroup-v2-run-cgroup', oomKilled, fileBytes };
        } catch {
          return NO_MEASUREMENT;
        } finally {
          if (keep) session.kept = scope;
          else await scope.remove();
        }
      },
    };
    return session;
  }

  private async beginSampling(cg: CgroupRef, timeoutMs: number, baselineBytes?: number): Promise<MeterSession> {
    const usageFile = join(cg.dir, cg.version === 1 ? 'memory.usage_in_bytes' : 'memory.current');
    const eventsFile = join(cg.dir, cg.version === 1 ? 'memory.oom_control' : 'memory.events');
    const oomBefore = readOomKills(eventsFile);
    // As for v1: what the container held before the run is not the run's.
    let idle = 0;
    try {
      idle = Number(readFileSync(usageFile, 'utf8').trim()) || 0;
    } catch {
      // no baseline: the figure is the container's
    }
    const idleBytes = idle;
    if (baselineBytes !== undefined) idle = baselineBytes;
    const stop = new SharedArrayBuffer(8);
    const task: SampleTask = { usageFile, intervalMs: this.opts.sampleIntervalMs ?? 5, deadlineMs: timeoutMs + 5000, stop };
    const running = this.sampler.run<SampleOutcome>(task, 'memorySampler');
    // The sampler's thread may still be starting: the run waits until it samples (bounded).
    const flags = new Int32Array(stop);
    for (const deadline = Date.now() + SAMPLER_START_MS; Atomics.load(flags, 1) === 0 && Date.now() < deadline; ) await sleep(1);
    return {
      idleBytes,
      end: async () => {
        Atomics.store(new Int32Array(stop), 0, 1);
        Atomics.notify(new Int32Array(stop), 0);
        try {
          const out = await running;
          const oomAfter = readOomKills(eventsFile);
          const peakBytes = out.peakBytes === null ? null : Math.max(0, out.peakBytes - idle);
          return { peakBytes, method: 'sampled', oomKilled: oomAfter > oomBefore, samples: out.samples };
        } catch {
          return NO_MEASUREMENT;
        }
      },
    };
  }
}


/** A `name value` line of a memory.stat text, or null. */
export function statField(text: string, name: string): number | null {
  const m = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : null;
}
