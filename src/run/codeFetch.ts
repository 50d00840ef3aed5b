import { GetObjectCommand, NoSuchKey, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { createWriteStream } from 'node:fs';
import { chown, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { UnzipOutcome, UnzipTask } from '../../workers/unzip.js';
import type { Invocation } from '../core/invocation.js';
import { InvocationError } from '../core/reasons.js';
import { SANDBOX_GID, SANDBOX_UID } from '../core/sandbox.js';
import type { ThreadPool } from './threads.js';

export interface CodeFetchOptions {
  s3: S3Client;
  threads: ThreadPool;
  s3TimeoutMs: number;
  codeMaxBytes: number;
  zipMaxEntries: number;
  zipMaxBytes: number;
}

export interface FetchedCode {
  dir: string;
  entries: number;
  bytes: number;
  fetchMs: number;
}

/**
 * Puts an invocation's code into a fresh folder `dir` (a staging folder that the pool
 * later moves into the container's workspace), owned by the sandbox user.
 */
export class CodeFetcher {
  constructor(private readonly opts: CodeFetchOptions) {}

  async fetch(inv: Invocation, dir: string): Promise<FetchedCode> {
    const started = performance.now();
    await rm(dir, { recursive: true, force: true });
    if (inv.code.kind === 'inline') {
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'main.py'), inv.code.code, { mode: 0o644 });
      await chown(dir, SANDBOX_UID, SANDBOX_GID);
      await chown(join(dir, 'main.py'), SANDBOX_UID, SANDBOX_GID);
      return { dir, entries: 1, bytes: Buffer.byteLength(inv.code.code), fetchMs: performance.now() - started };
    }

    const zipPath = `${dir}.zip`;
    try {
      await this.download(inv.code.bucket, inv.code.key, zipPath);
      const task: UnzipTask = {
        zipPath,
        destDir: dir,
        maxEntries: this.opts.zipMaxEntries,
        maxBytes: this.opts.zipMaxBytes,
        uid: SANDBOX_UID,
        gid: SANDBOX_GID,
      };
      const out = await this.opts.threads.run<UnzipOutcome>(task, 'unzip');
      if (!out.ok) {
        await rm(dir, { recursive: true, force: true });
        throw new InvocationError(out.reason, 'permanent', out.message);
      }
      return { dir, entries: out.entries, bytes: out.bytes, fetchMs: performance.now() - started };
    } finally {
      await rm(zipPath, { force: true });
    }
  }

  private async download(bucket: string, key: string, target: string): Promise<void> {
    const where = `s3://${bucket}/${key}`;
    const signal = AbortSignal.timeout(this.opts.s3TimeoutMs);
    let body: Readable;
    try {
      const res = await this.opts.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }), { abortSignal: signal });
      if (res.ContentLength !== undefined && res.ContentLength > this.opts.codeMaxBytes) {
        (res.Body as Readable | undefined)?.destroy();
        throw new InvocationError('CODE_TOO_LARGE', 'permanent', `${where} is ${res.ContentLength} bytes, over the ${this.opts.codeMaxBytes} byte limit`);
      }
      if (!res.Body) throw new InvocationError('S3_UNAVAILABLE', 'transient', `${where} returned no body`);
      body = res.Body as Readable;
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
  }
}

export function classifyS3Error(err: unknown, where: string): InvocationError {
  if (err instanceof InvocationError) return err;
  if (err instanceof NoSuchKey || (err instanceof S3ServiceException && (err.name === 'NoSuchKey' || err.name === 'NoSuchBucket'))) {
    // Transient on purpose: the Controller may enqueue before its upload is visible.
    // Redelivery retries it, and the queue's redrive policy ends it in the DLQ.
    return new InvocationError('S3_NOT_FOUND', 'transient', `${where} does not exist (${err.name})`, { cause: err });
  }
  const e = err as Error;
  return new InvocationError('S3_UNAVAILABLE', 'transient', `${where} could not be read: ${e.name}: ${e.message}`, { cause: err });
}
