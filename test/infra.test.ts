import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import * as cdk from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import t from 'tap';
import { buildApp } from '../infra/app.js';
import { backlogTarget, LIFECYCLE_HOOK, METRICS_NAMESPACE } from '../infra/workerStack.js';

const exec = promisify(execFile);
const UNIT = fileURLToPath(new URL('../ops/fleet/nanogrid-worker.service', import.meta.url));

function synth(context: Record<string, unknown> = {}) {
  const outdir = join(tmpdir(), `nanogrid-cdk-${process.pid}-${Math.random().toString(36).slice(2)}`);
  const { app, stack } = buildApp(new cdk.App({ context, outdir }));
  try {
    // Runs every validation plugin (cdk-nag's AwsSolutions pack): throws on a violation.
    app.synth();
  } catch (err) {
    rmSync(outdir, { recursive: true, force: true });
    throw err;
  }
  return { stack, template: Template.fromStack(stack), outdir };
}

/** The user data script, with the CloudFormation joins flattened into text. */
function userData(template: Template): string {
  const lt = Object.values(template.findResources('AWS::EC2::LaunchTemplate'))[0] as { Properties: { LaunchTemplateData: { UserData: unknown } } };
  const flat = (v: unknown): string =>
    typeof v === 'string' ? v : Array.isArray(v) ? v.map(flat).join('') : v && typeof v === 'object' ? ('Fn::Join' in v ? (v['Fn::Join'] as [string, unknown[]])[1].map(flat).join('') : ('Fn::Base64' in v ? flat(v['Fn::Base64']) : `{${JSON.stringify(v)}}`)) : '';
  return flat(lt.Properties.LaunchTemplateData.UserData);
}

const base = synth();
t.teardown(() => rm(base.outdir, { recursive: true, force: true }));
const tpl = base.template;

t.test('the queue, its dead-letter queue and the redrive policy', async (t) => {
  tpl.resourceCountIs('AWS::SQS::Queue', 2);
  tpl.hasResourceProperties('AWS::SQS::Queue', {
    RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('DeadLetterQueue'), 'Arn'] }, maxReceiveCount: 3 },
    VisibilityTimeout: 60,
    ReceiveMessageWaitTimeSeconds: 20,
    SqsManagedSseEnabled: true,
  });
  tpl.hasResourceProperties('AWS::SQS::QueuePolicy', {
    PolicyDocument: { Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]) },
  });
  t.pass('asserted');
});

