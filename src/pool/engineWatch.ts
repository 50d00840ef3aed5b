import { EventEmitter } from 'node:events';
import { classifyError } from '../core/errorClass.js';
import { withTimeout } from '../core/timeout.js';
import type { Logger } from '../core/log.js';
import { Backoff } from '../core/backoff.js';

export interface EngineWatchOptions {
  /** One cheap call that answers only when the engine does (Docker's /_ping). */
  ping: () => Promise<unknown>;
  log: Logger;
  /** Bound on one ping. */
  pingTimeoutMs?: number;
  /** How often the engine is checked while it is up (0: only when a call fails). */
  checkEveryMs?: number;
  /** The first and the longest wait between probes while it is down (full jitter between 0 and the bound). */
  probeBaseMs?: number;
  probeMaxMs?: number;
}

export interface EngineEvents {
  /** The engine stopped answering. */
  down: [reason: string];
  /** It answers again after `downMs`. */
  up: [downMs: number];
}

export interface EngineStatus {
  state: 'up' | 'down';
  since: string;
  outages: number;
  downSecondsTotal: number;
  lastError: string | null;
}

/**
 * Whether the container engine is reachable, decided in one place. A failed engine call
 * makes it suspect; a failed ping confirms the outage. While it is down, probes back off
 * with full jitter, and nothing else in the agent needs to retry on its own.
 */
export class EngineWatch extends EventEmitter<EngineEvents> {
  private state: 'up' | 'down' = 'up';
  private since = Date.now();
  private outages = 0;
  private downMsTotal = 0;
  private lastError: string | null = null;
  private probing: Promise<void> | undefined;
  private checking: Promise<boolean> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private slowPings = 0;
  private waiters: (() => void)[] = [];
  private readonly backoff: Backoff;

  constructor(private readonly opts: EngineWatchOptions) {
    super();
    this.backoff = new Backoff(opts.probeBaseMs ?? 250, opts.probeMaxMs ?? 5000);
  }

  get isUp(): boolean {
    return this.state === 'up';
  }

  /** Starts the periodic check. */
  start(): void {
    const every = this.opts.checkEveryMs ?? 5000;
    if (every <= 0) return;
    this.timer = setInterval(() => {
      if (this.state === 'up') void this.check();
    }, every);
    this.timer.unref();
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    for (const w of this.waiters.splice(0)) w();
  }

  /** Resolves when the engine is up (at once if it is), or when the watch stops. */
  whenUp(): Promise<void> {
    if (this.state === 'up' || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  /**
   * An engine call failed with `err`. When the error says the engine cannot be reached,
   * a ping decides. Returns true when the engine is down.
   */
  async suspect(err: unknown): Promise<boolean> {
    if (this.state === 'down') return true;
    if (!classifyError(err).unreachable && (err as { name?: string })?.name !== 'TimeoutError') return false;
    return !(await this.check());
  }

  /** Pings now (one ping at a time); true when the engine answered. */
  check(): Promise<boolean> {
    this.checking ??= this.ping().finally(() => (this.checking = undefined));
    return this.checking;
  }

  status(): EngineStatus {
    const current = this.state === 'down' ? Date.now() - this.since : 0;
    return {
      state: this.state,
      since: new Date(this.since).toISOString(),
      outages: this.outages,
      downSecondsTotal: Math.round((this.downMsTotal + current) / 1000),
      lastError: this.lastError,
    };
  }

  /**
   * One ping. A refused or missing socket is an outage at once; a ping that is only slow
   * (dockerd busy, the host's CPUs saturated) counts as one only the second time in a row,
   * so load alone does not pause intake and let the warm pool go.
   */
  private async ping(): Promise<boolean> {
    try {
      await withTimeout('docker ping', this.opts.pingTimeoutMs ?? 2000, this.opts.ping());
      this.slowPings = 0;
      return true;
    } catch (err) {
      this.lastError = String(err);
      if (!classifyError(err).unreachable && ++this.slowPings < 2) {
        this.opts.log.warn({ tag: 'DOCKER', err }, 'the engine is slow to answer a ping');
        return true;
      }
      this.markDown(String(err));
      return false;
    }
  }

  private markDown(reason: string): void {
    if (this.state === 'down' || this.stopped) return;
    this.state = 'down';
    this.since = Date.now();
    this.outages++;
    this.opts.log.error({ tag: 'DOCKER', err: reason }, 'the engine is unreachable: intake stops until it answers');
    this.emit('down', reason);
    this.probing ??= this.probe().finally(() => (this.probing = undefined));
  }

  /** Pings with backoff and full jitter until the engine answers. */
  private async probe(): Promise<void> {
    this.backoff.reset();
    while (!this.stopped) {
      await this.backoff.wait();
      if (this.stopped) return;
      try {
        await withTimeout('docker ping', this.opts.pingTimeoutMs ?? 2000, this.opts.ping());
      } catch (err) {
        this.lastError = String(err);
        continue;
      }
      this.slowPings = 0;
      const downMs = Date.now() - this.since;
      this.downMsTotal += downMs;
      this.state = 'up';
      this.since = Date.now();
      this.opts.log.info({ tag: 'DOCKER', downMs }, 'the engine answers again: rebuilding the pools, intake resumes');
      this.emit('up', downMs);
      for (const w of this.waiters.splice(0)) w();
      return;
    }
  }
}
