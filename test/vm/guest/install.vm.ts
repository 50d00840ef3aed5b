import { execFile } from 'node:child_process';
import { copyFile, mkdir, mkdtemp, readFile, readlink, rm, writeFile } from 'node:fs/promises';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { promisify } from 'node:util';
import t from 'tap';
import { workerUserData } from '../../../infra/userData.js';
import { waitUntil } from '../../../src/core/timeout.js';
import { startImds } from '../../../src/local/awsStandIns.js';
import { LocalClient } from '../../../src/local/client.js';
import { SAMPLES } from '../../../src/local/samples.js';
import { startLocalStack } from '../../../src/local/stack.js';
import { fakeLogs } from '../../helpers/fakeLogs.js';

// Runs in the VM suite's guest (ops/vm) as root under systemd: the fleet's user data, as the
// stack renders it, with the guest's package step (ops/vm/guest/packages-debian.sh) in place
// of Amazon Linux's and everything else as is. Its AWS are stand-ins inside the guest: the
// metadata address on the guest's loopback, SQS and S3 in this process (fauxqs, and s3rver
// for the release bucket), the AWS CLI and
// cfn-signal as recording scripts (test/vm/guest/standins); Redis is the guest's own.

const exec = promisify(execFile);
const ARTIFACT = process.env.NANOGRID_VM_ARTIFACT!;
const SHA256 = process.env.NANOGRID_VM_ARTIFACT_SHA256!;
const VERSION = /nanogrid-worker-(.+)\.tgz$/.exec(ARTIFACT)![1]!;
const UNIT = 'nanogrid-worker';
const PORT = 8080;
const STANDINS = '/run/nanogrid-standins';
const INSTANCE_ID = 'i-0123456789guest';
const STOP_TIMEOUT_S = 120;

