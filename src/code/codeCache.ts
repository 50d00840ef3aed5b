import { createHash, randomBytes } from 'node:crypto';
import { readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AgentEvents, Emitter } from '../core/events.js';
import type { CodeSource } from '../core/invocation.js';
import type { Logger } from '../core/log.js';
import type { CodeFetcher, Unpacked } from './codeFetch.js';

/** One unpacked version of a function's code, shared read-only by every container that runs it. */
export interface CodeVersion {
  /** Changes whenever the code does (key + ETag, or the inline source's hash). */
  id: string;
  dir: string;
  /** The top-level names in `dir`: what a workspace keeps between runs. */
  names: string[];
  bytes: number;
  /** The S3 object's ETag (undefined for inline code). */
  etag?: string | undefined;
}

export type CodeEvent = AgentEvents['code'][0];

export interface CodeCacheOptions {
  fetcher: CodeFetcher;
  /** Folder of the unpacked versions (copied into workspaces from here). */
  root: string;
  /** How old a validation may be before the object is checked again (0: on every invocation). */
  stalenessMs: number;
  /**
   * What the kept versions may hold on disk, counted in blocks (a folder or a small file
   * takes one; an archive of empty folders is not free), and in files and folders; past
   * either, the least recently used versions go.
   */
  maxBytes: number;
  maxInodes?: number;
  log: Logger;
  events?: Emitter<'code'>;
}

interface Entry {
  version: CodeVersion;
  diskBytes: number;
  inodes: number;
  etag: string | undefined;
  validatedAt: number;
  usedAt: number;
}

/**
 * Downloads and unpacks each code version once per agent. Within the staleness bound a
 * version is served without asking S3; in its second half a revalidation (a HEAD,
 * comparing ETags) starts in the background, so steady traffic never waits on S3; past
 * the bound the invocation waits for it. A zip replaced under the same key is therefore
 * picked up within the bound.
 */
export class CodeCache {
  private readonly entries = new Map<string, Entry>();
  private readonly inFlight = new Map<string, Promise<Entry>>();
  private bytes = 0;
  private inodes = 0;

  constructor(private readonly opts: CodeCacheOptions) {}

  async get(source: CodeSource): Promise<CodeVersion> {
    const key = cacheKey(source);
    const e = this.entries.get(key);
    const now = Date.now();
    if (e && source.kind === 'inline') return this.hit(e);
    const age = e ? now - e.validatedAt : Infinity;
    if (e && age < this.opts.stalenessMs) {
      if (age >= this.opts.stalenessMs / 2) void this.refresh(key, source).catch(() => undefined);
      return this.hit(e);
    }
    const fresh = await this.refresh(key, source);
    fresh.usedAt = Date.now();
    return fresh.version;
  }

  /** Versions kept, and what they hold on disk (bytes in blocks, and files and folders). */
  get size(): { versions: number; bytes: number; inodes: number } {
    return { versions: this.entries.size, bytes: this.bytes, inodes: this.inodes };
  }

  /** Single flight per key: concurrent invocations share one revalidation or download. */
  private refresh(key: string, source: CodeSource): Promise<Entry> {
    let p = this.inFlight.get(key);
    if (!p) {
      p = this.load(key, source).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, p);
    }
    return p;
  }

  private async load(key: string, source: CodeSource): Promise<Entry> {
    const known = this.entries.get(key);
    if (known && source.kind === 's3') {
      try {
        const etag = await this.opts.fetcher.etag(source.bucket, source.key);
        if (etag !== undefined && etag === known.etag) {
          known.validatedAt = Date.now();
          this.opts.events?.emit('code', 'revalidated_unchanged');
          return known;
        }
        this.opts.events?.emit('code', 'revalidated_changed');
        this.opts.log.info({ tag: 'S3', key, from: known.etag, to: etag }, 'code changed under its key: downloading the new version');
      } catch (err) {
        this.opts.events?.emit('code', 'revalidation_failed');
        throw err;
      }
    }
    const tmp = join(this.opts.root, `.tmp-${randomBytes(6).toString('hex')}`);
    let unpacked: Unpacked;
    try {
      unpacked = source.kind === 'inline' ? await this.opts.fetcher.unpackInline(source.code, tmp) : await this.opts.fetcher.unpackS3(source.bucket, source.key, tmp);
    } catch (err) {
      await rm(tmp, { recursive: true, force: true });
      throw err;
    }
    this.opts.events?.emit('code', 'download');
    const id = createHash('sha256').update(`${key}\0${unpacked.etag ?? ''}\0${tmp}`).digest('hex').slice(0, 24);
    const dir = join(this.opts.root, id);
    await rename(tmp, dir);
    const entry: Entry = {
      version: { id, dir, names: await readdir(dir), bytes: unpacked.bytes, etag: unpacked.etag },
      diskBytes: unpacked.diskBytes,
      inodes: unpacked.inodes,
      etag: unpacked.etag,
      validatedAt: Date.now(),
      usedAt: Date.now(),
    };
    if (known) this.drop(key, known);
    this.entries.set(key, entry);
    this.bytes += entry.diskBytes;
    this.inodes += entry.inodes;
    this.evict(key);
    return entry;
  }

  private hit(e: Entry): CodeVersion {
    e.usedAt = Date.now();
    this.opts.events?.emit('code', 'hit');
    return e.version;
  }

  /** Least recently used versions go past either bound. Workspaces hold copies: they keep their files. */
  private evict(keep: string): void {
    const byAge = [...this.entries].filter(([k]) => k !== keep).sort((a, b) => a[1].usedAt - b[1].usedAt);
    for (const [k, e] of byAge) {
      if (this.bytes <= this.opts.maxBytes && this.inodes <= (this.opts.maxInodes ?? Infinity)) break;
      this.drop(k, e);
    }
  }

  private drop(key: string, e: Entry): void {
    if (this.entries.get(key) === e) this.entries.delete(key);
    this.bytes -= e.diskBytes;
    this.inodes -= e.inodes;
    void rm(e.version.dir, { recursive: true, force: true });
  }
}

function cacheKey(source: CodeSource): string {
  if (source.kind === 's3') return `s3:${source.bucket}/${source.key}`;
  return `inline:${createHash('sha256').update(source.code).digest('hex')}`;
}
