import * as cdk from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as cwlogs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import { INPUTS_PREFIX, METRICS_NAMESPACE, RELEASES_PREFIX } from './constants.js';

export interface WorkerRoleGrants {
  queue: sqs.Queue;
  codeBucket: s3.Bucket;
  userDataBucket: s3.Bucket;
  logGroups: cwlogs.LogGroup[];
  /** The Auto Scaling group's name (its ARN carries an id known only at creation). */
  groupName: string;
  /** The images are this account's ECR repositories nanogrid/*: pull them. */
  pullsFromEcr: boolean;
}

/**
 * The workers' role, least privilege: each statement names the one thing it reaches, and
 * every wildcard IAM cannot avoid is acknowledged with its reason (cdk-nag). Made in the
 * stack itself, so the logical ids are the stack's.
 */
export function workerRole(stack: cdk.Stack, g: WorkerRoleGrants): iam.Role {
  const role = new iam.Role(stack, 'WorkerRole', { assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'), description: 'NanoGrid worker agent' });
  const groupArn = `arn:${stack.partition}:autoscaling:${stack.region}:${stack.account}:autoScalingGroup:*:autoScalingGroupName/${g.groupName}`;
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'Intake',
      actions: ['sqs:ReceiveMessage', 'sqs:DeleteMessage', 'sqs:ChangeMessageVisibility', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'],
      resources: [g.queue.queueArn],
    }),
  );
  role.addToPolicy(new iam.PolicyStatement({ sid: 'Code', actions: ['s3:GetObject'], resources: [g.codeBucket.arnForObjects('*')] }));
  role.addToPolicy(new iam.PolicyStatement({ sid: 'Outputs', actions: ['s3:PutObject'], resources: [g.userDataBucket.arnForObjects('*')] }));
  // Inputs by reference: exactly the prefix the agent reads them from (NANOGRID_INPUT_PREFIX's default).
  role.addToPolicy(new iam.PolicyStatement({ sid: 'Inputs', actions: ['s3:GetObject'], resources: [g.userDataBucket.arnForObjects(`${INPUTS_PREFIX}*`)] }));
  role.addToPolicy(
    new iam.PolicyStatement({
      sid: 'Metrics',
      actions: ['cloudwatch:PutMetricData'],
      // PutMetricData has no resource: the namespace condition is its limit.
      resources: ['*'],
      conditions: { StringEquals: { 'cloudwatch:namespace': METRICS_NAMESPACE } },
    }),
  );
  role.addToPolicy(new iam.PolicyStatement({ sid: 'Lifecycle', actions: ['autoscaling:CompleteLifecycleAction', 'autoscaling:RecordLifecycleActionHeartbeat'], resources: [groupArn] }));
  if (g.pullsFromEcr) {
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'ImagePull',
        actions: ['ecr:BatchGetImage', 'ecr:GetDownloadUrlForLayer', 'ecr:BatchCheckLayerAvailability'],
        resources: [`arn:${stack.partition}:ecr:${stack.region}:${stack.account}:repository/nanogrid/*`],
      }),
    );
    role.addToPolicy(new iam.PolicyStatement({ sid: 'RegistryLogin', actions: ['ecr:GetAuthorizationToken'], resources: ['*'] }));
  }
  // Its own stream in each group (named by the agent id), nothing else of CloudWatch Logs.
  role.addToPolicy(new iam.PolicyStatement({ sid: 'Logs', actions: ['logs:CreateLogStream', 'logs:PutLogEvents'], resources: g.logGroups.map((l) => l.logGroupArn) }));
  // The liveness watch outside the agent (ops/fleet/health-watch.sh) reports its own instance.
  role.addToPolicy(new iam.PolicyStatement({ sid: 'Health', actions: ['autoscaling:SetInstanceHealth'], resources: [groupArn] }));
  // Session Manager (docs/fleet.md, Reaching the fleet): AWS's managed policy for its agent.
  role.addManagedPolicy(iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore'));
  cdk.Validations.of(role).acknowledge({
    id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
    reason: 'Session Manager\'s own policy for its agent (the only way in to a worker: no SSH, no bastion); AWS keeps it current with the agent.',
  });
  acknowledgeWildcards(stack, role, g);
  return role;
}

/** Wildcards only where IAM has no narrower form, each acknowledged with its reason. */
function acknowledgeWildcards(stack: cdk.Stack, role: iam.Role, g: WorkerRoleGrants): void {
  const wildcard = (finding: string, reason: string) => cdk.Validations.of(role).acknowledge({ id: `AwsSolutions-IAM5[${finding}]`, reason });
  const arnOf = (c: s3.Bucket | cwlogs.LogGroup) => `<${stack.getLogicalId(c.node.defaultChild as cdk.CfnElement)}.Arn>`;
  wildcard(`Resource::${arnOf(g.codeBucket)}/*`, `Code objects are keyed by function and version, and the agent's releases by version under ${RELEASES_PREFIX}: any key of the code bucket, read only.`);
  wildcard(`Resource::${arnOf(g.userDataBucket)}/*`, 'Outputs are keyed by function and request: any key of the user-data bucket, write only.');
  wildcard(`Resource::${arnOf(g.userDataBucket)}/${INPUTS_PREFIX}*`, 'Inputs are keyed by function: the inputs prefix of the user-data bucket, read only (the agent reads each function\'s own part of it).');
  wildcard('Resource::*', 'PutMetricData takes no resource (limited by its namespace condition); ecr:GetAuthorizationToken takes no resource.');
  wildcard(
    `Resource::arn:<AWS::Partition>:autoscaling:<AWS::Region>:<AWS::AccountId>:autoScalingGroup:*:autoScalingGroupName/${g.groupName}`,
    'A group ARN carries an id generated at creation: the group is named exactly instead.',
  );
  for (const l of g.logGroups) {
    wildcard(`Resource::${arnOf(l)}`, 'A log group\'s ARN ends in :* (its streams): each worker writes its own stream, named by its agent id, in the stack\'s two groups only.');
  }
  if (g.pullsFromEcr) wildcard('Resource::arn:<AWS::Partition>:ecr:<AWS::Region>:<AWS::AccountId>:repository/nanogrid/*', 'The runtime images\' repositories, pull only.');
}
