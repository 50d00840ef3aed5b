import { Redis } from 'ioredis';
import type { Result } from '../core/result.js';
import { withTimeout } from '../core/timeout.js';
import type { ResultStore } from '../intake/supervisor.js';
import type { Logger } from '../observe/log.js';
import { jobKey, resultChannel, resultKey } from './redisKeys.js';

export type JobState = 'PENDING' | 'PROCESSING' | 'SUCCESS' | 'FAILED';


export interface RedisSinkOptions {
  url: string;
  ttlSeconds: number;
  workerId: string;
  log: Logger;
  timeoutMs?: number;
  /** Results kept for retry while Redis is down; past it the oldest is dropped (and logged). */
  outboxLimit?: number;
  retryEveryMs?: number;
  onFailure?: (op: string) => void;
}

/**
 * Delivers results: stored under `result:{id}` with a TTL, job state in `job:{id}`, then
 * published on `result:{id}`, in one MULTI so a subscriber who hears the message can also
 * read the key. A failure never fails the invocation: the result waits in an outbox.
 */
export class RedisSink implements ResultStore {
  readonly redis: Redis;
  private readonly outbox = new Map<string, Result>();
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly timeoutMs: number;

  constructor(private readonly opts: RedisSinkOptions) {
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.redis = new Redis(opts.url, {
      lazyConnect: true,
      connectTimeout: this.timeoutMs,
      commandTimeout: this.timeoutMs,
      maxRetriesPerRequest: 1,
      // Fail fast while disconnected: the outbox retries, so commands need not pile up.
      enableOfflineQueue: false,
      // Commands of many invocations issued in the same tick go out in one write.
      enableAutoPipelining: true,
      retryStrategy: (times) => Math.min(times * 200, 2000),
    });
    this.redis.on('error', (err) => opts.log.debug({ tag: 'REDIS', err: String(err) }, 'redis connection error'));
  }

  async connect(): Promise<void> {
    await withTimeout('redis connect', this.timeoutMs, this.redis.connect());
    this.retryTimer = setInterval(() => void this.retryOutbox(), this.opts.retryEveryMs ?? 2000);
    this.retryTimer.unref();
  }

  get pending(): number {
    return this.outbox.size;
  }

  async ping(): Promise<boolean> {
    try {
      return (await withTimeout('redis ping', this.timeoutMs, this.redis.ping())) === 'PONG';
    } catch {
      return false;
    }
  }

  /** The stored result of a request, if any (a redelivery checks this before running). */
  async find(requestId: string): Promise<Result | undefined> {
    const raw = await this.redis.get(resultKey(requestId));
    return raw ? (JSON.parse(raw) as Result) : undefined;
  }

  /** Best effort: a lost state update is only a stale status. */
  async markState(requestId: string, state: JobState, fields: Record<string, string | number> = {}, log?: Logger): Promise<void> {
    try {
      await this.redis
        .multi()
        .hset(jobKey(requestId), { state, updatedAt: new Date().toISOString(), workerId: this.opts.workerId, ...fields })
        .expire(jobKey(requestId), this.opts.ttlSeconds)
        .exec();
    } catch (err) {
      this.opts.onFailure?.('state');
      (log ?? this.opts.log).warn({ tag: 'REDIS', requestId, state, err: String(err) }, 'job state not written');
    }
  }

  /** Returns true when delivered now; false when it waits in the outbox. */
  async deliver(result: Result, log?: Logger): Promise<boolean> {
    const l = log ?? this.opts.log;
    try {
      await this.write(result);
      l.info({ tag: 'REDIS', channel: resultChannel(result.requestId) }, 'result published');
      return true;
    } catch (err) {
      this.opts.onFailure?.('publish');
      this.enqueue(result);
      l.error({ tag: 'FAIL', part: 'REDIS', err: String(err), outbox: this.outbox.size }, 'result not delivered; kept for retry');
      return false;
    }
  }

  /** One last attempt for what waits in the outbox, then disconnects. */
  async close(): Promise<void> {
    clearInterval(this.retryTimer);
    await this.retryOutbox();
    if (this.outbox.size > 0) {
      this.opts.log.error({ tag: 'REDIS', lost: [...this.outbox.keys()] }, 'results still undelivered at shutdown');
    }
    this.redis.disconnect();
  }

  private async write(result: Result): Promise<void> {
    const payload = JSON.stringify(result);
    const state: JobState = result.success ? 'SUCCESS' : 'FAILED';
    const replies = await this.redis
      .multi()
      .set(resultKey(result.requestId), payload, 'EX', this.opts.ttlSeconds)
      .hset(jobKey(result.requestId), {
        state,
        status: result.status,
        reason: result.reason,
        updatedAt: new Date().toISOString(),
        workerId: this.opts.workerId,
      })
      .expire(jobKey(result.requestId), this.opts.ttlSeconds)
      .publish(resultChannel(result.requestId), payload)
      .exec();
    const failed = replies?.find(([err]) => err);
    if (!replies || failed) throw failed?.[0] ?? new Error('MULTI aborted');
  }

  private enqueue(result: Result): void {
    this.outbox.set(result.requestId, result);
    const limit = this.opts.outboxLimit ?? 10_000;
    while (this.outbox.size > limit) {
      const oldest = this.outbox.keys().next().value as string;
      this.outbox.delete(oldest);
      this.opts.log.error({ tag: 'REDIS', requestId: oldest }, 'outbox full: oldest undelivered result dropped');
    }
  }

  private retrying = false;
  private async retryOutbox(): Promise<void> {
    if (this.retrying || this.outbox.size === 0) return;
    this.retrying = true;
    try {
      for (const [id, result] of this.outbox) {
        try {
          await this.write(result);
          this.outbox.delete(id);
          this.opts.log.info({ tag: 'REDIS', requestId: id }, 'result delivered from outbox');
        } catch {
          return;
        }
      }
    } finally {
      this.retrying = false;
    }
  }
}
