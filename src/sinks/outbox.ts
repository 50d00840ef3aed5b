import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Result } from '../core/result.js';
import type { Logger } from '../core/log.js';

/** One result waiting, as the outbox remembers it: its size, and its JSON only when there is no disk. */
interface Entry {
  requestId: string;
  bytes: number;
  json?: string;
}

export interface OutboxLimits {
  /** Results kept at most before intake pauses. */
  entries: number;
  /** Bytes (their JSON) kept at most before intake pauses. */
  bytes: number;
}

export interface OutboxEvents {
  /** Past a limit: intake should pause until `room`. */
  full: [];
  room: [];
}

/**
 * Results that could not be delivered yet, on local disk: one file per result, written to
 * a temporary name, synced and renamed into place, so a crash leaves either the whole
 * result or none of it. It is written before the message is deleted, and read back at
 * start, before anything is received: a worker killed while Redis is down loses no
 * result, and a redelivery of its message finds the result here instead of running again.
 *
 * Memory holds only an index (request id and size); a result is read back from disk to be
 * delivered. Past its limits in entries or bytes the outbox is full: it still takes what
 * the runs under way produce (nothing is dropped), and the agent stops receiving until it
 * has room again. Without a folder it keeps the JSON in memory, under the same limits.
 */
export class Outbox extends EventEmitter<OutboxEvents> {
  private readonly entries = new Map<string, Entry>();
  private total = 0;
  private wasFull = false;

  constructor(
    private readonly dir: string | undefined,
    readonly limits: OutboxLimits,
    private readonly log: Logger,
  ) {
    super();
  }

  get size(): number {
    return this.entries.size;
  }

  get bytes(): number {
    return this.total;
  }

  get durable(): boolean {
    return this.dir !== undefined;
  }

  /** At or past a limit: intake waits for room. */
  get full(): boolean {
    return this.entries.size >= this.limits.entries || this.total >= this.limits.bytes;
  }

  has(requestId: string): boolean {
    return this.entries.has(requestId);
  }

  /** The waiting result of a request, read back from disk. */
  async get(requestId: string): Promise<Result | undefined> {
    const json = await this.json(requestId);
    return json === undefined ? undefined : (JSON.parse(json) as Result);
  }

  /** A waiting result's JSON text, as it will be delivered. */
  async json(requestId: string): Promise<string | undefined> {
    const e = this.entries.get(requestId);
    if (!e) return undefined;
    if (e.json !== undefined) return e.json;
    return readFile(this.pathOf(requestId), 'utf8').catch(() => undefined);
  }

  /** Request ids, oldest first. */
  ids(): string[] {
    return [...this.entries.keys()];
  }

  /** Reads what an earlier run of this agent left, oldest first; unreadable files are set aside. */
  async load(): Promise<number> {
    if (!this.dir) return 0;
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const found: { at: number; entry: Entry }[] = [];
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      if (name.endsWith('.tmp')) {
        // A write the crash interrupted: its message was never deleted, so it is redelivered.
        await rm(path, { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      try {
        // One at a time: only its id and size stay in memory.
        const text = await readFile(path, 'utf8');
        const requestId = (JSON.parse(text) as Partial<Result>).requestId;
        if (typeof requestId !== 'string') throw new Error('no requestId');
        found.push({ at: (await stat(path)).mtimeMs, entry: { requestId, bytes: Buffer.byteLength(text) } });
      } catch (err) {
        this.log.error({ tag: 'REDIS', file: path, err }, 'unreadable outbox entry set aside');
        await rename(path, `${path}.bad`).catch(() => undefined);
      }
    }
    found.sort((a, b) => a.at - b.at);
    for (const f of found) this.index(f.entry);
    this.signal();
    return found.length;
  }

  /** Keeps a result (its JSON text) until it is delivered; durable once this resolves. */
  async put(requestId: string, json: string): Promise<void> {
    const entry: Entry = { requestId, bytes: Buffer.byteLength(json) };
    if (this.dir) {
      const path = this.pathOf(requestId);
      const tmp = `${path}.tmp`;
      const f = await open(tmp, 'w', 0o600);
      try {
        await f.writeFile(json);
        await f.sync();
      } finally {
        await f.close();
      }
      await rename(tmp, path);
      await syncDir(this.dir);
    } else {
      entry.json = json;
    }
    this.forget(requestId);
    this.index(entry);
    this.signal();
  }

  /**
   * Keeps a result in memory only, when the disk refused it: the same limits count it, and
   * it is lost if the agent dies before delivering it.
   */
  keepInMemory(requestId: string, json: string): void {
    this.forget(requestId);
    this.index({ requestId, bytes: Buffer.byteLength(json), json });
    this.signal();
  }

  async remove(requestId: string): Promise<void> {
    const e = this.forget(requestId);
    if (this.dir && e && e.json === undefined) await rm(this.pathOf(requestId), { force: true });
    this.signal();
  }

  private index(e: Entry): void {
    this.entries.set(e.requestId, e);
    this.total += e.bytes;
  }

  private forget(requestId: string): Entry | undefined {
    const e = this.entries.get(requestId);
    if (e) {
      this.entries.delete(requestId);
      this.total -= e.bytes;
    }
    return e;
  }

  private signal(): void {
    const full = this.full;
    if (full === this.wasFull) return;
    this.wasFull = full;
    if (full) this.log.warn({ tag: 'REDIS', results: this.size, bytes: this.total, limits: this.limits }, 'outbox full: receiving pauses until results are delivered');
    else this.log.info({ tag: 'REDIS', results: this.size, bytes: this.total }, 'outbox has room again: receiving resumes');
    this.emit(full ? 'full' : 'room');
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
