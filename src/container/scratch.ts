import { execFile } from 'node:child_process';
import { chmod, copyFile, lstat, mkdir, readdir, readFile, rm, rmdir, stat, writeFile } from 'node:fs/promises';
import { statfsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { INPUT_DIR, INPUT_FILE } from '../core/sandbox.js';

const exec = promisify(execFile);

/** Code to put in a workspace: a folder of files (the code cache's CodeVersion is one). */
export interface StagedCode {
  /** Changes whenever the code does. */
  id: string;
  dir: string;
  /** Its top-level names: what a workspace keeps between runs. */
  names: readonly string[];
}

/** The folders a function writes: its workspace, /tmp and /dev/shm. */
export const SCRATCH_DIRS = ['work', 'tmp', 'shm'] as const;
/**
 * The runner's own folder (root's, 0700): its socket, and the streams it keeps whole past
 * the output limit, which so count against the same limit as everything else of the run.
 */
export const CONTROL = 'ctl';
export type ScratchDir = (typeof SCRATCH_DIRS)[number] | typeof CONTROL;

export interface ScratchSpec {
  /** The image file (outside every folder a container sees). */
  imagePath: string;
  /** Where the image is mounted on the host; its folders are bound into the container. */
  mountDir: string;
  /**
   * The agent's own view of the same file system, mounted nosymfollow (and nodev, nosuid,
   * noexec): every path the agent resolves in it refuses a symbolic link at any
   * component, so a link a function planted or swapped in is never followed to the host.
   */
  viewDir: string;
  /** Writable bytes the function gets in all its folders together. */
  limitBytes: number;
  /** Reserve the image's blocks on the host disk up front (fallocate) instead of a sparse file. */
  reserve: boolean;
  timeoutMs: number;
}

/**
 * The image's size for a limit: ext4's own share of a small file system (inode tables,
 * bitmaps) added, so the function gets its whole limit. What each container reserves on
 * the host disk.
 */
export function scratchImageBytes(limitBytes: number): number {
  return Math.ceil((limitBytes + Math.max(8 << 20, limitBytes / 16)) / 4096) * 4096;
}

/** How much a scratch file system holds after a run. */
export interface ScratchUsage {
  usedBytes: number;
  /** No block or no inode left: a write in the run met ENOSPC. */
  full: boolean;
  /** Free inodes and blocks: equal before and after a run, they say the run left nothing (DockerContainer.resetWorkspace). */
  inodesFree: number;
  blocksFree: number;
}

/**
 * A container's writable space, with a hard limit the kernel enforces: an ext4 image of
 * its own, loop-mounted on the host, whose folders become the container's workspace, /tmp
 * and /dev/shm. Past the limit a write gets ENOSPC; the host's file system (ext4, XFS or
 * any other that holds a file) only ever holds the image. A project quota would need the
 * host's file system mounted with quotas, and a tmpfs is charged to the container's memory
 * (a function with 128 MB could not write 512 MB, and its peak would count the files).
 */
export class Scratch {
  /** Free inodes and blocks just after it was made: what an emptied one shows again (recycle). */
  private fresh: { inodesFree: number; blocksFree: number } | undefined;

  private constructor(readonly spec: ScratchSpec) {}

  /** Makes the image, its file system and its folders, and mounts it. */
  static async create(spec: ScratchSpec): Promise<Scratch> {
    const s = new Scratch(spec);
    const t = { timeout: spec.timeoutMs };
    const bytes = scratchImageBytes(spec.limitBytes);
    await mkdir(dirname(spec.imagePath), { recursive: true, mode: 0o700 });
    await rm(spec.imagePath, { force: true });
    if (spec.reserve) await exec('fallocate', ['-l', String(bytes), spec.imagePath], t);
    else await exec('truncate', ['-s', String(bytes), spec.imagePath], t);
    try {
      // No journal and no reserved blocks: a scratch space is wiped, never recovered;
      // nodiscard keeps mkfs from punching holes in a reserved image.
      await exec('mkfs.ext4', ['-q', '-F', '-m', '0', '-O', '^has_journal', '-E', 'nodiscard,lazy_itable_init=1', spec.imagePath], t);
      await mkdir(spec.mountDir, { recursive: true, mode: 0o700 });
      await mountLoop(spec.imagePath, spec.mountDir, spec.timeoutMs);
      for (const d of SCRATCH_DIRS) {
        await mkdir(s.hostPath(d), { mode: 0o1777 });
        await chmod(s.hostPath(d), 0o1777);
      }
      await mkdir(s.hostPath(CONTROL), { mode: 0o700 });
      await mkdir(spec.viewDir, { recursive: true, mode: 0o700 });
      await mountView(spec.mountDir, spec.viewDir, spec.timeoutMs);
      const u = statfsSync(spec.mountDir);
      s.fresh = { inodesFree: u.ffree, blocksFree: u.bfree };
    } catch (err) {
      await s.destroy().catch(() => undefined);
      throw err;
    }
    return s;
  }

  /** A folder in the agent's view (no link followed): what the agent reads and writes. */
  path(d: ScratchDir): string {
    return join(this.spec.viewDir, d);
  }

  /** A folder as the container's binds name it (links there are the function's to use). */
  hostPath(d: ScratchDir): string {
    return join(this.spec.mountDir, d);
  }

  /**
   * Puts a copy of `code` in the workspace, emptied first. A copy, not hard links: the
   * workspace is a file system of its own. The code is root's and read-only; the sticky
   * workspace keeps the function from removing it.
   */
  async stage(code: StagedCode): Promise<void> {
    await emptyDir(this.path('work'));
    await copyTree(code.dir, this.path('work'));
  }

  /**
   * Writes the run's input into the workspace (INPUT_DIR/INPUT_FILE), root's and read-only
   * to the function; the next wipe removes it with everything else that is not code.
   */
  async writeInput(bytes: Buffer): Promise<void> {
    const dir = join(this.path('work'), INPUT_DIR);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { mode: 0o755 });
    await writeFile(join(dir, INPUT_FILE), bytes, { mode: 0o444 });
  }

  /** Empties /tmp and /dev/shm (unless `workOnly`), and the workspace but for `keep` (the code's top-level names). */
  async wipe(keep: readonly string[], workOnly = false): Promise<void> {
    await Promise.all([emptyDir(this.path('work'), new Set(keep)), ...(workOnly ? [] : [emptyDir(this.path('tmp')), emptyDir(this.path('shm'))])]);
  }

  async usage(): Promise<ScratchUsage> {
    // One statfs of a local file system answers at once: a thread pool round trip costs more.
    const s = statfsSync(this.spec.mountDir);
    // ext4 refuses a write while a little space still shows free (blocks held back for
    // delayed allocation): count the last 1% (at least 2 MB) as full.
    const slack = Math.max(2 * 1024 * 1024, (s.blocks * s.bsize) / 100);
    return { usedBytes: (s.blocks - s.bfree) * s.bsize, full: s.bavail * s.bsize < slack || s.ffree === 0, inodesFree: s.ffree, blocksFree: s.bfree };
  }

  /**
   * Makes it as a new one is, for another container, once the last is gone: every folder
   * removed and made again (new inodes: no owner, mode or extended attribute of before
   * survives, and a folder that grew keeps no blocks), then checked. Returns null when it
   * is as new: exactly the folders a new one has, root's, with their modes, empty, and
   * free inodes and blocks equal to those just after mkfs (so no file, folder, link or
   * attribute block is left anywhere, and none is held open). Else why not: the caller
   * destroys it. Only after its container was removed: nothing of the function can race.
   */
  async recycle(): Promise<string | null> {
    if (!this.fresh) return 'no record of it as new';
    if (!(await mountPoints()).has(this.spec.viewDir)) return 'not mounted';
    for (const d of [...SCRATCH_DIRS, CONTROL] as const) await rm(this.path(d), { recursive: true, force: true, maxRetries: 2 });
    for (const d of SCRATCH_DIRS) {
      await mkdir(this.path(d), { mode: 0o1777 });
      await chmod(this.path(d), 0o1777);
    }
    await mkdir(this.path(CONTROL), { mode: 0o700 });
    const names = (await readdir(this.spec.viewDir)).sort();
    const expected = [...SCRATCH_DIRS, CONTROL, 'lost+found'].sort();
    if (names.join('/') !== expected.join('/')) return `unexpected top-level names: ${names.join(', ')}`;
    for (const d of [...SCRATCH_DIRS, CONTROL, 'lost+found'] as const) {
      const p = join(this.spec.viewDir, d);
      const st = await lstat(p);
      const mode = d === CONTROL || d === 'lost+found' ? 0o700 : 0o1777;
      if (!st.isDirectory() || st.uid !== 0 || st.gid !== 0 || (st.mode & 0o7777) !== mode) return `${d} is not root's ${mode.toString(8)} folder`;
      if ((await readdir(p)).length > 0) return `${d} is not empty`;
    }
    const u = statfsSync(this.spec.mountDir);
    if (u.ffree !== this.fresh.inodesFree) return `${this.fresh.inodesFree - u.ffree} inodes more than new`;
    if (u.bfree !== this.fresh.blocksFree) return `${this.fresh.blocksFree - u.bfree} blocks more than new`;
    return null;
  }

  /** Unmounts (lazily if something still holds it) and deletes the image. */
  async destroy(): Promise<void> {
    await unmount(this.spec.viewDir, this.spec.timeoutMs);
    await unmount(this.spec.mountDir, this.spec.timeoutMs);
    // Both are empty mount points now: rmdir, never a recursive remove into a file system
    // that a failed unmount would have left in place.
    await rmdir(this.spec.viewDir).catch(ignoreMissing);
    await rmdir(this.spec.mountDir).catch(ignoreMissing);
    await rm(this.spec.imagePath, { force: true });
  }
}

