import { z } from 'zod';
import { codeLocation, functionKey, type CodeSource, type InputSource, type Invocation } from '../core/invocation.js';
import type { Reason } from '../core/reasons.js';
import type { RuntimeTable } from '../core/runtimes.js';
import { DEFAULT_RUNTIMES } from '../core/runtimeConfig.js';
import { verifyMessage, type AuthRefusal, type MessageKey } from './messageAuth.js';

export interface Rejection {
  /** The best identifiers we could read, so the rejection can still be answered. */
  requestId: string;
  functionId: string;
  runtime: string;
  reason: Extract<Reason, 'INVALID_MESSAGE' | 'RUNTIME_NOT_SUPPORTED'>;
  message: string;
  memoryMb: number;
}

/**
 * A message refused without an answer: it failed authentication, so nothing is written
 * under the request id it names (it may be anyone's).
 */
export interface Refusal extends AuthRefusal {
  messageId: string;
}

export type ParseOutcome = { ok: true; invocation: Invocation } | { ok: false; rejection: Rejection };

export interface MessageMeta {
  messageId: string;
  receiptHandle: string;
  receiveCount: number;
  sentAt?: number | undefined;
  receivedAt: number;
}

export interface ParseLimits {
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  defaultMemoryMb: number;
  /** Largest inline source accepted from the legacy format. */
  maxInlineBytes?: number;
  /** Largest inputData, as JSON text (NANOGRID_INPUT_MAX_BYTES). */
  maxInputBytes?: number;
  /** The buckets a message may name for its code (S3_CODE_BUCKET); any when empty or unset. */
  codeBuckets?: readonly string[];
  /** The user-data bucket (S3_USER_DATA_BUCKET): inputs by reference may come from it too. */
  userDataBucket?: string;
  /** The most memory this worker can ever give one container (NANOGRID_MEMORY_BUDGET_MB). */
  memoryBudgetMb?: number;
  /**
   * Where an input by reference may be read, in the user-data bucket: a key prefix in which
   * {functionId} stands for the message's function (NANOGRID_INPUT_PREFIX); null: anywhere.
   */
  inputPrefix?: string | null;
  /** The runtimes this worker runs (NANOGRID_RUNTIMES); unset, the built-ins. */
  runtimes?: RuntimeTable;
}

/** Message authentication (messageAuth.ts): with keys, only messages they verify are run. */
export interface AuthPolicy {
  keys: readonly MessageKey[];
  maxLifetimeMs: number;
  now?: () => number;
}

/** The default NANOGRID_INPUT_PREFIX: each function reads inputs only under its own prefix. */
export const DEFAULT_INPUT_PREFIX = 'inputs/{functionId}/';

/** The default for maxInputBytes: what fits an SQS body (256 KiB) with the rest of the message. */
export const DEFAULT_MAX_INPUT_BYTES = 240 * 1024;

// Ids end up in Redis keys, container labels and log lines: keep them to a safe alphabet.
const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$/, 'must be 1-128 of A-Z a-z 0-9 . _ : @ - and start alphanumeric');

// S3's naming rules: refused here as a bad message, never sent to S3 to fail there.
const bucket = z
  .string()
  .min(3)
  .max(63)
  .regex(/^[a-z0-9][a-z0-9.-]*[a-z0-9]$/, 'a bucket name is lowercase letters, digits, dots and hyphens')
  .refine((b) => !b.includes('..') && !/^\d+\.\d+\.\d+\.\d+$/.test(b), 'not a valid S3 bucket name');
const key = z.string().min(1).max(1024);

const current = z.object({
  requestId: id,
  functionId: id,
  runtime: z.string().min(1).max(32),
  s3Bucket: bucket,
  s3Key: key,
  timeoutMs: z.number().int().positive().optional(),
  memoryMb: z.number().int().positive().optional(),
  inputData: z.unknown().optional(),
  inputS3Key: key.optional(),
  inputS3Bucket: bucket.optional(),
});

const legacy = z.object({
  job_id: id,
  function_id: id,
  code: z.string(),
  runtime: z.string().min(1).max(32).optional(),
  timeoutMs: z.number().int().positive().optional(),
  memoryMb: z.number().int().positive().optional(),
  inputData: z.unknown().optional(),
  input_data: z.unknown().optional(),
});

const MIN_MEMORY_MB = 16;
const MAX_MEMORY_MB = 65_536;

/**
 * Checks an SQS body's signature before anything of it is believed: the message object
 * when it verifies, else why it is refused (a body that is not a JSON object is unsigned).
 */
