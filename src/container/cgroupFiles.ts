import { readFileSync } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { oomKillsIn } from './cgroupHandles.js';

/**
 * Reads the `oom_kill N` counter from memory.oom_control (v1) or memory.events (v2).
 * cgroup files live in memory and answer at once: read synchronously, sparing four thread
 * pool round trips per read on every invocation.
 */
export function readOomKills(file: string): number {
  try {
    return oomKillsIn(readFileSync(file, 'utf8'));
  } catch {
    return 0;
  }
}

/** A process's cgroups, as /proc/<pid>/cgroup lists them (v1 hierarchies and the unified one). */
export interface ProcCgroups {
  /** The v1 hierarchy holding `controller`: its mount folder (named by its controller list, "cpu,cpuacct") and the process's path in it. */
  v1(controller: string): { mount: string; path: string | undefined } | undefined;
  /** The process's path in the unified (v2) hierarchy, from its "0::" line. */
  readonly v2: string | undefined;
}

/** Reads /proc/<pid>/cgroup; null when the process is gone (or the file unreadable). */
export async function readProcCgroups(pid: number, procRoot = '/proc'): Promise<ProcCgroups | null> {
  let text: string;
  try {
    text = await readFile(join(procRoot, String(pid), 'cgroup'), 'utf8');
  } catch {
    return null;
  }
  const parts = text.split('\n').map((l) => l.split(':'));
  return {
    v1: (controller) => {
      const p = parts.find((q) => q[1]?.split(',').includes(controller));
      return p ? { mount: p[1]!, path: p[2] } : undefined;
    },
    v2: parts.find((p) => p[0] === '0' && p[1] === '')?.[2],
  };
}

/** Whether a cgroup file exists (controllers and kernel versions differ in the files they offer). */
export const cgroupFileExists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );
