import { EventEmitter } from 'node:events';
import { InvocationError } from '../core/reasons.js';
import type { StartKind } from '../core/result.js';
import type { Runtime } from '../core/runtimes.js';
import { Backoff } from '../core/backoff.js';
import { removeOrphans } from './leftovers.js';
import { DockerContainer } from '../container/dockerContainer.js';
import { containerSpec, type PoolOptions } from './poolOptions.js';
import { ContainerLease, type Lease, type LeaseEnd, type LeaseOwner, type LeaseSource } from './lease.js';
import { Mailbox } from './mailbox.js';
import { summarize, type PoolStatus } from './poolStatus.js';
import { Estimates, idleSince, place, stockPlan, type Placement, type PoolSnapshot } from './placement.js';
import { ReactiveStock } from './stockPolicy.js';
import { ContainerProxy, type ProxyHost } from './containerProxy.js';

export type { PoolStatus } from './poolStatus.js';
export type { PoolOptions } from './poolOptions.js';

export interface PoolEvents {
  /** A lease's function started: how it was served and how long the container took. */
  served: [runtime: Runtime, startKind: StartKind, acquireMs: number];
}

interface Waiter {
  functionId: string;
  resolve: (claim: Claim) => void;
  reject: (err: Error) => void;
}

/** A container a step has claimed, and the engine work it needs before it can run. */
interface Claim {
  c: ContainerProxy;
  startKind: StartKind;
  bringUp: 'create' | 'thaw' | 'none';
}

const ACQUIRE_ATTEMPTS = 3;
/** An idle container is evicted for the stock only after this long unused (or its pause grace, if longer). */
const MIN_IDLE_TO_EVICT_MS = 500;

/**
 * The actor that alone owns one runtime's containers (OpenWhisk's ContainerPool): the
 * mailbox, placement and the prewarm stock. Every decision over the containers is a step
 * in its mailbox; each container's own life (bring-up, reset, pause grace, freeze,
 * removal) is driven by its ContainerProxy, outside the mailbox, on a container whose
 * state a step has already moved to one that names the call.
 */
export class RuntimePool extends EventEmitter<PoolEvents> implements LeaseOwner, LeaseSource {
  readonly runtime: Runtime;
  private readonly containers = new Map<string, ContainerProxy>();
  private readonly waiters: Waiter[] = [];
  private readonly mailbox = new Mailbox();
  private readonly served: Record<StartKind, number> = { cold: 0, prewarm: 0, warm: 0 };
  private readonly estimates = new Estimates();
  /** The prewarm stock's target: its minimum, raised by the rate of new functions (OpenWhisk's reactive prewarm). */
  private readonly stock: ReactiveStock;
  private retiredCount = 0;
  private handoffs = 0;
  private seq = 0;
  private stopping = false;
  private reaper: NodeJS.Timeout | undefined;
  private readonly background = new Set<Promise<unknown>>();
  /** Failed prewarm creations wait this out before the stock is topped up again. */
  private readonly prewarmBackoff = new Backoff(500, 30_000);
  private replenishTimer: NodeJS.Timeout | undefined;
  private readonly onEngineDown = () => void this.mailbox.post(() => this.engineDown());
  private readonly onEngineUp = () => this.track(this.rebuild());
  private readonly proxyHost: ProxyHost;

  constructor(private readonly opts: PoolOptions) {
    super();
    this.runtime = opts.runtime;
    const cfg = opts.config;
    this.stock = new ReactiveStock({ min: cfg.prewarm, max: Math.max(cfg.prewarm, cfg.prewarmMax), ttlMs: cfg.prewarmTtlMs, windowMs: cfg.prewarmWindowMs });
    const pool = this;
    this.proxyHost = {
      step: (fn) => this.mailbox.post(fn),
      track: (work) => this.track(work),
      get stopping() {
        return pool.stopping;
      },
      available: () => this.dispatch(),
      failed: (c, why) => this.retire(c, why),
      removed: (c) => {
        this.containers.delete(c.name);
        this.dispatch();
      },
      log: opts.log,
    };
    opts.engine.on('down', this.onEngineDown);
    opts.engine.on('up', this.onEngineUp);
  }

