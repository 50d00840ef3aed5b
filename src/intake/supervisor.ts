import type { Message } from '@aws-sdk/client-sqs';
import { EventEmitter } from 'node:events';
import type { Logger } from '../core/log.js';
import type { IntakeGate, InvocationRunner, ResultStore } from '../core/ports.js';
import { InvocationError } from '../core/reasons.js';
import type { Result } from '../core/result.js';
import { withTimeout } from '../core/timeout.js';
import type { Disposition } from './disposition.js';
import { countStates, HeldMessage, type HeldState } from './heldMessage.js';
import type { MemoryBudget } from './memoryBudget.js';
import { MessageHandler } from './messageHandler.js';
import type { MessageLeases } from './messageLeases.js';
import type { AuthPolicy, ParseLimits } from './parse.js';
import { ReceiveLoop } from './receiveLoop.js';
import { Prefetch, type PrefetchPolicy } from './prefetch.js';

export type { ClaimOutcome, IntakeGate, ResultStore, RunHooks } from '../core/ports.js';

export interface SupervisorOptions {
  leases: MessageLeases;
  /** Closed while invocations cannot run (the engine is down): nothing is received meanwhile, and what is held goes back. */
  gate?: IntakeGate;
  /** Closed while the agent must not take more work (the outbox is full): nothing is received meanwhile. */
  pauses?: IntakeGate[];
  /** Slots across the pools: never more messages held than this. */
  capacity: () => number;
  /** The memory running invocations may be allowed: a run starts only when its memory fits. */
  memory?: MemoryBudget;
  limits: ParseLimits;
  /** With message keys: what does not verify is deleted unanswered (messageAuth.ts). */
  auth?: AuthPolicy;
  visibilityTimeoutS: number;
  /** Overrides the queue's redrive policy for the "last try" decision. */
  maxReceiveCount: number | undefined;
  /** Messages that may wait ahead of free slots while recent runs are short (intake/prefetch.ts); none without it. */
  prefetch?: PrefetchPolicy;
  log: Logger;
  /** Where each valid invocation goes to run (run/invoker.ts). */
  runner: InvocationRunner;
  /** Where its result goes (sinks/redisSink.ts). */
  results: ResultStore;
  workerId: string;
}

/** What the supervisor reports, for metrics. */
export interface SupervisorEvents {
  received: [count: number];
  disposed: [label: Disposition['label'], reason: string];
  receive_failed: [];
  /** A result was stored: a run's, or a failure that never ran. */
  answered: [result: Result];
}

export interface SupervisorStatus {
  receiving: boolean;
  inflight: number;
  /** Committed to run (a drain lets them finish). */
  running: number;
  /** Held messages by state (intake/heldMessage.ts). */
  states: Record<HeldState, number>;
  freeSlots: number;
  capacity: number;
  /** Invocations waiting for memory of the budget to free. */
  waitingForMemory: number;
  maxReceiveCount: number | undefined;
  totals: { received: number; deleted: number; retried: number; deadLettered: number; released: number; refused: number };
  lastReceiveOkAt: string | null;
  lastReceiveError: string | null;
}

const TOTAL_OF = { deleted: 'deleted', retried: 'retried', dead_lettered: 'deadLettered', released: 'released', refused: 'refused' } as const;

/**
 * The main thread's owner of SQS intake: takes only as many messages as there are free
 * slots (ReceiveLoop), keeps their visibility alive while held, hands each to its handling
 * (MessageHandler), and stops, resumes and gives back as a drain asks. It never touches
 * Docker.
 */
export class Supervisor extends EventEmitter<SupervisorEvents> {
  private readonly held = new Map<string, HeldMessage>();
  /** Counts stops and resumes: a stop that a resume overtook leaves the loop and the heartbeat alone. */
  private generation = 0;
  stopping = false;
  maxReceiveCount: number | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private lastReceiveOkAt: number | null = null;
  private lastReceiveError: string | null = null;
  private readonly totals = { received: 0, deleted: 0, retried: 0, deadLettered: 0, released: 0, refused: 0 };
  private readonly tasks = new Set<Promise<void>>();
  private readonly loop: ReceiveLoop;
  private readonly handler: MessageHandler;
  private readonly prefetch: Prefetch;

