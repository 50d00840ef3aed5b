import { join } from 'node:path';
import type { Logger } from '../core/log.js';
import { Scratch, type ScratchSource } from './scratch.js';

/** How long a refill waits for file systems to come back before it makes new ones. */
export const REFILL_DELAY_MS = 2000;
/** How long a file system kept above the spare count may stay unused before it is destroyed. */
export const EXTRA_TTL_MS = 30_000;

export interface ScratchStockOptions {
  /** The agent's folder: images and mounts under scratch/, the agent's views under view/. */
  root: string;
  /** Writable bytes each container gets (every scratch file system of the stock is the same size). */
  limitBytes: number;
  reserve: boolean;
  timeoutMs: number;
  /** How many are kept ready: made ahead at start, then refilled by the ones containers give back. */
  spare: number;
  /**
   * How many given back may be kept ready (default and at least `spare`): the agent's
   * capacity. Under eviction churn several cold starts take at once while their evicted
   * containers' file systems are still held until the engine removed them; keeping every
   * one that comes back means the next burst finds them ready instead of waiting for mkfs
   * (and a spare made meanwhile being thrown away when they come back).
   */
  keep?: number;
  /** How long one kept above `spare` may stay unused (default EXTRA_TTL_MS). */
  extraTtlMs?: number;
  /** How long a refill waits for file systems to come back (default REFILL_DELAY_MS). */
  refillDelayMs?: number;
  log: Logger;
}

export interface ScratchStockStatus {
  /** Ready for the next container. */
  ready: number;
  /** Made with mkfs (at start, ahead, or when none was ready). */
  made: number;
  /** Given back, found as new, and kept for another container. */
  recycled: number;
  /** Given back and destroyed: not as new, or more than the keep count; or kept above the spare count and unused too long. */
  discarded: number;
  /** Of those, the ones found not as new (each reason is logged). */
  dirty: number;
  /** Takes that found none ready and waited for mkfs. */
  misses: number;
}

/**
 * The agent's scratch file systems (scratch.ts), made ahead and reused: a cold start takes
 * a ready one instead of waiting for mkfs and a loop mount, and a removed container's one
 * is emptied, checked as new (Scratch.recycle) and kept for the next container, so that a
 * cold start at scale costs neither mkfs nor mount nor unmount. A file system is only
 * ever given to one container at a time, and only after the last one was removed.
 */
export class ScratchStock implements ScratchSource {
  /** Oldest first: a take pops the newest, so the ones above the spare count that stay unused are the oldest. */
  private readonly ready: Array<{ s: Scratch; since: number }> = [];
  private making = 0;
  private trim: NodeJS.Timeout | undefined;
  private seq = 0;
  private closed = false;
  private refill: NodeJS.Timeout | undefined;
  /** Containers being removed whose file systems have not come back yet. */
  private incoming = 0;
  private readonly pending = new Set<Promise<unknown>>();
  private readonly counts = { made: 0, recycled: 0, discarded: 0, dirty: 0, misses: 0 };

  constructor(private readonly opts: ScratchStockOptions) {}

  /** Makes the spares (in the background: call `settled` to wait for them). */
  fill(): void {
    if (this.closed) return;
    while (this.ready.length + this.making < this.opts.spare) {
      this.making++;
      this.track(
        this.make()
          .then((s) => this.made(s))
          .catch((err: unknown) => this.opts.log.warn({ tag: 'DOCKER', err }, 'a spare scratch file system could not be made'))
          .finally(() => this.making--),
      );
    }
  }

  async take(): Promise<Scratch> {
    if (this.closed) throw new Error('the scratch stock is closed');
    const s = this.ready.pop()?.s;
    // None left and none coming back: the next cold start would wait for mkfs; make one
    // now. Else a moment later: what removed containers give back may refill it first
    // (under eviction churn each cold start's eviction gives one back).
    if (this.ready.length === 0 && this.incoming === 0) this.fill();
    else this.refillSoon();
    if (s) return s;
    this.counts.misses++;
    return this.make();
  }

