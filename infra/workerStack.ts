import * as cdk from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import type * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as cwlogs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { fleetAlarms } from './alarms.js';
import { ARTIFACT_SHA256_PATTERN, ARTIFACT_VERSION_PATTERN, DISCOVERY_TAG, HTTP_PORT, LAUNCH_HOOK, LIFECYCLE_HOOK, METRICS_NAMESPACE, RELEASES_PREFIX } from './constants.js';
import { workerNetwork } from './network.js';
import { backlogScaling } from './scaling.js';
import { workerRole } from './workerRole.js';
import { workerUserData } from './userData.js';

export interface WorkerStackProps extends cdk.StackProps {
  /** An existing Redis (redis:// or rediss:// URL); unset, an ElastiCache replication group is made. */
  redisUrl?: string;
  /** Default m7i.large (x86_64, as the runtime images). */
  instanceType?: string;
  minCapacity?: number;
  maxCapacity?: number;
  /** Backlog target = acceptable latency / average processing time x slots per instance (AWS's recipe). */
  acceptableLatencyS?: number;
  averageProcessingS?: number;
  slotsPerInstance?: number;
  /** The longest allowed run (the agent's NANOGRID_MAX_TIMEOUT_MS): the drain and the unit's stop timeout follow it. */
  maxRunS?: number;
  /** Alarm when the oldest message has waited longer than this. */
  oldestMessageAlarmS?: number;
  /** Days the agents' log lines (the summary line included) are kept in CloudWatch Logs; default 30. */
  agentLogRetentionDays?: cwlogs.RetentionDays;
  /**
   * Days each run's stdout and stderr are kept in CloudWatch Logs (one event per
   * invocation, Lambda's per-function log); default 7. null: function output is not
   * shipped (it stays in the result in Redis, for its 24 h).
   */
  functionLogRetentionDays?: cwlogs.RetentionDays | null;
  /**
   * Runtime images in a registry; default: this account's ECR repositories nanogrid/python,
   * nanogrid/cpp and nanogrid/node. Given without `node`, the workers run python and cpp only.
   */
  images?: { python: string; cpp: string; node?: string };
  /** Mailed when an alarm fires. */
  alarmEmail?: string;
}

/** Packages, fetch, install and the agent's image pulls (install-artifact.sh waits 600 s for ready). */
const INSTALL_BUDGET = cdk.Duration.minutes(15);

/**
 * The NanoGrid worker fleet: the invocation queue and its dead-letter queue, the code and
 * user-data buckets, Redis, and an Auto Scaling group of workers that scales on backlog
 * per instance and drains through a termination lifecycle hook. The agent is a release
 * artifact named by two parameters (ArtifactVersion, ArtifactSha256): a new pair rolls out by
 * an instance refresh, and a failed install fails the deployment. Synthesises offline.
 */
export class WorkerStack extends cdk.Stack {
  readonly queue: sqs.Queue;
  readonly deadLetterQueue: sqs.Queue;
  readonly codeBucket: s3.Bucket;
  readonly userDataBucket: s3.Bucket;
  /** Attach to what scrapes the workers: the only source the workers' HTTP port admits. */
  readonly scraperSecurityGroup: ec2.SecurityGroup;
  /** The agents' lines, one stream per worker (NANOGRID_LOG_GROUP). */
  readonly agentLogGroup: cwlogs.LogGroup;
  /** Each run's stdout and stderr, one stream per worker (NANOGRID_FUNCTION_LOG_GROUP); undefined when not shipped. */
  readonly functionLogGroup: cwlogs.LogGroup | undefined;
  readonly group: autoscaling.AutoScalingGroup;
  readonly role: iam.Role;