  constructor(private readonly opts: SupervisorOptions) {
    super();
    this.prefetch = new Prefetch(opts.prefetch ?? { messages: 0, maxRunMs: 0 });
    // The handler and the loop read the supervisor's flags as they are at each turn.
    const self = this;
    this.maxReceiveCount = opts.maxReceiveCount;
    this.handler = new MessageHandler(
      { leases: opts.leases, results: opts.results, runner: opts.runner, memory: opts.memory, limits: opts.limits, auth: opts.auth, gate: opts.gate, log: opts.log, workerId: opts.workerId },
      {
        get stopping() {
          return self.stopping;
        },
        get maxReceiveCount() {
          return self.maxReceiveCount;
        },
        slotFreed: () => this.loop.poke(),
        disposed: (label, reason) => {
          this.totals[TOTAL_OF[label]]++;
          this.emit('disposed', label, reason);
        },
        answered: (r) => {
          this.prefetch.observe(r);
          this.emit('answered', r);
        },
      },
    );
    this.loop = new ReceiveLoop(
      { leases: opts.leases, gates: [...(opts.gate ? [opts.gate] : []), ...(opts.pauses ?? [])], log: opts.log },
      {
        get stopping() {
          return self.stopping;
        },
        wanted: () => this.wanted,
        accept: (m) => this.accept(m),
        giveBack: (m) => this.giveBack(m),
        received: (n) => this.emit('received', n),
        receiveOk: () => {
          this.lastReceiveOkAt = Date.now();
          this.lastReceiveError = null;
        },
        receiveFailed: (err) => {
          this.lastReceiveError = String(err);
          this.emit('receive_failed');
        },
      },
    );
  }

  get capacity(): number {
    return this.opts.capacity();
  }

  /** Held messages that wait for or hold a container. */
  private get taking(): number {
    let taking = 0;
    for (const h of this.held.values()) if (h.takesSlot) taking++;
    return taking;
  }

  /** Slots not taken by a message that waits for or holds a container. */
  get freeSlots(): number {
    return Math.max(0, this.capacity - this.taking);
  }

  /**
   * How many messages to ask for: free slots, and no more than the free memory holds at the
   * default size (a message's own size is known only once received); none while any waits.
   * While runs are short, up to one batch more may wait ahead (intake/prefetch.ts).
   */
  private get wanted(): number {
    let taking = 0;
    let admitting = 0;
    for (const h of this.held.values()) {
      if (h.takesSlot) taking++;
      if (h.state === 'admitting') admitting++;
    }
    const free = Math.max(0, this.capacity - taking);
    const memory = this.opts.memory;
    const admissible = memory ? memory.admissible(this.opts.limits.defaultMemoryMb) : Infinity;
    // Claims still out (a slow or hung Redis): what waited ahead would only add results to
    // an outbox that may be filling. No prefetch until they are answered.
    return this.prefetch.wanted({ capacity: this.capacity, taking, free: Math.min(free, admissible), memoryBound: admissible < free || admitting > 0 });
  }

  /** True when the last receive succeeded, for /health. */
  get queueReachable(): boolean {
    return this.lastReceiveError === null;
  }

  async start(): Promise<void> {
    if (this.maxReceiveCount === undefined) this.maxReceiveCount = await this.opts.leases.maxReceiveCount();
    this.loop.start();
    this.startHeartbeat();
  }

  /** Receives again after a stop (a drain undone). */
  resume(): void {
    if (!this.stopping) return;
    this.generation++;
    this.stopping = false;
    this.loop.start();
    this.startHeartbeat();
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    const every = Math.max(1000, (this.opts.visibilityTimeoutS * 1000) / 3);
    // A message given back is not extended again: that would hide it from the other workers.
    this.heartbeat = setInterval(() => void this.opts.leases.extend([...this.held.values()].filter((h) => !h.givenBack).map((h) => h.receiptHandle)), every);
    this.heartbeat.unref();
  }

