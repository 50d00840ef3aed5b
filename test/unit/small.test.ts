import t from 'tap';
import { failedResult } from '../../src/core/result.js';
import { TimeoutError, waitUntil, withTimeout } from '../../src/core/timeout.js';
import { Mailbox } from '../../src/pool/mailbox.js';
import { classify } from '../../src/run/runOnLease.js';

t.test('classify maps a run onto status and reason', async (t) => {
  t.same(classify({ timedOut: true, exitCode: -1 }, false), { status: 'TIMEOUT', reason: 'TIMEOUT' });
  t.same(classify({ timedOut: false, exitCode: 137 }, true), { status: 'OOM', reason: 'OOM' });
  t.same(classify({ timedOut: false, exitCode: 0 }, false), { status: 'SUCCESS', reason: 'OK' });
  t.same(classify({ timedOut: false, exitCode: 2 }, false), { status: 'FAILED', reason: 'NON_ZERO_EXIT' });
  t.same(classify({ timedOut: false, exitCode: 1 }, false, true), { status: 'FAILED', reason: 'DISK_FULL' }, 'a failure with the writable space full');
  t.same(classify({ timedOut: false, exitCode: 0 }, false, true), { status: 'SUCCESS', reason: 'OK' }, 'a full disk that the function survived is no failure');
  t.same(classify({ timedOut: true, exitCode: -1 }, false, true), { status: 'TIMEOUT', reason: 'TIMEOUT' });
});

t.test('withTimeout bounds a call', async (t) => {
  await t.rejects(withTimeout('never', 20, new Promise(() => undefined)), TimeoutError);
  t.equal(await withTimeout('quick', 1000, Promise.resolve(7)), 7);
});

t.test('failedResult follows the original contract: exitCode -1, error in stderr', async (t) => {
  const r = failedResult({ requestId: 'r', functionId: 'f', runtime: 'python', reason: 'S3_NOT_FOUND', message: 'gone', memoryMb: 128, attempt: 3, workerId: 'w', totalMs: 5 });
  t.equal(r.exitCode, -1);
  t.equal(r.stderr, '[S3_NOT_FOUND] gone');
  t.equal(r.status, 'FAILED');
  t.equal(r.success, false);
  t.equal(r.startKind, null);
});

t.test('waitUntil returns the first value that is not undefined or false, and bounds the wait', async (t) => {
  let n = 0;
  t.equal(await waitUntil('third poll', () => (++n >= 3 ? n : undefined), { intervalMs: 1 }), 3);
  t.equal(await waitUntil('truthy', async () => 'yes'), 'yes');
  await t.rejects(waitUntil('never', () => false, { timeoutMs: 30, intervalMs: 5 }), TimeoutError);
});

t.test('the mailbox runs steps one at a time, in order, and refuses an async step', async (t) => {
  const box = new Mailbox();
  const order: number[] = [];
  const results = await Promise.all([1, 2, 3].map((n) => box.post(() => (order.push(n), n * 10))));
  t.same(order, [1, 2, 3]);
  t.same(results, [10, 20, 30]);
  await t.rejects(box.post(async () => 1), /must be synchronous/);
  t.equal(await box.post(() => 'still serving'), 'still serving');
});
