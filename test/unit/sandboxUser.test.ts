import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { DEFAULT_UID_RANGE, engineNameFor, groupFor, parseUidRange, passwdFor, rangeConflict, SandboxUids } from '../../src/container/sandboxUser.js';
import { loadConfig } from '../../src/config.js';

t.test('a uid range is FIRST-LAST above every account and below 2^31', async (t) => {
  t.same(parseUidRange('200000-200015'), { first: 200000, last: 200015 });
  t.same(parseUidRange(' 3000000 - 3999999 '), { first: 3000000, last: 3999999 });
  for (const bad of ['65534-70000', '200000-200010', '2147483640-2147483647', 'x-y', '5', '300000-200000']) t.equal(parseUidRange(bad), null, bad);
  t.throws(() => loadConfig({ NANOGRID_SANDBOX_UIDS: '1000-2000' }), /NANOGRID_SANDBOX_UIDS/);
  t.same(loadConfig({}).sandboxUids, DEFAULT_UID_RANGE);
});

t.test('uids are handed out once each until released; the range bounds them', async (t) => {
  let seq = 0;
  const u = new SandboxUids({ first: 100000, last: 100015 }, () => (seq++ % 16) / 16);
  const taken = Array.from({ length: 16 }, () => u.take());
  t.equal(new Set(taken).size, 16, 'no uid twice');
  t.ok(taken.every((x) => x >= 100000 && x <= 100015));
  t.throws(() => u.take(), /every uid of 100000-100015 is in use/);
  u.release(taken[3]!);
  t.equal(u.take(), taken[3], 'a released uid is free again');
  t.equal(u.inUse, 16);
  t.equal(engineNameFor(100007), 'ng-uid-100007', 'the engine name is the uid\'s alone');
});

t.test('the container\'s passwd and group name the sandbox user', async (t) => {
  t.match(passwdFor(1879048200), /^sandbox:x:1879048200:1879048200:.*:\/tmp:/m);
  t.match(passwdFor(1879048200), /^root:x:0:0:/m);
  t.match(groupFor(1879048200), /^sandbox:x:1879048200:$/m);
});

t.test('a range with a host account, group or subordinate range in it is refused', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-uids-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const files = { passwd: join(dir, 'passwd'), group: join(dir, 'group'), subuid: join(dir, 'subuid'), subgid: join(dir, 'subgid') };
  await writeFile(files.passwd, 'root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n');
  await writeFile(files.group, 'root:x:0:\n');
  await writeFile(files.subuid, 'dockremap:100000:65536\n');
  await writeFile(files.subgid, '# none\n');
  const range = { first: 200000, last: 299999 };
  t.equal(await rangeConflict(range, files), null);
  t.match(await rangeConflict({ first: 150000, last: 170000 }, files), /subordinate range 100000-165535 of dockremap/);
  await writeFile(files.passwd, 'svc:x:250000:250000::/:/bin/false\n');
  t.match(await rangeConflict(range, files), /host account svc \(250000/);
  await writeFile(files.passwd, '');
  await writeFile(files.group, 'grp:x:299999:\n');
  t.match(await rangeConflict(range, files), /host group grp/);
  t.equal(await rangeConflict(range, { ...files, passwd: join(dir, 'missing'), group: join(dir, 'missing') }), null, 'missing files hold nothing');
});
