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
export class MemoryHistory {
  private readonly local = new LRUCache<string, number[]>({ max: LOCAL_HISTORIES });

  constructor(
    private readonly redis: Redis,
    private readonly opts: { size: number; ttlSeconds: number; log: Logger; events?: Emitter<'sinkFailure'>; timeoutMs?: number; health?: RedisHealth },
  ) {}

  async record(functionKey: string, peakBytes: number, log?: Logger): Promise<number[]> {
    const mine = [...(this.local.get(functionKey) ?? []), peakBytes].slice(-this.opts.size);
    this.local.set(functionKey, mine);
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
      (log ?? this.opts.log).warn({ tag: 'AUTO-TUNER', err: String(err) }, 'shared memory history unavailable; advising from this worker only');
      return mine;
    }
  }
}