/**
 * Where a container gets its scratch file system, and gives it back once the container
 * is gone (the pool's ScratchStock recycles them; a solo container makes its own).
 */
export interface ScratchSource {
  take(): Promise<Scratch>;
  /** Its container is being removed: it comes back soon (the stock need not make one meanwhile). */
  returning?(): void;
  /**
   * After its container's removal: the source recycles it, or destroys it (`reusable`
   * false: the engine could not remove the container, which may still hold it).
   */
  give(s: Scratch, o: { reusable: boolean }): Promise<void>;
}

/** A scratch file system of its own at fixed paths, made on take and destroyed on give: for a container without a pool. */
export class OwnScratch implements ScratchSource {
  constructor(private readonly spec: ScratchSpec) {}

  take(): Promise<Scratch> {
    return Scratch.create(this.spec);
  }

  give(s: Scratch): Promise<void> {
    return s.destroy();
  }
}

async function mountLoop(image: string, dir: string, timeoutMs: number): Promise<void> {
  // Two mounts may race for the same free loop device; mount reports it busy: try again.
  for (let attempt = 1; ; attempt++) {
    try {
      await exec('mount', ['-t', 'ext4', '-o', 'loop,nosuid,nodev,noatime', image, dir], { timeout: timeoutMs });
      return;
    } catch (err) {
      if (attempt >= 4) throw new Error(`cannot mount the scratch image ${image}: ${String(err)}`, { cause: err });
      await new Promise((r) => setTimeout(r, 20 * attempt * Math.random()));
    }
  }
}

