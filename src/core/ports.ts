import type { Invocation } from './invocation.js';
import type { Logger } from './log.js';
import type { InvocationError } from './reasons.js';
import type { Result } from './result.js';

/**
 * The hand-offs of one invocation between layers, each a named interface the next layer
 * implements: intake hands the invocation to an InvocationRunner (run/invoker.ts), and its
 * Result to a ResultStore (sinks/redisSink.ts). Following calls from the receive loop leads
 * through them without passing through the wiring.
 */

/** What intake tells the run path, and asks of it, while an invocation runs. */
export interface RunHooks {
  /** Called when the function's process has started. */
  onRunStart: () => void;
  /** Called when the run is over (its container is free; its result is still being made). */
  onRunEnd: () => void;
  /** Checked once code and container are ready: the reason the message goes back instead (stopping, engine outage), or null. */
  holdBack: () => InvocationError | null;
}

/** Runs one valid invocation to its Result. */
export interface InvocationRunner {
  /** Throws an InvocationError when the function never ran. */
  run(inv: Invocation, log: Logger, hooks: RunHooks): Promise<Result>;
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
  /** Best effort: the job goes back to PENDING (a redelivery will try again). */
  markState(requestId: string, state: 'PENDING', fields: Record<string, string | number>, log: Logger): Promise<void>;
}

/** Whether intake may receive now (the engine that runs invocations answers, the outbox has room). */
export interface IntakeGate {
  isOpen(): boolean;
  /** Resolves when it opens. */
  whenOpen(): Promise<void>;
  /** Said in the log while it holds intake closed. */
  why: string;
}
