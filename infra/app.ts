import * as cdk from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { WorkerStack, type WorkerStackProps } from './workerStack.js';

/**
 * The CDK app (`npm run synth`): one WorkerStack, configured by context (`-c name=value`
 * or cdk.json). Environment-agnostic: it synthesises with no AWS account.
 */
export function buildApp(app = new cdk.App()): { app: cdk.App; stack: WorkerStack } {
  const ctx = (name: string) => app.node.tryGetContext(name) as string | undefined;
  const num = (name: string) => (ctx(name) === undefined ? undefined : Number(ctx(name)));
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
    images: ctx('imagePython') && ctx('imageCpp') ? { python: ctx('imagePython')!, cpp: ctx('imageCpp')!, ...(ctx('imageNode') ? { node: ctx('imageNode')! } : {}) } : undefined,
    description: 'NanoGrid worker fleet',
  };
  const stack = new WorkerStack(app, ctx('stackName') ?? 'NanoGridWorkers', props);
  cdk.Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return { app, stack };
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) buildApp().app.synth();
