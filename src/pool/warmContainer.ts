import { checkTransition, type ContainerState, type Phase } from './containerState.js';
import type { DockerContainer } from '../container/dockerContainer.js';
import type { ContainerView } from './placement.js';

/**
 * One container as its pool sees it: its phase (state and affinity), its last use and
 * its engine handle. Only its RuntimePool changes it, and only inside a mailbox step;
 * every change goes through `to`, which refuses an illegal one.
 */
export class WarmContainer {
  private current: Phase;
  lastUsedAt = Date.now();
  /** When the current run's function started, for the pool's run-time estimate. */
  runStartedAt: number | null = null;
  /** Runs that started in this container. */
  runs = 0;

  constructor(
    readonly engine: DockerContainer,
    initial: Extract<Phase, { state: 'creating' }>,
  ) {
    this.current = initial;
  }

  get name(): string {
    return this.engine.name;
  }

  get state(): ContainerState {
    return this.current.state;
  }

  /** The function this container is for; null for a prewarm (stock) one. */
  get functionId(): string | null {
    return this.current.fn;
  }

  to(next: Phase): void {
    checkTransition(this.name, this.current, next, this.runs > 0);
    this.current = next;
    if (next.state !== 'running') this.runStartedAt = null;
  }

  /** Takes it out of service, whatever it was doing. */
  retire(): void {
    this.to({ state: 'retiring', fn: this.current.fn });
  }

  view(): ContainerView {
    return { name: this.name, state: this.state, fn: this.functionId, lastUsedAt: this.lastUsedAt, runStartedAt: this.runStartedAt };
  }
}
