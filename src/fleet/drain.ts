import { Backoff } from '../core/backoff.js';
import type { Logger } from '../core/log.js';
import type { LifecycleProgress } from './lifecycleAction.js';

/**
 * A drain as named states: idle, draining (no new messages; running invocations finish),
 * cutting (a deadline came: what still runs is given back and its containers removed),
 * drained, and back to idle when an operator undoes it. What a notice means is a pure
 * plan; the agent is seen only through DrainHost.
 */
export type DrainState = 'idle' | 'draining' | 'cutting' | 'drained';

/** What started a drain. */
export type DrainTrigger = 'http' | 'signal' | 'lifecycle' | 'spot';

export interface DrainNotice {
  trigger: DrainTrigger;
  /** A Spot notice's time (epoch ms): the instance goes then. */
  at?: number;
}

export interface DrainPolicy {
  /** A Spot notice's deadline is its time less this. */
  spotMarginMs: number;
  /** After SIGTERM, how long running invocations may finish. */
  shutdownGraceMs: number;
}

export interface DrainPlan {
  /** When what still runs is given back and cut (epoch ms); null: each run ends by its own timeout. */
  deadline: number | null;
  /** Keep the group's termination lifecycle action waiting (heartbeats), then CONTINUE. */
  holdLifecycle: boolean;
  /** An operator may undo it (DELETE /drain): only a drain an operator started, with no deadline. */
  undoable: boolean;
}

/** What a notice asks of the drain, at `now`. Pure. */
export function planDrain(n: DrainNotice, now: number, p: DrainPolicy): DrainPlan {
  switch (n.trigger) {
    case 'http':
      return { deadline: null, holdLifecycle: false, undoable: true };
    case 'signal':
      return { deadline: now + p.shutdownGraceMs, holdLifecycle: false, undoable: false };
    case 'lifecycle':
      return { deadline: null, holdLifecycle: true, undoable: false };
    case 'spot':
      // A Spot interruption passes through the termination hook too: it is held alike.
      return { deadline: (n.at ?? now) - p.spotMarginMs, holdLifecycle: true, undoable: false };
  }
}

/** A second notice joins the drain under way: the earlier deadline wins; what holds, holds; what cannot be undone, stays so. Pure. */
export function joinPlans(a: DrainPlan, b: DrainPlan): DrainPlan {
  const deadlines = [a.deadline, b.deadline].filter((d): d is number => d !== null);
  return { deadline: deadlines.length ? Math.min(...deadlines) : null, holdLifecycle: a.holdLifecycle || b.holdLifecycle, undoable: a.undoable && b.undoable };
}

/** The states a drain may go to from each: forward only, but for an undo back to idle. */
const NEXT: Record<DrainState, readonly DrainState[]> = {
  idle: ['draining'],
  draining: ['cutting', 'drained', 'idle'],
  cutting: ['drained'],
  drained: ['idle'],
};

/** A drain as /status shows it. */
export interface DrainStatus {
  state: Exclude<DrainState, 'idle'>;
  trigger: DrainTrigger;
  startedAt: string;
  /** Runs still going then are given back to the queue; null: each run's own timeout. */
  deadline: string | null;
  finishedAt: string | null;
  /** Invocations running now. */
  running: number;
  /** Messages given back to the queue since the drain began (held but not started, or cut by the deadline). */
  givenBack: number;
  /** Of those, runs the deadline cut short (killed; their results discarded). */
  cutAtDeadline: number;
  /** Still running when the drain gave up waiting (their own timeouts had passed). */
  stillRunning: number;
  /** The termination lifecycle action this drain holds, if a notice asked for it. */
  lifecycle: LifecycleProgress | null;
}

/** The agent, as a drain sees it. */
export interface DrainHost {
  /** Stops receiving and gives back what has not started; resolves with how many still run once they have finished or `waitMs` passed. */
  stopIntake(waitMs: number): Promise<number>;
  /** Receives again (a drain undone). */
  resumeIntake(): void;
  /** Gives back every message whose run has not ended; returns how many. */
  giveBackRunning(): Promise<number>;
  /** Removes every container, ending what still runs. */
  stopPools(): Promise<void>;
  running(): number;
  /** Messages given back to the queue since the agent started. */
  released(): number;
  /** The termination lifecycle action, where the agent watches for one. */
  lifecycle?: { progress: LifecycleProgress; heartbeat(): Promise<unknown>; complete(): Promise<boolean> } | undefined;
}

export interface DrainOptions {
  host: DrainHost;
  policy: DrainPolicy;
  /** The longest a run may take, with the runner's bound: how long a drain waits for runs at most. */
  waitMs: number;
  heartbeatMs: number;
  log: Logger;
  now?: () => number;
}

export class Drain {
  private current: DrainState = 'idle';
  private plan: DrainPlan | null = null;
  private info: DrainStatus | null = null;
  private releasedBefore = 0;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private cut: Promise<void> | undefined;
  private finished: Promise<void> = Promise.resolve();
  private heartbeats: NodeJS.Timeout | undefined;
  /** Counts drains: the end of one that was undone is not the next one's. */
  private generation = 0;

  constructor(private readonly opts: DrainOptions) {}

  get state(): DrainState {
    return this.current;
  }

  /** Resolves once the drain under way (if any) is drained or undone. */
  whenDrained(): Promise<void> {
    return this.finished;
  }

