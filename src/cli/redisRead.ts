import { Redis } from 'ioredis';
import type { Result } from '../core/result.js';
import { jobKey, resultKey } from '../sinks/redisKeys.js';

/** A stored result and, without one, the job's state (PENDING, PROCESSING ...): one connection, bounded. */
export async function readResult(redisUrl: string, requestId: string): Promise<Result | undefined> {
  return (await readJob(redisUrl, requestId)).result;
}

export async function readJob(redisUrl: string, requestId: string): Promise<{ result?: Result; job?: Record<string, string> }> {
  const r = new Redis(redisUrl, { ...redisTls(redisUrl), maxRetriesPerRequest: 2, lazyConnect: true, connectTimeout: 5000, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect().catch((err: Error) => {
      throw new Error(`cannot reach Redis at ${redisUrl}: ${err.message}`);
    });
    const raw = await r.get(resultKey(requestId));
    if (raw) return { result: JSON.parse(raw) as Result };
    const job = await r.hgetall(jobKey(requestId));
    return Object.keys(job).length ? { job } : {};
  } finally {
    r.disconnect();
  }
}

/**
 * REDIS_TLS_SERVERNAME: the name a TLS Redis's certificate is checked against, when it is
 * reached through a forwarded port (rediss://127.0.0.1:6380 to ElastiCache's endpoint).
 */
export function redisTls(url: string): { tls?: { servername: string } } {
  const name = process.env.REDIS_TLS_SERVERNAME?.trim();
  return url.startsWith('rediss://') && name ? { tls: { servername: name } } : {};
}
