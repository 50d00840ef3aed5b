import t from 'tap';
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HANDLER_SPEC, manifestOf, parseManifest } from '../../src/run/manifest.js';
import { classify } from '../../src/run/runOnLease.js';
import { failedResult, type Result } from '../../src/core/result.js';
import { fitResult } from '../../src/core/resultBudget.js';
import type { HandlerCall } from '../../src/container/runnerClient.js';

t.test('a handler is module.function inside the workspace', async (t) => {
  for (const ok of ['main.handle', 'app.views.render', 'index.handler', 'my-lib.run', 'a.$b']) t.match(ok, HANDLER_SPEC, ok);
  for (const bad of ['main', '.x', 'x.', '../x.y', 'a/b.c', 'a..b', 'a.b c', '1a.b', '']) t.notMatch(bad, HANDLER_SPEC, JSON.stringify(bad));
  t.same(parseManifest('{"handler": "main.handle"}'), { handler: 'main.handle' });
  t.same(parseManifest('{}'), {}, 'an empty manifest: a plain function');
  const invalid = (text: string, re: RegExp) => t.throws(() => parseManifest(text), { reason: 'MANIFEST_INVALID', message: re }, text);
  invalid('{"handler": "a/b.c"}', /handler: module.function/);
  invalid('{"handlr": "main.x"}', /handlr/);
  invalid('not json', /not JSON/);
  invalid('{"handler": 3}', /handler/);
});

t.test('the manifest is read from the code once, bounded, and never through a link', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ng-manifest-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'nanogrid.json'), '{"handler": "main.handle"}');
  const code = { id: 'v1', dir, names: ['nanogrid.json', 'main.py'] };
  t.same(await manifestOf(code), { handler: 'main.handle' });
  await writeFile(join(dir, 'nanogrid.json'), '{"handler": "other.x"}');
  t.same(await manifestOf(code), { handler: 'main.handle' }, 'once per version');
  t.equal(await manifestOf({ id: 'v2', dir, names: ['main.py'] }), null, 'none in the zip: a plain function');
  const bigDir = await mkdtemp(join(tmpdir(), 'ng-manifest-big-'));
  t.teardown(() => rm(bigDir, { recursive: true, force: true }));
  await writeFile(join(bigDir, 'nanogrid.json'), `{"handler": "main.handle"}${' '.repeat(65 * 1024)}`);
  await t.rejects(manifestOf({ id: 'v3', dir: bigDir, names: ['nanogrid.json'] }), { reason: 'MANIFEST_INVALID', message: /bytes; the most is 65536/ });
  const linkDir = await mkdtemp(join(tmpdir(), 'ng-manifest-link-'));
  t.teardown(() => rm(linkDir, { recursive: true, force: true }));
  await symlink('/etc/hostname', join(linkDir, 'nanogrid.json'));
  await t.rejects(manifestOf({ id: 'v4', dir: linkDir, names: ['nanogrid.json'] }), { reason: 'MANIFEST_INVALID', message: /cannot be read \(ELOOP\)/ });
});

t.test('a handler call\'s status: an exception is HANDLER_ERROR, an end before ready HANDLER_INIT_FAILED', async (t) => {
  const call = (o: Partial<HandlerCall>): HandlerCall => ({ alive: true, pid: 7, init: false, initMs: 0, answer: 'value', answerText: '1', ...o });
  t.same(classify({ timedOut: false, exitCode: 0, clean: true, handler: call({}) }, false), { status: 'SUCCESS', reason: 'OK' });
  t.same(classify({ timedOut: false, exitCode: 1, clean: true, handler: call({ answer: 'error' }) }, false), { status: 'FAILED', reason: 'HANDLER_ERROR' });
  t.same(classify({ timedOut: false, exitCode: 1, clean: true, handler: call({ alive: false, init: true, answer: 'none' }) }, false), { status: 'FAILED', reason: 'HANDLER_INIT_FAILED' });
  t.same(classify({ timedOut: false, exitCode: 3, clean: true, handler: call({ alive: false, init: true, initMs: 20, answer: 'none' }) }, false), { status: 'FAILED', reason: 'NON_ZERO_EXIT' }, 'a crash after the import is the exit status\'s');
  t.same(classify({ timedOut: true, exitCode: -1, clean: true, handler: call({ alive: false, answer: 'none' }) }, false), { status: 'TIMEOUT', reason: 'TIMEOUT' });
  t.same(classify({ timedOut: false, exitCode: 137, clean: true, handler: call({ alive: false, answer: 'none' }) }, true), { status: 'OOM', reason: 'OOM' });
});

t.test('a return value too large for the result is left out whole, and said to be', async (t) => {
  const r: Result = {
    ...failedResult({ requestId: 'r', functionId: 'f', runtime: 'python', reason: 'OK', message: '', memoryMb: 128, attempt: 1, workerId: 'w', totalMs: 1 }),
    handler: { returnValue: { big: 'x'.repeat(100_000) }, error: null, initialised: false, initDurationMs: null },
  };
  const { result, json } = fitResult(r, 32 * 1024);
  t.ok(Buffer.byteLength(json) <= 32 * 1024);
  t.same(result.handler, { returnValue: null, error: null, initialised: false, initDurationMs: null, returnValueDropped: true });
  t.equal(fitResult({ ...r, handler: { ...r.handler!, returnValue: 1 } }, 32 * 1024).result.handler?.returnValue, 1, 'one that fits stays');
});
