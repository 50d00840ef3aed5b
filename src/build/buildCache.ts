import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { chmod, copyFile, lstat, mkdir, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../core/log.js';
import { BUILD_CACHE_DIR, RUNNER_MOUNT, SANDBOX_MOUNT, WORKDIR } from '../core/sandbox.js';

/**
 * C++ built once per code version (runner/ccfront.c is the other half). The compiler front
 * inside a container keys each compiler call and looks its output up in a folder of the
 * container's own host folder (BUILD_CACHE_DIR, root's: the function can read it, not
 * write it). After a clean run the agent takes what the front left for a miss in the run's
 * /tmp, checks it (names, regular files, sizes: nothing of it is followed or trusted
 * beyond its bytes) and keeps it in the store, per function and per image id; every
 * container of that function, this one included, gets the function's entries before its
 * next run. A function's entries are only ever shown to containers of that same function,
 * so what one function plants can only ever reach itself.
 */

/** Where the front leaves a miss's output, in the run's /tmp. */
export const BUILD_OUT_NAME = '.nanogrid-cc';
const ENTRY = /^[0-9a-f]{64}\.(out|err|hit)$/;
/** At most this many entries taken from one run. */
const MAX_PER_RUN = 16;
/** How many code versions' first runs are remembered (for the wait below). */
const SEEN_VERSIONS = 4096;

/** What the compiler front reads from a run's environment. */
export function buildEnv(entryMaxBytes: number): string[] {
  return [
    `PATH=${RUNNER_MOUNT}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin`,
    `NANOGRID_BUILD_CACHE=${SANDBOX_MOUNT}/${BUILD_CACHE_DIR}`,
    `NANOGRID_BUILD_OUT=/tmp/${BUILD_OUT_NAME}`,
    `NANOGRID_BUILD_ROOTS=${WORKDIR}:/tmp:/dev/shm`,
    `NANOGRID_BUILD_MAX_BYTES=${entryMaxBytes}`,
  ];
}

/** One container's side: its entries folder, its run's /tmp, its image. */
export interface BuildView {
  /** Host path of the container's entries folder (root's, 0755; read-only to the function). */
  readonly cacheDir: string;
  /** Host path of the run's /tmp (the agent's view of the scratch file system). */
  readonly tmpDir: string;
  readonly imageId: string;
  /** Keys already copied into cacheDir. */
  readonly installed: Set<string>;
}

interface Entry {
  bytes: number;
  err: boolean;
  /** The compiler made it executable (the front gives the -o file the same kind of mode). */
  exec: boolean;
}

interface Scope {
  dir: string;
  entries: Map<string, Entry>;
  bytes: number;
}

export interface BuildCacheOptions {
  /** The store's folder (the agent's own, emptied at start). */
  root: string;
  /** The store's bound; the least recently used functions' entries go first. */
  maxBytes: number;
  /** One output's bound (the front does not keep a larger one either). */
  entryMaxBytes: number;
  log: Logger;
}

export interface BuildCacheStatus {
  functions: number;
  entries: number;
  bytes: number;
  /** Compiler runs the front reported (misses that succeeded), calls it served from the cache, entries kept, and files refused (not a regular file, too large). */
  compiled: number;
  hits: number;
  kept: number;
  refused: number;
}

export class BuildCache {
  /** Least recently used first. */
  private readonly scopes = new Map<string, Scope>();
  private bytes = 0;
  private readonly counts = { compiled: 0, hits: 0, kept: 0, refused: 0 };
  private readonly firstRuns = new Map<string, Promise<void>>();
  private readonly seen = new Set<string>();

  constructor(private readonly opts: BuildCacheOptions) {}

  status(): BuildCacheStatus {
    let entries = 0;
    for (const s of this.scopes.values()) entries += s.entries.size;
    return { functions: this.scopes.size, entries, bytes: this.bytes, ...this.counts };
  }

  /**
   * Before a run of `version` of the function `scope`: while another container runs that
   * version for the first time, wait for it (its compile is the one done), at most
   * `waitMs`; then give this container the function's entries. Returns the call to make
   * when this run is over.
   */
  async beforeRun(view: BuildView, scope: string, version: string, waitMs: number): Promise<() => void> {
    const v = `${scope}\0${version}`;
    let done = () => {};
    if (!this.seen.has(v)) {
      const first = this.firstRuns.get(v);
      if (first) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([first, new Promise<void>((r) => (timer = setTimeout(r, waitMs)))]);
        clearTimeout(timer);
      } else {
        let finish!: () => void;
        this.firstRuns.set(v, new Promise<void>((r) => (finish = r)));
        done = () => {
          this.firstRuns.delete(v);
          this.seen.add(v);
          if (this.seen.size > SEEN_VERSIONS) this.seen.delete(this.seen.values().next().value!);
          finish();
        };
      }
    }
    await this.install(view, scope);
    return done;
  }

  /** Copies the function's entries this container does not have yet into its folder. */
  async install(view: BuildView, scope: string): Promise<void> {
    const s = this.scopes.get(this.scopeKey(scope, view.imageId));
    if (!s) return;
    this.touch(this.scopeKey(scope, view.imageId), s);
    for (const [key, e] of s.entries) {
      if (view.installed.has(key)) continue;
      for (const ext of e.err ? ['out', 'err'] : ['out']) {
        const tmp = join(view.cacheDir, `.${key}.${ext}`);
        await copyFile(join(s.dir, `${key}.${ext}`), tmp);
        await chmod(tmp, ext === 'out' && e.exec ? 0o755 : 0o644);
        await rename(tmp, join(view.cacheDir, `${key}.${ext}`));
      }
      view.installed.add(key);
    }
  }

  /**
   * After a clean run (no process of it left): takes what the front left in the run's
   * /tmp into the store and gives it to this container at once. Anything that is not a
   * regular file with an entry's name and size is refused and left for the wipe.
   */
  async harvest(view: BuildView, scope: string, log: Logger): Promise<number> {
    const from = join(view.tmpDir, BUILD_OUT_NAME);
    const st = await lstat(from).catch(() => null);
    if (!st) return 0;
    if (!st.isDirectory()) {
      this.counts.refused++;
      return 0;
    }
    const names = (await readdir(from)).filter((n) => ENTRY.test(n)).sort();
    this.counts.hits += names.filter((n) => n.endsWith('.hit')).length;
    const key = this.scopeKey(scope, view.imageId);
    let kept = 0;
    for (const name of names.filter((n) => n.endsWith('.out')).slice(0, MAX_PER_RUN)) {
      const id = name.slice(0, 64);
      const out = await this.readEntry(join(from, name));
      if (!out) continue;
      this.counts.compiled++;
      const err = names.includes(`${id}.err`) ? await this.readEntry(join(from, `${id}.err`), 1 << 20) : null;
      await this.keep(key, id, out, err, log);
      kept++;
    }
    if (kept > 0) await this.install(view, scope);
    return kept;
  }

  private async readEntry(path: string, max = this.opts.entryMaxBytes): Promise<{ bytes: Buffer; exec: boolean } | null> {
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK).catch(() => null);
    if (!fh) {
      this.counts.refused++;
      return null;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile() || st.size > max) {
        this.counts.refused++;
        return null;
      }
      const bytes = Buffer.alloc(st.size);
      const { bytesRead } = await fh.read(bytes, 0, st.size, 0);
      return { bytes: bytes.subarray(0, bytesRead), exec: (st.mode & 0o111) !== 0 };
    } finally {
      await fh.close();
    }
  }

  private async keep(key: string, id: string, out: { bytes: Buffer; exec: boolean }, err: { bytes: Buffer } | null, log: Logger): Promise<void> {
    let s = this.scopes.get(key);
    if (!s) {
      s = { dir: join(this.opts.root, createHash('sha256').update(key).digest('hex').slice(0, 32)), entries: new Map(), bytes: 0 };
      await mkdir(s.dir, { recursive: true, mode: 0o700 });
      this.scopes.set(key, s);
    }
    this.touch(key, s);
    if (s.entries.has(id)) return;
    const bytes = out.bytes.length + (err?.bytes.length ?? 0);
    await writeFile(join(s.dir, `${id}.out`), out.bytes, { mode: out.exec ? 0o755 : 0o644 });
    if (err) await writeFile(join(s.dir, `${id}.err`), err.bytes, { mode: 0o644 });
    s.entries.set(id, { bytes, err: err !== null, exec: out.exec });
    s.bytes += bytes;
    this.bytes += bytes;
    this.counts.kept++;
    log.debug({ tag: 'BUILD', entry: id, bytes }, 'compiler output kept for this function');
    await this.bound(key);
  }

  /**
   * Drops the least recently used functions' entries until the store is within its bound,
   * the function just written last; and of that one, its oldest entries.
   */
  private async bound(current: string): Promise<void> {
    for (const [key, s] of this.scopes) {
      if (this.bytes <= this.opts.maxBytes) return;
      if (key === current) continue;
      this.scopes.delete(key);
      this.bytes -= s.bytes;
      await rm(s.dir, { recursive: true, force: true });
      this.opts.log.info({ tag: 'BUILD', bytes: s.bytes, storeBytes: this.bytes }, "build cache: a function's entries dropped to stay within NANOGRID_BUILD_CACHE_MB");
    }
    const s = this.scopes.get(current);
    while (s && this.bytes > this.opts.maxBytes && s.entries.size > 1) {
      const [id, e] = s.entries.entries().next().value!;
      s.entries.delete(id);
      s.bytes -= e.bytes;
      this.bytes -= e.bytes;
      await rm(join(s.dir, `${id}.out`), { force: true });
      await rm(join(s.dir, `${id}.err`), { force: true });
    }
  }

  /** Empties the store (at the agent's start: entries are not kept across restarts). */
  async reset(): Promise<void> {
    this.scopes.clear();
    this.bytes = 0;
    await rm(this.opts.root, { recursive: true, force: true });
    await mkdir(this.opts.root, { recursive: true, mode: 0o700 });
  }

  private touch(key: string, s: Scope): void {
    this.scopes.delete(key);
    this.scopes.set(key, s);
  }

  private scopeKey(scope: string, imageId: string): string {
    return `${imageId}\0${scope}`;
  }
}
