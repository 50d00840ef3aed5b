import { createHash } from 'node:crypto';
import { execFile } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import type Docker from 'dockerode';
import { listen } from '../../src/local/awsStandIns.js';

const exec = promisify(execFile);
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Registry {
  /** host:port, as an image name's registry part. */
  host: string;
  /** Requests seen, as "METHOD path". */
  requests: string[];
}

/**
 * A read-only Docker registry (API v2) on loopback, serving local images under new names:
 * `docker save`, then each layer gzipped and addressed by digest with a schema 2 manifest.
 * Docker treats 127.0.0.0/8 as an insecure registry, so plain HTTP is enough.
 */
export async function startRegistry(t: { teardown(fn: () => unknown): void }, docker: Docker, serve: Record<string, string>): Promise<Registry> {
  const blobs = new Map<string, Buffer>();
  const manifests = new Map<string, { body: Buffer; digest: string }>();
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-registry-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  for (const [name, local] of Object.entries(serve)) {
    const tar = join(dir, 'image.tar');
    await pipeline(await docker.getImage(local).get(), createWriteStream(tar));
    const out = join(dir, name.replace(/[^a-z0-9]/gi, '_'));
    await exec('mkdir', ['-p', out]);
    await exec('tar', ['-xf', tar, '-C', out]);
    const [entry] = JSON.parse(await readFile(join(out, 'manifest.json'), 'utf8')) as Array<{ Config: string; Layers: string[] }>;
    const config = await readFile(join(out, entry!.Config));
    blobs.set(sha(config), config);
    const layers = [];
    for (const l of entry!.Layers) {
      const gz = gzipSync(await readFile(join(out, l)), { level: 1 });
      blobs.set(sha(gz), gz);
      layers.push({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: gz.length, digest: sha(gz) });
    }
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha(config) },
        layers,
      }),
    );
    const [repo, tag] = name.split(':') as [string, string];
    manifests.set(`${repo}:${tag}`, { body, digest: sha(body) });
    manifests.set(`${repo}:${sha(body)}`, { body, digest: sha(body) });
  }
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    requests.push(`${req.method} ${path}`);
    if (path === '/v2/' || path === '/v2') return res.writeHead(200, { 'content-type': 'application/json', 'docker-distribution-api-version': 'registry/2.0' }).end('{}');
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(path);
    const found = m?.[2] === 'manifests' ? manifests.get(`${m[1]}:${m[3]}`) : m ? { body: blobs.get(m[3]!), digest: m[3]! } : undefined;
    if (!found?.body) return res.writeHead(404, { 'content-type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN","message":"unknown"}]}');
    res.writeHead(200, {
      'content-type': m![2] === 'manifests' ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/octet-stream',
      'content-length': found.body.length,
      'docker-content-digest': found.digest,
      'docker-distribution-api-version': 'registry/2.0',
    });
    res.end(req.method === 'HEAD' ? undefined : found.body);
  });
  return { host: new URL(await listen(t, server)).host, requests };
}
