import { logSummary } from './summaryLine.js';
import type { Message } from '@aws-sdk/client-sqs';
import type { Invocation } from '../core/invocation.js';
import type { Logger } from '../core/log.js';
import type { IntakeGate, InvocationRunner, ResultStore } from '../core/ports.js';
import { InvocationError, type Reason } from '../core/reasons.js';
import { failedResult, type Result } from '../core/result.js';
import { sleep } from '../core/timeout.js';
import { dispose, holdLastTry, type Disposition } from './disposition.js';
import type { HeldMessage } from './heldMessage.js';
import type { MemoryBudget } from './memoryBudget.js';
import type { MessageLeases } from './messageLeases.js';
import { authenticate, parseInvocation, type AuthPolicy, type ParseLimits } from './parse.js';

/** How long a last-try message waits for the engine before it is given up to the redrive policy. */
const LAST_TRY_ENGINE_WAIT_MS = 10 * 60_000;

/** The supervisor, as one message's handling sees it. */
export interface HandlerHost {
  readonly stopping: boolean;
  readonly maxReceiveCount: number | undefined;
  /** A slot freed: the receive loop looks again. */
  slotFreed(): void;
  /** A disposition carried out on the queue: counted and reported. */
  disposed(label: Disposition['label'], reason: Reason | 'DUPLICATE'): void;
  /** An answer stored (a run's result, or a failure that never ran). */
  answered(result: Result): void;
}

export interface HandlerOptions {
  leases: MessageLeases;
  results: ResultStore;
  runner: InvocationRunner;
  memory?: MemoryBudget | undefined;
  limits: ParseLimits;
  auth?: AuthPolicy | undefined;
  /** The engine's gate: while closed, a run does not start and its message goes back. */
  gate?: IntakeGate | undefined;
  log: Logger;
  workerId: string;
}

/**
 * One received message, from its body to its disposition: authenticated (with message
 * keys), parsed, its request id claimed, its memory admitted, run, answered, and deleted,
 * retried or given back as the disposition table says. Its HeldMessage moves forward
 * through the states as it goes.
 */
export class MessageHandler {
  constructor(
    private readonly opts: HandlerOptions,
    private readonly host: HandlerHost,
  ) {}

  async handle(m: Message, held: HeldMessage): Promise<void> {
    const receivedAt = Date.now();
    let body: string | Record<string, unknown> = m.Body ?? '';
    if (this.opts.auth) {
      const a = authenticate(body, held, this.opts.auth);
      if ('refusal' in a) {
        // Not authentic: the request id it names may be anyone's, so nothing is written under it.
        const f = a.refusal;
        held.to('settled');
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
        receiptHandle: held.receiptHandle,
        receiveCount: Number(m.Attributes?.ApproximateReceiveCount ?? '1') || 1,
        sentAt: Number.isFinite(sent) ? sent : undefined,
        receivedAt,
      },
      this.opts.limits,
    );
    if (!outcome.ok) {
      const r = outcome.rejection;
      held.requestId = r.requestId;
      held.to('settled');
      const log = this.opts.log.child({ requestId: r.requestId, functionId: r.functionId });
      log.warn({ tag: 'FAIL', reason: r.reason, messageId: held.messageId }, r.message);
      const failed = failedResult({ ...r, attempt: 1, workerId: this.opts.workerId, totalMs: Date.now() - receivedAt });
      logSummary(log, { result: failed, ran: false, disposition: 'failed', attempt: 1 });
      await this.answer(failed, log);
      await this.apply(held, dispose({ kind: 'failed', failure: 'permanent', reason: r.reason, receiveCount: 1, maxReceiveCount: undefined }), r.reason, log);
      return;
    }
    await this.run(outcome.invocation, held);
  }

