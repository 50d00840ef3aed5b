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
  /** Warm starts handed over without a pause in between. */
  handoffs: number;
  /** What a cold start costs lately (EWMA of creations, ms): the bar for waiting on a busy warm container. */
  coldStartMs: number;
  retired: number;
}

interface Waiter {
  functionId: string;
  resolve: (claim: Claim) => void;
  reject: (err: Error) => void;
}

/** fresh: to be created; hot: handed over still running (no unpause needed). */
type Claim = { container: WarmContainer; startKind: StartKind; fresh: boolean; hot?: boolean };

const ACQUIRE_ATTEMPTS = 3;
/** Wipe and hand-over time added to an expected wait for a busy warm container. */
const HANDOFF_MS = 30;
/** Weight of the newest sample in the run-time and creation-time averages. */
const EWMA_WEIGHT = 0.3;

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
  private handoffs = 0;
  private seq = 0;
  /** Recent run time per function (EWMA, ms): how long a busy container will stay busy. */
  private readonly runMs = new Map<string, number>();
  /** Recent container creation time (EWMA, ms): what a cold start costs. */
  private coldMs = 500;
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
   * another function at capacity). It waits instead when the function's own container
   * is being wiped, when one of its busy containers is expected back sooner than a cold
   * start takes, or when every container is busy.
   */
  async acquire(functionId: string, memoryMb: number): Promise<Lease> {
    const started = performance.now();
    let lastError: unknown;
    for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
      const claim = await this.claimOrWait(functionId);
      const { container: c, startKind } = claim;
      try {
        await this.bringUp(c, claim, memoryMb);
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
    lease.container.runStartedAt = Date.now();
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
    if (used) {
      c.lastUsedAt = Date.now();
      if (c.functionId !== null) this.runMs.set(c.functionId, ewma(this.runMs.get(c.functionId), c.lastUsedAt - c.runStartedAt));
    } else {
      c.functionId = lease.previousFunctionId;
    }
    if (!healthy || this.stopping) {
      this.retire(c, healthy ? 'stopping' : 'unhealthy after run');
      return Promise.resolve();
    }
    const done = (async () => {
      try {
        c.to('wiping');
        // The run's processes were all killed when it ended (see wrapCommand), so the
        // workspace can go before the pause.
        await c.wipeWorkspace();
        // A request of the same function is waiting: hand the container over as it is,
        // saving a pause and an unpause per run under load.
        const handed = await this.mailbox.post(() => {
          if (c.state !== 'wiping') return true;
          if (this.stopping) return false;
          const i = this.waiters.findIndex((w) => w.functionId === c.functionId);
          if (i < 0) return false;
          const [w] = this.waiters.splice(i, 1);
          c.to('running');
          this.handoffs++;
          w!.resolve({ container: c, startKind: 'warm', fresh: false, hot: true });
          return true;
        });
        if (handed) return;
        await c.pause();
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
      handoffs: this.handoffs,
      coldStartMs: Math.round(this.coldMs),
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

  /** Recent run time of a function (EWMA, ms), undefined before its first run. */
  runEstimate(functionId: string): number | undefined {
    return this.runMs.get(functionId);
  }

  /** Waits for background work (creation, pause, removal) to finish. */
  async settle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  // ---- mailbox steps: synchronous decisions over the container set ----

  /** `ahead`: requests of the same function already waiting before this one. */
  private claim(functionId: string, ahead: number): Claim | undefined {
    if (this.stopping) throw new InvocationError('SHUTTING_DOWN', 'transient', `the ${this.runtime} pool is stopping`);
    let warm: WarmContainer | undefined;
    let prewarm: WarmContainer | undefined;
    let returning = false;
    const busy: WarmContainer[] = [];
    for (const c of this.containers.values()) {
      if (c.state === 'wiping' && c.functionId === functionId) returning = true;
      if (c.state === 'running' && c.functionId === functionId) busy.push(c);
      if (c.state !== 'paused') continue;
      if (c.functionId === functionId && (!warm || c.lastUsedAt > warm.lastUsedAt)) warm = c;
      if (c.functionId === null && !prewarm) prewarm = c;
    }
    // This function's container is being wiped (tens of ms), then handed over or paused:
    // waiting for it beats a cold start and keeps the prewarm containers for functions
    // that have none.
    if (!warm && returning) return undefined;
    const pick = warm ?? prewarm;
    if (pick) {
      pick.to('running');
      return { container: pick, startKind: warm ? 'warm' : 'prewarm', fresh: false };
    }
    if (this.worthWaiting(functionId, busy, ahead)) return undefined;
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
      const claim = this.claim(w.functionId, this.waitingFor(w.functionId, i));
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
          this.noteCreated(performance.now() - t0);
          await c.pause();
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

  /**
   * Claims a container or joins the waiters in one mailbox step: joining in a later step
   * would let a release in between park a container and dispatch before this request is
   * queued, leaving it to wait for some unrelated event.
   */
  private claimOrWait(functionId: string): Promise<Claim> {
    return new Promise<Claim>((resolve, reject) => {
      this.mailbox
        .post(() => {
          const claim = this.claim(functionId, this.waitingFor(functionId));
          if (claim) resolve(claim);
          else this.waiters.push({ functionId, resolve, reject });
        })
        .catch(reject);
    });
  }

  private async bringUp(c: WarmContainer, claim: Claim, memoryMb: number): Promise<void> {
    if (claim.fresh) {
      const t0 = performance.now();
      await c.create(memoryMb);
      this.noteCreated(performance.now() - t0);
      return;
    }
    if (!claim.hot) await c.unpause();
    await c.setMemory(memoryMb);
  }

  private noteCreated(ms: number): void {
    this.coldMs = ewma(this.coldMs, ms);
    this.opts.onEvent?.({ type: 'created', runtime: this.runtime, ms });
  }

  /** Same-function requests waiting, among the first `before` waiters (all by default). */
  private waitingFor(functionId: string, before = this.waiters.length): number {
    let n = 0;
    for (let i = 0; i < before; i++) if (this.waiters[i]!.functionId === functionId) n++;
    return n;
  }

  /**
   * Whether waiting for one of the function's busy containers is expected to be quicker
   * than a cold start: its remaining run time (from the function's recent runs) plus the
   * runs of the same-function requests queued ahead, spread over its busy containers.
   * Unknown functions never wait: their first burst scales out.
   */
  private worthWaiting(functionId: string, busy: WarmContainer[], ahead: number): boolean {
    const run = this.runMs.get(functionId);
    if (run === undefined || busy.length === 0) return false;
    const now = Date.now();
    const remaining = Math.min(...busy.map((c) => Math.max(0, run - (now - c.runStartedAt))));
    const expected = remaining + HANDOFF_MS + Math.floor(ahead / busy.length) * (run + HANDOFF_MS);
    return expected < this.coldMs;
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

function ewma(previous: number | undefined, sample: number): number {
  return previous === undefined ? sample : previous * (1 - EWMA_WEIGHT) + sample * EWMA_WEIGHT;
}