async function sh(cmd: string, args: string[], timeoutMs = 900_000): Promise<{ code: number; out: string }> {
  try {
    const r = await exec(cmd, args, { timeout: timeoutMs, maxBuffer: 16 << 20 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof err.code === 'number' ? err.code : -1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

const unitProp = async (p: string) => (await sh('systemctl', ['show', UNIT, '-p', p, '--value'])).out.trim();
async function agentStatus(): Promise<{ results: { outbox: number }; supervisor: { running: number } } | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${PORT}/status`, { signal: AbortSignal.timeout(3000) });
    return (await res.json()) as { results: { outbox: number }; supervisor: { running: number } };
  } catch {
    return null;
  }
}
const calls = async () => (await readFile(`${STANDINS}/calls.log`, 'utf8').catch(() => '')).trim().split('\n').filter(Boolean);

const stack = await startLocalStack({ redisUrl: 'redis://127.0.0.1:6379', maxReceiveCount: 3 });
const client = new LocalClient({ ...stack });
await client.connect();
t.teardown(async () => {
  await sh('systemctl', ['stop', UNIT]);
  await client.close();
  await stack.stop();
});
// The metadata address, on the guest's own loopback (the guest has no network device).
await sh('ip', ['addr', 'add', '169.254.169.254/32', 'dev', 'lo']);
const imds = await startImds(t, { 'instance-id': INSTANCE_ID, 'placement/region': stack.region }, { host: '169.254.169.254', port: 80 });
await mkdir(STANDINS, { recursive: true });
// The artifact's bucket is s3rver's: fauxqs takes request bodies up to 11 MiB, the artifact
// is larger. Same bucket name as the agent's code bucket (fauxqs), as on the fleet.
const releasesDir = await mkdtemp('/tmp/nanogrid-releases-');
const releases = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: releasesDir, configureBuckets: [{ name: stack.bucket }] });
const releasesEndpoint = `http://127.0.0.1:${(await releases.run()).port}`;
t.teardown(async () => {
  await releases.close().catch(() => undefined);
  await rm(releasesDir, { recursive: true, force: true });
});
await writeFile(`${STANDINS}/s3-endpoint`, releasesEndpoint);
await mkdir('/opt/aws/bin', { recursive: true });
await copyFile('/project/test/vm/guest/standins/aws', '/usr/local/bin/aws');
await copyFile('/project/test/vm/guest/standins/cfn-signal', '/opt/aws/bin/cfn-signal');
await sh('chmod', ['0755', '/usr/local/bin/aws', '/opt/aws/bin/cfn-signal']);
const s3 = new S3Client({ region: stack.region, endpoint: releasesEndpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
await s3.send(new PutObjectCommand({ Bucket: stack.bucket, Key: `releases/nanogrid-worker-${VERSION}.tgz`, Body: await readFile(ARTIFACT) }));
s3.destroy();
// CloudWatch Logs: a stand-in that decodes what the SDK sends, with the stack's two groups.
const AGENT_LOGS = '/nanogrid/vm/agent';
const FUNCTION_LOGS = '/nanogrid/vm/functions';
const logs = await fakeLogs(t, [AGENT_LOGS, FUNCTION_LOGS]);
// The agent's AWS endpoint and credentials in the guest: stand-ins, given beside the unit
// (the fleet's instance has its role and the real endpoints instead).
await mkdir(`/etc/systemd/system/${UNIT}.service.d`, { recursive: true });
await writeFile(
  `/etc/systemd/system/${UNIT}.service.d/vm-standins.conf`,
  `[Service]\nEnvironment=AWS_ENDPOINT_URL=${stack.endpoint} AWS_REGION=${stack.region} AWS_ACCESS_KEY_ID=local AWS_SECRET_ACCESS_KEY=local NANOGRID_CLOUDWATCH=off NANOGRID_PREWARM=python=1,cpp=0 NANOGRID_DISK_MB=64 AWS_ENDPOINT_URL_CLOUDWATCH_LOGS=${logs.url} NANOGRID_LOG_FLUSH_MS=1000\n`,
);

function userData(sha256: string): string {
  return workerUserData(
    {
      ARTIFACT_VERSION: VERSION,
      ARTIFACT_KEY: `releases/nanogrid-worker-${VERSION}.tgz`,
      ARTIFACT_SHA256: sha256,
      CODE_BUCKET: stack.bucket,
      USER_DATA_BUCKET: 'user-data',
      QUEUE_URL: stack.queueUrl,
      REDIS_URL: 'redis://127.0.0.1:6379',
      REGION: stack.region,
      ASG_NAME: 'nanogrid-vm-group',
      LAUNCH_HOOK: 'nanogrid-launch',
      LIFECYCLE_HOOK: 'nanogrid-drain',
      STACK_NAME: 'nanogrid-vm',
      GROUP_RESOURCE: 'WorkersASG',
      // The runtimes from the one image the guest has: nothing to pull.
      IMAGE_PYTHON: 'nanogrid/python:local',
      IMAGE_CPP: 'nanogrid/python:local',
      IMAGE_NODE: 'nanogrid/python:local',
      RUNTIMES: 'python,cpp',
      MAX_RUN_MS: '60000',
      STOP_TIMEOUT_S: String(STOP_TIMEOUT_S),
      METRICS_NAMESPACE: 'NanoGrid/VM',
      AGENT_LOG_GROUP: AGENT_LOGS,
      FUNCTION_LOG_GROUP: FUNCTION_LOGS,
      HTTP_PORT: String(PORT),
    },
    { packagesFile: '/project/ops/vm/guest/packages-debian.sh' },
  );
}

async function runUserData(sha256: string): Promise<{ code: number; out: string; calls: string[] }> {
  await writeFile(`${STANDINS}/calls.log`, '');
  await writeFile('/run/user-data.sh', userData(sha256), { mode: 0o700 });
  const r = await sh('bash', ['/run/user-data.sh']);
  return { ...r, calls: await calls() };
}

t.test('user data with a sha256 that is not the artifact\'s: nothing installed, ABANDON and a failure signal', async (t) => {
  const r = await runUserData('0'.repeat(64));
  t.equal(r.code, 3, r.out);
  t.match(r.out, /not installed/);
  t.equal((await sh('systemctl', ['is-active', UNIT])).out.trim(), 'inactive');
  t.ok(r.calls.some((c) => c.startsWith(`aws s3 cp --only-show-errors --region ${stack.region} s3://${stack.bucket}/releases/nanogrid-worker-${VERSION}.tgz `)), r.calls.join('\n'));
  t.ok(r.calls.some((c) => /autoscaling complete-lifecycle-action .*--lifecycle-hook-name nanogrid-launch --instance-id i-0123456789guest --lifecycle-action-result ABANDON/.test(c)), r.calls.join('\n'));
  t.ok(r.calls.some((c) => /^cfn-signal -e 3 .*--stack nanogrid-vm --resource WorkersASG/.test(c)), r.calls.join('\n'));
});

t.test('the user data installs the artifact with no registry, starts the shipped unit under systemd and signals success', async (t) => {
  const started = performance.now();
  const r = await runUserData(SHA256);
  t.equal(r.code, 0, r.out);
  t.comment(`measure user data to agent ready ${((performance.now() - started) / 1000).toFixed(1)} s`);
  t.match(r.out, /agent .* ready/);
  t.ok(r.calls.some((c) => /complete-lifecycle-action .*--instance-id i-0123456789guest --lifecycle-action-result CONTINUE/.test(c)), r.calls.join('\n'));
  t.ok(r.calls.some((c) => /^cfn-signal -e 0 /.test(c)), r.calls.join('\n'));
  t.ok(imds.requests.includes('GET /latest/meta-data/instance-id'), 'the instance id from IMDSv2');
  t.equal(await unitProp('ActiveState'), 'active');
  t.equal(await readlink('/opt/nanogrid/worker'), `/opt/nanogrid/releases/${VERSION}`);
  const manifest = JSON.parse(await readFile('/opt/nanogrid/worker/manifest.json', 'utf8')) as { version: string; node: string };
  t.equal(manifest.version, VERSION);
  t.equal(manifest.node, (await sh('node', ['-p', 'process.versions.node'])).out.trim(), 'the Node it names');
  t.equal(await readFile(`/etc/systemd/system/${UNIT}.service`, 'utf8'), await readFile('/project/ops/fleet/nanogrid-worker.service', 'utf8'), 'the unit as shipped');
  t.equal(await unitProp('TimeoutStopUSec'), '2min', 'the stack\'s stop timeout, from its drop-in');
  const m = { requestId: `hello-${Date.now()}`, functionId: 'installed', runtime: 'python', s3Bucket: stack.bucket, s3Key: 'installed/v1.zip', timeoutMs: 60_000, memoryMb: 128 };
  await client.uploadZip(m.s3Key, SAMPLES.pythonHello);
  await client.send(m);
  const res = await client.waitForResult(m.requestId, 240_000);
  t.equal(res.status, 'SUCCESS', res.stderr);
  t.equal(res.stdout, 'hello from python\n');
  // Shipped from the hardened unit: the summary line, and the run's output in its own group.
  const summary = await waitUntil('the summary line in CloudWatch Logs', () => logs.events(AGENT_LOGS).map((e) => JSON.parse(e.message) as Record<string, unknown>).find((l) => l.msg === 'invocation finished' && l.requestId === m.requestId), { timeoutMs: 30_000 }).catch(() => undefined);
  t.match(summary, { ran: true, status: 'SUCCESS', functionId: 'installed', version: VERSION }, 'the agent\'s lines reach its log group');
  t.ok(logs.events(AGENT_LOGS, INSTANCE_ID).length > 0, 'in a stream named by the instance id');
  const output = await waitUntil('the output in CloudWatch Logs', () => logs.events(FUNCTION_LOGS).map((e) => JSON.parse(e.message) as Record<string, unknown>).find((l) => l.requestId === m.requestId), { timeoutMs: 30_000 }).catch(() => undefined);
  t.match(output, { stdout: 'hello from python\n', status: 'SUCCESS' }, 'the run\'s output reaches the function group');
});

t.test('the liveness watch runs under its hardened unit: a live agent is remembered, a dead /health/live marks the instance Unhealthy', async (t) => {
  const WATCH = 'nanogrid-health-watch';
  const watchProp = async (p: string) => (await sh('systemctl', ['show', `${WATCH}.service`, '-p', p, '--value'])).out.trim();
  t.equal((await sh('systemctl', ['is-enabled', `${WATCH}.timer`])).out.trim(), 'enabled', 'the installer enables its timer (the group has a name)');
  t.equal((await sh('systemctl', ['is-active', `${WATCH}.timer`])).out.trim(), 'active');
  // A oneshot: start returns once the check has run, with its result.
  let r = await sh('systemctl', ['start', `${WATCH}.service`]);
  t.equal(r.code, 0, `${r.out}${(await sh('journalctl', ['-u', `${WATCH}.service`, '-n', '20', '--no-pager'])).out}`);
  t.equal(await watchProp('Result'), 'success');
  t.equal((await readFile('/run/nanogrid/health-failures.live', 'utf8').catch(() => '')).trim(), await unitProp('InvocationID'), 'this run of the agent has answered: its state survives between checks');
  // The same unit, pointed at a port where nothing listens, one failure enough: the whole
  // path under its hardening (no capabilities, read-only system): curl to the metadata
  // address, the aws CLI (the recording stand-in, which writes its log beside it).
  const dropIn = `/etc/systemd/system/${WATCH}.service.d`;
  // The timer stays out of it: a run it started with the live port would take this start's place.
  await sh('systemctl', ['stop', `${WATCH}.timer`]);
  await mkdir(dropIn, { recursive: true });
  await writeFile(`${STANDINS}/dead-agent.env`, 'HTTP_PORT=9\n');
  await writeFile(`${dropIn}/vm-dead-agent.conf`, `[Service]\nEnvironment=NANOGRID_ENV_FILE=${STANDINS}/dead-agent.env FAILURES_BEFORE_UNHEALTHY=1\nReadWritePaths=${STANDINS}\n`);
  t.teardown(async () => {
    await rm(dropIn, { recursive: true, force: true });
    await sh('systemctl', ['daemon-reload']);
    await rm('/run/nanogrid/health-failures', { force: true });
    await sh('systemctl', ['start', `${WATCH}.timer`]);
  });
  await sh('systemctl', ['daemon-reload']);
  await writeFile(`${STANDINS}/calls.log`, '');
  r = await sh('systemctl', ['start', `${WATCH}.service`]);
  t.equal(r.code, 0, `${r.out}${(await sh('journalctl', ['-u', `${WATCH}.service`, '-n', '20', '--no-pager'])).out}`);
  t.ok(
    (await calls()).some((c) => c === `aws autoscaling set-instance-health --region ${stack.region} --instance-id ${INSTANCE_ID} --health-status Unhealthy --no-should-respect-grace-period`),
    (await calls()).join('\n') || 'no aws call',
  );
});

t.test('systemctl stop with a run in flight: it finishes within TimeoutStopSec, nothing lost', async (t) => {
  const m = { requestId: `slow-${Date.now()}`, functionId: 'slow', runtime: 'python', s3Bucket: stack.bucket, s3Key: 'slow/v1.zip', timeoutMs: 60_000, memoryMb: 128 };
  await client.uploadZip(m.s3Key, { 'main.py': 'import time\ntime.sleep(8)\nprint("finished")\n' });
  await client.send(m);
  // Running in its container, not only received: a message not yet started is given back
  // at a stop (another worker takes it), which is not what this test is about.
  await waitUntil('the run started', async () => ((await agentStatus())?.supervisor.running ?? 0) >= 1, { timeoutMs: 120_000, intervalMs: 200 });
  await new Promise((r) => setTimeout(r, 1000));
  const started = performance.now();
  const r = await sh('systemctl', ['stop', UNIT]);
  const took = (performance.now() - started) / 1000;
  t.equal(r.code, 0, r.out);
  t.comment(`measure systemctl stop with a run in flight ${took.toFixed(1)} s (TimeoutStopSec ${await unitProp('TimeoutStopUSec')})`);
  t.ok(took < STOP_TIMEOUT_S, 'within the stop timeout');
  t.equal(await unitProp('Result'), 'success', 'a clean exit, not a kill');
  const res = await client.readStored(m.requestId);
  t.equal(res?.status, 'SUCCESS', 'the run finished and its result was stored before the agent exited');
  t.equal(res?.stdout, 'finished\n');
  t.same(await client.queueDepth(), { visible: 0, inflight: 0 }, 'its message was deleted: nothing to run twice');
});

t.test('a crash restarts the agent and its outbox is replayed', async (t) => {
  await sh('systemctl', ['start', UNIT]);
  await waitUntil('ready again', async () => (await agentStatus()) !== null, { timeoutMs: 240_000, intervalMs: 500 });
  await sh('systemctl', ['stop', 'redis-server']);
  const m = { requestId: `outbox-${Date.now()}`, functionId: 'installed', runtime: 'python', s3Bucket: stack.bucket, s3Key: 'installed/v1.zip', timeoutMs: 60_000, memoryMb: 128 };
  // The stand-in queue does not need Redis; the agent's result store does.
  await client.send(m).catch(() => undefined);
  await waitUntil('the result waits in the outbox', async () => ((await agentStatus())?.results.outbox ?? 0) >= 1, { timeoutMs: 240_000, intervalMs: 500 });
  const pidBefore = await unitProp('MainPID');
  const restartsBefore = Number(await unitProp('NRestarts'));
  await sh('systemctl', ['kill', '-s', 'SIGKILL', UNIT]);
  await waitUntil('restarted by systemd', async () => Number(await unitProp('NRestarts')) > restartsBefore && (await unitProp('MainPID')) !== '0', { timeoutMs: 120_000, intervalMs: 500 });
  t.not(await unitProp('MainPID'), pidBefore, 'a new process');
  await sh('systemctl', ['start', 'redis-server']);
  const res = await client.waitForResult(m.requestId, 240_000);
  t.equal(res.status, 'SUCCESS', 'the result written before the crash reached Redis after it');
  t.equal(res.stdout, 'hello from python\n');
});

t.test('no unit of the install failed at any time in the guest', async (t) => {
  // A unit that fails on its own timer shows only on the console: ask systemd for each.
  // The timer has fired by now (2 minutes after boot, every 20 s), or the check says nothing.
  const fired = await waitUntil('the liveness timer fired', async () => {
    const v = (await sh('systemctl', ['show', 'nanogrid-health-watch.timer', '-p', 'LastTriggerUSec', '--value'])).out.trim();
    return v && v !== 'n/a' && v !== '0' ? v : undefined;
  }, { timeoutMs: 150_000, intervalMs: 2000 }).catch(() => undefined);
  t.ok(fired, `the liveness timer ran the watch on its own (last at ${fired ?? 'never'})`);
  const failed = (await sh('systemctl', ['list-units', '--failed', '--all', '--no-legend', '--plain'])).out.split('\n').filter((l) => /nanogrid/.test(l));
  t.same(failed, [], 'systemctl --failed names none of ours');
  for (const unit of ['nanogrid-health-watch.service', 'nanogrid-worker.service']) {
    const journal = (await sh('journalctl', ['-u', unit, '--no-pager', '-o', 'cat'])).out;
    t.notMatch(journal, /Failed to (start|set up)|status=2\d\d\//, `${unit}: never refused to start (${journal.split('\n').filter((l) => /Failed/.test(l)).slice(0, 2).join(' | ') || 'no such line'})`);
  }
});
