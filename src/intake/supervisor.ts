import type { Message } from '@aws-sdk/client-sqs';
import { EventEmitter } from 'node:events';
import type { Invocation } from '../core/invocation.js';
import { InvocationError, type Reason } from '../core/reasons.js';
import { failedResult, type Result } from '../core/result.js';
import { Backoff } from '../core/backoff.js';
import { sleep, withTimeout } from '../core/timeout.js';
import type { Logger } from '../core/log.js';
import { dispose, type Disposition } from './disposition.js';
import { SQS_MAX_BATCH, type MessageLeases } from './messageLeases.js';
import type { MemoryBudget } from './memoryBudget.js';
import { authenticate, parseInvocation, type AuthPolicy, type ParseLimits } from './parse.js';

/** One message this agent holds: from receive until it is deleted or made visible again. */
interface Held {
  receiptHandle: string;
  messageId: string;
  requestId: string | undefined;
  started: boolean;
  /** Its run is over (or never needed a container): it no longer takes a slot while it is answered and deleted. */
  settled: boolean;
  /** Given back before its run ended (a drain): whatever the run path ends with is discarded. */
  abandoned?: boolean;
  /** Waiting for memory, code or a container: it can still be given back without running. */
  cancellable?: boolean;
  /** Returns the memory its run was allowed to the budget. */
  releaseMemory?: () => void;
}

/**
 * What a claim on a request id found: free or the function's own already ('claimed'),
 * answered already by this function ('answered': a duplicate or a replay), another
 * function's ('foreign'), or nothing known (Redis did not answer: 'unknown').
 */
export type ClaimOutcome = 'claimed' | 'answered' | 'foreign' | 'unknown';

/** Where results go and where an earlier delivery's result is found (the Redis sink). */
export interface ResultStore {
  /** Publishes and stores a result unless another function owns its request id; never throws. */
  deliver(result: Result, log: Logger): Promise<unknown>;
  /** A stored result for this request, if an earlier delivery already ran it. */
  find(requestId: string): Promise<Result | undefined>;
  /** Claims the request id for the function (id and code location) and marks the job PROCESSING; never throws. */
  claim(requestId: string, functionId: string, codeLocation: string, fields: Record<string, string | number>, log: Logger): Promise<ClaimOutcome>;
  markState(requestId: string, state: 'PENDING', fields: Record<string, string | number>, log: Logger): Promise<void>;
}

export interface RunHooks {
  /** Called when the function's process has started. */
  onRunStart: () => void;
  /** Called when the run is over (its container is free; its result is still being made). */
  onRunEnd: () => void;
  /** Checked once code and container are ready: the reason the message goes back instead (stopping, engine outage), or null. */
  holdBack: () => InvocationError | null;
}

/** Runs one valid invocation to its Result; throws InvocationError when it never ran. */
export type RunInvocation = (inv: Invocation, log: Logger, hooks: RunHooks) => Promise<Result>;

/** Whether intake may receive now (the engine that runs invocations answers, the outbox has room). */
export interface IntakeGate {
  isOpen(): boolean;
  /** Resolves when it opens. */
  whenOpen(): Promise<void>;
  /** Said in the log while it holds intake closed. */
  why: string;
}

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
  log: Logger;
  runInvocation: RunInvocation;
  results: ResultStore;
  workerId: string;
}

/** What the supervisor reports, for metrics. */
export interface SupervisorEvents {
  received: [count: number];
  disposed: [label: Disposition['label'], reason: string];
  receive_failed: [];
}

export interface SupervisorStatus {
  receiving: boolean;
  inflight: number;
  running: number;
  freeSlots: number;
  capacity: number;
  /** Invocations waiting for memory of the budget to free. */
  waitingForMemory: number;
  maxReceiveCount: number | undefined;
  totals: { received: number; deleted: number; retried: number; deadLettered: number; released: number; refused: number };
  lastReceiveOkAt: string | null;
  lastReceiveError: string | null;
}

