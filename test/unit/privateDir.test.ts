import { chmod, mkdir, mkdtemp, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { ensurePrivateDir } from '../../src/core/privateDir.js';

t.test('the work root is made 0700, narrowed to it, and refused behind a link', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'nanogrid-private-'));
  t.teardown(() => rm(root, { recursive: true, force: true }));
  const made = join(root, 'a', 'b');
  await ensurePrivateDir(made, 'NANOGRID_WORK_ROOT');
  t.equal((await stat(made)).mode & 0o777, 0o700);
  t.equal((await stat(join(root, 'a'))).mode & 0o777, 0o700, 'every folder it made');

  const wide = join(root, 'wide');
  await mkdir(wide);
  await chmod(wide, 0o755);
  await ensurePrivateDir(wide, 'NANOGRID_WORK_ROOT');
  t.equal((await stat(wide)).mode & 0o777, 0o700, 'narrowed');

  await symlink(wide, join(root, 'link'));
  await t.rejects(ensurePrivateDir(join(root, 'link'), 'NANOGRID_WORK_ROOT'), /NANOGRID_WORK_ROOT .*link is reached through a symbolic link/);
  await t.rejects(ensurePrivateDir(join(root, 'link', 'inner'), 'NANOGRID_OUTBOX_DIR'), /symbolic link/, 'a link at any component');
  await writeFile(join(root, 'file'), 'x');
  await t.rejects(ensurePrivateDir(join(root, 'file'), 'NANOGRID_WORK_ROOT'), /is not a folder/);
});
