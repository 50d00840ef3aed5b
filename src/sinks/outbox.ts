import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Result } from '../core/result.js';
import type { Logger } from '../observe/log.js';

/**
 * Results that could not be delivered yet, on local disk: one file per result, written to
 * a temporary name, synced and renamed into place, so a crash leaves either the whole
 * result or none of it. It is written before the message is deleted, and read back at
 * start, before anything is received: a worker killed while Redis is down loses no
 * result, and a redelivery of its message finds the result here instead of running again.
 */
export class Outbox {
  private readonly entries = new Map<string, Result>();
  private readonly dir: string | undefined;

  constructor(
    dir: string | undefined,
    private readonly limit: number,
    private readonly log: Logger,
  ) {
    this.dir = dir;
  }

  get size(): number {
    return this.entries.size;
  }

  get durable(): boolean {
    return this.dir !== undefined;
  }

  has(requestId: string): boolean {
    return this.entries.has(requestId);
  }

  get(requestId: string): Result | undefined {
    return this.entries.get(requestId);
  }

  /** Oldest first. */
  list(): Result[] {
    return [...this.entries.values()];
  }

  /** Reads what an earlier run of this agent left, oldest first; unreadable files are set aside. */
  async load(): Promise<number> {
    if (!this.dir) return 0;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const found: { at: number; result: Result }[] = [];
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        // A write the crash interrupted: its message was never deleted, so it is redelivered.
        await rm(path, { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        const result = JSON.parse(await readFile(path, 'utf8')) as Result;
        if (typeof result.requestId !== 'string') throw new Error('no requestId');
        found.push({ at: (await stat(path)).mtimeMs, result });
      } catch (err) {
        this.log.error({ tag: 'REDIS', file: path, err: String(err) }, 'unreadable outbox entry set aside');
        await rename(path, `${path}.bad`).catch(() => undefined);
      }
    }
    found.sort((a, b) => a.at - b.at);
    for (const f of found) this.entries.set(f.result.requestId, f.result);
    return found.length;
  }

  /** Keeps `result` until it is delivered; durable once this resolves. Past the limit the oldest is dropped. */
  async put(result: Result): Promise<void> {
    if (this.dir) {
      const path = this.pathOf(result.requestId);
      const tmp = `${path}.tmp`;
      const f = await open(tmp, 'w', 0o600);
      try {
        await f.writeFile(JSON.stringify(result));
        await f.sync();
      } finally {
        await f.close();
      }
      await rename(tmp, path);
      await syncDir(this.dir);
    }
    this.entries.delete(result.requestId);
    this.entries.set(result.requestId, result);
    while (this.entries.size > this.limit) {
      const oldest = this.entries.keys().next().value as string;
      this.log.error({ tag: 'REDIS', requestId: oldest, limit: this.limit }, 'outbox full: oldest undelivered result dropped');
      await this.remove(oldest);
    }
  }

  async remove(requestId: string): Promise<void> {
    this.entries.delete(requestId);
    if (this.dir) await rm(this.pathOf(requestId), { force: true });
  }

  /** Request ids are the caller's: a hash makes any of them a safe file name. */
  private pathOf(requestId: string): string {
    return join(this.dir!, `${createHash('sha256').update(requestId).digest('hex').slice(0, 40)}.json`);
  }
}

async function syncDir(dir: string): Promise<void> {
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
