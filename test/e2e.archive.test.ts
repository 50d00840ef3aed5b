import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';
import t from 'tap';
import { waitUntil } from '../src/core/timeout.js';
import { buildZip } from '../src/local/client.js';
import { archiveClient } from '../src/sinks/codeArchive.js';
import { ONE_PYTHON, startHarness } from './helpers/harness.js';

/** s3rver: a second, different S3 implementation from npm, standing in for GCS. */
async function startArchive(t: { teardown(fn: () => unknown): void }): Promise<{ endpoint: string; server: S3rver; client: S3Client }> {
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-archive-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: 'archive' }] });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const client = archiveClient({ endpoint, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' });
  t.teardown(async () => {
    client.destroy();
    await server.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  });
  return { endpoint, server, client };
}

const archived = async (client: S3Client) => ((await client.send(new ListObjectsV2Command({ Bucket: 'archive' }))).Contents ?? []).map((o) => o.Key!).sort();

t.test('the code of a version that succeeded is archived once, in the background, on a second S3', async (t) => {
  const archive = await startArchive(t);
  const h = await startHarness(t, {
    env: { ...ONE_PYTHON, GCP_BUCKET_NAME: 'archive', NANOGRID_ARCHIVE_ENDPOINT: archive.endpoint, NANOGRID_ARCHIVE_ACCESS_KEY_ID: 'S3RVER', NANOGRID_ARCHIVE_SECRET_ACCESS_KEY: 'S3RVER' },
  });
  // Zips carry timestamps: keep the very bytes uploaded, to compare with the archive's.
  const zip = await buildZip({ 'main.py': 'print("v1")\n' });
  await h.client.upload('arch/v1.zip', zip);
  for (let i = 0; i < 3; i++) t.equal((await h.invoke('arch', undefined)).status, 'SUCCESS');
  const failing = await h.invoke('arch-fails', { 'main.py': 'raise SystemExit(1)\n' });
  t.equal(failing.status, 'FAILED');
  await waitUntil('archived', () => h.agent.status().archive?.archived === 1 && h.agent.status().archive?.pending === 0, { timeoutMs: 30_000 });
  const keys = await archived(archive.client);
  t.equal(keys.length, 1, `one object for three successes of one version, none for a failure: ${keys.join(', ')}`);
  t.match(keys[0], /^code-bucket\/arch\/v1\.zip\/[0-9a-f]{32}$/, 'source bucket, key, then the version (ETag)');
  const body = Buffer.from(await (await archive.client.send(new GetObjectCommand({ Bucket: 'archive', Key: keys[0] }))).Body!.transformToByteArray());
  t.ok(body.equals(zip), 'the same bytes as the code object');

  // A new version under the same key is a new archive object.
  await h.client.upload('arch/v1.zip', await buildZip({ 'main.py': 'print("v1, fixed")\n' }));
  await new Promise((r) => setTimeout(r, 2100)); // past the code staleness bound
  t.equal((await h.invoke('arch', undefined)).stdout.trim(), 'v1, fixed');
  await waitUntil('second version archived', () => h.agent.status().archive?.archived === 2, { timeoutMs: 30_000 });
  t.equal((await archived(archive.client)).length, 2);
  const metrics = await (await fetch(`http://127.0.0.1:${h.agent.httpPort}/metrics`)).text();
  t.match(metrics, /nanogrid_code_archive_total\{event="archived"\} 2/);
});

t.test('an archive that is down never affects an invocation', async (t) => {
  const archive = await startArchive(t);
  const h = await startHarness(t, {
    env: { ...ONE_PYTHON, GCP_BUCKET_NAME: 'archive', NANOGRID_ARCHIVE_ENDPOINT: archive.endpoint, NANOGRID_ARCHIVE_ACCESS_KEY_ID: 'S3RVER', NANOGRID_ARCHIVE_SECRET_ACCESS_KEY: 'S3RVER' },
  });
  await archive.server.close();
  const r = await h.invoke('arch-down', { 'main.py': 'print("fine")\n' });
  t.equal(r.status, 'SUCCESS');
  t.equal(r.stdout.trim(), 'fine');
  await waitUntil('given up', () => h.agent.status().archive?.failed === 1, { timeoutMs: 30_000 });
  t.equal(h.agent.status().archive?.archived, 0);
});

// Google Cloud Storage's XML API refuses the SDK's default request checksums: what the
// archive client really sends, decoded by a local endpoint.
t.test('the archive client sends no checksum headers and no aws-chunked bodies', async (t) => {
  const seen: { method?: string; url?: string; headers: IncomingHttpHeaders; body: string }[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method, url: req.url, headers: req.headers, body: Buffer.concat(chunks).toString() });
      res.writeHead(200, { ETag: '"0123456789abcdef0123456789abcdef"' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  const client = archiveClient({ endpoint: `http://127.0.0.1:${port}`, accessKeyId: 'GOOG1EXAMPLE', secretAccessKey: 'secret' });
  t.teardown(() => client.destroy());
  await client.send(new PutObjectCommand({ Bucket: 'archive', Key: 'k', Body: Buffer.from('zip bytes') }));
  const put = seen.find((s) => s.method === 'PUT')!;
  t.ok(put, 'the PUT arrived');
  t.match(put.url, /^\/archive\/k(\?|$)/, 'path-style');
  t.same(Object.keys(put.headers).filter((h) => h.startsWith('x-amz-checksum') || h === 'x-amz-sdk-checksum-algorithm' || h === 'x-amz-trailer'), [], 'no checksum headers');
  t.notMatch(String(put.headers['content-encoding'] ?? ''), /aws-chunked/);
  t.equal(put.body, 'zip bytes', 'the body as is');
  t.match(String(put.headers.authorization), /^AWS4-HMAC-SHA256 Credential=GOOG1EXAMPLE\//, 'signed with the HMAC key');
});
