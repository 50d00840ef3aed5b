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
