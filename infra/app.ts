import * as cdk from 'aws-cdk-lib';
import * as cwlogs from 'aws-cdk-lib/aws-logs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { WorkerStack, type WorkerStackProps } from './workerStack.js';

/**
 * The CDK app (`npm run synth`): one WorkerStack, configured by context (`-c name=value`
 * or cdk.json). Environment-agnostic: it synthesises with no AWS account.
 */
export function buildApp(app = new cdk.App()): { app: cdk.App; stack: WorkerStack } {
  const ctx = (name: string) => app.node.tryGetContext(name) as string | undefined;
  const num = (name: string) => (ctx(name) === undefined ? undefined : Number(ctx(name)));
  /** Days CloudWatch Logs offers (1, 3, 5, 7, 14, 30, ...), or 'off' where `off` is allowed. */
  const retention = (name: string, off: boolean): cwlogs.RetentionDays | null | undefined => {
    const v = ctx(name);
    if (v === undefined) return undefined;
    if (off && String(v) === 'off') return null;
    const days = Number(v);
    if (!Object.values(cwlogs.RetentionDays).includes(days)) {
      throw new Error(`-c ${name}=${String(v)}: not a retention CloudWatch Logs offers (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, ... days)${off ? ", or 'off'" : ''}`);
    }
    return days as cwlogs.RetentionDays;
  };
  const props: WorkerStackProps = {
    redisUrl: ctx('redisUrl') || undefined,
    instanceType: ctx('instanceType'),
    minCapacity: num('minCapacity'),
    maxCapacity: num('maxCapacity'),
    acceptableLatencyS: num('acceptableLatencyS'),
    averageProcessingS: num('averageProcessingS'),
    slotsPerInstance: num('slotsPerInstance'),
    maxRunS: num('maxRunS'),
    alarmEmail: ctx('alarmEmail') || undefined,
    agentLogRetentionDays: retention('agentLogRetentionDays', false) ?? undefined,
    functionLogRetentionDays: retention('functionLogRetentionDays', true),
    images: ctx('imagePython') && ctx('imageCpp') ? { python: ctx('imagePython')!, cpp: ctx('imageCpp')!, ...(ctx('imageNode') ? { node: ctx('imageNode')! } : {}) } : undefined,
    description: 'NanoGrid worker fleet',
  };
  const stack = new WorkerStack(app, ctx('stackName') ?? 'NanoGridWorkers', props);
  cdk.Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { app, stack };
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) buildApp().app.synth();
