import { LRUCache } from 'lru-cache';
import type { AgentEvents, Emitter } from '../core/events.js';
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { classifyError } from '../core/errorClass.js';
import type { Logger } from '../core/log.js';
import { Backoff } from '../core/backoff.js';

/** A code version that succeeded: where it is, and its ETag (its version). */
export interface ArchivedVersion {
  bucket: string;
  key: string;
  etag: string;
}

export type ArchiveEvent = AgentEvents['archive'][0];

export interface CodeArchiveOptions {
  /** The code buckets' S3. */
  source: S3Client;
  /** The archive's S3 (Google Cloud Storage's XML API: see archiveClient). */
  target: S3Client;
  bucket: string;
  log: Logger;
  timeoutMs: number;
  /** Versions waiting at most; past it new ones are dropped (and counted). */
  maxQueue?: number;
  attempts?: number;
  events?: Emitter<'archive'>;
}

/**
 * An S3 client for Google Cloud Storage's S3-compatible XML API, with HMAC keys. The SDK's
 * default request checksums (x-amz-checksum-* headers, aws-chunked trailers) are sent
 * only where an operation requires them: GCS refuses them otherwise.
 */
export function archiveClient(opts: { endpoint: string; accessKeyId: string; secretAccessKey: string; region?: string }): S3Client {
  return new S3Client({
    endpoint: opts.endpoint,
    region: opts.region ?? 'auto',
    forcePathStyle: true,
    credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    maxAttempts: 1,
  });
}

/**
 * Copies the code of each function version that succeeded to a second cloud, once per
 * version, in the background: a bounded queue, one copy at a time, bounded retries with
 * jitter. Nothing here can fail or slow an invocation: `offer` returns at once.
 */
export class CodeArchive {
  /** Versions offered lately (bounded: forgetting one costs a HEAD on the archive, no copy). */
  private readonly seen = new LRUCache<string, true>({ max: 10_000 });
  private readonly queue: ArchivedVersion[] = [];
  private running: Promise<void> | undefined;
  private stopped = false;
  private copying = 0;
  readonly counts: Record<ArchiveEvent, number> = { archived: 0, already_there: 0, failed: 0, dropped: 0 };

  constructor(private readonly opts: CodeArchiveOptions) {}

  /** The archive's key for a version: its source, then its ETag, so each version is one object. */
  static keyOf(v: ArchivedVersion): string {
    return `${v.bucket}/${v.key}/${v.etag.replace(/"/g, '')}`;
  }

  /** Versions queued or being copied. */
  get pending(): number {
    return this.queue.length + this.copying;
  }

  offer(v: ArchivedVersion): void {
    const id = CodeArchive.keyOf(v);
    if (this.stopped || this.seen.has(id)) return;
    if (this.queue.length >= (this.opts.maxQueue ?? 100)) {
      this.count('dropped');
      this.opts.log.warn({ tag: 'ARCHIVE', key: id }, 'archive queue full: version not archived now (a later success offers it again)');
      return;
    }
    this.seen.set(id, true);
    this.queue.push(v);
    this.running ??= this.work().finally(() => (this.running = undefined));
  }

  /** Waits for the queue to empty, up to `timeoutMs`; then stops taking new versions. */
  async close(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.running && Date.now() < deadline) await Promise.race([this.running, new Promise((r) => setTimeout(r, 50))]);
    this.stopped = true;
  }

  private async work(): Promise<void> {
    for (let v = this.queue.shift(); v; v = this.queue.shift()) {
      this.copying++;
      try {
        await this.copy(v);
      } finally {
        this.copying--;
      }
    }
  }

  private async copy(v: ArchivedVersion): Promise<void> {
    const key = CodeArchive.keyOf(v);
    const backoff = new Backoff(200, 5000);
    const attempts = this.opts.attempts ?? 3;
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        if (await this.exists(key)) {
          this.count('already_there');
          return;
        }
        const src = await this.opts.source.send(new GetObjectCommand({ Bucket: v.bucket, Key: v.key, IfMatch: v.etag }), { abortSignal: AbortSignal.timeout(this.opts.timeoutMs) });
        const body = Buffer.from(await src.Body!.transformToByteArray());
        await this.opts.target.send(
          new PutObjectCommand({ Bucket: this.opts.bucket, Key: key, Body: body, ContentType: 'application/zip', Metadata: { 'source-etag': v.etag.replace(/"/g, '') } }),
          { abortSignal: AbortSignal.timeout(this.opts.timeoutMs) },
        );
        this.count('archived');
        this.opts.log.info({ tag: 'ARCHIVE', key, bytes: body.length }, 'code version archived');
        return;
      } catch (err) {
        const permanent = classifyError(err).kind === 'permanent';
        if (permanent || attempt === attempts) {
          // Forgotten, so a later success of the same version offers it again.
          this.seen.delete(key);
          this.count('failed');
          this.opts.log.warn({ tag: 'ARCHIVE', key, attempt, err }, 'code version not archived');
          return;
        }
        await backoff.wait();
      }
    }
  }

  private async exists(key: string): Promise<boolean> {
    try {
      await this.opts.target.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: key }), { abortSignal: AbortSignal.timeout(this.opts.timeoutMs) });
      return true;
    } catch (err) {
      const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 404) return false;
      throw err;
    }
  }

  private count(e: ArchiveEvent): void {
    this.counts[e]++;
    this.opts.events?.emit('archive', e);
  }
}
