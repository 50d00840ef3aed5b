import { checkTransition, type ContainerState, type Phase } from './containerState.js';
import type { DockerContainer } from '../container/dockerContainer.js';
import type { Logger } from '../core/log.js';
import type { ContainerView } from './placement.js';

/** What a proxy asks of its pool: the pool alone decides over the container set. */
export interface ProxyHost {
  /** Runs a decision in the pool's mailbox, after every step posted before it. */
  step<T>(fn: () => T): Promise<T>;
  /** Engine work in the background: the pool waits for it when it stops. */
  track<T>(work: Promise<T>): Promise<T>;
  /** The pool is stopping: failures are expected and logged quietly. */
  readonly stopping: boolean;
  /** Called in a step: the container became idle (frozen), so a waiter may take it. */
  available(): void;
  /** Called in a step: engine work on it failed; the pool takes it out of service. */
  failed(proxy: ContainerProxy, why: string): void;
  /** Called in a step once the engine removed it: its slot is free. */
  removed(proxy: ContainerProxy): void;
  readonly log: Logger;
}

/**
 * One container as its pool sees it, and the driver of its life (OpenWhisk's
 * ContainerProxy): its phase (state and affinity), its bring-up, reset, pause grace,
 * freeze and removal. Its pool decides what it does next, in mailbox steps; the proxy
 * does the engine work outside them and reports back through ProxyHost. Every change of
 * phase goes through `to`, which refuses an illegal one.
 */
export class ContainerProxy {
  private current: Phase;
  lastUsedAt = Date.now();
  /** When the current run's function started, for the pool's run-time estimate. */
  runStartedAt: number | null = null;
  /** Runs that started in this container. */
  runs = 0;
  private graceTimer: NodeJS.Timeout | undefined;
  private created: () => void = () => undefined;
  /** Settles once a cold start's creation ends, either way (an eviction's removal waits for it). */
  readonly createdOrFailed = new Promise<void>((resolve) => (this.created = resolve));

  constructor(
    readonly engine: DockerContainer,
    initial: Extract<Phase, { state: 'creating' }>,
    private readonly host: ProxyHost,
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

  view(): ContainerView {
    return { name: this.name, state: this.state, fn: this.functionId, lastUsedAt: this.lastUsedAt, runStartedAt: this.runStartedAt };
  }

  /**
   * The engine work a claim needs before a run: a cold one is created (the zygote is not
   * awaited: the run waits for it), a frozen one thawed, and either given the run's memory.
   * Returns the creation time (ms) of a cold one.
   */
  async bringUp(kind: 'create' | 'thaw' | 'none', memoryMb: number): Promise<number | null> {
    const t0 = performance.now();
    if (kind === 'create') {
      try {
        await this.engine.create(memoryMb, { awaitZygote: false });
      } finally {
        this.created();
      }
      return performance.now() - t0;
    }
    if (kind === 'thaw') await this.engine.thaw();
    await this.engine.setMemory(memoryMb);
    return null;
  }

  /** A stock container, created at the default memory; returns its creation time (ms). */
  async createStock(): Promise<number> {
    const t0 = performance.now();
    await this.engine.create();
    return performance.now() - t0;
  }

  /**
   * Resets the workspace after a run. The runner killed every process of the run before
   * it answered, so nothing can write into the workspace meanwhile.
   */
  reset(): Promise<void> {
    return this.engine.resetWorkspace();
  }

  /** In a step: stays thawed for `graceMs` after a run, then is frozen unless used again meanwhile. */
  holdInGrace(graceMs: number): void {
    this.to({ state: 'ready', fn: this.functionId! });
    const usedAt = this.lastUsedAt;
    clearTimeout(this.graceTimer);
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      void this.freeze(usedAt);
    }, graceMs);
    this.graceTimer.unref();
  }

  /**
   * Freezes an idle container (engine work outside the mailbox), then marks it paused.
   * `readySince`: its pause grace is over; it moves to pausing first, unless it was used
   * again meanwhile (a later run has a grace of its own). Without it, the pool has moved
   * it to pausing already.
   */
  freeze(readySince?: number): Promise<void> {
    const work = (async () => {
      if (readySince !== undefined) {
        const go = await this.host.step(() => {
          if (this.state !== 'ready' || this.lastUsedAt !== readySince) return false;
          this.to({ state: 'pausing', fn: this.functionId });
          return true;
        });
        if (!go) return;
      }
      try {
        await this.engine.freeze();
      } catch (err) {
        this.host.log[this.host.stopping ? 'debug' : 'warn']({ tag: 'DOCKER', container: this.name, err }, 'freeze failed; retiring container');
        await this.host.step(() => this.host.failed(this, 'freeze failed'));
        return;
      }
      await this.host.step(() => {
        if (this.state !== 'pausing') return;
        this.to({ state: 'paused', fn: this.functionId });
        this.host.available();
      });
    })();
    return this.host.track(work);
  }

  /**
   * In a step: takes it out of service, whatever it was doing, and removes it in the
   * background; the host hears when it is gone. False when it was being removed already.
   */
  retire(why: string, opts: { removeAfter?: Promise<unknown> } = {}): boolean {
    if (this.state === 'retiring') return false;
    clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    this.to({ state: 'retiring', fn: this.current.fn });
    this.host.log.debug({ tag: 'DOCKER', container: this.name, why }, 'retiring container');
    const gone = (async () => {
      await this.engine.destroy(opts).catch((err: unknown) => {
        this.host.log.warn({ tag: 'DOCKER', container: this.name, err }, 'container removal failed');
      });
      await this.host.step(() => this.host.removed(this));
    })();
    void this.host.track(gone);
    return true;
  }
}
