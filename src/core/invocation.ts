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

/** Where a function's code comes from, as one string: `s3://bucket/key`, or `inline:` and the source's hash. */
export function codeLocation(code: CodeSource): string {
  return code.kind === 's3' ? `s3://${code.bucket}/${code.key}` : `inline:${createHash('sha256').update(code.code).digest('hex')}`;
}

/**
 * The part of a code location that names a function rather than one version of it: the
 * folder of the code bucket its zip is in (`s3://code/func-01/` for `func-01/v1.zip` and
 * `func-01/v2.zip`), the whole key when it has no folder, the source's hash for inline
 * code. With the function id it is what the agent keys on (warm containers, memory
 * history, who owns a request id): a message that names another function's id with code
 * from elsewhere is another function, and a new version of a function is the same one.
 */
export function codeHome(location: string): string {
  if (!location.startsWith('s3://')) return location;
  const rest = location.slice('s3://'.length);
  const key = rest.slice(rest.indexOf('/') + 1);
  const folder = key.lastIndexOf('/');
  return folder >= 0 ? `s3://${rest.slice(0, rest.indexOf('/'))}/${key.slice(0, folder + 1)}` : location;
}

/** What owns an invocation's request id and its results: the function id and its code's home. */
export function ownerOf(functionId: string, location: string): string {
  return `${functionId}\n${codeHome(location)}`;
}

/**
 * The key of a function for containers and memory history: its id and a short hash of its
 * code's home (ids alone could be claimed by any sender).
 */
export function functionKey(functionId: string, location: string): string {
  return `${functionId}:${createHash('sha256').update(codeHome(location)).digest('hex').slice(0, 16)}`;
}