  get capacity(): number {
    return this.opts.config.maxContainers;
  }

  /** Creates the prewarm containers (paused) and starts the idle reaper. */
  async start(): Promise<void> {
    await this.mailbox.post(() => this.replenish());
    await this.whenIdle();
    const every = Math.max(1000, Math.min(30_000, Math.floor(this.opts.idleTimeoutMs / 4)));
    this.reaper = setInterval(() => void this.mailbox.post(() => this.reapIdle()), every);
    this.reaper.unref();
  }

  /**
   * A running container for `functionId`, as placement decides (warm, prewarm, cold, or
   * wait for one). A container that fails to come up is retired and another is tried.
   * Throughout the pool a function is its key (Invocation.functionKey: its id and code
   * location), so that a message naming another function's id with other code never
   * lands in that function's containers.
   */
  async acquire(functionId: string, memoryMb: number): Promise<Lease> {
    const started = performance.now();
    let lastError: unknown;
    if (!this.opts.engine.isUp) throw this.outage();
    for (let attempt = 0; attempt < ACQUIRE_ATTEMPTS; attempt++) {
      const { c, startKind, bringUp } = await this.claimOrWait(functionId);
      try {
        const createdMs = await c.bringUp(bringUp, memoryMb);
        await this.mailbox.post(() => {
          if (c.state === 'retiring') throw new Error(`container ${c.name} was retired while coming up`);
          if (createdMs !== null) this.estimates.noteCreated(createdMs);
          if (c.state !== 'running') c.to({ state: 'running', fn: functionId });
        });
        return new ContainerLease(c, startKind, performance.now() - started, this, this.opts.run);
      } catch (err) {
        lastError = err;
        this.opts.log.warn({ tag: 'DOCKER', container: c.name, startKind, err }, 'container failed to come up; replacing it');
        await this.mailbox.post(() => this.retire(c, 'bring-up failed'));
        if (this.stopping) break;
        // An engine that is gone fails every other try the same way: give the message back now.
        if (await this.opts.engine.suspect(err)) throw this.outage(err);
      }
    }
    throw new InvocationError('DOCKER_UNAVAILABLE', 'transient', `no ${this.runtime} container could be started: ${String(lastError)}`, {
      cause: lastError,
    });
  }

  /** LeaseOwner: the lease's function started running. */
  started(c: ContainerProxy, startKind: StartKind, acquireMs: number, at: number): void {
    void this.mailbox.post(() => {
      if (c.state === 'running') c.runStartedAt = at;
      c.runs++;
      // A container that serves a second time will likely serve again: only now is its
      // zygote worth its start (a cold start's container evicted after one run never pays it).
      if (c.runs === 2) c.engine.startZygote();
      this.served[startKind]++;
      this.emit('served', this.runtime, startKind, acquireMs);
      // A prewarm container now belongs to a function: make another ready.
      if (startKind === 'prewarm') this.replenish();
    });
  }

  /**
   * LeaseOwner: a lease ended. A reusable container is reset, then handed to a waiting
   * request of its function or paused; anything else is retired. A container in which
   * nothing ran goes back to the prewarm stock.
   */
  takeBack(c: ContainerProxy, end: LeaseEnd): void {
    const done = (async () => {
      const reset = await this.mailbox.post(() => {
        if (c.state !== 'running') return false;
        const now = Date.now();
        if (end.ran) {
          c.lastUsedAt = now;
          if (c.runStartedAt !== null) this.estimates.noteRun(c.functionId!, now - c.runStartedAt);
        }
        if (!end.reusable || this.stopping) {
          this.retire(c, end.reusable ? 'stopping' : 'unhealthy after run');
          return false;
        }
        c.to({ state: 'resetting', fn: c.functionId! });
        return true;
      });
      if (!reset) return;
      try {
        await c.reset();
        const next = await this.mailbox.post(() => this.afterReset(c));
        if (next === 'pause') await c.freeze();
      } catch (err) {
        // While stopping, the pool removes this container under the pause: expected.
        this.opts.log[this.stopping ? 'debug' : 'warn']({ tag: 'DOCKER', container: c.name, err }, 'reset or pause failed; retiring container');
        await this.mailbox.post(() => this.retire(c, 'pause failed'));
      }
    })();
    this.track(done);
  }

