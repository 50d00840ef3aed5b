import { sleep } from './timeout.js';

/**
 * Exponential backoff with full jitter (AWS's "Exponential Backoff And Jitter"): each wait
 * is uniform between 0 and min(max, base * 2^n), so many retriers spread out instead of
 * retrying in step.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  /** The next wait, in ms (and counts the attempt). */
  next(): number {
    const bound = Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 30));
    this.attempt++;
    return Math.round(this.random() * bound);
  }

  wait(): Promise<void> {
    return sleep(this.next());
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}
