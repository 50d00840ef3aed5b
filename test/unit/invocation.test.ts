import t from 'tap';
import { parseInvocation } from '../../src/intake/parse.js';
import { functionKey } from '../../src/core/invocation.js';

const meta = { messageId: 'msg-1', receiptHandle: 'rh', receiveCount: 2, sentAt: 1000, receivedAt: 2000 };
const limits = { defaultTimeoutMs: 10_000, maxTimeoutMs: 60_000, defaultMemoryMb: 128 };
const good = { requestId: 'req-1', functionId: 'func-01', runtime: 'python', s3Bucket: 'code-bucket', s3Key: 'func-01/v1.zip', timeoutMs: 5000, memoryMb: 256 };
const parse = (body: unknown) => parseInvocation(typeof body === 'string' ? body : JSON.stringify(body), meta, limits);

t.test('the contract message', async (t) => {
  const r = parse(good);
  if (!r.ok) throw new Error(r.rejection.message);
  t.same(r.invocation, {
    requestId: 'req-1',
    functionId: 'func-01',
    runtime: 'python',
    code: { kind: 's3', bucket: 'code-bucket', key: 'func-01/v1.zip' },
    codeLocation: 's3://code-bucket/func-01/v1.zip',
    functionKey: functionKey('func-01', 's3://code-bucket/func-01/v1.zip'),
    input: null,
    timeoutMs: 5000,
    memoryMb: 256,
    receiptHandle: 'rh',
    messageId: 'msg-1',
    receiveCount: 2,
    sentAt: 1000,
    receivedAt: 2000,
  });
});

t.test('defaults: timeoutMs 10000, memoryMb 128; c++ is cpp', async (t) => {
  const { timeoutMs, memoryMb, ...rest } = good;
  const r = parse({ ...rest, runtime: 'c++' });
  t.ok(r.ok);
  if (r.ok) t.same([r.invocation.timeoutMs, r.invocation.memoryMb, r.invocation.runtime], [10_000, 128, 'cpp']);
  t.ok(timeoutMs && memoryMb);
});

t.test('the legacy inline format runs as python', async (t) => {
  const r = parse({ job_id: 'job-9', function_id: 'f9', code: "print('hello')" });
  t.ok(r.ok);
  if (r.ok) {
    t.equal(r.invocation.requestId, 'job-9');
    t.equal(r.invocation.functionId, 'f9');
    t.same(r.invocation.code, { kind: 'inline', code: "print('hello')" });
    t.equal(r.invocation.runtime, 'python');
  }
  const cpp = parse({ job_id: 'job-9', function_id: 'f9', code: 'int main(){}', runtime: 'cpp' });
  t.equal(cpp.ok ? '' : cpp.rejection.reason, 'RUNTIME_NOT_SUPPORTED');
});

t.test('rejections carry a reason and the best id available', async (t) => {
  const cases: Array<[unknown, string, string]> = [
    ['not json', 'INVALID_MESSAGE', 'msg-1'],
    ['[1,2]', 'INVALID_MESSAGE', 'msg-1'],
    [{ ...good, runtime: 'ruby' }, 'RUNTIME_NOT_SUPPORTED', 'req-1'],
    [{ ...good, s3Key: undefined }, 'INVALID_MESSAGE', 'req-1'],
    [{ ...good, timeoutMs: 0 }, 'INVALID_MESSAGE', 'req-1'],
    [{ ...good, timeoutMs: 999_999 }, 'INVALID_MESSAGE', 'req-1'],
    [{ ...good, memoryMb: 4 }, 'INVALID_MESSAGE', 'req-1'],
    [{ ...good, memoryMb: 1.5 }, 'INVALID_MESSAGE', 'req-1'],
    [{ ...good, requestId: '../../etc' }, 'INVALID_MESSAGE', 'msg-1'],
    [{ job_id: 'j', function_id: 'f', code: 'x'.repeat(300 * 1024) }, 'INVALID_MESSAGE', 'j'],
  ];
  for (const [body, reason, id] of cases) {
    const r = parse(body);
    t.notOk(r.ok, JSON.stringify(body).slice(0, 60));
    if (!r.ok) {
      t.equal(r.rejection.reason, reason);
      t.equal(r.rejection.requestId, id);
      t.ok(r.rejection.message.length > 0);
    }
  }
});

t.test('inputData: any JSON value, in both formats, as JSON text', async (t) => {
  for (const value of [{ a: [1, 2, { b: 'c' }] }, null, 'text', 42, [1, 2], false]) {
    const r = parse({ ...good, inputData: value });
    if (!r.ok) throw new Error(r.rejection.message);
    t.same(r.invocation.input, { kind: 'inline', json: JSON.stringify(value) }, JSON.stringify(value));
  }
  const legacy = { job_id: 'job-1', function_id: 'fn-1', code: 'print(1)' };
  for (const field of ['inputData', 'input_data']) {
    const r = parse({ ...legacy, [field]: { n: 1 } });
    if (!r.ok) throw new Error(r.rejection.message);
    t.same(r.invocation.input, { kind: 'inline', json: '{"n":1}' }, `legacy ${field}`);
  }
  const none = parse(good);
  t.equal(none.ok && none.invocation.input, null, 'no input: null, as before');
});

t.test('an input over its limit is refused, naming the limit', async (t) => {
  const r = parseInvocation(JSON.stringify({ ...good, inputData: 'x'.repeat(100) }), meta, { ...limits, maxInputBytes: 50 });
  t.notOk(r.ok);
  if (!r.ok) {
    t.equal(r.rejection.reason, 'INVALID_MESSAGE');
    t.match(r.rejection.message, /inputData is 102 bytes, over the NANOGRID_INPUT_MAX_BYTES limit of 50/);
  }
});

