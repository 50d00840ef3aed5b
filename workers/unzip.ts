// Piscina task: extract a function's zip into its workspace, refusing anything that could
// escape the workspace or exhaust the disk. Runs in a worker thread; holds no state.
import { createWriteStream } from 'node:fs';
import { chown, mkdir } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { FS_BLOCK } from '../src/core/sandbox.js';

export interface UnzipTask {
  zipPath: string;
  destDir: string;
  maxEntries: number;
  maxBytes: number;
  /** Owner for every file and folder written, so the unprivileged function can use them. */
  uid?: number;
  gid?: number;
}

export type UnzipReason =
  | 'ZIP_INVALID'
  | 'ZIP_SLIP'
  | 'ZIP_ABSOLUTE_PATH'
  | 'ZIP_LINK'
  | 'ZIP_TOO_MANY_ENTRIES'
  | 'ZIP_TOO_LARGE';

export type UnzipOutcome =
  /** bytes: of the files' contents; diskBytes: what they hold on disk (4 KiB blocks, one per folder); inodes: files and folders made. */
  | { ok: true; entries: number; bytes: number; diskBytes: number; inodes: number; elapsedMs: number }
  | { ok: false; reason: UnzipReason; message: string };

class Refusal extends Error {
  constructor(
    readonly reason: UnzipReason,
    message: string,
  ) {
    super(message);
  }
}

const BLOCK = FS_BLOCK;
const blocksOf = (bytes: number) => Math.ceil(bytes / BLOCK) * BLOCK;

const S_IFMT = 0o170000;
const S_IFLNK = 0o120000;

/** Classifies one entry name; returns the safe absolute target or throws a Refusal. */
export function checkEntryName(destDir: string, name: string): string {
  if (name.includes('\0')) throw new Refusal('ZIP_INVALID', `entry name has a NUL byte`);
  const normalized = name.replace(/\\/g, '/');
  if (normalized.startsWith('/') || /^[a-zA-Z]:/.test(normalized)) {
    throw new Refusal('ZIP_ABSOLUTE_PATH', `entry "${name}" has an absolute path`);
  }
  if (normalized.split('/').includes('..')) {
    throw new Refusal('ZIP_SLIP', `entry "${name}" escapes the workspace`);
  }
  const target = resolve(destDir, normalized);
  if (target !== destDir && !target.startsWith(destDir + sep)) {
    throw new Refusal('ZIP_SLIP', `entry "${name}" resolves outside the workspace`);
  }
  return target;
}

export default async function unzip(task: UnzipTask): Promise<UnzipOutcome> {
  const started = performance.now();
  const destDir = resolve(task.destDir);
  let zip: yauzl.ZipFile | undefined;
  try {
    try {
      zip = await yauzl.openPromise(task.zipPath, {
        lazyEntries: true,
        // We decode and judge names ourselves so that each refusal gets its own reason.
        decodeStrings: false,
        validateEntrySizes: true,
        autoClose: false,
      });
    } catch (err) {
      throw new Refusal('ZIP_INVALID', `not a readable zip: ${(err as Error).message}`);
    }
    if (zip.entryCount > task.maxEntries) {
      throw new Refusal('ZIP_TOO_MANY_ENTRIES', `zip has ${zip.entryCount} entries, more than the limit of ${task.maxEntries}`);
    }
    await mkdir(destDir, { recursive: true });
    await own(destDir, task);

    let written = 0;
    let declared = 0;
    let entries = 0;
    let files = 0;
    let fileBlocks = 0;
    const made = new Set<string>([destDir]);
    // Folders are inodes and blocks too, and a deep path makes one for each of its parents:
    // what the entry limit counts is every file and folder made, not the zip's entries.
    const counted = () => {
      if (files + made.size > task.maxEntries) {
        throw new Refusal('ZIP_TOO_MANY_ENTRIES', `zip makes more than ${task.maxEntries} files and folders (its folders' parents included)`);
      }
    };
    const ensureDir = async (dir: string) => {
      if (made.has(dir)) return;
      await ensureDir(dirname(dir));
      await mkdir(dir, { recursive: true });
      await own(dir, task);
      made.add(dir);
      counted();
    };

    for (;;) {
      const entry = await nextEntry(zip);
      if (!entry) break;
      entries++;
      const rawName = entry.fileName as unknown as Buffer;
      const name = yauzl.getFileNameLowLevel(entry.generalPurposeBitFlag, rawName, entry.extraFields, false);
      const target = checkEntryName(destDir, name);
      const mode = (entry.externalFileAttributes >>> 16) & 0xffff;
      if ((mode & S_IFMT) === S_IFLNK) {
        throw new Refusal('ZIP_LINK', `entry "${name}" is a symbolic link`);
      }
      if (name.endsWith('/')) {
        await ensureDir(target);
        continue;
      }
      // The declared size is checked before inflating, the real count while inflating:
      // a header can lie, and validateEntrySizes only notices at the end of the entry.
      declared += entry.uncompressedSize;
      if (declared > task.maxBytes) {
        throw new Refusal('ZIP_TOO_LARGE', `zip expands to more than ${task.maxBytes} bytes`);
      }
      await ensureDir(dirname(target));
      const input = await zip.openReadStreamPromise(entry);
      const counter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          written += chunk.length;
          if (written > task.maxBytes) cb(new Refusal('ZIP_TOO_LARGE', `zip expands to more than ${task.maxBytes} bytes`));
          else cb(null, chunk);
        },
      });
      // Keep only the owner's execute bit from the archive (run.sh may rely on it).
      const fileMode = mode & 0o100 ? 0o755 : 0o644;
      try {
        await pipeline(input, counter, createWriteStream(target, { flags: 'wx', mode: fileMode }));
      } catch (err) {
        if (err instanceof Refusal) throw err;
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EEXIST') throw new Refusal('ZIP_INVALID', `entry "${name}" appears twice`);
        throw new Refusal('ZIP_INVALID', `entry "${name}" could not be extracted: ${(err as Error).message}`);
      }
      await own(target, task);
      files++;
      fileBlocks += blocksOf(entry.uncompressedSize);
      counted();
    }
    return { ok: true, entries, bytes: written, diskBytes: fileBlocks + made.size * BLOCK, inodes: files + made.size, elapsedMs: performance.now() - started };
  } catch (err) {
    if (err instanceof Refusal) return { ok: false, reason: err.reason, message: err.message };
    return { ok: false, reason: 'ZIP_INVALID', message: (err as Error).message };
  } finally {
    zip?.close();
  }
}

function nextEntry(zip: yauzl.ZipFile): Promise<yauzl.Entry | undefined> {
  return new Promise((resolveEntry, rejectEntry) => {
    const onEntry = (e: yauzl.Entry) => {
      cleanup();
      resolveEntry(e);
    };
    const onEnd = () => {
      cleanup();
      resolveEntry(undefined);
    };
    const onError = (err: Error) => {
      cleanup();
      rejectEntry(new Refusal('ZIP_INVALID', `corrupt zip: ${err.message}`));
    };
    const cleanup = () => {
      zip.off('entry', onEntry);
      zip.off('end', onEnd);
      zip.off('error', onError);
    };
    zip.on('entry', onEntry);
    zip.on('end', onEnd);
    zip.on('error', onError);
    zip.readEntry();
  });
}

async function own(path: string, task: UnzipTask): Promise<void> {
  if (task.uid !== undefined && task.gid !== undefined) await chown(path, task.uid, task.gid);
}
