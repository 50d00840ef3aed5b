import { LRUCache } from 'lru-cache';
import type { ContainerState } from './containerState.js';

/**
 * Where a request runs, decided over a snapshot of one pool. Pure: no clock, no I/O; the
 * RuntimePool actor takes a snapshot inside a mailbox step and applies the decision in
 * that same step.
 */

/** What placement needs to know of one container. */
export interface ContainerView {
  name: string;
  state: ContainerState;
  fn: string | null;
  lastUsedAt: number;
  /** When its current run started; null while it is not running a function. */
  runStartedAt: number | null;
}

export interface PoolSnapshot {
  containers: readonly ContainerView[];
  capacity: number;
  now: number;
  /** What a cold start costs lately (ms). */
  coldStartMs: number;
  /** A function's recent run time (ms); undefined before its first run. */
  runMs: (functionId: string) => number | undefined;
}

export interface Request {
  functionId: string;
  /** Requests of the same function queued before this one. */
  ahead: number;
}

export type Placement =
  | { kind: 'warm'; name: string }
  | { kind: 'prewarm'; name: string }
  /** Create a container; at capacity, `evict` first makes room. */
  | { kind: 'cold'; evict: string | null }
  | { kind: 'wait'; why: WaitReason };

export type WaitReason =
  /** The function's own container is being reset or paused: it is back in tens of ms. */
  | 'returning'
  /** A busy container of the function is expected back sooner than a cold start. */
  | 'busy-sooner'
  /** Every container is busy and none is idle to evict. */
  | 'full';

const isIdle = (c: ContainerView) => c.state === 'paused' || c.state === 'ready';
/** A thawed container saves a thaw; between equals, the most recently used. */
const betterWarm = (a: ContainerView, b: ContainerView) => (a.state === b.state ? a.lastUsedAt > b.lastUsedAt : a.state === 'ready');

/** Reset and hand-over time added to an expected wait for a busy warm container. */
export const HANDOFF_MS = 30;

/**
 * Start order: warm (same function; a thawed one in its pause grace before a frozen one)
 * > prewarm (stock) > cold, or wait when that is quicker.
 */
export function place(s: PoolSnapshot, req: Request): Placement {
  let warm: ContainerView | undefined;
  let prewarm: ContainerView | undefined;
  let returning = false;
  const busy: ContainerView[] = [];
  for (const c of s.containers) {
    if (c.fn === req.functionId && (c.state === 'resetting' || c.state === 'pausing')) returning = true;
    if (c.fn === req.functionId && (c.state === 'running' || c.state === 'thawing' || c.state === 'creating')) busy.push(c);
    if (c.fn === req.functionId && isIdle(c) && (!warm || betterWarm(c, warm))) warm = c;
    if (c.fn === null && c.state === 'paused' && !prewarm) prewarm = c;
  }
  if (warm) return { kind: 'warm', name: warm.name };
  // Waiting for the function's own container beats a cold start and keeps the prewarm
  // stock for functions that have none.
  if (returning) return { kind: 'wait', why: 'returning' };
  if (prewarm) return { kind: 'prewarm', name: prewarm.name };
  if (worthWaiting(s, req, busy)) return { kind: 'wait', why: 'busy-sooner' };
  if (s.containers.length < s.capacity) return { kind: 'cold', evict: null };
  // At capacity another function's idle container makes room. Containers are never
  // handed from one function to another, so nothing one leaves is seen by the other.
  const victim = leastRecentlyUsedIdle(s.containers);
  return victim ? { kind: 'cold', evict: victim.name } : { kind: 'wait', why: 'full' };
}

/**
 * Whether waiting for one of the function's busy containers is expected to be quicker
 * than a cold start: its remaining run time (from the function's recent runs) plus the
 * runs of the same-function requests queued ahead, spread over its busy containers. A
 * container still coming up for the function has its whole run ahead of it. Unknown
 * functions never wait: their first burst scales out.
 */
