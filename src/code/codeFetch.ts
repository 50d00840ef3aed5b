import { GetObjectCommand, HeadObjectCommand, NoSuchKey, NotFound, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { createWriteStream } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { UnzipOutcome, UnzipTask } from '../../workers/unzip.js';
import { FS_BLOCK } from '../core/sandbox.js';
import { classifyError } from '../core/errorClass.js';
import { InvocationError } from '../core/reasons.js';
import type { ThreadPool } from '../core/threads.js';

export interface CodeFetchOptions {
  s3: S3Client;
  threads: ThreadPool;
  s3TimeoutMs: number;
  codeMaxBytes: number;
  zipMaxEntries: number;
  zipMaxBytes: number;
}

export interface Unpacked {
  entries: number;
  bytes: number;
  /** What it holds on disk (blocks, a folder's included) and the files and folders it made. */
  diskBytes: number;
  inodes: number;
  /** The object's ETag when it was read (what a later revalidation compares against). */
  etag: string | undefined;
}

/**
 * Reads code from S3 and unpacks it into a folder: owned by root, files 0644 (0755 with
 * the archive's execute bit), so the function can read and run its code but never change
 * it. The unzip runs on a thread, with the zip bomb and path checks in workers/unzip.ts.
 */
export class CodeFetcher {
  constructor(private readonly opts: CodeFetchOptions) {}

  async unpackS3(bucket: string, key: string, dir: string): Promise<Unpacked> {
    const zipPath = `${dir}.zip`;
    try {
      const etag = await this.download(bucket, key, zipPath);
      const task: UnzipTask = { zipPath, destDir: dir, maxEntries: this.opts.zipMaxEntries, maxBytes: this.opts.zipMaxBytes };
      const out = await this.opts.threads.run<UnzipOutcome>(task, 'unzip');
      if (!out.ok) {
        await rm(dir, { recursive: true, force: true });
        throw new InvocationError(out.reason, 'permanent', out.message);
      }
      return { entries: out.entries, bytes: out.bytes, diskBytes: out.diskBytes, inodes: out.inodes, etag };
    } finally {
      await rm(zipPath, { force: true });
    }
  }

  /** The older Controller's inline source, as main.py. */
  async unpackInline(code: string, dir: string): Promise<Unpacked> {
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await writeFile(join(dir, 'main.py'), code, { mode: 0o644 });
    const bytes = Buffer.byteLength(code);
    return { entries: 1, bytes, diskBytes: FS_BLOCK + Math.ceil(bytes / FS_BLOCK) * FS_BLOCK, inodes: 2, etag: undefined };
  }

  /** The object's current ETag (a HEAD: no body), for revalidation. */
  async etag(bucket: string, key: string): Promise<string | undefined> {
    try {
      const res = await this.opts.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: AbortSignal.timeout(this.opts.s3TimeoutMs) });
      return res.ETag;
    } catch (err) {
      throw classifyS3Error(err, `s3://${bucket}/${key}`);
    }
  }

  private async download(bucket: string, key: string, target: string): Promise<string | undefined> {
    const where = `s3://${bucket}/${key}`;
    const signal = AbortSignal.timeout(this.opts.s3TimeoutMs);
    let body: Readable;
    let etag: string | undefined;
    try {
      const res = await this.opts.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
      if (res.ContentLength !== undefined && res.ContentLength > this.opts.codeMaxBytes) {
        (res.Body as Readable | undefined)?.destroy();
        throw new InvocationError('CODE_TOO_LARGE', 'permanent', `${where} is ${res.ContentLength} bytes, over the ${this.opts.codeMaxBytes} byte limit`);
      }
      if (!res.Body) throw new InvocationError('S3_UNAVAILABLE', 'transient', `${where} returned no body`);
      body = res.Body as Readable;
      etag = res.ETag;
    } catch (err) {
      throw classifyS3Error(err, where);
    }
    const max = this.opts.codeMaxBytes;
    let seen = 0;
    const cap = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        seen += chunk.length;
        if (seen > max) cb(new InvocationError('CODE_TOO_LARGE', 'permanent', `${where} exceeds the ${max} byte limit`));
        else cb(null, chunk);
      },
    });
    try {
      await pipeline(body, cap, createWriteStream(target), { signal });
    } catch (err) {
      throw classifyS3Error(err, where);
    }
    return etag;
  }
}

export function classifyS3Error(err: unknown, where: string): InvocationError {
  if (err instanceof InvocationError) return err;
  if (err instanceof NoSuchKey || err instanceof NotFound || (err instanceof S3ServiceException && (err.name === 'NoSuchKey' || err.name === 'NoSuchBucket' || err.name === 'NotFound'))) {
    // Transient on purpose: the Controller may enqueue before its upload is visible.
    // Redelivery retries it, and the queue's redrive policy ends it in the DLQ.
    return new InvocationError('S3_NOT_FOUND', 'transient', `${where} does not exist (${err.name})`, { cause: err });
  }
  const e = err as Error;
  const c = classifyError(err);
  if (c.kind === 'permanent') return new InvocationError('S3_REQUEST_INVALID', 'permanent', `${where} cannot be read: ${e.name}: ${e.message}`, { cause: err });
  return new InvocationError('S3_UNAVAILABLE', 'transient', `${where} could not be read: ${e.name}: ${e.message}`, { cause: err });
}
