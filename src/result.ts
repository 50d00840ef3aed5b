import type { Runtime } from './config.js';

export type StartKind = 'cold' | 'prewarm' | 'warm';
export type Status = 'SUCCESS' | 'FAILED' | 'TIMEOUT' | 'OOM';

/**
 * Every failure carries one of these, in the result and in the log line. They are the
 * stable vocabulary that operators alert on and the Controller may branch on.
 */
export const REASONS = {
  OK: 'the function exited 0',
  NON_ZERO_EXIT: 'the function exited with a non-zero code',
  TIMEOUT: 'the function ran past timeoutMs and was killed',
  OOM: 'the function exceeded memoryMb and was killed by the kernel',
  INVALID_MESSAGE: 'the SQS message is not a valid invocation',
  RUNTIME_NOT_SUPPORTED: 'the runtime is not one this agent runs',
  S3_NOT_FOUND: 'the code object does not exist in S3',
  S3_UNAVAILABLE: 'S3 could not be reached or refused the request',
  CODE_TOO_LARGE: 'the code archive exceeds the configured download size',
  ZIP_INVALID: 'the code archive is not a readable zip',
  ZIP_SLIP: 'a zip entry escapes the workspace (..)',
  ZIP_ABSOLUTE_PATH: 'a zip entry has an absolute path',
  ZIP_LINK: 'a zip entry is a symbolic link',
  ZIP_TOO_MANY_ENTRIES: 'the zip has more entries than allowed',
  ZIP_TOO_LARGE: 'the zip expands to more bytes than allowed',
  DOCKER_UNAVAILABLE: 'the Docker engine could not run the invocation',
  SHUTTING_DOWN: 'the agent stopped before the invocation could finish',
  INTERNAL: 'an unexpected error inside the agent',
} as const;
export type Reason = keyof typeof REASONS;

/** How a failure affects the SQS message. */
export type FailureKind = 'permanent' | 'transient';

export class InvocationError extends Error {
  constructor(
    readonly reason: Reason,
    readonly kind: FailureKind,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'InvocationError';
  }
}

export interface Timings {
  /** SQS send (SentTimestamp) to receive by this agent. */
  queuedMs?: number;
  fetchMs?: number;
  /** Pool acquire: time to get an unpaused container ready for exec. */
  acquireMs?: number;
  execMs?: number;
  /** Inside the agent: pool acquire (overlapping the code fetch) to result ready. */
  agentMs?: number;
  /** Receive to result ready. */
  totalMs: number;
}

export interface Result {
  requestId: string;
  functionId: string;
  runtime: Runtime | string;
  status: Status;
  success: boolean;
  reason: Reason;
  exitCode: number;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** Run time of the function itself (exec), as in the original contract. */
  durationMillis: number;
  startKind: StartKind | null;
  peakMemoryBytes: number | null;
  peakMemoryMethod: string | null;
  recommendedMemoryMb: number | null;
  optimizationTip: string | null;
  memoryMb: number;
  timings: Timings;
  attempt: number;
  workerId: string;
  finishedAt: string;
}

/** A FAILED result for an invocation that never ran. */
export function failedResult(args: {
  requestId: string;
  functionId: string;
  runtime: string;
  reason: Reason;
  message: string;
  memoryMb: number;
  attempt: number;
  workerId: string;
  totalMs: number;
}): Result {
  return {
    requestId: args.requestId,
    functionId: args.functionId,
    runtime: args.runtime,
    status: 'FAILED',
    success: false,
    reason: args.reason,
    // The original contract: an internal failure is exitCode -1 with the error in stderr.
    exitCode: -1,
    stdout: '',
    stderr: `[${args.reason}] ${args.message}`,
    stdoutTruncated: false,
    stderrTruncated: false,
    durationMillis: 0,
    startKind: null,
    peakMemoryBytes: null,
    peakMemoryMethod: null,
    recommendedMemoryMb: null,
    optimizationTip: null,
    memoryMb: args.memoryMb,
    timings: { totalMs: args.totalMs },
    attempt: args.attempt,
    workerId: args.workerId,
    finishedAt: new Date().toISOString(),
  };
}
