import { readFileSync } from 'node:fs';

/**
 * Reads the `oom_kill N` counter from memory.oom_control (v1) or memory.events (v2).
 * cgroup files live in memory and answer at once: read synchronously, sparing four thread
 * pool round trips per read on every invocation.
 */
export function readOomKills(file: string): number {
  try {
    const m = /^oom_kill (\d+)$/m.exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
