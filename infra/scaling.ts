import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';

export interface BacklogTargetProps {
  acceptableLatencyS: number;
  averageProcessingS: number;
  slotsPerInstance: number;
}

/** The backlog per instance the group tracks: how many messages one worker clears within the acceptable latency. */
export function backlogTarget(p: BacklogTargetProps): number {
  return Math.max(1, Math.round((p.acceptableLatencyS / p.averageProcessingS) * p.slotsPerInstance));
}

/**
 * Target tracking on backlog per instance (AWS's recipe for SQS workers, by metric math:
 * messages waiting over workers in service), made in `scope` itself.
 */
export function backlogScaling(scope: Construct, group: autoscaling.AutoScalingGroup, queue: sqs.Queue, p: BacklogTargetProps): autoscaling.CfnScalingPolicy {
  return new autoscaling.CfnScalingPolicy(scope, 'BacklogPerInstance', {
    autoScalingGroupName: group.autoScalingGroupName,
    policyType: 'TargetTrackingScaling',
    estimatedInstanceWarmup: 300,
    targetTrackingConfiguration: {
      targetValue: backlogTarget(p),
      customizedMetricSpecification: {
        metrics: [
          {
            id: 'visible',
            label: 'Messages waiting',
            metricStat: {
              metric: { namespace: 'AWS/SQS', metricName: 'ApproximateNumberOfMessagesVisible', dimensions: [{ name: 'QueueName', value: queue.queueName }] },
              stat: 'Sum',
            },
            returnData: false,
          },
          {
            id: 'instances',
            label: 'Workers in service',
            metricStat: {
              metric: { namespace: 'AWS/AutoScaling', metricName: 'GroupInServiceInstances', dimensions: [{ name: 'AutoScalingGroupName', value: group.autoScalingGroupName }] },
              stat: 'Average',
            },
            returnData: false,
          },
          { id: 'backlogPerInstance', label: 'Backlog per instance', expression: 'visible / instances', returnData: true },
        ],
      },
    },
  });
}
