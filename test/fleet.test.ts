import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { loadConfig } from '../src/config.js';
import { Imds } from '../src/fleet/imds.js';
import { LifecycleAction } from '../src/fleet/lifecycleAction.js';
import type { TerminationNotice } from '../src/fleet/notice.js';
import { onEc2, resolveRegion } from '../src/fleet/region.js';
import { TerminationWatch } from '../src/fleet/terminationWatch.js';
import { waitUntil } from '../src/core/timeout.js';
import { createLogger } from '../src/core/log.js';
import { startAutoScaling, startImds } from '../src/local/awsStandIns.js';

const log = createLogger('silent');
const MAIN = fileURLToPath(new URL('../dist/src/main.js', import.meta.url));

/** No region anywhere the SDK looks: no variable, no profile. */
function withoutRegion(t: { teardown(fn: () => void): void }): void {
  const saved = { AWS_REGION: process.env.AWS_REGION, AWS_CONFIG_FILE: process.env.AWS_CONFIG_FILE, AWS_PROFILE: process.env.AWS_PROFILE };
  delete process.env.AWS_REGION;
  delete process.env.AWS_PROFILE;
  process.env.AWS_CONFIG_FILE = '/nonexistent/aws-config';
  t.teardown(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

t.test('IMDSv2: every read carries a session token; 404 is "absent"', async (t) => {
  const imds = await startImds(t, { 'instance-id': 'i-0abc', 'placement/region': 'eu-central-1' });
  const client = new Imds({ endpoint: imds.url });
  t.equal(await client.get('instance-id'), 'i-0abc');
  t.equal(await client.get('spot/instance-action'), null);
  t.equal(imds.refused, 0, 'never an IMDSv1 read');
  t.ok(imds.requests.includes('PUT /latest/api/token'));
});

t.test('region: AWS_REGION first, then the profile, then the instance metadata; none is an error', async (t) => {
  withoutRegion(t);
  const imds = await startImds(t, { 'placement/region': 'ap-southeast-2' });
  t.equal(await resolveRegion({ imds: new Imds({ endpoint: imds.url }) }), 'ap-southeast-2', 'from the instance metadata');
  process.env.AWS_REGION = 'eu-west-3';
  t.equal(await resolveRegion({ imds: new Imds({ endpoint: imds.url }) }), 'eu-west-3', 'the environment wins');
  delete process.env.AWS_REGION;
  await t.rejects(resolveRegion(), /no AWS region: tried AWS_REGION, the shared config profile; set AWS_REGION/);
  imds.paths.delete('placement/region');
  await t.rejects(resolveRegion({ imds: new Imds({ endpoint: imds.url }) }), /instance metadata \(no region\)/);
  t.equal(loadConfig({}).region, undefined, 'no hard-coded default');
});

t.test('the agent refuses to start without a region, naming where it looked', async (t) => {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: '/nonexistent',
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    // Should this machine be an EC2 instance, its metadata is still not asked.
    AWS_EC2_METADATA_DISABLED: 'true',
    SQS_QUEUE_URL: 'http://127.0.0.1:9/000000000000/q',
    REDIS_URL: 'redis://127.0.0.1:9',
    AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
  };
  const child = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', r));
  t.equal(code, 2);
  t.match(out, /no AWS region: tried AWS_REGION, the shared config profile; set AWS_REGION/);
});

t.test('per-service endpoints follow the SDK convention', async (t) => {
  const c = loadConfig({ AWS_ENDPOINT_URL: 'http://127.0.0.1:1', AWS_ENDPOINT_URL_SQS: 'http://127.0.0.1:2', AWS_ENDPOINT_URL_CLOUDWATCH: 'http://127.0.0.1:3' });
  t.same(c.endpoints, { sqs: 'http://127.0.0.1:2', s3: 'http://127.0.0.1:1', cloudwatch: 'http://127.0.0.1:3', autoScaling: 'http://127.0.0.1:1', generic: 'http://127.0.0.1:1' });
  t.same(loadConfig({ AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:4' }).endpoints, { sqs: undefined, s3: 'http://127.0.0.1:4', cloudwatch: undefined, autoScaling: undefined, generic: undefined });
  t.throws(() => loadConfig({ AWS_ENDPOINT_URL_SQS: 'nope' }), /AWS_ENDPOINT_URL_SQS/);
});

t.test('termination watch: a lifecycle termination and a Spot notice, each reported once', async (t) => {
  const imds = await startImds(t, { 'autoscaling/target-lifecycle-state': 'InService' });
  const watch = new TerminationWatch({ imds: new Imds({ endpoint: imds.url }), pollMs: 100, log });
  const seen: TerminationNotice[] = [];
  watch.on('notice', (n) => seen.push(n));
  watch.start();
  t.teardown(() => watch.stop());
  await waitUntil('a few polls', () => watch.polls >= 3);
  t.same(seen, [], 'InService, no Spot notice: nothing');
  imds.paths.set('autoscaling/target-lifecycle-state', 'Terminated');
  await waitUntil('lifecycle notice', () => seen.length === 1);
  const time = new Date(Date.now() + 120_000).toISOString().replace(/\.\d+Z$/, 'Z');
  imds.paths.set('spot/instance-action', JSON.stringify({ action: 'terminate', time }));
  await waitUntil('spot notice', () => seen.length === 2);
  const polls = watch.polls;
  await waitUntil('more polls', () => watch.polls >= polls + 3);
  t.same(seen, [{ kind: 'lifecycle', state: 'Terminated' }, { kind: 'spot', action: 'terminate', deadline: Date.parse(time) }], 'once each');
});

t.test('termination watch: IMDS down is survived and retried', async (t) => {
  const imds = await startImds(t, {});
  const lines: string[] = [];
  const watchLog = createLogger('warn', { write: (s: string) => void lines.push(s) });
  // A port nothing listens on: connection refused.
  const watch = new TerminationWatch({ imds: new Imds({ endpoint: 'http://127.0.0.1:9', timeoutMs: 300 }), pollMs: 100, log: watchLog });
  watch.start();
  t.teardown(() => watch.stop());
  await waitUntil('failing polls', () => watch.polls >= 3, { timeoutMs: 20_000 });
  t.equal(lines.filter((l) => l.includes('not answering')).length, 1, 'logged once per streak, not per poll');
  t.ok(imds.url);
});

t.test('lifecycle action: heartbeat and CONTINUE, decoded from what the real SDK sends', async (t) => {
  const imds = await startImds(t, { 'instance-id': 'i-0123456789abcdef0', 'tags/instance/aws:autoscaling:groupName': 'nanogrid-workers' });
  const asg = await startAutoScaling(t);
  const client = new AutoScalingClient({ region: 'eu-west-1', endpoint: asg.url, credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'x' }, maxAttempts: 3 });
  const action = new LifecycleAction({ client, imds: new Imds({ endpoint: imds.url }), hookName: 'nanogrid-drain', log });
  t.equal(await action.heartbeat(), true);
  asg.fail.next = 1;
  t.equal(await action.complete(), true, 'a throttled call is retried by the SDK');
  t.same(
    asg.calls.map((c) => [c.action, c.service, c.params.AutoScalingGroupName, c.params.LifecycleHookName, c.params.InstanceId, c.params.LifecycleActionResult]),
    [
      ['RecordLifecycleActionHeartbeat', 'autoscaling', 'nanogrid-workers', 'nanogrid-drain', 'i-0123456789abcdef0', undefined],
      ['CompleteLifecycleAction', 'autoscaling', 'nanogrid-workers', 'nanogrid-drain', 'i-0123456789abcdef0', 'CONTINUE'],
      ['CompleteLifecycleAction', 'autoscaling', 'nanogrid-workers', 'nanogrid-drain', 'i-0123456789abcdef0', 'CONTINUE'],
    ],
  );
  t.equal(action.progress.heartbeats, 1);
  t.ok(action.progress.completedAt);
  t.equal(action.progress.lastError, null);
});

t.test('lifecycle action: without a group name anywhere, the failure is reported, not thrown', async (t) => {
  const imds = await startImds(t, { 'instance-id': 'i-1' });
  const asg = await startAutoScaling(t);
  const client = new AutoScalingClient({ region: 'eu-west-1', endpoint: asg.url, credentials: { accessKeyId: 'a', secretAccessKey: 'b' } });
  const action = new LifecycleAction({ client, imds: new Imds({ endpoint: imds.url }), hookName: 'h', log });
  t.equal(await action.complete(), false);
  t.match(action.progress.lastError, /NANOGRID_ASG_NAME/);
  t.equal(asg.calls.length, 0);
});

t.test('EC2 is recognised from the firmware tables, without a packet', async (t) => {
  const { mkdtemp, mkdir, writeFile, rm } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const sys = await mkdtemp(join(tmpdir(), 'nanogrid-sys-'));
  t.teardown(() => rm(sys, { recursive: true, force: true }));
  t.equal(await onEc2(sys), false, 'nothing: not EC2');
  await mkdir(join(sys, 'devices/virtual/dmi/id'), { recursive: true });
  await writeFile(join(sys, 'devices/virtual/dmi/id/sys_vendor'), 'QEMU\n');
  t.equal(await onEc2(sys), false);
  await writeFile(join(sys, 'devices/virtual/dmi/id/board_asset_tag'), 'i-0123456789abcdef0\n');
  t.equal(await onEc2(sys), true, 'a Nitro instance id as the asset tag');
  await writeFile(join(sys, 'devices/virtual/dmi/id/board_asset_tag'), '');
  await writeFile(join(sys, 'devices/virtual/dmi/id/sys_vendor'), 'Amazon EC2\n');
  t.equal(await onEc2(sys), true);
});
