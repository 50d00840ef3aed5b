import type { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import t from 'tap';
import { silentLogger } from '../src/core/log.js';
import { Scratch } from '../src/container/scratch.js';
import { OutputStore } from '../src/sinks/outputStore.js';

// The agent's nosymfollow view of a container's writable space, against a process that
// swaps folders for links while the agent reads and wipes (the run is verified clean
// first in the agent, so no process of the function is left to race it: this tests the
// second line of defence on its own, with the race as fast as a host process can make it).

/** Uploads, kept in memory: what the agent would have stored. */
function capturingS3(): { s3: S3Client; bodies: Buffer[] } {
  const bodies: Buffer[] = [];
  const s3 = {
    send: async (cmd: PutObjectCommand) => {
      const body = cmd.input.Body as Readable | Buffer;
      const chunks: Buffer[] = [];
      if (Buffer.isBuffer(body)) chunks.push(body);
      else for await (const c of body) chunks.push(c as Buffer);
      bodies.push(Buffer.concat(chunks));
      return { VersionId: undefined };
    },
  } as unknown as S3Client;
  return { s3, bodies };
}

t.test('a folder swapped for a link while the agent reads and wipes: nothing of the host is read or touched', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'nanogrid-view-'));
  const scratch = await Scratch.create({ imagePath: join(root, 's.img'), mountDir: join(root, 'mnt'), viewDir: join(root, 'view'), limitBytes: 32 << 20, reserve: false, timeoutMs: 30_000 });
  t.teardown(async () => {
    await scratch.destroy();
    await rm(root, { recursive: true, force: true });
  });
  // The host's secret folder, outside the scratch file system.
  const secretDir = join(root, 'host-secret');
  await mkdir(secretDir, { mode: 0o700 });
  const text = `HOST-SECRET-${randomBytes(6).toString('hex')}`;
  for (const name of ['x.txt', 'y.txt']) await writeFile(join(secretDir, name), text);

  // The function's side: output/d holds files of its own; a racer swaps it for a link to
  // the host folder and back, as fast as it can.
  const raw = scratch.hostPath('work');
  await mkdir(join(raw, 'output', 'd'), { recursive: true });
  for (const name of ['x.txt', 'y.txt']) await writeFile(join(raw, 'output', 'd', name), 'mine');
  await symlink(secretDir, join(raw, 'output', 'plain-link'));
  const racer = spawn('bash', ['-c', `cd ${raw}/output && while true; do mv d d.real && ln -s ${secretDir} d; rm d && mv d.real d; done`], { stdio: 'ignore' });
  t.teardown(() => racer.kill('SIGKILL'));

  const { s3, bodies } = capturingS3();
  const store = new OutputStore({ s3, bucket: 'b', maxFiles: 100, maxBytes: 1 << 20, timeoutMs: 5000 });
  let stored = 0;
  let refused = 0;
  const rounds = 200;
  for (let i = 0; i < rounds; i++) {
    const r = await store.store(scratch.path('work'), 'f', `r-${i}`, silentLogger);
    stored += r.outputs.length;
    refused += r.errors.length;
  }
  racer.kill('SIGKILL');
  t.ok(stored > 0, `the function's own files were stored while nothing raced them (${stored} in ${rounds} rounds)`);
  t.ok(refused > 0, `the link, and the folder while it was a link, were refused (${refused} errors)`);
  t.notOk(bodies.some((b) => b.toString().includes(text)), `no upload of ${bodies.length} holds the host's secret`);

  // The wipe, with the racer back at it: the host folder keeps its files.
  const again = spawn('bash', ['-c', `cd ${raw}/output 2>/dev/null && while true; do mv d d.real && ln -s ${secretDir} d; rm d && mv d.real d; done`], { stdio: 'ignore' });
  t.teardown(() => again.kill('SIGKILL'));
  for (let i = 0; i < 20; i++) await scratch.wipe([]).catch(() => undefined);
  again.kill('SIGKILL');
  t.same((await readdir(secretDir)).sort(), ['x.txt', 'y.txt'], 'nothing of the host was removed');
  t.equal(await readFile(join(secretDir, 'x.txt'), 'utf8'), text);
});

t.test('the view refuses a link at any component; the container\'s own side still follows its links', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'nanogrid-view-'));
  const scratch = await Scratch.create({ imagePath: join(root, 's.img'), mountDir: join(root, 'mnt'), viewDir: join(root, 'view'), limitBytes: 16 << 20, reserve: false, timeoutMs: 30_000 });
  t.teardown(async () => {
    await scratch.destroy();
    await rm(root, { recursive: true, force: true });
  });
  await mkdir(join(scratch.hostPath('tmp'), 'real'));
  await writeFile(join(scratch.hostPath('tmp'), 'real', 'f'), 'inside');
  await symlink('real', join(scratch.hostPath('tmp'), 'link'));
  t.equal(await readFile(join(scratch.hostPath('tmp'), 'link', 'f'), 'utf8'), 'inside', 'a function may use links of its own in its space');
  await t.rejects(readFile(join(scratch.path('tmp'), 'link', 'f')), { code: 'ELOOP' }, 'the agent never resolves one');
  t.equal(await readFile(join(scratch.path('tmp'), 'real', 'f'), 'utf8'), 'inside', 'and reads real paths as usual');
});
