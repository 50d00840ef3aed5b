import type Docker from 'dockerode';
import { join } from 'node:path';
import type { Runtime, RuntimeConfig } from './config.js';
import type { Logger } from './log.js';
import { Mailbox } from './mailbox.js';
import { InvocationError, type StartKind } from './result.js';
import { LABEL_AGENT, LABEL_RUN, LABEL_RUNTIME, WarmContainer, type ContainerState } from './warmContainer.js';

export interface PoolOptions {
  runtime: Runtime;
  config: RuntimeConfig;
  docker: Docker;
  agentId: string;
  runId: string;
  workRoot: string;
  network: string;
  defaultMemoryMb: number;
  idleTimeoutMs: number;
  apiTimeoutMs: number;
  log: Logger;
  /** Called on every container state change and start served, for metrics. */
  onEvent?: (event: PoolEvent) => void;
}

export type PoolEvent =
  | { type: 'served'; runtime: Runtime; startKind: StartKind; acquireMs: number }
  | { type: 'retired'; runtime: Runtime; why: string }
  | { type: 'created'; runtime: Runtime; ms: number };

/** A container handed to one invocation: running (unpaused), memory limit applied. */
export interface Lease {
  container: WarmContainer;
  startKind: StartKind;
  acquireMs: number;
  /** Affinity before this lease, restored when the lease is given back unused. */
  previousFunctionId: string | null;
}

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
  retired: number;
}

interface Waiter {
  functionId: string;
  resolve: (claim: Claim) => void;
  reject: (err: Error) => void;
}

type Claim = { container: WarmContainer; startKind: StartKind; fresh: boolean };

const ACQUIRE_ATTEMPTS = 3;

/**
 * The actor that alone owns one runtime's containers. Decisions over the container set
 * (which container serves whom, when to create, evict, replenish, reap) are steps in its
 * mailbox; Docker calls run outside the mailbox on a container already claimed by a step.
 */
export class RuntimePool {
  readonly runtime: Runtime;
  private readonly containers = new Map<string, WarmContainer>();
  private readonly waiters: Waiter[] = [];
  private readonly mailbox = new Mailbox();
  private readonly served: Record<StartKind, number> = { cold: 0, prewarm: 0, warm: 0 };
  private retiredCount = 0;
  private seq = 0;
  private stopping = false;
  private reaper: NodeJS.Timeout | undefined;
  private readonly background = new Set<Promise<unknown>>();

  constructor(private readonly opts: PoolOptions) {
    this.runtime = opts.runtime;
  }

  get capacity(): number {
    return this.opts.config.maxContainers;
  }

  /** Creates the prewarm containers (paused) and starts the idle reaper. */
  async start(): Promise<void> {
    await this.mailbox.post(() => this.replenish());
    await this.settle();
    const every = Math.max(1000, Math.min(30_000, Math.floor(this.opts.idleTimeoutMs / 4)));
    this.reaper = setInterval(() => void this.mailbox.post(() => this.reapIdle()), every);
    this.reaper.unref();
  }

