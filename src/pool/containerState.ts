/**
 * A container's state and its affinity (the function it is for) as one value, so that
 * impossible combinations cannot be written: a container runs, thaws or resets only for
 * a function; only a stock (prewarm) container has none. Slow I/O has a state of its own
 * (creating, thawing, resetting, pausing) so that no decision mistakes a container in the
 * middle of an engine call for an idle or a busy one.
 */
export type Phase =
  /** Being created and started; `fn` null for the prewarm stock, else a cold start for fn. */
  | { state: 'creating'; fn: string | null }
  /** Being unpaused for fn (a warm or prewarm start). */
  | { state: 'thawing'; fn: string }
  /** Leased to one invocation of fn. */
  | { state: 'running'; fn: string }
  /** Its writable state being reset after a run of fn. */
  | { state: 'resetting'; fn: string }
  /** Idle and thawed for the pause grace after a run of fn: the next run skips freeze and thaw. */
  | { state: 'ready'; fn: string }
  /** Being paused; idle afterwards. */
  | { state: 'pausing'; fn: string | null }
  /** Idle and frozen: warm for fn, or prewarm stock when fn is null. */
  | { state: 'paused'; fn: string | null }
  /** Being removed; never used again. */
  | { state: 'retiring'; fn: string | null };

export type ContainerState = Phase['state'];

export const CONTAINER_STATES: readonly ContainerState[] = ['creating', 'thawing', 'running', 'resetting', 'ready', 'pausing', 'paused', 'retiring'];

const EDGES: Record<ContainerState, readonly ContainerState[]> = {
  // Stock goes to pausing; a cold start goes straight to running.
  creating: ['pausing', 'running', 'retiring'],
  thawing: ['running', 'retiring'],
  running: ['resetting', 'retiring'],
  // resetting -> running: handed straight to a waiting request of the same function.
  resetting: ['ready', 'pausing', 'running', 'retiring'],
  ready: ['running', 'pausing', 'retiring'],
  pausing: ['paused', 'retiring'],
  paused: ['thawing', 'retiring'],
  retiring: [],
};

export class IllegalTransition extends Error {
  constructor(name: string, from: Phase, to: Phase, why: string) {
    super(`container ${name}: illegal transition ${from.state}(${from.fn ?? '-'}) -> ${to.state}(${to.fn ?? '-'}): ${why}`);
    this.name = 'IllegalTransition';
  }
}

/**
 * Checks one transition. Affinity changes only two ways: a stock container is claimed by
 * a function as it thaws, and a claimed container in which nothing ever ran goes back to
 * the stock. A container is never handed from one function to another.
 */
export function checkTransition(name: string, from: Phase, to: Phase, hasRun: boolean): void {
  if (!EDGES[from.state].includes(to.state)) throw new IllegalTransition(name, from, to, 'no such edge');
  if (from.fn === to.fn) return;
  if (from.fn === null && from.state === 'paused' && to.state === 'thawing') return;
  if (to.fn === null && !hasRun && from.state === 'resetting' && to.state === 'pausing') return;
  throw new IllegalTransition(name, from, to, 'a container is never handed from one function to another');
}