  private async run(inv: Invocation, held: HeldMessage): Promise<void> {
    held.requestId = inv.requestId;
    const log = this.opts.log.child({ requestId: inv.requestId, functionId: inv.functionId });
    log.debug({ tag: 'SQS', runtime: inv.runtime, attempt: inv.receiveCount }, 'invocation received');

    // A redelivery of a message whose run already finished (its delete was lost):
    // the stored result stands; the function does not run twice.
    if (inv.receiveCount > 1) {
      const previous = await this.opts.results.find(inv.requestId).catch(() => undefined);
      if (previous) {
        held.to('settled');
        log.info({ tag: 'SQS' }, 'already answered by an earlier delivery; not running again');
        await this.apply(held, dispose({ kind: 'duplicate' }), 'DUPLICATE', log);
        return;
      }
    }

    if (!held.to('admitting')) return;
    // The request id is this function's from now on (or already was: a redelivery). One
    // that another function holds is not run, and nothing is written under it.
    const claim = await this.opts.results.claim(inv.requestId, inv.functionId, inv.codeLocation, { attempt: inv.receiveCount }, log);
    if (claim === 'foreign' || claim === 'answered') {
      if (!held.to('settled')) return;
      if (claim === 'foreign') log.warn({ tag: 'FAIL', reason: 'FOREIGN_REQUEST_ID' }, 'the request id belongs to another function: not run, not answered; the message is deleted');
      else log.info({ tag: 'SQS' }, 'already answered under this request id; not running again');
      await this.apply(held, dispose({ kind: claim === 'foreign' ? 'refused' : 'duplicate' }), claim === 'foreign' ? 'FOREIGN_REQUEST_ID' : 'DUPLICATE', log);
      return;
    }
    if (this.opts.memory) {
      try {
        if (this.opts.memory.freeMb < inv.memoryMb) log.info({ tag: 'SQS', memoryMb: inv.memoryMb, freeMb: this.opts.memory.freeMb }, 'waiting for memory of the budget to free');
        held.releaseMemory = await this.opts.memory.acquire(inv.memoryMb);
      } catch (err) {
        if (!this.settle(held)) return;
        await this.fail(inv, held, err instanceof InvocationError ? err : new InvocationError('INVALID_MESSAGE', 'permanent', String(err)), log);
        return;
      }
    }
    if (!held.to('waiting')) return;
    let result: Result;
    const holdUntil = Date.now() + LAST_TRY_ENGINE_WAIT_MS;
    for (;;) {
      try {
        result = await this.opts.runner.run(inv, log, {
          onRunStart: () => undefined,
          onRunEnd: () => this.settle(held),
          holdBack: () => {
            const e = this.holdBack();
            if (e) return e;
            // Past this point the run goes ahead: a drain lets it finish. (A retry on another
            // container after a broken one is running already.)
            if (held.state !== 'running' && !held.to('running')) return new InvocationError('SHUTTING_DOWN', 'transient', 'the message was given back while its run was being prepared');
            return null;
          },
        });
        break;
      } catch (err) {
        const e = this.outageOr(err instanceof InvocationError ? err : new InvocationError('INTERNAL', 'transient', `unexpected: ${String(err)}`, { cause: err }));
        // A last try given back during an outage would go to the DLQ on its next receive:
        // it stays held (its visibility kept alive) until the engine answers, then runs.
        const gate = this.opts.gate;
        if (gate && !held.givenBack && holdLastTry({ reason: e.reason, receiveCount: inv.receiveCount, maxReceiveCount: this.host.maxReceiveCount, stopping: this.host.stopping, now: Date.now(), holdUntil })) {
          log.warn({ tag: 'SQS', attempt: inv.receiveCount }, 'engine outage on the last try: holding the message until the engine answers');
          await Promise.race([gate.whenOpen(), sleep(Math.max(0, holdUntil - Date.now()))]);
          continue;
        }
        if (!this.settle(held)) return;
        await this.fail(inv, held, e, log);
        return;
      }
    }
    if (!this.settle(held)) {
      log.info({ tag: 'SQS', status: result.status }, 'run ended after its message was given back: result discarded');
      return;
    }
    // The one line per invocation at info (Lambda's REPORT): the others are at debug.
    logSummary(log, { result, ran: true, disposition: 'ran', attempt: result.attempt });
    // The run happened: answer and delete, whatever Redis does (the sink keeps it for retry).
    await this.answer(result, log);
    await this.apply(held, dispose({ kind: 'ran' }), result.reason, log);
  }

