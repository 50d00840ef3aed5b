import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { constants } from 'node:fs';
import { lstat, open, readdir, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredOutput } from '../core/result.js';
import type { Emitter } from '../core/events.js';
import type { Logger } from '../core/log.js';
import type { OutputPort, OutputReport } from '../run/ports.js';

export interface OutputStoreOptions {
  s3: S3Client;
  /** S3_USER_DATA_BUCKET. */
  bucket: string;
  maxFiles: number;
  maxBytes: number;
  timeoutMs: number;
  /** Each file stored or not, for metrics. */
  events?: Emitter<'output'>;
}


/** The folder in the workspace whose files are kept. */
export const OUTPUT_DIR = 'output';
const MAX_DEPTH = 16;
const PARALLEL = 4;
/** Lines of outputErrors in a result; past them one line says how many more there were. */
export const MAX_ERRORS = 20;
/** A path shown in an error line is cut to this many characters (names are the function's). */
const MAX_SHOWN = 200;

/**
 * Keeps what a function wrote under `output/` in its workspace: each regular file goes to
 * `{functionId}/{requestId}/{path}` in the user-data bucket, with its version id when the
 * bucket is versioned. It reads the function's files on the host through the agent's
 * nosymfollow view of the workspace (scratch.ts), only after the run was verified clean:
 * no link is followed at any component, and a file is opened without blocking and
 * checked to be a regular one before a byte is read. Limits and failures are reported,
 * never thrown: the run happened and its result stands.
 */
export class OutputStore implements OutputPort {
  constructor(private readonly opts: OutputStoreOptions) {}

