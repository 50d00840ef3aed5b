import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import Docker from 'dockerode';
import type { Config } from './config.js';
import type { Runtime } from './core/runtimes.js';
import { join } from 'node:path';
import { agentRoot, codeCacheRoot } from './core/sandbox.js';
import { BuildCache, buildEnv } from './build/buildCache.js';
import { ScratchStock } from './container/scratchStock.js';
import { sleep } from './core/timeout.js';
import { EventBus } from './core/events.js';
import type { IntakeGate } from './core/ports.js';
import type { Logger } from './core/log.js';
import { ThreadPool } from './core/threads.js';
import { Imds } from './fleet/imds.js';
import { LifecycleAction } from './fleet/lifecycleAction.js';
import { Drain } from './fleet/drain.js';
import { TerminationWatch } from './fleet/terminationWatch.js';
import { MemoryBudget } from './intake/memoryBudget.js';
import { MessageLeases } from './intake/messageLeases.js';
import { Supervisor } from './intake/supervisor.js';
import { Metrics } from './observe/metrics.js';
import { recordMetrics } from './observe/recordMetrics.js';
import { egressNames } from './container/aiEgress.js';
import { SandboxUids } from './container/sandboxUser.js';
import { MemoryMeter } from './container/memoryMeter.js';
import { EngineWatch } from './pool/engineWatch.js';
import { RUNNER_BOUND_MS } from './pool/lease.js';
import { RuntimePool } from './pool/runtimePool.js';
import { CodeCache } from './code/codeCache.js';
import { CodeFetcher } from './code/codeFetch.js';
import { InputFetcher } from './run/inputFetch.js';
import { Invoker } from './run/invoker.js';
import { OutputStore } from './sinks/outputStore.js';
import { archiveClient, CodeArchive } from './sinks/codeArchive.js';
import { CloudWatchSink } from './sinks/cloudwatchSink.js';
import type { LogShipper } from './sinks/logShipper.js';
import { functionOutputShipper } from './observe/logShipping.js';
import { MemoryHistory } from './sinks/memoryHistory.js';
import { RedisSink } from './sinks/redisSink.js';

export interface PartsOptions {
  config: Config;
  log: Logger;
  runId: string;
  metrics: Metrics;
  /** Static credentials for endpoints that do not check them (the embedded stack). */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** CloudWatch endpoint override (else AWS_ENDPOINT_URL_CLOUDWATCH); without one, CloudWatch is off when AWS_ENDPOINT_URL points elsewhere. */
  cloudwatchEndpoint?: string | undefined;
  /** Overrides DOCKER_SOCKET (tests put a proxy in between). */
  dockerSocket?: string | undefined;
  /** Force the thread-sampling meter (for tests of the fallback). */
  forceMemorySampling?: boolean | undefined;
  /** How often the engine is pinged while it is up (ms). */
  engineCheckMs?: number | undefined;
}

/** Every part of the agent, built and connected; none of them started. */
export interface Parts {
  log: Logger;
  docker: Docker;
  engine: EngineWatch;
  threads: ThreadPool;
  samplerThreads: ThreadPool;
  pools: Map<Runtime, RuntimePool>;
  scratch: ScratchStock;
  build: BuildCache | undefined;
  redis: RedisSink;
  cloudwatch: CloudWatchSink | undefined;
  /** Each run's stdout and stderr to CloudWatch Logs (NANOGRID_FUNCTION_LOG_GROUP). */
  functionLogs: LogShipper | undefined;
  archive: CodeArchive | undefined;
  memory: MemoryBudget;
  supervisor: Supervisor;
  imds: Imds | undefined;
  terminationWatch: TerminationWatch | undefined;
  drains: Drain;
}

/** Intake waits while the outbox is full (results being written count too): results keep their room on disk and in memory. */
function outboxGate(sink: RedisSink): IntakeGate {
  return {
    isOpen: () => !sink.full,
    whenOpen: async () => {
      while (sink.full) await sleep(100);
    },
    why: 'the outbox of undelivered results is full (NANOGRID_OUTBOX_MAX_RESULTS, NANOGRID_OUTBOX_MAX_MB)',
  };
}

/**
 * The wiring: builds every part from the configuration and connects them, each hand-off
 * through the named port the next layer implements (core/ports.ts, run/ports.ts) and
 * every report through one event bus (core/events.ts, observe/recordMetrics.ts).
 */