  returning(): void {
    this.incoming++;
  }

  /** Recycles it for another container, or destroys it, in the background (`settled` waits for it): a removal does not wait for it. */
  give(s: Scratch, o: { reusable: boolean } = { reusable: true }): Promise<void> {
    this.incoming = Math.max(0, this.incoming - 1);
    this.track(o.reusable ? this.takeBack(s) : this.discard(s, null));
    return Promise.resolve();
  }

  status(): ScratchStockStatus {
    return { ready: this.ready.length, ...this.counts };
  }

  /** Waits for what is being made or recycled. */
  async settled(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  /** From now on what comes back is destroyed and takes fail (the agent is stopping). */
  stopKeeping(): void {
    this.closed = true;
  }

  /** Destroys every ready one, after what is under way; takes fail from now on. */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.refill);
    clearTimeout(this.trim);
    await this.settled();
    await Promise.all(this.ready.splice(0).map((r) => r.s.destroy().catch(() => undefined)));
  }

  private get keep(): number {
    return Math.max(this.opts.spare, this.opts.keep ?? 0);
  }

  private async takeBack(s: Scratch): Promise<void> {
    if (this.closed || this.ready.length + this.making >= this.keep) return this.discard(s, null);
    let why: string | null;
    try {
      why = await s.recycle();
    } catch (err) {
      why = `recycle failed: ${String(err)}`;
    }
    // Another may have come back meanwhile: never keep more than the keep count.
    if (why !== null || this.closed || this.ready.length + this.making >= this.keep) return this.discard(s, why);
    this.counts.recycled++;
    this.push(s);
  }

  private push(s: Scratch): void {
    this.ready.push({ s, since: performance.now() });
    if (this.ready.length > this.opts.spare) this.trimLater();
  }

  /** Destroys the ones above the spare count that stayed unused for the TTL: a burst's extras do not hold a loop mount and disk for ever. */
  private trimLater(): void {
    if (this.trim || this.closed) return;
    const ttl = this.opts.extraTtlMs ?? EXTRA_TTL_MS;
    this.trim = setTimeout(() => {
      this.trim = undefined;
      const now = performance.now();
      while (this.ready.length > this.opts.spare && now - this.ready[0]!.since >= ttl) this.track(this.discard(this.ready.shift()!.s, null));
      if (this.ready.length > this.opts.spare) this.trimLater();
    }, ttl);
    this.trim.unref();
  }

  private async discard(s: Scratch, why: string | null): Promise<void> {
    this.counts.discarded++;
    if (why) this.counts.dirty++;
    if (why) this.opts.log.warn({ tag: 'DOCKER', scratch: s.spec.mountDir, why }, 'a scratch file system given back was not as new; destroyed');
    await s.destroy().catch((err: unknown) => this.opts.log.warn({ tag: 'DOCKER', err }, 'a scratch file system could not be destroyed'));
  }

  private async make(): Promise<Scratch> {
    const name = `s-${++this.seq}`;
    const s = await Scratch.create({
      imagePath: join(this.opts.root, 'scratch', `${name}.img`),
      mountDir: join(this.opts.root, 'scratch', name),
      viewDir: join(this.opts.root, 'view', name),
      limitBytes: this.opts.limitBytes,
      reserve: this.opts.reserve,
      timeoutMs: this.opts.timeoutMs,
    });
    this.counts.made++;
    return s;
  }

  /**
   * Makes what is missing a moment later, not at once: under eviction churn the container
   * that made room gives its file system back within that moment, and a mkfs made meanwhile
   * would be thrown away.
   */
  private refillSoon(): void {
    if (this.refill || this.closed || this.ready.length >= this.opts.spare) return;
    this.refill = setTimeout(() => {
      this.refill = undefined;
      this.fill();
    }, this.opts.refillDelayMs ?? REFILL_DELAY_MS);
    this.refill.unref();
  }

  private made(s: Scratch): Promise<void> | void {
    if (this.closed) return s.destroy().catch(() => undefined);
    this.push(s);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }
}
