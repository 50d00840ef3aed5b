import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile, appendFile, copyFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { removeLeftovers, uniqueId } from './helpers/harness.js';
import { runInGroup } from './helpers/processGroup.js';

// The release artifact (npm run package) installs and starts with no registry and no
// network: it is unpacked and run inside a network namespace with nothing but loopback.
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PACKAGE = join(ROOT, 'ops/package.sh');
const INSTALL = join(ROOT, 'ops/fleet/install-artifact.sh');

const sh = (cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 300_000) => runInGroup(cmd, args, { env, timeoutMs });

const dir = await mkdtemp(join(tmpdir(), 'nanogrid-artifact-'));
t.teardown(() => rm(dir, { recursive: true, force: true }));
const version = `0.0.0-test.${process.pid}`;
const built = await sh('bash', [PACKAGE], { ...process.env, NANOGRID_VERSION: version, NANOGRID_RELEASE_DIR: join(dir, 'release'), NANOGRID_PACKAGE_BUILT: '1' });
const tarball = join(dir, 'release', `nanogrid-worker-${version}.tgz`);

t.test('npm run package: one versioned tarball, its sha256 printed and written beside it', async (t) => {
  t.equal(built.code, 0, built.err.slice(-2000));
  const sum = createHash('sha256').update(await readFile(tarball)).digest('hex');
  t.match(built.out, new RegExp(`^${tarball.replace(/[.+]/g, '\\$&')}$`, 'm'));
  t.match(built.out, new RegExp(`^sha256 ${sum}$`, 'm'));
  t.equal((await readFile(`${tarball}.sha256`, 'utf8')).trim(), `${sum}  nanogrid-worker-${version}.tgz`);
});

const sum = createHash('sha256').update(await readFile(tarball)).digest('hex');
const installRoot = join(dir, 'opt');

t.test('a tarball that does not match its sha256 is not unpacked', async (t) => {
  const bad = join(dir, 'tampered.tgz');
  await copyFile(tarball, bad);
  await appendFile(bad, 'x');
  const r = await sh('bash', [INSTALL, '--unpack-only', bad, sum], { ...process.env, NANOGRID_INSTALL_ROOT: installRoot });
  t.equal(r.code, 3);
  t.match(r.err, /has sha256 [0-9a-f]{64}, not [0-9a-f]{64}: not installed/);
  t.rejects(stat(join(installRoot, 'releases')), 'nothing unpacked');
  const r2 = await sh('bash', [INSTALL, '--unpack-only', tarball, 'abc'], { ...process.env, NANOGRID_INSTALL_ROOT: installRoot });
  t.equal(r2.code, 2, 'a malformed sha256 is refused');
});

t.test('in a namespace with no network: unpacked, started on its Node, and it runs a function', async (t) => {
  const agentId = uniqueId('artifact');
  const work = join(dir, 'work');
  const fn = join(dir, 'fn');
  await sh('mkdir', ['-p', work, fn]);
  await writeFile(join(fn, 'main.py'), 'import json, sys\nprint("hello", json.load(sys.stdin)["who"])\n');
  t.teardown(() => removeLeftovers(agentId, work));
  // Loopback only: no route anywhere, so no registry and no AWS can be reached.
  const script = `
    set -euo pipefail
    ip link set lo up
    echo "routes: [$(ip -4 route show) $(ip -6 route show | grep -v '^::1 ' || true)]"
    echo "links: $(ip -o link show | awk -F': ' '{print $2}' | tr '\\n' ' ')"
    rel=$(bash "$INSTALL" --unpack-only "$TARBALL" "$SUM")
    echo "release: $rel"
    cd "$rel"
    node dist/src/main.js --local > "$WORK/agent.log" 2>&1 &
    agent=$!
    trap 'kill $agent 2>/dev/null; wait $agent 2>/dev/null || true' EXIT
    for _ in $(seq 1 120); do [ -s "$NANOGRID_LOCAL_STACK_FILE" ] && break; sleep 0.5; done
    node dist/src/cli/nanogrid.js invoke "$FN" --function artifact-fn --input '{"who":"artifact"}' --local --json
  `;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    INSTALL,
    TARBALL: tarball,
    SUM: sum,
    WORK: work,
    FN: fn,
    NANOGRID_INSTALL_ROOT: installRoot,
    NANOGRID_LOCAL_STACK_FILE: join(work, 'local-stack.json'),
    NANOGRID_LOCAL_PORT: '0',
    HTTP_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    NANOGRID_AGENT_ID: agentId,
    NANOGRID_WORK_ROOT: work,
    NANOGRID_PREWARM: 'python=0,cpp=0',
    NANOGRID_RECEIVE_WAIT_S: '1',
    NANOGRID_CLOUDWATCH: 'off',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  for (const k of ['SQS_QUEUE_URL', 'REDIS_URL', 'AWS_ENDPOINT_URL', 'npm_config_registry']) delete env[k];
  const r = await sh('unshare', ['--net', '--', 'bash', '-c', script], env, 240_000);
  const log = await readFile(join(work, 'agent.log'), 'utf8').catch(() => '');
  t.equal(r.code, 0, `${r.err.slice(-1500)}\n${log.slice(-1500)}`);
  t.match(r.out, /^routes: \[ ?\]$/m, 'no route at all in the namespace');
  t.match(r.out, /^links: lo $/m);
  const rel = /^release: (.*)$/m.exec(r.out)?.[1] ?? '';
  t.equal(rel, join(installRoot, 'releases', version));
  const result = JSON.parse(r.out.slice(r.out.indexOf('{'))) as { status: string; stdout: string };
  t.equal(result.status, 'SUCCESS');
  t.equal(result.stdout.trim(), 'hello artifact');

  const manifest = JSON.parse(await readFile(join(rel, 'manifest.json'), 'utf8')) as Record<string, string>;
  t.match(manifest, { name: 'nanogrid-worker', version, node: process.versions.node, nodeAbi: process.versions.modules, platform: 'linux-x64' });
  t.match(manifest.commit, /^[0-9a-f]{40}$/);
  const modules = await readdir(join(rel, 'node_modules'));
  t.ok(modules.includes('ioredis') && modules.includes('dockerode'), 'production dependencies inside');
  t.notOk(modules.includes('tap') || modules.includes('typescript') || modules.includes('aws-cdk-lib'), 'no development dependencies');
  t.ok((await stat(join(rel, 'package-lock.json'))).isFile(), 'the lockfile it was installed from');
  t.ok((await stat(join(rel, 'dist/runner/runner'))).mode & 0o100, 'the runner, built');
  t.ok((await stat(join(rel, 'dist/runner/zygote.py'))).isFile());
});