  status(): PoolStatus {
    return summarize(
      [...this.containers.values()].map((c) => c.view()),
      {
        runtime: this.runtime,
        image: this.opts.config.image,
        maxContainers: this.capacity,
        prewarmTarget: this.stockTarget(Date.now()),
        waiting: this.waiters.length,
        served: { ...this.served },
        handoffs: this.handoffs,
        coldStartMs: Math.round(this.estimates.coldStartMs),
        retired: this.retiredCount,
      },
    );
  }

  /** Refuses new work, fails waiters, removes every container (running ones too). */
  async stop(): Promise<void> {
    this.stopping = true;
    clearInterval(this.reaper);
    clearTimeout(this.replenishTimer);
    this.opts.engine.off('down', this.onEngineDown);
    this.opts.engine.off('up', this.onEngineUp);
    await this.mailbox.post(() => {
      for (const w of this.waiters.splice(0)) w.reject(this.shuttingDown());
      for (const c of this.containers.values()) this.retire(c, 'stopping');
    });
    await this.whenIdle();
  }

  /** Recent run time of a function (EWMA, ms), undefined before its first run. */
  runEstimate(functionId: string): number | undefined {
    return this.estimates.runMs(functionId);
  }

  /** Waits for background engine work (creation, reset, pause, removal) to finish. */
  async whenIdle(): Promise<void> {
    while (this.background.size > 0) await Promise.allSettled([...this.background]);
  }

  // ---- mailbox steps: synchronous decisions over the container set ----

  /**
   * Claims a container or joins the waiters in one step: joining in a later step would
   * let a container come back and dispatch in between, before this request is queued.
   */
  private claimOrWait(functionId: string): Promise<Claim> {
    return new Promise<Claim>((resolve, reject) => {
      this.mailbox
        .post(() => {
          if (this.stopping) throw this.shuttingDown();
          const p = place(this.snapshot(), { functionId, ahead: this.waitingFor(functionId) });
          if (p.kind === 'wait') this.waiters.push({ functionId, resolve, reject });
          else resolve(this.apply(p, functionId));
          // Only a new function moves the stock's target or takes from it: a warm claim needs no plan.
          if (p.kind === 'cold' || p.kind === 'prewarm') this.replenish();
        })
        .catch(reject);
    });
  }

  /** Claims the container a placement names, for `functionId`. */
  private apply(p: Exclude<Placement, { kind: 'wait' }>, functionId: string): Claim {
    if (p.kind !== 'warm') this.stock.noteNewFunction(Date.now());
    if (p.kind === 'cold') {
      const c = this.newContainer(functionId);
      // Its slot counts until the engine removed it: the new one is one over capacity meanwhile.
      if (p.evict) this.retire(this.containers.get(p.evict)!, 'evicted for another function', { removeAfter: c.createdOrFailed });
      return { c, startKind: 'cold', bringUp: 'create' };
    }
    const c = this.containers.get(p.name)!;
    if (c.state === 'ready') {
      // Still in its pause grace: no thaw needed.
      c.to({ state: 'running', fn: functionId });
      return { c, startKind: p.kind, bringUp: 'none' };
    }
    c.to({ state: 'thawing', fn: functionId });
    return { c, startKind: p.kind, bringUp: 'thaw' };
  }