  status(): DrainStatus | null {
    if (!this.info) return null;
    const h = this.opts.host;
    return { ...this.info, running: h.running(), givenBack: h.released() - this.releasedBefore, lifecycle: this.info.lifecycle ? { ...this.info.lifecycle } : null };
  }

  /** Starts a drain, or joins the one under way (an earlier deadline wins). Returns its status. */
  start(notice: DrainNotice): DrainStatus {
    const now = this.now();
    const plan = planDrain(notice, now, this.opts.policy);
    if (this.current === 'idle') {
      this.to('draining');
      this.plan = plan;
      this.releasedBefore = this.opts.host.released();
      this.info = {
        state: 'draining',
        trigger: notice.trigger,
        startedAt: new Date(now).toISOString(),
        deadline: null,
        finishedAt: null,
        running: 0,
        givenBack: 0,
        cutAtDeadline: 0,
        stillRunning: 0,
        lifecycle: null,
      };
      this.opts.log.info({ tag: 'AGENT', trigger: notice.trigger, running: this.opts.host.running() }, 'draining: no new messages; running invocations finish');
      this.finished = this.waitForRuns(++this.generation);
    } else if (this.current !== 'drained') {
      this.plan = joinPlans(this.plan!, plan);
    }
    this.apply();
    return this.status()!;
  }

  /** Undoes a drain an operator started: receiving again. */
  undo(): { ok: true } | { ok: false; why: string } {
    if (this.current === 'idle' || !this.info) return { ok: false, why: 'the agent is not draining' };
    if (!this.plan!.undoable) return { ok: false, why: this.info.trigger === 'http' ? 'a drain with a deadline cannot be undone' : `a drain for a ${this.info.trigger} notice cannot be undone: the instance is going away` };
    if (this.current === 'cutting') return { ok: false, why: 'the drain is cutting its runs' };
    this.generation++;
    this.to('idle');
    const was = this.info.state;
    this.info = null;
    this.plan = null;
    this.opts.host.resumeIntake();
    this.opts.log.info({ tag: 'AGENT', wasState: was, running: this.opts.host.running() }, 'drain undone: receiving again');
    return { ok: true };
  }

  /** Stops the timers (the agent is gone). */
  close(): void {
    clearTimeout(this.deadlineTimer);
    clearInterval(this.heartbeats);
  }

  private to(next: DrainState): void {
    if (!NEXT[this.current].includes(next)) throw new Error(`drain: no way from ${this.current} to ${next}`);
    this.current = next;
    if (this.info && next !== 'idle') this.info.state = next;
  }

  /** Carries out the plan: the deadline's timer, the lifecycle hold. */
  private apply(): void {
    const plan = this.plan!;
    const info = this.info!;
    if (plan.deadline !== null && info.deadline !== new Date(plan.deadline).toISOString() && this.current === 'draining') {
      info.deadline = new Date(plan.deadline).toISOString();
      clearTimeout(this.deadlineTimer);
      const generation = this.generation;
      this.deadlineTimer = setTimeout(() => void this.cutRuns(generation), Math.max(0, plan.deadline - this.now()));
      this.deadlineTimer.unref();
    }
    if (plan.holdLifecycle) this.holdLifecycle();
  }

  private async waitForRuns(generation: number): Promise<void> {
    const left = await this.opts.host.stopIntake(this.opts.waitMs);
    if (generation !== this.generation) return;
    clearTimeout(this.deadlineTimer);
    // A cut ends with the pools' removal of their containers: drained means all gone.
    await this.cut?.catch((err: unknown) => this.opts.log.error({ tag: 'DOCKER', err }, 'removing the pools at the drain deadline failed'));
    if (generation !== this.generation) return;
    this.to('drained');
    const info = this.info!;
    info.stillRunning = left;
    info.finishedAt = new Date(this.now()).toISOString();
    this.opts.log.info({ tag: 'AGENT', trigger: info.trigger, stillRunning: left, givenBack: this.status()!.givenBack, cutAtDeadline: info.cutAtDeadline }, 'drained');
  }

  /** The deadline came: what still runs goes back to the queue now, and its runs are killed. */
  private cutRuns(generation: number): Promise<void> {
    if (generation !== this.generation || this.current !== 'draining') return Promise.resolve();
    this.to('cutting');
    this.cut = (async () => {
      const n = await this.opts.host.giveBackRunning();
      this.info!.cutAtDeadline += n;
      if (n > 0) this.opts.log.warn({ tag: 'AGENT', givenBack: n }, 'drain deadline: running invocations given back to the queue and stopped');
      // Removing the containers ends the runs, and with them the wait for them.
      await this.opts.host.stopPools();
    })();
    return this.cut;
  }

  /**
   * Keeps the group's termination waiting (heartbeats) while the drain runs, then lets it
   * go on (CONTINUE); the hook's own timeout ends the wait with CONTINUE anyway, so a few
   * tries suffice.
   */
  private holdLifecycle(): void {
    const action = this.opts.host.lifecycle;
    if (!action || this.heartbeats || !this.info) return;
    this.info.lifecycle = action.progress;
    void action.heartbeat();
    this.heartbeats = setInterval(() => void action.heartbeat(), this.opts.heartbeatMs);
    this.heartbeats.unref();
    void this.finished.then(async () => {
      clearInterval(this.heartbeats);
      const backoff = new Backoff(1000, 30_000);
      for (let i = 0; i < 5 && !(await action.complete()); i++) await backoff.wait();
    });
  }

  private now(): number {
    return this.opts.now?.() ?? Date.now();
  }
}
