import { createHmac, randomBytes } from 'node:crypto';
import t from 'tap';
import { canonicalForm, parseMessageKeys, signMessage, verifyMessage } from '../../src/intake/messageAuth.js';
import { authenticate } from '../../src/intake/parse.js';

const key = { id: 'k1', secret: randomBytes(32) };
const other = { id: 'k2', secret: randomBytes(32) };
const now = 1_800_000_000_000;
const msg = { requestId: 'r-1', functionId: 'f', runtime: 'python', s3Bucket: 'code', s3Key: 'f/v1.zip', timeoutMs: 5000, memoryMb: 128, inputData: { b: [1, 2], a: 'é' } };
const opts = { now, maxLifetimeMs: 3_600_000 };

t.test('a signed message verifies, with any of the keys, whatever its key order', async (t) => {
  const signed = signMessage(msg, key, { now, lifetimeMs: 60_000 });
  t.equal(verifyMessage(signed, [other, key], opts), null);
  const reordered = Object.fromEntries(Object.entries(signed).reverse());
  t.equal(verifyMessage(reordered, [key], opts), null, 'JCS sorts the keys');
  t.equal(verifyMessage(JSON.parse(JSON.stringify(signed)) as Record<string, unknown>, [key], opts), null, 'through JSON and back');
});

t.test('the canonical form is the documented one: a context line and RFC 8785 JSON without the signature', async (t) => {
  const signed = signMessage({ b: 1, a: [true, null, 1.5e21, 'x'] }, key, { now: 1, lifetimeMs: 2 });
  t.equal(canonicalForm(signed), 'NANOGRID-MESSAGE-V1\n{"a":[true,null,1.5e+21,"x"],"b":1,"expiresAt":3,"issuedAt":1}');
  // What a Controller in any language computes.
  const hmac = createHmac('sha256', key.secret).update(canonicalForm(signed)).digest('base64url');
  t.equal(signed.signature, `v1:k1:${hmac}`);
});

t.test('unsigned, altered, unknown key, expired, future, too long-lived: each refused with its reason', async (t) => {
  const signed = signMessage(msg, key, { now, lifetimeMs: 60_000 });
  const why = (m: Record<string, unknown>, o = opts) => verifyMessage(m, [key], o)?.reason ?? null;
  t.equal(why(msg), 'MESSAGE_UNSIGNED');
  t.equal(why({ ...signed, functionId: 'victim' }), 'MESSAGE_FORGED', 'a field changed');
  t.equal(why({ ...signed, extra: 1 }), 'MESSAGE_FORGED', 'a field added');
  t.equal(why({ ...signed, inputData: { a: 'é', b: [1, 2, 3] } }), 'MESSAGE_FORGED', 'the input changed');
  t.equal(why({ ...signed, expiresAt: (signed.expiresAt as number) + 1 }), 'MESSAGE_FORGED', 'the expiry stretched');
  t.equal(why({ ...signed, signature: String(signed.signature).replace('k1', 'k9') }), 'MESSAGE_FORGED', 'an unknown key');
  t.equal(why({ ...signed, signature: 'v2:k1:abc' }), 'MESSAGE_FORGED', 'another scheme');
  t.equal(why({ ...signed, signature: 42 }), 'MESSAGE_FORGED');
  t.equal(why(signMessage(msg, other, { now, lifetimeMs: 60_000 })), 'MESSAGE_FORGED', 'signed with a key this worker does not have');
  t.equal(why(signed, { ...opts, now: now + 60_000 + 61_000 }), 'MESSAGE_EXPIRED', 'past its expiry and the skew');
  t.equal(why(signed, { ...opts, now: now + 100_000 }), null, 'within the skew');
  t.equal(why(signMessage(msg, key, { now: now + 120_000, lifetimeMs: 60_000 })), 'MESSAGE_EXPIRED', 'issued in the future');
  t.equal(why(signMessage(msg, key, { now, lifetimeMs: 7_200_000 })), 'MESSAGE_EXPIRED', 'valid for longer than allowed');
  const { issuedAt: _i, ...noTimes } = msg as Record<string, unknown>;
  const untimed = { ...noTimes, signature: `v1:k1:${createHmac('sha256', key.secret).update(canonicalForm(noTimes)).digest('base64url')}` };
  t.equal(why(untimed), 'MESSAGE_FORGED', 'a signature without times is not enough');
  t.equal(why({ ...msg, bad: '\ud800', signature: 'v1:k1:x' }), 'MESSAGE_FORGED', 'a lone surrogate has no canonical form');
});

t.test('keys: id:base64, 32 bytes at least, ids unique', async (t) => {
  const b64 = randomBytes(32).toString('base64');
  const ok = parseMessageKeys(`new:${b64}, old:${randomBytes(40).toString('base64url')}`);
  t.ok('keys' in ok && ok.keys.map((k) => k.id).join() === 'new,old');
  t.match((parseMessageKeys(`a:${randomBytes(16).toString('base64')}`) as { error: string }).error, /at least 32/);
  t.match((parseMessageKeys(`a:${b64},a:${b64}`) as { error: string }).error, /twice/);
  t.match((parseMessageKeys('nocolon') as { error: string }).error, /keyId:base64secret/);
  t.match((parseMessageKeys(' , ') as { error: string }).error, /no key/);
});

t.test('authenticate: a body that is not a JSON object carries no signature', async (t) => {
  const auth = { keys: [key], maxLifetimeMs: 3_600_000, now: () => now };
  const meta = { messageId: 'm-1' };
  t.match(authenticate('not json', meta, auth), { refusal: { reason: 'MESSAGE_UNSIGNED', messageId: 'm-1' } });
  t.match(authenticate('[1]', meta, auth), { refusal: { reason: 'MESSAGE_UNSIGNED' } });
  const signed = signMessage({ job_id: 'j', function_id: 'f', code: 'print(1)' }, key, { now, lifetimeMs: 1000 });
  t.match(authenticate(JSON.stringify(signed), meta, auth), { message: { job_id: 'j' } }, 'the legacy format, signed');
  t.match(authenticate(JSON.stringify({ job_id: 'j', function_id: 'f', code: 'print(1)' }), meta, auth), { refusal: { reason: 'MESSAGE_UNSIGNED' } }, 'and unsigned');
});
