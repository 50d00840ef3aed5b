import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { sleep } from '../../src/core/timeout.js';
import { silentLogger } from '../../src/core/log.js';
import { CodeCache, type CodeEvent } from '../../src/code/codeCache.js';
import type { CodeFetcher } from '../../src/code/codeFetch.js';

/** A fetcher over an in-memory bucket: counts its calls, can be slowed down. */
function fakeFetcher(objects: Map<string, { etag: string; body: string }>, delayMs = 0) {
  const calls = { unpack: 0, etag: 0 };
  const fetcher = {
    async unpackS3(_bucket: string, key: string, dir: string) {
      calls.unpack++;
      await sleep(delayMs);
      const o = objects.get(key)!;
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'main.py'), o.body);
      return { entries: 1, bytes: o.body.length, diskBytes: o.body.length, inodes: 2, etag: o.etag };
    },
    async unpackInline(code: string, dir: string) {
      calls.unpack++;
      await mkdir(dir, { recursive: true });
      await writeFile(join(dir, 'main.py'), code);
      return { entries: 1, bytes: code.length, diskBytes: code.length, inodes: 2, etag: undefined };
    },
    async etag(_bucket: string, key: string) {
      calls.etag++;
      await sleep(delayMs);
      return objects.get(key)!.etag;
    },
  };
  return { fetcher: fetcher as unknown as CodeFetcher, calls };
}

async function cacheWith(t: { teardown(fn: () => unknown): void }, fetcher: CodeFetcher, stalenessMs: number, maxBytes = 1 << 30) {
  const root = await mkdtemp(join(tmpdir(), 'nanogrid-cache-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const events: CodeEvent[] = [];
  return { cache: new CodeCache({ fetcher, root, stalenessMs, maxBytes, log: silentLogger, events: { emit: (_n, e) => (events.push(e), true) } }), events };
}

const src = (key: string) => ({ kind: 's3' as const, bucket: 'b', key });

t.test('concurrent first requests share one download', async (t) => {
  const { fetcher, calls } = fakeFetcher(new Map([['k', { etag: '"1"', body: 'x' }]]), 30);
  const { cache } = await cacheWith(t, fetcher, 10_000);
  const versions = await Promise.all([1, 2, 3].map(() => cache.get(src('k'))));
  t.equal(calls.unpack, 1);
  t.equal(new Set(versions.map((v) => v.id)).size, 1);
  t.same(versions[0]!.names, ['main.py']);
});

t.test('first half of the bound: no S3; second half: served at once, revalidated behind; past it: waits', async (t) => {
  const objects = new Map([['k', { etag: '"1"', body: 'one' }]]);
  const { fetcher, calls } = fakeFetcher(objects);
  const { cache } = await cacheWith(t, fetcher, 200);
  const v1 = await cache.get(src('k'));
  await cache.get(src('k'));
  t.equal(calls.etag, 0, 'fresh: no revalidation');
  await sleep(120);
  objects.set('k', { etag: '"2"', body: 'two' });
  const stale = await cache.get(src('k'));
  t.equal(stale.id, v1.id, 'in the second half the cached version is served');
  await sleep(30);
  t.equal(calls.etag, 1, 'and revalidated in the background');
  const fresh = await cache.get(src('k'));
  t.not(fresh.id, v1.id, 'the background revalidation brought the new version');
  await t.rejects(stat(v1.dir), 'the old version was removed');
});

t.test('inline code is keyed by its content and never revalidated', async (t) => {
  const { fetcher, calls } = fakeFetcher(new Map());
  const { cache } = await cacheWith(t, fetcher, 0);
  const a = await cache.get({ kind: 'inline', code: 'print(1)' });
  const b = await cache.get({ kind: 'inline', code: 'print(1)' });
  const c = await cache.get({ kind: 'inline', code: 'print(2)' });
  t.equal(a.id, b.id);
  t.not(a.id, c.id);
  t.same([calls.unpack, calls.etag], [2, 0]);
});

t.test('least recently used versions go past the byte bound', async (t) => {
  const objects = new Map(['a', 'b', 'c'].map((k) => [k, { etag: '"1"', body: 'x'.repeat(100) }]));
  const { fetcher } = fakeFetcher(objects);
  const { cache } = await cacheWith(t, fetcher, 60_000, 250);
  const a = await cache.get(src('a'));
  await cache.get(src('b'));
  await cache.get(src('a'));
  await cache.get(src('c'));
  t.same(cache.size, { versions: 2, bytes: 200, inodes: 4 });
  t.ok(await stat(a.dir), 'a was used more recently than b: kept');
});

t.test('a version costs its blocks and its files and folders: empty folders are not free', async (t) => {
  // Each version: 3 bytes of content, but 10 inodes and 40 KiB on disk.
  const objects = new Map(['a', 'b', 'c'].map((k) => [k, { etag: '"1"', body: 'xyz' }]));
  const { fetcher } = fakeFetcher(objects);
  const heavy = {
    ...fetcher,
    unpackS3: async (b: string, k: string, dir: string) => ({ ...(await fetcher.unpackS3(b, k, dir)), diskBytes: 40_960, inodes: 10 }),
  } as unknown as CodeFetcher;
  const root = await mkdtemp(join(tmpdir(), 'nanogrid-cache-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const byBlocks = new CodeCache({ fetcher: heavy, root, stalenessMs: 60_000, maxBytes: 100_000, log: silentLogger });
  for (const k of ['a', 'b', 'c']) await byBlocks.get(src(k));
  t.same(byBlocks.size, { versions: 2, bytes: 81_920, inodes: 20 }, 'the third version passed the blocks bound');
  const byInodes = new CodeCache({ fetcher: heavy, root: await mkdtemp(join(tmpdir(), 'nanogrid-cache-')), stalenessMs: 60_000, maxBytes: 1 << 30, maxInodes: 15, log: silentLogger });
  for (const k of ['a', 'b']) await byInodes.get(src(k));
  t.same(byInodes.size, { versions: 1, bytes: 40_960, inodes: 10 }, 'the second passed the inodes bound');
});
