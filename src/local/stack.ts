import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { buildApp } from 'fauxqs';
import { sleep, withTimeout } from '../core/timeout.js';

export interface LocalStack {
  /** AWS endpoint override for SQS and S3 (fauxqs over HTTP). */
  endpoint: string;
  region: string;
  queueUrl: string;
  dlqUrl: string;
  bucket: string;
  redisUrl: string;
  maxReceiveCount: number;
  /** The private redis-server's pid (none when an outside Redis was given). */
  redisPid?: number;
  stop(): Promise<void>;
}

export interface LocalStackOptions {
  /** 0 picks a free port. */
  port?: number;
  queueName?: string;
  bucket?: string;
  maxReceiveCount?: number;
  /** Use this Redis instead of starting a redis-server. */
  redisUrl?: string;
  /** The address the emulators listen on: loopback unless asked (nothing on the network may upload code and run it). */
  host?: string;
}

/** The embedded stack takes any credentials; the SDK wants some. */
const CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

/**
 * Everything the agent talks to, on this machine and with no AWS account: fauxqs in this
 * process speaks the real SQS and S3 protocols over HTTP (with a dead-letter queue), and a
 * private redis-server runs on a free loopback port. Both listen on loopback: fauxqs's
 * own starter listens on every address, so its app is served here instead, and the queues
 * and the bucket are made through the APIs the agent uses.
 */
export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const region = 'us-east-1';
  const queueName = opts.queueName ?? 'nanogrid-invocations';
  const bucket = opts.bucket ?? 'code-bucket';
  const maxReceiveCount = opts.maxReceiveCount ?? 3;
  const app = buildApp({ logger: false });
  const host = opts.host ?? '127.0.0.1';
  let redis: RedisServer | undefined;
  let stopped: Promise<void> | undefined;
  try {
    await app.listen({ port: opts.port ?? 0, host });
    const addr = app.server.address();
    const port = typeof addr === 'object' && addr ? addr.port : 0;
    const endpoint = `http://${host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? '127.0.0.1' : host}:${port}`;
    const sqs = new SQSClient({ region, endpoint, credentials: CREDENTIALS });
    const s3 = new S3Client({ region, endpoint, forcePathStyle: true, credentials: CREDENTIALS });
    try {
      const dlqUrl = (await sqs.send(new CreateQueueCommand({ QueueName: `${queueName}-dlq` }))).QueueUrl!;
      const dlqArn = (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: dlqUrl, AttributeNames: ['QueueArn'] }))).Attributes!.QueueArn!;
      const queueUrl = (
        await sqs.send(
          new CreateQueueCommand({
            QueueName: queueName,
            Attributes: { VisibilityTimeout: '60', RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlqArn, maxReceiveCount: String(maxReceiveCount) }) },
          }),
        )
      ).QueueUrl!;
      await s3.send(new CreateBucketCommand({ Bucket: bucket }));
      redis = opts.redisUrl ? undefined : await startRedisServer();
      const redisUrl = opts.redisUrl ?? redis!.url;
      return {
        endpoint,
        region,
        queueUrl,
        dlqUrl,
        bucket,
        redisUrl,
        maxReceiveCount,
        redisPid: redis?.process.pid,
        stop() {
          stopped ??= (async () => {
            await redis?.stop();
            await app.close();
          })();
          return stopped;
        },
      };
    } finally {
      sqs.destroy();
      s3.destroy();
    }
  } catch (err) {
    await redis?.stop();
    await app.close();
    throw err;
  }
}

export interface RedisServer {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Starts a throwaway redis-server (no persistence) on a free loopback port. */
export async function startRedisServer(fixedPort?: number): Promise<RedisServer> {
  const port = fixedPort ?? (await freePort());
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--protected-mode', 'yes'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const spawnError = new Promise<never>((_, reject) => child.once('error', (err) => reject(new Error(`redis-server could not start (is it installed? run "npm run setup"): ${err.message}`))));
  spawnError.catch(() => undefined);
  const url = `redis://127.0.0.1:${port}`;
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    await withTimeout('redis-server exit', 3000, exited).catch(() => undefined);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const deadline = Date.now() + 10_000;
  for (;;) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 });
    probe.on('error', () => undefined);
    try {
      await Promise.race([probe.connect().then(() => probe.ping()), spawnError]);
      probe.disconnect();
      break;
    } catch (err) {
      probe.disconnect();
      if ((err as Error).message.startsWith('redis-server could not start') || Date.now() > deadline || child.exitCode !== null) {
        await stop();
        throw new Error(`redis-server did not start on port ${port}: ${(err as Error).message} ${stderr}`.trim());
      }
      await sleep(50);
    }
  }
  return { url, port, process: child, stop };
}
