import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { constants } from 'node:fs';
import { lstat, open, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredOutput } from '../core/result.js';
import type { Logger } from '../observe/log.js';

export interface OutputStoreOptions {
  s3: S3Client;
  /** S3_USER_DATA_BUCKET. */
  bucket: string;
  maxFiles: number;
  maxBytes: number;
  timeoutMs: number;
  /** Each file stored or not, for metrics. */
  onFile?: (outcome: 'stored' | 'failed' | 'skipped', bytes: number) => void;
}

export interface OutputReport {
  outputs: StoredOutput[];
  /** What was not stored, and why (limits, links, upload failures). */
  errors: string[];
}

/** The folder in the workspace whose files are kept. */
export const OUTPUT_DIR = 'output';
const MAX_DEPTH = 16;
const PARALLEL = 4;

/**
 * Keeps what a function wrote under `output/` in its workspace: each regular file goes to
 * `{functionId}/{requestId}/{path}` in the user-data bucket, with its version id when the
 * bucket is versioned. It reads the function's files on the host, so it never follows a
 * link (a link to `/` would be the host's root). Limits and failures are reported, never
 * thrown: the run happened and its result stands.
 */
export class OutputStore {
  constructor(private readonly opts: OutputStoreOptions) {}

  async store(workspace: string, functionId: string, requestId: string, log: Logger): Promise<OutputReport> {
    const report: OutputReport = { outputs: [], errors: [] };
    const root = join(workspace, OUTPUT_DIR);
    const top = await lstat(root).catch(() => undefined);
    if (!top) return report;
    if (!top.isDirectory()) {
      report.errors.push(`${OUTPUT_DIR} is not a folder (links are not followed)`);
      return report;
    }
    const files: { rel: string; bytes: number }[] = [];
    try {
      await this.walk(root, '', 0, files, report.errors);
    } catch (err) {
      report.errors.push(`${OUTPUT_DIR} could not be read: ${String(err)}`);
      return report;
    }
    files.sort((a, b) => a.rel.localeCompare(b.rel));

    const chosen: typeof files = [];
    let total = 0;
    for (const f of files) {
      if (chosen.length >= this.opts.maxFiles) {
        report.errors.push(`${OUTPUT_DIR}/${f.rel}: over NANOGRID_OUTPUTS_MAX_FILES (${this.opts.maxFiles}), not stored`);
        this.opts.onFile?.('skipped', f.bytes);
      } else if (total + f.bytes > this.opts.maxBytes) {
        report.errors.push(`${OUTPUT_DIR}/${f.rel}: ${f.bytes} bytes would pass NANOGRID_OUTPUTS_MAX_BYTES (${this.opts.maxBytes}), not stored`);
        this.opts.onFile?.('skipped', f.bytes);
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
          this.opts.onFile?.('stored', f.bytes);
        } catch (err) {
          report.errors.push(`${OUTPUT_DIR}/${f.rel}: upload failed: ${String(err)}`);
          this.opts.onFile?.('failed', f.bytes);
          log.warn({ tag: 'S3', key, err: String(err) }, 'output not stored');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL, chosen.length) }, worker));
    report.outputs = stored.filter((x): x is StoredOutput => x !== undefined);
    if (report.outputs.length > 0) log.info({ tag: 'S3', bucket: this.opts.bucket, files: report.outputs.length, bytes: total }, 'outputs stored');
    return report;
  }

  /**
   * Stores a stream the runner kept whole (stdout or stderr past the output limit) as
   * `{functionId}/{requestId}/{name}`, then removes its spool file (stored or not: the
   * next run's would start over); the error text when it could not be stored.
   */
  async storeStream(path: string, functionId: string, requestId: string, name: string, log: Logger): Promise<StoredOutput | string> {
    const key = `${functionId}/${requestId}/${name}`;
    try {
      const bytes = (await lstat(path)).size;
      const stored = await this.put(path, key, bytes);
      this.opts.onFile?.('stored', bytes);
      return stored;
    } catch (err) {
      this.opts.onFile?.('failed', 0);
      log.warn({ tag: 'S3', key, err: String(err) }, 'full output stream not stored');
      return `${name}: upload failed: ${String(err)}`;
    } finally {
      await rm(path, { force: true });
    }
  }

  private async walk(dir: string, rel: string, depth: number, out: { rel: string; bytes: number }[], errors: string[]): Promise<void> {
    if (depth > MAX_DEPTH) {
      errors.push(`${OUTPUT_DIR}/${rel}: deeper than ${MAX_DEPTH} folders, not stored`);
      return;
    }
    for (const e of await readdir(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) await this.walk(join(dir, e.name), r, depth + 1, out, errors);
      else if (e.isFile()) out.push({ rel: r, bytes: (await lstat(join(dir, e.name))).size });
      else errors.push(`${OUTPUT_DIR}/${r}: not a regular file (links are not followed), not stored`);
    }
  }

  private async put(path: string, key: string, bytes: number): Promise<StoredOutput> {
    // O_NOFOLLOW: the walk saw a regular file, and nothing of the run is left to swap it.
    const fh = await open(path, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const res = await this.opts.s3.send(
        new PutObjectCommand({ Bucket: this.opts.bucket, Key: key, Body: fh.createReadStream({ autoClose: false }), ContentLength: bytes }),
        { abortSignal: AbortSignal.timeout(this.opts.timeoutMs) },
      );
      return { key, bytes, versionId: res.VersionId ?? null };
    } finally {
      await fh.close();
    }
  }
}
