import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import Docker from 'dockerode';
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { advise, DEFAULT_POLICY, type Advice } from './autoTuner.js';
import { removeAgentContainers } from './cleanup.js';
import { CodeFetcher } from './codeFetch.js';
import { RUNTIMES, type Config, type Runtime } from './config.js';
import { execute, type ExecuteDeps, type ExecuteHooks } from './execute.js';
import { startHttp } from './http.js';
import type { Invocation } from './invocation.js';
import type { Logger } from './log.js';
import { MemoryMeter } from './memoryMeter.js';
import { Metrics } from './metrics.js';
import type { Result } from './result.js';
import { RuntimePool, type PoolStatus } from './runtimePool.js';
import { CloudWatchSink } from './sinks/cloudwatchSink.js';
import { MemoryHistory } from './sinks/memoryHistory.js';
import { RedisSink, resultKey } from './sinks/redisSink.js';
import { Supervisor, type SupervisorStatus } from './supervisor.js';
import { ThreadPool } from './threads.js';
import { withTimeout } from './timeout.js';

export interface AgentOptions {
  config: Config;
  log: Logger;
  /** Static credentials for endpoints that do not check them (the embedded stack). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** CloudWatch endpoint override; without one, CloudWatch is off when AWS_ENDPOINT_URL points elsewhere. */
  cloudwatchEndpoint?: string;
  dockerSocket?: string;
  /** Force the thread-sampling meter (for tests of the fallback). */
  forceMemorySampling?: boolean;
}

export interface AgentStatus {
  agentId: string;
  runId: string;
  uptimeSeconds: number;
  supervisor: SupervisorStatus;
  pools: PoolStatus[];
  results: { outbox: number };
  threads: ReturnType<ThreadPool['stats']>;
}

/** The worker agent: owns every part, starts them in order and stops them in reverse. */
export class Agent {
  readonly runId = randomUUID();
  readonly metrics = new Metrics();
  readonly docker: Docker;
  readonly pools = new Map<Runtime, RuntimePool>();
  readonly redis: RedisSink;
  readonly supervisor: Supervisor;
  private readonly threads: ThreadPool;
  private readonly history: MemoryHistory;
  private readonly cloudwatch: CloudWatchSink | undefined;
  private readonly execDeps: Omit<ExecuteDeps, 'command'>;
  private readonly startedAt = Date.now();
  private http: Server | undefined;
  private stopped: Promise<void> | undefined;
  private dockerHealthy = true;
  readonly log: Logger;

