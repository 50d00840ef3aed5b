/**
 * How much prewarm ("stem cell") stock a pool keeps, reacting to how often requests find
 * no container of their own function (OpenWhisk's reactive prewarming). Pure: no timers,
 * no I/O; the clock is passed in as `now` (ms) so that traces can be replayed in tests.
 */

export interface StockPolicy {
  /** Stock kept at all times (the contract's default: python 2, cpp 1). */
  min: number;
  /** The most stock the reactive part may ask for (>= min). */
  max: number;
  /** A stock container beyond the target is removed once it is this old (ms). */
  ttlMs: number;
  /** New-function starts are counted over this window (ms). */
  windowMs: number;
}

/** Buckets the window is counted in: a sender can start any number of new functions, so no timestamp is kept per start. */
export const STOCK_BUCKETS = 10;

export class ReactiveStock {
  readonly policy: StockPolicy;
  private readonly bucketMs: number;
  private readonly counts = new Float64Array(STOCK_BUCKETS);
  /** The bucket number each slot counts for; NaN for a slot never used. */
  private readonly epochs = new Float64Array(STOCK_BUCKETS).fill(Number.NaN);

  constructor(policy: StockPolicy) {
    const { min, max, ttlMs, windowMs } = policy;
    if (!Number.isInteger(min) || min < 0) throw new RangeError(`stock min must be a whole number >= 0, got ${min}`);
    if (!Number.isInteger(max) || max < min) throw new RangeError(`stock max must be a whole number >= min (${min}), got ${max}`);
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new RangeError(`stock ttlMs must be a finite number > 0, got ${ttlMs}`);
    if (!Number.isFinite(windowMs) || windowMs <= 0) throw new RangeError(`stock windowMs must be a finite number > 0, got ${windowMs}`);
    // A copy: a caller changing its object later must not slip past the checks above.
    this.policy = Object.freeze({ min, max, ttlMs, windowMs });
    this.bucketMs = windowMs / STOCK_BUCKETS;
  }

  /** Size of the count ring (for tests: it never grows, whatever is noted). */
  get slots(): number {
    return this.counts.length;
  }

  /** A request found no container of its function (it started cold, or from the stock). */
  noteNewFunction(now: number): void {
    if (!Number.isFinite(now)) return;
    const bucket = Math.floor(now / this.bucketMs);
    const slot = this.slotOf(bucket);
    // A slot last used for another bucket (older, or "future" after the clock went back) starts over.
    if (this.epochs[slot] !== bucket) {
      this.epochs[slot] = bucket;
      this.counts[slot] = 0;
    }
    this.counts[slot]! += 1;
  }

  /** New-function starts per second over the last window (0 when none). */
  rate(now: number): number {
    return (this.inWindow(now) * 1000) / this.policy.windowMs;
  }

  /**
   * How many stock containers to keep now. `refillMs` is how long making one takes lately
   * (the pool's create-time estimate). The stock must cover the new functions that arrive
   * while one is being remade: ceil(rate * refillMs / 1000) + 1 when rate > 0 (one spare
   * for bursts), never below min, never above max. No new function in the window: min.
   */
  target(now: number, refillMs: number): number {
    return this.level(now, refillMs, Math.ceil, 1);
  }

  /**
   * The stock the measured arrival rate needs in whole containers: floor(rate * refillMs /
   * 1000), within min and max. Only this much may take an idle warm container's slot. The
   * target rounds up and adds a spare, so a single new function raises it; that must not
   * evict the warm container the very function has just made (a pool of two, cpp's): one
   * start in the window needs a whole container only when making one takes the window.
   */
  demand(now: number, refillMs: number): number {
    return this.level(now, refillMs, Math.floor, 0);
  }

  private level(now: number, refillMs: number, round: (x: number) => number, spare: number): number {
    const { min, max, windowMs } = this.policy;
    const starts = this.inWindow(now);
    if (starts === 0) return min;
    const refill = Number.isFinite(refillMs) && refillMs > 0 ? refillMs : 0;
    // starts * refill / window is rate * refill / 1000 without the rounding of the rate in between.
    const cover = round((starts * refill) / windowMs) + spare;
    return Math.min(max, Math.max(min, cover));
  }

  /**
   * Which stock containers to remove now: beyond the target, the oldest first, only those
   * made more than ttlMs ago (a burst's stock outlives it by the TTL). `stock` lists the
   * idle stock containers with the time each was made.
   */
  expired(stock: ReadonlyArray<{ name: string; madeAt: number }>, now: number, refillMs: number): string[] {
    const beyond = stock.length - this.target(now, refillMs);
    if (beyond <= 0) return [];
    const out: string[] = [];
    // Oldest first: once one is young enough to stay, every later one is too.
    for (const s of [...stock].sort((a, b) => a.madeAt - b.madeAt)) {
      if (out.length === beyond || !(now - s.madeAt > this.policy.ttlMs)) break;
      out.push(s.name);
    }
    return out;
  }

  /** Starts counted in the window ending at `now`; buckets from the "future" (the clock went back) do not count. */
  private inWindow(now: number): number {
    if (!Number.isFinite(now)) return 0;
    const bucket = Math.floor(now / this.bucketMs);
    let n = 0;
    for (let i = 0; i < STOCK_BUCKETS; i++) {
      const age = bucket - this.epochs[i]!;
      if (age >= 0 && age < STOCK_BUCKETS) n += this.counts[i]!;
    }
    return n;
  }

  private slotOf(bucket: number): number {
    return ((bucket % STOCK_BUCKETS) + STOCK_BUCKETS) % STOCK_BUCKETS;
  }
}