t.test('inputS3Key: only from the user-data bucket, only under the function\'s own prefix', async (t) => {
  const withUserData = { ...limits, userDataBucket: 'user-data' };
  const p = (body: object, l: object = {}) => parseInvocation(JSON.stringify(body), meta, { ...withUserData, ...l });
  const a = p({ ...good, inputS3Key: 'inputs/func-01/1.json' });
  t.same(a.ok && a.invocation.input, { kind: 's3', bucket: 'user-data', key: 'inputs/func-01/1.json' });
  const explicit = p({ ...good, inputS3Key: 'inputs/func-01/1.json', inputS3Bucket: 'user-data' });
  t.ok(explicit.ok, 'naming the user-data bucket is fine');
  const refused = (body: object, why: RegExp, l?: object) => {
    const r = p(body, l);
    t.match(!r.ok && r.rejection.message, why, JSON.stringify(body).slice(0, 120));
  };
  refused({ ...good, inputS3Key: 'inputs/func-01/1.json' }, /needs a user-data bucket/, { userDataBucket: undefined });
  refused({ ...good, inputS3Key: 'inputs/func-01/1.json', inputS3Bucket: 'code-bucket' }, /not the user-data bucket/);
  refused({ ...good, inputS3Key: 'inputs/other/1.json' }, /not under the function's own prefix "inputs\/func-01\/"/);
  refused({ ...good, inputS3Key: 'func-01/req-9/report.json' }, /not under the function's own prefix/);
  refused({ ...good, inputS3Key: 'inputs/func-01' }, /not under the function's own prefix/);
  refused({ ...good, inputS3Key: 'inputs/func-01/' }, /not under the function's own prefix/);
  refused({ ...good, inputS3Key: 'inputs/func-01/../other/1.json' }, /"\.\." segment/);
  refused({ ...good, inputS3Key: 'inputs/func-01/./1.json' }, /segment/);
  refused({ ...good, inputS3Key: 'inputs/func-01//1.json' }, /empty/);
  const anywhere = p({ ...good, inputS3Key: 'shared/1.json' }, { inputPrefix: null });
  t.ok(anywhere.ok, 'NANOGRID_INPUT_PREFIX=any lifts the prefix');
  const custom = p({ ...good, inputS3Key: 'tenants/func-01/in/1.json' }, { inputPrefix: 'tenants/{functionId}/in/' });
  t.ok(custom.ok, 'a prefix of the operator\'s own');
  const e = parse({ ...good, inputS3Key: 'k', inputData: 1 });
  t.match(!e.ok && e.rejection.message, /exclusive/);
  const f = parse({ ...good, inputS3Bucket: 'code-bucket' });
  t.match(!f.ok && f.rejection.message, /without inputS3Key/);
});

t.test('S3_CODE_BUCKET: a message naming another bucket is refused', async (t) => {
  const only = { ...limits, codeBuckets: ['code-a', 'code-b'] };
  t.ok(parseInvocation(JSON.stringify({ ...good, s3Bucket: 'code-b' }), meta, only).ok);
  const r = parseInvocation(JSON.stringify(good), meta, only);
  t.notOk(r.ok);
  if (!r.ok) {
    t.equal(r.rejection.reason, 'INVALID_MESSAGE');
    t.match(r.rejection.message, /not a code bucket of this worker \(S3_CODE_BUCKET: code-a, code-b\)/);
  }
});

t.test('a message asking for more memory than the worker can ever give is refused, naming the limit', async (t) => {
  const r = parseInvocation(JSON.stringify({ ...good, memoryMb: 4096 }), meta, { ...limits, memoryBudgetMb: 2048 });
  t.notOk(r.ok);
  if (!r.ok) t.match(r.rejection.message, /memoryMb 4096 exceeds this worker's memory budget of 2048 MB \(NANOGRID_MEMORY_BUDGET_MB\)/);
  t.ok(parseInvocation(JSON.stringify({ ...good, memoryMb: 2048 }), meta, { ...limits, memoryBudgetMb: 2048 }).ok);
});

t.test('a function is its id and its code\'s home: the folder of its zips, not one version', async (t) => {
  const { codeHome, ownerOf } = await import('../../src/core/invocation.js');
  t.equal(codeHome('s3://code/func-01/v1.zip'), 's3://code/func-01/');
  t.equal(codeHome('s3://code/a/b/c.zip'), 's3://code/a/b/');
  t.equal(codeHome('s3://code/top.zip'), 's3://code/top.zip', 'no folder: the key itself');
  t.equal(codeHome('inline:abc'), 'inline:abc');
  t.equal(functionKey('f', 's3://code/f/v1.zip'), functionKey('f', 's3://code/f/v2.zip'), 'versions of one function share a key');
  t.not(functionKey('f', 's3://code/f/v1.zip'), functionKey('f', 's3://code/attacker/v1.zip'), 'code from elsewhere under the same id does not');
  t.not(functionKey('f', 's3://code/f/v1.zip'), functionKey('f', 's3://other/f/v1.zip'), 'nor another bucket');
  t.not(functionKey('f', 's3://code/f/v1.zip'), functionKey('g', 's3://code/f/v1.zip'), 'nor another id');
  t.equal(ownerOf('f', 's3://code/f/v1.zip'), 'f\ns3://code/f/');
});