  status(): SupervisorStatus {
    const states = countStates(this.held.values());
    return {
      receiving: !this.stopping,
      inflight: this.held.size,
      running: states.running,
      states,
      freeSlots: this.freeSlots,
      capacity: this.capacity,
      waitingForMemory: this.opts.memory?.waiting ?? 0,
      maxReceiveCount: this.maxReceiveCount,
      totals: { ...this.totals },
      lastReceiveOkAt: this.lastReceiveOkAt ? new Date(this.lastReceiveOkAt).toISOString() : null,
      lastReceiveError: this.lastReceiveError,
    };
  }

  /**
   * Stops receiving, gives back held messages whose run has not started, and waits up to
   * `graceMs` for running ones. Returns the number still held at the deadline.
   */
  async stop(graceMs: number): Promise<number> {
    const generation = ++this.generation;
    const overtaken = () => generation !== this.generation;
    this.stopping = true;
    this.loop.poke();
    // Not started is not running: those messages go back at once, not when a container frees.
    await this.giveBackHeld((h) => h.cancellable, 'given back without running: the agent is draining');
    this.opts.memory?.cancelWaiters(new InvocationError('SHUTTING_DOWN', 'transient', 'the agent is stopping; the message goes back to the queue'));
    const deadline = Date.now() + graceMs;
    // The long poll in flight is not aborted: the queue may already have handed it
    // messages, which would then stay invisible for their whole visibility timeout.
    // It returns within the wait time, and whatever it brings is given back at once.
    const loopDone = await withTimeout('receive loop', graceMs, this.loop.whenDone()).then(
      () => true,
      () => false,
    );
    if (overtaken()) return this.held.size;
    if (!loopDone) {
      this.loop.abortPoll();
      await this.loop.whenDone().catch(() => undefined);
    }
    while (this.held.size > 0 && Date.now() < deadline && !overtaken()) {
      await withTimeout('message tasks', Math.min(250, Math.max(1, deadline - Date.now())), Promise.allSettled([...this.tasks])).catch(() => undefined);
    }
    if (!overtaken()) {
      clearInterval(this.heartbeat);
      this.heartbeat = undefined;
    }
    return this.held.size;
  }

  /**
   * Gives back every message whose run has not ended, at once, so another worker takes it
   * now rather than after its visibility timeout (a Spot notice leaves two minutes); their
   * runs are about to be killed, and whatever they end with is discarded. Returns how many.
   */
  abandonRunning(): Promise<number> {
    return this.giveBackHeld((h) => h.unfinished, 'given back before its run ended: the drain\'s deadline came first');
  }

  private async giveBackHeld(which: (h: HeldMessage) => boolean, why: string): Promise<number> {
    const left = [...this.held.values()].filter((h) => which(h) && h.to('givenBack'));
    await Promise.all(
      left.map((h) => {
        const log = this.opts.log.child({ requestId: h.requestId, messageId: h.messageId });
        log.warn({ tag: 'SQS', reason: 'SHUTTING_DOWN' }, why);
        return this.handler.release(h, log);
      }),
    );
    return left.length;
  }

  /** Waits for every message task to finish (after the pools were stopped). */
  async awaitTasks(timeoutMs: number): Promise<void> {
    await withTimeout('message tasks', timeoutMs, Promise.allSettled([...this.tasks])).catch(() => undefined);
  }

  /** A message received: held from now on, until its handling has disposed of it. */
  private accept(m: Message): void {
    this.totals.received++;
    const held = new HeldMessage(m.ReceiptHandle!, m.MessageId ?? 'unknown');
    this.held.set(held.receiptHandle, held);
    const task = this.handler
      .handle(m, held)
      .catch((err: unknown) => {
        this.opts.log.error({ tag: 'FAIL', messageId: m.MessageId, err }, 'message handling failed unexpectedly');
      })
      .finally(() => {
        held.releaseMemory?.();
        this.held.delete(held.receiptHandle);
        this.loop.poke();
      });
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task));
  }

  /** A message received while stopping: visible again at once, for another worker. */
  private async giveBack(m: Message): Promise<void> {
    await this.handler.release({ receiptHandle: m.ReceiptHandle! }, this.opts.log.child({ messageId: m.MessageId ?? 'unknown' }));
  }
}