export function worthWaiting(s: PoolSnapshot, req: Request, busy: readonly ContainerView[]): boolean {
  const run = s.runMs(req.functionId);
  if (run === undefined || busy.length === 0) return false;
  const remaining = Math.min(...busy.map((c) => (c.runStartedAt === null ? run : Math.max(0, run - (s.now - c.runStartedAt)))));
  const expected = remaining + HANDOFF_MS + Math.floor(req.ahead / busy.length) * (run + HANDOFF_MS);
  return expected < s.coldStartMs;
}


export function leastRecentlyUsedIdle(containers: readonly ContainerView[]): ContainerView | undefined {
  let lru: ContainerView | undefined;
  for (const c of containers) {
    if (isIdle(c) && (!lru || c.lastUsedAt < lru.lastUsedAt)) lru = c;
  }
  return lru;
}

/**
 * What to do for the stock now: how many to create, and which idle warm containers to evict first to make room.
 * `create` counts only room free now: a retiring container holds its slot until it is
 * removed, and so does each one evicted here; the pool plans again once they are gone.
 * Slots already being freed by retiring containers cover part of what is missing, so a
 * plan repeated before removals finish does not evict again for the same stock. Only
 * containers idle for at least `minIdleMs` go: one used a moment ago is likely to serve again;
 * and only up to `evictUpTo` stock (the measured demand: the spare comes from free room only).
 */
export function stockPlan(
  s: Pick<PoolSnapshot, 'containers' | 'capacity' | 'now'>,
  target: number,
  waiting: number,
  minIdleMs: number,
  evictUpTo = target,
): { create: number; evict: string[] } {
  // A waiting request needs the room more than the stock does.
  if (waiting > 0) return { create: 0, evict: [] };
  let stock = 0;
  let freeing = 0;
  const evictable: ContainerView[] = [];
  for (const c of s.containers) {
    if (c.fn === null && (c.state === 'paused' || c.state === 'pausing' || c.state === 'creating')) stock++;
    else if (c.state === 'retiring') freeing++;
    else if (isIdle(c) && c.fn !== null && s.now - c.lastUsedAt >= minIdleMs) evictable.push(c);
  }
  const missing = target - stock;
  if (missing <= 0) return { create: 0, evict: [] };
  const create = Math.min(missing, Math.max(0, s.capacity - s.containers.length));
  const toFree = Math.max(0, Math.min(missing, evictUpTo - stock) - create - freeing);
  evictable.sort((a, b) => a.lastUsedAt - b.lastUsedAt);
  return { create, evict: evictable.slice(0, toFree).map((c) => c.name) };
}

/** Idle warm containers unused since `cutoff`: removed to give their memory back. */
export function idleSince(containers: readonly ContainerView[], cutoff: number): string[] {
  return containers.filter((c) => isIdle(c) && c.fn !== null && c.lastUsedAt < cutoff).map((c) => c.name);
}

/** Functions whose run time is remembered at once: a sender can name any number of them. */
export const ESTIMATED_FUNCTIONS = 10_000;

/** Running averages of run times per function (the most recently run ones) and of container creation. */
export class Estimates {
  private readonly runs = new LRUCache<string, number>({ max: ESTIMATED_FUNCTIONS });
  private cold: number;

  constructor(
    initialColdMs = 500,
    /** Weight of the newest sample. */
    private readonly weight = 0.3,
  ) {
    this.cold = initialColdMs;
  }

  get coldStartMs(): number {
    return this.cold;
  }

  runMs(functionId: string): number | undefined {
    return this.runs.get(functionId);
  }

  noteRun(functionId: string, ms: number): void {
    this.runs.set(functionId, this.ewma(this.runs.get(functionId), ms));
  }

  noteCreated(ms: number): void {
    this.cold = this.ewma(this.cold, ms);
  }

  private ewma(previous: number | undefined, sample: number): number {
    return previous === undefined ? sample : previous * (1 - this.weight) + sample * this.weight;
  }
}