t.test('code and user-data buckets: versioned, private, encrypted, logged', async (t) => {
  const buckets = tpl.findResources('AWS::S3::Bucket', { Properties: { VersioningConfiguration: { Status: 'Enabled' } } });
  t.equal(Object.keys(buckets).length, 2);
  for (const b of Object.values(buckets) as Array<{ Properties: Record<string, unknown> }>) {
    t.same(b.Properties.PublicAccessBlockConfiguration, { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    t.ok(b.Properties.LoggingConfiguration, 'access logged');
    t.ok(b.Properties.BucketEncryption);
  }
});

t.test('Redis: ElastiCache by default, over TLS, reachable from the workers only; or an existing endpoint', async (t) => {
  tpl.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', { Engine: 'redis', TransitEncryptionEnabled: true, AtRestEncryptionEnabled: true, MultiAZEnabled: true });
  t.match(userData(tpl), /REDIS_URL=rediss:\/\/\{.*PrimaryEndPoint\.Address.*\}:\{.*PrimaryEndPoint\.Port.*\}/);
  const own = synth({ redisUrl: 'redis://cache.internal.example:6379' });
  t.teardown(() => rm(own.outdir, { recursive: true, force: true }));
  own.template.resourceCountIs('AWS::ElastiCache::ReplicationGroup', 0);
  t.match(userData(own.template), /REDIS_URL=redis:\/\/cache\.internal\.example:6379\n/);
});

t.test('launch template: Amazon Linux 2023, IMDSv2 required, hop limit 1, instance tags in metadata', async (t) => {
  tpl.hasResourceProperties('AWS::EC2::LaunchTemplate', {
    LaunchTemplateData: Match.objectLike({
      MetadataOptions: { HttpTokens: 'required', HttpPutResponseHopLimit: 1, InstanceMetadataTags: 'enabled' },
      ImageId: { Ref: Match.stringLikeRegexp('al2023') },
      BlockDeviceMappings: [Match.objectLike({ Ebs: Match.objectLike({ Encrypted: true }) })],
    }),
  });
  const params = Object.values(tpl.toJSON().Parameters ?? {}) as Array<{ Default?: string }>;
  t.ok(params.some((p) => /\/aws\/service\/ami-amazon-linux-latest\/al2023-ami-kernel-.*x86_64/.test(p.Default ?? '')), 'the AL2023 image from its public SSM parameter');
});

t.test('user data installs and starts the agent with its unit; every placeholder filled', async (t) => {
  const ud = userData(tpl);
  t.notMatch(ud, /@@[A-Z_]+@@/);
  t.match(ud, /dnf install -y -q docker nodejs20/);
  t.match(ud, /systemctl enable --now nanogrid-worker/);
  t.match(ud, /NANOGRID_TERMINATION_WATCH=imds/);
  t.match(ud, new RegExp(`NANOGRID_LIFECYCLE_HOOK=${LIFECYCLE_HOOK}\\n`));
  t.match(ud, /NANOGRID_ASG_NAME=NanoGridWorkers-workers\n/);
  t.match(ud, /NANOGRID_IMAGE_PULL=missing/);
  t.match(ud, /NANOGRID_IMAGE_PYTHON=\{.*AccountId.*\}\.dkr\.ecr\./, 'images from the registry of this account by default');
  t.match(ud, /NANOGRID_MAX_TIMEOUT_MS=900000\n/);
  t.match(ud, /\[Service\][\s\S]*TimeoutStopSec=960\n/, 'the unit, its stop timeout following the longest run');
  t.match(ud, /iptables -I DOCKER-USER -d 169\.254\.169\.254\/32 -j REJECT/);
  const long = synth({ maxRunS: 3600 });
  t.teardown(() => rm(long.outdir, { recursive: true, force: true }));
  t.match(userData(long.template), /TimeoutStopSec=3660\n/);
  t.match(userData(long.template), /NANOGRID_MAX_TIMEOUT_MS=3600000\n/);
});

t.test('the group: 2 to 5 workers in private subnets, a termination lifecycle hook, notifications', async (t) => {
  tpl.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
    MinSize: '2',
    MaxSize: '5',
    AutoScalingGroupName: 'NanoGridWorkers-workers',
    MetricsCollection: [Match.objectLike({ Metrics: Match.arrayWith(['GroupInServiceInstances']) })],
    NotificationConfigurations: [Match.objectLike({ TopicARN: Match.anyValue() })],
    VPCZoneIdentifier: Match.arrayWith([{ Ref: Match.stringLikeRegexp('VpcworkersSubnet') }]),
  });
  tpl.hasResourceProperties('AWS::AutoScaling::LifecycleHook', {
    LifecycleHookName: LIFECYCLE_HOOK,
    LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
    DefaultResult: 'CONTINUE',
    HeartbeatTimeout: 300,
  });
  t.pass('asserted');
});

t.test('scaling: target tracking on backlog per instance, by metric math', async (t) => {
  t.equal(backlogTarget({ acceptableLatencyS: 30, averageProcessingS: 1, slotsPerInstance: 6 }), 180);
  t.equal(backlogTarget({ acceptableLatencyS: 10, averageProcessingS: 0.1, slotsPerInstance: 4 }), 400);
  tpl.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
    PolicyType: 'TargetTrackingScaling',
    TargetTrackingConfiguration: {
      TargetValue: 180,
      CustomizedMetricSpecification: {
        Metrics: [
          Match.objectLike({ Id: 'visible', MetricStat: Match.objectLike({ Metric: Match.objectLike({ Namespace: 'AWS/SQS', MetricName: 'ApproximateNumberOfMessagesVisible' }) }), ReturnData: false }),
          Match.objectLike({ Id: 'instances', MetricStat: Match.objectLike({ Metric: Match.objectLike({ Namespace: 'AWS/AutoScaling', MetricName: 'GroupInServiceInstances' }) }), ReturnData: false }),
          Match.objectLike({ Id: 'backlogPerInstance', Expression: 'visible / instances', ReturnData: true }),
        ],
      },
    },
  });
  const tuned = synth({ acceptableLatencyS: 10, averageProcessingS: 0.5, slotsPerInstance: 8 });
  t.teardown(() => rm(tuned.outdir, { recursive: true, force: true }));
  tuned.template.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', { TargetTrackingConfiguration: Match.objectLike({ TargetValue: 160 }) });
});

