import type { Message } from '@aws-sdk/client-sqs';
import { Backoff } from '../core/backoff.js';
import type { Logger } from '../core/log.js';
import type { IntakeGate } from '../core/ports.js';
import { sleep } from '../core/timeout.js';
import { SQS_MAX_BATCH, type MessageLeases } from './messageLeases.js';

const MAX_RECEIVE_BACKOFF_MS = 20_000;
/** How long a full agent waits after the first slot frees before it asks for more messages. */
const RECEIVE_COALESCE_MS = 3;

/** The supervisor, as its receive loop sees it. */
export interface ReceiveHost {
  readonly stopping: boolean;
  /** How many messages to ask for now (0: wait for a slot). */
  wanted(): number;
  /** A message received: its handling runs on its own. */
  accept(m: Message): void;
  /** A message received while stopping: back to the queue at once. */
  giveBack(m: Message): Promise<void>;
  received(count: number): void;
  receiveFailed(err: unknown): void;
  receiveOk(): void;
}

/**
 * Long-polls SQS while the agent receives: never for more messages than it has free slots
 * (one poll per batch of 10, side by side), not at all while a gate is closed (the engine
 * is down, the outbox is full), and with full jitter after a failed receive.
 */
export class ReceiveLoop {
  private looping = false;
  private wake: (() => void) | undefined;
  private abort = new AbortController();
  private done: Promise<void> = Promise.resolve();

  constructor(
    private readonly opts: { leases: MessageLeases; gates: IntakeGate[]; log: Logger },
    private readonly host: ReceiveHost,
  ) {}

  /** Starts the loop; a loop still running (a stop overtaken by a resume) simply goes on. */
  start(): void {
    if (this.abort.signal.aborted) this.abort = new AbortController();
    if (!this.looping) this.done = this.run();
  }

  /** Resolves when the loop has returned. */
  whenDone(): Promise<void> {
    return this.done;
  }

  /** A slot freed (or the agent stops): the loop looks again. */
  poke(): void {
    this.wake?.();
  }

  /** Aborts the long poll in flight (only when waiting for it would take too long). */
  abortPoll(): void {
    this.abort.abort();
  }

  private async run(): Promise<void> {
    this.looping = true;
    try {
      await this.receiveUntilStopped();
    } finally {
      this.looping = false;
    }
  }

  /** What one poll brought: handled, or given back at once while stopping. */
  private async take(messages: Message[]): Promise<void> {
    if (messages.length > 0) this.host.received(messages.length);
    if (this.host.stopping) {
      await Promise.all(messages.map((m) => this.host.giveBack(m)));
      return;
    }
    for (const m of messages) this.host.accept(m);
  }

  private nextWake(): Promise<void> {
    return new Promise<void>((resolve) => (this.wake = resolve));
  }

  private async receiveUntilStopped(): Promise<void> {
    // Full jitter, as everywhere the agent retries: workers of a fleet that lost the queue together do not come back in step.
    const backoff = new Backoff(500, MAX_RECEIVE_BACKOFF_MS);
    let backoffMs = 0;
    let paused: string | false = false;
    while (!this.host.stopping) {
      const gate = this.opts.gates.find((g) => !g.isOpen());
      if (gate) {
        if (paused !== gate.why) this.opts.log.warn({ tag: 'SQS' }, `intake paused: ${gate.why}`);
        paused = gate.why;
        // A freed slot (or stop) wakes the loop too: it checks again.
        await Promise.race([gate.whenOpen(), this.nextWake()]);
        continue;
      }
      if (paused) this.opts.log.info({ tag: 'SQS' }, 'intake resumed');
      paused = false;
      const free = this.host.wanted();
      if (free === 0) {
        await this.nextWake();
        // Under load slots free one at a time: let a few more free up, so that one receive
        // brings several messages instead of one call per message.
        await sleep(RECEIVE_COALESCE_MS);
        continue;
      }
      const polls: number[] = [];
      for (let left = free; left > 0; left -= SQS_MAX_BATCH) polls.push(Math.min(SQS_MAX_BATCH, left));
      // Each poll's messages are handled as soon as it returns: a poll side by side that
      // finds nothing waits out its whole long poll, and must not hold the others' back.
      const settled = await Promise.allSettled(polls.map(async (n) => this.take(await this.opts.leases.receive(n, this.abort.signal))));
      const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (!failure) {
        this.host.receiveOk();
        backoff.reset();
      } else if (!this.host.stopping) {
        this.host.receiveFailed(failure.reason);
        backoffMs = backoff.next();
        this.opts.log.error({ tag: 'SQS', err: failure.reason, retryInMs: backoffMs }, 'receive failed');
        await sleep(backoffMs);
      }
      // Stopping is checked again at the top: a resume meanwhile (a drain undone) goes on receiving.
    }
  }
}