  constructor(scope: Construct, id: string, props: WorkerStackProps = {}) {
    super(scope, id, props);
    const maxRunS = props.maxRunS ?? 900;
    const minCapacity = props.minCapacity ?? 2;
    const groupName = `${this.stackName}-workers`;

    // The release is a deploy-time choice, not a synth-time one: the same synthesized
    // template deploys any artifact, and CloudFormation keeps the last values given.
    const artifactVersion = new cdk.CfnParameter(this, 'ArtifactVersion', {
      type: 'String',
      allowedPattern: ARTIFACT_VERSION_PATTERN,
      description: `The agent's release (npm run package): the code bucket's ${RELEASES_PREFIX}nanogrid-worker-<version>.tgz`,
      constraintDescription: 'a version such as 0.1.0-1a2b3c4: letters, digits, dot, plus and dash, 64 at most',
    });
    const artifactSha256 = new cdk.CfnParameter(this, 'ArtifactSha256', {
      type: 'String',
      allowedPattern: ARTIFACT_SHA256_PATTERN,
      description: 'The sha256 npm run package printed for that artifact: an instance installs nothing else',
      constraintDescription: '64 lowercase hexadecimal digits',
    });

    const { vpc, workerSg, scraperSg } = workerNetwork(this);
    this.scraperSecurityGroup = scraperSg;

    // ---- queue ----
    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      retentionPeriod: cdk.Duration.days(14),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.queue = new sqs.Queue(this, 'InvocationQueue', {
      // The agent keeps a held message invisible by heartbeats; this is only the lease.
      visibilityTimeout: cdk.Duration.seconds(60),
      retentionPeriod: cdk.Duration.days(4),
      receiveMessageWaitTime: cdk.Duration.seconds(20),
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: 3 },
    });

