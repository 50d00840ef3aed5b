import { sleep } from '../src/core/timeout.js';
import { QUICK, type Scenario, type World } from './world.js';

/**
 * What the contract says becomes of a body. `refused`: not a valid invocation: deleted at
 * its first receive, answered FAILED when it names a usable request id, never retried.
 * `codeMissing`: a valid invocation (hostile keys or padding beside the contract's fields
 * do not make it invalid) whose code does not exist: S3_NOT_FOUND is transient on purpose
 * (an upload may not be visible yet), so it is tried up to the redrive policy's count,
 * answered on its last try, and the queue moves it to the DLQ.
 */
export type Expect = 'refused' | 'codeMissing';

export interface HostileBody {
  body: string;
  expect: Expect;
  /** The request id a refusal is answered on, when the body carries a usable one. */
  requestId?: string;
}

/**
 * `n` message bodies of every kind the parser must handle without crashing: not JSON, the
 * wrong JSON, missing or mistyped fields, values out of range, hostile strings, keys that
 * try to pollute prototypes, and large bodies.
 */
export function MALFORMED(n: number, bucket: string): HostileBody[] {
  const base = { functionId: 'junk', runtime: 'python', s3Bucket: bucket, s3Key: 'junk/v1.zip' };
  const refused = (body: string): HostileBody => ({ body, expect: 'refused' });
  const answered = (i: number, fields: object): HostileBody => ({ body: JSON.stringify({ ...base, requestId: `junk-${i}`, ...fields }), expect: 'refused', requestId: `junk-${i}` });
  const makers: ((i: number) => HostileBody)[] = [
    () => refused(' '),
    () => refused('not json at all'),
    () => refused('{"unterminated": '),
    () => refused('null'),
    () => refused('42'),
    () => refused('[1,2,3]'),
    () => refused('"a string"'),
    (i) => answered(i, { runtime: 'cobol' }),
    (i) => answered(i, { timeoutMs: -5 }),
    (i) => answered(i, { memoryMb: 1e12 }),
    (i) => answered(i, { s3Bucket: 'Invalid_Bucket!!' }),
    (i) => answered(i, { s3Key: '' }),
    // Nothing but a request id: refused, and answered on it.
    (i) => ({ body: JSON.stringify({ requestId: `junk-${i}` }), expect: 'refused', requestId: `junk-${i}` }),
    (i) => refused(JSON.stringify({ ...base, requestId: { nested: i } })),
    (i) => answered(i, { functionId: '../../etc/passwd' }),
    (i) => answered(i, { functionId: 'x'.repeat(10_000) }),
    (i) => refused(JSON.stringify({ ...base, requestId: `junk-${i}\u0000\u202e\ud83d\ude00` })),
    // Written as text: an object literal's __proto__ would set its prototype, not a key.
    (i) => ({
      body: `{"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}},${JSON.stringify({ ...base, requestId: `junk-${i}` }).slice(1)}`,
      expect: 'codeMissing',
      requestId: `junk-${i}`,
    }),
    (i) => ({ body: JSON.stringify({ ...base, requestId: `junk-${i}`, padding: 'p'.repeat(200_000) }), expect: 'codeMissing', requestId: `junk-${i}` }),
    () => refused('{"a":'.repeat(5000) + '1' + '}'.repeat(5000)),
    () => refused('\ufeff{"requestId": "bom"}'),
  ];
  return Array.from({ length: n }, (_, i) => makers[i % makers.length]!(i));
}

/** Sends raw bodies in batches of up to 10, under SQS's 256 KiB per batch. */
async function sendAll(w: World, bodies: readonly HostileBody[]): Promise<void> {
  let batch: string[] = [];
  let bytes = 0;
  for (const { body } of bodies) {
    const size = Buffer.byteLength(body);
    if (batch.length === 10 || bytes + size > 200_000) {
      await w.client.sendRawBatch(batch);
      batch = [];
      bytes = 0;
    }
    batch.push(body);
    bytes += size;
  }
  await w.client.sendRawBatch(batch);
}

export const MALFORMED_SCENARIO: Scenario = {
  name: `${QUICK ? 300 : 2000} malformed bodies`,
  async run(w) {
    const a = await w.startAgent('chaos-malformed');
    const bodies = MALFORMED(QUICK ? 300 : 2000, w.stack.bucket);
    const junk = sendAll(w, bodies);
    await w.stream('echo', QUICK ? 20 : 60, 100);
    await junk;
    const codeMissing = bodies.filter((b) => b.expect === 'codeMissing');
    // The queue drains: every refused body at once, every codeless one after its tries
    // (1 s and 2 s apart), when its fourth receive moves it to the DLQ (a message waiting
    // out its retry delay counts as in flight). The DLQ's count is the row's to check.
    const deadline = Date.now() + 90_000;
    const depthNow = async () => {
      const d = await w.client.queueDepth();
      return d.visible + d.inflight;
    };
    let left = await depthNow();
    while (left > 0 && Date.now() < deadline) {
      await sleep(500);
      left = await depthNow();
    }
    const row = await w.row(this.name, w.ids, { timeoutMs: 120_000, deadLettered: codeMissing.length });
    const problems: string[] = [];
    if (left > 0) problems.push(`${left} messages left in the queue`);
    if (!a.running) problems.push('the agent died');
    const tries = w.tries();
    let answered = 0;
    const wrong: string[] = [];
    for (const b of bodies) {
      if (!b.requestId) continue;
      const r = await w.client.readStored(b.requestId).catch(() => undefined);
      const n = tries.get(b.requestId) ?? 0;
      if (b.expect === 'refused') {
        if (r?.status === 'FAILED' && r.reason !== undefined && n === 1) answered++;
        else wrong.push(`${b.requestId}: ${r?.status ?? 'no result'}/${r?.reason ?? '-'} after ${n} tries (refused at once expected)`);
      } else if (r?.status !== 'FAILED' || r.reason !== 'S3_NOT_FOUND' || n !== 3) {
        wrong.push(`${b.requestId}: ${r?.status ?? 'no result'}/${r?.reason ?? '-'} after ${n} tries (S3_NOT_FOUND on the 3rd expected)`);
      }
    }
    if (wrong.length) problems.push(`${wrong.length} handled otherwise (${wrong.slice(0, 2).join('; ')})`);
    const refusedAnswered = bodies.filter((b) => b.expect === 'refused' && b.requestId).length;
    return {
      ...row,
      sent: row.sent + bodies.length,
      results: row.results + bodies.length - left,
      missing: row.missing + left,
      verdict: problems.length || row.verdict === 'FAIL' ? 'FAIL' : 'PASS',
      note: [
        row.note,
        ...problems,
        `every malformed body deleted at its first receive (${answered} of ${refusedAnswered} with a usable request id answered FAILED, the rest had none); ${codeMissing.length} valid ones naming no code (hostile keys, 200 KB of padding) tried 3 times, answered S3_NOT_FOUND and dead-lettered; the agent kept running`,
      ]
        .filter(Boolean)
        .join('; '),
    };
  },
};
