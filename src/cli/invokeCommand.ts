import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { Redis } from 'ioredis';
import { createHash, randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { basename, resolve } from 'node:path';
import type { Result } from '../core/result.js';
import { parseInvocation } from '../intake/parse.js';
import { parseMessageKeys, signMessage } from '../intake/messageAuth.js';
import { DEFAULT_BUILD_CACHE_MB, DEFAULT_RUNTIMES, loadRuntimes } from '../core/runtimeConfig.js';
import { resultChannel } from '../sinks/redisKeys.js';
import type { CliEnv } from './cliEnv.js';
import { runtimeHint, zipOf } from './codeZip.js';
import { need, UsageError, wholeNumber } from './usage.js';
import { readResult, redisTls } from './redisRead.js';

export interface InvokeOptions {
  function?: string | undefined;
  runtime?: string | undefined;
  input?: string | undefined;
  code?: string | undefined;
  memory?: string | undefined;
  timeout?: string | undefined;
  noWait: boolean;
  waitMs?: string | undefined;
  queue?: string | undefined;
  bucket?: string | undefined;
  endpoint?: string | undefined;
  redisUrl?: string | undefined;
}

/** The agent's own limits on a message, as a worker with the defaults applies them. */
const LIMITS = { defaultTimeoutMs: 10_000, maxTimeoutMs: 900_000, defaultMemoryMb: 128 };

/**
 * Invokes a function: the message is checked with the agent's own schema first (a bad
 * runtime, id, memory or timeout is a usage error before anything is uploaded), the code
 * zipped deterministically and uploaded under its hash, the message sent, and the result
 * awaited on Redis (subscribed before the send). Returns the result, or undefined with
 * --no-wait or past the wait.
 */
export async function invoke(source: string | undefined, o: InvokeOptions, env: CliEnv, stdin: () => Promise<string>, note: (s: string) => void): Promise<{ requestId: string; result?: Result | undefined; waitedMs?: number }> {
  // A folder's (or zip's) own name, unless named: `invoke my-function` is my-function.
  const functionId = need(o.function ?? (source && !o.code ? basename(resolve(source)).replace(/\.zip$/i, '') : undefined), '--function');
  const queueUrl = need(o.queue ?? env.queueUrl, '--queue or SQS_QUEUE_URL (or --local)');
  const requestId = randomUUID();
  const runtime = o.runtime ?? 'python';
  const message: Record<string, unknown> = { requestId, functionId, runtime };
  const memoryMb = wholeNumber(o.memory, '--memory');
  const timeoutMs = wholeNumber(o.timeout, '--timeout');
  const waitMs = wholeNumber(o.waitMs, '--wait-ms') ?? 120_000;
  if (memoryMb !== undefined) message.memoryMb = memoryMb;
  if (timeoutMs !== undefined) message.timeoutMs = timeoutMs;
  if (o.input !== undefined) message.inputData = await readInput(o.input, stdin);
  if (o.code !== undefined) {
    // The original's inline format.
    Object.assign(message, { job_id: requestId, function_id: functionId, code: o.code });
    delete message.requestId;
    delete message.functionId;
  }
  const resolved = check(o.code !== undefined ? message : { ...message, s3Bucket: 'placeholder-bucket', s3Key: 'placeholder.zip' });

  // The embedded stack takes any key; elsewhere the SDK's own chain finds them.
  const aws = { endpoint: o.endpoint, ...(o.endpoint && !env.hasAccessKey ? { credentials: { accessKeyId: 'local', secretAccessKey: 'local' }, region: env.region } : {}) };
  if (o.code === undefined) {
    const { zip, names } = await zipOf(need(source, 'a folder or a zip (or --code)'));
    const hint = runtimeHint(names, resolved);
    if (hint) throw new UsageError(`${source}: ${hint}`);
    const bucket = need(o.bucket ?? env.codeBucket, '--bucket or S3_CODE_BUCKET (or --local)');
    const key = `${functionId}/${createHash('sha256').update(zip).digest('hex').slice(0, 16)}.zip`;
    const s3 = new S3Client({ ...aws, forcePathStyle: Boolean(o.endpoint), maxAttempts: 3 });
    try {
      await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: zip }), { abortSignal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw new Error(`cannot upload the code to s3://${bucket}/${key}${o.endpoint ? ` at ${o.endpoint}` : ''}: ${(err as Error).message}`);
    } finally {
      s3.destroy();
    }
    Object.assign(message, { s3Bucket: bucket, s3Key: key });
  }

  let sub: Redis | undefined;
  let heard: Promise<Result> | undefined;
  const redisUrl = o.noWait ? undefined : need(o.redisUrl, '--redis or REDIS_URL (or --no-wait, or --local)');
  try {
    if (redisUrl) {
      // Subscribe before sending: a fast result is not missed.
      sub = new Redis(redisUrl, { ...redisTls(redisUrl), maxRetriesPerRequest: 2, lazyConnect: true, connectTimeout: 5000, retryStrategy: () => null });
      sub.on('error', () => undefined);
      await sub.connect().catch((err: Error) => {
        throw new Error(`cannot reach Redis at ${redisUrl}: ${err.message}`);
      });
      await sub.subscribe(resultChannel(requestId));
      heard = new Promise((resolve) => sub!.on('message', (_c: string, payload: string) => resolve(JSON.parse(payload) as Result)));
    }
    const sqs = new SQSClient({ ...aws, maxAttempts: 3 });
    try {
      await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(signed(message, env)) }), { abortSignal: AbortSignal.timeout(30_000) });
    } catch (err) {
      throw new Error(`cannot send to the queue ${queueUrl}${o.endpoint ? ` at ${o.endpoint}` : ''}: ${(err as Error).message}`);
    } finally {
      sqs.destroy();
    }
    note(`sent ${requestId}`);
    if (!heard) return { requestId };
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), waitMs)));
    // The result may also have been stored before the subscription heard it.
    const result = (await Promise.race([heard, timeout, readResult(redisUrl!, requestId).then((x) => x ?? heard)])) as Result | undefined;
    clearTimeout(timer);
    return { requestId, result, waitedMs: waitMs };
  } finally {
    sub?.disconnect();
  }
}

