import t from 'tap';
import { parseInvocation } from '../../src/intake/parse.js';

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
