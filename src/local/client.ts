import { CreateBucketCommand, DeleteObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SendMessageBatchCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Redis } from 'ioredis';
import yazl from 'yazl';
import type { Result } from '../core/result.js';
import { jobKey, requestIdOfChannel, RESULT_CHANNEL_PATTERN, resultKey } from '../sinks/redisKeys.js';
import { LOCAL_CREDENTIALS } from './agentConfig.js';

export type ZipFiles = Record<string, string | { content: string | Buffer; mode?: number }>;

/** Every entry's time: the same files make the same bytes (1980-01-01 in local time, the DOS format's first day). */
const ZIP_TIME = new Date(1980, 0, 1);

/**
 * Builds a zip in memory (what the Controller uploads for a function), deterministically:
 * names sorted, one fixed timestamp, no extended timestamp field (it would carry the
 * absolute time, which depends on the time zone).
 */
export function buildZip(files: ZipFiles): Promise<Buffer> {
  const zip = new yazl.ZipFile();
  for (const [name, f] of Object.entries(files).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const content = typeof f === 'string' ? Buffer.from(f) : Buffer.isBuffer(f.content) ? f.content : Buffer.from(f.content);
    zip.addBuffer(content, name, { mode: typeof f === 'string' ? 0o100644 : (f.mode ?? 0o100644), mtime: ZIP_TIME, forceDosTimestamp: true });
  }
  zip.end();
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    zip.outputStream.on('data', (c: Buffer) => chunks.push(c));
    zip.outputStream.on('end', () => resolve(Buffer.concat(chunks)));
    zip.outputStream.on('error', reject);
  });
}

export interface ClientOptions {
  endpoint: string;
  region: string;
  queueUrl: string;
  bucket: string;
  redisUrl: string;
}

/**
 * Plays the Controller's part against the local stack: uploads code, enqueues
 * invocations, and hears results on `result:*` (or reads the stored key when late).
 */
export class LocalClient {
  readonly sqs: SQSClient;
  readonly s3: S3Client;
  private readonly sub: Redis;
  private readonly kv: Redis;
  private readonly seen = new Map<string, Result>();
  private readonly waiters = new Map<string, Array<(r: Result) => void>>();

  constructor(readonly opts: ClientOptions) {
    const aws = { region: opts.region, endpoint: opts.endpoint, credentials: LOCAL_CREDENTIALS };
    this.sqs = new SQSClient(aws);
    this.s3 = new S3Client({ ...aws, forcePathStyle: true });
    this.sub = new Redis(opts.redisUrl, { lazyConnect: true });
    this.kv = new Redis(opts.redisUrl, { lazyConnect: true });
    // Connection errors surface as failed commands; the event would otherwise be unhandled.
    this.sub.on('error', () => undefined);
    this.kv.on('error', () => undefined);
    this.sub.on('pmessage', (_p: string, channel: string, payload: string) => {
      const r = JSON.parse(payload) as Result;
      this.seen.set(requestIdOfChannel(channel), r);
      for (const w of this.waiters.get(r.requestId) ?? []) w(r);
      this.waiters.delete(r.requestId);
    });
  }

  async connect(): Promise<void> {
    await this.sub.connect();
    await this.kv.connect();
    await this.sub.psubscribe(RESULT_CHANNEL_PATTERN);
  }

  async upload(key: string, body: Buffer, bucket = this.opts.bucket): Promise<void> {
    await this.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  }

  /** Creates a bucket (a user-data bucket, say) on the same S3. */
  async createBucket(bucket: string): Promise<void> {
    await this.s3.send(new CreateBucketCommand({ Bucket: bucket }));
  }

  async remove(key: string, bucket = this.opts.bucket): Promise<void> {
    await this.s3.send(new DeleteObjectCommand({ Bucket: bucket, Key: key }));
  }

  async uploadZip(key: string, files: ZipFiles): Promise<void> {
    await this.upload(key, await buildZip(files));
  }

  async send(message: object, queueUrl = this.opts.queueUrl): Promise<number> {
    const at = Date.now();
    await this.sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(message) }));
    return at;
  }

  async sendBatch(messages: object[]): Promise<number> {
    const at = Date.now();
    for (let i = 0; i < messages.length; i += 10) {
      const chunk = messages.slice(i, i + 10);
      await this.sqs.send(
        new SendMessageBatchCommand({ QueueUrl: this.opts.queueUrl, Entries: chunk.map((m, j) => ({ Id: String(j), MessageBody: JSON.stringify(m) })) }),
      );
    }
    return at;
  }

  /** Sends up to 10 raw bodies (any text, valid or not) in one batch. */
  async sendRawBatch(bodies: string[]): Promise<void> {
    if (bodies.length === 0) return;
    await this.sqs.send(new SendMessageBatchCommand({ QueueUrl: this.opts.queueUrl, Entries: bodies.map((b, j) => ({ Id: String(j), MessageBody: b })) }));
  }

  /** The result for `requestId`: heard on its channel, or read from its key if published earlier. */
  async waitForResult(requestId: string, timeoutMs = 60_000): Promise<Result> {
    const known = this.seen.get(requestId);
    if (known) return known;
    const heard = new Promise<Result>((resolve) => {
      const list = this.waiters.get(requestId) ?? [];
      list.push(resolve);
      this.waiters.set(requestId, list);
    });
    const stored = await this.readStored(requestId);
    if (stored) return stored;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no result for ${requestId} within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([heard, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async readStored(requestId: string): Promise<Result | undefined> {
    const raw = await this.kv.get(resultKey(requestId));
    return raw ? (JSON.parse(raw) as Result) : undefined;
  }

  /** Seconds left on the stored result and on the job state (-2: no such key). */
  async ttls(requestId: string): Promise<{ result: number; job: number }> {
    const [result, job] = await Promise.all([this.kv.ttl(resultKey(requestId)), this.kv.ttl(jobKey(requestId))]);
    return { result, job };
  }

  async jobState(requestId: string): Promise<Record<string, string>> {
    return this.kv.hgetall(jobKey(requestId));
  }

  async queueDepth(queueUrl = this.opts.queueUrl): Promise<{ visible: number; inflight: number }> {
    const res = await this.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
    );
    return {
      visible: Number(res.Attributes?.ApproximateNumberOfMessages ?? 0),
      inflight: Number(res.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0),
    };
  }

  /**
   * Up to 10 bodies visible on `queueUrl` (a dead-letter queue, to say what landed there);
   * they stay on the queue, visible again at once.
   */
  async peek(queueUrl: string): Promise<string[]> {
    const res = await this.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, VisibilityTimeout: 0, WaitTimeSeconds: 0 }));
    return (res.Messages ?? []).map((m) => m.Body ?? '');
  }

  forget(requestId: string): void {
    this.seen.delete(requestId);
  }

  close(): void {
    this.sub.disconnect();
    this.kv.disconnect();
    this.sqs.destroy();
    this.s3.destroy();
  }
}
