import t from 'tap';
import { sleep } from '../src/core/timeout.js';
import { buildZip } from '../src/local/client.js';
import { type Harness, ONE_PYTHON, startHarness } from './helpers/harness.js';

/** nanogrid_code_cache_total by event, scraped from /metrics. */
async function codeEvents(h: Harness): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${h.agent.httpPort}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^nanogrid_code_cache_total\{event="(\w+)"\} (\d+)/gm)) out[m[1]!] = Number(m[2]);
  return out;
}

const version = (label: string) => ({ 'main.py': `print("${label}")\n` });

t.test('a code version is downloaded once per agent, and the code stays in place between runs', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_CODE_STALENESS_MS: '60000' } });
  for (let i = 0; i < 5; i++) t.equal((await h.invoke('cached', version('v1'))).stdout, 'v1\n');
  const events = await codeEvents(h);
  t.equal(events.download, 1, 'one download for five runs');
  t.equal(events.hit, 4, 'four served from the cache');
  t.equal(events.revalidated_unchanged ?? 0, 0, 'no S3 call within the bound');
});

t.test('the code is read-only to the function; what a run adds is gone before the next', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  const TAMPER = [
    'import os',
    'for what, act in (("write", lambda: open("main.py", "a").write("#")), ("delete", lambda: os.remove("data.txt")), ("rename", lambda: os.rename("data.txt", "x"))):',
    '    try:',
    '        act()',
    '        print(what, "allowed")',
    '    except OSError as e:',
    '        print(what, "refused", e.errno)',
    'open("scratch.txt", "w").write("mine")',
    'print(sorted(os.listdir(".")), open("data.txt").read())',
  ].join('\n');
  const first = await h.invoke('tamper', { 'main.py': TAMPER, 'data.txt': 'original' });
  t.equal(first.status, 'SUCCESS', first.stderr);
  t.match(first.stdout, /write refused 13/);
  t.match(first.stdout, /delete refused 1/);
  t.match(first.stdout, /rename refused 1/);
  t.match(first.stdout, /\['data.txt', 'main.py', 'scratch.txt'\] original/, 'it may add files beside its code');
  const second = await h.invoke('tamper', undefined);
  t.equal(second.startKind, 'warm');
  t.match(second.stdout, /\['data.txt', 'main.py', 'scratch.txt'\] original/, 'a fresh scratch.txt: the first run\'s is gone, the code intact');
});

t.test('a zip replaced under the same key is picked up within the staleness bound', async (t) => {
  const bound = 1500;
  const h = await startHarness(t, { env: { NANOGRID_CODE_STALENESS_MS: String(bound) } });
  t.equal((await h.invoke('replaced', version('one'))).stdout, 'one\n');
  const before = await codeEvents(h);
  await h.client.upload('replaced/v1.zip', await buildZip(version('two')));
  const replacedAt = Date.now();
  // Inside the first half of the bound: served from the cache, no S3 round trip.
  const early = await h.invoke('replaced', undefined);
  if (Date.now() - replacedAt < bound / 2) {
    t.equal(early.stdout, 'one\n', 'within the bound the cached version serves');
    const mid = await codeEvents(h);
    t.equal((mid.revalidated_unchanged ?? 0) + (mid.revalidated_changed ?? 0), (before.revalidated_unchanged ?? 0) + (before.revalidated_changed ?? 0), 'and S3 was not asked');
  }
  await sleep(bound - (Date.now() - replacedAt));
  const late = await h.invoke('replaced', undefined);
  t.equal(late.stdout, 'two\n', `the new code runs once the bound has passed (${Date.now() - replacedAt} ms after the replacement)`);
  const after = await codeEvents(h);
  t.equal(after.download, 2, 'downloaded again once: the new version');
  t.equal(after.revalidated_changed, 1);
});

t.test('a staleness bound of 0 checks S3 on every invocation', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_CODE_STALENESS_MS: '0' } });
  t.equal((await h.invoke('always', version('a'))).stdout, 'a\n');
  t.equal((await h.invoke('always', undefined)).stdout, 'a\n');
  await h.client.upload('always/v1.zip', await buildZip(version('b')));
  t.equal((await h.invoke('always', undefined)).stdout, 'b\n', 'the very next invocation sees the new code');
  const events = await codeEvents(h);
  t.equal(events.revalidated_unchanged, 1);
  t.equal(events.revalidated_changed, 1);
  t.equal(events.download, 2);
});

t.test('the code object deleted after it was cached: a revalidation failure is the S3 error, not stale code', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_CODE_STALENESS_MS: '0' }, maxReceiveCount: 1 });
  t.equal((await h.invoke('vanishing', version('here'))).status, 'SUCCESS');
  await h.client.remove('vanishing/v1.zip');
  const r = await h.invoke('vanishing', undefined);
  t.equal(r.reason, 'S3_NOT_FOUND');
  t.equal((await codeEvents(h)).revalidation_failed, 1);
});
