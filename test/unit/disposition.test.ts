import t from 'tap';
import { dispose, MAX_RETRY_DELAY_S, retryDelayS, type Disposition, type Outcome } from '../../src/intake/disposition.js';

const failed = (failure: 'permanent' | 'transient', reason: Extract<Outcome, { kind: 'failed' }>['reason'], receiveCount: number, maxReceiveCount?: number): Outcome => ({
  kind: 'failed',
  failure,
  reason,
  receiveCount,
  maxReceiveCount,
});

const DELETE = { op: 'delete' } as const;
const visible = (afterS: number) => ({ op: 'visible', afterS }) as const;

const table: Array<[string, Outcome, Disposition]> = [
  ['the function ran', { kind: 'ran' }, { message: DELETE, answerFailure: false, pending: false, label: 'deleted' }],
  ['a duplicate delivery', { kind: 'duplicate' }, { message: DELETE, answerFailure: false, pending: false, label: 'deleted' }],
  ['invalid message', failed('permanent', 'INVALID_MESSAGE', 1, 3), { message: DELETE, answerFailure: true, pending: false, label: 'deleted' }],
  ['bad zip on a later try', failed('permanent', 'ZIP_SLIP', 2, 3), { message: DELETE, answerFailure: true, pending: false, label: 'deleted' }],
  ['transient, first try', failed('transient', 'S3_NOT_FOUND', 1, 3), { message: visible(1), answerFailure: false, pending: true, label: 'retried' }],
  ['transient, second try', failed('transient', 'DOCKER_UNAVAILABLE', 2, 3), { message: visible(2), answerFailure: false, pending: true, label: 'retried' }],
  ['transient, last try', failed('transient', 'S3_UNAVAILABLE', 3, 3), { message: visible(0), answerFailure: true, pending: false, label: 'dead_lettered' }],
  ['transient, past the last try', failed('transient', 'S3_UNAVAILABLE', 5, 3), { message: visible(0), answerFailure: true, pending: false, label: 'dead_lettered' }],
  ['transient, no redrive policy', failed('transient', 'S3_UNAVAILABLE', 9), { message: visible(60), answerFailure: false, pending: true, label: 'retried' }],
  ['shutting down, first try', failed('transient', 'SHUTTING_DOWN', 1, 3), { message: visible(0), answerFailure: false, pending: false, label: 'released' }],
  ['engine outage: back to the queue at once', failed('transient', 'ENGINE_OUTAGE', 1, 3), { message: visible(0), answerFailure: false, pending: false, label: 'released' }],
  ['shutting down, even on the last try', failed('transient', 'SHUTTING_DOWN', 3, 3), { message: visible(0), answerFailure: false, pending: false, label: 'released' }],
];

t.test('the disposition table', async (t) => {
  for (const [name, outcome, expected] of table) t.same(dispose(outcome), expected, name);
});

t.test('retry delays double from 1 s and are capped', async (t) => {
  t.same([1, 2, 3, 4, 5].map(retryDelayS), [1, 2, 4, 8, 16]);
  t.equal(retryDelayS(30), MAX_RETRY_DELAY_S);
  t.equal(retryDelayS(0), 1, 'a missing receive count counts as the first');
});
