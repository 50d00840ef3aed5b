import type { StartKind } from '../core/result.js';
import type { Runtime } from '../core/runtimes.js';
import { CONTAINER_STATES, type ContainerState } from './containerState.js';
import type { ContainerView } from './placement.js';

/** One pool as /status and the gauges show it. */
export interface PoolStatus {
  runtime: Runtime;
  image: string;
  maxContainers: number;
  prewarmTarget: number;
  containers: Record<ContainerState, number>;
  idleWarm: number;
  idlePrewarm: number;
  waiting: number;
  served: Record<StartKind, number>;
  /** Warm starts handed over without a pause in between. */
  handoffs: number;
  /** What a cold start costs lately (EWMA of creations, ms): the bar for waiting on a busy warm container. */
  coldStartMs: number;
  retired: number;
}

/** Counts containers by state and idle kind; the pool supplies the rest. */
export function summarize(views: readonly ContainerView[], rest: Omit<PoolStatus, 'containers' | 'idleWarm' | 'idlePrewarm'>): PoolStatus {
  const containers = Object.fromEntries(CONTAINER_STATES.map((s) => [s, 0])) as Record<ContainerState, number>;
  let idleWarm = 0;
  let idlePrewarm = 0;
  for (const v of views) {
    containers[v.state]++;
    if (v.state === 'paused' && v.fn === null) idlePrewarm++;
    else if (v.state === 'paused' || v.state === 'ready') idleWarm++;
  }
  return { ...rest, containers, idleWarm, idlePrewarm };
}
