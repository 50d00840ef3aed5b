import { watch } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { locateFreezer } from '../../src/container/freezer.js';

// This machine is cgroup v1: the v2 logic is tested against a fake cgroup tree whose
// cgroup.events follows cgroup.freeze as the kernel's would.
async function fakeTree(t: { teardown(fn: () => unknown): void }, cgroupLine: string) {
  const root = await mkdtemp(join(tmpdir(), 'nanogrid-cg-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  await mkdir(join(root, 'proc', '42'), { recursive: true });
  await writeFile(join(root, 'proc', '42', 'cgroup'), cgroupLine);
  return root;
}

t.test('cgroup v2: cgroup.freeze, waiting for cgroup.events', async (t) => {
  const root = await fakeTree(t, '0::/system.slice/docker-abc.scope\n');
  const dir = join(root, 'cg', 'system.slice', 'docker-abc.scope');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'cgroup.freeze'), '0');
  await writeFile(join(dir, 'cgroup.events'), 'populated 1\nfrozen 0\n');
  const w = watch(join(dir, 'cgroup.freeze'), () => {
    void readFile(join(dir, 'cgroup.freeze'), 'utf8').then((v) => writeFile(join(dir, 'cgroup.events'), `populated 1\nfrozen ${v.trim()}\n`));
  });
  t.teardown(() => w.close());
  const f = await locateFreezer(42, { proc: join(root, 'proc'), cgroup: join(root, 'cg') });
  t.equal(f?.kind, 'cgroup-v2');
  await f!.freeze();
  t.equal(await readFile(join(dir, 'cgroup.freeze'), 'utf8'), '1');
  t.match(await readFile(join(dir, 'cgroup.events'), 'utf8'), /^frozen 1$/m);
  await f!.thaw();
  t.match(await readFile(join(dir, 'cgroup.events'), 'utf8'), /^frozen 0$/m);
});

t.test('cgroup v2: a freeze the kernel never confirms is an error, not a hang', async (t) => {
  const root = await fakeTree(t, '0::/stuck\n');
  const dir = join(root, 'cg', 'stuck');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'cgroup.freeze'), '0');
  await writeFile(join(dir, 'cgroup.events'), 'populated 1\nfrozen 0\n');
  const f = await locateFreezer(42, { proc: join(root, 'proc'), cgroup: join(root, 'cg') });
  await t.rejects(f!.freeze(), /did not take effect/);
});

t.test('cgroup v1: the freezer controller', async (t) => {
  const root = await fakeTree(t, '12:memory:/docker/abc\n5:freezer:/docker/abc\n');
  const dir = join(root, 'cg', 'freezer', 'docker', 'abc');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'freezer.state'), 'THAWED\n');
  const f = await locateFreezer(42, { proc: join(root, 'proc'), cgroup: join(root, 'cg') });
  t.equal(f?.kind, 'cgroup-v1');
  await f!.freeze();
  t.equal(await readFile(join(dir, 'freezer.state'), 'utf8'), 'FROZEN');
});

t.test('no cgroup file: no freezer (dockerd pause is used)', async (t) => {
  t.equal(await locateFreezer(999_999_999), null);
});
