import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pidsInText } from './cgroupHandles.js';

/**
 * The host pid of a process the runner names by its pid inside the container (its own PID
 * namespace): on the host that number is another process. Among the host pids listed in
 * `procsFile` (a cgroup.procs of the container's cgroup), the one whose innermost NSpid is
 * `nsPid`; null when none is (it has exited). Used only on a held process, which cannot
 * exit or be replaced while the agent looks.
 */
export function hostPidFor(nsPid: number, procsFile: string, procRoot = '/proc'): number | null {
  for (const hostPid of pidsIn(procsFile)) {
    const ns = nsPidsOf(hostPid, procRoot);
    if (ns && ns.length > 1 && ns[ns.length - 1] === nsPid) return hostPid;
  }
  return null;
}

/** The pids listed in a cgroup.procs (or tasks) file; none when it cannot be read. */
export function pidsIn(procsFile: string): number[] {
  let raw: string;
  try {
    raw = readFileSync(procsFile, 'utf8');
  } catch {
    return [];
  }
  return pidsInText(raw);
}

/** A process's NSpid line (outermost namespace first), and its real uid. */
export function procStatus(pid: number, procRoot = '/proc'): { nsPids: number[]; uid: number } | null {
  let text: string;
  try {
    text = readFileSync(join(procRoot, String(pid), 'status'), 'utf8');
  } catch {
    return null;
  }
  const ns = /^NSpid:\s*(.*)$/m.exec(text);
  const uid = /^Uid:\s*(\d+)/m.exec(text);
  return { nsPids: ns ? ns[1]!.trim().split(/\s+/).map(Number) : [], uid: uid ? Number(uid[1]) : -1 };
}

function nsPidsOf(pid: number, procRoot: string): number[] | null {
  return procStatus(pid, procRoot)?.nsPids ?? null;
}
