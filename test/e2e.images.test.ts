import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { createLogger } from '../src/core/log.js';
import { ecrRegion, ensureImages, registryOf } from '../src/container/imagePull.js';
import { docker, startHarness, uniqueId } from './helpers/harness.js';
import { startRegistry } from './helpers/registry.js';

// An image with nothing in it but /bin/sh (Debian's static busybox, installed by
// ops/setup.sh): the runner needs nothing from an image, and runs the command without it.
const IMAGE = 'nanogrid/sh-only:test';

async function shOnlyImage(): Promise<void> {
  try {
    await docker.getImage(IMAGE).inspect();
    return;
  } catch {
    // build it below
  }
  const dir = mkdtempSync(join(tmpdir(), 'nanogrid-shonly-'));
  try {
    mkdirSync(join(dir, 'bin'));
    copyFileSync('/bin/busybox', join(dir, 'bin', 'sh'));
    execFileSync('/bin/sh', ['-c', `chmod 0755 '${dir}/bin/sh' && tar -C '${dir}' -c . | docker import - ${IMAGE}`], { stdio: 'ignore' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

t.test('an image with nothing but /bin/sh runs functions through the runner', async (t) => {
  await shOnlyImage();
  const h = await startHarness(t, {
    env: { NANOGRID_IMAGE_CPP: IMAGE, NANOGRID_COMMAND_CPP: 'sh run.sh', NANOGRID_PREWARM: 'python=0,cpp=1', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=1' },
  });
  const before = (await h.containers()).map((c) => c.Id);
  const script = ['echo "hello from sh"', 'echo "to stderr" >&2', '( while :; do :; done ) &', 'exit 4'].join('\n');
  const r = await h.invoke('sh-only', { 'run.sh': script }, { runtime: 'cpp' });
  t.equal(r.status, 'FAILED');
  t.equal(r.exitCode, 4);
  t.equal(r.stdout, 'hello from sh\n');
  t.equal(r.stderr, 'to stderr\n');
  t.equal(r.startKind, 'prewarm');
  const again = await h.invoke('sh-only', undefined, { runtime: 'cpp' });
  t.equal(again.startKind, 'warm', 'the busy loop it left was killed: the container was verified clean and reused');
  t.same((await h.containers()).map((c) => c.Id), before);
});

t.test('runtime images: pulled from their registry before ready; a failure names image and registry', async (t) => {
  const log = createLogger('silent');
  await t.rejects(ensureImages(docker, ['nanogrid/absent:none'], { policy: 'never', timeoutMs: 5000, log }), /image nanogrid\/absent:none is missing: .*NANOGRID_IMAGE_PULL=missing/);
  // A registry on loopback that nothing answers: refused at once, retried with jitter, then named.
  await t.rejects(
    ensureImages(docker, ['127.0.0.1:9/nanogrid/python:missing'], { policy: 'missing', timeoutMs: 20_000, log, tries: 2 }),
    /image 127\.0\.0\.1:9\/nanogrid\/python:missing could not be pulled from 127\.0\.0\.1:9 after 2 tries/,
  );
  // Present and not forced: no pull at all (the local image has no registry to come from).
  await ensureImages(docker, ['nanogrid/python:local'], { policy: 'missing', timeoutMs: 5000, log });
  t.equal(registryOf('123456789012.dkr.ecr.eu-west-1.amazonaws.com/nanogrid/python:1'), '123456789012.dkr.ecr.eu-west-1.amazonaws.com');
  t.equal(registryOf('nanogrid/python:local'), undefined);
  t.equal(registryOf('localhost:5000/x'), 'localhost:5000');
  t.equal(ecrRegion('123456789012.dkr.ecr.eu-west-1.amazonaws.com'), 'eu-west-1');
  t.equal(ecrRegion('registry.example.com'), undefined);
});

t.test('an agent pulls its runtime image from the registry its name gives, before it is ready, and runs in it', async (t) => {
  const tag = uniqueId('pulled');
  const registry = await startRegistry(t, docker, { [`nanogrid/python:${tag}`]: 'nanogrid/python:local' });
  const image = `${registry.host}/nanogrid/python:${tag}`;
  t.teardown(() => docker.getImage(image).remove({ noprune: true }).catch(() => undefined));
  const h = await startHarness(t, { env: { NANOGRID_IMAGE_PYTHON: image, NANOGRID_IMAGE_PULL: 'missing' } });
  t.ok(registry.requests.some((r) => /^(GET|HEAD) /.test(r) && r.endsWith(`/v2/nanogrid/python/manifests/${tag}`)), `the manifest was fetched from the registry (${registry.requests.slice(0, 4).join(', ')})`);
  // Its layers and config are the local image's: dockerd resolves the tag's digest and,
  // knowing that content, needs no blob.
  t.ok((await docker.getImage(image).inspect()).Id, 'the image is present');
  const r = await h.invoke('pulled-hello', { 'main.py': 'print("from a pulled image")\n' });
  t.equal(r.status, 'SUCCESS');
  t.equal(r.stdout.trim(), 'from a pulled image');
  const log = createLogger('silent');
  const before = registry.requests.length;
  await ensureImages(docker, [image], { policy: 'missing', timeoutMs: 60_000, log });
  t.equal(registry.requests.length, before, 'missing: present, so not asked again');
  await ensureImages(docker, [image], { policy: 'always', timeoutMs: 60_000, log });
  t.ok(registry.requests.slice(before).some((q) => q.includes('/manifests/')), 'always: asked again');
});

t.test('a pull of content dockerd does not have fetches every blob', async (t) => {
  const id = uniqueId('tiny');
  const dir = mkdtempSync(join(tmpdir(), 'nanogrid-tiny-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'root'));
  // A file of its own makes a layer no other image shares.
  execFileSync('sh', ['-c', `echo ${id} > ${join(dir, 'root', 'id')} && tar -C ${join(dir, 'root')} -cf ${join(dir, 'root.tar')} .`]);
  const source = `nanogrid/tiny-src:${id}`;
  execFileSync('docker', ['import', join(dir, 'root.tar'), source]);
  const registry = await startRegistry(t, docker, { [`nanogrid/tiny:${id}`]: source });
  await docker.getImage(source).remove();
  const image = `${registry.host}/nanogrid/tiny:${id}`;
  t.teardown(() => docker.getImage(image).remove().catch(() => undefined));
  await ensureImages(docker, [image], { policy: 'missing', timeoutMs: 60_000, log: createLogger('silent') });
  t.ok((await docker.getImage(image).inspect()).Id);
  t.equal(registry.requests.filter((r) => r.startsWith('GET /v2/nanogrid/tiny/blobs/sha256:')).length, 2, 'its config and its one layer');
});
