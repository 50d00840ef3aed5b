import { mkdtemp, readFile, rm, writeFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser, type Result as TapResult } from 'tap-parser';
import t from 'tap';
import { killGroup, runInGroup } from '../helpers/processGroup.js';

// The VM suite (npm run test:vm): a host like the fleet's, in a QEMU guest (ops/vm), runs
// the cgroup v2 tests and the install path. The guest runs each file of test/vm/guest with
// the project shared read-only; this file reads the TAP each one wrote back and reports it.
//
//   NANOGRID_VM_KEEP=1      keep the job folder (the guest's console, TAP and logs) and say where
//   NANOGRID_VM_ONLY=name   run these guest files (cgroupV2, install; crun, the OCI runtimes' anatomy, runs
//                          only when named: NANOGRID_VM_ONLY=crun, about 3 minutes)

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GUEST_FILES = (process.env.NANOGRID_VM_ONLY ?? 'cgroupV2,install').split(',');
const BOOT_TIMEOUT_S = Number(process.env.NANOGRID_VM_TIMEOUT_S ?? 1500);
const FILE_TIMEOUT_S = 900;

// Its own process group: a failed or interrupted test kills QEMU with it.
const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv, onChild?: (pid: number) => void) => runInGroup(cmd, args, { env, cwd: ROOT, onChild, echoStderr: true });

/** The guest's TAP for one file: each top-level test with the failures inside it, and the measurements it noted. */
function parseTap(text: string): Promise<{ tests: { ok: boolean; name: string; failures: string[] }[]; measures: string[] }> {
  return new Promise((resolve) => {
    const tests: { ok: boolean; name: string; failures: string[] }[] = [];
    const measures: string[] = [];
    let pending: string[] = [];
    const p = new Parser();
    const watch = (parser: Parser, depth: number) => {
      parser.on('comment', (c: string) => {
        const m = /# measure (.*)/.exec(c);
        if (m) measures.push(m[1]!.trim());
      });
      parser.on('child', (child: Parser) => watch(child, depth + 1));
      parser.on('assert', (a: TapResult) => {
        if (depth === 0) {
          tests.push({ ok: a.ok, name: a.name, failures: pending });
          pending = [];
        } else if (!a.ok) {
          pending.push(`${a.name}${a.diag ? ` ${JSON.stringify(a.diag).slice(0, 600)}` : ''}`);
        }
      });
    };
    watch(p, 0);
    p.on('complete', () => resolve({ tests, measures }));
    p.end(text);
  });
}

// A run interrupted before its teardown leaves its job folder: none is in use once no QEMU runs.
if ((await run('pgrep', ['-x', 'qemu-system-x86'], process.env)).out.trim() === '') {
  for (const old of (await readdir('/tmp')).filter((d) => d.startsWith('nanogrid-vmjob-'))) await rm(join('/tmp', old), { recursive: true, force: true });
}
const job = await mkdtemp('/tmp/nanogrid-vmjob-');
const keep = process.env.NANOGRID_VM_KEEP === '1';
let bootPid: number | undefined;
t.teardown(async () => {
  if (bootPid) killGroup(bootPid);
  if (keep) console.error(`# the guest's job folder is kept: ${job} (serial.log, out.log, *.tap, *.err)`);
  else await rm(job, { recursive: true, force: true });
});

const env = { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };
const suiteStart = performance.now();
const built = await run('bash', ['ops/vm/build.sh'], env);
if (built.code !== 0) throw new Error(`the guest could not be built:\n${built.err.slice(-3000)}`);
const guest = built.out.trim().split('\n').pop()!;
const packaged = await run('bash', ['ops/package.sh'], { ...env, NANOGRID_RELEASE_DIR: job, NANOGRID_PACKAGE_BUILT: '1', NANOGRID_VERSION: `0.0.0-vm.${process.pid}` });
if (packaged.code !== 0) throw new Error(`npm run package failed:\n${packaged.err.slice(-3000)}`);
const tarball = packaged.out.split('\n')[0]!;
const sha256 = /^sha256 ([0-9a-f]{64})$/m.exec(packaged.out)![1]!;

await writeFile(
  join(job, 'run.sh'),
  `set -u
cd /project
export NANOGRID_VM_ARTIFACT=/job/${tarball.split('/').pop()} NANOGRID_VM_ARTIFACT_SHA256=${sha256}
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
# Run directly, a tap file gives itself 30 s: each has the file timeout instead.
export TAP_TIMEOUT=${FILE_TIMEOUT_S}
echo "node $(node -v), kernel $(uname -r), $(docker version -f 'docker {{.Server.Version}}')"
for f in ${GUEST_FILES.join(' ')}; do
  s=$(date +%s)
  timeout -k 10 ${FILE_TIMEOUT_S} node dist/test/vm/guest/$f.vm.js >/job/$f.tap 2>/job/$f.err
  echo "$f rc=$? seconds=$(( $(date +%s) - s ))"
done
journalctl -u nanogrid-worker --no-pager -o cat >/job/agent.journal 2>&1 || true
`,
);

const prepMs = performance.now() - suiteStart;
const bootStart = performance.now();
const booted = await run('bash', ['ops/vm/boot.sh', guest, job, String(BOOT_TIMEOUT_S)], { ...env, NANOGRID_VM_PROJECT: ROOT }, (pid) => (bootPid = pid));
bootPid = undefined;
const bootMs = performance.now() - bootStart;
const outLog = await readFile(join(job, 'out.log'), 'utf8').catch(() => '');
const serial = await readFile(join(job, 'serial.log'), 'utf8').catch(() => '');
t.equal(booted.code, 0, `the guest ran its job and powered off\n${booted.err.slice(-1500)}\n${outLog}\n${serial.slice(-2000)}`);
t.comment(`guest: ${outLog.split('\n')[0] ?? ''}`);
t.comment(`measure VM suite: build check and package ${(prepMs / 1000).toFixed(0)} s, boot to power-off ${(bootMs / 1000).toFixed(0)} s`);

for (const f of GUEST_FILES) {
  t.test(`guest: ${f}`, async (t) => {
    const tap = await readFile(join(job, `${f}.tap`), 'utf8').catch(() => '');
    const err = await readFile(join(job, `${f}.err`), 'utf8').catch(() => '');
    const line = new RegExp(`^${f} rc=(\\d+) seconds=(\\d+)$`, 'm').exec(outLog);
    t.ok(line, `${f} ran in the guest`);
    const parsed = await parseTap(tap);
    t.ok(parsed.tests.length > 0, `${f} reported its tests${tap ? '' : ' (no TAP at all)'}\n${err.slice(-2000)}`);
    for (const test of parsed.tests) t.ok(test.ok, test.name + (test.failures.length ? `\n  ${test.failures.join('\n  ')}` : ''));
    for (const m of parsed.measures) t.comment(`measure ${f}: ${m}`);
    t.equal(line?.[1], '0', `${f} exited 0 (took ${line?.[2]} s)\n${err.slice(-2000)}`);
  });
}

t.test('the VM left nothing behind', async (t) => {
  const ps = await run('pgrep', ['-f', `qemu-system-x86_64.*${job}`], env);
  t.equal(ps.out.trim(), '', 'no QEMU process');
  const mounts = await readFile('/proc/self/mounts', 'utf8');
  t.notOk(mounts.includes(job) || mounts.includes(ROOT + '/'), 'no mount of the job folder or the work tree');
  const tree = await readdir(ROOT);
  t.notOk(tree.some((f) => /\.(img|qcow2)$/.test(f)), 'no disk image in the work tree');
});