  /**
   * Hands out a running container for `functionId`: warm (same function) first, then
   * prewarm, then cold (created, evicting the least recently used idle container of
   * another function at capacity); waits when every container is busy.
   */
  async acquire(functionId: string, memoryMb: number): Promise<Lease> {
    const started = performance.now();
    let lastError: unknown;
    for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
      const claim = (await this.mailbox.post(() => this.claim(functionId))) ?? (await this.waitForClaim(functionId));
      const { container: c, startKind } = claim;
      try {
        await this.bringUp(c, claim.fresh, memoryMb);
        const previousFunctionId = c.functionId;
        c.functionId = functionId;
        return { container: c, startKind, acquireMs: performance.now() - started, previousFunctionId };
      } catch (err) {
        lastError = err;
        this.opts.log.warn({ tag: 'DOCKER', container: c.name, startKind, err: String(err) }, 'container failed to come up; replacing it');
        this.retire(c, 'bring-up failed');
        if (this.stopping) break;
      }
    }
    throw new InvocationError('DOCKER_UNAVAILABLE', 'transient', `no ${this.runtime} container could be started: ${String(lastError)}`, {
      cause: lastError,
    });
  }

  /** Counts a lease whose function started running (an unused lease is not a start). */
  markStarted(lease: Lease): void {
    lease.container.served++;
    this.served[lease.startKind]++;
    this.opts.onEvent?.({ type: 'served', runtime: this.runtime, startKind: lease.startKind, acquireMs: lease.acquireMs });
    // A prewarm container now belongs to a function: make another ready in the background.
    if (lease.startKind === 'prewarm') void this.mailbox.post(() => this.replenish());
  }

  /**
   * Gives a container back: wiped and paused for reuse, or retired when unhealthy. A
   * lease never used (the code could not be fetched) keeps the container's old affinity,
   * so a prewarm container stays prewarm.
   */
  release(lease: Lease, healthy: boolean, used = true): Promise<void> {
    const c = lease.container;
    if (used) c.lastUsedAt = Date.now();
    else c.functionId = lease.previousFunctionId;
    if (!healthy || this.stopping) {
      this.retire(c, healthy ? 'stopping' : 'unhealthy after run');
      return Promise.resolve();
    }
    const done = (async () => {
      try {
        c.to('wiping');
        // Pause first so nothing inside can write while the workspace is removed.
        await c.pause();
        await c.wipeWorkspace();
        await this.mailbox.post(() => {
          if (c.state !== 'wiping') return;
          c.to('paused');
          this.dispatch();
        });
      } catch (err) {
        // While stopping, the pool removes this container under the pause: expected.
        const level = this.stopping ? 'debug' : 'warn';
        this.opts.log[level]({ tag: 'DOCKER', container: c.name, err: String(err) }, 'pause or wipe failed; retiring container');
        this.retire(c, 'pause failed');
      }
    })();
    return this.track(done);
  }

  status(): PoolStatus {
    const containers: Record<ContainerState, number> = { creating: 0, paused: 0, running: 0, wiping: 0, retiring: 0 };
    let idleWarm = 0;
    let idlePrewarm = 0;
    for (const c of this.containers.values()) {
      containers[c.state]++;
      if (c.state === 'paused') {
        if (c.functionId === null) idlePrewarm++;
        else idleWarm++;
      }
    }
    return {
      runtime: this.runtime,
      image: this.opts.config.image,
      maxContainers: this.capacity,
      prewarmTarget: this.opts.config.prewarm,
      containers,
      idleWarm,
      idlePrewarm,
      waiting: this.waiters.length,
      served: { ...this.served },
      retired: this.retiredCount,
    };
  }

  /** Refuses new work, fails waiters, removes every container (running ones too). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.reaper);
    await this.mailbox.post(() => {
      for (const w of this.waiters.splice(0)) {
        w.reject(new InvocationError('SHUTTING_DOWN', 'transient', `the ${this.runtime} pool is stopping`));
      }
      for (const c of this.containers.values()) this.retire(c, 'stopping');
    });
    await this.settle();
  }

  /** Waits for background work (creation, pause, removal) to finish. */
  async settle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  // ---- mailbox steps: synchronous decisions over the container set ----

  private claim(functionId: string): Claim | undefined {
    if (this.stopping) throw new InvocationError('SHUTTING_DOWN', 'transient', `the ${this.runtime} pool is stopping`);
    let warm: WarmContainer | undefined;
    let prewarm: WarmContainer | undefined;
    let returning = false;
    for (const c of this.containers.values()) {
      if (c.state === 'wiping' && c.functionId === functionId) returning = true;
      if (c.state !== 'paused') continue;
      if (c.functionId === functionId && (!warm || c.lastUsedAt > warm.lastUsedAt)) warm = c;
      if (c.functionId === null && !prewarm) prewarm = c;
    }
    // This function's container is being paused and wiped (tens of ms): waiting for it
    // beats a cold start and keeps the prewarm containers for functions that have none.
    if (!warm && returning) return undefined;
    const pick = warm ?? prewarm;
    if (pick) {
      pick.to('running');
      return { container: pick, startKind: warm ? 'warm' : 'prewarm', fresh: false };
    }
    if (this.containers.size >= this.capacity) {
      // At capacity: another function's idle container makes room. Containers are never
      // handed from one function to another, so nothing one leaves is seen by the other.
      const victim = this.leastRecentlyUsedIdle();
      if (!victim) return undefined;
      this.retire(victim, 'evicted for another function');
    }
    const c = this.newContainer();
    c.to('running');
    return { container: c, startKind: 'cold', fresh: true };
  }

  /** Serves waiters, oldest first, each as soon as a container fits it. */
  private dispatch(): void {
    if (this.stopping) return;
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i]!;
      const claim = this.claim(w.functionId);
      if (!claim) {
        i++;
        continue;
      }
      this.waiters.splice(i, 1);
      w.resolve(claim);
    }
    if (this.waiters.length === 0) this.replenish();
  }

  /** Keeps `prewarm` fresh containers ready while capacity allows and nobody waits. */
  private replenish(): void {
    if (this.stopping || this.waiters.length > 0) return;
    let ready = 0;
    for (const c of this.containers.values()) {
      if (c.functionId === null && (c.state === 'paused' || c.state === 'creating')) ready++;
    }
    while (ready < this.opts.config.prewarm && this.containers.size < this.capacity) {
      const c = this.newContainer();
      ready++;
      const made = (async () => {
        const t0 = performance.now();
        try {
          await c.create();
          await c.pause();
          this.opts.onEvent?.({ type: 'created', runtime: this.runtime, ms: performance.now() - t0 });
          await this.mailbox.post(() => {
            if (c.state !== 'creating') return;
            c.to('paused');
            this.dispatch();
          });
        } catch (err) {
          this.opts.log.warn({ tag: 'DOCKER', container: c.name, err: String(err) }, 'prewarm container could not be created');
          this.retire(c, 'prewarm failed', false);
        }
      })();
      this.track(made);
    }
  }

  private reapIdle(): void {
    const cutoff = Date.now() - this.opts.idleTimeoutMs;
    for (const c of this.containers.values()) {
      if (c.state === 'paused' && c.functionId !== null && c.lastUsedAt < cutoff) this.retire(c, 'idle timeout');
    }
    this.replenish();
  }

  // ---- helpers ----

  private waitForClaim(functionId: string): Promise<Claim> {
    return new Promise<Claim>((resolve, reject) => {
      this.waiters.push({ functionId, resolve, reject });
    });
  }

  private async bringUp(c: WarmContainer, fresh: boolean, memoryMb: number): Promise<void> {
    if (fresh) {
      const t0 = performance.now();
      await c.create(memoryMb);
      this.opts.onEvent?.({ type: 'created', runtime: this.runtime, ms: performance.now() - t0 });
      return;
    }
    await c.unpause();
    await c.setMemory(memoryMb);
  }

  private newContainer(): WarmContainer {
    const seq = ++this.seq;
    const name = `ng-${this.opts.agentId}-${this.opts.runId.slice(0, 8)}-${this.runtime}-${seq}`;
    const c = new WarmContainer(this.opts.docker, {
      runtime: this.runtime,
      image: this.opts.config.image,
      name,
      hostDir: join(this.opts.workRoot, this.opts.agentId, 'containers', name),
      network: this.opts.network,
      memoryMb: this.opts.defaultMemoryMb,
      labels: {
        [LABEL_AGENT]: this.opts.agentId,
        [LABEL_RUN]: this.opts.runId,
        [LABEL_RUNTIME]: this.runtime,
      },
      apiTimeoutMs: this.opts.apiTimeoutMs,
    });
    this.containers.set(name, c);
    return c;
  }

  private leastRecentlyUsedIdle(): WarmContainer | undefined {
    let lru: WarmContainer | undefined;
    for (const c of this.containers.values()) {
      if (c.state === 'paused' && (!lru || c.lastUsedAt < lru.lastUsedAt)) lru = c;
    }
    return lru;
  }

  /** Removes a container in the background; its slot is free once it is gone. */
  private retire(c: WarmContainer, why: string, count = true): void {
    if (c.state === 'retiring') return;
    c.state = 'retiring';
    if (count) this.retiredCount++;
    this.opts.onEvent?.({ type: 'retired', runtime: this.runtime, why });
    this.opts.log.debug({ tag: 'DOCKER', container: c.name, why }, 'retiring container');
    const gone = (async () => {
      await c.remove().catch((err: unknown) => {
        this.opts.log.warn({ tag: 'DOCKER', container: c.name, err: String(err) }, 'container removal failed');
      });
      await this.mailbox.post(() => {
        this.containers.delete(c.name);
        this.dispatch();
      });
    })();
    this.track(gone);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
    return p;
  }
}
