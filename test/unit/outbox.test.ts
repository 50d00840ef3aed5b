import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { failedResult } from '../../src/core/result.js';
import { silentLogger } from '../../src/core/log.js';
import { Outbox } from '../../src/sinks/outbox.js';

const json = (requestId: string, pad = 0) =>
  JSON.stringify({ ...failedResult({ requestId, functionId: 'f', runtime: 'python', reason: 'INTERNAL', message: 'm', memoryMb: 128, attempt: 1, workerId: 'w', totalMs: 1 }), stdout: 'x'.repeat(pad) });
const roomy = { entries: 100, bytes: 1 << 30 };

t.test('the outbox keeps results on disk across a restart, oldest first', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-outbox-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const a = new Outbox(dir, roomy, silentLogger);
  await a.load();
  await a.put('one', json('one'));
  await new Promise((r) => setTimeout(r, 5));
  await a.put('../two/with/slashes', json('../two/with/slashes'));
  t.equal(a.size, 2);
  t.equal(a.bytes, Buffer.byteLength(json('one')) + Buffer.byteLength(json('../two/with/slashes')), 'sizes are counted');
  // A crash mid-write leaves a .tmp; a torn file is set aside.
  await writeFile(join(dir, 'x.json.tmp'), '{"requestId":');
  await writeFile(join(dir, 'y.json'), 'not json');

  const b = new Outbox(dir, roomy, silentLogger);
  t.equal(await b.load(), 2, 'both results come back');
  t.same(b.ids(), ['one', '../two/with/slashes'], 'oldest first; any request id is a safe name');
  t.ok(b.has('one'));
  t.equal((await b.get('one'))?.requestId, 'one', 'read back from disk when asked for');
  const files = await readdir(dir);
  t.notOk(files.some((f) => f.endsWith('.tmp')), 'the torn write is gone');
  t.ok(files.includes('y.json.bad'), 'the unreadable entry is set aside, not deleted');
  await b.remove('one');
  t.equal(await new Outbox(dir, roomy, silentLogger).load(), 1, 'a delivered result is gone from disk');
});

t.test('past a limit the outbox is full: it keeps everything and says when it has room again', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-outbox-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const one = Buffer.byteLength(json('a', 1000));
  // Full with the third result; room again once two of four are gone.
  const o = new Outbox(dir, { entries: 100, bytes: Math.floor(2.5 * one) }, silentLogger);
  await o.load();
  const events: string[] = [];
  o.on('full', () => events.push('full'));
  o.on('room', () => events.push('room'));
  await o.put('a', json('a', 1000));
  t.equal(o.full, false);
  await o.put('b', json('b', 1000));
  await o.put('c', json('c', 1000));
  t.equal(o.full, true, 'past its bytes');
  await o.put('d', json('d', 1000));
  t.same(o.ids(), ['a', 'b', 'c', 'd'], 'nothing is dropped: what the runs under way produce is kept');
  t.equal((await readdir(dir)).length, 4);
  await o.remove('a');
  await o.remove('b');
  t.equal(o.full, false);
  t.same(events, ['full', 'room'], 'one event each way');

  const few = new Outbox(undefined, { entries: 2, bytes: 1 << 30 }, silentLogger);
  await few.put('x', json('x'));
  await few.put('y', json('y'));
  t.equal(few.full, true, 'past its entries');
});

t.test('without a folder it is memory only', async (t) => {
  const o = new Outbox(undefined, roomy, silentLogger);
  t.equal(await o.load(), 0);
  const text = json('m');
  await o.put('m', text);
  t.equal(o.durable, false);
  t.ok(o.has('m'));
  t.equal(await o.json('m'), text);
  o.keepInMemory('m', json('m', 10));
  t.equal(o.size, 1, 'kept again under the same id, once');
});