const MAX_RECEIVE_BACKOFF_MS = 20_000;
/** How long a last-try message waits for the engine before it is given up to the redrive policy. */
const LAST_TRY_ENGINE_WAIT_MS = 10 * 60_000;
/** How long a full agent waits after the first slot frees before it asks for more messages. */
const RECEIVE_COALESCE_MS = 3;
const TOTAL_OF = { deleted: 'deleted', retried: 'retried', dead_lettered: 'deadLettered', released: 'released', refused: 'refused' } as const;

/**
 * The main thread's owner of SQS intake: takes only as many messages as there are free
 * slots, keeps their visibility alive while held, hands each to the run path and applies
 * its disposition. It never touches Docker.
 */
export class Supervisor extends EventEmitter<SupervisorEvents> {
  private readonly held = new Map<string, Held>();
  private abort = new AbortController();
  /** Counts stops and resumes: a stop that a resume overtook leaves the loop and the heartbeat alone. */
  private generation = 0;
  private stopping = false;
  private loop: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private slotFreed: (() => void) | undefined;
  private maxReceiveCount: number | undefined;
  private lastReceiveOkAt: number | null = null;
  private lastReceiveError: string | null = null;
  private readonly totals = { received: 0, deleted: 0, retried: 0, deadLettered: 0, released: 0, refused: 0 };
  private readonly tasks = new Set<Promise<void>>();

  constructor(private readonly opts: SupervisorOptions) {
    super();
    this.maxReceiveCount = opts.maxReceiveCount;
  }

  get capacity(): number {
    return this.opts.capacity();
  }

  /** Slots not taken by a message that waits for or holds a container. */
  get freeSlots(): number {
    let taking = 0;
    for (const h of this.held.values()) if (!h.settled) taking++;
    return Math.max(0, this.capacity - taking);
  }

  /**
   * How many messages to ask for: free slots, and no more than the free memory holds at the
   * default size (a message's own size is known only once received); none while any waits.
   */
  private get wanted(): number {
    const free = this.freeSlots;
    const memory = this.opts.memory;
    return memory ? Math.min(free, memory.admissible(this.opts.limits.defaultMemoryMb)) : free;
  }

  /** True when the last receive succeeded, for /health. */
  get queueReachable(): boolean {
    return this.lastReceiveError === null;
  }

  async start(): Promise<void> {
    if (this.maxReceiveCount === undefined) this.maxReceiveCount = await this.opts.leases.maxReceiveCount();
    this.loop = this.receiveLoop();
    this.startHeartbeat();
  }

  /**
   * Receives again after a stop (a drain undone). A receive loop the stop has not ended
   * yet simply goes on; otherwise a new one starts.
   */
  resume(): void {
    if (!this.stopping) return;
    this.generation++;
    this.stopping = false;
    if (this.abort.signal.aborted) this.abort = new AbortController();
    // A loop still running sees `stopping` false at its next turn and goes on.
    if (!this.looping) this.loop = this.receiveLoop();
    this.startHeartbeat();
  }

  private startHeartbeat(): void {
    if (this.heartbeat) return;
    const every = Math.max(1000, (this.opts.visibilityTimeoutS * 1000) / 3);
    // A message given back is not extended again: that would hide it from the other workers.
    this.heartbeat = setInterval(() => void this.opts.leases.extend([...this.held.values()].filter((h) => !h.abandoned).map((h) => h.receiptHandle)), every);
    this.heartbeat.unref();
  }

