import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import t from 'tap';
import { LOCAL_CREDENTIALS } from '../src/local/agentConfig.js';
import { ONE_PYTHON, startHarness } from './helpers/harness.js';

const WRITER = `
import os
os.makedirs('output/charts', exist_ok=True)
open('output/report.json', 'w').write('{"total": 42}')
open('output/charts/a.csv', 'w').write('x,y\\n1,2\\n')
open('output/big.bin', 'wb').write(b'b' * 5000)
os.symlink('/etc/passwd', 'output/passwd-link')
os.symlink('/', 'output/host-root')
open('not-an-output.txt', 'w').write('stays behind')
print('wrote')
`;

t.test('files under output/ are stored in the user-data bucket and listed in the result; links are not followed', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, S3_USER_DATA_BUCKET: 'user-data', NANOGRID_OUTPUTS_MAX_BYTES: '1000' } });
  await h.client.createBucket('user-data');
  const r = await h.invoke('writer', { 'main.py': WRITER });
  t.equal(r.status, 'SUCCESS', r.stderr);
  const keys = r.outputs.map((o) => o.key).sort();
  t.same(keys, [`writer/${r.requestId}/charts/a.csv`, `writer/${r.requestId}/report.json`], 'the regular files within the limit');
  t.same(r.outputs.find((o) => o.key.endsWith('report.json')), { key: `writer/${r.requestId}/report.json`, bytes: 13, versionId: null }, 'bytes, and no version id from an unversioned bucket');
  t.ok(r.outputErrors.some((e) => /big\.bin: 5000 bytes would pass NANOGRID_OUTPUTS_MAX_BYTES \(1000\)/.test(e)), r.outputErrors.join('\n'));
  t.ok(r.outputErrors.some((e) => /passwd-link: not a regular file/.test(e)));
  t.ok(r.outputErrors.some((e) => /host-root: not a regular file/.test(e)));

  const s3 = new S3Client({ region: h.stack.region, endpoint: h.stack.endpoint, forcePathStyle: true, credentials: LOCAL_CREDENTIALS });
  t.teardown(() => s3.destroy());
  const got = await s3.send(new GetObjectCommand({ Bucket: 'user-data', Key: `writer/${r.requestId}/report.json` }));
  t.equal(await got.Body!.transformToString(), '{"total": 42}');

  const metrics = await (await fetch(`http://127.0.0.1:${h.agent.httpPort}/metrics`)).text();
  t.match(metrics, /nanogrid_outputs_total\{outcome="stored"\} 2/);
  t.match(metrics, /nanogrid_outputs_total\{outcome="skipped"\} 1/);
});

t.test('an upload failure is reported, the result still delivered, the function not run again', async (t) => {
  // The bucket does not exist: every upload fails.
  const h = await startHarness(t, { env: { ...ONE_PYTHON, S3_USER_DATA_BUCKET: 'no-such-bucket' } });
  const r = await h.invoke('writer-fails', { 'main.py': "import os\nos.makedirs('output')\nopen('output/a.txt','w').write('a')\nprint('ran')\n" });
  t.equal(r.status, 'SUCCESS', 'the run stands');
  t.same(r.outputs, []);
  t.match(r.outputErrors.join('\n'), /output\/a\.txt: upload failed/);
  await h.quiet();
  t.equal(h.agent.status().supervisor.totals.deleted, 1, 'answered and deleted once');
  const python = h.agent.status().pools.find((p) => p.runtime === 'python')!;
  t.equal(python.served.prewarm + python.served.warm + python.served.cold, 1, 'ran once');
});

t.test('without a user-data bucket nothing is stored and output/ is simply wiped', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  const r = await h.invoke('writer-none', { 'main.py': "import os\nos.makedirs('output')\nopen('output/a.txt','w').write('a')\n" });
  t.equal(r.status, 'SUCCESS', r.stderr);
  t.same(r.outputs, []);
  t.same(r.outputErrors, []);
});

t.test('a stdout or stderr cut at the output limit is stored whole beside the outputs', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, S3_USER_DATA_BUCKET: 'user-data', NANOGRID_OUTPUT_LIMIT_BYTES: '1024', NANOGRID_OUTPUT_SPOOL_BYTES: '100000' } });
  await h.client.createBucket('user-data');
  const code = "import sys\nfor i in range(3000):\n    print('line %05d' % i)\nsys.stderr.write('e' * 500)\n";
  const r = await h.invoke('flood', { 'main.py': code });
  t.equal(r.status, 'SUCCESS', r.stderr);
  t.equal(r.stdoutTruncated, true);
  t.equal(r.stdout.length, 1024, 'the result keeps the limit');
  t.equal(r.stderrTruncated, false);
  const out = r.outputs.find((o) => o.key === `flood/${r.requestId}/stdout.txt`);
  t.ok(out, 'the whole stdout is stored');
  t.equal(out?.bytes, 33_000, 'every byte up to the spool limit (3000 lines of 11 bytes)');
  t.notOk(r.outputs.some((o) => o.key.endsWith('stderr.txt')), 'a stream within the limit is not stored');
  const s3 = new S3Client({ region: h.stack.region, endpoint: h.stack.endpoint, forcePathStyle: true, credentials: LOCAL_CREDENTIALS });
  t.teardown(() => s3.destroy());
  const body = await (await s3.send(new GetObjectCommand({ Bucket: 'user-data', Key: out!.key }))).Body!.transformToString();
  t.ok(body.startsWith('line 00000\nline 00001\n') && body.endsWith('line 02999\n'), 'from the first byte to the last');

  // Past the spool limit the stored stream stops there; the next run starts with no spool.
  const bigger = await h.invoke('flood2', { 'main.py': "print('x' * 300000)\n" });
  const kept = bigger.outputs.find((o) => o.key.endsWith('stdout.txt'));
  t.equal(kept?.bytes, 100_000);
  const plain = await h.invoke('flood2', undefined);
  t.equal(plain.outputs.filter((o) => o.key.endsWith('stdout.txt')).length, 1, 'its own, freshly spooled');
});
