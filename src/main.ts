import { Agent } from './agent.js';
import { Imds } from './fleet/imds.js';
import { onEc2, resolveRegion } from './fleet/region.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { startLocalStack, type LocalStack } from './local/stack.js';
import { LOCAL_CREDENTIALS } from './local/agentConfig.js';
import { removeStackFile, writeStackFile } from './local/stackFile.js';
import { createLogger } from './core/log.js';
import { agentLogShipper, startAgentLogShipper } from './observe/logShipping.js';

/**
 * The worker agent's entrypoint. It fails closed: without SQS_QUEUE_URL it refuses to
 * start, unless local mode is asked for explicitly (`--local`, NANOGRID_LOCAL=1 or
 * `npm run local`), which starts the embedded local stack (fauxqs for SQS and S3, a
 * private redis-server) so it runs with no AWS account.
 */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`nanogrid-worker: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const local = process.argv.includes('--local') || config.local.requested;
  if (!config.queueUrl && !local) {
    // A forgotten queue URL must not look like a healthy worker serving nothing.
    process.stderr.write(
      'nanogrid-worker: SQS_QUEUE_URL is not set: set it to the invocation queue, or ask for the embedded local stack explicitly (npm run local, --local or NANOGRID_LOCAL=1)\n',
    );
    process.exit(2);
  }
  if (config.queueUrl && !config.redisUrl) {
    process.stderr.write('nanogrid-worker: REDIS_URL (or REDIS_HOST and REDIS_PORT) is not set: results need a Redis\n');
    process.exit(2);
  }
  // Buffering from the first line: the start's lines reach CloudWatch Logs too.
  const shipper = agentLogShipper(config);
  const log = createLogger(config.logLevel, undefined, shipper?.destination);
  let stack: LocalStack | undefined;
  let credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  if (!config.queueUrl) {
    try {
      stack = await startLocalStack({ port: config.local.port, redisUrl: config.redisUrl });
    } catch (err) {
      process.stderr.write(`nanogrid-worker: ${portTaken(err, 'NANOGRID_LOCAL_PORT', config.local.port) ?? `the embedded local stack could not start: ${(err as Error).message}`}\n`);
      process.exit(2);
    }
    const endpoints = { sqs: stack.endpoint, s3: stack.endpoint, cloudwatch: config.endpoints.cloudwatch, autoScaling: config.endpoints.autoScaling, logs: config.endpoints.logs, generic: stack.endpoint };
    config = { ...config, queueUrl: stack.queueUrl, endpoints, redisUrl: stack.redisUrl, region: stack.region };
    credentials = LOCAL_CREDENTIALS;
    log.info({ tag: 'AGENT', endpoint: stack.endpoint, queueUrl: stack.queueUrl, dlqUrl: stack.dlqUrl, bucket: stack.bucket, redisUrl: stack.redisUrl, stackFile: config.local.stackFile }, 'embedded local stack started');
  }
  if (!config.region) {
    // The SDK's chain, then the instance metadata (only when this agent may ask it).
    try {
      const ask = !config.metadataDisabled && (config.termination.watch === 'imds' || config.termination.imdsEndpoint !== undefined || (await onEc2()));
      const imds = ask ? new Imds({ endpoint: config.termination.imdsEndpoint }) : undefined;
      config = { ...config, region: await resolveRegion({ imds }) };
    } catch (err) {
      process.stderr.write(`nanogrid-worker: ${String(err instanceof Error ? err.message : err)}\n`);
      process.exit(2);
    }
  }
  startAgentLogShipper(shipper, config, credentials, log);
  const stackFile = config.local.stackFile;
  const stopStack = async () => {
    if (!stack) return;
    await removeStackFile(stackFile, stack).catch(() => undefined);
    await stack.stop();
  };
  const agent = new Agent({ config, log, credentials });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ tag: 'AGENT', signal }, 'signal received');
    await agent.stop();
    await stopStack();
    await shipper?.close();
    log.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  try {
    await agent.start();
  } catch (err) {
    log.fatal({ tag: 'AGENT', err }, 'agent could not start');
    const taken = portTaken(err, 'HTTP_PORT', config.httpPort);
    if (taken) process.stderr.write(`nanogrid-worker: ${taken}\n`);
    await agent.stop().catch(() => undefined);
    await stopStack();
    await shipper?.close();
    log.flush();
    process.exit(taken ? 2 : 1);
  }
  if (stack) {
    // Written once the agent serves: a CLI that finds the file finds a working stack.
    await writeStackFile(stackFile, stack);
    process.stderr.write(localSettings(stack, `http://127.0.0.1:${agent.httpPort}`, stackFile));
  }
}

/** A listen that failed because the port is taken, as one line naming the setting; else null. */
function portTaken(err: unknown, setting: string, port: number | undefined): string | null {
  for (let e = err as { code?: string; port?: number; cause?: unknown } | undefined, i = 0; e && i < 5; e = e.cause as typeof e, i++) {
    if (e.code === 'EADDRINUSE') return `port ${e.port ?? port} is taken (${setting}): stop what listens there, or set ${setting} to another port (0 picks a free one)`;
  }
  return null;
}

/** What another shell needs to use the embedded stack, ready to paste. */
function localSettings(stack: LocalStack, agentUrl: string, stackFile: string): string {
  return [
    'nanogrid-worker: the embedded local stack is ready. In another shell:',
    `  export SQS_QUEUE_URL=${stack.queueUrl} S3_CODE_BUCKET=${stack.bucket} AWS_ENDPOINT_URL=${stack.endpoint} REDIS_URL=${stack.redisUrl} NANOGRID_URL=${agentUrl}`,
    `  node dist/src/cli/nanogrid.js invoke ./my-function --function my-function    (or --local: the same settings, from ${stackFile})`,
    '',
  ].join('\n');
}

void main();
