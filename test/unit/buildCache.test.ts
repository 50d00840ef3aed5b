import { mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { BUILD_OUT_NAME, BuildCache, type BuildView } from '../../src/build/buildCache.js';
import { silentLogger } from '../../src/core/log.js';

// The agent's half of the C++ build cache on plain folders: what a run leaves is taken
// only as regular files with an entry's name and size, given only to containers of the
// same function and image, bounded, and a version's first run holds the others back.

const KEY = (c: string) => c.repeat(64);

async function setup(t: { teardown(fn: () => unknown): void }, maxBytes = 1 << 20, entryMaxBytes = 1 << 16) {
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-build-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const cache = new BuildCache({ root: join(dir, 'store'), maxBytes, entryMaxBytes, log: silentLogger });
  await cache.reset();
  let n = 0;
  const view = async (imageId = 'sha256:img'): Promise<BuildView> => {
    const v = { cacheDir: join(dir, `c${++n}`, 'cc'), tmpDir: join(dir, `c${n}`, 'tmp'), imageId, installed: new Set<string>() };
    await mkdir(v.cacheDir, { recursive: true });
    await mkdir(join(v.tmpDir, BUILD_OUT_NAME), { recursive: true });
    return v;
  };
  const leave = (v: BuildView, name: string, body: string | Buffer, mode = 0o755) => writeFile(join(v.tmpDir, BUILD_OUT_NAME, name), body, { mode });
  return { dir, cache, view, leave };
}

t.test('an entry goes to containers of the same function and image only, with its mode and stderr', async (t) => {
  const { cache, view, leave } = await setup(t);
  const a = await view();
  await leave(a, `${KEY('a')}.out`, 'binary');
  await leave(a, `${KEY('a')}.err`, 'warning', 0o644);
  await leave(a, `${KEY('c')}.hit`, '');
  t.equal(await cache.harvest(a, 'fn-1', silentLogger), 1);
  t.same(cache.status(), { functions: 1, entries: 1, bytes: 13, compiled: 1, hits: 1, kept: 1, refused: 0 });
  t.same((await readdir(a.cacheDir)).sort(), [`${KEY('a')}.err`, `${KEY('a')}.out`], 'given to its own container at once');
  t.equal((await stat(join(a.cacheDir, `${KEY('a')}.out`))).mode & 0o777, 0o755, 'still executable');

  const sameFn = await view();
  await cache.install(sameFn, 'fn-1');
  t.equal(await readFile(join(sameFn.cacheDir, `${KEY('a')}.out`), 'utf8'), 'binary', 'another container of the function gets it');
  const otherFn = await view();
  await cache.install(otherFn, 'fn-2');
  t.same(await readdir(otherFn.cacheDir), [], 'another function never does');
  const otherImage = await view('sha256:other');
  await cache.install(otherImage, 'fn-1');
  t.same(await readdir(otherImage.cacheDir), [], 'nor the same function on another image');
});

t.test('links, FIFOs, folders, oversized files and other names are refused, never followed', async (t) => {
  const { dir, cache, view, leave } = await setup(t, 1 << 20, 100);
  const v = await view();
  await writeFile(join(dir, 'secret'), 'host secret');
  await symlink(join(dir, 'secret'), join(v.tmpDir, BUILD_OUT_NAME, `${KEY('1')}.out`));
  await mkdir(join(v.tmpDir, BUILD_OUT_NAME, `${KEY('2')}.out`));
  await leave(v, `${KEY('3')}.out`, Buffer.alloc(101));
  await leave(v, 'passwd', 'x');
  await leave(v, `${KEY('4')}.out.tmp`, 'x');
  t.equal(await cache.harvest(v, 'fn', silentLogger), 0);
  t.equal(cache.status().refused, 3);
  t.same(await readdir(v.cacheDir), []);

  const linked = await view();
  await rm(join(linked.tmpDir, BUILD_OUT_NAME), { recursive: true });
  await symlink(dir, join(linked.tmpDir, BUILD_OUT_NAME));
  t.equal(await cache.harvest(linked, 'fn', silentLogger), 0, 'the out folder itself a link: refused');
  t.equal(cache.status().refused, 4);
  const none = await view();
  await rm(join(none.tmpDir, BUILD_OUT_NAME), { recursive: true });
  t.equal(await cache.harvest(none, 'fn', silentLogger), 0, 'a run that compiled nothing');
});

t.test('the store stays within its bound: least recently used functions first, then the oldest entries', async (t) => {
  const { cache, view, leave } = await setup(t, 250, 200);
  for (const fn of ['f1', 'f2']) {
    const v = await view();
    await leave(v, `${KEY(fn === 'f1' ? '1' : '2')}.out`, Buffer.alloc(100));
    await cache.harvest(v, fn, silentLogger);
  }
  t.equal(cache.status().bytes, 200);
  const v3 = await view();
  await leave(v3, `${KEY('3')}.out`, Buffer.alloc(100));
  await cache.harvest(v3, 'f3', silentLogger);
  t.same([cache.status().functions, cache.status().bytes], [2, 200], 'f1, the least recently used, was dropped');
  const again = await view();
  await cache.install(again, 'f1');
  t.same(await readdir(again.cacheDir), []);
  const big = await view();
  await leave(big, `${KEY('5')}.out`, Buffer.alloc(200));
  await leave(big, `${KEY('6')}.out`, Buffer.alloc(200));
  await cache.harvest(big, 'f4', silentLogger);
  t.same([cache.status().functions, cache.status().entries], [1, 1], 'one function past the bound alone keeps its newest entry');
  t.ok(cache.status().bytes <= 250);
});

t.test("a version's first run holds the others back until it is over, at most the wait", async (t) => {
  const { cache, view, leave } = await setup(t);
  const a = await view();
  const b = await view();
  const doneA = await cache.beforeRun(a, 'fn', 'v1', 5000);
  let bIn = false;
  const bRun = cache.beforeRun(b, 'fn', 'v1', 5000).then((done) => {
    bIn = true;
    return done;
  });
  await new Promise((r) => setTimeout(r, 50));
  t.notOk(bIn, 'the second waits');
  await leave(a, `${KEY('a')}.out`, 'bin');
  await cache.harvest(a, 'fn', silentLogger);
  doneA();
  const doneB = await bRun;
  t.same(await readdir(b.cacheDir), [`${KEY('a')}.out`], 'and then gets the first one\'s output');
  doneB();
  const started = performance.now();
  const c = await view();
  const doneC = await cache.beforeRun(c, 'fn', 'v2', 5000);
  const d = await view();
  await cache.beforeRun(d, 'fn', 'v2', 100);
  t.ok(performance.now() - started < 3000, 'a first run that never ends holds the others only for the wait');
  doneC();
  const e = await view();
  const t0 = performance.now();
  await cache.beforeRun(e, 'fn', 'v1', 5000);
  t.ok(performance.now() - t0 < 1000, 'a version already run waits for nothing');
});
