import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cgroupFileExists, readProcCgroups } from './cgroupFiles.js';

/** What a container may use: memory (swap equal to it: none beyond it) and CPU. */
export interface LimitValues {
  memoryBytes: number;
  /** 0: no CPU quota. */
  nanoCpus: number;
  /** cgroup v1 cpu.shares (2-262144); v2 gets the matching cpu.weight. */
  shares: number;
}

/**
 * Writes a container's memory and CPU limits into its cgroup directly: what a stock
 * container's first run sets, without dockerd's update (a round trip through containerd
 * and an exec of the OCI runtime). It also serves OCI runtimes without an `update`
 * command (gVisor's runsc): the sandbox's processes live in the container's cgroup on the
 * host, so the host's limits hold them.
 */
export interface CgroupLimits {
  readonly kind: 'cgroup-v1' | 'cgroup-v2';
  apply(l: LimitValues): Promise<void>;
}

/** Finds the memory and CPU cgroups of a process (the container's init), or null when there are none. */
export async function locateLimits(pid: number, roots: { proc?: string; cgroup?: string } = {}): Promise<CgroupLimits | null> {
  const cgroupRoot = roots.cgroup ?? '/sys/fs/cgroup';
  const cg = await readProcCgroups(pid, roots.proc);
  if (!cg) return null;
  const memory = cg.v1('memory');
  const cpu = cg.v1('cpu');
  // A v1 hierarchy is mounted under the name of its controller list ("cpu,cpuacct" where they share one).
  if (memory?.path && cpu?.path) return new V1Limits(join(cgroupRoot, memory.mount, memory.path), join(cgroupRoot, cpu.mount, cpu.path));
  if (cg.v2 !== undefined && cg.v2 !== '/') return new V2Limits(join(cgroupRoot, cg.v2));
  return null;
}

/** cgroup v1 cpu.shares to v2 cpu.weight, as runc and crun convert them. */
export function sharesToWeight(shares: number): number {
  const s = Math.min(262_144, Math.max(2, shares));
  return 1 + Math.floor(((s - 2) * 9999) / 262_142);
}

/** The kernel keeps limit <= memsw at every step: raise memsw first, lower it last. */
export function v1WriteOrder(currentBytes: number, nextBytes: number): readonly ['memsw', 'limit'] | readonly ['limit', 'memsw'] {
  return nextBytes > currentBytes ? ['memsw', 'limit'] : ['limit', 'memsw'];
}

/** A CPU quota in microseconds per period for a number of nanoCPUs (at least 1 ms, as the kernel requires). */
const quotaUs = (nanoCpus: number, periodUs: number) => Math.max(1000, Math.round((nanoCpus * periodUs) / 1e9));

class V1Limits implements CgroupLimits {
  readonly kind = 'cgroup-v1';

  constructor(
    private readonly memoryDir: string,
    private readonly cpuDir: string,
  ) {}

  async apply(l: LimitValues): Promise<void> {
    const limit = join(this.memoryDir, 'memory.limit_in_bytes');
    const memsw = join(this.memoryDir, 'memory.memsw.limit_in_bytes');
    const bytes = String(l.memoryBytes);
    const current = Number((await readFile(limit, 'utf8')).trim());
    // Without swap accounting there is no memsw file: the limit alone holds.
    const withSwap = await cgroupFileExists(memsw);
    for (const which of v1WriteOrder(current, l.memoryBytes)) {
      if (which === 'limit') await writeFile(limit, bytes);
      else if (withSwap) await writeFile(memsw, bytes);
    }
    const period = Number((await readFile(join(this.cpuDir, 'cpu.cfs_period_us'), 'utf8').catch(() => '100000')).trim()) || 100_000;
    await writeFile(join(this.cpuDir, 'cpu.cfs_quota_us'), String(l.nanoCpus > 0 ? quotaUs(l.nanoCpus, period) : -1));
    await writeFile(join(this.cpuDir, 'cpu.shares'), String(l.shares));
  }
}

class V2Limits implements CgroupLimits {
  readonly kind = 'cgroup-v2';

  constructor(private readonly dir: string) {}

  async apply(l: LimitValues): Promise<void> {
    await writeFile(join(this.dir, 'memory.max'), String(l.memoryBytes));
    // Docker's MemorySwap equal to Memory: no swap at all.
    if (await cgroupFileExists(join(this.dir, 'memory.swap.max'))) await writeFile(join(this.dir, 'memory.swap.max'), '0');
    const period = 100_000;
    await writeFile(join(this.dir, 'cpu.max'), l.nanoCpus > 0 ? `${quotaUs(l.nanoCpus, period)} ${period}` : `max ${period}`);
    await writeFile(join(this.dir, 'cpu.weight'), String(sharesToWeight(l.shares)));
  }
}
