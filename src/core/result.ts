import type { Runtime } from './runtimes.js';
import type { Reason } from './reasons.js';

export type StartKind = 'cold' | 'prewarm' | 'warm';
export type Status = 'SUCCESS' | 'FAILED' | 'TIMEOUT' | 'OOM';

/** A file the function left under output/, stored in the user-data bucket. */
export interface StoredOutput {
  key: string;
  bytes: number;
  /** The object's version in a versioned bucket, else null. */
  versionId: string | null;
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
  /** Where the function's code came from (`s3://bucket/key`, or `inline:` and its hash); null when the message named none. */
  codeLocation: string | null;
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
  /** The run's file-backed memory at its end (page cache it read or wrote), part of what the peak counts; null when not known. */
  peakMemoryFileBytes: number | null;
  recommendedMemoryMb: number | null;
  /** Bytes in the writable space when the run ended (its code included); null when not measured. */
  diskUsedBytes: number | null;
  /** Files stored from the workspace's output/ folder (S3_USER_DATA_BUCKET), and what was not stored and why. */
  outputs: StoredOutput[];
  outputErrors: string[];
  optimizationTip: string | null;
  memoryMb: number;
  timings: Timings;
  attempt: number;
  workerId: string;
  finishedAt: string;
  /** Handler mode only (a nanogrid.json with a handler): what the call returned or raised, and its init. */
  handler?: HandlerResult;
}

/** A handler-mode call's own part of the result. */
export interface HandlerResult {
  /** The handler's return value (JSON); null when it raised, did not answer, or the value did not fit the result. */
  returnValue: unknown;
  /** What it raised: the exception's type and message (its traceback is on stderr). */
  error: { errorType: string; errorMessage: string } | null;
  /** This call started the handler (imported its module): Lambda's cold start. */
  initialised: boolean;
  /** How long the import took, from the process's start to its ready (Lambda's Init Duration); null when this call did not start it. */
  initDurationMs: number | null;
  /** The return value was left out: the result would pass its byte budget. */
  returnValueDropped?: boolean;
}

/** A FAILED result for an invocation that never ran. */
export function failedResult(args: {
  requestId: string;
  functionId: string;
  /** Null for a message that was refused before its code was known. */
  codeLocation?: string | null;
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
    codeLocation: args.codeLocation ?? null,
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
    peakMemoryFileBytes: null,
    recommendedMemoryMb: null,
    diskUsedBytes: null,
    outputs: [],
    outputErrors: [],
    optimizationTip: null,
    memoryMb: args.memoryMb,
    timings: { totalMs: args.totalMs },
    attempt: args.attempt,
    workerId: args.workerId,
    finishedAt: new Date().toISOString(),
  };
}
