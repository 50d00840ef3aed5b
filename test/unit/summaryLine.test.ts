import t from 'tap';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/core/log.js';
import { failedResult } from '../../src/core/result.js';
import { logSummary } from '../../src/intake/summaryLine.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const dest = new Writable({
    write(chunk: Buffer, _e, cb) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: createLogger('info', dest), lines };
}

t.test('the summary line: the same fields whether the invocation ran or not, the reason under one key', async (t) => {
  const { log, lines } = capture();
  const failed = failedResult({ requestId: 'r-1', functionId: 'f', runtime: 'python', reason: 'S3_NOT_FOUND', message: 'no such key', memoryMb: 256, attempt: 3, workerId: 'w', totalMs: 12 });
  logSummary(log.child({ requestId: 'r-1', functionId: 'f' }), { result: failed, ran: false, disposition: 'dead_lettered', attempt: 3, timings: { queuedMs: 40, totalMs: 12 } });
  logSummary(log, { ran: false, disposition: 'retried', runtime: 'cpp', attempt: 1, memoryMb: 128, reason: 'S3_UNAVAILABLE', timings: { totalMs: 5 } });
  await new Promise((r) => setImmediate(r));
  t.equal(lines.length, 2);
  const [a, b] = lines as [Record<string, unknown>, Record<string, unknown>];
  t.match(a, { msg: 'invocation finished', tag: 'DONE][FAIL', level: 'warn', requestId: 'r-1', functionId: 'f', ran: false, disposition: 'dead_lettered', status: 'FAILED', reason: 'S3_NOT_FOUND', attempt: 3, memoryMb: 256, timings: { queuedMs: 40, totalMs: 12 } });
  t.match(b, { status: 'NOT_RUN', reason: 'S3_UNAVAILABLE', runtime: 'cpp', memoryMb: 128, attempt: 1, disposition: 'retried' });
  t.same(Object.keys(a).filter((k) => !['time', 'level', 'service', 'version', 'msg', 'requestId', 'functionId'].includes(k)).sort(), Object.keys(b).filter((k) => !['time', 'level', 'service', 'version', 'msg'].includes(k)).sort(), 'the same fields');
  t.notOk('part' in a, 'no second key for the reason');
  t.match(a.version, /^\d+\.\d+\.\d+/, 'every line says the version');
});

t.test('an error is logged with its stack and cause', async (t) => {
  const { log, lines } = capture();
  const err = new Error('outer', { cause: new Error('inner') });
  log.warn({ err }, 'failed');
  await new Promise((r) => setImmediate(r));
  const e = lines[0]!.err as { type: string; message: string; stack: string };
  t.equal(e.type, 'Error');
  t.match(e.message, /outer/);
  t.match(e.stack, /summaryLine\.test\.ts/, 'the stack');
  t.match(JSON.stringify(lines[0]), /inner/, 'and the cause');
});
