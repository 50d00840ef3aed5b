import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Runtime } from './config.js';
import { parseInvocation, type Invocation, type ParseLimits } from './invocation.js';
import type { Logger } from './log.js';
import { failedResult, InvocationError, type Result } from './result.js';
import type { RuntimePool } from './runtimePool.js';
import { sleep, withTimeout } from './timeout.js';

/** One message this agent holds: from receive until it is deleted or released. */
interface Held {
  receiptHandle: string;
  messageId: string;
  requestId: string | undefined;
  started: boolean;
}

export interface SupervisorOptions {
  sqs: SQSClient;
  queueUrl: string;
  pools: Map<Runtime, RuntimePool>;
  limits: ParseLimits;
  visibilityTimeoutS: number;
  /** Long-poll wait per receive (SQS allows 0-20 s). */
  receiveWaitS: number;
  /** Overrides the queue's redrive policy for the "last try" decision. */
  maxReceiveCount: number | undefined;
  sqsTimeoutMs: number;
  log: Logger;
  /** Runs one valid invocation to its Result; throws InvocationError when it never ran. */
  process: (inv: Invocation, log: Logger, hooks: { onRunStart: () => void; shouldStart: () => boolean }) => Promise<Result>;
  /** Answers: publishes a result (never throws). */
  answer: (result: Result, log: Logger) => Promise<void>;
  /** A stored result for this request, if an earlier delivery already ran it. */
  findResult: (requestId: string) => Promise<Result | undefined>;
  markState: (requestId: string, state: 'PENDING' | 'PROCESSING', log: Logger, fields?: Record<string, string | number>) => Promise<void>;
  onDisposition?: (disposition: 'deleted' | 'retried' | 'dead_lettered' | 'released', reason: string) => void;
  onReceived?: (n: number) => void;
  onSqsError?: (op: string) => void;
  workerId: string;
}

export interface SupervisorStatus {
  receiving: boolean;
  inflight: number;
  running: number;
  freeSlots: number;
  capacity: number;
  maxReceiveCount: number | undefined;
  totals: { received: number; deleted: number; retried: number; deadLettered: number; released: number };
  lastReceiveOkAt: string | null;
  lastReceiveError: string | null;
}

/**
 * The main thread's owner of SQS intake: takes only as many messages as there are free
 * slots, keeps their visibility alive while held, routes each to its runtime's pool and
 * decides each message's disposition. It never touches Docker.
 */
export class Supervisor {
  private readonly held = new Map<string, Held>();
  private readonly abort = new AbortController();
  private stopping = false;
  private draining = false;
  private loop: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private slotFreed: (() => void) | undefined;
  private maxReceiveCount: number | undefined;
  private lastReceiveOkAt: number | null = null;
  private lastReceiveError: string | null = null;
  private readonly totals = { received: 0, deleted: 0, retried: 0, deadLettered: 0, released: 0 };
  private readonly tasks = new Set<Promise<void>>();

  constructor(private readonly opts: SupervisorOptions) {
    this.maxReceiveCount = opts.maxReceiveCount;
  }

  get capacity(): number {
    let n = 0;
    for (const p of this.opts.pools.values()) n += p.capacity;
    return n;
  }

  get freeSlots(): number {
    return Math.max(0, this.capacity - this.held.size);
  }

  /** True when the last receive succeeded recently, for /health. */
  get queueReachable(): boolean {
    return this.lastReceiveError === null;
  }

