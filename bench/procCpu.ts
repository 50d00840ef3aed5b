// CPU time and memory of processes, cgroups and the whole machine, from /proc and cgroupfs.
import type Docker from 'dockerode';
import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readProcCgroups } from '../src/container/cgroupFiles.js';
import { listAgentContainers } from '../src/pool/leftovers.js';

export const TICK_MS = 10; // USER_HZ is 100 on Linux (sysconf(_SC_CLK_TCK)): /proc's times are in 10 ms ticks

/** utime + stime of a process, with its waited-for children, in ms (NaN when it is gone). */
export function processCpuMs(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields from the state (3rd in proc(5)): utime is the 14th, so index 11 here.
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS;
  } catch {
    return NaN;
  }
}

export function processRssMb(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Busy CPU time of the whole machine (every CPU, idle and iowait excluded), ms. */
export function machineBusyMs(stat = readFileSync('/proc/stat', 'utf8')): number {
  const f = stat.split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return (user + nice + system + irq + softirq + steal) * TICK_MS;
}

/** The children of a process (by /proc/<pid>/task/<tid>/children). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The CPU ms the agent's containers have used so far (their cgroups' counters). */
export async function containersCpuMs(docker: Docker, agentId: string): Promise<number> {
  let total = 0;
  for (const c of await listAgentContainers(docker, agentId)) {
    const pid = (await docker.getContainer(c.Id).inspect()).State.Pid;
    const cg = pid ? await readProcCgroups(pid) : null;
    const v1 = cg?.v1('cpuacct');
    if (v1?.path) {
      total += Number(await readFile(join('/sys/fs/cgroup', v1.mount, v1.path, 'cpuacct.usage'), 'utf8')) / 1e6;
    } else if (cg?.v2) {
      const m = /usage_usec (\d+)/.exec(await readFile(join('/sys/fs/cgroup', cg.v2, 'cpu.stat'), 'utf8'));
      total += Number(m?.[1] ?? 0) / 1000;
    }
  }
  return total;
}

/** Where a burst's machine CPU went: this process (agent, queue server and client in the bench), the engine's daemons, Redis, and the rest (shims, runc, the containers, kernel threads). */
export const SPLIT_PARTS = ['bench process', 'dockerd', 'containerd', 'redis', 'rest'] as const;
export type CpuSplit = Record<(typeof SPLIT_PARTS)[number], number>;

/** Long-lived daemons by their exact comm (a shim's comm is containerd-shim, so it falls in the rest). */
export function daemonPids(): Record<'dockerd' | 'containerd' | 'redis', number[]> {
  const out = { dockerd: [] as number[], containerd: [] as number[], redis: [] as number[] };
  for (const p of readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    const comm = commOf(Number(p));
    if (comm === 'dockerd') out.dockerd.push(Number(p));
    else if (comm === 'containerd') out.containerd.push(Number(p));
    else if (comm === 'redis-server') out.redis.push(Number(p));
  }
  return out;
}

/** CPU ms so far of each part, the machine's from the root cgroup's counter (machineCpuNs). */
export function cpuSplitMs(pids: ReturnType<typeof daemonPids>, machineMs: number): CpuSplit {
  const sum = (ps: number[]) => ps.reduce((n, p) => n + (processCpuMs(p) || 0), 0);
  const s = { 'bench process': processCpuMs(process.pid), dockerd: sum(pids.dockerd), containerd: sum(pids.containerd), redis: sum(pids.redis), rest: 0 };
  s.rest = machineMs - s['bench process'] - s.dockerd - s.containerd - s.redis;
  return s;
}

export function splitDelta(a: CpuSplit, b: CpuSplit, per = 1): CpuSplit {
  const d = {} as CpuSplit;
  for (const k of SPLIT_PARTS) d[k] = (b[k] - a[k]) / per;
  return d;
}
