import * as cdk from 'aws-cdk-lib';
import type * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as sns from 'aws-cdk-lib/aws-sns';
import type * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { METRICS_NAMESPACE } from './constants.js';

export interface FleetAlarmsProps {
  topic: sns.Topic;
  queue: sqs.Queue;
  deadLetterQueue: sqs.Queue;
  group: autoscaling.AutoScalingGroup;
  groupName: string;
  /** Alarm when the oldest message has waited longer than this; default 600. */
  oldestMessageAlarmS?: number;
  alarmEmail?: string;
}

/** The fleet's four alarms, all to one topic (which also hears the group's launches and terminations). */
export function fleetAlarms(scope: Construct, p: FleetAlarmsProps): void {
  if (p.alarmEmail) new sns.Subscription(scope, 'AlarmMail', { topic: p.topic, protocol: sns.SubscriptionProtocol.EMAIL, endpoint: p.alarmEmail });
  const alarm = (id: string, a: cloudwatch.AlarmProps) => new cloudwatch.Alarm(scope, id, a).addAlarmAction(new actions.SnsAction(p.topic));
  alarm('DeadLetters', {
    alarmDescription: 'Invocations reached the dead-letter queue: they failed on every try',
    metric: p.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: cdk.Duration.minutes(1), statistic: 'Maximum' }),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
  alarm('OldestMessage', {
    alarmDescription: 'Invocations wait too long: the fleet is not keeping up or not receiving',
    metric: p.queue.metricApproximateAgeOfOldestMessage({ period: cdk.Duration.minutes(1), statistic: 'Maximum' }),
    threshold: p.oldestMessageAlarmS ?? 600,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
    evaluationPeriods: 3,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
  alarm('NoHealthyWorkers', {
    alarmDescription: 'No worker is in service',
    metric: new cloudwatch.Metric({
      namespace: 'AWS/AutoScaling',
      metricName: 'GroupInServiceInstances',
      dimensionsMap: { AutoScalingGroupName: p.group.autoScalingGroupName },
      period: cdk.Duration.minutes(1),
      statistic: 'Minimum',
    }),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
    evaluationPeriods: 3,
    // No data from the group is no workers.
    treatMissingData: cloudwatch.TreatMissingData.BREACHING,
  });
  alarm('FailedInstalls', {
    alarmDescription: 'A worker failed to install the release (the user data counts it; the instance was abandoned): see /var/log/nanogrid-user-data.log through Session Manager, or the release',
    metric: new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName: 'FailedInstalls', dimensionsMap: { AutoScalingGroupName: p.groupName }, period: cdk.Duration.minutes(5), statistic: 'Sum' }),
    threshold: 1,
    comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
    evaluationPeriods: 1,
    treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
  });
}
