import type { CloudWatchClient, PutMetricDataCommand } from '@aws-sdk/client-cloudwatch';
import t from 'tap';
import { silentLogger } from '../../src/core/log.js';
import { Estimates, ESTIMATED_FUNCTIONS } from '../../src/pool/placement.js';
import { CloudWatchSink } from '../../src/sinks/cloudwatchSink.js';
import { LOCAL_HISTORIES, MemoryHistory } from '../../src/sinks/memoryHistory.js';

function capture() {
  const sent: PutMetricDataCommand['input'][] = [];
  const client = { send: async (cmd: PutMetricDataCommand) => void sent.push(cmd.input), destroy: () => undefined } as unknown as CloudWatchClient;
  return { client, sent };
}

t.test('a flush holds at most the series cap of functions; never-ran failures have no function series', async (t) => {
  const { client, sent } = capture();
  const cw = new CloudWatchSink(client, { namespace: 'N', flushMs: 3_600_000, timeoutMs: 1000, log: silentLogger, maxSeries: 3 });
  for (let i = 0; i < 300; i++) cw.recordNeverRan(i % 2 ? 'INVALID_MESSAGE' : 'S3_NOT_FOUND');
  for (let i = 0; i < 5; i++) cw.record(`fn-${i}`, 'python', { peakMemoryBytes: 1000, durationMillis: 5, success: true });
  cw.record('fn-0', 'python', { peakMemoryBytes: 2000, durationMillis: 6, success: false });
  t.equal(cw.pendingSeries, 3, 'the cap');
  await cw.flush();
  const datums = sent.flatMap((s) => s.MetricData ?? []);
  const fns = new Set(datums.flatMap((d) => (d.Dimensions ?? []).filter((x) => x.Name === 'FunctionId').map((x) => x.Value)));
  t.same([...fns].sort(), ['fn-0', 'fn-1', 'fn-2'], 'three functions, whatever came after');
  const notRun = datums.filter((d) => d.MetricName === 'FailedBeforeRun');
  t.same(notRun.map((d) => [d.Dimensions, d.Value]), [
    [[{ Name: 'Reason', Value: 'S3_NOT_FOUND' }], 150],
    [[{ Name: 'Reason', Value: 'INVALID_MESSAGE' }], 150],
  ], '300 refusals are two datums, by reason');
  const inv0 = datums.find((d) => d.MetricName === 'Invocations' && d.Dimensions?.[0]?.Value === 'fn-0');
  t.equal(inv0?.Value, 2);
  sent.length = 0;
  cw.record('fn-4', 'python', { peakMemoryBytes: null, durationMillis: 1 });
  await cw.flush();
  t.ok(sent.flatMap((s) => s.MetricData ?? []).some((d) => d.Dimensions?.some((x) => x.Value === 'fn-4')), 'the next flush has room again');
});

t.test('maps keyed by function keep only the most recent ones', async (t) => {
  const e = new Estimates();
  for (let i = 0; i <= ESTIMATED_FUNCTIONS; i++) e.noteRun(`fn-${i}`, 10);
  t.equal(e.runMs('fn-0'), undefined, 'the oldest is forgotten');
  t.equal(e.runMs(`fn-${ESTIMATED_FUNCTIONS}`), 10);
  // Redis is unreachable: the local copy answers, and stays bounded.
  const chain: Record<string, unknown> = { exec: async () => Promise.reject(new Error('down')) };
  for (const op of ['rpush', 'ltrim', 'expire', 'lrange']) chain[op] = () => chain;
  const h = new MemoryHistory({ multi: () => chain } as never, { size: 5, ttlSeconds: 60, log: silentLogger });
  for (let i = 0; i <= LOCAL_HISTORIES; i++) await h.record(`fn-${i}`, 100);
  t.same(await h.record('fn-0', 7), [7], 'fn-0 was forgotten: its history starts over');
  t.same(await h.record(`fn-${LOCAL_HISTORIES}`, 200), [100, 200]);
});
