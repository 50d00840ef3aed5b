import { int, read, type Env } from '../core/envRead.js';
import { localStackFile } from '../config.js';

/** What the operator CLI (nanogrid.ts) takes from its environment; its flags win over these. */
export interface CliEnv {
  /** NANOGRID_URL: the agent's HTTP port. */
  agentUrl: string;
  endpoint: string | undefined;
  redisUrl: string | undefined;
  queueUrl: string | undefined;
  /** The first of S3_CODE_BUCKET. */
  codeBucket: string | undefined;
  /** AWS_ACCESS_KEY_ID is set: the SDK's chain has keys, the embedded stack's are not needed. */
  hasAccessKey: boolean;
  region: string;
  /** NANOGRID_MESSAGE_KEYS, raw: the CLI signs with the first key. */
  messageKeys: string | undefined;
  adminToken: string | undefined;
  /** Where `npm run local` says how to reach its stack (NANOGRID_LOCAL_STACK_FILE). */
  localStackFile: string;
  /** How long --local waits for a stack still starting (NANOGRID_LOCAL_WAIT_S, 120). */
  localWaitMs: number;
}

export function loadCliEnv(env: Env = process.env): CliEnv {
  const v = (name: string) => env[name]?.trim() || undefined;
  const redisHost = v('REDIS_HOST');
  return {
    agentUrl: v('NANOGRID_URL') ?? 'http://127.0.0.1:8080',
    endpoint: v('AWS_ENDPOINT_URL'),
    redisUrl: v('REDIS_URL') ?? (redisHost ? `redis://${redisHost}:${v('REDIS_PORT') ?? 6379}` : undefined),
    queueUrl: v('SQS_QUEUE_URL'),
    codeBucket: v('S3_CODE_BUCKET')?.split(',')[0]?.trim() || undefined,
    hasAccessKey: v('AWS_ACCESS_KEY_ID') !== undefined,
    region: v('AWS_REGION') ?? 'us-east-1',
    messageKeys: v('NANOGRID_MESSAGE_KEYS'),
    adminToken: v('NANOGRID_ADMIN_TOKEN'),
    localStackFile: localStackFile(env),
    localWaitMs: read(env, 'NANOGRID_LOCAL_WAIT_S', int(0, 3600), 120) * 1000,
  };
}
