import { Redis } from 'ioredis';
import type { Result } from '../core/result.js';
import { classifyError } from '../core/errorClass.js';
import { withTimeout } from '../core/timeout.js';
import type { ResultStore } from '../intake/supervisor.js';
import type { Logger } from '../observe/log.js';
import { Outbox } from './outbox.js';
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
  /** Where undelivered results are kept on disk (replayed at start); memory only without it. */
  outboxDir?: string;
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
  private readonly outbox: Outbox;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly timeoutMs: number;

  constructor(private readonly opts: RedisSinkOptions) {
    this.timeoutMs = opts.timeoutMs ?? 3000;
    this.outbox = new Outbox(opts.outboxDir, opts.outboxLimit ?? 10_000, opts.log);
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

  /**
   * Reads back what an earlier run left undelivered, starts the retry loop, then connects
   * (a failed connect is thrown, but the loop keeps trying to deliver).
   */
  async connect(): Promise<void> {
    const replayed = await this.outbox.load();
    if (replayed > 0) this.opts.log.warn({ tag: 'REDIS', results: replayed }, 'undelivered results from an earlier run: delivering them');
    this.retryTimer ??= setInterval(() => void this.retryOutbox(), this.opts.retryEveryMs ?? 2000);
    this.retryTimer.unref();
    await withTimeout('redis connect', this.timeoutMs, this.redis.connect());
    await this.retryOutbox();
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

  /** The stored result of a request, if any (a redelivery checks this before running): in the outbox, else in Redis. */
  async find(requestId: string): Promise<Result | undefined> {
    const waiting = this.outbox.get(requestId);
    if (waiting) return waiting;
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
      try {
        await this.outbox.put(result);
      } catch (diskErr) {
        // The disk refused too: the result stays in memory only (lost if the agent dies now).
        this.opts.onFailure?.('outbox');
        l.error({ tag: 'FAIL', part: 'OUTBOX', err: String(diskErr) }, 'result not written to the outbox on disk');
      }
      l.error({ tag: 'FAIL', part: 'REDIS', err: String(err), outbox: this.outbox.size, durable: this.outbox.durable }, 'result not delivered; kept for retry');
      return false;
    }
  }

  /** One last attempt for what waits in the outbox, then disconnects. */
  async close(): Promise<void> {
    clearInterval(this.retryTimer);
    await this.retryOutbox();
    if (this.outbox.size > 0) {
      const ids = this.outbox.list().map((r) => r.requestId);
      if (this.outbox.durable) this.opts.log.warn({ tag: 'REDIS', kept: ids }, 'results still undelivered at shutdown: kept on disk for the next start');
      else this.opts.log.error({ tag: 'REDIS', lost: ids }, 'results still undelivered at shutdown');
    }
    this.redis.disconnect();
  }

  /**
   * One MULTI, bounded: ioredis's command timeout does not cover a transaction's EXEC, and
   * a server that hangs (not refuses) would hold the message's delete indefinitely. A
   * write that times out may still land later; the outbox then writes the same result
   * again, which is harmless (same key, same payload).
   */
  private write(result: Result): Promise<void> {
    return withTimeout('redis result write', this.timeoutMs, this.writeUnbounded(result));
  }

  private async writeUnbounded(result: Result): Promise<void> {
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

  private retrying = false;
  private async retryOutbox(): Promise<void> {
    if (this.retrying || this.outbox.size === 0) return;
    this.retrying = true;
    try {
      for (const result of this.outbox.list()) {
        const id = result.requestId;
        try {
          await this.write(result);
        } catch (err) {
          // Redis refusing this result for good (not down): retrying it forever would block the rest.
          if (classifyError(err).kind === 'permanent') {
            this.opts.log.error({ tag: 'REDIS', requestId: id, err: String(err) }, 'Redis refused this result for good; dropped from the outbox');
            await this.outbox.remove(id);
            continue;
          }
          return;
        }
        await this.outbox.remove(id);
        this.opts.log.info({ tag: 'REDIS', requestId: id }, 'result delivered from outbox');
      }
    } finally {
      this.retrying = false;
    }
  }
}