t.test('IAM: least privilege, each grant on its own resource', async (t) => {
  const policies = tpl.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: Match.stringLikeRegexp('WorkerRole') }] } });
  t.equal(Object.keys(policies).length, 1);
  const statements = (Object.values(policies)[0] as { Properties: { PolicyDocument: { Statement: Array<Record<string, unknown>> } } }).Properties.PolicyDocument.Statement;
  const bySid = Object.fromEntries(statements.map((s) => [s.Sid as string, s]));
  t.same(Object.keys(bySid).sort(), ['Code', 'ImagePull', 'Inputs', 'Intake', 'Lifecycle', 'Metrics', 'Outputs', 'RegistryLogin']);
  t.equal(bySid.Inputs!.Action, 's3:GetObject');
  t.match(JSON.stringify(bySid.Inputs!.Resource), /UserDataBucket.*Arn.*\/inputs\/\*/, 'reads exactly the inputs prefix');
  t.notMatch(JSON.stringify(bySid.Inputs!.Resource), /Arn"\]\},"\/\*"/, 'not the whole bucket');
  t.same(bySid.Intake!.Action, ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl']);
  t.match(JSON.stringify(bySid.Intake!.Resource), /InvocationQueue.*Arn/);
  t.notMatch(JSON.stringify(bySid.Intake!.Resource), /DeadLetter/, 'the dead-letter queue is not the workers\' business');
  t.equal(bySid.Code!.Action, 's3:GetObject');
  t.match(JSON.stringify(bySid.Code!.Resource), /CodeBucket.*Arn.*\/\*/);
  t.equal(bySid.Outputs!.Action, 's3:PutObject');
  t.match(JSON.stringify(bySid.Outputs!.Resource), /UserDataBucket.*Arn.*\/\*/);
  t.equal(bySid.Metrics!.Action, 'cloudwatch:PutMetricData');
  t.same(bySid.Metrics!.Condition, { StringEquals: { 'cloudwatch:namespace': METRICS_NAMESPACE } });
  t.same(bySid.Lifecycle!.Action, ['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat']);
  t.match(JSON.stringify(bySid.Lifecycle!.Resource), /autoScalingGroupName\/NanoGridWorkers-workers/);
  for (const s of statements) t.notMatch(JSON.stringify(s.Action), /\*/, `no wildcard action in ${String(s.Sid)}`);
  const given = synth({ imagePython: 'registry.example.com/nanogrid/python:1', imageCpp: 'registry.example.com/nanogrid/cpp:1' });
  t.teardown(() => rm(given.outdir, { recursive: true, force: true }));
  t.notMatch(JSON.stringify(given.template.toJSON()), /ecr:/, 'no ECR grants for another registry');
  t.match(userData(given.template), /NANOGRID_IMAGE_PYTHON=registry\.example\.com\/nanogrid\/python:1\n/);
});

t.test('the workers\' port is open only to the scraper group, not to the VPC', async (t) => {
  const ingress = Object.values(tpl.findResources('AWS::EC2::SecurityGroupIngress')).map((r) => (r as { Properties: Record<string, unknown> }).Properties);
  const http = ingress.filter((p) => p.FromPort === 8080);
  t.equal(http.length, 1);
  t.match(JSON.stringify(http[0]!.SourceSecurityGroupId), /ScraperSecurityGroup/);
  t.equal(http[0]!.CidrIp, undefined, 'no address range');
  const groups = tpl.findResources('AWS::EC2::SecurityGroup');
  const worker = Object.entries(groups).find(([id]) => id.startsWith('WorkerSecurityGroup'))![1] as { Properties: { SecurityGroupIngress?: Array<Record<string, unknown>> } };
  t.notOk(worker.Properties.SecurityGroupIngress?.some((r) => r.FromPort === 8080 && r.CidrIp), 'nor inline');
});

t.test('alarms: dead letters, the oldest message\'s age, no healthy workers', async (t) => {
  tpl.resourceCountIs('AWS::CloudWatch::Alarm', 3);
  tpl.hasResourceProperties('AWS::CloudWatch::Alarm', {
    MetricName: 'ApproximateNumberOfMessagesVisible',
    Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [Match.stringLikeRegexp('DeadLetterQueue'), 'QueueName'] } }],
    Threshold: 1,
    ComparisonOperator: 'GreaterThanOrEqualToThreshold',
  });
  tpl.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ApproximateAgeOfOldestMessage', Threshold: 600 });
  tpl.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'GroupInServiceInstances', ComparisonOperator: 'LessThanThreshold', Threshold: 1, TreatMissingData: 'breaching' });
  t.pass('asserted');
});

