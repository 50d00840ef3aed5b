import type { FailureKind, Reason } from '../core/reasons.js';

/** What became of one received message, as far as its disposition cares. */
export type Outcome =
  /** The function ran (any exit code, timeout, OOM): its result is the answer. */
  | { kind: 'ran' }
  /** An earlier delivery already stored a result (its delete was lost). */
  | { kind: 'duplicate' }
  /** Not to be run or answered: it failed authentication, or names a request id of another function. */
  | { kind: 'refused' }
  /** The function did not run. */
  | { kind: 'failed'; failure: FailureKind; reason: Reason; receiveCount: number; maxReceiveCount: number | undefined };

/** What to do with the message, and whether the caller hears a FAILED answer now. */
export interface Disposition {
  message: { op: 'delete' } | { op: 'visible'; afterS: number };
  /** Answer the caller now with a FAILED result for this reason. */
  answerFailure: boolean;
  /** Job state goes back to PENDING: a redelivery will try again. */
  pending: boolean;
  /** Label for metrics and /status totals. */
  label: 'deleted' | 'retried' | 'dead_lettered' | 'released' | 'refused';
}

/** Longest wait before a transient failure is tried again. */
export const MAX_RETRY_DELAY_S = 60;

/**
 * The disposition table (docs/contract.md, "Message disposition"). Pure: the same outcome
 * always gives the same disposition.
 */
export function dispose(o: Outcome): Disposition {
  if (o.kind === 'ran') return { message: { op: 'delete' }, answerFailure: false, pending: false, label: 'deleted' };
  if (o.kind === 'duplicate') return { message: { op: 'delete' }, answerFailure: false, pending: false, label: 'deleted' };
  // Answering would write under a request id that may be anyone's: delete, say nothing.
  if (o.kind === 'refused') return { message: { op: 'delete' }, answerFailure: false, pending: false, label: 'refused' };
  // It would fail the same way again: answer and delete.
  if (o.failure === 'permanent') return { message: { op: 'delete' }, answerFailure: true, pending: false, label: 'deleted' };
  // Nothing wrong with the message: another worker (or this one after a restart) takes it.
  // The same for an engine outage: the worker stops receiving until its engine is back.
  if (o.reason === 'SHUTTING_DOWN' || o.reason === 'ENGINE_OUTAGE') return { message: { op: 'visible', afterS: 0 }, answerFailure: false, pending: false, label: 'released' };
  if (o.maxReceiveCount !== undefined && o.receiveCount >= o.maxReceiveCount) {
    // Last try: answer now so nobody waits forever; the redrive policy moves the message
    // to the DLQ on its next receive, where operators can inspect it.
    return { message: { op: 'visible', afterS: 0 }, answerFailure: true, pending: false, label: 'dead_lettered' };
  }
  return { message: { op: 'visible', afterS: retryDelayS(o.receiveCount) }, answerFailure: false, pending: true, label: 'retried' };
}

/** 1, 2, 4 … s by receive count, capped. */
export function retryDelayS(receiveCount: number): number {
  return Math.min(MAX_RETRY_DELAY_S, 2 ** Math.max(0, receiveCount - 1));
}

/**
 * Whether a message that failed for an engine outage waits, held, for the engine to come
 * back instead of going back to the queue: on its last try it would be dead-lettered at its
 * next receive for no fault of its own. Not while stopping, and not past `holdUntil`. Pure.
 */
export function holdLastTry(o: { reason: Reason; receiveCount: number; maxReceiveCount: number | undefined; stopping: boolean; now: number; holdUntil: number }): boolean {
  return o.reason === 'ENGINE_OUTAGE' && o.maxReceiveCount !== undefined && o.receiveCount >= o.maxReceiveCount && !o.stopping && o.now < o.holdUntil;
}
