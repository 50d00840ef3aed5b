import { hostname, totalmem } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import type { RuntimeTable } from './core/runtimes.js';
import { DEFAULT_BUILD_CACHE_MB, loadRuntimes } from './core/runtimeConfig.js';
import { ConfigError, int, read, type Env } from './core/envRead.js';
import { defaultRunnerDir } from './core/sandbox.js';
import { DEFAULT_CPU_POLICY, type CpuPolicy } from './container/cpuShare.js';
import type { PullPolicy } from './container/imagePull.js';
import { DEFAULT_LIMITS, type SandboxLimits } from './container/limits.js';
import { DEFAULT_UID_RANGE, parseUidRange, type UidRange } from './container/sandboxUser.js';
import { MIN_RESULT_BYTES } from './core/resultBudget.js';
import { parseMessageKeys, type MessageKey } from './intake/messageAuth.js';
import { DEFAULT_INPUT_PREFIX } from './intake/parse.js';

export interface ServiceEndpoints {
  sqs: string | undefined;
  s3: string | undefined;
  /** Only AWS_ENDPOINT_URL_CLOUDWATCH (or NANOGRID_CLOUDWATCH_ENDPOINT): emulators behind AWS_ENDPOINT_URL rarely speak CloudWatch. */
  cloudwatch: string | undefined;
  autoScaling: string | undefined;
  /** AWS_ENDPOINT_URL_CLOUDWATCH_LOGS only, as CloudWatch's own. */
  logs: string | undefined;
  /** AWS_ENDPOINT_URL itself: set, CloudWatch is off unless it has an endpoint of its own. */
  generic: string | undefined;
}

export interface LogShippingConfig {
  /** NANOGRID_LOG_GROUP: the agent's own lines (the summary line included). */
  group: string | undefined;
  /** NANOGRID_FUNCTION_LOG_GROUP: each run's stdout and stderr, one event per invocation. */
  functionGroup: string | undefined;
  /** NANOGRID_LOG_STREAM: this worker's stream in both groups; the agent id by default. */
  stream: string;
  flushMs: number;
}

/** How the agent learns that its instance is going away. */
export interface TerminationConfig {
  /** imds: poll the instance metadata (IMDSv2) for a lifecycle termination or a Spot notice; off: only SIGTERM and POST /drain. */
  watch: 'imds' | 'off';
  /** AWS_EC2_METADATA_SERVICE_ENDPOINT (the SDK's variable); unset, the SDK's default address. */
  imdsEndpoint: string | undefined;
  pollMs: number;
  /** The termination lifecycle hook to complete (the CDK stack's name). */
  hookName: string;
  /** The Auto Scaling group; unset, read from the instance's tags in metadata. */
  groupName: string | undefined;
  /** Interval of lifecycle heartbeats while the drain runs. */
  heartbeatMs: number;
  /** A Spot notice's deadline less this: what is still running then is given back. */
  spotMarginMs: number;
}