  /** An invocation that did not run: answer, retry or give back, as the table says. */
  private async fail(inv: Invocation, held: HeldMessage, err: InvocationError, log: Logger): Promise<void> {
    const d = dispose({ kind: 'failed', failure: err.kind, reason: err.reason, receiveCount: inv.receiveCount, maxReceiveCount: this.host.maxReceiveCount });
    const fields = { reason: err.reason, attempt: inv.receiveCount, maxReceiveCount: this.host.maxReceiveCount };
    if (d.label === 'released') log.info({ tag: 'SQS', reason: err.reason }, 'released for another worker');
    else if (d.label === 'dead_lettered') log.error({ tag: 'FAIL', ...fields }, `${err.message} (last try: to the DLQ)`);
    else if (d.label === 'retried') log.warn({ tag: 'FAIL', ...fields, retryInS: d.message.op === 'visible' ? d.message.afterS : 0 }, `${err.message} (left for redelivery)`);
    else log.warn({ tag: 'FAIL', reason: err.reason }, err.message);

    let failed: Result | undefined;
    if (d.answerFailure) {
      failed = failedResult({
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
    }
    logSummary(log, {
      ...(failed ? { result: failed } : {}),
      ran: false,
      disposition: d.label,
      runtime: inv.runtime,
      attempt: inv.receiveCount,
      memoryMb: inv.memoryMb,
      reason: err.reason,
      timings: { queuedMs: inv.sentAt !== undefined ? Math.max(0, inv.receivedAt - inv.sentAt) : undefined, totalMs: Date.now() - inv.receivedAt },
    });
    if (failed) await this.answer(failed, log);
    if (d.pending) await this.opts.results.markState(inv.requestId, 'PENDING', { attempt: inv.receiveCount, lastReason: err.reason }, log);
    await this.apply(held, d, err.reason, log);
  }

  private async answer(result: Result, log: Logger): Promise<void> {
    await this.opts.results.deliver(result, log);
    this.host.answered(result);
  }

  /** Why a run must not start now (the message goes back), or null. */
  private holdBack(): InvocationError | null {
    if (this.host.stopping) return new InvocationError('SHUTTING_DOWN', 'transient', 'the agent is stopping; the message goes back to the queue');
    if (this.opts.gate && !this.opts.gate.isOpen()) return new InvocationError('ENGINE_OUTAGE', 'transient', 'the container engine is unreachable; the message goes back to the queue');
    return null;
  }

  /** An engine failure while the engine is known to be down is the outage, not the message. */
  private outageOr(e: InvocationError): InvocationError {
    if (e.reason !== 'DOCKER_UNAVAILABLE' || !this.opts.gate || this.opts.gate.isOpen()) return e;
    return new InvocationError('ENGINE_OUTAGE', 'transient', `${e.message} (the engine is unreachable)`, { cause: e });
  }

  /**
   * The message's run is over: its container and memory are free for the next message while
   * it is answered. False when it was given back meanwhile: whatever it ended with is
   * discarded.
   */
  private settle(held: HeldMessage): boolean {
    if (!held.containerFree) {
      held.containerFree = true;
      held.releaseMemory?.();
      held.releaseMemory = undefined;
      this.host.slotFreed();
    }
    return held.to('settled') || held.state === 'settled';
  }

  /** Carries out a disposition on the queue and counts it. */
  async apply(held: Pick<HeldMessage, 'receiptHandle'>, d: Disposition, reason: Reason | 'DUPLICATE', log: Logger): Promise<void> {
    if (d.message.op === 'delete') {
      // A failed delete is not counted: the redelivery is answered from the stored result.
      if (!(await this.opts.leases.delete(held.receiptHandle, log))) return;
    } else {
      await this.opts.leases.makeVisible(held.receiptHandle, d.message.afterS, log);
    }
    this.host.disposed(d.label, reason);
  }

  /** Visible again at once, for another worker: the agent is stopping or draining. */
  release(held: Pick<HeldMessage, 'receiptHandle'>, log: Logger): Promise<void> {
    return this.apply(held, dispose({ kind: 'failed', failure: 'transient', reason: 'SHUTTING_DOWN', receiveCount: 1, maxReceiveCount: undefined }), 'SHUTTING_DOWN', log);
  }
}
