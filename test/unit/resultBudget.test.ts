import t from 'tap';
import { failedResult, type Result } from '../../src/core/result.js';
import { cutEscaped, escapedBytes, fitResult } from '../../src/core/resultBudget.js';

const base = (): Result => ({
  ...failedResult({ requestId: 'r-1', functionId: 'f', codeLocation: 's3://b/f/v1.zip', runtime: 'python', reason: 'NON_ZERO_EXIT', message: 'x', memoryMb: 128, attempt: 1, workerId: 'w', totalMs: 1 }),
  stdout: '',
  stderr: '',
});
const size = (r: Result) => Buffer.byteLength(JSON.stringify(r));

t.test('escaped size is what JSON.stringify makes of a string, in UTF-8 bytes', async (t) => {
  for (const s of ['plain', 'quote " and \\ backslash', '\n\t\r\b\f', '\u0000\u0001\u001f', 'é ü ß', '€ 中文', '😀 pair', '\ud800 lone high', 'lone low \udc00', '\u2028\u2029']) {
    t.equal(escapedBytes(s), Buffer.byteLength(JSON.stringify(s)) - 2, [...s].map((c) => c.codePointAt(0)!.toString(16)).join(' '));
  }
});

t.test('a cut never splits a character and never passes its bytes', async (t) => {
  const s = 'ab😀cd\u0001e';
  for (let n = 0; n <= escapedBytes(s) + 1; n++) {
    const cut = cutEscaped(s, n);
    t.ok(escapedBytes(cut) <= n, `${n}: ${JSON.stringify(cut)}`);
    t.ok(s.startsWith(cut));
    t.notOk(/[\ud800-\udbff]$/.test(cut), 'no half of a pair at the end');
  }
  t.equal(cutEscaped(s, 1000), s, 'what fits is kept whole');
});

t.test('a result within its budget is delivered as it is', async (t) => {
  const r = { ...base(), stdout: 'hello\n' };
  const fit = fitResult(r, 64 * 1024);
  t.equal(fit.result, r, 'the same object');
  t.equal(fit.json, JSON.stringify(r));
});

t.test('1 MiB of control bytes on each stream: the JSON fits the budget, both streams marked truncated', async (t) => {
  const control = '\u0001'.repeat(1 << 20);
  const r = { ...base(), stdout: control, stderr: control };
  t.ok(size(r) > 12 * (1 << 20), `six bytes of JSON per byte: ${size(r)}`);
  const budget = 4 << 20;
  const { result, json } = fitResult(r, budget);
  t.ok(Buffer.byteLength(json) <= budget, `${Buffer.byteLength(json)} <= ${budget}`);
  t.ok(Buffer.byteLength(json) > budget - 64, 'and uses the room');
  t.equal(json, JSON.stringify(result));
  t.same([result.stdoutTruncated, result.stderrTruncated], [true, true]);
  t.ok(Math.abs(result.stdout.length - result.stderr.length) <= 1, 'an even share each');
});

t.test('what one stream does not need goes to the other', async (t) => {
  const r = { ...base(), stdout: 'short', stderr: 'e'.repeat(100_000) };
  const { result } = fitResult(r, 50_000);
  t.equal(result.stdout, 'short');
  t.equal(result.stdoutTruncated, false);
  t.equal(result.stderrTruncated, true);
  t.ok(result.stderr.length > 45_000, `stderr takes the rest (${result.stderr.length})`);
  t.ok(size(result) <= 50_000);
});

t.test('a list of outputs too long for the budget is cut last, with a line saying so', async (t) => {
  const outputs = Array.from({ length: 5000 }, (_, i) => ({ key: `f/r-1/${'d/'.repeat(40)}file-${i}.bin`, bytes: i, versionId: null }));
  const r = { ...base(), stdout: 'out', outputs };
  const { result, json } = fitResult(r, 100_000);
  t.ok(Buffer.byteLength(json) <= 100_000);
  t.ok(result.outputs.length > 0 && result.outputs.length < 5000, `${result.outputs.length} listed`);
  t.match(result.outputErrors.at(-1), new RegExp(`${5000 - result.outputs.length} stored outputs are not listed`));
});