  /** Serves waiters, oldest first, each as soon as placement finds it a container. */
  private dispatch(): void {
    if (this.stopping) return;
    for (let i = 0; i < this.waiters.length; ) {
      const w = this.waiters[i]!;
      const p = place(this.snapshot(), { functionId: w.functionId, ahead: this.waitingFor(w.functionId, i) });
      if (p.kind === 'wait') {
        i++;
        continue;
      }
      this.waiters.splice(i, 1);
      w.resolve(this.apply(p, w.functionId));
    }
    this.replenish();
  }

  /**
   * A reset container goes straight to a waiting request of its function; else it stays
   * thawed for the pause grace, or is frozen now ('pause': the caller freezes it).
   */
  private afterReset(c: ContainerProxy): 'handed' | 'ready' | 'pause' | 'gone' {
    if (c.state !== 'resetting') return 'gone';
    if (this.stopping || !this.opts.engine.isUp) {
      // While the engine is down, a container is not kept: its restart may kill it.
      this.retire(c, this.stopping ? 'stopping' : 'engine down');
      return 'gone';
    }
    const i = this.waiters.findIndex((w) => w.functionId === c.functionId);
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      c.to({ state: 'running', fn: c.functionId! });
      this.handoffs++;
      w!.resolve({ c, startKind: 'warm', bringUp: 'none' });
      return 'handed';
    }
    if (c.runs > 0 && this.opts.pauseGraceMs > 0) {
      c.holdInGrace(this.opts.pauseGraceMs);
      this.dispatch();
      return 'ready';
    }
    c.to({ state: 'pausing', fn: c.runs > 0 ? c.functionId : null });
    return 'pause';
  }

  /**
   * Keeps the prewarm stock at its target while nobody waits: within the room there is,
   * and, when new functions keep coming, by evicting an idle container that has been idle
   * past its pause grace (its slot makes a stock container once it is removed).
   */
  private replenish(): void {
    if (this.stopping || this.replenishTimer || !this.opts.engine.isUp) return;
    const snap = this.snapshot();
    const target = this.stockTarget(snap.now);
    // The minimum stock and the spare are made only where there is room (a warm container
    // is worth more than a generic one); only the stock that the rate of new functions
    // needs beyond the minimum takes the slot of an idle container.
    const demand = Math.min(target, this.stock.demand(snap.now, this.estimates.coldStartMs));
    const evictUpTo = demand > this.stock.policy.min ? demand : 0;
    const plan = stockPlan(snap, target, this.waiters.length, Math.max(this.opts.pauseGraceMs, MIN_IDLE_TO_EVICT_MS), evictUpTo);
    for (const name of plan.evict) this.retire(this.containers.get(name)!, 'evicted to keep the prewarm stock');
    const n = plan.create;
    for (let i = 0; i < n; i++) {
      const c = this.newContainer(null);
      const made = (async () => {
        try {
          const createdMs = await c.createStock();
          const pause = await this.mailbox.post(() => {
            this.prewarmBackoff.reset();
            this.estimates.noteCreated(createdMs);
            if (c.state !== 'creating') return false;
            c.to({ state: 'pausing', fn: null });
            return true;
          });
          if (pause) await c.freeze();
        } catch (err) {
          const down = await this.opts.engine.suspect(err);
          await this.mailbox.post(() => {
            this.retire(c, 'prewarm failed', { counted: false });
            // The engine's return rebuilds the stock; any other failure waits out a backoff.
            if (!down) this.retryReplenishLater(String(err));
          });
        }
      })();
      this.track(made);
    }
  }

  /** Tops the stock up again after a jittered, growing wait (one timer at a time). */
  private retryReplenishLater(err: string): void {
    if (this.replenishTimer || this.stopping) return;
    const waitMs = this.prewarmBackoff.next();
    this.opts.log.warn({ tag: 'DOCKER', err, retryInMs: waitMs, attempt: this.prewarmBackoff.attempts }, 'prewarm container could not be created');
    this.replenishTimer = setTimeout(() => {
      this.replenishTimer = undefined;
      void this.mailbox.post(() => this.replenish());
    }, waitMs);
    this.replenishTimer.unref();
  }

  /**
   * The engine is gone: waiters go back to the queue, and idle containers are let go (an
   * engine that restarts without live-restore kills them; a frozen one would hold up its
   * restart, so retiring thaws it first). Running ones finish through their runners.
   */
  private engineDown(): void {
    for (const w of this.waiters.splice(0)) w.reject(this.outage());
    for (const c of this.containers.values()) if (c.state === 'paused' || c.state === 'ready') this.retire(c, 'engine down', { counted: false });
  }

  /** The engine is back: remove what the outage left of this pool's containers, then restock. */
  private async rebuild(): Promise<void> {
    try {
      const known = new Set([...this.containers.values()].map((c) => c.engine.engineName).filter((n): n is string => n !== undefined));
      await removeOrphans(this.opts.docker, { agentId: this.opts.agentId, runId: this.opts.runId, runtime: this.runtime, known, timeoutMs: this.opts.apiTimeoutMs, log: this.opts.log });
    } catch (err) {
      this.opts.log.warn({ tag: 'DOCKER', err }, 'could not list containers after the outage');
    }
    this.prewarmBackoff.reset();
    await this.mailbox.post(() => this.replenish());
  }

  private reapIdle(): void {
    const snap = this.snapshot();
    for (const name of idleSince(snap.containers, snap.now - this.opts.idleTimeoutMs)) {
      this.retire(this.containers.get(name)!, 'idle timeout');
    }
    // Stock made for a burst of new functions outlives it by its time to live.
    const idleStock = snap.containers.filter((c) => c.fn === null && c.state === 'paused').map((c) => ({ name: c.name, madeAt: c.lastUsedAt }));
    for (const name of this.stock.expired(idleStock, snap.now, this.estimates.coldStartMs)) this.retire(this.containers.get(name)!, 'prewarm stock past its time to live');
    this.replenish();
  }

  private stockTarget(now: number): number {
    return Math.min(this.capacity, this.stock.target(now, this.estimates.coldStartMs));
  }

  /** Takes a container out of service; its proxy removes it, and its slot is free once it is gone. */
  private retire(c: ContainerProxy, why: string, opts: { counted?: boolean; removeAfter?: Promise<unknown> } = {}): void {
    if (c.retire(why, opts.removeAfter ? { removeAfter: opts.removeAfter } : {}) && opts.counted !== false) this.retiredCount++;
  }

  // ---- helpers (called from steps) ----

  private snapshot(): PoolSnapshot {
    return {
      containers: [...this.containers.values()].map((c) => c.view()),
      capacity: this.capacity,
      now: Date.now(),
      coldStartMs: this.estimates.coldStartMs,
      runMs: (fn) => this.estimates.runMs(fn),
    };
  }

  /** Same-function requests waiting, among the first `before` waiters (all by default). */
  private waitingFor(functionId: string, before = this.waiters.length): number {
    let n = 0;
    for (let i = 0; i < before; i++) if (this.waiters[i]!.functionId === functionId) n++;
    return n;
  }

  private newContainer(functionId: string | null): ContainerProxy {
    const name = `ng-${this.opts.agentId}-${this.opts.runId.slice(0, 8)}-${this.runtime}-${++this.seq}`;
    const c = new ContainerProxy(new DockerContainer(this.opts.docker, containerSpec(this.opts, name)), { state: 'creating', fn: functionId }, this.proxyHost);
    this.containers.set(name, c);
    return c;
  }

  private outage(cause?: unknown): InvocationError {
    return new InvocationError('ENGINE_OUTAGE', 'transient', `the container engine is unreachable; the ${this.runtime} pool waits for it`, { cause });
  }

  private shuttingDown(): InvocationError {
    return new InvocationError('SHUTTING_DOWN', 'transient', `the ${this.runtime} pool is stopping`);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.background.add(p);
    void p.finally(() => this.background.delete(p));
    return p;
  }
}
