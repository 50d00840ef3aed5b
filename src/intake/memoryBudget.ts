/**
 * The memory the agent's running invocations are allowed, in MB, against a budget (the
 * host's memory minus a reserve): a slot is not enough to run, the memory must fit too.
 * Waiters are served in order, so a large request is not starved by a stream of small ones.
 */
export class MemoryBudget {
  private inUse = 0;
  private readonly waiters: { mb: number; resolve: (release: () => void) => void; reject: (err: Error) => void }[] = [];

  constructor(readonly totalMb: number) {
    if (!(totalMb > 0)) throw new RangeError(`memory budget must be positive, got ${totalMb}`);
  }

  get inUseMb(): number {
    return this.inUse;
  }

  get freeMb(): number {
    return Math.max(0, this.totalMb - this.inUse);
  }

  /** Invocations waiting for memory to free. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** How many more invocations of `typicalMb` could start now (none while any waits). */
  admissible(typicalMb: number): number {
    if (this.waiters.length > 0) return 0;
    // A budget below the typical size still takes one message at a time, not none ever.
    return Math.floor(this.freeMb / Math.max(1, Math.min(typicalMb, this.totalMb)));
  }

  /**
   * Resolves with a release function once `mb` fits. A request larger than the whole budget
   * is refused: it could never fit (the parser refuses such messages before this).
   */
  acquire(mb: number): Promise<() => void> {
    if (mb > this.totalMb) return Promise.reject(new RangeError(`${mb} MB exceeds the memory budget of ${this.totalMb} MB`));
    return new Promise((resolve, reject) => {
      this.waiters.push({ mb, resolve, reject });
      this.pump();
    });
  }

  /** Fails every waiter (the agent is stopping): their messages go back to the queue. */
  cancelWaiters(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
  }

  private pump(): void {
    while (this.waiters.length > 0 && this.waiters[0]!.mb <= this.totalMb - this.inUse) {
      const w = this.waiters.shift()!;
      this.inUse += w.mb;
      let released = false;
      w.resolve(() => {
        if (released) return;
        released = true;
        this.inUse -= w.mb;
        this.pump();
      });
    }
  }
}
