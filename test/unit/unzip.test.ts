import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import unzip, { checkEntryName } from '../../workers/unzip.js';
import { buildZip } from '../../src/local/client.js';
import { rawZip } from '../helpers/rawZip.js';

async function extract(t: { teardown(fn: () => unknown): void }, zip: Buffer, limits = { maxEntries: 100, maxBytes: 1024 * 1024 }) {
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-unzip-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'code.zip'), zip);
  const dest = join(dir, 'ws');
  const out = await unzip({ zipPath: join(dir, 'code.zip'), destDir: dest, ...limits });
  return { out, dest, dir };
}

t.test('extracts files and folders, keeps the execute bit', async (t) => {
  const zip = await buildZip({ 'main.py': 'print(1)', 'lib/util.py': 'x = 1', 'run.sh': { content: 'echo hi', mode: 0o100755 } });
  const { out, dest } = await extract(t, zip);
  t.ok(out.ok);
  if (out.ok) {
    t.equal(out.entries, 3);
    t.equal(out.bytes, 'print(1)'.length + 'x = 1'.length + 'echo hi'.length);
  }
  t.same((await readdir(dest)).sort(), ['lib', 'main.py', 'run.sh']);
  t.equal(await readFile(join(dest, 'lib/util.py'), 'utf8'), 'x = 1');
  t.equal((await stat(join(dest, 'run.sh'))).mode & 0o777, 0o755);
  t.equal((await stat(join(dest, 'main.py'))).mode & 0o777, 0o644);
});

t.test('each refusal has its own reason, and nothing lands outside the workspace', async (t) => {
  const cases: Array<[string, Buffer]> = [
    ['ZIP_SLIP', rawZip([{ name: 'a/../../escaped.txt', data: Buffer.from('x') }])],
    ['ZIP_SLIP', rawZip([{ name: '..\\escaped.txt', data: Buffer.from('x') }])],
    ['ZIP_ABSOLUTE_PATH', rawZip([{ name: '/tmp/absolute.txt', data: Buffer.from('x') }])],
    ['ZIP_ABSOLUTE_PATH', rawZip([{ name: 'C:/windows.txt', data: Buffer.from('x') }])],
    ['ZIP_LINK', rawZip([{ name: 'link', data: Buffer.from('../../etc/passwd'), mode: 0o120777 }])],
    ['ZIP_TOO_MANY_ENTRIES', rawZip(Array.from({ length: 101 }, (_, i) => ({ name: `f${i}`, data: Buffer.from('x') })))],
    ['ZIP_TOO_LARGE', rawZip([{ name: 'big', data: Buffer.alloc(2 * 1024 * 1024), deflate: true }])],
    ['ZIP_INVALID', rawZip([{ name: 'dup', data: Buffer.from('a') }, { name: 'dup', data: Buffer.from('b') }])],
    ['ZIP_INVALID', Buffer.from('PK\u0003\u0004 but truncated')],
  ];
  for (const [reason, zip] of cases) {
    const { out, dir } = await extract(t, zip);
    t.equal(out.ok ? 'ok' : out.reason, reason, reason);
    const outside = (await readdir(dir)).filter((f) => f !== 'code.zip' && f !== 'ws');
    t.same(outside, [], 'nothing written beside the workspace');
  }
});

t.test('checkEntryName', async (t) => {
  t.equal(checkEntryName('/w', 'a/b.txt'), '/w/a/b.txt');
  t.throws(() => checkEntryName('/w', 'a\u0000b'));
  t.throws(() => checkEntryName('/w', '../x'));
});

t.test('the entry limit counts every file and folder made, the parents of a deep path too', async (t) => {
  // 10 entries, but each makes 20 folders on its way: 211 inodes against a limit of 100.
  const deep = rawZip(Array.from({ length: 10 }, (_, i) => ({ name: `${Array.from({ length: 20 }, (_, d) => `d${i}-${d}`).join('/')}/f`, data: Buffer.from('x') })));
  const { out } = await extract(t, deep);
  t.equal(out.ok ? 'ok' : out.reason, 'ZIP_TOO_MANY_ENTRIES');
  t.match(!out.ok && out.message, /more than 100 files and folders/);
});

t.test('what a version holds on disk is counted in blocks, a folder\'s included', async (t) => {
  const zip = rawZip([
    ...Array.from({ length: 30 }, (_, i) => ({ name: `empty-${i}/`, data: Buffer.alloc(0) })),
    { name: 'tiny.txt', data: Buffer.from('x') },
    { name: 'empty.txt', data: Buffer.alloc(0) },
    { name: 'five-k.bin', data: Buffer.alloc(5000) },
  ]);
  const { out } = await extract(t, zip);
  t.ok(out.ok);
  if (out.ok) {
    t.equal(out.bytes, 5001, 'the contents');
    t.equal(out.inodes, 34, '31 folders (the root too) and 3 files');
    t.equal(out.diskBytes, 31 * 4096 + 4096 + 0 + 8192, 'a block per folder, whole blocks per file');
  }
});