  async start(): Promise<void> {
    if (this.maxReceiveCount === undefined) this.maxReceiveCount = await this.readRedrivePolicy();
    this.loop = this.receiveLoop();
    const every = Math.max(1000, (this.opts.visibilityTimeoutS * 1000) / 3);
    this.heartbeat = setInterval(() => void this.extendVisibility(), every);
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
      maxReceiveCount: this.maxReceiveCount,
      totals: { ...this.totals },
      lastReceiveOkAt: this.lastReceiveOkAt ? new Date(this.lastReceiveOkAt).toISOString() : null,
      lastReceiveError: this.lastReceiveError,
    };
  }

  /**
   * Stops receiving, releases held messages whose run has not started, and waits up to
   * `graceMs` for running ones. Returns the number still running at the deadline.
   */
  async stop(graceMs: number): Promise<number> {
    this.stopping = true;
    this.draining = true;
    this.slotFreed?.();
    const deadline = Date.now() + graceMs;
    // The long poll in flight is not aborted: the queue may already have handed it
    // messages, which would then stay invisible for their whole visibility timeout.
    // It returns within the wait time, and whatever it brings is given back at once.
    const loopDone = await withTimeout('receive loop', graceMs, this.loop ?? Promise.resolve()).then(
      () => true,
      () => false,
    );
    if (!loopDone) {
      this.abort.abort();
      await this.loop?.catch(() => undefined);
    }
    while (this.held.size > 0 && Date.now() < deadline) {
      await Promise.race([Promise.allSettled([...this.tasks]), sleep(Math.min(250, Math.max(1, deadline - Date.now())))]);
    }
    clearInterval(this.heartbeat);
    return this.held.size;
  }

  /** Waits for every message task to settle (after pools were stopped). */
  async settle(timeoutMs: number): Promise<void> {
    await withTimeout('message tasks', timeoutMs, Promise.allSettled([...this.tasks])).catch(() => undefined);
  }

  private async receiveLoop(): Promise<void> {
    let backoffMs = 0;
    while (!this.stopping) {
      const free = this.freeSlots;
      if (free === 0) {
        await new Promise<void>((resolve) => (this.slotFreed = resolve));
        continue;
      }
      let messages: Message[] = [];
      try {
        const res = await this.opts.sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.opts.queueUrl,
            MaxNumberOfMessages: Math.min(10, free),
            WaitTimeSeconds: this.opts.receiveWaitS,
            VisibilityTimeout: this.opts.visibilityTimeoutS,
            MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
          }),
          { abortSignal: this.abort.signal },
        );
        messages = res.Messages ?? [];
        this.lastReceiveOkAt = Date.now();
        this.lastReceiveError = null;
        backoffMs = 0;
      } catch (err) {
        if (this.stopping) break;
        this.opts.onSqsError?.('receive');
        this.lastReceiveError = String(err);
        backoffMs = Math.min(20_000, backoffMs ? backoffMs * 2 : 500);
        this.opts.log.error({ tag: 'SQS', err: String(err), retryInMs: backoffMs }, 'receive failed');
        await sleep(backoffMs);
        continue;
      }
      if (messages.length > 0) this.opts.onReceived?.(messages.length);
      if (this.stopping) {
        await Promise.all(messages.map((m) => this.giveBack(m)));
        break;
      }
      for (const m of messages) {
        this.totals.received++;
        const task = this.accept(m).catch((err: unknown) => {
          this.opts.log.error({ tag: 'FAIL', messageId: m.MessageId, err: String(err) }, 'message handling failed unexpectedly');
        });
        this.tasks.add(task);
        void task.finally(() => this.tasks.delete(task));
      }
    }
  }

  private async accept(m: Message): Promise<void> {
    const receivedAt = Date.now();
    const receiptHandle = m.ReceiptHandle!;
    const held: Held = { receiptHandle, messageId: m.MessageId ?? 'unknown', requestId: undefined, started: false };
    this.held.set(receiptHandle, held);
    try {
      const sent = Number(m.Attributes?.SentTimestamp);
      const outcome = parseInvocation(
        m.Body ?? '',
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
        const log = this.opts.log.child({ requestId: r.requestId });
        log.warn({ tag: 'FAIL', part: r.reason, messageId: held.messageId }, r.message);
        await this.opts.answer(
          failedResult({ ...r, attempt: 1, workerId: this.opts.workerId, totalMs: Date.now() - receivedAt }),
          log,
        );
        await this.remove(held, log, r.reason);
        return;
      }
      await this.handle(outcome.invocation, held);
    } finally {
      this.held.delete(receiptHandle);
      this.slotFreed?.();
    }
  }

  private async handle(inv: Invocation, held: Held): Promise<void> {
    held.requestId = inv.requestId;
    const log = this.opts.log.child({ requestId: inv.requestId });
    log.info({ tag: 'SQS', functionId: inv.functionId, runtime: inv.runtime, attempt: inv.receiveCount }, 'invocation received');

    // A redelivery of a message whose run already finished (its delete was lost):
    // answer again from the stored result rather than running the function twice.
    if (inv.receiveCount > 1) {
      const previous = await this.opts.findResult(inv.requestId).catch(() => undefined);
      if (previous) {
        log.info({ tag: 'SQS' }, 'already answered by an earlier delivery; not running again');
        await this.remove(held, log, 'DUPLICATE');
        return;
      }
    }

    const pool = this.opts.pools.get(inv.runtime);
    if (!pool) {
      // Parsing accepted a runtime that has no pool: configuration, not the message, is off.
      await this.answerFailure(inv, held, new InvocationError('RUNTIME_NOT_SUPPORTED', 'permanent', `no pool for runtime ${inv.runtime}`), log);
      return;
    }
    await this.opts.markState(inv.requestId, 'PROCESSING', log, { attempt: inv.receiveCount });
    let result: Result;
    try {
      result = await this.opts.process(inv, log, {
        onRunStart: () => (held.started = true),
        shouldStart: () => !this.draining,
      });
    } catch (err) {
      const e =
        err instanceof InvocationError ? err : new InvocationError('INTERNAL', 'transient', `unexpected: ${String(err)}`, { cause: err });
      await this.answerFailure(inv, held, e, log);
      return;
    }
    const level = result.success ? 'info' : 'warn';
    log[level](
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
    await this.opts.answer(result, log);
    await this.remove(held, log, result.reason);
  }

  private async answerFailure(inv: Invocation, held: Held, err: InvocationError, log: Logger): Promise<void> {
    const failed = () =>
      failedResult({
        requestId: inv.requestId,
        functionId: inv.functionId,
        runtime: inv.runtime,
        reason: err.reason,
        message: err.message,
        memoryMb: inv.memoryMb,
        attempt: inv.receiveCount,
        workerId: this.opts.workerId,
        totalMs: Date.now() - inv.receivedAt,
      });
    if (err.kind === 'permanent') {
      log.warn({ tag: 'FAIL', part: err.reason }, err.message);
      await this.opts.answer(failed(), log);
      await this.remove(held, log, err.reason);
      return;
    }
    if (err.reason === 'SHUTTING_DOWN') {
      log.info({ tag: 'SQS', reason: err.reason }, 'released for another worker');
      await this.release(held, 0, log, 'released', err.reason);
      return;
    }
    const max = this.maxReceiveCount;
    if (max !== undefined && inv.receiveCount >= max) {
      // Last try: answer now so nobody waits forever; the redrive policy moves the
      // message to the DLQ on its next receive, where operators can inspect it.
      log.error({ tag: 'FAIL', part: err.reason, attempt: inv.receiveCount, maxReceiveCount: max }, `${err.message} (last try: to the DLQ)`);
      await this.opts.answer(failed(), log);
      await this.release(held, 0, log, 'dead_lettered', err.reason);
      return;
    }
    const delayS = Math.min(60, 2 ** (inv.receiveCount - 1));
    log.warn({ tag: 'FAIL', part: err.reason, attempt: inv.receiveCount, retryInS: delayS }, `${err.message} (left for redelivery)`);
    await this.opts.markState(inv.requestId, 'PENDING', log, { attempt: inv.receiveCount, lastReason: err.reason });
    await this.release(held, delayS, log, 'retried', err.reason);
  }

  private async remove(held: Held, log: Logger, reason: string): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await withTimeout(
          'sqs delete',
          this.opts.sqsTimeoutMs,
          this.opts.sqs.send(new DeleteMessageCommand({ QueueUrl: this.opts.queueUrl, ReceiptHandle: held.receiptHandle })),
        );
        this.totals.deleted++;
        this.opts.onDisposition?.('deleted', reason);
        return;
      } catch (err) {
        this.opts.onSqsError?.('delete');
        if (attempt >= 3) {
          // Redelivery will find the stored result and not run the function again.
          log.error({ tag: 'SQS', err: String(err) }, 'delete failed; a redelivery will be answered from the stored result');
          return;
        }
        await sleep(200 * attempt);
      }
    }
  }

  private async release(held: Held, delayS: number, log: Logger, disposition: 'retried' | 'dead_lettered' | 'released', reason: string): Promise<void> {
    try {
      await withTimeout(
        'sqs change visibility',
        this.opts.sqsTimeoutMs,
        this.opts.sqs.send(
          new ChangeMessageVisibilityCommand({ QueueUrl: this.opts.queueUrl, ReceiptHandle: held.receiptHandle, VisibilityTimeout: delayS }),
        ),
      );
    } catch (err) {
      this.opts.onSqsError?.('change_visibility');
      log.warn({ tag: 'SQS', err: String(err) }, 'visibility not changed; the message returns when its timeout ends');
    }
    if (disposition === 'retried') this.totals.retried++;
    else if (disposition === 'dead_lettered') this.totals.deadLettered++;
    else this.totals.released++;
    this.opts.onDisposition?.(disposition, reason);
  }

  /** A message received while stopping: visible again at once, for another worker. */
  private async giveBack(m: Message): Promise<void> {
    const held: Held = { receiptHandle: m.ReceiptHandle!, messageId: m.MessageId ?? 'unknown', requestId: undefined, started: false };
    await this.release(held, 0, this.opts.log.child({ messageId: held.messageId }), 'released', 'SHUTTING_DOWN');
  }

  /** Keeps held messages invisible while they wait or run, ten per call. */
  private async extendVisibility(): Promise<void> {
    const handles = [...this.held.values()];
    for (let i = 0; i < handles.length; i += 10) {
      const batch = handles.slice(i, i + 10);
      try {
        await withTimeout(
          'sqs extend visibility',
          this.opts.sqsTimeoutMs,
          this.opts.sqs.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: this.opts.queueUrl,
              Entries: batch.map((h, j) => ({ Id: String(j), ReceiptHandle: h.receiptHandle, VisibilityTimeout: this.opts.visibilityTimeoutS })),
            }),
          ),
        );
      } catch (err) {
        this.opts.onSqsError?.('extend_visibility');
        this.opts.log.warn({ tag: 'SQS', err: String(err), messages: batch.length }, 'visibility extension failed');
      }
    }
  }

  private async readRedrivePolicy(): Promise<number | undefined> {
    try {
      const res = await withTimeout(
        'sqs get queue attributes',
        this.opts.sqsTimeoutMs,
        this.opts.sqs.send(new GetQueueAttributesCommand({ QueueUrl: this.opts.queueUrl, AttributeNames: ['RedrivePolicy'] })),
      );
      const raw = res.Attributes?.RedrivePolicy;
      if (!raw) {
        this.opts.log.warn({ tag: 'SQS' }, 'queue has no redrive policy: transient failures retry until the message expires');
        return undefined;
      }
      const n = Number((JSON.parse(raw) as { maxReceiveCount?: unknown }).maxReceiveCount);
      return Number.isFinite(n) ? n : undefined;
    } catch (err) {
      this.opts.log.warn({ tag: 'SQS', err: String(err) }, 'redrive policy unreadable; set NANOGRID_MAX_RECEIVE_COUNT');
      return undefined;
    }
  }
}

