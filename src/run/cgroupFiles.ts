import { readFile } from 'node:fs/promises';

/** Reads the `oom_kill N` counter from memory.oom_control (v1) or memory.events (v2). */
export async function readOomKills(file: string): Promise<number> {
  try {
    const m = /^oom_kill (\d+)$/m.exec(await readFile(file, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}
