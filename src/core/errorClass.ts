/**
 * The one table of which errors from outside the agent (AWS, Docker, Redis, the network)
 * are worth trying again. Transient: the same call may well succeed later (the service or
 * the path to it is down, slow or throttling). Permanent: the same call fails the same way
 * (the request itself is wrong), so trying again only delays the answer.
 */
export type ErrorKind = 'transient' | 'permanent';

export interface ErrorClass {
  kind: ErrorKind;
  /** Which table row decided, for logs and tests. */
  rule: string;
  /** The error says the engine's socket cannot be reached (not that a call was refused). */
  unreachable: boolean;
}

/** Socket-level failures: the peer is gone, restarting or unreachable. */
const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EHOSTDOWN',
  'ERR_SOCKET_CLOSED',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** AWS error names that mean "later": throttling, the service's own trouble, clock and credentials of this worker. */
const AWS_TRANSIENT_NAMES = new Set([
  'ThrottlingException',
  'Throttling',
  'ThrottledException',
  'RequestThrottledException',
  'RequestThrottled',
  'TooManyRequestsException',
  'SlowDown',
  'RequestLimitExceeded',
  'ProvisionedThroughputExceededException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalError',
  'InternalFailure',
  'InternalServerError',
  'RequestTimeout',
  'RequestTimeoutException',
  'RequestTimeTooSkewed',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidAccessKeyId',
  'SignatureDoesNotMatch',
  'CredentialsProviderError',
  'TimeoutError',
  'AbortError',
  'KMS.ThrottlingException',
]);

/** Redis replies that a healthy server gives while it cannot serve yet. */
const REDIS_TRANSIENT_REPLIES = /^(LOADING|BUSY|TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|NOREPLICAS|OOM)\b/;

const transient = (rule: string, unreachable = false): ErrorClass => ({ kind: 'transient', rule, unreachable });
const permanent = (rule: string): ErrorClass => ({ kind: 'permanent', rule, unreachable: false });

interface ErrorShape {
  name?: string;
  message?: string;
  code?: string | number;
  syscall?: string;
  statusCode?: number;
  $fault?: 'client' | 'server';
  $metadata?: { httpStatusCode?: number; attempts?: number };
  $retryable?: unknown;
  cause?: unknown;
}

/**
 * Classifies an error from any of the agent's outside calls. Unknown errors count as
 * transient: an error the table does not know is more likely the world than the request,
 * and the queue's redrive policy bounds how often it is tried.
 */
export function classifyError(err: unknown): ErrorClass {
  if (typeof err !== 'object' || err === null) return transient('not an error object');
  const e = err as ErrorShape;
  const name = e.name ?? '';
  const code = typeof e.code === 'string' ? e.code : undefined;

  // Our own bounds (withTimeout) and aborted requests: the far side was too slow.
  if (name === 'TimeoutError' || name === 'AbortError') return transient('timed out or aborted');
  if (code && NETWORK_CODES.has(code)) return transient(`network ${code}`, true);
  // A socket file that is not there (dockerd stopped): unlike a missing file elsewhere.
  if (code === 'ENOENT' && e.syscall === 'connect') return transient('network socket missing', true);
  if (/socket hang up|connection is closed|connect ENOENT|Stream isn't writeable|Connection timeout/i.test(e.message ?? '')) {
    return transient('connection lost', true);
  }

  // AWS SDK v3: an error it raised after a response carries the HTTP status; one it raised
  // before sending (endpoint rules, a bucket name it refuses, a missing input) carries none.
  if ('$metadata' in e || '$fault' in e || name === 'EndpointError' || name === 'InvalidBucketName' || /No value provided for input HTTP label/.test(e.message ?? '')) {
    if (AWS_TRANSIENT_NAMES.has(name) || e.$retryable) return transient(`aws ${name}`);
    const status = e.$metadata?.httpStatusCode;
    if (status === undefined) return permanent(`aws client-side ${name || 'validation'}`);
    if (status === 429 || status >= 500 || e.$fault === 'server') return transient(`aws http ${status}`);
    return permanent(`aws http ${status} ${name}`);
  }
  if (name === 'CredentialsProviderError') return transient('aws credentials');

  // Redis (ioredis): a reply error is the server refusing this command.
  if (name === 'ReplyError') return REDIS_TRANSIENT_REPLIES.test(e.message ?? '') ? transient('redis busy reply') : permanent('redis reply');
  if (name === 'MaxRetriesPerRequestError') return transient('redis retries exhausted', true);

  // Docker (dockerode): the engine's HTTP status.
  if (typeof e.statusCode === 'number') {
    const s = e.statusCode;
    if (s === 404) return permanent('docker 404 not found');
    if (s === 400 || s === 403 || s === 406) return permanent(`docker ${s}`);
    // 409 (conflict: paused, in removal) and 5xx: the engine's state of the moment.
    return transient(`docker ${s}`);
  }

  if (e.cause !== undefined && e.cause !== err) return classifyError(e.cause);
  return transient('unknown');
}

export const isTransient = (err: unknown): boolean => classifyError(err).kind === 'transient';