export function authenticate(body: string, meta: Pick<MessageMeta, 'messageId'>, auth: AuthPolicy): { message: Record<string, unknown> } | { refusal: Refusal } {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    json = undefined;
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { refusal: { reason: 'MESSAGE_UNSIGNED', message: 'the body is not a JSON object, so it carries no signature', messageId: meta.messageId } };
  }
  const obj = json as Record<string, unknown>;
  const refused = verifyMessage(obj, auth.keys, { now: auth.now?.() ?? Date.now(), maxLifetimeMs: auth.maxLifetimeMs });
  return refused ? { refusal: { ...refused, messageId: meta.messageId } } : { message: obj };
}

/** Validates an SQS body (or a body already parsed by authenticate) in either contract format. Never throws. */
export function parseInvocation(body: string | Record<string, unknown>, meta: MessageMeta, limits: ParseLimits): ParseOutcome {
  let json: unknown = body;
  if (typeof body === 'string') {
    try {
      json = JSON.parse(body);
    } catch (err) {
      return reject(meta, {}, 'INVALID_MESSAGE', `body is not JSON: ${(err as Error).message}`, limits);
    }
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return reject(meta, {}, 'INVALID_MESSAGE', 'body is not a JSON object', limits);
  }
  const obj = json as Record<string, unknown>;
  const isLegacy = 'job_id' in obj || ('code' in obj && !('s3Key' in obj));
  const parsed = isLegacy ? legacy.safeParse(obj) : current.safeParse(obj);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join('.') || '(body)'}: ${i.message}`).join('; ');
    return reject(meta, obj, 'INVALID_MESSAGE', `${isLegacy ? 'legacy ' : ''}message invalid: ${detail}`, limits);
  }

  const msg = parsed.data;
  const rawRuntime = msg.runtime ?? 'python';
  const runtimes = limits.runtimes ?? DEFAULT_RUNTIMES;
  const runtime = runtimes.resolve(rawRuntime);
  if (!runtime) {
    return reject(meta, obj, 'RUNTIME_NOT_SUPPORTED', `runtime "${rawRuntime.slice(0, 64)}" is not supported (${runtimes.describe()})`, limits);
  }

  const timeoutMs = msg.timeoutMs ?? limits.defaultTimeoutMs;
  if (timeoutMs > limits.maxTimeoutMs) {
    return reject(meta, obj, 'INVALID_MESSAGE', `timeoutMs ${timeoutMs} exceeds the maximum ${limits.maxTimeoutMs}`, limits);
  }
  const memoryMb = msg.memoryMb ?? limits.defaultMemoryMb;
  if (memoryMb < MIN_MEMORY_MB || memoryMb > MAX_MEMORY_MB) {
    return reject(meta, obj, 'INVALID_MESSAGE', `memoryMb ${memoryMb} is outside ${MIN_MEMORY_MB}-${MAX_MEMORY_MB}`, limits);
  }
  if (limits.memoryBudgetMb !== undefined && memoryMb > limits.memoryBudgetMb) {
    // It would wait forever here, and fail the same way on any worker of this size.
    return reject(meta, obj, 'INVALID_MESSAGE', `memoryMb ${memoryMb} exceeds this worker's memory budget of ${limits.memoryBudgetMb} MB (NANOGRID_MEMORY_BUDGET_MB)`, limits);
  }

  let code: CodeSource;
  let requestId: string;
  let functionId: string;
  let input: InputSource | null = null;
  // inputData may be any JSON value, null included: present is what counts.
  const inlineKey = 'inputData' in obj ? 'inputData' : isLegacy && 'input_data' in obj ? 'input_data' : undefined;
  if (inlineKey) {
    const json = JSON.stringify(obj[inlineKey]);
    const max = limits.maxInputBytes ?? DEFAULT_MAX_INPUT_BYTES;
    const bytes = Buffer.byteLength(json);
    if (bytes > max) {
      return reject(meta, obj, 'INVALID_MESSAGE', `${inlineKey} is ${bytes} bytes, over the NANOGRID_INPUT_MAX_BYTES limit of ${max} (pass larger inputs by reference: inputS3Key)`, limits);
    }
    input = { kind: 'inline', json };
  }
  if ('job_id' in msg) {
    const maxInline = limits.maxInlineBytes ?? 256 * 1024;
    if (Buffer.byteLength(msg.code) > maxInline) {
      return reject(meta, obj, 'INVALID_MESSAGE', `inline code exceeds ${maxInline} bytes`, limits);
    }
    if (runtime !== 'python') {
      return reject(meta, obj, 'RUNTIME_NOT_SUPPORTED', `inline code runs only as python, not "${rawRuntime}"`, limits);
    }
    code = { kind: 'inline', code: msg.code };
    requestId = msg.job_id;
    functionId = msg.function_id;
  } else {
    code = { kind: 's3', bucket: msg.s3Bucket, key: msg.s3Key };
    requestId = msg.requestId;
    functionId = msg.functionId;
    const allowed = limits.codeBuckets ?? [];
    if (allowed.length > 0 && !allowed.includes(msg.s3Bucket)) {
      return reject(meta, obj, 'INVALID_MESSAGE', `s3Bucket "${msg.s3Bucket}" is not a code bucket of this worker (S3_CODE_BUCKET: ${allowed.join(', ')})`, limits);
    }
    if (msg.inputS3Key !== undefined) {
      if (input) return reject(meta, obj, 'INVALID_MESSAGE', 'inputData and inputS3Key are exclusive: send one', limits);
      const bucket = limits.userDataBucket;
      if (!bucket) return reject(meta, obj, 'INVALID_MESSAGE', 'inputS3Key needs a user-data bucket (S3_USER_DATA_BUCKET), where inputs by reference are read', limits);
      if (msg.inputS3Bucket !== undefined && msg.inputS3Bucket !== bucket) {
        return reject(meta, obj, 'INVALID_MESSAGE', `inputS3Bucket "${msg.inputS3Bucket}" is not the user-data bucket (${bucket}), the only one inputs are read from`, limits);
      }
      const refused = inputKeyProblem(msg.inputS3Key, msg.functionId, limits.inputPrefix === undefined ? DEFAULT_INPUT_PREFIX : limits.inputPrefix);
      if (refused) return reject(meta, obj, 'INVALID_MESSAGE', refused, limits);
      input = { kind: 's3', bucket, key: msg.inputS3Key };
    } else if (msg.inputS3Bucket !== undefined) {
      return reject(meta, obj, 'INVALID_MESSAGE', 'inputS3Bucket without inputS3Key', limits);
    }
  }

  const location = codeLocation(code);
  return {
    ok: true,
    invocation: {
      requestId,
      functionId,
      runtime,
      code,
      codeLocation: location,
      functionKey: functionKey(functionId, location),
      input,
      timeoutMs,
      memoryMb,
      receiptHandle: meta.receiptHandle,
      messageId: meta.messageId,
      receiveCount: meta.receiveCount,
      sentAt: meta.sentAt,
      receivedAt: meta.receivedAt,
    },
  };
}

