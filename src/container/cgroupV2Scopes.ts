import { appendFile, mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../core/timeout.js';
import { readOomKills } from './cgroupFiles.js';

/**
 * Exact per-invocation peak memory on cgroup v2, on any kernel with memory.peak (5.19+),
 * including 6.1 (Amazon Linux 2023's default) where memory.peak cannot be reset: each run
 * gets a fresh child cgroup of its container's, and the run's first process is moved into
 * it before it does anything (the runner holds it until then). The child's memory.peak is
 * then the run's own peak, and its memory.events the run's own OOM kills.
 *
 * cgroup v2 lets a cgroup with controllers for its children hold no processes itself, so
 * the container's own processes (the runner, the zygote) first move to a leaf, INIT_LEAF.
 */
export const INIT_LEAF = 'nanogrid-init';
const RMDIR_ATTEMPTS = 50;

/** Readies a container's cgroup for per-run children. Idempotent. */
export async function prepareContainerCgroup(dir: string): Promise<void> {
  const leaf = join(dir, INIT_LEAF);
  await mkdir(leaf, { recursive: true });
  for (const pid of await pidsOf(dir)) {
    // A process can exit between the read and the move: that one needs no moving.
    await writeFile(join(leaf, 'cgroup.procs'), String(pid)).catch(() => undefined);
  }
  const enabled = (await readFile(join(dir, 'cgroup.subtree_control'), 'utf8').catch(() => '')).split(/\s+/);
  if (!enabled.includes('memory')) await appendFile(join(dir, 'cgroup.subtree_control'), '+memory');
}

/** One run's child cgroup. */
export class RunScope {
  private constructor(
    readonly dir: string,
    private readonly oomBefore: number,
  ) {}

  static async create(containerDir: string, name: string): Promise<RunScope> {
    const dir = join(containerDir, name);
    await mkdir(dir);
    return new RunScope(dir, readOomKills(join(dir, 'memory.events')));
  }

  /** Moves the run's first process in; everything it starts afterwards is born inside. */
  async attach(pid: number): Promise<void> {
    await writeFile(join(this.dir, 'cgroup.procs'), String(pid));
  }

  async peak(): Promise<{ peakBytes: number | null; oomKilled: boolean; fileBytes: number | null }> {
    const raw = await readFile(join(this.dir, 'memory.peak'), 'utf8').catch(() => '');
    const peak = Number(raw.trim());
    const oom = readOomKills(join(this.dir, 'memory.events')) > this.oomBefore;
    // The run's cgroup holds only the run's pages: its `file` is the run's file-backed share.
    const stat = await readFile(join(this.dir, 'memory.stat'), 'utf8').catch(() => '');
    const file = /^file (\d+)$/m.exec(stat);
    return { peakBytes: raw && Number.isFinite(peak) ? peak : null, oomKilled: oom, fileBytes: file ? Number(file[1]) : null };
  }

  /** Removes the child once the runner has killed every process of the run (a busy cgroup waits a moment). */
  async remove(): Promise<boolean> {
    for (let i = 0; i < RMDIR_ATTEMPTS; i++) {
      try {
        await rmdir(this.dir);
        return true;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'ENOENT') return true;
        if (code !== 'EBUSY') return false;
        await sleep(10);
      }
    }
    return false;
  }
}

async function pidsOf(dir: string): Promise<number[]> {
  const raw = await readFile(join(dir, 'cgroup.procs'), 'utf8').catch(() => '');
  return raw
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}
