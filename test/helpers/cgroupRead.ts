import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readProcCgroups } from '../../src/container/cgroupFiles.js';
import { sharesToWeight } from '../../src/container/cgroupLimits.js';

/**
 * A container's limits as the kernel holds them (v1 or v2): the agent writes them into the
 * cgroup after create, so dockerd's record keeps the create's values. CPU weight in v2's
 * units (v1's shares converted as runc does).
 */
export async function cgroupLimitsOf(pid: number): Promise<{ memory: number; swapBeyond: number; nanoCpus: number; weight: number }> {
  const cg = await readProcCgroups(pid);
  const mem = cg?.v1('memory');
  const cpu = cg?.v1('cpu');
  const read = async (...p: string[]) => (await readFile(join(...p), 'utf8')).trim();
  if (mem?.path && cpu?.path) {
    const m = join('/sys/fs/cgroup', mem.mount, mem.path);
    const c = join('/sys/fs/cgroup', cpu.mount, cpu.path);
    const memory = Number(await read(m, 'memory.limit_in_bytes'));
    const memsw = Number(await read(m, 'memory.memsw.limit_in_bytes').catch(() => String(memory)));
    const quota = Number(await read(c, 'cpu.cfs_quota_us'));
    const period = Number(await read(c, 'cpu.cfs_period_us'));
    return { memory, swapBeyond: memsw - memory, nanoCpus: quota < 0 ? 0 : Math.round((quota / period) * 1e9), weight: sharesToWeight(Number(await read(c, 'cpu.shares'))) };
  }
  const dir = join('/sys/fs/cgroup', cg!.v2!);
  const swap = await read(dir, 'memory.swap.max').catch(() => '0');
  const [quota, period] = (await read(dir, 'cpu.max')).split(' ');
  return {
    memory: Number(await read(dir, 'memory.max')),
    swapBeyond: swap === 'max' ? Infinity : Number(swap),
    nanoCpus: quota === 'max' ? 0 : Math.round((Number(quota) / Number(period)) * 1e9),
    weight: Number(await read(dir, 'cpu.weight')),
  };
}
