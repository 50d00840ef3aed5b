import type { Result } from '../core/result.js';
import { SQS_MAX_BATCH } from './messageLeases.js';

export interface PrefetchPolicy {
  /** Messages that may wait ahead of free slots (at most one receive batch; 0: never). */
  messages: number;
  /** Only while the recent runs took at most this long (ms). */
  maxRunMs: number;
  /** Only while this says results get through (Redis answers, nothing waits in the outbox). */
  allowed?: () => boolean;
}

/** How much the recent run times weigh against the older ones (an exponential moving average). */
const WEIGHT = 0.2;

/**
 * The one exception to "never hold more messages than free slots". Under load slots free
 * one at a time, so a receive per freed slot brings one message for a whole SQS round trip
 * (65 us of the agent's CPU here, 10-20 ms of waiting on AWS), and the slot idles meanwhile.
 * While runs are short, up to one batch may wait ahead at the pool instead: a freed slot
 * starts the next run at once, and receives come a batch at a time. Long runs do not
 * prefetch: a message held behind a long run would wait while another worker idles. What
 * waits ahead is heartbeated like any held message and given back at once on a drain or
 * a stop (it has not started).
 */
export class Prefetch {
  private runMs: number | undefined;

  constructor(private readonly policy: PrefetchPolicy) {}

  /** A result answered: its run time (a run that happened) updates the average. */
  observe(r: { timings?: Pick<Result['timings'], 'execMs'> }): void {
    const ms = r.timings?.execMs;
    if (ms === undefined || !Number.isFinite(ms)) return;
    this.runMs = this.runMs === undefined ? ms : this.runMs + WEIGHT * (ms - this.runMs);
  }

  /** Whether messages may wait ahead now. */
  get active(): boolean {
    return this.policy.messages > 0 && this.runMs !== undefined && this.runMs <= this.policy.maxRunMs && (this.policy.allowed?.() ?? true);
  }

  /**
   * How many messages to ask for. `free`: free slots the memory admits; `taking`: held
   * messages waiting for or holding a container; `memoryBound`: the memory budget admits
   * fewer than the free slots, or claims are still out (nothing is prefetched then).
   */
  wanted(s: { capacity: number; taking: number; free: number; memoryBound: boolean }): number {
    if (!this.active || s.memoryBound) return s.free;
    const ahead = Math.min(this.policy.messages, SQS_MAX_BATCH);
    const room = Math.max(0, s.capacity + ahead - s.taking);
    // Fewer, fuller receives: wait until half a batch may come, unless a slot is free now.
    return s.free > 0 || room >= Math.ceil(ahead / 2) ? Math.max(room, s.free) : 0;
  }
}
