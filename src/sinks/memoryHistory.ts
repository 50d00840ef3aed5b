import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Emitter } from '../core/events.js';
import type { Logger } from '../core/log.js';
import { historyKey } from './redisKeys.js';
import type { RedisHealth } from './redisHealth.js';
import { withTimeout } from '../core/timeout.js';

/** Functions whose peaks this worker keeps a copy of (the most recently run ones). */
export const LOCAL_HISTORIES = 10_000;

/**
 * Each function's recent peaks, newest last. Kept in Redis so every worker of the fleet
 * advises from the same history; a local copy (of the most recent functions, bounded)
 * answers while Redis is unreachable.
 */
/** A peak to be recorded with the write of its invocation's result (RedisSink). */
export interface PendingPeak {
  key: string;
  peakBytes: number;
  size: number;
  ttlSeconds: number;
}

export class MemoryHistory {
  private readonly local = new LRUCache<string, number[]>({ max: LOCAL_HISTORIES });
  /** The shared peaks each claimed invocation read with its claim, by request id (until its run records). */
  private readonly read = new LRUCache<string, number[]>({ max: LOCAL_HISTORIES });
  /** Peaks recorded locally whose shared copy goes out with their result's write, by request id. */
  private readonly pending = new LRUCache<string, PendingPeak>({ max: LOCAL_HISTORIES });

  constructor(
    private readonly redis: Redis,
    private readonly opts: { size: number; ttlSeconds: number; log: Logger; events?: Emitter<'sinkFailure'>; timeoutMs?: number; health?: RedisHealth },
  ) {}

  /** The history key a claim reads along with the request id. */
  keyOf(functionKey: string): string {
    return historyKey(functionKey);
  }

  /** The shared peaks a claim read for `requestId`'s function. */
  seed(requestId: string, peaks: number[]): void {
    this.read.set(requestId, peaks);
  }

  /** The peak to record with `requestId`'s result, once (undefined when there is none). */
  takePending(requestId: string): PendingPeak | undefined {
    const p = this.pending.get(requestId);
    if (p) this.pending.delete(requestId);
    return p;
  }

  async record(functionKey: string, peakBytes: number, log?: Logger, requestId?: string): Promise<number[]> {
    const mine = [...(this.local.get(functionKey) ?? []), peakBytes].slice(-this.opts.size);
    this.local.set(functionKey, mine);
    const shared = requestId === undefined ? undefined : this.read.get(requestId);
    if (requestId !== undefined && shared) {
      // Read by the claim a moment ago: no call now; the result's write records the peak.
      this.read.delete(requestId);
      this.pending.set(requestId, { key: historyKey(functionKey), peakBytes, size: this.opts.size, ttlSeconds: this.opts.ttlSeconds });
      return [...shared, peakBytes].slice(-this.opts.size);
    }
    if (this.opts.health?.skip()) return mine;
    try {
      const key = historyKey(functionKey);
      // Bounded: a MULTI's EXEC is not covered by the client's command timeout.
      const replies = await withTimeout(
        'redis memory history',
        this.opts.timeoutMs ?? 3000,
        this.redis.multi().rpush(key, String(peakBytes)).ltrim(key, -this.opts.size, -1).expire(key, this.opts.ttlSeconds).lrange(key, 0, -1).exec(),
      );
      const list = replies?.[3]?.[1];
      if (!Array.isArray(list)) throw new Error('no history returned');
      this.opts.health?.ok();
      return list.map(Number).filter(Number.isFinite);
    } catch (err) {
      this.opts.health?.failed();
      this.opts.events?.emit('sinkFailure', 'redis', 'memory_history');
      (log ?? this.opts.log).warn({ tag: 'AUTO-TUNER', err }, 'shared memory history unavailable; advising from this worker only');
      return mine;
    }
  }
}
