import { loadConfig, type Config } from '../config.js';
import type { LocalStack } from './stack.js';

/** The embedded stack does not check credentials; the SDK still wants some. */
export const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

type Env = Record<string, string | undefined>;

/**
 * An agent's configuration for the embedded local stack, shared by the tests, the demo
 * and the bench: the stack's queue, endpoint and Redis, an HTTP port picked on loopback,
 * no CloudWatch, short long polls (stopping waits for the poll in flight). `overrides`
 * win over these; these win over `base` (for example process.env).
 */
export function localAgentConfig(stack: Pick<LocalStack, 'queueUrl' | 'endpoint' | 'redisUrl' | 'region'>, agentId: string, overrides: Env = {}, base: Env = {}): Config {
  return loadConfig({
    ...base,
    NANOGRID_AGENT_ID: agentId,
    HTTP_PORT: '0',
    HTTP_HOST: '127.0.0.1',
    SQS_QUEUE_URL: stack.queueUrl,
    AWS_ENDPOINT_URL: stack.endpoint,
    AWS_REGION: stack.region,
    REDIS_URL: stack.redisUrl,
    NANOGRID_CLOUDWATCH: 'off',
    NANOGRID_RECEIVE_WAIT_S: '2',
    ...overrides,
  });
}
