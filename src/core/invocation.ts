import { createHash } from 'node:crypto';
import type { Runtime } from './runtimes.js';

export type CodeSource =
  | { kind: 's3'; bucket: string; key: string }
  /** The older Controller's inline source; always python, written as main.py. */
  | { kind: 'inline'; code: string };

/** The function's input: inline JSON from the message, or an object in S3 (for inputs over the SQS body limit). */
export type InputSource = { kind: 'inline'; json: string } | { kind: 's3'; bucket: string; key: string };

/** One validated invocation message. */
export interface Invocation {
  requestId: string;
  functionId: string;
  runtime: Runtime;
  code: CodeSource;
  /** codeLocation(code), once. */
  codeLocation: string;
  /** functionKey(functionId, codeLocation): what warm containers and the memory history are keyed on. */
  functionKey: string;
  /** Null when the message carries no input (the original contract). */
  input: InputSource | null;
  timeoutMs: number;
  memoryMb: number;
  receiptHandle: string;
  messageId: string;
  /** SQS ApproximateReceiveCount: 1 on the first delivery. */
  receiveCount: number;
  /** SQS SentTimestamp in epoch ms, when known. */
  sentAt: number | undefined;
  receivedAt: number;
}

/**
 * Where a function's code comes from, as one string: `s3://bucket/key`, or `inline:` and
 * the source's hash. With the function id it names a function for everything the agent
 * keys on it (warm containers, memory history, who owns a request id): a message that
 * names another function's id with other code is another function.
 */
export function codeLocation(code: CodeSource): string {
  return code.kind === 's3' ? `s3://${code.bucket}/${code.key}` : `inline:${createHash('sha256').update(code.code).digest('hex')}`;
}

/** What owns an invocation's request id and its results: the function id and its code location. */
export function ownerOf(functionId: string, location: string): string {
  return `${functionId}\n${location}`;
}

/**
 * The key of a function for containers and memory history: its id and a short hash of its
 * code location (ids alone could be claimed by any sender).
 */
export function functionKey(functionId: string, location: string): string {
  return `${functionId}:${createHash('sha256').update(location).digest('hex').slice(0, 16)}`;
}