/**
 * Why an input key may not be read for this function, or null: it must lie under the
 * function's own prefix, with no empty, "." or ".." segment (a store or a proxy on the way
 * may resolve them as a path would, out of the prefix).
 */
export function inputKeyProblem(key: string, functionId: string, template: string | null): string | null {
  const segments = key.split('/');
  if (segments.some((s, i) => s === '.' || s === '..' || (s === '' && i < segments.length - 1))) {
    return `inputS3Key "${key.slice(0, 200)}" has an empty, "." or ".." segment`;
  }
  if (template === null) return null;
  const prefix = template.replaceAll('{functionId}', functionId);
  if (!key.startsWith(prefix) || key.length === prefix.length) {
    return `inputS3Key "${key.slice(0, 200)}" is not under the function's own prefix "${prefix}" (NANOGRID_INPUT_PREFIX)`;
  }
  return null;
}

function reject(
  meta: MessageMeta,
  obj: Record<string, unknown>,
  reason: Rejection['reason'],
  message: string,
  limits: ParseLimits,
): ParseOutcome {
  // Answer on the requestId the sender used when it is usable, so its caller is not left
  // waiting; otherwise on the SQS message id, which is at least in the sender's logs.
  const pick = (v: unknown) => (typeof v === 'string' && id.safeParse(v).success ? v : undefined);
  const memory = typeof obj.memoryMb === 'number' && Number.isFinite(obj.memoryMb) ? obj.memoryMb : limits.defaultMemoryMb;
  return {
    ok: false,
    rejection: {
      requestId: pick(obj.requestId) ?? pick(obj.job_id) ?? meta.messageId,
      functionId: pick(obj.functionId) ?? pick(obj.function_id) ?? 'unknown',
      runtime: typeof obj.runtime === 'string' ? obj.runtime.slice(0, 32) : 'unknown',
      reason,
      message,
      memoryMb: memory,
    },
  };
}
