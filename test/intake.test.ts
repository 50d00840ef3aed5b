import { SQSClient } from '@aws-sdk/client-sqs';
import t from 'tap';
import type { Result } from '../src/core/result.js';
import { waitUntil } from '../src/core/timeout.js';
import { MessageLeases } from '../src/intake/messageLeases.js';
import { Supervisor } from '../src/intake/supervisor.js';
import { LOCAL_CREDENTIALS } from '../src/local/agentConfig.js';
import { LocalClient } from '../src/local/client.js';
import { startLocalStack } from '../src/local/stack.js';
import { silentLogger } from '../src/core/log.js';

// The supervisor against fauxqs over HTTP, with the run path stubbed: what intake asks of
// SQS when there are many free slots and many results at once.
t.test('receives as many as there are free slots, 10 per call side by side; deletes in batches', async (t) => {
  const stack = await startLocalStack();
  t.teardown(() => stack.stop());
  const client = new LocalClient({ ...stack });
  await client.connect();
  t.teardown(() => client.close());
  const messages = Array.from({ length: 25 }, (_, i) => ({ requestId: `r-${i}`, functionId: 'f', runtime: 'python', s3Bucket: stack.bucket, s3Key: 'f/v1.zip' }));
  await client.sendBatch(messages);

  const requests: Record<string, number> = {};
  const sqs = new SQSClient({ region: stack.region, endpoint: stack.endpoint, credentials: LOCAL_CREDENTIALS });
  t.teardown(() => sqs.destroy());
  const leases = new MessageLeases({
    sqs,
    queueUrl: stack.queueUrl,
    visibilityTimeoutS: 60,
    receiveWaitS: 1,
    timeoutMs: 5000,
    log: silentLogger,
    events: { emit: (e, op) => (e === 'sqsRequest' && (requests[op] = (requests[op] ?? 0) + 1), true) },
  });
  let release: () => void = () => undefined;
  const gate = new Promise<void>((r) => (release = r));
  const answered: Result[] = [];
  const sup = new Supervisor({
    leases,
    capacity: () => 25,
    limits: { defaultTimeoutMs: 1000, maxTimeoutMs: 10_000, defaultMemoryMb: 128 },
    visibilityTimeoutS: 60,
    maxReceiveCount: 3,
    log: silentLogger,
    workerId: 'w',
    results: { deliver: async (r) => void answered.push(r), find: async () => undefined, claim: async () => 'claimed' as const, markState: async () => undefined },
    runner: {
      run: async (inv, _log, hooks) => {
        hooks.onRunStart();
        await gate;
        return { requestId: inv.requestId, success: true, status: 'SUCCESS', reason: 'OK' } as Result;
      },
    },
  });
  await sup.start();
  t.teardown(() => sup.stop(2000));
  await waitUntil('all 25 held', () => sup.status().inflight === 25, { timeoutMs: 10_000 });
  t.ok(requests.ReceiveMessage! <= 4, `25 messages in ${requests.ReceiveMessage} receive calls (10 per call, side by side)`);
  t.equal(sup.status().freeSlots, 0, 'never more held than free slots');

  release();
  await waitUntil('all answered and deleted', () => sup.status().totals.deleted === 25, { timeoutMs: 10_000 });
  t.equal(answered.length, 25);
  t.equal((requests.DeleteMessageBatch ?? 0) > 0, true, 'deletes went out in batches');
  t.ok((requests.DeleteMessageBatch ?? 0) + (requests.DeleteMessage ?? 0) <= 6, `25 deletes in ${requests.DeleteMessageBatch} batch and ${requests.DeleteMessage ?? 0} single calls`);
  t.same(await client.queueDepth(), { visible: 0, inflight: 0 }, 'every message is gone from the queue');
});

t.test('a poll that brings a message is handled at once, not after a poll beside it waits out its long poll', async (t) => {
  const stack = await startLocalStack();
  t.teardown(() => stack.stop());
  const client = new LocalClient({ ...stack });
  await client.connect();
  t.teardown(() => client.close());
  const sqs = new SQSClient({ region: stack.region, endpoint: stack.endpoint, credentials: LOCAL_CREDENTIALS });
  t.teardown(() => sqs.destroy());
  const polls: number[] = [];
  const leases = new MessageLeases({
    sqs,
    queueUrl: stack.queueUrl,
    visibilityTimeoutS: 60,
    receiveWaitS: 6,
    timeoutMs: 5000,
    log: silentLogger,
    events: { emit: (e, op) => (e === 'sqsRequest' && op === 'ReceiveMessage' && polls.push(Date.now()), true) },
  });
  let startedAt: number | undefined;
  const sup = new Supervisor({
    leases,
    // 15 slots: two polls side by side (10 and 5).
    capacity: () => 15,
    limits: { defaultTimeoutMs: 1000, maxTimeoutMs: 10_000, defaultMemoryMb: 128 },
    visibilityTimeoutS: 60,
    maxReceiveCount: 3,
    log: silentLogger,
    workerId: 'w',
    results: { deliver: async () => undefined, find: async () => undefined, claim: async () => 'claimed' as const, markState: async () => undefined },
    runner: {
      run: async (inv, _log, hooks) => {
        startedAt ??= Date.now();
        hooks.onRunStart();
        return { requestId: inv.requestId, success: true, status: 'SUCCESS', reason: 'OK' } as Result;
      },
    },
  });
  await sup.start();
  t.teardown(() => sup.stop(8000));
  await waitUntil('two polls out', () => polls.length >= 2, { timeoutMs: 5000 });
  const sentAt = Date.now();
  await client.send({ requestId: 'one', functionId: 'f', runtime: 'python', s3Bucket: stack.bucket, s3Key: 'f/v1.zip' });
  await waitUntil('the run started', () => startedAt, { timeoutMs: 10_000 });
  t.ok(startedAt! - sentAt < 3000, `the run started ${startedAt! - sentAt} ms after the send (the other poll waits 6 s)`);
});