  status(): SupervisorStatus {
    let running = 0;
    for (const h of this.held.values()) if (h.started) running++;
    return {
      receiving: !this.stopping,
      inflight: this.held.size,
      running,
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
   * `graceMs` for running ones. Returns the number still running at the deadline.
   */
  async stop(graceMs: number): Promise<number> {
    const generation = ++this.generation;
    const overtaken = () => generation !== this.generation;
    this.stopping = true;
    this.slotFreed?.();
    // Not started is not running: those messages go back at once, not when a container frees.
    await this.releaseNotStarted();
    this.opts.memory?.cancelWaiters(new InvocationError('SHUTTING_DOWN', 'transient', 'the agent is stopping; the message goes back to the queue'));
    const deadline = Date.now() + graceMs;
    // The long poll in flight is not aborted: the queue may already have handed it
    // messages, which would then stay invisible for their whole visibility timeout.
    // It returns within the wait time, and whatever it brings is given back at once.
    const loopDone = await withTimeout('receive loop', graceMs, this.loop ?? Promise.resolve()).then(
      () => true,
      () => false,
    );
    if (overtaken()) return this.held.size;
    if (!loopDone) {
      this.abort.abort();
      await this.loop?.catch(() => undefined);
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
  async abandonRunning(): Promise<number> {
    return this.giveBackHeld((h) => !h.settled, 'given back before its run ended: the drain\'s deadline came first');
  }

  /** Gives back held messages whose run has not been committed to (stopping is set first). */
  private releaseNotStarted(): Promise<number> {
    return this.giveBackHeld((h) => h.cancellable === true && !h.settled, 'given back without running: the agent is draining');
  }

  private async giveBackHeld(which: (h: Held) => boolean, why: string): Promise<number> {
    const left = [...this.held.values()].filter((h) => !h.abandoned && which(h));
    for (const h of left) h.abandoned = true;
    await Promise.all(
      left.map((h) => {
        const log = this.opts.log.child({ requestId: h.requestId, messageId: h.messageId });
        log.warn({ tag: 'SQS', reason: 'SHUTTING_DOWN' }, why);
        return this.release(h, log);
      }),
    );
    return left.length;
  }

  /** Waits for every message task to finish (after the pools were stopped). */
  async awaitTasks(timeoutMs: number): Promise<void> {
    await withTimeout('message tasks', timeoutMs, Promise.allSettled([...this.tasks])).catch(() => undefined);
  }

  private looping = false;

  private async receiveLoop(): Promise<void> {
    this.looping = true;
    try {
      await this.receiveUntilStopped();
    } finally {
      this.looping = false;
    }
  }

  private async receiveUntilStopped(): Promise<void> {
    // Full jitter, as everywhere the agent retries: workers of a fleet that lost the queue together do not come back in step.
    const backoff = new Backoff(500, MAX_RECEIVE_BACKOFF_MS);
    let backoffMs = 0;
    let paused: string | false = false;
    while (!this.stopping) {
      const gate = [this.opts.gate, ...(this.opts.pauses ?? [])].find((g) => g && !g.isOpen());
      if (gate) {
        if (paused !== gate.why) this.opts.log.warn({ tag: 'SQS' }, `intake paused: ${gate.why}`);
        paused = gate.why;
        // A freed slot (or stop) wakes the loop too: it checks again.
        await Promise.race([gate.whenOpen(), new Promise<void>((resolve) => (this.slotFreed = resolve))]);
        continue;
      }
      if (paused) this.opts.log.info({ tag: 'SQS' }, 'intake resumed');
      paused = false;
      const free = this.wanted;
      if (free === 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        // Under load slots free one at a time: let a few more free up, so that one receive
        // brings several messages instead of one call per message.
        await sleep(RECEIVE_COALESCE_MS);
        continue;
      }
      // One long poll per SQS_MAX_BATCH free slots, side by side: never more than free.
      const polls: number[] = [];
      for (let left = free; left > 0; left -= SQS_MAX_BATCH) polls.push(Math.min(SQS_MAX_BATCH, left));
      const settled = await Promise.allSettled(polls.map((n) => this.opts.leases.receive(n, this.abort.signal)));
      // What the polls that succeeded brought is handled even when another failed.
      const messages: Message[] = settled.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
      const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (!failure) {
        this.lastReceiveOkAt = Date.now();
        this.lastReceiveError = null;
        backoff.reset();
      } else if (!this.stopping) {
        this.emit('receive_failed');
        this.lastReceiveError = String(failure.reason);
        backoffMs = backoff.next();
        this.opts.log.error({ tag: 'SQS', err: String(failure.reason), retryInMs: backoffMs }, 'receive failed');
      }
      if (messages.length > 0) this.emit('received', messages.length);
      if (this.stopping) {
        // Checked again at the top: a resume meanwhile (a drain undone) goes on receiving.
        await Promise.all(messages.map((m) => this.giveBack(m)));
        continue;
      }
      for (const m of messages) {
        this.totals.received++;
        const task = this.accept(m).catch((err: unknown) => {
          this.opts.log.error({ tag: 'FAIL', messageId: m.MessageId, err: String(err) }, 'message handling failed unexpectedly');
        });
        this.tasks.add(task);
        void task.finally(() => this.tasks.delete(task));
      }
      if (failure && !this.stopping) await sleep(backoffMs);
    }
  }

  private async accept(m: Message): Promise<void> {
    const receivedAt = Date.now();
    const receiptHandle = m.ReceiptHandle!;
    const held: Held = { receiptHandle, messageId: m.MessageId ?? 'unknown', requestId: undefined, started: false, settled: false };
    this.held.set(receiptHandle, held);
    try {
      let body: string | Record<string, unknown> = m.Body ?? '';
      if (this.opts.auth) {
        const a = authenticate(body, held, this.opts.auth);
        if ('refusal' in a) {
          // Not authentic: the request id it names may be anyone's, so nothing is written under it.
          const f = a.refusal;
          this.opts.log.warn({ tag: 'FAIL', reason: f.reason, messageId: f.messageId }, `${f.message}; the message is deleted and not answered`);
          await this.apply(held, dispose({ kind: 'refused' }), f.reason, this.opts.log.child({ messageId: f.messageId }));
          return;
        }
        body = a.message;
      }
      const sent = Number(m.Attributes?.SentTimestamp);
      const outcome = parseInvocation(
        body,
        {
          messageId: held.messageId,
          receiptHandle,
          receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? '1') || 1,
          sentAt: Number.isFinite(sent) ? sent : undefined,
          receivedAt,
        },
        this.opts.limits,
      );
      if (!outcome.ok) {
        const r = outcome.rejection;
        held.requestId = r.requestId;
        const log = this.opts.log.child({ requestId: r.requestId, functionId: r.functionId });
        log.warn({ tag: 'FAIL', part: r.reason, messageId: held.messageId }, r.message);
        await this.opts.results.deliver(failedResult({ ...r, attempt: 1, workerId: this.opts.workerId, totalMs: Date.now() - receivedAt }), log);
        await this.apply(held, dispose({ kind: 'failed', failure: 'permanent', reason: r.reason, receiveCount: 1, maxReceiveCount: undefined }), r.reason, log);
        return;
      }
      await this.handle(outcome.invocation, held);
    } finally {
      held.releaseMemory?.();
      this.held.delete(receiptHandle);
      this.slotFreed?.();
    }
  }

  private async handle(inv: Invocation, held: Held): Promise<void> {
    held.requestId = inv.requestId;
    const log = this.opts.log.child({ requestId: inv.requestId, functionId: inv.functionId });
    log.info({ tag: 'SQS', runtime: inv.runtime, attempt: inv.receiveCount }, 'invocation received');

    // A redelivery of a message whose run already finished (its delete was lost):
    // the stored result stands; the function does not run twice.
    if (inv.receiveCount > 1) {
      const previous = await this.opts.results.find(inv.requestId).catch(() => undefined);
      if (previous) {
        log.info({ tag: 'SQS' }, 'already answered by an earlier delivery; not running again');
        await this.apply(held, dispose({ kind: 'duplicate' }), 'DUPLICATE', log);
        return;
      }
    }

    // The request id is this function's from now on (or already was: a redelivery). One
    // that another function holds is not run, and nothing is written under it.
    const claim = await this.opts.results.claim(inv.requestId, inv.functionId, inv.codeLocation, { attempt: inv.receiveCount }, log);
    if (claim === 'foreign') {
      log.warn({ tag: 'FAIL', reason: 'FOREIGN_REQUEST_ID' }, 'the request id belongs to another function: not run, not answered; the message is deleted');
      await this.apply(held, dispose({ kind: 'refused' }), 'FOREIGN_REQUEST_ID', log);
      return;
    }
    if (claim === 'answered') {
      log.info({ tag: 'SQS' }, 'already answered under this request id; not running again');
      await this.apply(held, dispose({ kind: 'duplicate' }), 'DUPLICATE', log);
      return;
    }
    held.cancellable = true;
    if (this.opts.memory) {
      try {
        if (this.opts.memory.freeMb < inv.memoryMb) log.info({ tag: 'SQS', memoryMb: inv.memoryMb, freeMb: this.opts.memory.freeMb }, 'waiting for memory of the budget to free');
        held.releaseMemory = await this.opts.memory.acquire(inv.memoryMb);
      } catch (err) {
        this.settle(held);
        if (held.abandoned) return;
        await this.fail(inv, held, err instanceof InvocationError ? err : new InvocationError('INVALID_MESSAGE', 'permanent', String(err)), log);
        return;
      }
    }
    let result: Result;
    const waitUntil = Date.now() + LAST_TRY_ENGINE_WAIT_MS;
    for (;;) {
      try {
        result = await this.opts.runInvocation(inv, log, {
          onRunStart: () => (held.started = true),
          onRunEnd: () => this.settle(held),
          holdBack: () => {
            const e = this.holdBack();
            // Past this point the run goes ahead: a drain lets it finish.
            if (!e) held.cancellable = false;
            return e;
          },
        });
        break;
      } catch (err) {
        const e = this.outageOr(err instanceof InvocationError ? err : new InvocationError('INTERNAL', 'transient', `unexpected: ${String(err)}`, { cause: err }));
        // A last try given back during an outage would go to the DLQ on its next receive:
        // it stays held (its visibility kept alive) until the engine answers, then runs.
        if (e.reason === 'ENGINE_OUTAGE' && this.isLastTry(inv) && !this.stopping && Date.now() < waitUntil && this.opts.gate) {
          log.warn({ tag: 'SQS', attempt: inv.receiveCount }, 'engine outage on the last try: holding the message until the engine answers');
          await Promise.race([this.opts.gate.whenOpen(), sleep(Math.max(0, waitUntil - Date.now()))]);
          continue;
        }
        this.settle(held);
        if (held.abandoned) return;
        await this.fail(inv, held, e, log);
        return;
      }
    }
    this.settle(held);
    if (held.abandoned) {
      log.info({ tag: 'SQS', status: result.status }, 'run ended after its message was given back: result discarded');
      return;
    }
    log[result.success ? 'info' : 'warn'](
      {
        tag: result.success ? 'DONE][OK' : 'DONE][FAIL',
        status: result.status,
        reason: result.reason,
        exitCode: result.exitCode,
        startKind: result.startKind,
        durationMillis: result.durationMillis,
        peakMemoryBytes: result.peakMemoryBytes,
      },
      'invocation finished',
    );
    // The run happened: answer and delete, whatever Redis does (the sink keeps it for retry).
    await this.opts.results.deliver(result, log);
    await this.apply(held, dispose({ kind: 'ran' }), result.reason, log);
  }

  /** An invocation that did not run: answer, retry or give back, as the table says. */
  private async fail(inv: Invocation, held: Held, err: InvocationError, log: Logger): Promise<void> {
    const d = dispose({ kind: 'failed', failure: err.kind, reason: err.reason, receiveCount: inv.receiveCount, maxReceiveCount: this.maxReceiveCount });
    const fields = { part: err.reason, attempt: inv.receiveCount, maxReceiveCount: this.maxReceiveCount };
    if (d.label === 'released') log.info({ tag: 'SQS', reason: err.reason }, 'released for another worker');
    else if (d.label === 'dead_lettered') log.error({ tag: 'FAIL', ...fields }, `${err.message} (last try: to the DLQ)`);
    else if (d.label === 'retried') log.warn({ tag: 'FAIL', ...fields, retryInS: d.message.op === 'visible' ? d.message.afterS : 0 }, `${err.message} (left for redelivery)`);
    else log.warn({ tag: 'FAIL', part: err.reason }, err.message);

    if (d.answerFailure) {
      const failed = failedResult({
        requestId: inv.requestId,
        functionId: inv.functionId,
        codeLocation: inv.codeLocation,
        runtime: inv.runtime,
        reason: err.reason,
        message: err.message,
        memoryMb: inv.memoryMb,
        attempt: inv.receiveCount,
        workerId: this.opts.workerId,
        totalMs: Date.now() - inv.receivedAt,
      });
      await this.opts.results.deliver(failed, log);
    }
    if (d.pending) await this.opts.results.markState(inv.requestId, 'PENDING', { attempt: inv.receiveCount, lastReason: err.reason }, log);
    await this.apply(held, d, err.reason, log);
  }

  /** Why a run must not start now (the message goes back), or null. */
  private holdBack(): InvocationError | null {
    if (this.stopping) return new InvocationError('SHUTTING_DOWN', 'transient', 'the agent is stopping; the message goes back to the queue');
    if (this.opts.gate && !this.opts.gate.isOpen()) return new InvocationError('ENGINE_OUTAGE', 'transient', 'the container engine is unreachable; the message goes back to the queue');
    return null;
  }

  /** An engine failure while the engine is known to be down is the outage, not the message. */
  private outageOr(e: InvocationError): InvocationError {
    if (e.reason !== 'DOCKER_UNAVAILABLE' || !this.opts.gate || this.opts.gate.isOpen()) return e;
    return new InvocationError('ENGINE_OUTAGE', 'transient', `${e.message} (the engine is unreachable)`, { cause: e });
  }

  private isLastTry(inv: Invocation): boolean {
    return this.maxReceiveCount !== undefined && inv.receiveCount >= this.maxReceiveCount;
  }

  /** The message's run is over: its slot is free for the next message while it is answered. */
  private settle(held: Held): void {
    if (held.settled) return;
    held.settled = true;
    held.releaseMemory?.();
    this.slotFreed?.();
  }

  /** Carries out a disposition on the queue and counts it. */
  private async apply(held: Held, d: Disposition, reason: Reason | 'DUPLICATE', log: Logger): Promise<void> {
    if (d.message.op === 'delete') {
      // A failed delete is not counted: the redelivery is answered from the stored result.
      if (!(await this.opts.leases.delete(held.receiptHandle, log))) return;
    } else {
      await this.opts.leases.makeVisible(held.receiptHandle, d.message.afterS, log);
    }
    this.totals[TOTAL_OF[d.label]]++;
    this.emit('disposed', d.label, reason);
  }

  /** A message received while stopping: visible again at once, for another worker. */
  private async giveBack(m: Message): Promise<void> {
    const held: Held = { receiptHandle: m.ReceiptHandle!, messageId: m.MessageId ?? 'unknown', requestId: undefined, started: false, settled: true };
    await this.release(held, this.opts.log.child({ messageId: held.messageId }));
  }

  /** Visible again at once, for another worker: the agent is stopping or draining. */
  private release(held: Held, log: Logger): Promise<void> {
    return this.apply(held, dispose({ kind: 'failed', failure: 'transient', reason: 'SHUTTING_DOWN', receiveCount: 1, maxReceiveCount: undefined }), 'SHUTTING_DOWN', log);
  }
}
