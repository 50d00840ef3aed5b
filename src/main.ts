import { Agent } from './agent.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { startLocalStack, type LocalStack } from './local/stack.js';
import { LOCAL_CREDENTIALS } from './local/agentConfig.js';
import { createLogger } from './observe/log.js';

/**
 * The worker agent's entrypoint. With SQS_QUEUE_URL unset it starts the embedded local
 * stack (fauxqs for SQS and S3, a private redis-server) so it runs with no AWS account.
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
  const log = createLogger(config.logLevel);
  let stack: LocalStack | undefined;
  let credentials: { accessKeyId: string; secretAccessKey: string } | undefined;
  if (!config.queueUrl) {
    stack = await startLocalStack({ port: Number(process.env.NANOGRID_LOCAL_PORT ?? 4566), redisUrl: config.redisUrl });
    config = { ...config, queueUrl: stack.queueUrl, endpoint: stack.endpoint, redisUrl: stack.redisUrl, region: stack.region };
    credentials = LOCAL_CREDENTIALS;
    log.info({ tag: 'AGENT', endpoint: stack.endpoint, queueUrl: stack.queueUrl, dlqUrl: stack.dlqUrl, bucket: stack.bucket, redisUrl: stack.redisUrl }, 'embedded local stack started');
  }
  const agent = new Agent({ config, log, credentials });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ tag: 'AGENT', signal }, 'signal received');
    await agent.stop();
    await stack?.stop();
    log.flush();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  try {
    await agent.start();
  } catch (err) {
    log.fatal({ tag: 'AGENT', err: String(err) }, 'agent could not start');
    await agent.stop().catch(() => undefined);
    await stack?.stop();
    log.flush();
    process.exit(1);
  }
}

void main();