/**
 * Binds `dir` at `view`, nosymfollow, nodev, nosuid and noexec: a second mount of the same
 * file system (never a second loop mount of the image, which would be a second file
 * system on the same blocks). util-linux applies the options to the bind in the same call.
 */
async function mountView(dir: string, view: string, timeoutMs: number): Promise<void> {
  await exec('mount', ['--bind', '-o', 'nosymfollow,nodev,nosuid,noexec', dir, view], { timeout: timeoutMs });
  // An old mount(8) or kernel would make a plain bind and say nothing: check the flag is there.
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  const line = info.split('\n').find((l) => l.split(' ')[4] === view);
  if (!line?.split(' ')[5]?.split(',').includes('nosymfollow')) {
    await exec('umount', ['-l', view], { timeout: timeoutMs }).catch(() => undefined);
    throw new Error(`cannot make the agent's view of ${dir} nosymfollow (Linux 5.10 and util-linux 2.38 or later are required)`);
  }
}

function ignoreMissing(err: NodeJS.ErrnoException): void {
  if (err.code !== 'ENOENT') throw err;
}

/** Unmounts `dir` if it is a mount point; a busy one is detached lazily (its loop device goes with its last user). */
export async function unmount(dir: string, timeoutMs: number): Promise<void> {
  if (!(await mountPoints()).has(dir)) return;
  await exec('umount', ['-l', dir], { timeout: timeoutMs });
}

/** Unmounts every mount point under `root` (what a killed agent left), deepest first. */
export async function unmountUnder(root: string, timeoutMs: number): Promise<number> {
  const prefix = root.endsWith('/') ? root : `${root}/`;
  const under = [...(await mountPoints())].filter((m) => m.startsWith(prefix)).sort((a, b) => b.length - a.length);
  for (const m of under) await exec('umount', ['-l', m], { timeout: timeoutMs });
  return under.length;
}

async function mountPoints(): Promise<Set<string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  // Field 5 is the mount point, with spaces and the like octal-escaped.
  return new Set(text.split('\n').filter(Boolean).map((l) => l.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)))));
}

async function emptyDir(dir: string, keep?: ReadonlySet<string>): Promise<void> {
  const names = await readdir(dir);
  await Promise.all(names.filter((n) => !keep?.has(n)).map((n) => rm(join(dir, n), { recursive: true, force: true, maxRetries: 2 })));
}

async function copyTree(from: string, to: string): Promise<void> {
  for (const e of await readdir(from, { withFileTypes: true })) {
    const src = join(from, e.name);
    const dst = join(to, e.name);
    if (e.isDirectory()) {
      await mkdir(dst, { mode: 0o755 });
      await copyTree(src, dst);
      await chmod(dst, (await stat(src)).mode & 0o7777);
    } else if (e.isFile()) {
      // copyFile keeps the source's mode (the cache's read-only code stays so).
      await copyFile(src, dst);
    }
  }
}
