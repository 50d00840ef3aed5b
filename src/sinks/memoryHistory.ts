import type { Redis } from 'ioredis';
import type { Logger } from '../observe/log.js';
import { historyKey } from './redisKeys.js';

/**
 * Each function's recent peaks, newest last. Kept in Redis so every worker of the fleet
 * advises from the same history; a local copy answers while Redis is unreachable.
 */
export class MemoryHistory {
  private readonly local = new Map<string, number[]>();

  constructor(
    private readonly redis: Redis,
    private readonly opts: { size: number; ttlSeconds: number; log: Logger; onFailure?: () => void },
  ) {}

  async record(functionId: string, peakBytes: number, log?: Logger): Promise<number[]> {
    const mine = [...(this.local.get(functionId) ?? []), peakBytes].slice(-this.opts.size);
    this.local.set(functionId, mine);
    try {
      const key = historyKey(functionId);
      const replies = await this.redis
        .multi()
        .rpush(key, String(peakBytes))
        .ltrim(key, -this.opts.size, -1)
        .expire(key, this.opts.ttlSeconds)
        .lrange(key, 0, -1)
        .exec();
      const list = replies?.[3]?.[1];
      if (!Array.isArray(list)) throw new Error('no history returned');
      return list.map(Number).filter(Number.isFinite);
    } catch (err) {
      this.opts.onFailure?.();
      (log ?? this.opts.log).warn({ tag: 'AUTO-TUNER', err: String(err) }, 'shared memory history unavailable; advising from this worker only');
      return mine;
    }
  }
}