export interface Config {
  agentId: string;
  /** DOCKER_SOCKET: the engine's API socket. */
  dockerSocket: string;
  /** NANOGRID_LOCAL=1 (or --local): without SQS_QUEUE_URL, start the embedded stack on NANOGRID_LOCAL_PORT. */
  local: { requested: boolean; port: number; stackFile: string };
  /** AWS_EC2_METADATA_DISABLED=true, the SDK's own switch: the agent never asks the instance metadata either. */
  metadataDisabled: boolean;
  queueUrl: string | undefined;
  /** AWS_REGION; unset, the SDK's chain decides (profile, then instance metadata: see fleet/region.ts). */
  region: string | undefined;
  /** Per-service endpoints, by the SDK's convention: AWS_ENDPOINT_URL_<SERVICE>, else AWS_ENDPOINT_URL. */
  endpoints: ServiceEndpoints;
  redisUrl: string | undefined;
  httpPort: number;
  httpHost: string;
  /** The runtimes it runs (core/runtimeConfig.ts: built-ins, NANOGRID_RUNTIMES_FILE, NANOGRID_RUNTIMES). */
  runtimes: RuntimeTable;
  idleTimeoutMs: number;
  resultTtlSeconds: number;
  network: string;
  workRoot: string;
  defaultTimeoutMs: number;
  maxTimeoutMs: number;
  defaultMemoryMb: number;
  outputLimitBytes: number;
  codeMaxBytes: number;
  zipMaxEntries: number;
  zipMaxBytes: number;
  visibilityTimeoutS: number;
  receiveWaitS: number;
  /** Messages held ahead of free slots while runs are short (NANOGRID_PREFETCH, 0: never; at most one receive batch). */
  prefetch: number;
  /** Prefetch only while recent runs take at most this long (NANOGRID_PREFETCH_MAX_RUN_MS). */
  prefetchMaxRunMs: number;
  maxReceiveCount: number | undefined;
  shutdownGraceMs: number;
  dockerTimeoutMs: number;
  s3TimeoutMs: number;
  unzipThreads: number;
  logLevel: string;
  tipLanguage: 'en' | 'ko';
  cloudwatchEnabled: boolean;
  cloudwatchFlushMs: number;
  cloudwatchNamespace: string;
  /** Functions with figures in one flush; the rest are dropped and counted (NANOGRID_CLOUDWATCH_MAX_SERIES). */
  cloudwatchMaxSeries: number;
  /** CloudWatch Logs shipping: off while `group` is unset (docs/operations.md, "Logs"). */
  logShipping: LogShippingConfig;
  memoryHistorySize: number;
  /** Folder with the runner binary and the zygote, mounted read-only in every container. */
  runnerDir: string;
  freezer: 'cgroup' | 'docker';
  pauseGraceMs: number;
  codeStalenessMs: number;
  codeCacheBytes: number;
  /** Files and folders of the code cache's versions together (NANOGRID_CODE_CACHE_INODES). */
  codeCacheInodes: number;
  /** The buckets a message may name for its code (S3_CODE_BUCKET, comma-separated); any when empty. */
  codeBuckets: string[];
  /** S3_USER_DATA_BUCKET: inputs by reference may come from it; outputs go to it. */
  userDataBucket: string | undefined;
  /** Largest inline inputData (JSON text) and largest input object by reference. */
  inputMaxBytes: number;
  inputS3MaxBytes: number;
  /** Files and bytes stored from a run's output/ folder. */
  outputsMaxFiles: number;
  outputsMaxBytes: number;
  /** The memory the agent's containers may be allowed, MB: the host's minus a reserve for the system and the agent. */
  memoryBudgetMb: number;
  termination: TerminationConfig;
  /** NANOGRID_IMAGE_PULL: never (images built locally), missing (pull what is absent) or always. */
  imagePull: PullPolicy;
  imagePullTimeoutMs: number;
  /** AI_ENDPOINT: the AI node (a URL) functions may reach, and nothing else. */
  aiEndpoint: string | undefined;
  /** The code archive in a second cloud (GCP_BUCKET_NAME through GCS's S3-compatible XML API, HMAC keys). */
  archive: { bucket: string; endpoint: string; accessKeyId: string; secretAccessKey: string } | undefined;
  /** A truncated stdout or stderr is kept whole up to this, and stored with the outputs. */
  outputSpoolBytes: number;
  /** Undelivered results, kept across restarts (outside the agent's folder, which is wiped at start). */
  outboxDir: string;
  /** Writable space per container (workspace, /tmp and /dev/shm together). */
  diskLimitMb: number;
  /** Reserve each container's writable space on the host disk up front. */
  diskReserve: boolean;
  /** Scratch file systems kept ready for the next cold start (made ahead, then recycled from removed containers). */
  scratchSpare: number;
  /** The build cache's bound (NANOGRID_BUILD_CACHE_MB; 0: C++ compiles on every run). */
  buildCacheMb: number;
  cpu: CpuPolicy;
  /** The host uids functions run as, one per container (NANOGRID_SANDBOX_UIDS). */
  sandboxUids: UidRange;
  /** Every function container's limits and system call profile. */
  limits: SandboxLimits;
  /** A result's JSON is kept within this many bytes (core/resultBudget.ts). */
  resultMaxBytes: number;
  /** Undelivered results kept before intake pauses. */
  outboxMaxResults: number;
  outboxMaxBytes: number;
  /** NANOGRID_MESSAGE_KEYS: with keys, only messages they sign are run. */
  messageKeys: MessageKey[];
  messageMaxLifetimeMs: number;
  /** Where inputs by reference may be read in the user-data bucket ({functionId} in it); null: anywhere. */
  inputPrefix: string | null;
  /** NANOGRID_ADMIN_TOKEN: what a state-changing HTTP request must carry; without one, only loopback may send them. */
  adminToken: string | undefined;
}