t.test('cdk-nag (AwsSolutions): no violation left, and it does catch one', async (t) => {
  // The base synth above ran the pack and did not throw; a report, when written, says success.
  const report = JSON.parse(await readFile(join(base.outdir, 'validation-report.json'), 'utf8').catch(() => '{"pluginReports":[]}')) as { pluginReports: Array<{ conclusion: string }> };
  for (const r of report.pluginReports) t.equal(r.conclusion, 'success');
  // A public bucket added to the stack is refused at synth.
  const app = new cdk.App({ outdir: join(tmpdir(), `nanogrid-cdk-bad-${process.pid}`) });
  t.teardown(() => rm(app.outdir, { recursive: true, force: true }));
  const { stack } = buildApp(app);
  new cdk.aws_s3.Bucket(stack, 'Careless', {});
  // The CDK prints its validation report: expected here, kept out of the test output.
  const quiet = ['log', 'error', 'warn'] as const;
  const saved = quiet.map((k) => console[k]);
  let printed = '';
  for (const k of quiet) console[k] = (...a: unknown[]) => void (printed += a.join(' ') + '\n');
  try {
    t.throws(() => app.synth(), /Validation failed/);
  } finally {
    quiet.forEach((k, i) => (console[k] = saved[i]!));
  }
  t.match(printed, /AwsSolutions-S1\b|AwsSolutions-S10/, 'the report names the rules the careless bucket breaks');
});

t.test('the systemd unit: after and requiring docker, stop timeout past the longest run, no private /tmp; systemd-analyze verify', async (t) => {
  const unit = await readFile(UNIT, 'utf8');
  t.match(unit, /^After=docker\.service/m);
  t.match(unit, /^Requires=docker\.service$/m);
  t.match(unit, /^PrivateTmp=false$/m);
  t.ok(Number(/^TimeoutStopSec=(\d+)$/m.exec(unit)?.[1]) >= 900 + 30, 'at least the longest allowed run and the agent\'s slack');
  const verify = await exec('systemd-analyze', ['--version']).then(
    () => true,
    () => false,
  );
  if (!verify) {
    t.comment('systemd-analyze is not on this machine: verify not run');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'nanogrid-worker.service'), unit);
  const ok = await exec('systemd-analyze', ['verify', join(dir, 'nanogrid-worker.service')]).then(
    (r) => ({ code: 0, out: r.stderr + r.stdout }),
    (e: { code: number; stderr: string }) => ({ code: e.code, out: e.stderr }),
  );
  t.equal(ok.code, 0, ok.out);
  t.equal(ok.out.trim(), '', 'no warnings');
  // And it does fail on a broken unit.
  await writeFile(join(dir, 'broken.service'), unit.replace(/^ExecStart=.*$/m, 'ExecStart=node main.js').replace('Type=simple', 'Type=sideways'));
  const bad = await exec('systemd-analyze', ['verify', join(dir, 'broken.service')]).then(
    (r) => r.stderr + r.stdout,
    (e: { stderr: string }) => e.stderr,
  );
  t.match(bad, /service type|ExecStart/i, 'verify reports a broken unit');
});

t.test('the user-data script parses as bash', async (t) => {
  const r = await exec('bash', ['-n', fileURLToPath(new URL('../ops/fleet/user-data.sh', import.meta.url))]).then(
    () => 0,
    () => 1,
  );
  t.equal(r, 0);
});

t.test('cdk synth (the CLI) works with no AWS account and no network', async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'nanogrid-synth-'));
  t.teardown(() => rm(out, { recursive: true, force: true }));
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: out, CDK_DISABLE_VERSION_CHECK: 'true', CDK_DISABLE_CLI_TELEMETRY: 'true' };
  const root = fileURLToPath(new URL('..', import.meta.url));
  // A network namespace of its own: whatever the CLI would try, no packet leaves.
  const r = await exec('unshare', ['--net', join(root, 'node_modules/.bin/cdk'), 'synth', '--no-notices', '-q', '-o', out], { cwd: root, env, timeout: 120_000 }).then(
    () => ({ code: 0, err: '' }),
    (e: { code: number; stderr: string }) => ({ code: e.code, err: e.stderr }),
  );
  t.equal(r.code, 0, r.err);
  const template = JSON.parse(await readFile(join(out, 'NanoGridWorkers.template.json'), 'utf8')) as { Resources: Record<string, { Type: string }> };
  const types = Object.values(template.Resources).map((x) => x.Type);
  t.equal(types.length, 56, 'the resources docs/fleet.md lists');
  for (const type of ['AWS::SQS::Queue', 'AWS::AutoScaling::AutoScalingGroup', 'AWS::AutoScaling::LifecycleHook', 'AWS::EC2::LaunchTemplate', 'AWS::ElastiCache::ReplicationGroup']) t.ok(types.includes(type), type);
});
