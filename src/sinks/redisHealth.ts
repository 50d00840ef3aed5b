/**
 * Whether Redis seems reachable, shared by everything the agent sends it on an
 * invocation's path (the claim, the memory history, the result): from a call that failed
 * or timed out until one succeeds, a call does not wait for Redis (a hung server would
 * hold every invocation for the command timeout) but for one a second, which tries.
 */
export class RedisHealth {
  private down = false;
  private lastProbe = 0;

  constructor(private readonly probeEveryMs = 1000) {}

  get isDown(): boolean {
    return this.down;
  }

  /** True when this call should not wait for Redis now. */
  skip(): boolean {
    if (!this.down) return false;
    const now = Date.now();
    if (now - this.lastProbe < this.probeEveryMs) return true;
    this.lastProbe = now;
    return false;
  }

  failed(): void {
    if (!this.down) this.lastProbe = Date.now();
    this.down = true;
  }

  ok(): void {
    this.down = false;
  }
}
