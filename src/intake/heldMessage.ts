/**
 * A received message's life in the agent, forward only: received (being read), admitting
 * (its request id claimed, its memory admitted), waiting (for its code and a container),
 * running (committed: a drain lets it finish), settled (its run is over or never needed a
 * container; it is being answered and deleted), or given back (visible again for another
 * worker: whatever its run ends with is discarded). Free slots, status and give-back are
 * filters over these states.
 */
export type HeldState = 'received' | 'admitting' | 'waiting' | 'running' | 'settled' | 'givenBack';

export const HELD_STATES: readonly HeldState[] = ['received', 'admitting', 'waiting', 'running', 'settled', 'givenBack'];

const NEXT: Record<HeldState, readonly HeldState[]> = {
  received: ['admitting', 'settled', 'givenBack'],
  admitting: ['waiting', 'settled', 'givenBack'],
  waiting: ['running', 'settled', 'givenBack'],
  running: ['settled', 'givenBack'],
  settled: [],
  givenBack: [],
};

export class HeldMessage {
  private current: HeldState = 'received';
  requestId: string | undefined;
  /** Its container is free again (its run ended, or it never had one): true once settled, or when a given-back run ends. */
  containerFree = false;
  /** Returns the memory its run was allowed to the budget. */
  releaseMemory?: (() => void) | undefined;

  constructor(
    readonly receiptHandle: string,
    readonly messageId: string,
  ) {}

  get state(): HeldState {
    return this.current;
  }

  /** Moves forward; false (and no change) where the state cannot go there now (a message given back stays so). */
  to(next: HeldState): boolean {
    if (!NEXT[this.current].includes(next)) return false;
    this.current = next;
    if (next === 'settled') this.containerFree = true;
    return true;
  }

  /** It takes one of the agent's slots: until its run is over, also after it was given back. */
  get takesSlot(): boolean {
    return !this.containerFree && this.current !== 'settled';
  }

  /** It can still go back without running: nothing is committed yet. */
  get cancellable(): boolean {
    return this.current === 'admitting' || this.current === 'waiting';
  }

  /** Its run has not ended: a deadline gives it back. */
  get unfinished(): boolean {
    return this.current === 'received' || this.current === 'admitting' || this.current === 'waiting' || this.current === 'running';
  }

  get givenBack(): boolean {
    return this.current === 'givenBack';
  }
}

/** How many held messages are in each state. */
export function countStates(held: Iterable<HeldMessage>): Record<HeldState, number> {
  const n = Object.fromEntries(HELD_STATES.map((s) => [s, 0])) as Record<HeldState, number>;
  for (const h of held) n[h.state]++;
  return n;
}
