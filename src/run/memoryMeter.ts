import { open, readFile, writeFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { SampleOutcome, SampleTask } from '../../workers/memorySampler.js';
import type { ThreadPool } from './threads.js';

export type MeterMethod = 'cgroup-v1-max-usage' | 'cgroup-v2-peak' | 'sampled';

export interface Measurement {
  peakBytes: number | null;
  method: MeterMethod | null;
  /** The kernel's OOM killer acted in the container's cgroup during the run. */
  oomKilled: boolean;
  samples?: number;
}

export interface CgroupRef {
  version: 1 | 2;
  dir: string;
}

export interface MeterSession {
  end(): Promise<Measurement>;
}

const NONE: Measurement = { peakBytes: null, method: null, oomKilled: false };

/**
 * Measures one invocation's true peak memory in its container's cgroup. On cgroup v1 the
 * peak counter is reset before the run and read after it; on v2 `memory.peak` is reset
 * through its own file descriptor (kernel 6.12+); elsewhere usage is sampled in a thread.
 * Every failure yields a null figure, never an exception.
 */
export class MemoryMeter {
  constructor(
    private readonly threads: ThreadPool,
    private readonly opts: { cgroupRoot?: string; procRoot?: string; sampleIntervalMs?: number; forceSampling?: boolean } = {},
  ) {}

  /** Finds the memory cgroup of a process (the container's PID 1) from /proc. */
  async locate(pid: number): Promise<CgroupRef | null> {
    const root = this.opts.cgroupRoot ?? '/sys/fs/cgroup';
    try {
      const lines = (await readFile(join(this.opts.procRoot ?? '/proc', String(pid), 'cgroup'), 'utf8')).split('\n');
      const v1 = lines.map((l) => l.split(':')).find((p) => p[1]?.split(',').includes('memory'));
      if (v1?.[2]) return { version: 1, dir: join(root, 'memory', v1[2]) };
      const v2 = lines.map((l) => l.split(':')).find((p) => p[0] === '0' && p[1] === '');
      if (v2?.[2]) return { version: 2, dir: join(root, v2[2]) };
    } catch {
      // fall through: unknown
    }
    return null;
  }

  async begin(cg: CgroupRef | null, timeoutMs: number): Promise<MeterSession> {
    if (!cg) return { end: async () => NONE };
    try {
      if (this.opts.forceSampling) return await this.beginSampling(cg, timeoutMs);
      if (cg.version === 1) return await this.beginV1(cg.dir);
      return await this.beginV2(cg.dir, timeoutMs);
    } catch {
      return { end: async () => NONE };
    }
  }

  private async beginV1(dir: string): Promise<MeterSession> {
    const oomBefore = await readOomKills(join(dir, 'memory.oom_control'));
    // Writing 0 resets the high-water mark to the current usage.
    await writeFile(join(dir, 'memory.max_usage_in_bytes'), '0');
    return {
      end: async () => {
        try {
          const peak = Number((await readFile(join(dir, 'memory.max_usage_in_bytes'), 'utf8')).trim());
          const oomAfter = await readOomKills(join(dir, 'memory.oom_control'));
          return { peakBytes: Number.isFinite(peak) ? peak : null, method: 'cgroup-v1-max-usage', oomKilled: oomAfter > oomBefore };
        } catch {
          return NONE;
        }
      },
    };
  }

  private async beginV2(dir: string, timeoutMs: number): Promise<MeterSession> {
    const oomBefore = await readOomKills(join(dir, 'memory.events'));
    let fh: FileHandle | undefined;
    try {
      fh = await open(join(dir, 'memory.peak'), 'r+');
      // Since 6.12 a write resets the peak as seen through this descriptor only.
      await fh.write('reset\n', 0);
    } catch {
      await fh?.close();
      return this.beginSampling({ version: 2, dir }, timeoutMs);
    }
    const handle = fh;
    return {
      end: async () => {
        try {
          const buf = Buffer.alloc(64);
          const { bytesRead } = await handle.read(buf, 0, buf.length, 0);
          const peak = Number(buf.subarray(0, bytesRead).toString().trim());
          const oomAfter = await readOomKills(join(dir, 'memory.events'));
          return { peakBytes: Number.isFinite(peak) ? peak : null, method: 'cgroup-v2-peak', oomKilled: oomAfter > oomBefore };
        } catch {
          return NONE;
        } finally {
          await handle.close();
        }
      },
    };
  }

  private async beginSampling(cg: CgroupRef, timeoutMs: number): Promise<MeterSession> {
    const usageFile = join(cg.dir, cg.version === 1 ? 'memory.usage_in_bytes' : 'memory.current');
    const eventsFile = join(cg.dir, cg.version === 1 ? 'memory.oom_control' : 'memory.events');
    const oomBefore = await readOomKills(eventsFile);
    const stop = new SharedArrayBuffer(4);
    const task: SampleTask = { usageFile, intervalMs: this.opts.sampleIntervalMs ?? 5, deadlineMs: timeoutMs + 5000, stop };
    const running = this.threads.run<SampleOutcome>(task, 'memorySampler');
    return {
      end: async () => {
        Atomics.store(new Int32Array(stop), 0, 1);
        Atomics.notify(new Int32Array(stop), 0);
        try {
          const out = await running;
          const oomAfter = await readOomKills(eventsFile);
          return { peakBytes: out.peakBytes, method: 'sampled', oomKilled: oomAfter > oomBefore, samples: out.samples };
        } catch {
          return NONE;
        }
      },
    };
  }
}

/** Reads the `oom_kill N` counter from memory.oom_control (v1) or memory.events (v2). */
export async function readOomKills(file: string): Promise<number> {
  try {
    const m = /^oom_kill (\d+)$/m.exec(await readFile(file, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
