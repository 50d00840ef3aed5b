import canonicalize from 'canonicalize';
import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Optional message authentication: the Controller signs each invocation message, and a
 * worker with keys configured (NANOGRID_MESSAGE_KEYS) runs only what verifies.
 *
 * A signed message carries three more fields, in either message format:
 *   issuedAt   epoch milliseconds when the Controller signed it
 *   expiresAt  epoch milliseconds after which it is refused (at most
 *              NANOGRID_MESSAGE_MAX_LIFETIME_S after issuedAt)
 *   signature  "v1:<keyId>:<base64url of HMAC-SHA256(key, canonical form)>"
 * The canonical form is the line "NANOGRID-MESSAGE-V1\n" followed by the RFC 8785 (JCS)
 * serialization of the whole message object without its `signature` field: every field
 * the worker acts on is covered (and any other a newer Controller adds), with a byte-exact
 * form that any language's JCS library gives. Numbers are IEEE doubles, as JCS defines.
 * Several keys may be configured at once, each with an id, so that keys rotate without a
 * pause: sign with the new one once every worker has it, retire the old one after.
 */
export const SIGNATURE_PREFIX = 'v1';
const CONTEXT = 'NANOGRID-MESSAGE-V1\n';
/** Clocks of the Controller and of the worker may differ by this much. */
export const CLOCK_SKEW_MS = 60_000;

export interface MessageKey {
  id: string;
  secret: Buffer;
}

export type AuthFailure = 'MESSAGE_UNSIGNED' | 'MESSAGE_FORGED' | 'MESSAGE_EXPIRED';

export interface AuthRefusal {
  reason: AuthFailure;
  message: string;
}

/** Parses "id:base64secret,id2:base64secret"; null and a reason when it is not that. */
export function parseMessageKeys(raw: string): { keys: MessageKey[] } | { error: string } {
  const keys: MessageKey[] = [];
  for (const part of raw.split(',').map((p) => p.trim()).filter(Boolean)) {
    const m = /^([A-Za-z0-9._-]{1,64}):([A-Za-z0-9+/_-]+={0,2})$/.exec(part);
    if (!m) return { error: `"${part.slice(0, 20)}..." is not keyId:base64secret` };
    const secret = Buffer.from(m[2]!, m[2]!.includes('-') || m[2]!.includes('_') ? 'base64url' : 'base64');
    if (secret.length < 32) return { error: `the key ${m[1]} has ${secret.length} bytes; at least 32 are needed` };
    if (keys.some((k) => k.id === m[1])) return { error: `the key id ${m[1]} appears twice` };
    keys.push({ id: m[1]!, secret });
  }
  if (keys.length === 0) return { error: 'no key given' };
  return { keys };
}

/** The bytes a signature covers: the context line and the JCS form of the message without its signature. */
export function canonicalForm(message: Record<string, unknown>): string {
  const { signature: _signature, ...rest } = message;
  const jcs = canonicalize(rest);
  if (jcs === undefined) throw new Error('the message has no JSON form');
  return CONTEXT + jcs;
}

function mac(secret: Buffer, message: Record<string, unknown>): Buffer {
  return createHmac('sha256', secret).update(canonicalForm(message), 'utf8').digest();
}

/** Signs a message (the Controller's side; the CLI and the tests use it too). */
export function signMessage(message: Record<string, unknown>, key: MessageKey, opts: { now?: number; lifetimeMs: number }): Record<string, unknown> {
  const issuedAt = opts.now ?? Date.now();
  const unsigned = { ...message, issuedAt, expiresAt: issuedAt + opts.lifetimeMs };
  delete (unsigned as { signature?: unknown }).signature;
  return { ...unsigned, signature: `${SIGNATURE_PREFIX}:${key.id}:${mac(key.secret, unsigned).toString('base64url')}` };
}

/**
 * Why a message must not run, or null when it verifies: signed by a known key over its
 * canonical form, issued no later than now (give or take the skew), not expired, and not
 * valid for longer than `maxLifetimeMs`.
 */
export function verifyMessage(message: Record<string, unknown>, keys: readonly MessageKey[], opts: { now: number; maxLifetimeMs: number }): AuthRefusal | null {
  const sig = message.signature;
  if (sig === undefined) return { reason: 'MESSAGE_UNSIGNED', message: 'the message is not signed, and this worker runs only signed messages (NANOGRID_MESSAGE_KEYS)' };
  const parts = typeof sig === 'string' ? sig.split(':') : [];
  if (parts.length !== 3 || parts[0] !== SIGNATURE_PREFIX) return { reason: 'MESSAGE_FORGED', message: `the signature is not of the form ${SIGNATURE_PREFIX}:keyId:hmac` };
  const key = keys.find((k) => k.id === parts[1]);
  if (!key) return { reason: 'MESSAGE_FORGED', message: `the message is signed with a key this worker does not have (${String(parts[1]).slice(0, 64)})` };
  let expected: Buffer;
  try {
    expected = mac(key.secret, message);
  } catch (err) {
    return { reason: 'MESSAGE_FORGED', message: `the message has no canonical form: ${(err as Error).message}` };
  }
  const given = Buffer.from(parts[2]!, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { reason: 'MESSAGE_FORGED', message: `the signature does not match the message (key ${key.id})` };
  // Only a signed message's times are worth reading: they are covered by the signature.
  const { issuedAt, expiresAt } = message;
  if (typeof issuedAt !== 'number' || typeof expiresAt !== 'number' || !Number.isFinite(issuedAt) || !Number.isFinite(expiresAt)) {
    return { reason: 'MESSAGE_FORGED', message: 'a signed message needs issuedAt and expiresAt (epoch milliseconds)' };
  }
  if (issuedAt > opts.now + CLOCK_SKEW_MS) return { reason: 'MESSAGE_EXPIRED', message: `the message was issued ${Math.round((issuedAt - opts.now) / 1000)} s in the future` };
  if (expiresAt - issuedAt > opts.maxLifetimeMs) return { reason: 'MESSAGE_EXPIRED', message: `the message is valid for ${Math.round((expiresAt - issuedAt) / 1000)} s, longer than NANOGRID_MESSAGE_MAX_LIFETIME_S (${opts.maxLifetimeMs / 1000})` };
  if (opts.now > expiresAt + CLOCK_SKEW_MS) return { reason: 'MESSAGE_EXPIRED', message: `the message expired ${Math.round((opts.now - expiresAt) / 1000)} s ago` };
  return null;
}