    // ---- buckets ----
    const logs = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
      lifecycleRules: [{ expiration: cdk.Duration.days(90) }],
    });
    cdk.Validations.of(logs).acknowledge({ id: 'AwsSolutions-S1', reason: 'This is the access log bucket; logging it into itself would loop.' });
    const bucket = (id: string, prefix: string) =>
      new s3.Bucket(this, id, {
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        encryption: s3.BucketEncryption.S3_MANAGED,
        enforceSSL: true,
        versioned: true,
        serverAccessLogsBucket: logs,
        serverAccessLogsPrefix: prefix,
        lifecycleRules: [{ noncurrentVersionExpiration: cdk.Duration.days(30) }],
      });
    this.codeBucket = bucket('CodeBucket', 'code/');
    this.userDataBucket = bucket('UserDataBucket', 'user-data/');

    // ---- logs: the agents' lines, and each run's output, with their retention ----
    // The stack makes the groups (the agent only makes its own stream in them): a group an
    // agent made would keep its lines forever.
    this.agentLogGroup = new cwlogs.LogGroup(this, 'AgentLogs', { retention: props.agentLogRetentionDays ?? cwlogs.RetentionDays.ONE_MONTH });
    const fnRetention = props.functionLogRetentionDays === undefined ? cwlogs.RetentionDays.ONE_WEEK : props.functionLogRetentionDays;
    this.functionLogGroup = fnRetention === null ? undefined : new cwlogs.LogGroup(this, 'FunctionLogs', { retention: fnRetention });

    // ---- Redis ----
    let redisUrl = props.redisUrl;
    if (!redisUrl) {
      const redisSg = new ec2.SecurityGroup(this, 'RedisSecurityGroup', { vpc, description: 'NanoGrid Redis: workers only', allowAllOutbound: false });
      redisSg.addIngressRule(workerSg, ec2.Port.tcp(6380), 'workers');
      const subnets = new elasticache.CfnSubnetGroup(this, 'RedisSubnets', {
        description: 'NanoGrid Redis subnets',
        subnetIds: vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS }).subnetIds,
      });
      const redis = new elasticache.CfnReplicationGroup(this, 'Redis', {
        replicationGroupDescription: 'NanoGrid results and job states',
        engine: 'redis',
        cacheNodeType: 'cache.t4g.small',
        numCacheClusters: 2,
        automaticFailoverEnabled: true,
        multiAzEnabled: true,
        port: 6380,
        transitEncryptionEnabled: true,
        atRestEncryptionEnabled: true,
        cacheSubnetGroupName: subnets.ref,
        securityGroupIds: [redisSg.securityGroupId],
      });
      cdk.Validations.of(redis).acknowledge({
        id: 'AwsSolutions-AEC6',
        reason: 'Reachable only from the workers\' security group, over TLS; an AUTH token would have to live in the user data or a secret fetch at boot.',
      });
      redisUrl = `rediss://${redis.attrPrimaryEndPointAddress}:${redis.attrPrimaryEndPointPort}`;
    }

    // ---- the workers' role: least privilege (workerRole.ts) ----
    const images: { python: string; cpp: string; node?: string } = props.images ?? {
      python: `${this.account}.dkr.ecr.${this.region}.${this.urlSuffix}/nanogrid/python:latest`,
      cpp: `${this.account}.dkr.ecr.${this.region}.${this.urlSuffix}/nanogrid/cpp:latest`,
      node: `${this.account}.dkr.ecr.${this.region}.${this.urlSuffix}/nanogrid/node:latest`,
    };
    this.role = workerRole(this, {
      queue: this.queue,
      codeBucket: this.codeBucket,
      userDataBucket: this.userDataBucket,
      logGroups: [this.agentLogGroup, this.functionLogGroup].filter((g) => g !== undefined),
      groupName,
      pullsFromEcr: !props.images,
    });

    // ---- launch template: Amazon Linux 2023, IMDSv2 only, hop limit 1 ----
    // The group's logical id is only known once the group exists; cfn-signal names it.
    let groupResource: cdk.CfnElement | undefined;
    const artifactKey = `${RELEASES_PREFIX}nanogrid-worker-${artifactVersion.valueAsString}.tgz`;
    const script = workerUserData({
      QUEUE_URL: this.queue.queueUrl,
      REDIS_URL: redisUrl,
      CODE_BUCKET: this.codeBucket.bucketName,
      USER_DATA_BUCKET: this.userDataBucket.bucketName,
      IMAGE_PYTHON: images.python,
      IMAGE_CPP: images.cpp,
      // A runtime without an image is not enabled (the agent refuses to start without its
      // images); blank, the agent's default stands and is never pulled.
      IMAGE_NODE: images.node ?? '',
      RUNTIMES: images.node ? 'python,cpp,node' : 'python,cpp',
      MAX_RUN_MS: String(maxRunS * 1000),
      STOP_TIMEOUT_S: String(maxRunS + 60),
      LIFECYCLE_HOOK,
      LAUNCH_HOOK,
      ASG_NAME: groupName,
      METRICS_NAMESPACE,
      HTTP_PORT: String(HTTP_PORT),
      ARTIFACT_VERSION: artifactVersion.valueAsString,
      ARTIFACT_KEY: artifactKey,
      ARTIFACT_SHA256: artifactSha256.valueAsString,
      STACK_NAME: this.stackName,
      REGION: this.region,
      AGENT_LOG_GROUP: this.agentLogGroup.logGroupName,
      FUNCTION_LOG_GROUP: this.functionLogGroup?.logGroupName ?? '',
      GROUP_RESOURCE: cdk.Lazy.string({ produce: () => this.getLogicalId(groupResource!) }),
    });
    const template = new ec2.LaunchTemplate(this, 'WorkerTemplate', {
      machineImage: ec2.MachineImage.latestAmazonLinux2023(),
      instanceType: new ec2.InstanceType(props.instanceType ?? 'm7i.large'),
      role: this.role,
      securityGroup: workerSg,
      userData: ec2.UserData.custom(script),
      requireImdsv2: true,
      httpPutResponseHopLimit: 1,
      instanceMetadataTags: true,
      blockDevices: [{ deviceName: '/dev/xvda', volume: ec2.BlockDeviceVolume.ebs(60, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }) }],
    });

    // ---- the group ----
    // Alarms and the group's own launch and termination events go to one topic.
    const topic = new sns.Topic(this, 'Alarms', { enforceSSL: true, masterKey: kms.Alias.fromAliasName(this, 'SnsKey', 'alias/aws/sns') });
    this.group = new autoscaling.AutoScalingGroup(this, 'Workers', {
      autoScalingGroupName: groupName,
      vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      launchTemplate: template,
      minCapacity,
      maxCapacity: props.maxCapacity ?? 5,
      healthChecks: autoscaling.HealthChecks.ec2({ gracePeriod: cdk.Duration.minutes(5) }),
      notifications: [{ topic }],
      groupMetrics: [new autoscaling.GroupMetrics(autoscaling.GroupMetric.IN_SERVICE_INSTANCES, autoscaling.GroupMetric.DESIRED_CAPACITY)],
      // Creation: CloudFormation waits for the first instances' cfn-signal; a failure fails the
      // stack. An empty group (the first deploy, before a release is uploaded) has none to wait for.
      signals: minCapacity > 0 ? autoscaling.Signals.waitForMinCapacity({ timeout: INSTALL_BUDGET.plus(cdk.Duration.minutes(5)) }) : undefined,
      // A new release (or any launch template change) is an instance refresh that CloudFormation
      // starts and waits for: new instances first, the old ones drained once the new are in
      // service. A failed refresh fails the update, and the rollback refreshes back.
      updatePolicy: autoscaling.UpdatePolicy.instanceRefresh({
        strategy: autoscaling.InstanceRefreshStrategy.ROLLING,
        minHealthyPercentage: 100,
        maxHealthyPercentage: 150,
        // In service means installed and ready already (the launch hook): a short warm-up.
        instanceWarmup: cdk.Duration.seconds(60),
        skipMatching: true,
      }),
    });
    // The tag ops/prometheus/prometheus.yml discovers the workers by, on every instance.
    cdk.Tags.of(this.group).add(DISCOVERY_TAG.key, DISCOVERY_TAG.value, { applyToLaunchedInstances: true });
    const cfnGroup = this.group.node.defaultChild as autoscaling.CfnAutoScalingGroup;
    groupResource = cfnGroup;
    // Instance refresh takes no cfn-signal: its launches are held by the launch hook instead.
    cdk.Annotations.of(this.group).acknowledgeWarning('@aws-cdk/aws-autoscaling:signalsNotUsedByInstanceRefresh', 'The signals are for the group\'s creation; a refresh\'s launches wait on the launch lifecycle hook.');
    // On the group itself, not a resource of its own: it then holds the group's very first
    // launches too, so every instance ever put in service has reported a good install.
    cfnGroup.lifecycleHookSpecificationList = [
      {
        lifecycleHookName: LAUNCH_HOOK,
        lifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
        heartbeatTimeout: INSTALL_BUDGET.toSeconds(),
        defaultResult: 'ABANDON',
      },
    ];
    this.group.addLifecycleHook('Drain', {
      lifecycleHookName: LIFECYCLE_HOOK,
      lifecycleTransition: autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
      // The agent heartbeats every minute while runs finish; a silent agent is let go.
      heartbeatTimeout: cdk.Duration.minutes(5),
      defaultResult: autoscaling.DefaultResult.CONTINUE,
    });

    backlogScaling(this, this.group, this.queue, {
      acceptableLatencyS: props.acceptableLatencyS ?? 30,
      averageProcessingS: props.averageProcessingS ?? 1,
      slotsPerInstance: props.slotsPerInstance ?? 6,
    });
    fleetAlarms(this, { topic, queue: this.queue, deadLetterQueue: this.deadLetterQueue, group: this.group, groupName, oldestMessageAlarmS: props.oldestMessageAlarmS, alarmEmail: props.alarmEmail });

    new cdk.CfnOutput(this, 'QueueUrl', { value: this.queue.queueUrl });
    new cdk.CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queueUrl });
    new cdk.CfnOutput(this, 'CodeBucketName', { value: this.codeBucket.bucketName });
    new cdk.CfnOutput(this, 'UserDataBucketName', { value: this.userDataBucket.bucketName });
    new cdk.CfnOutput(this, 'GroupName', { value: groupName });
    new cdk.CfnOutput(this, 'ArtifactKey', { value: artifactKey, description: 'The release the workers install, in the code bucket' });
    new cdk.CfnOutput(this, 'RedisUrl', { value: redisUrl });
    new cdk.CfnOutput(this, 'ScraperSecurityGroupId', { value: this.scraperSecurityGroup.securityGroupId, description: 'Attach to what scrapes the workers: the only source their HTTP port admits' });
  }
}