/** Everything the agent keeps on the host lives under this folder by default. */
export const STATE_ROOT = '/var/lib/nanogrid';

export { ConfigError } from './core/envRead.js';
export { parsePerRuntime } from './core/runtimeConfig.js';

const url = z.string().url();
const absolute = z.string().startsWith('/', 'must be an absolute path');
/** CloudWatch Logs' own rule for a group's name. */
const logGroup = z.string().regex(/^[.\-_/#A-Za-z0-9]{1,512}$/, 'a CloudWatch Logs group name: 1-512 of letters, digits and . - _ / #');

/** Beyond the longest allowed run: the runner's own bound, then removal and delivery. */
export const SHUTDOWN_SLACK_MS = 30_000;

function serviceEndpoints(env: Env): ServiceEndpoints {
  const generic = read(env, 'AWS_ENDPOINT_URL', url, undefined as string | undefined);
  const own = (service: string) => read(env, `AWS_ENDPOINT_URL_${service}`, url, undefined as string | undefined);
  return {
    sqs: own('SQS') ?? generic,
    s3: own('S3') ?? generic,
    cloudwatch: own('CLOUDWATCH') ?? read(env, 'NANOGRID_CLOUDWATCH_ENDPOINT', url, undefined as string | undefined),
    autoScaling: own('AUTO_SCALING') ?? generic,
    logs: own('CLOUDWATCH_LOGS'),
    generic,
  };
}

/** Default pause grace (bench/README.md, "Pause grace", says why). */
export const PAUSE_GRACE_MS = 500;

export function loadConfig(env: Env = process.env): Config {
  const buildCacheMb = read(env, 'NANOGRID_BUILD_CACHE_MB', int(0, 1_048_576), DEFAULT_BUILD_CACHE_MB);
  const runtimes = loadRuntimes(env, { buildCacheMb });
  let redisUrl = read(env, 'REDIS_URL', url, undefined as string | undefined);
  if (!redisUrl && env.REDIS_HOST) {
    const port = read(env, 'REDIS_PORT', int(1, 65535), 6379);
    redisUrl = `redis://${env.REDIS_HOST}:${port}`;
  }

  const defaultTimeoutMs = read(env, 'NANOGRID_DEFAULT_TIMEOUT_MS', int(1, 3_600_000), 10_000);
  const maxTimeoutMs = read(env, 'NANOGRID_MAX_TIMEOUT_MS', int(1, 3_600_000), 900_000);
  if (defaultTimeoutMs > maxTimeoutMs) {
    throw new ConfigError('NANOGRID_DEFAULT_TIMEOUT_MS', `${defaultTimeoutMs} exceeds NANOGRID_MAX_TIMEOUT_MS ${maxTimeoutMs}`);
  }
  const lang = read(env, 'NANOGRID_TIP_LANGUAGE', z.enum(['en', 'ko']), 'en');
  const agentId = read(env, 'NANOGRID_AGENT_ID', z.string().regex(/^[a-zA-Z0-9_.-]{1,63}$/, 'letters, digits, _ . - (max 63)'), safeHost());
  const workRoot = read(env, 'NANOGRID_WORK_ROOT', absolute, join(STATE_ROOT, 'work'));
  const outputLimitBytes = read(env, 'NANOGRID_OUTPUT_LIMIT_BYTES', int(1024, 64 * 1024 * 1024), 1024 * 1024);
  const keys = env.NANOGRID_MESSAGE_KEYS?.trim() ? parseMessageKeys(env.NANOGRID_MESSAGE_KEYS) : { keys: [] };
  if ('error' in keys) throw new ConfigError('NANOGRID_MESSAGE_KEYS', `${keys.error} (keyId:base64secret, comma-separated, 32 bytes or more each)`);
  const inputPrefix = read(env, 'NANOGRID_INPUT_PREFIX', z.string().max(512), DEFAULT_INPUT_PREFIX);
  if (inputPrefix !== 'any' && !inputPrefix.includes('{functionId}')) {
    throw new ConfigError('NANOGRID_INPUT_PREFIX', `${JSON.stringify(inputPrefix)} must contain {functionId} (each function reads only its own inputs), or be "any"`);
  }

  return {
    agentId,
    queueUrl: read(env, 'SQS_QUEUE_URL', url, undefined as string | undefined),
    region: read(env, 'AWS_REGION', z.string().min(1), undefined as string | undefined),
    endpoints: serviceEndpoints(env),
    imagePull: read(env, 'NANOGRID_IMAGE_PULL', z.enum(['never', 'missing', 'always']), 'never'),
    imagePullTimeoutMs: read(env, 'NANOGRID_IMAGE_PULL_TIMEOUT_S', int(1, 3600), 600) * 1000,
    termination: {
      watch: read(env, 'NANOGRID_TERMINATION_WATCH', z.enum(['imds', 'off']), 'off'),
      imdsEndpoint: read(env, 'AWS_EC2_METADATA_SERVICE_ENDPOINT', url, undefined as string | undefined),
      pollMs: read(env, 'NANOGRID_TERMINATION_POLL_MS', int(100, 60_000), 5000),
      hookName: read(env, 'NANOGRID_LIFECYCLE_HOOK', z.string().regex(/^[A-Za-z0-9_.-]{1,255}$/, 'a lifecycle hook name'), 'nanogrid-drain'),
      groupName: read(env, 'NANOGRID_ASG_NAME', z.string().min(1).max(255), undefined as string | undefined),
      heartbeatMs: read(env, 'NANOGRID_LIFECYCLE_HEARTBEAT_S', int(1, 7200), 60) * 1000,
      spotMarginMs: read(env, 'NANOGRID_SPOT_MARGIN_S', int(0, 110), 15) * 1000,
    },
    redisUrl,
    httpPort: read(env, 'HTTP_PORT', int(0, 65535), 8080),
    httpHost: read(env, 'HTTP_HOST', z.string().min(1), '0.0.0.0'),
    runtimes,
    idleTimeoutMs: read(env, 'NANOGRID_IDLE_TIMEOUT_MS', int(1000, 86_400_000), 300_000),
    resultTtlSeconds: read(env, 'NANOGRID_RESULT_TTL_SECONDS', int(1, 30 * 86_400), 86_400),
    network: read(env, 'NANOGRID_NETWORK', z.string().min(1), 'none'),
    workRoot,
    dockerSocket: read(env, 'DOCKER_SOCKET', absolute, '/var/run/docker.sock'),
    local: { requested: env.NANOGRID_LOCAL === '1', port: read(env, 'NANOGRID_LOCAL_PORT', int(0, 65535), 4566), stackFile: localStackFile(env) },
    metadataDisabled: env.AWS_EC2_METADATA_DISABLED?.trim().toLowerCase() === 'true',
    codeBuckets: (env.S3_CODE_BUCKET ?? '')
      .split(',')
      .map((b) => b.trim())
      .filter(Boolean),
    userDataBucket: read(env, 'S3_USER_DATA_BUCKET', z.string().min(3).max(63), undefined as string | undefined),
    inputMaxBytes: read(env, 'NANOGRID_INPUT_MAX_BYTES', int(2, 256 * 1024), 240 * 1024),
    inputS3MaxBytes: read(env, 'NANOGRID_INPUT_S3_MAX_BYTES', int(2, 2 ** 31), 16 * 1024 * 1024),
    outputsMaxFiles: read(env, 'NANOGRID_OUTPUTS_MAX_FILES', int(0, 100_000), 100),
    outputsMaxBytes: read(env, 'NANOGRID_OUTPUTS_MAX_BYTES', int(0, 2 ** 40), 100 * 1024 * 1024),
    archive: archiveConfig(env),
    aiEndpoint: read(env, 'AI_ENDPOINT', z.string().url(), undefined as string | undefined),
    memoryBudgetMb: read(
      env,
      'NANOGRID_MEMORY_BUDGET_MB',
      int(16, 16_777_216),
      Math.max(16, Math.floor(totalmem() / 1048576) - read(env, 'NANOGRID_MEMORY_RESERVE_MB', int(0, 16_777_216), 1024)),
    ),
    outputSpoolBytes: read(env, 'NANOGRID_OUTPUT_SPOOL_BYTES', int(0, 2 ** 31), 64 * 1024 * 1024),
    // Beside the work folder: under /var/lib/nanogrid by default, under a work root given instead.
    outboxDir: read(env, 'NANOGRID_OUTBOX_DIR', absolute, join(env.NANOGRID_WORK_ROOT?.trim() ? workRoot : STATE_ROOT, 'outbox', agentId)),
    // Room for both streams at the output limit as plain text, and the rest of a result.
    resultMaxBytes: read(env, 'NANOGRID_RESULT_MAX_BYTES', int(MIN_RESULT_BYTES, 512 * 1024 * 1024), Math.max(4 * 1024 * 1024, 2 * outputLimitBytes + 256 * 1024)),
    outboxMaxResults: read(env, 'NANOGRID_OUTBOX_MAX_RESULTS', int(1, 10_000_000), 10_000),
    outboxMaxBytes: read(env, 'NANOGRID_OUTBOX_MAX_MB', int(1, 1_048_576), 256) * 1024 * 1024,
    messageKeys: keys.keys,
    messageMaxLifetimeMs: read(env, 'NANOGRID_MESSAGE_MAX_LIFETIME_S', int(1, 14 * 86_400), 86_400) * 1000,
    inputPrefix: inputPrefix === 'any' ? null : inputPrefix,
    adminToken: read(env, 'NANOGRID_ADMIN_TOKEN', z.string().min(16, 'at least 16 characters').max(512), undefined as string | undefined),
    defaultTimeoutMs,
    maxTimeoutMs,
    defaultMemoryMb: read(env, 'NANOGRID_DEFAULT_MEMORY_MB', int(16, 65_536), 128),
    outputLimitBytes,
    codeMaxBytes: read(env, 'NANOGRID_CODE_MAX_BYTES', int(1024, 2 ** 31), 64 * 1024 * 1024),
    zipMaxEntries: read(env, 'NANOGRID_ZIP_MAX_ENTRIES', int(1, 1_000_000), 10_000),
    zipMaxBytes: read(env, 'NANOGRID_ZIP_MAX_BYTES', int(1024, 2 ** 40), 256 * 1024 * 1024),
    visibilityTimeoutS: read(env, 'NANOGRID_VISIBILITY_TIMEOUT_S', int(10, 43_200), 60),
    receiveWaitS: read(env, 'NANOGRID_RECEIVE_WAIT_S', int(0, 20), 20),
    prefetch: read(env, 'NANOGRID_PREFETCH', int(0, 10), 10),
    prefetchMaxRunMs: read(env, 'NANOGRID_PREFETCH_MAX_RUN_MS', int(0, 3_600_000), 1000),
    maxReceiveCount: read(env, 'NANOGRID_MAX_RECEIVE_COUNT', int(1, 1000), undefined as number | undefined),
    // Unset: each running invocation may finish within its own timeout (the longest allowed bounds it).
    shutdownGraceMs: read(env, 'NANOGRID_SHUTDOWN_GRACE_MS', int(0, 3_600_000), maxTimeoutMs + SHUTDOWN_SLACK_MS),
    dockerTimeoutMs: read(env, 'NANOGRID_DOCKER_TIMEOUT_MS', int(100, 600_000), 30_000),
    s3TimeoutMs: read(env, 'NANOGRID_S3_TIMEOUT_MS', int(100, 600_000), 30_000),
    unzipThreads: read(env, 'NANOGRID_THREADS', int(1, 64), 2),
    logLevel: read(env, 'LOG_LEVEL', z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']), 'info'),
    tipLanguage: lang,
    cloudwatchEnabled: read(env, 'NANOGRID_CLOUDWATCH', z.enum(['on', 'off']), 'on') === 'on',
    cloudwatchFlushMs: read(env, 'NANOGRID_CLOUDWATCH_FLUSH_MS', int(100, 3_600_000), 60_000),
    cloudwatchNamespace: read(env, 'NANOGRID_CLOUDWATCH_NAMESPACE', z.string().min(1), 'NanoGrid/FunctionRunner'),
    cloudwatchMaxSeries: read(env, 'NANOGRID_CLOUDWATCH_MAX_SERIES', int(1, 100_000), 1000),
    logShipping: {
      group: read(env, 'NANOGRID_LOG_GROUP', logGroup, undefined as string | undefined),
      functionGroup: read(env, 'NANOGRID_FUNCTION_LOG_GROUP', logGroup, undefined as string | undefined),
      stream: read(env, 'NANOGRID_LOG_STREAM', z.string().regex(/^[^:*]{1,512}$/, '1-512 characters, no : or *'), agentId),
      flushMs: read(env, 'NANOGRID_LOG_FLUSH_MS', int(100, 600_000), 5000),
    },
    memoryHistorySize: read(env, 'NANOGRID_MEMORY_HISTORY', int(1, 10_000), 100),
    codeStalenessMs: read(env, 'NANOGRID_CODE_STALENESS_MS', int(0, 3_600_000), 2000),
    codeCacheBytes: read(env, 'NANOGRID_CODE_CACHE_MB', int(1, 1_048_576), 1024) * 1024 * 1024,
    codeCacheInodes: read(env, 'NANOGRID_CODE_CACHE_INODES', int(100, 100_000_000), 200_000),
    freezer: read(env, 'NANOGRID_FREEZER', z.enum(['cgroup', 'docker']), 'cgroup'),
    pauseGraceMs: read(env, 'NANOGRID_PAUSE_GRACE_MS', int(0, 600_000), PAUSE_GRACE_MS),
    diskLimitMb: read(env, 'NANOGRID_DISK_MB', int(16, 1_048_576), 512),
    diskReserve: read(env, 'NANOGRID_DISK_RESERVE', z.enum(['on', 'off']), 'on') === 'on',
    scratchSpare: read(env, 'NANOGRID_SCRATCH_SPARE', int(0, 64), 2),
    buildCacheMb,
    cpu: {
      mbPerVcpu: read(env, 'NANOGRID_MB_PER_VCPU', int(0, 1_048_576), DEFAULT_CPU_POLICY.mbPerVcpu),
      floorVcpu: read(env, 'NANOGRID_CPU_FLOOR', z.coerce.number().min(0.01).max(1024), DEFAULT_CPU_POLICY.floorVcpu),
    },
    sandboxUids: uidRange(env),
    limits: {
      pids: read(env, 'NANOGRID_PIDS_LIMIT', int(16, 1_000_000), DEFAULT_LIMITS.pids),
      nofile: read(env, 'NANOGRID_NOFILE_LIMIT', int(64, 1_048_576), DEFAULT_LIMITS.nofile),
      sigpending: read(env, 'NANOGRID_SIGPENDING_LIMIT', int(16, 1_000_000), DEFAULT_LIMITS.sigpending),
      msgqueueBytes: read(env, 'NANOGRID_MSGQUEUE_BYTES', int(0, 2 ** 31), DEFAULT_LIMITS.msgqueueBytes),
      seccomp: read(env, 'NANOGRID_SECCOMP', z.enum(['nanogrid', 'docker-default']), DEFAULT_LIMITS.seccomp),
    },
    runnerDir: read(env, 'NANOGRID_RUNNER_DIR', absolute, defaultRunnerDir()),
  };
}

function uidRange(env: Env): UidRange {
  const raw = env.NANOGRID_SANDBOX_UIDS;
  if (raw === undefined || raw.trim() === '') return DEFAULT_UID_RANGE;
  const range = parseUidRange(raw);
  if (!range) throw new ConfigError('NANOGRID_SANDBOX_UIDS', `${JSON.stringify(raw)}: FIRST-LAST, at least 16 uids, all of them from 65536 to 2147483646`);
  return range;
}

function archiveConfig(env: Env): Config['archive'] {
  const bucket = read(env, 'GCP_BUCKET_NAME', z.string().min(3).max(222), undefined as string | undefined);
  if (!bucket) return undefined;
  const need = (name: string) => {
    const v = env[name]?.trim();
    if (!v) throw new ConfigError(name, 'required with GCP_BUCKET_NAME (an HMAC key of the archive bucket)');
    return v;
  };
  return {
    bucket,
    endpoint: read(env, 'NANOGRID_ARCHIVE_ENDPOINT', z.string().url(), 'https://storage.googleapis.com'),
    accessKeyId: need('NANOGRID_ARCHIVE_ACCESS_KEY_ID'),
    secretAccessKey: need('NANOGRID_ARCHIVE_SECRET_ACCESS_KEY'),
  };
}

function safeHost(): string {
  const h = hostname().replace(/[^a-zA-Z0-9_.-]/g, '-').slice(0, 63);
  return h || 'nanogrid';
}

/** NANOGRID_LOCAL_STACK_FILE: where a running embedded stack's address is kept. */
export function localStackFile(env: Env): string {
  return read(env, 'NANOGRID_LOCAL_STACK_FILE', absolute, join(STATE_ROOT, 'local-stack.json'));
}
