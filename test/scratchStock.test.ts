import { open, mkdtemp, readFile, rm, symlink, writeFile, mkdir } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { silentLogger } from '../src/core/log.js';
import { ScratchStock } from '../src/container/scratchStock.js';

// The agent's stock of scratch file systems on real loop mounts: what comes back is
// emptied and checked as new before another container gets it, and what is not as new
// is destroyed.

async function mounted(under: string): Promise<string[]> {
  return (await readFile('/proc/self/mountinfo', 'utf8'))
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(under));
}

async function newStock(t: { teardown(fn: () => unknown): void }, spare: number, more: { keep?: number; extraTtlMs?: number } = {}) {
  const root = await mkdtemp(join(tmpdir(), 'nanogrid-stock-'));
  const stock = new ScratchStock({ root, limitBytes: 16 << 20, reserve: false, timeoutMs: 30_000, spare, refillDelayMs: 3_600_000, log: silentLogger, ...more });
  t.teardown(async () => {
    await stock.close();
    await rm(root, { recursive: true, force: true });
  });
  return { root, stock };
}

t.test('a file system given back with every kind of trace is emptied, checked and handed out again', async (t) => {
  const { root, stock } = await newStock(t, 2);
  stock.fill();
  await stock.settled();
  t.equal(stock.status().made, 2, 'the spares are made ahead');
  const s = await stock.take();
  t.equal(stock.status().misses, 0, 'taken from the stock, no mkfs on the way');
  // What a function could leave: files, hidden ones, deep folders, a FIFO, a link, an
  // attribute, in every folder it writes, owned by its uid.
  for (const d of ['work', 'tmp', 'shm'] as const) {
    const p = s.hostPath(d);
    await mkdir(join(p, 'a', 'b'), { recursive: true });
    await writeFile(join(p, 'a', 'b', 'f'), 'secret');
    await writeFile(join(p, '.hidden'), 'x');
    execFileSync('mkfifo', [join(p, 'fifo')]);
    await symlink('/etc/passwd', join(p, 'link'));
    execFileSync('chown', ['-R', '12345:12345', p]);
  }
  await writeFile(join(s.hostPath('ctl'), 'runner.sock'), '');
  await stock.give(s);
  await stock.settled();
  t.same([stock.status().recycled, stock.status().dirty, stock.status().ready], [1, 0, 2]);
  const again = await stock.take();
  t.equal(again.spec.mountDir, s.spec.mountDir, 'the same file system, reused');
  for (const d of ['work', 'tmp', 'shm', 'ctl'] as const) {
    const entries = execFileSync('find', [again.hostPath(d), '-mindepth', '1']).toString().trim();
    t.equal(entries, '', `${d} is empty`);
    const st = execFileSync('stat', ['-c', '%u:%g %a', again.hostPath(d)]).toString().trim();
    t.equal(st, d === 'ctl' ? '0:0 700' : '0:0 1777', `${d} is root's again, with its mode`);
  }
  await stock.give(again);
  await stock.settled();
  t.ok((await mounted(root)).length > 0, 'kept mounted while in the stock');
  await stock.close();
  t.same(await mounted(root), [], 'closing unmounts everything');
});

t.test('a file system with an inode still held is not as new: destroyed, never handed out', async (t) => {
  const { root, stock } = await newStock(t, 2);
  stock.fill();
  await stock.settled();
  const s = await stock.take();
  // An unlinked file held open keeps its inode: the free count says so.
  const held = await open(join(s.hostPath('tmp'), 'held'), 'w');
  t.teardown(() => held.close().catch(() => undefined));
  await rm(join(s.hostPath('tmp'), 'held'));
  await stock.give(s);
  await stock.settled();
  t.same([stock.status().recycled, stock.status().dirty, stock.status().discarded, stock.status().ready], [0, 1, 1, 1]);
  await held.close();
  t.notOk((await mounted(root)).includes(s.spec.viewDir), 'its view is unmounted');
  const next = await stock.take();
  t.not(next.spec.mountDir, s.spec.mountDir, 'the next container gets another one');
  await stock.give(next);
});

t.test('a take that empties the stock makes the next one at once; one that finds none makes its own', async (t) => {
  const { stock } = await newStock(t, 1);
  const first = await stock.take();
  t.equal(stock.status().misses, 1, 'none ready: made on the spot');
  await stock.settled();
  t.same([stock.status().made, stock.status().ready], [2, 1], 'and a spare made beside it');
  const second = await stock.take();
  t.equal(stock.status().misses, 1, 'the next takes the spare');
  await stock.give(first);
  await stock.give(second);
});

t.test('no more are kept than the spares; a closed stock refuses takes and destroys what comes back', async (t) => {
  const { root, stock } = await newStock(t, 1);
  stock.fill();
  await stock.settled();
  const a = await stock.take();
  await stock.settled();
  const b = await stock.take();
  await stock.settled();
  await stock.give(a);
  await stock.give(b);
  await stock.settled();
  t.same([stock.status().ready, stock.status().recycled, stock.status().discarded], [1, 0, 2], 'the spare was refilled: both given back are destroyed');
  const c = await stock.take();
  stock.stopKeeping();
  await t.rejects(stock.take(), /closed/);
  await stock.give(c);
  await stock.close();
  t.same(await mounted(root), []);
});

t.test('under churn what comes back is kept up to the capacity, and the extras go once unused for their TTL', async (t) => {
  const { root, stock } = await newStock(t, 1, { keep: 3, extraTtlMs: 400 });
  stock.fill();
  await stock.settled();
  // Three cold starts at once, each evicting a container whose file system is still held
  // until the engine removed it: two mkfs on the spot.
  const taken: Awaited<ReturnType<ScratchStock['take']>>[] = [];
  for (let i = 0; i < 3; i++) {
    stock.returning();
    taken.push(await stock.take());
  }
  await stock.settled();
  const made = stock.status().made;
  t.equal(stock.status().misses, 2);
  for (const s of taken) await stock.give(s);
  await stock.settled();
  t.equal(stock.status().discarded, 0, 'none thrown away');
  t.equal(stock.status().ready, 3, 'all three kept: the keep count');
  // The next burst takes them all without a mkfs.
  const again = [await stock.take(), await stock.take(), await stock.take()];
  t.equal(stock.status().made, made, 'the next burst made none');
  for (const s of again) await stock.give(s);
  await stock.settled();
  const before = (await mounted(root)).length;
  await new Promise((r) => setTimeout(r, 1000));
  await stock.settled();
  t.equal(stock.status().ready, 1, 'back to the spare count once the extras stayed unused');
  t.ok((await mounted(root)).length < before, 'their mounts are gone');
  await stock.close();
  t.same(await mounted(root), []);
});