  async store(workspace: string, functionId: string, requestId: string, log: Logger): Promise<OutputReport> {
    const errors = new ErrorList();
    const root = join(workspace, OUTPUT_DIR);
    const top = await lstat(root).catch(() => undefined);
    if (!top) return { outputs: [], errors: [] };
    if (!top.isDirectory()) {
      errors.add(`${OUTPUT_DIR} is not a folder (links are not followed)`);
      return { outputs: [], errors: errors.lines() };
    }
    // More entries than this are not looked at: a function can make tens of thousands.
    const budget = { entries: Math.max(1000, this.opts.maxFiles * 10) };
    const files: { rel: string; bytes: number }[] = [];
    try {
      await this.walk(root, '', 0, files, errors, budget);
    } catch (err) {
      errors.add(`${OUTPUT_DIR} could not be read: ${String(err)}`);
      return { outputs: [], errors: errors.lines() };
    }
    if (budget.entries < 0) errors.add(`${OUTPUT_DIR} holds more than ${Math.max(1000, this.opts.maxFiles * 10)} entries: the rest were not looked at`);
    files.sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));

    const chosen: typeof files = [];
    let total = 0;
    for (const f of files) {
      if (chosen.length >= this.opts.maxFiles) {
        errors.add(`${OUTPUT_DIR}/${shown(f.rel)}: over NANOGRID_OUTPUTS_MAX_FILES (${this.opts.maxFiles}), not stored`);
        this.opts.events?.emit('output', 'skipped', f.bytes);
      } else if (total + f.bytes > this.opts.maxBytes) {
        errors.add(`${OUTPUT_DIR}/${shown(f.rel)}: ${f.bytes} bytes would pass NANOGRID_OUTPUTS_MAX_BYTES (${this.opts.maxBytes}), not stored`);
        this.opts.events?.emit('output', 'skipped', f.bytes);
      } else {
        chosen.push(f);
        total += f.bytes;
      }
    }

    const stored: (StoredOutput | undefined)[] = new Array(chosen.length);
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < chosen.length; i = next++) {
        const f = chosen[i]!;
        const key = `${functionId}/${requestId}/${f.rel}`;
        try {
          stored[i] = await this.put(join(root, f.rel), key, f.bytes);
          this.opts.events?.emit('output', 'stored', stored[i]!.bytes);
        } catch (err) {
          errors.add(`${OUTPUT_DIR}/${shown(f.rel)}: upload failed: ${String(err)}`);
          this.opts.events?.emit('output', 'failed', f.bytes);
          log.warn({ tag: 'S3', key: shown(key), err }, 'output not stored');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, chosen.length) }, worker));
    const outputs = stored.filter((x): x is StoredOutput => x !== undefined);
    if (outputs.length > 0) log.info({ tag: 'S3', bucket: this.opts.bucket, files: outputs.length, bytes: total }, 'outputs stored');
    return { outputs, errors: errors.lines() };
  }

  /**
   * Stores a stream the runner kept whole (stdout or stderr past the output limit) as
   * `{functionId}/{requestId}/{name}`, then removes its spool file (stored or not: the
   * next run's would start over); the error text when it could not be stored.
   */
  async storeStream(path: string, functionId: string, requestId: string, name: string, log: Logger): Promise<StoredOutput | string> {
    const key = `${functionId}/${requestId}/${name}`;
    try {
      const stored = await this.put(path, key, Infinity);
      this.opts.events?.emit('output', 'stored', stored.bytes);
      return stored;
    } catch (err) {
      this.opts.events?.emit('output', 'failed', 0);
      log.warn({ tag: 'S3', key, err }, 'full output stream not stored');
      return `${name}: upload failed: ${String(err)}`;
    } finally {
      await rm(path, { force: true });
    }
  }

  private async walk(dir: string, rel: string, depth: number, out: { rel: string; bytes: number }[], errors: ErrorList, budget: { entries: number }): Promise<void> {
    if (depth > MAX_DEPTH) {
      errors.add(`${OUTPUT_DIR}/${shown(rel)}: deeper than ${MAX_DEPTH} folders, not stored`);
      return;
    }
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (--budget.entries < 0) return;
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await this.walk(join(dir, e.name), r, depth + 1, out, errors, budget);
      else if (e.isFile()) out.push({ rel: r, bytes: (await lstat(join(dir, e.name))).size });
      else errors.add(`${OUTPUT_DIR}/${shown(r)}: not a regular file (links are not followed), not stored`);
    }
  }

  /**
   * Uploads one file, at most `maxBytes` of it (what the walk saw: a file that grew since
   * is cut there). O_NONBLOCK: a name swapped for a FIFO would otherwise block the open.
   */
  private async put(path: string, key: string, maxBytes: number): Promise<StoredOutput> {
    const fh = await openRegular(path);
    try {
      const size = Math.min((await fh.stat()).size, maxBytes);
      const res = await this.opts.s3.send(
        new PutObjectCommand({ Bucket: this.opts.bucket, Key: key, Body: size === 0 ? Buffer.alloc(0) : fh.createReadStream({ autoClose: false, start: 0, end: size - 1 }), ContentLength: size }),
        { abortSignal: AbortSignal.timeout(this.opts.timeoutMs) },
      );
      return { key, bytes: size, versionId: res.VersionId ?? null };
    } finally {
      await fh.close();
    }
  }
}

/** Opens a file for reading only if it is a regular file, without following a link or waiting on a FIFO. */
export async function openRegular(path: string): Promise<FileHandle> {
  const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    if (!(await fh.stat()).isFile()) throw new Error('not a regular file');
    return fh;
  } catch (err) {
    await fh.close();
    throw err;
  }
}

/** Error lines, at most MAX_ERRORS of them: past that only counted, and the count is the last line. */
class ErrorList {
  private readonly kept: string[] = [];
  private more = 0;

  add(line: string): void {
    if (this.kept.length < MAX_ERRORS - 1) this.kept.push(line);
    else this.more++;
  }

  lines(): string[] {
    return this.more > 0 ? [...this.kept, `... and ${this.more} more not stored (only the first ${MAX_ERRORS - 1} are listed)`] : [...this.kept];
  }
}

const shown = (rel: string) => (rel.length > MAX_SHOWN ? `${rel.slice(0, MAX_SHOWN)}...` : rel);