/** The message as the agent would judge it: its refusal is a usage error here; else its runtime, aliases resolved. */
function check(message: Record<string, unknown>): string {
  let runtimes = DEFAULT_RUNTIMES;
  try {
    runtimes = loadRuntimes(process.env, { buildCacheMb: DEFAULT_BUILD_CACHE_MB });
  } catch {
    // the worker's own settings are its business: the built-ins judge here
  }
  const parsed = parseInvocation(message, { messageId: 'cli', receiptHandle: 'cli', receiveCount: 1, receivedAt: Date.now() }, { ...LIMITS, runtimes });
  if (!parsed.ok) throw new UsageError(`the agent would refuse this invocation (${parsed.rejection.reason}): ${parsed.rejection.message}`);
  return parsed.invocation.runtime;
}

/** --input: JSON, @file (JSON in a file), or - / @- (JSON on stdin). */
async function readInput(raw: string, stdin: () => Promise<string>): Promise<unknown> {
  const fromStdin = raw === '-' || raw === '@-';
  const text = fromStdin ? await stdin() : raw.startsWith('@') ? await readFile(raw.slice(1), 'utf8').catch((err: Error) => {
    throw new UsageError(`--input ${raw}: ${err.message}`);
  }) : raw;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--input${fromStdin ? ' (stdin)' : raw.startsWith('@') ? ` ${raw}` : ''} is not JSON: ${(err as Error).message}`);
  }
}

/** With NANOGRID_MESSAGE_KEYS, the message signed with its first key (workers with keys run only signed ones). */
function signed(message: Record<string, unknown>, env: CliEnv): Record<string, unknown> {
  const raw = env.messageKeys;
  if (!raw) return message;
  const keys = parseMessageKeys(raw);
  if ('error' in keys) throw new UsageError(`NANOGRID_MESSAGE_KEYS: ${keys.error}`);
  return signMessage(message, keys.keys[0]!, { lifetimeMs: 3_600_000 });
}
