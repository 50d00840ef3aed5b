import { execFile } from 'node:child_process';
import { rmSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import * as cdk from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import t from 'tap';
import { buildApp } from '../infra/app.js';
import { ARTIFACT_SHA256_PATTERN, ARTIFACT_VERSION_PATTERN, DISCOVERY_TAG, LAUNCH_HOOK, LIFECYCLE_HOOK, METRICS_NAMESPACE } from '../infra/constants.js';
import { backlogTarget } from '../infra/scaling.js';

const exec = promisify(execFile);
const fleet = (name: string) => fileURLToPath(new URL(`../ops/fleet/${name}`, import.meta.url));
const UNIT = fleet('nanogrid-worker.service');

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

/** The one resource of this type whose logical id matches. */
function logicalId(type: string, re: RegExp, template = tpl): string {
  const ids = Object.keys(template.findResources(type)).filter((id) => re.test(id));
  if (ids.length !== 1) throw new Error(`${ids.length} ${type} match ${re}`);
  return ids[0]!;
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

t.test('user data: the package step and the installer inlined as they are, the agent\'s environment; every placeholder filled', async (t) => {
  const ud = userData(tpl);
  t.notMatch(ud, /@@[A-Z0-9_]+@@/);
  t.ok(Buffer.byteLength(ud) < 14 * 1024, `${Buffer.byteLength(ud)} bytes: room under EC2's 16 KB for the values CloudFormation puts in`);
  // The very files, so what the VM suite runs is what an instance runs.
  const packages = (await readFile(fleet('packages-al2023.sh'), 'utf8')).trimEnd();
  const install = (await readFile(fleet('install-artifact.sh'), 'utf8')).trimEnd();
  t.ok(ud.includes(`cat > /opt/nanogrid/packages.sh <<'NANOGRID_PACKAGES_EOF'\n${packages}\nNANOGRID_PACKAGES_EOF\n`), 'packages-al2023.sh, verbatim, in a quoted heredoc');
  t.ok(ud.includes(`cat > /opt/nanogrid/install-artifact.sh <<'NANOGRID_INSTALL_EOF'\n${install}\nNANOGRID_INSTALL_EOF\n`), 'install-artifact.sh, verbatim, in a quoted heredoc');
  t.match(ud, /^\/opt\/nanogrid\/packages\.sh\n/m, 'the package step runs');
  t.match(ud, /dnf install -y -q docker nodejs24 .*aws-cfn-bootstrap/);
  t.match(ud, /ln -sf \/usr\/bin\/node-24 \/usr\/bin\/node/);
  t.ok(ud.indexOf('cat > /etc/nanogrid/worker.env') < ud.lastIndexOf('/opt/nanogrid/install-artifact.sh "$tarball"'), 'the environment is written before the installer reads HTTP_PORT from it');
  t.match(ud, /NANOGRID_TERMINATION_WATCH=imds/);
  t.match(ud, new RegExp(`NANOGRID_LIFECYCLE_HOOK=${LIFECYCLE_HOOK}\\n`));
  t.match(ud, /NANOGRID_ASG_NAME=NanoGridWorkers-workers\n/);
  t.match(ud, /NANOGRID_IMAGE_PULL=missing/);
  t.match(ud, /NANOGRID_IMAGE_PYTHON=\{.*AccountId.*\}\.dkr\.ecr\./, 'images from the registry of this account by default');
  t.match(ud, /NANOGRID_IMAGE_NODE=\{.*AccountId.*\}\.dkr\.ecr\.[^\n]*nanogrid\/node:latest\n/, 'the node runtime\'s too');
  t.match(ud, /NANOGRID_RUNTIMES=python,cpp,node\n/);
  t.match(ud, /NANOGRID_MAX_TIMEOUT_MS=900000\n/);
  t.match(ud, /nanogrid-worker\.service\.d\/stop-timeout\.conf <<'UNIT'\n[^\n]*\n\[Service\]\nTimeoutStopSec=960\nUNIT\n/, 'a drop-in on the artifact\'s unit: the stop timeout follows the longest run');
  t.match(ud, /iptables -I DOCKER-USER -d 169\.254\.169\.254\/32 -j REJECT/, 'the metadata wall (the installer adds it)');
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

t.test('the release: ArtifactVersion and ArtifactSha256, the key built from the version, the sha256 checked by install-artifact.sh; no registry at boot', async (t) => {
  tpl.hasParameter('ArtifactVersion', { Type: 'String', AllowedPattern: '^[0-9A-Za-z][0-9A-Za-z.+-]{0,63}$' });
  tpl.hasParameter('ArtifactSha256', { Type: 'String', AllowedPattern: '^[0-9a-f]{64}$' });
  const params = tpl.toJSON().Parameters as Record<string, { Default?: string }>;
  t.equal(params.ArtifactVersion!.Default, undefined, 'no default: a deploy names its release');
  t.equal(params.ArtifactSha256!.Default, undefined);
  const version = new RegExp(ARTIFACT_VERSION_PATTERN);
  for (const ok of ['0.1.0-1a2b3c4', '0.1.0-1a2b3c4.dirty', '1.2.3+build.7', 'x']) t.ok(version.test(ok), ok);
  for (const bad of ['', '-1', '.hidden', '0.1.0 1', '0.1.0;reboot', '$(id)', '../0.1.0', '0.1.0/x', 'v'.repeat(65)]) t.notOk(version.test(bad), `refused: ${bad}`);
  const sha = new RegExp(ARTIFACT_SHA256_PATTERN);
  t.ok(sha.test('0123456789abcdef'.repeat(4)));
  for (const bad of ['0123456789ABCDEF'.repeat(4), 'a'.repeat(63), 'a'.repeat(65), `${'a'.repeat(64)}\n`]) t.notOk(sha.test(bad), `refused: ${JSON.stringify(bad)}`);

  const ud = userData(tpl);
  t.match(ud, /\nkey=releases\/nanogrid-worker-\{\{"Ref":"ArtifactVersion"\}\}\.tgz\n/, 'the key, from the version');
  t.match(ud, /aws s3 cp --only-show-errors --region \{\{"Ref":"AWS::Region"\}\} "s3:\/\/\{\{"Ref":"CodeBucket[0-9A-F]+"\}\}\/\$key" "\$tarball"/, 'fetched from the code bucket');
  t.match(ud, /for attempt in 1 2 3 4 5; do/, 'with retries');
  t.match(ud, /\n\/opt\/nanogrid\/install-artifact\.sh "\$tarball" \{\{"Ref":"ArtifactSha256"\}\}\n/, 'installed through the sha256 check, with the sha256 the deploy names');
  t.match(ud, /\[ "\$got" = "\$want" \] \|\| fail 3/, 'the inlined installer refuses a mismatch (status 3)');
  // What runs, comments aside: nothing that reaches a package registry or builds.
  const code = ud.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n');
  t.notMatch(code, /\bnpm\b/, 'no npm at boot');
  t.notMatch(code, /\b(gcc|g\+\+|make|cc)\b/, 'no compiler');
  t.notMatch(code, /runner\/build\.sh|registry\.npmjs|node-gyp/, 'no build');
  t.notMatch(code, /dnf install[^\n]*\b(nodejs\d*-npm|gcc|make)\b/);
  tpl.hasOutput('ArtifactKey', { Value: { 'Fn::Join': ['', ['releases/nanogrid-worker-', { Ref: 'ArtifactVersion' }, '.tgz']] } });
  // The role reads the key: the code bucket's read covers releases/.
  const policy = Object.values(tpl.findResources('AWS::IAM::Policy', { Properties: { Roles: [{ Ref: Match.stringLikeRegexp('WorkerRole') }] } }))[0] as { Properties: { PolicyDocument: { Statement: Array<Record<string, unknown>> } } };
  const read = policy.Properties.PolicyDocument.Statement.find((s) => s.Sid === 'Code')!;
  t.match(JSON.stringify(read.Resource), /^\{"Fn::Join":\["",\[\{"Fn::GetAtt":\["CodeBucket[0-9A-F]+","Arn"\]\},"\/\*"\]\]\}$/, 'any key of the code bucket, releases/ included');
});

t.test('a failed install is reported: the trap completes the launch action with ABANDON and signals CloudFormation with the status', async (t) => {
  const ud = userData(tpl);
  const groupId = Object.keys(tpl.findResources('AWS::AutoScaling::AutoScalingGroup'))[0]!;
  t.match(ud, /^set -euo pipefail$/m);
  const trapAt = ud.indexOf(`trap 'report $?' EXIT`);
  t.ok(trapAt > 0 && trapAt < ud.indexOf('install -d -m 0755 /opt/nanogrid'), 'the trap is set before the first step');
  t.ok(ud.includes(`--stack NanoGridWorkers --resource ${groupId} --region {{"Ref":"AWS::Region"}}`), `cfn-signal names the stack and the group's logical id (${groupId})`);
  t.match(ud, /\/opt\/aws\/bin\/cfn-signal -e "\$rc"/);
  t.match(ud, new RegExp(`complete-lifecycle-action --region \\{\\{"Ref":"AWS::Region"\\}\\} --auto-scaling-group-name NanoGridWorkers-workers \\\\\\n\\s+--lifecycle-hook-name ${LAUNCH_HOOK} --instance-id "\\$instance" --lifecycle-action-result "\\$result"`));

  // The reporting part of the very user data, run with stand-ins for curl, aws and cfn-signal.
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-report-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const log = join(dir, 'calls.log');
  const stub = async (name: string, body: string) => {
    await writeFile(join(dir, name), `#!/bin/bash\n${body}\n`);
    await chmod(join(dir, name), 0o755);
  };
  await stub('curl', `case " $* " in *" PUT "*) echo token-1 ;; *"X-aws-ec2-metadata-token: token-1"*instance-id*) echo i-0123456789abcdef0 ;; *) exit 22 ;; esac`);
  await stub('aws', `echo "aws $*" >>"${log}"; exit "\${AWS_STUB_STATUS:-0}"`);
  await stub('cfn-signal', `echo "cfn-signal $*" >>"${log}"`);
  const part = ud.slice(ud.indexOf('imds() {'), trapAt + `trap 'report $?' EXIT\n`.length);
  const values: Record<string, string> = { 'AWS::Region': 'eu-west-1', ArtifactVersion: '0.1.0-1a2b3c4' };
  const filled = part.replace(/\{\{"Ref":"([^"]+)"\}\}/g, (_, ref: string) => values[ref] ?? `unfilled-${ref}`).replace('/opt/aws/bin/cfn-signal', join(dir, 'cfn-signal'));
  t.notMatch(filled, /unfilled-|\{\{/);
  const run = async (body: string, env: Record<string, string> = {}) => {
    await rm(log, { force: true });
    const script = `set -euo pipefail\nrelease=0.1.0-1a2b3c4\n${filled}\n${body}\necho not-reached-on-failure\n`;
    const r = await exec('bash', ['-c', script], { env: { PATH: `${dir}:${process.env.PATH}`, ...env } }).then(
      (o) => ({ code: 0, out: o.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
    return { ...r, calls: (await readFile(log, 'utf8').catch(() => '')).trim().split('\n') };
  };
  const failed = await run('/bin/false');
  t.equal(failed.code, 1, 'the status of the failing step is the script\'s');
  t.notMatch(failed.out, /not-reached/, 'set -e stopped at the failure');
  t.same(failed.calls, [
    'aws cloudwatch put-metric-data --region eu-west-1 --namespace NanoGrid/FunctionRunner --metric-name FailedInstalls --unit Count --value 1 --dimensions AutoScalingGroupName=NanoGridWorkers-workers',
    'aws autoscaling complete-lifecycle-action --region eu-west-1 --auto-scaling-group-name NanoGridWorkers-workers --lifecycle-hook-name nanogrid-launch --instance-id i-0123456789abcdef0 --lifecycle-action-result ABANDON',
    `cfn-signal -e 1 --reason nanogrid-worker 0.1.0-1a2b3c4: install status 1 --stack NanoGridWorkers --resource ${groupId} --region eu-west-1`,
  ]);
  const mismatch = await run('(exit 3)');
  t.equal(mismatch.code, 3, 'install-artifact.sh\'s status (3: sha256 mismatch) is kept');
  t.match(mismatch.calls[0], /put-metric-data .*FailedInstalls/, 'a failed install is counted');
  t.match(mismatch.calls[1], /--lifecycle-action-result ABANDON$/);
  t.match(mismatch.calls[2], /^cfn-signal -e 3 /);
  const ok = await run('true');
  t.equal(ok.code, 0);
  t.match(ok.calls[0], /--lifecycle-action-result CONTINUE$/, 'a good install is not counted as failed');
  t.match(ok.calls[1], /^cfn-signal -e 0 /);
  t.equal(ok.calls.length, 2);
  // The hook's API refused (no launch action pending): CloudFormation still hears of it.
  const refused = await run('(exit 5)', { AWS_STUB_STATUS: '254' });
  t.equal(refused.code, 5);
  t.equal(refused.calls.length, 3);
  t.match(refused.calls[2], /^cfn-signal -e 5 /);
});

t.test('rollout: the creation waits on signals, every launch on the launch hook, and a new release is an instance refresh', async (t) => {
  const [, group] = Object.entries(tpl.findResources('AWS::AutoScaling::AutoScalingGroup'))[0]! as [string, { CreationPolicy: unknown; UpdatePolicy: Record<string, unknown>; Properties: Record<string, unknown> }];
  t.same(group.CreationPolicy, { ResourceSignal: { Count: 2, Timeout: 'PT20M' } }, 'the min capacity\'s signals, within 20 minutes');
  t.same(group.UpdatePolicy.AutoScalingInstanceRefresh, {
    Strategy: 'Rolling',
    Preferences: { MinHealthyPercentage: 100, MaxHealthyPercentage: 150, InstanceWarmup: 60, SkipMatching: true },
  });
  t.equal(group.UpdatePolicy.AutoScalingRollingUpdate, undefined, 'not a rolling update');
  t.equal(group.UpdatePolicy.AutoScalingReplacingUpdate, undefined);
  t.same(group.Properties.LifecycleHookSpecificationList, [
    { LifecycleHookName: LAUNCH_HOOK, LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING', DefaultResult: 'ABANDON', HeartbeatTimeout: 900 },
  ]);
  const lt = group.Properties.LaunchTemplate as { LaunchTemplateId: { Ref: string }; Version: unknown };
  t.match(lt.LaunchTemplateId.Ref, /^WorkerTemplate/);
  t.same(lt.Version, { 'Fn::GetAtt': [lt.LaunchTemplateId.Ref, 'LatestVersionNumber'] }, 'a new release is a new launch template version: the trigger of the refresh');
  tpl.resourceCountIs('AWS::AutoScaling::LifecycleHook', 1);
  // The installer's wait for ready fits in the hook's heartbeat, and the hook in the creation policy.
  const install = await readFile(fleet('install-artifact.sh'), 'utf8');
  const ready = Number(/READY_TIMEOUT_S=\$\{NANOGRID_READY_TIMEOUT_S:-(\d+)\}/.exec(install)?.[1]);
  t.ok(ready > 0 && ready + 120 <= 900, `install-artifact.sh waits ${ready} s for ready, with room for the package step within the hook's 900 s`);
  Annotations.fromStack(base.stack).hasNoWarning('*', Match.stringLikeRegexp('cfn-signal'));
  const creationPolicy = (context: Record<string, unknown>) => {
    const r = synth(context);
    t.teardown(() => rm(r.outdir, { recursive: true, force: true }));
    return (Object.values(r.template.findResources('AWS::AutoScaling::AutoScalingGroup'))[0] as { CreationPolicy?: unknown }).CreationPolicy;
  };
  t.same(creationPolicy({ minCapacity: 3 }), { ResourceSignal: { Count: 3, Timeout: 'PT20M' } }, 'the count follows minCapacity');
  t.equal(creationPolicy({ minCapacity: 0 }), undefined, 'an empty group (the first deploy) waits for no signal');
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
  // The one statement without a Sid is the CDK's own, for the group's signals (cfn-signal).
  const bySid = Object.fromEntries(statements.map((s) => [(s.Sid as string | undefined) ?? 'Signal', s]));
  t.equal(statements.length, Object.keys(bySid).length, 'one statement each');
  t.same(Object.keys(bySid).sort(), ['Code', 'Health', 'ImagePull', 'Inputs', 'Intake', 'Lifecycle', 'Logs', 'Metrics', 'Outputs', 'RegistryLogin', 'Signal']);
  t.same(bySid.Logs!.Action, ['logs:CreateLogStream', 'logs:PutLogEvents'], 'its own stream, no group made');
  t.same(bySid.Logs!.Resource, [{ 'Fn::GetAtt': [logicalId('AWS::Logs::LogGroup', /^AgentLogs/), 'Arn'] }, { 'Fn::GetAtt': [logicalId('AWS::Logs::LogGroup', /^FunctionLogs/), 'Arn'] }], 'the stack\'s two groups only');
  t.equal(bySid.Health!.Action, 'autoscaling:SetInstanceHealth', 'the liveness watch reports its instance');
  t.match(JSON.stringify(bySid.Health!.Resource), /autoScalingGroupName\/NanoGridWorkers-workers/, 'in its own group only');
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
  t.equal(bySid.Signal!.Action, 'cloudformation:SignalResource');
  t.same(bySid.Signal!.Resource, { Ref: 'AWS::StackId' }, 'its own stack only');
  for (const s of statements) t.notMatch(JSON.stringify(s.Action), /\*/, `no wildcard action in ${String(s.Sid ?? "Signal")}`);
  const given = synth({ imagePython: 'registry.example.com/nanogrid/python:1', imageCpp: 'registry.example.com/nanogrid/cpp:1' });
  t.teardown(() => rm(given.outdir, { recursive: true, force: true }));
  t.notMatch(JSON.stringify(given.template.toJSON()), /ecr:/, 'no ECR grants for another registry');
  t.match(userData(given.template), /NANOGRID_IMAGE_PYTHON=registry\.example\.com\/nanogrid\/python:1\n/);
  t.match(userData(given.template), /NANOGRID_RUNTIMES=python,cpp\n/, 'images given without node: no node runtime, so no image to miss at boot');
  const withNode = synth({ imagePython: 'registry.example.com/nanogrid/python:1', imageCpp: 'registry.example.com/nanogrid/cpp:1', imageNode: 'registry.example.com/nanogrid/node:1' });
  t.teardown(() => rm(withNode.outdir, { recursive: true, force: true }));
  t.match(userData(withNode.template), /NANOGRID_IMAGE_NODE=registry\.example\.com\/nanogrid\/node:1\nNANOGRID_RUNTIMES=python,cpp,node\n/);
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
  tpl.resourceCountIs('AWS::CloudWatch::Alarm', 4);
  tpl.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'FailedInstalls', Namespace: METRICS_NAMESPACE, Statistic: 'Sum', Threshold: 1, Dimensions: [{ Name: 'AutoScalingGroupName', Value: 'NanoGridWorkers-workers' }] });
  t.match(userData(tpl), /\[ "\$rc" = 0 \] \|\| aws cloudwatch put-metric-data --region [^\n]+ --namespace NanoGrid\/FunctionRunner \\\n\s+--metric-name FailedInstalls --unit Count --value 1 --dimensions AutoScalingGroupName=NanoGridWorkers-workers/, 'the user data counts a failed install');
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

t.test('the systemd unit is hardened without a mount namespace of its own: systemd-analyze security below 7.0', async (t) => {
  const unit = await readFile(UNIT, 'utf8');
  // dockerd must see the agent's loop mounts: no option that gives the agent a private mount namespace.
  for (const opt of ['PrivateTmp=yes', 'ProtectSystem=', 'ProtectHome=', 'PrivateDevices=', 'PrivateMounts=', 'ProtectKernelTunables=', 'ProtectKernelModules=', 'ProtectKernelLogs=', 'ProtectControlGroups=', 'ReadOnlyPaths=', 'InaccessiblePaths=', 'ProtectProc=', 'TemporaryFileSystem=', 'BindPaths=']) {
    t.notMatch(unit, new RegExp(`^${opt}`, 'm'), `no ${opt}`);
  }
  for (const opt of ['NoNewPrivileges=yes', 'LockPersonality=yes', 'RestrictRealtime=yes', 'SystemCallArchitectures=native', 'ProtectClock=yes', 'ProtectHostname=yes', 'RestrictSUIDSGID=yes']) t.match(unit, new RegExp(`^${opt}$`, 'm'), opt);
  t.match(unit, /^CapabilityBoundingSet=CAP_SYS_ADMIN /m, 'a capability bounding set');
  t.match(unit, /^DeviceAllow=block-loop rw$/m, 'the loop devices stay open once ProtectClock closes the device list');
  t.match(unit, /^Documentation=file:\/\/\/opt\/nanogrid\/worker\/docs\/fleet\.md$/m, 'documentation that exists on the instance');
  const have = await exec('systemd-analyze', ['--version']).then(() => true, () => false);
  if (!have) {
    // CI's machines have it (Debian's systemd): there its absence is a failure.
    if (process.env.CI) t.fail('systemd-analyze is missing');
    else t.comment('systemd-analyze is not on this machine: the score is not checked');
    return;
  }
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-unit-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'nanogrid-worker.service'), unit);
  const score = async (file: string) => {
    const r = await exec('systemd-analyze', ['security', '--offline=true', '--no-pager', file]).then(
      (x) => x.stdout + x.stderr,
      (e: { stdout: string; stderr: string }) => e.stdout + e.stderr,
    );
    return Number(/Overall exposure level for \S+: ([\d.]+)/.exec(r)?.[1]);
  };
  const exposure = await score(join(dir, 'nanogrid-worker.service'));
  t.ok(exposure < 7.0, `exposure ${exposure} (was 9.6 before the hardening)`);
  t.comment(`measure systemd-analyze security: ${exposure}`);
  // The check can fail: the same unit without its hardening scores as it did.
  await writeFile(join(dir, 'bare.service'), unit.split('\n').filter((l) => !/^(NoNewPrivileges|CapabilityBoundingSet|AmbientCapabilities|LockPersonality|RestrictRealtime|RestrictSUIDSGID|SystemCallArchitectures|ProtectClock|ProtectHostname|KeyringMode|RestrictAddressFamilies|RestrictNamespaces|SystemCallFilter|SystemCallErrorNumber|DeviceAllow)=/.test(l)).join('\n'));
  t.ok((await score(join(dir, 'bare.service'))) > 9, 'unhardened, it is UNSAFE again');
});

t.test('the fleet scripts parse as bash, and so does the user data the stack composes', async (t) => {
  const parses = (args: string[]) =>
    exec('bash', args).then(
      () => '',
      (e: { stderr: string }) => e.stderr || 'failed',
    );
  for (const f of ['user-data.sh', 'packages-al2023.sh', 'install-artifact.sh']) t.equal(await parses(['-n', fleet(f)]), '', f);
  t.equal(await parses(['-n', '-c', userData(tpl).replace(/\{\{[^}]*\}+/g, 'x')]), '', 'the composed user data');
  t.not(await parses(['-n', '-c', 'if true; then echo']), '', 'and bash -n does refuse a broken script');
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
  t.equal(types.length, 65, 'the resources docs/fleet.md lists');
  for (const type of ['AWS::SQS::Queue', 'AWS::AutoScaling::AutoScalingGroup', 'AWS::AutoScaling::LifecycleHook', 'AWS::EC2::LaunchTemplate', 'AWS::ElastiCache::ReplicationGroup']) t.ok(types.includes(type), type);
});

t.test('see: the agents\' lines and each run\'s output shipped to CloudWatch Logs groups the stack makes, with retention', async (t) => {
  const groups = tpl.findResources('AWS::Logs::LogGroup');
  const retention = (re: RegExp) => (groups[logicalId('AWS::Logs::LogGroup', re)] as { Properties: { RetentionInDays?: number } }).Properties.RetentionInDays;
  t.equal(retention(/^AgentLogs/), 30, 'agent lines: a month');
  t.equal(retention(/^FunctionLogs/), 7, 'function output: a week');
  const ud = userData(tpl);
  t.match(ud, new RegExp(`NANOGRID_LOG_GROUP=\\{\\{"Ref":"${logicalId('AWS::Logs::LogGroup', /^AgentLogs/)}"\\}\\}`), 'the agent is told its group');
  t.match(ud, new RegExp(`NANOGRID_FUNCTION_LOG_GROUP=\\{\\{"Ref":"${logicalId('AWS::Logs::LogGroup', /^FunctionLogs/)}"\\}\\}`));
  t.match(ud, /instance_id=\$\(imds instance-id \|\| hostname\)[\s\S]*NANOGRID_LOG_STREAM=\$instance_id\n/, 'streams named by the instance id, not a host name that comes back');
  const endpoints = Object.values(tpl.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Interface' } })) as Array<{ Properties: { ServiceName: unknown } }>;
  t.ok(endpoints.some((x) => JSON.stringify(x.Properties.ServiceName).endsWith('".logs"]]}')), 'CloudWatch Logs through an endpoint, off the NAT gateway');

  const off = synth({ functionLogRetentionDays: 'off', agentLogRetentionDays: '90' });
  t.teardown(() => rm(off.outdir, { recursive: true, force: true }));
  off.template.resourceCountIs('AWS::Logs::LogGroup', 2);
  off.template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: 90 });
  t.match(userData(off.template), /NANOGRID_FUNCTION_LOG_GROUP=\n/, 'function output not shipped: the setting blank');
  t.throws(() => synth({ functionLogRetentionDays: '10' }), /functionLogRetentionDays=10: not a retention CloudWatch Logs offers/);
  t.throws(() => synth({ agentLogRetentionDays: 'off' }), /agentLogRetentionDays=off/);
});

t.test('reach and discovery: Session Manager (its policy and endpoints, no SSH), the discovery tag Prometheus uses', async (t) => {
  const roles = tpl.findResources('AWS::IAM::Role', { Properties: { Description: 'NanoGrid worker agent' } });
  const role = Object.values(roles)[0] as { Properties: { ManagedPolicyArns?: unknown[] } };
  t.match(JSON.stringify(role.Properties.ManagedPolicyArns), /AmazonSSMManagedInstanceCore/, 'Session Manager\'s managed policy');
  const endpoints = Object.values(tpl.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Interface', PrivateDnsEnabled: true } })) as Array<{ Properties: { ServiceName: unknown; SecurityGroupIds: unknown } }>;
  for (const svc of ['ssm', 'ssmmessages', 'ec2messages']) {
    const e = endpoints.find((x) => JSON.stringify(x.Properties.ServiceName).endsWith(`".${svc}"]]}`));
    t.ok(e, `an interface endpoint for ${svc}`);
    t.match(JSON.stringify(e?.Properties.SecurityGroupIds), /EndpointSecurityGroup/, `${svc}: its own security group`);
  }
  tpl.hasResourceProperties('AWS::EC2::SecurityGroupIngress', { IpProtocol: 'tcp', FromPort: 443, ToPort: 443, GroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('EndpointSecurityGroup'), 'GroupId'] }, SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('WorkerSecurityGroup'), 'GroupId'] } });
  const sgs = JSON.stringify(tpl.findResources('AWS::EC2::SecurityGroup'));
  t.notMatch(sgs, /"FromPort":22\b/, 'no SSH port anywhere');
  tpl.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', { Tags: Match.arrayWith([{ Key: DISCOVERY_TAG.key, Value: DISCOVERY_TAG.value, PropagateAtLaunch: true }]) });
  const prom = await readFile(new URL('../ops/prometheus/prometheus.yml', import.meta.url), 'utf8');
  t.match(prom, new RegExp(`name: tag:${DISCOVERY_TAG.key}\\s+(#[^\\n]*)?\\n\\s+values: \\[${DISCOVERY_TAG.value}\\]`), 'Prometheus discovers by the tag the stack sets');
});
