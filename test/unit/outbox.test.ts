import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { failedResult, type Result } from '../../src/core/result.js';
import { silentLogger } from '../../src/observe/log.js';
import { Outbox } from '../../src/sinks/outbox.js';

const result = (requestId: string): Result =>
  failedResult({ requestId, functionId: 'f', runtime: 'python', reason: 'INTERNAL', message: 'm', memoryMb: 128, attempt: 1, workerId: 'w', totalMs: 1 });

t.test('the outbox keeps results on disk across a restart, oldest first', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-outbox-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = new Outbox(dir, 100, silentLogger);
  await a.load();
  await a.put(result('one'));
  await new Promise((r) => setTimeout(r, 5));
  await a.put(result('../two/with/slashes'));
  t.equal(a.size, 2);
  // A crash mid-write leaves a .tmp; a torn file is set aside.
  await writeFile(join(dir, 'x.json.tmp'), '{"requestId":');
  await writeFile(join(dir, 'y.json'), 'not json');

  const b = new Outbox(dir, 100, silentLogger);
  t.equal(await b.load(), 2, 'both results come back');
  t.same(b.list().map((r) => r.requestId), ['one', '../two/with/slashes'], 'oldest first; any request id is a safe name');
  t.ok(b.has('one'));
  const files = await readdir(dir);
  t.notOk(files.some((f) => f.endsWith('.tmp')), 'the torn write is gone');
  t.ok(files.includes('y.json.bad'), 'the unreadable entry is set aside, not deleted');
  await b.remove('one');
  t.equal(await new Outbox(dir, 100, silentLogger).load(), 1, 'a delivered result is gone from disk');
});

t.test('past its limit the outbox drops the oldest', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-outbox-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const o = new Outbox(dir, 2, silentLogger);
  await o.load();
  for (const id of ['a', 'b', 'c']) await o.put(result(id));
  t.same(o.list().map((r) => r.requestId), ['b', 'c']);
  t.equal((await readdir(dir)).length, 2);
});

t.test('without a folder it is memory only', async (t) => {
  const o = new Outbox(undefined, 10, silentLogger);
  t.equal(await o.load(), 0);
  await o.put(result('m'));
  t.equal(o.durable, false);
  t.ok(o.has('m'));
});
