import { EventEmitter } from 'node:events';
import { Backoff } from '../core/backoff.js';
import type { Logger } from '../core/log.js';
import type { Imds } from './imds.js';
import { parseLifecycleState, parseSpotAction, type TerminationNotice } from './notice.js';

export interface TerminationWatchEvents {
  notice: [notice: TerminationNotice];
}

/**
 * Polls the instance metadata for the two ways an instance of the group is taken away: a
 * scale-in (or health replacement) held by the termination lifecycle hook, and a Spot
 * interruption notice. Each kind is reported once. IMDS failures back off with jitter and
 * are logged once per streak, not per poll.
 */
export class TerminationWatch extends EventEmitter<TerminationWatchEvents> {
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly seen = new Set<TerminationNotice['kind']>();
  private readonly backoff: Backoff;
  private failing = false;
  polls = 0;

  constructor(private readonly opts: { imds: Imds; pollMs: number; log: Logger; now?: () => number }) {
    super();
    this.backoff = new Backoff(opts.pollMs, Math.max(opts.pollMs, 60_000));
  }

  start(): void {
    this.stopped = false;
    this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** One look at the metadata; emits what is new. Exposed for tests. */
  async poll(): Promise<void> {
    this.polls++;
    const now = (this.opts.now ?? Date.now)();
    const [lifecycle, spot] = await Promise.all([
      this.seen.has('lifecycle') ? null : this.opts.imds.get('autoscaling/target-lifecycle-state'),
      this.seen.has('spot') ? null : this.opts.imds.get('spot/instance-action'),
    ]);
    for (const n of [parseSpotAction(spot, now), parseLifecycleState(lifecycle)]) {
      if (!n || this.seen.has(n.kind)) continue;
      this.seen.add(n.kind);
      this.emit('notice', n);
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.poll().then(
        () => {
          if (this.failing) this.opts.log.info({ tag: 'FLEET' }, 'instance metadata answers again');
          this.failing = false;
          this.backoff.reset();
          this.schedule(this.opts.pollMs);
        },
        (err: unknown) => {
          if (!this.failing) this.opts.log.warn({ tag: 'FLEET', err }, 'instance metadata not answering: termination notices are not seen meanwhile');
          this.failing = true;
          this.schedule(Math.max(this.opts.pollMs / 2, this.backoff.next()));
        },
      );
    }, ms);
    this.timer.unref();
  }
}
