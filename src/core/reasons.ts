/**
 * Every failure carries one of these, in the result and in the log line. They are the
 * stable vocabulary that operators alert on and the Controller may branch on.
 */
export const REASONS = {
  OK: 'the function exited 0',
  NON_ZERO_EXIT: 'the function exited with a non-zero code',
  TIMEOUT: 'the function ran past timeoutMs and was killed',
  OOM: 'the function exceeded memoryMb and was killed by the kernel',
  DISK_FULL: 'the function filled its writable space (workspace, /tmp and /dev/shm together) and failed on ENOSPC',
  HANDLER_ERROR: 'handler mode: the handler raised an exception (its type and message in the result\'s handlerError, its traceback on stderr)',
  HANDLER_INIT_FAILED: 'handler mode: the handler could not be loaded (its module failed to import, or the process ended before it was ready); the next invocation tries again',
  MANIFEST_INVALID: 'the code\'s nanogrid.json is not a valid manifest, or declares a handler for a runtime without a handler mode',
  CLEANUP_FAILED: 'the run could not be verified clean (a process of it survived the kill, or the runner stopped answering): its container was frozen and destroyed, and nothing in its workspace (outputs) was read',
  INVALID_MESSAGE: 'the SQS message is not a valid invocation',
  MESSAGE_UNSIGNED: 'the message is not signed and this worker runs only signed messages (NANOGRID_MESSAGE_KEYS): deleted, nothing written under its request id',
  MESSAGE_FORGED: 'the message signature does not verify (unknown key, altered message): deleted, nothing written under its request id',
  MESSAGE_EXPIRED: 'the signed message is past its expiresAt, issued in the future, or valid for too long: deleted, nothing written under its request id',
  FOREIGN_REQUEST_ID: 'the request id belongs to another function (id and code location): the message is deleted and nothing of it is stored or published',
  RUNTIME_NOT_SUPPORTED: 'the runtime is not one this agent runs',
  S3_NOT_FOUND: 'the code object does not exist in S3',
  S3_UNAVAILABLE: 'S3 could not be reached, or failed in a way worth trying again',
  S3_REQUEST_INVALID: 'S3 (or the SDK before sending) refused the request as one that would fail again',
  CODE_TOO_LARGE: 'the code archive exceeds the configured download size',
  ZIP_INVALID: 'the code archive is not a readable zip',
  ZIP_SLIP: 'a zip entry escapes the workspace (..)',
  ZIP_ABSOLUTE_PATH: 'a zip entry has an absolute path',
  ZIP_LINK: 'a zip entry is a symbolic link',
  ZIP_TOO_MANY_ENTRIES: 'the zip has more entries than allowed',
  ZIP_TOO_LARGE: 'the zip expands to more bytes than allowed',
  DOCKER_UNAVAILABLE: 'the Docker engine could not run the invocation',
  ENGINE_OUTAGE: 'the Docker engine is unreachable: the message went back to the queue at once, and this worker receives nothing until the engine answers',
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