  constructor(private readonly opts: AgentOptions) {
    const c = opts.config;
    if (!c.queueUrl) throw new Error('SQS_QUEUE_URL is required (main.ts starts the embedded stack when it is unset)');
    if (!c.redisUrl) throw new Error('REDIS_URL is required (main.ts starts the embedded stack when it is unset)');
    this.log = opts.log.child({ agentId: c.agentId });
    this.docker = new Docker({ socketPath: opts.dockerSocket ?? process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });

    const aws = {
      region: c.region,
      endpoint: c.endpoint,
      credentials: opts.credentials,
      // Long polling holds a request for 20 s: allow for it, bound everything else.
      requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: 30_000 }),
      maxAttempts: 3,
    };
    const sqs = new SQSClient(aws);
    const s3 = new S3Client({ ...aws, forcePathStyle: c.endpoint !== undefined, requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: c.s3TimeoutMs }) });
    this.threads = new ThreadPool(c.unzipThreads);
    const meter = new MemoryMeter(this.threads, { forceSampling: opts.forceMemorySampling });
    const fetcher = new CodeFetcher({
      s3,
      threads: this.threads,
      s3TimeoutMs: c.s3TimeoutMs,
      codeMaxBytes: c.codeMaxBytes,
      zipMaxEntries: c.zipMaxEntries,
      zipMaxBytes: c.zipMaxBytes,
    });
    this.execDeps = {
      docker: this.docker,
      fetcher,
      meter,
      stagingRoot: join(c.workRoot, c.agentId, 'staging'),
      outputLimitBytes: c.outputLimitBytes,
      apiTimeoutMs: c.dockerTimeoutMs,
    };

    const m = this.metrics;
    this.redis = new RedisSink({
      url: c.redisUrl,
      ttlSeconds: c.resultTtlSeconds,
      workerId: c.agentId,
      log: this.log,
      onFailure: (op) => m.sinkFailures.inc({ sink: 'redis', op }),
    });
    this.history = new MemoryHistory(this.redis.redis, {
      size: c.memoryHistorySize,
      ttlSeconds: 30 * 86_400,
      log: this.log,
      onFailure: () => m.sinkFailures.inc({ sink: 'redis', op: 'memory_history' }),
    });
    const cwEndpoint = opts.cloudwatchEndpoint ?? process.env.NANOGRID_CLOUDWATCH_ENDPOINT;
    // A generic endpoint override (fauxqs, ElasticMQ) rarely speaks CloudWatch: only send
    // there when CloudWatch has an endpoint of its own, or when talking to real AWS.
    if (c.cloudwatchEnabled && (cwEndpoint || !c.endpoint)) {
      this.cloudwatch = new CloudWatchSink(
        new CloudWatchClient({ region: c.region, endpoint: cwEndpoint, credentials: opts.credentials, maxAttempts: 2 }),
        {
          namespace: c.cloudwatchNamespace,
          flushMs: c.cloudwatchFlushMs,
          timeoutMs: 10_000,
          log: this.log,
          onFailure: () => m.sinkFailures.inc({ sink: 'cloudwatch', op: 'put_metric_data' }),
        },
      );
    }

    for (const runtime of RUNTIMES) {
      this.pools.set(
        runtime,
        new RuntimePool({
          runtime,
          config: c.runtimes[runtime],
          docker: this.docker,
          agentId: c.agentId,
          runId: this.runId,
          workRoot: c.workRoot,
          network: c.network,
          defaultMemoryMb: c.defaultMemoryMb,
          idleTimeoutMs: c.idleTimeoutMs,
          apiTimeoutMs: c.dockerTimeoutMs,
          log: this.log,
          onEvent: (e) => {
            if (e.type === 'served') m.startLatency.observe({ runtime: e.runtime, start_kind: e.startKind }, e.acquireMs / 1000);
          },
        }),
      );
    }

    this.supervisor = new Supervisor({
      sqs,
      queueUrl: c.queueUrl,
      pools: this.pools,
      limits: { defaultTimeoutMs: c.defaultTimeoutMs, maxTimeoutMs: c.maxTimeoutMs, defaultMemoryMb: c.defaultMemoryMb },
      visibilityTimeoutS: c.visibilityTimeoutS,
      receiveWaitS: c.receiveWaitS,
      maxReceiveCount: c.maxReceiveCount,
      sqsTimeoutMs: 10_000,
      log: this.log,
      workerId: c.agentId,
      process: (inv, log, hooks) => this.process(inv, log, hooks),
      answer: async (result, log) => {
        await this.redis.deliver(result, log);
      },
      findResult: async (requestId) => {
        const raw = await this.redis.redis.get(resultKey(requestId));
        return raw ? (JSON.parse(raw) as Result) : undefined;
      },
      markState: (requestId, state, log, fields) => this.redis.setState(requestId, state, fields, log),
      onDisposition: (disposition, reason) => m.dispositions.inc({ disposition, reason }),
      onReceived: (n) => m.received.inc(n),
      onSqsError: (op) => m.sqsErrors.inc({ op }),
    });
  }

  get config(): Config {
    return this.opts.config;
  }

  /** The HTTP port actually bound (HTTP_PORT=0 picks one). */
  get httpPort(): number | undefined {
    const a = this.http?.address();
    return typeof a === 'object' && a ? a.port : undefined;
  }

  async start(): Promise<void> {
    const c = this.opts.config;
    try {
      await withTimeout('docker ping', 5000, this.docker.ping());
    } catch (err) {
      throw new Error(`Docker engine not reachable (${String(err)}): start dockerd, or run "npm run setup"`);
    }
    for (const runtime of RUNTIMES) {
      const image = c.runtimes[runtime].image;
      try {
        await withTimeout('docker image inspect', 10_000, this.docker.getImage(image).inspect());
      } catch {
        throw new Error(`image ${image} for ${runtime} is missing: build it with "npm run setup" or set NANOGRID_IMAGE_${runtime.toUpperCase()}`);
      }
    }
    // A previous run of this agent that was killed leaves containers behind: clear them.
    await removeAgentContainers(this.docker, c.agentId, { timeoutMs: c.dockerTimeoutMs, log: this.log, workRoot: c.workRoot });
    await mkdir(this.execDeps.stagingRoot, { recursive: true });
    try {
      await this.redis.connect();
    } catch (err) {
      this.log.error({ tag: 'REDIS', err: String(err) }, 'Redis unreachable at start; results wait in the outbox until it answers');
    }
    await Promise.all([...this.pools.values()].map((p) => p.start()));
    this.cloudwatch?.start();
    await this.supervisor.start();
    this.http = await startHttp({
      host: c.httpHost,
      port: c.httpPort,
      health: () => this.health(),
      status: () => this.status(),
      metrics: async () => {
        this.refreshGauges();
        return { contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() };
      },
    });
    this.log.info(
      { tag: 'AGENT', runId: this.runId, httpPort: this.httpPort, queueUrl: c.queueUrl, capacity: this.supervisor.capacity, cloudwatch: Boolean(this.cloudwatch) },
      'agent started',
    );
  }

  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  /** Nothing held and no container being created, wiped or removed: a quiet moment. */
  quiescent(): boolean {
    const s = this.status();
    return s.supervisor.inflight === 0 && s.pools.every((p) => p.containers.creating + p.containers.wiping + p.containers.retiring === 0);
  }

  status(): AgentStatus {
    return {
      agentId: this.opts.config.agentId,
      runId: this.runId,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      supervisor: this.supervisor.status(),
      pools: [...this.pools.values()].map((p) => p.status()),
      results: { outbox: this.redis.pending },
      threads: this.threads.stats(),
    };
  }

  async health(): Promise<{ ok: boolean; parts: Record<string, { ok: boolean; detail?: string }> }> {
    let docker: { ok: boolean; detail?: string };
    try {
      await withTimeout('docker ping', 2000, this.docker.ping());
      docker = { ok: true };
    } catch (err) {
      docker = { ok: false, detail: String(err) };
    }
    this.dockerHealthy = docker.ok;
    const queue = this.supervisor.queueReachable ? { ok: true } : { ok: false, detail: this.supervisor.status().lastReceiveError ?? 'unknown' };
    const redisOk = await this.redis.ping();
    // Redis is reported but does not fail health: results wait in the outbox meanwhile.
    return { ok: docker.ok && queue.ok, parts: { docker, queue, redis: redisOk ? { ok: true } : { ok: false, detail: 'not answering; results kept in outbox' } } };
  }

  private async process(inv: Invocation, log: Logger, hooks: ExecuteHooks): Promise<Result> {
    const pool = this.pools.get(inv.runtime)!;
    const report = await execute(inv, pool, { ...this.execDeps, command: this.opts.config.runtimes[inv.runtime].command }, log, hooks);
    const peak = report.memory.peakBytes;
    let advice: Advice | undefined;
    try {
      const peaks = peak !== null ? await this.history.record(inv.functionId, peak, log) : [];
      advice = advise(
        { peaksBytes: peaks, allocatedMb: inv.memoryMb, oomKilled: report.status === 'OOM' },
        { ...DEFAULT_POLICY, language: this.opts.config.tipLanguage },
      );
      log.info({ tag: 'AUTO-TUNER', peakMemoryBytes: peak, method: report.memory.method, band: advice.band, recommendedMemoryMb: advice.recommendedMemoryMb, samples: advice.samples }, advice.tip);
    } catch (err) {
      log.warn({ tag: 'AUTO-TUNER', err: String(err) }, 'no advice for this run');
    }
    const totalMs = Date.now() - inv.receivedAt;
    const result: Result = {
      requestId: inv.requestId,
      functionId: inv.functionId,
      runtime: inv.runtime,
      status: report.status,
      success: report.status === 'SUCCESS',
      reason: report.reason,
      exitCode: report.exitCode,
      stdout: report.stdout,
      stderr: report.stderr,
      stdoutTruncated: report.stdoutTruncated,
      stderrTruncated: report.stderrTruncated,
      durationMillis: report.durationMillis,
      startKind: report.startKind,
      peakMemoryBytes: peak,
      peakMemoryMethod: report.memory.method,
      recommendedMemoryMb: advice?.recommendedMemoryMb ?? null,
      optimizationTip: advice?.tip ?? null,
      memoryMb: inv.memoryMb,
      timings: { ...report.timings, queuedMs: inv.sentAt !== undefined ? Math.max(0, inv.receivedAt - inv.sentAt) : undefined, totalMs },
      attempt: inv.receiveCount,
      workerId: this.opts.config.agentId,
      finishedAt: new Date().toISOString(),
    };
    const m = this.metrics;
    m.invocations.inc({ runtime: inv.runtime, status: result.status, start_kind: report.startKind, reason: result.reason });
    m.runDuration.observe({ runtime: inv.runtime, start_kind: report.startKind }, report.durationMillis / 1000);
    if (peak !== null) m.peakMemory.observe({ runtime: inv.runtime, method: report.memory.method ?? 'unknown' }, peak);
    this.cloudwatch?.record(inv.functionId, inv.runtime, { peakMemoryBytes: peak, durationMillis: report.durationMillis });
    return result;
  }

  private refreshGauges(): void {
    const m = this.metrics;
    for (const p of this.pools.values()) {
      const s = p.status();
      for (const [state, n] of Object.entries(s.containers)) m.containers.set({ runtime: s.runtime, state }, n);
    }
    const sup = this.supervisor.status();
    m.inflight.set(sup.inflight);
    m.freeSlots.set(sup.freeSlots);
    m.dockerUp.set(this.dockerHealthy ? 1 : 0);
    m.outbox.set(this.redis.pending);
    const t = this.threads.stats();
    m.threadQueue.set(t.queueSize);
    m.threadUtilization.set(t.utilization);
    m.threadCount.set(t.threads);
  }

  private async shutdown(): Promise<void> {
    const c = this.opts.config;
    this.log.info({ tag: 'AGENT', graceMs: c.shutdownGraceMs }, 'stopping: no new messages; waiting for running invocations');
    const stillRunning = await this.supervisor.stop(c.shutdownGraceMs);
    if (stillRunning > 0) this.log.warn({ tag: 'AGENT', stillRunning }, 'grace period over: killing the remaining runs; their messages return to the queue');
    await Promise.all([...this.pools.values()].map((p) => p.stop()));
    await this.supervisor.settle(10_000);
    await this.cloudwatch?.close().catch(() => undefined);
    await this.redis.close().catch(() => undefined);
    await this.threads.close().catch(() => undefined);
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
    this.http?.closeAllConnections();
    // Belt and braces: anything of this run that escaped its pool's bookkeeping.
    await removeAgentContainers(this.docker, c.agentId, { runId: this.runId, timeoutMs: c.dockerTimeoutMs, log: this.log, workRoot: c.workRoot }).catch(
      (err: unknown) => this.log.error({ tag: 'DOCKER', err: String(err) }, 'final container sweep failed'),
    );
    this.log.info({ tag: 'AGENT' }, 'stopped');
  }
}