export function buildParts(opts: PartsOptions): Parts {
  const { config: c, runId, metrics } = opts;
  const pools = new Map<Runtime, RuntimePool>();
  if (!c.queueUrl) throw new Error('SQS_QUEUE_URL is required (main.ts starts the embedded stack when it is unset)');
  if (!c.redisUrl) throw new Error('REDIS_URL is required (main.ts starts the embedded stack when it is unset)');
  const log = opts.log.child({ agentId: c.agentId });
  const docker = new Docker({ socketPath: opts.dockerSocket ?? c.dockerSocket });
  const bus = new EventBus();
  const engine = new EngineWatch({ ping: () => docker.ping(), log, checkEveryMs: opts.engineCheckMs ?? 2000 });

  const aws = {
    region: c.region,
    credentials: opts.credentials,
    // Long polling holds a request for 20 s: allow for it, bound everything else.
    requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: 30_000 }),
    maxAttempts: 3,
  };
  // Emulators answer on one host: bucket names go in the path, not the host name.
  const s3 = new S3Client({ ...aws, endpoint: c.endpoints.s3, forcePathStyle: c.endpoints.s3 !== undefined, requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: c.s3TimeoutMs }) });
  const threads = new ThreadPool('unzip', c.unzipThreads);
  // One sampler per run at most: sampling never waits for a thread, nor takes unzip's.
  const samplerThreads = new ThreadPool('memorySampler', Math.max(1, c.runtimes.containers));
  const fetcher = new CodeFetcher({ s3, threads: threads, s3TimeoutMs: c.s3TimeoutMs, codeMaxBytes: c.codeMaxBytes, zipMaxEntries: c.zipMaxEntries, zipMaxBytes: c.zipMaxBytes });
  const code = new CodeCache({
    fetcher,
    root: codeCacheRoot(c.workRoot, c.agentId),
    stalenessMs: c.codeStalenessMs,
    maxBytes: c.codeCacheBytes,
    maxInodes: c.codeCacheInodes,
    log,
    events: bus,
  });
  const meter = new MemoryMeter(samplerThreads, { forceSampling: opts.forceMemorySampling });

  const redis = new RedisSink({
    url: c.redisUrl,
    ttlSeconds: c.resultTtlSeconds,
    workerId: c.agentId,
    log,
    outboxDir: c.outboxDir,
    resultMaxBytes: c.resultMaxBytes,
    outboxLimits: { entries: c.outboxMaxResults, bytes: c.outboxMaxBytes },
    events: bus,
  });
  const history = new MemoryHistory(redis.redis, {
    health: redis.health,
    size: c.memoryHistorySize,
    ttlSeconds: 30 * 86_400,
    log,
    events: bus,
  });
  // The claim reads the function's peaks and the result's write records the new one: one round trip each.
  redis.useHistory(history);
  const cwEndpoint = opts.cloudwatchEndpoint ?? c.endpoints.cloudwatch;
  // A generic endpoint override (fauxqs, ElasticMQ) rarely speaks CloudWatch: only send
  // there when CloudWatch has an endpoint of its own, or when talking to real AWS.
  let cloudwatch: CloudWatchSink | undefined;
  if (c.cloudwatchEnabled && (cwEndpoint || !c.endpoints.generic)) {
    cloudwatch = new CloudWatchSink(new CloudWatchClient({ region: c.region, endpoint: cwEndpoint, credentials: opts.credentials, maxAttempts: 2 }), {
      namespace: c.cloudwatchNamespace,
      flushMs: c.cloudwatchFlushMs,
      timeoutMs: 10_000,
      log,
      events: bus,
      maxSeries: c.cloudwatchMaxSeries,
      workerId: c.agentId,
    });
  }

  // With an AI node, containers join the agent's own network, whose egress rules let
  // them reach that node only; without one, they have no network at all.
  const network = c.aiEndpoint ? egressNames(c.agentId).network : c.network;
  // One uid set for every pool: no two containers of this agent share a uid.
  const sandbox = { uids: new SandboxUids(c.sandboxUids), limits: c.limits };
  // One stock of scratch file systems for every pool: they are all the same size.
  const scratch = new ScratchStock({
    root: agentRoot(c.workRoot, c.agentId),
    limitBytes: c.diskLimitMb * 1024 * 1024,
    reserve: c.diskReserve,
    timeoutMs: c.dockerTimeoutMs,
    spare: c.scratchSpare,
    // Under eviction churn up to the capacity's worth come back between two bursts of cold
    // starts. No spares (0) keeps none either: every container makes its own.
    keep: c.scratchSpare > 0 ? c.runtimes.containers : 0,
    log,
  });
  for (const config of c.runtimes.list) {
    const runtime = config.name;
    const pool = new RuntimePool({
      runtime,
      config,
      docker: docker,
      agentId: c.agentId,
      runId: runId,
      workRoot: c.workRoot,
      network,
      defaultMemoryMb: c.defaultMemoryMb,
      idleTimeoutMs: c.idleTimeoutMs,
      apiTimeoutMs: c.dockerTimeoutMs,
      log,
      // Streams are kept whole only where they can be stored.
      run: { meter, outputLimitBytes: c.outputLimitBytes, spoolLimitBytes: c.userDataBucket ? c.outputSpoolBytes : 0 },
      runnerDir: c.runnerDir,
      freezer: c.freezer,
      pauseGraceMs: c.pauseGraceMs,
      scratch,
      cpu: c.cpu,
      sandbox,
      engine,
    });
    pools.set(runtime, pool);
  }

  const archive = c.archive
    ? new CodeArchive({
        source: s3,
        target: archiveClient(c.archive),
        bucket: c.archive.bucket,
        log,
        timeoutMs: c.s3TimeoutMs,
        events: bus,
      })
    : undefined;
  // C++ built once per code version: the compiler front's outputs, per function and image.
  const buildRuntimes = new Set(c.runtimes.list.filter((r) => r.buildCache).map((r) => r.name));
  const entryMaxBytes = Math.min(64 << 20, Math.floor((c.buildCacheMb * 1024 * 1024) / 4));
  const build = buildRuntimes.size > 0 ? new BuildCache({ root: join(agentRoot(c.workRoot, c.agentId), 'build'), maxBytes: c.buildCacheMb * 1024 * 1024, entryMaxBytes, log }) : undefined;
  const invoker = new Invoker({
    ...(build ? { build: { cache: build, runtimes: buildRuntimes, env: buildEnv(entryMaxBytes) } } : {}),
    archive: archive,
    pools: pools,
    commands: new Map(c.runtimes.list.map((r) => [r.name, r.command])),
    code,
    functionEnv: c.aiEndpoint ? [`AI_ENDPOINT=${c.aiEndpoint}`] : [],
    inputs: new InputFetcher({ s3, s3TimeoutMs: c.s3TimeoutMs, maxBytes: c.inputS3MaxBytes }),
    outputs: c.userDataBucket
      ? new OutputStore({
          s3,
          bucket: c.userDataBucket,
          maxFiles: c.outputsMaxFiles,
          maxBytes: c.outputsMaxBytes,
          timeoutMs: c.s3TimeoutMs,
          events: bus,
        })
      : undefined,
    history,
    tipLanguage: c.tipLanguage,
    workerId: c.agentId,
    events: bus,
  });

  const leases = new MessageLeases({
    sqs: new SQSClient({ ...aws, endpoint: c.endpoints.sqs }),
    queueUrl: c.queueUrl,
    visibilityTimeoutS: c.visibilityTimeoutS,
    receiveWaitS: c.receiveWaitS,
    timeoutMs: 10_000,
    log,
    events: bus,
  });
  const memory = new MemoryBudget(c.memoryBudgetMb);
  const supervisor = new Supervisor({
    leases,
    memory: memory,
    gate: { isOpen: () => engine.isUp, whenOpen: () => engine.whenUp(), why: 'the engine is unreachable' },
    pauses: [outboxGate(redis)],
    capacity: () => [...pools.values()].reduce((n, p) => n + p.capacity, 0),
    limits: {
      defaultTimeoutMs: c.defaultTimeoutMs,
      maxTimeoutMs: c.maxTimeoutMs,
      defaultMemoryMb: c.defaultMemoryMb,
      maxInputBytes: c.inputMaxBytes,
      codeBuckets: c.codeBuckets,
      userDataBucket: c.userDataBucket,
      memoryBudgetMb: c.memoryBudgetMb,
      inputPrefix: c.inputPrefix,
      runtimes: c.runtimes,
    },
    ...(c.messageKeys.length > 0 ? { auth: { keys: c.messageKeys, maxLifetimeMs: c.messageMaxLifetimeMs } } : {}),
    visibilityTimeoutS: c.visibilityTimeoutS,
    maxReceiveCount: c.maxReceiveCount,
    // Not while results are not getting through: what waited ahead would only fill the outbox.
    prefetch: { messages: c.prefetch, maxRunMs: c.prefetchMaxRunMs, allowed: () => redis.pending === 0 && !redis.health.isDown },
    log,
    runner: invoker,
    results: redis,
    workerId: c.agentId,
  });
  let imds: Imds | undefined;
  let terminationWatch: TerminationWatch | undefined;
  let lifecycle: LifecycleAction | undefined;
  if (c.termination.watch === 'imds') {
    imds = new Imds({ endpoint: c.termination.imdsEndpoint });
    terminationWatch = new TerminationWatch({ imds, pollMs: c.termination.pollMs, log });
    lifecycle = new LifecycleAction({
      client: new AutoScalingClient({ region: c.region, endpoint: c.endpoints.autoScaling, credentials: opts.credentials, maxAttempts: 3, requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: 10_000 }) }),
      imds,
      hookName: c.termination.hookName,
      groupName: c.termination.groupName,
      log,
    });
  }
  recordMetrics(metrics, { bus, supervisor, pools: pools.values(), engine, cloudwatch });
  const functionLogs = functionOutputShipper(c, opts.credentials, log, bus);
  const drains = new Drain({
    host: {
      stopIntake: (waitMs) => supervisor.stop(waitMs),
      resumeIntake: () => supervisor.resume(),
      giveBackRunning: () => supervisor.abandonRunning(),
      stopPools: async () => void (await Promise.all([...pools.values()].map((p) => p.stop()))),
      running: () => supervisor.status().running,
      released: () => supervisor.status().totals.released,
      lifecycle,
    },
    policy: { spotMarginMs: c.termination.spotMarginMs, shutdownGraceMs: c.shutdownGraceMs },
    // Each run ends by its own timeout at the latest; the bound only guards against a stuck one.
    waitMs: c.maxTimeoutMs + RUNNER_BOUND_MS + 10_000,
    heartbeatMs: c.termination.heartbeatMs,
    log,
  });
  return { log, docker, engine, threads, samplerThreads, pools, scratch, build, redis, cloudwatch, functionLogs, archive, memory, supervisor, imds, terminationWatch, drains };
}
