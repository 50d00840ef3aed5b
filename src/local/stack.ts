import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { startFauxqs } from 'fauxqs';
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
}

/**
 * Everything the agent talks to, on this machine and with no AWS account: fauxqs in this
 * process speaks the real SQS and S3 protocols over HTTP (with a dead-letter queue), and a
 * private redis-server runs on a free loopback port.
 */
export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const region = 'us-east-1';
  const queueName = opts.queueName ?? 'nanogrid-invocations';
  const bucket = opts.bucket ?? 'code-bucket';
  const maxReceiveCount = opts.maxReceiveCount ?? 3;
  const server = await startFauxqs({ port: opts.port ?? 0, logger: false });
  let redis: RedisServer | undefined;
  let stopped: Promise<void> | undefined;
  try {
    const dlq = server.createQueue(`${queueName}-dlq`);
    const main = server.createQueue(queueName, {
      attributes: {
        VisibilityTimeout: '60',
        RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.queueArn, maxReceiveCount: String(maxReceiveCount) }),
      },
    });
    server.createBucket(bucket);
    redis = opts.redisUrl ? undefined : await startRedisServer();
    const redisUrl = opts.redisUrl ?? redis!.url;
    return {
      endpoint: server.address,
      region,
      queueUrl: main.queueUrl,
      dlqUrl: dlq.queueUrl,
      bucket,
      redisUrl,
      maxReceiveCount,
      stop() {
        stopped ??= (async () => {
          await redis?.stop();
          await server.stop();
        })();
        return stopped;
      },
    };
  } catch (err) {
    await redis?.stop();
    await server.stop();
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
