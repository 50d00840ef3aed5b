import { CloudWatchClient } from '@aws-sdk/client-cloudwatch';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import Docker from 'dockerode';
import { randomUUID } from 'node:crypto';
import { mkdir, statfs } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { Config } from './config.js';
import { RUNTIMES, type Runtime } from './core/runtimes.js';
import { codeCacheRoot } from './core/sandbox.js';
import { sleep, withTimeout } from './core/timeout.js';
import { ensurePrivateDir } from './core/privateDir.js';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { Imds } from './fleet/imds.js';
import { LifecycleAction } from './fleet/lifecycleAction.js';
import { Drain, type DrainNotice, type DrainStatus } from './fleet/drain.js';
import type { TerminationNotice } from './fleet/notice.js';
import { TerminationWatch } from './fleet/terminationWatch.js';
import { MemoryBudget } from './intake/memoryBudget.js';
import { MessageLeases } from './intake/messageLeases.js';
import { Supervisor, type IntakeGate, type SupervisorStatus } from './intake/supervisor.js';
import { startHttp } from './observe/http.js';
import type { Logger } from './core/log.js';
import { Metrics } from './observe/metrics.js';
import { AiEgress, egressNames, resolveAiEndpoint } from './container/aiEgress.js';
import { EngineWatch, type EngineStatus } from './pool/engineWatch.js';
import { rangeConflict, SandboxUids } from './container/sandboxUser.js';
import { removeAgentContainers } from './pool/leftovers.js';
import { ensureImages } from './container/imagePull.js';
import { scratchImageBytes } from './container/scratch.js';
import { InputFetcher } from './run/inputFetch.js';
import { RUNNER_BOUND_MS } from './pool/lease.js';
import { OutputStore } from './sinks/outputStore.js';
import { archiveClient, CodeArchive } from './sinks/codeArchive.js';
import { RuntimePool, type PoolStatus } from './pool/runtimePool.js';
import { CodeCache } from './code/codeCache.js';
import { CodeFetcher } from './code/codeFetch.js';
import { Invoker } from './run/invoker.js';
import { MemoryMeter } from './container/memoryMeter.js';
import { ThreadPool, type ThreadStats } from './core/threads.js';
import { CloudWatchSink } from './sinks/cloudwatchSink.js';
import { MemoryHistory } from './sinks/memoryHistory.js';
import { RedisSink } from './sinks/redisSink.js';

export interface AgentOptions {
  config: Config;
  log: Logger;
  /** Static credentials for endpoints that do not check them (the embedded stack). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** CloudWatch endpoint override (else AWS_ENDPOINT_URL_CLOUDWATCH); without one, CloudWatch is off when AWS_ENDPOINT_URL points elsewhere. */
  cloudwatchEndpoint?: string;
  dockerSocket?: string;
  /** Force the thread-sampling meter (for tests of the fallback). */
  forceMemorySampling?: boolean;
  /** How often the engine is pinged while it is up (ms). */
  engineCheckMs?: number;
}

export interface AgentStatus {
  agentId: string;
  runId: string;
  uptimeSeconds: number;
  supervisor: SupervisorStatus;
  pools: PoolStatus[];
  /** Results waiting for Redis: how many, and their bytes (the outbox's limits: NANOGRID_OUTBOX_MAX_*). */
  results: { outbox: number; outboxBytes: number; outboxFull: boolean };
  threads: ThreadStats;
  engine: EngineStatus;
  archive: (Record<string, number> & { pending: number }) | null;
  phase: string;
  memoryBudgetMb: number;
  memory: { budgetMb: number; inUseMb: number; freeMb: number; waiting: number };
  drain: DrainStatus | null;
}

export interface Health {
  ok: boolean;
  phase?: 'starting' | 'ready' | 'draining' | 'drained' | 'stopping';
  parts: Record<string, { ok: boolean; detail?: string; [more: string]: unknown }>;
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

/** The worker agent: builds every part, starts them in order and stops them in reverse. */
export class Agent {
  readonly runId = randomUUID();
  readonly metrics = new Metrics();
  readonly docker: Docker;
  readonly pools = new Map<Runtime, RuntimePool>();
  readonly redis: RedisSink;
  readonly supervisor: Supervisor;
  readonly log: Logger;
  private readonly threads: ThreadPool;
  private readonly samplerThreads: ThreadPool;
  private readonly cloudwatch: CloudWatchSink | undefined;
  private readonly startedAt = Date.now();
  private http: Server | undefined;
  private stopped: Promise<void> | undefined;
  readonly engine: EngineWatch;
  readonly archive: CodeArchive | undefined;
  /** False until every pool's prewarm is made and intake runs. */
  private started = false;
  private stopping = false;
  /** No new messages, running invocations finish: for an operator, a signal, a lifecycle action or a Spot notice. */
  readonly drains: Drain;
  readonly memory: MemoryBudget;
  readonly imds: Imds | undefined;
  readonly terminationWatch: TerminationWatch | undefined;
  private readonly lifecycle: LifecycleAction | undefined;
  /** The AI node's egress (AI_ENDPOINT), once started. */
  egress: AiEgress | undefined;

  constructor(private readonly opts: AgentOptions) {
    const c = opts.config;
    if (!c.queueUrl) throw new Error('SQS_QUEUE_URL is required (main.ts starts the embedded stack when it is unset)');
    if (!c.redisUrl) throw new Error('REDIS_URL is required (main.ts starts the embedded stack when it is unset)');
    this.log = opts.log.child({ agentId: c.agentId });
    this.docker = new Docker({ socketPath: opts.dockerSocket ?? process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
    const m = this.metrics;
    this.engine = new EngineWatch({ ping: () => this.docker.ping(), log: this.log, checkEveryMs: opts.engineCheckMs ?? 2000 });
    this.engine.on('down', () => m.engineOutages.inc());

    const aws = {
      region: c.region,
      credentials: opts.credentials,
      // Long polling holds a request for 20 s: allow for it, bound everything else.
      requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: 30_000 }),
      maxAttempts: 3,
    };
    // Emulators answer on one host: bucket names go in the path, not the host name.
    const s3 = new S3Client({ ...aws, endpoint: c.endpoints.s3, forcePathStyle: c.endpoints.s3 !== undefined, requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: c.s3TimeoutMs }) });
    this.threads = new ThreadPool('unzip', c.unzipThreads);
    // One sampler per run at most: sampling never waits for a thread, nor takes unzip's.
    this.samplerThreads = new ThreadPool('memorySampler', Math.max(1, RUNTIMES.reduce((n, r) => n + c.runtimes[r].maxContainers, 0)));
    const fetcher = new CodeFetcher({ s3, threads: this.threads, s3TimeoutMs: c.s3TimeoutMs, codeMaxBytes: c.codeMaxBytes, zipMaxEntries: c.zipMaxEntries, zipMaxBytes: c.zipMaxBytes });
    const code = new CodeCache({
      fetcher,
      root: codeCacheRoot(c.workRoot, c.agentId),
      stalenessMs: c.codeStalenessMs,
      maxBytes: c.codeCacheBytes,
      maxInodes: c.codeCacheInodes,
      log: this.log,
      onEvent: (event) => m.code.inc({ event }),
    });
    const meter = new MemoryMeter(this.samplerThreads, { forceSampling: opts.forceMemorySampling });

    this.redis = new RedisSink({
      url: c.redisUrl,
      ttlSeconds: c.resultTtlSeconds,
      workerId: c.agentId,
      log: this.log,
      outboxDir: c.outboxDir,
      resultMaxBytes: c.resultMaxBytes,
      outboxLimits: { entries: c.outboxMaxResults, bytes: c.outboxMaxBytes },
      onFailure: (op) => m.sinkFailures.inc({ sink: 'redis', op }),
    });
    const history = new MemoryHistory(this.redis.redis, {
      health: this.redis.health,
      size: c.memoryHistorySize,
      ttlSeconds: 30 * 86_400,
      log: this.log,
      onFailure: () => m.sinkFailures.inc({ sink: 'redis', op: 'memory_history' }),
    });
    const cwEndpoint = opts.cloudwatchEndpoint ?? c.endpoints.cloudwatch;
    // A generic endpoint override (fauxqs, ElasticMQ) rarely speaks CloudWatch: only send
    // there when CloudWatch has an endpoint of its own, or when talking to real AWS.
    if (c.cloudwatchEnabled && (cwEndpoint || !c.endpoints.generic)) {
      this.cloudwatch = new CloudWatchSink(new CloudWatchClient({ region: c.region, endpoint: cwEndpoint, credentials: opts.credentials, maxAttempts: 2 }), {
        namespace: c.cloudwatchNamespace,
        flushMs: c.cloudwatchFlushMs,
        timeoutMs: 10_000,
        log: this.log,
        onFailure: () => m.sinkFailures.inc({ sink: 'cloudwatch', op: 'put_metric_data' }),
        maxSeries: c.cloudwatchMaxSeries,
      });
    }

    // With an AI node, containers join the agent's own network, whose egress rules let
    // them reach that node only; without one, they have no network at all.
    const network = c.aiEndpoint ? egressNames(c.agentId).network : c.network;
    // One uid set for every pool: no two containers of this agent share a uid.
    const sandbox = { uids: new SandboxUids(c.sandboxUids), limits: c.limits };
    for (const runtime of RUNTIMES) {
      const pool = new RuntimePool({
        runtime,
        config: c.runtimes[runtime],
        docker: this.docker,
        agentId: c.agentId,
        runId: this.runId,
        workRoot: c.workRoot,
        network,
        defaultMemoryMb: c.defaultMemoryMb,
        idleTimeoutMs: c.idleTimeoutMs,
        apiTimeoutMs: c.dockerTimeoutMs,
        log: this.log,
        // Streams are kept whole only where they can be stored.
        run: { meter, outputLimitBytes: c.outputLimitBytes, spoolLimitBytes: c.userDataBucket ? c.outputSpoolBytes : 0 },
        runnerDir: c.runnerDir,
        freezer: c.freezer,
        pauseGraceMs: c.pauseGraceMs,
        disk: { limitMb: c.diskLimitMb, reserve: c.diskReserve },
        cpu: c.cpu,
        sandbox,
        engine: this.engine,
      });
      pool.on('served', (rt, startKind, acquireMs) => m.startLatency.observe({ runtime: rt, start_kind: startKind }, acquireMs / 1000));
      this.pools.set(runtime, pool);
    }

    this.archive = c.archive
      ? new CodeArchive({
          source: s3,
          target: archiveClient(c.archive),
          bucket: c.archive.bucket,
          log: this.log,
          timeoutMs: c.s3TimeoutMs,
          onEvent: (event) => m.archive.inc({ event }),
        })
      : undefined;
    const invoker = new Invoker({
      archive: this.archive,
      pools: this.pools,
      commands: { python: c.runtimes.python.command, cpp: c.runtimes.cpp.command },
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
            onFile: (outcome, bytes) => {
              m.outputs.inc({ outcome });
              m.outputBytes.inc({ outcome }, bytes);
            },
          })
        : undefined,
      history,
      tipLanguage: c.tipLanguage,
      workerId: c.agentId,
      onRan: (r, report) => {
        m.invocations.inc({ runtime: r.runtime, status: r.status, start_kind: report.startKind, reason: r.reason });
        m.runDuration.observe({ runtime: r.runtime, start_kind: report.startKind }, r.durationMillis / 1000);
        if (r.peakMemoryBytes !== null) m.peakMemory.observe({ runtime: r.runtime, method: r.peakMemoryMethod ?? 'unknown' }, r.peakMemoryBytes);
        this.cloudwatch?.record(r.functionId, r.runtime, { peakMemoryBytes: r.peakMemoryBytes, durationMillis: r.durationMillis, success: r.success });
      },
    });

    const leases = new MessageLeases({
      sqs: new SQSClient({ ...aws, endpoint: c.endpoints.sqs }),
      queueUrl: c.queueUrl,
      visibilityTimeoutS: c.visibilityTimeoutS,
      receiveWaitS: c.receiveWaitS,
      timeoutMs: 10_000,
      log: this.log,
      onError: (op) => m.sqsErrors.inc({ op }),
      onRequest: (op) => m.sqsRequests.inc({ op }),
    });
    this.memory = new MemoryBudget(c.memoryBudgetMb);
    this.supervisor = new Supervisor({
      leases,
      memory: this.memory,
      gate: { isOpen: () => this.engine.isUp, whenOpen: () => this.engine.whenUp(), why: 'the engine is unreachable' },
      pauses: [outboxGate(this.redis)],
      capacity: () => [...this.pools.values()].reduce((n, p) => n + p.capacity, 0),
      limits: {
        defaultTimeoutMs: c.defaultTimeoutMs,
        maxTimeoutMs: c.maxTimeoutMs,
        defaultMemoryMb: c.defaultMemoryMb,
        maxInputBytes: c.inputMaxBytes,
        codeBuckets: c.codeBuckets,
        userDataBucket: c.userDataBucket,
        memoryBudgetMb: c.memoryBudgetMb,
        inputPrefix: c.inputPrefix,
      },
      ...(c.messageKeys.length > 0 ? { auth: { keys: c.messageKeys, maxLifetimeMs: c.messageMaxLifetimeMs } } : {}),
      visibilityTimeoutS: c.visibilityTimeoutS,
      maxReceiveCount: c.maxReceiveCount,
      log: this.log,
      runInvocation: (inv, log, hooks) => invoker.run(inv, log, hooks),
      results: {
        // A FAILED answer for an invocation that never ran is an error in CloudWatch too.
        deliver: (r, log) => {
          m.answers.inc({ status: r.status, ran: r.startKind === null ? 'no' : 'yes' });
          if (r.startKind === null) this.cloudwatch?.recordNeverRan(r.reason);
          return this.redis.deliver(r, log);
        },
        find: (id) => this.redis.find(id),
        claim: (id, fn, location, fields, log) => this.redis.claim(id, fn, location, fields, log),
        markState: (id, state, fields, log) => this.redis.markState(id, state, fields, log),
      },
      workerId: c.agentId,
    });
    if (c.termination.watch === 'imds') {
      this.imds = new Imds({ endpoint: c.termination.imdsEndpoint });
      this.terminationWatch = new TerminationWatch({ imds: this.imds, pollMs: c.termination.pollMs, log: this.log });
      this.terminationWatch.on('notice', (n) => this.onTerminationNotice(n));
      this.lifecycle = new LifecycleAction({
        client: new AutoScalingClient({ region: c.region, endpoint: c.endpoints.autoScaling, credentials: opts.credentials, maxAttempts: 3, requestHandler: new NodeHttpHandler({ connectionTimeout: 5000, requestTimeout: 10_000 }) }),
        imds: this.imds,
        hookName: c.termination.hookName,
        groupName: c.termination.groupName,
        log: this.log,
      });
    }
    this.supervisor.on('received', (n) => m.received.inc(n));
    this.supervisor.on('disposed', (disposition, reason) => m.dispositions.inc({ disposition, reason }));
    this.supervisor.on('receive_failed', () => m.sqsErrors.inc({ op: 'receive' }));
    const lifecycle = this.lifecycle;
    this.drains = new Drain({
      host: {
        stopIntake: (waitMs) => this.supervisor.stop(waitMs),
        resumeIntake: () => this.supervisor.resume(),
        giveBackRunning: () => this.supervisor.abandonRunning(),
        stopPools: async () => void (await Promise.all([...this.pools.values()].map((p) => p.stop()))),
        running: () => this.supervisor.status().running,
        released: () => this.supervisor.status().totals.released,
        lifecycle,
      },
      policy: { spotMarginMs: c.termination.spotMarginMs, shutdownGraceMs: c.shutdownGraceMs },
      // Each run ends by its own timeout at the latest; the bound only guards against a stuck one.
      waitMs: c.maxTimeoutMs + RUNNER_BOUND_MS + 10_000,
      heartbeatMs: c.termination.heartbeatMs,
      log: this.log,
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
    // The HTTP server answers from the first moment: "starting" until the pools are ready.
    this.http = await startHttp({
      host: c.httpHost,
      port: c.httpPort,
      health: () => this.health(),
      live: () => this.live(),
      ready: () => this.health(),
      status: () => this.status(),
      drain: () => this.drain(),
      undrain: () => this.undrain(),
      adminToken: c.adminToken,
      metrics: async () => {
        const s = this.status();
        this.metrics.setGauges({
          pools: s.pools,
          inflight: s.supervisor.inflight,
          freeSlots: s.supervisor.freeSlots,
          dockerUp: this.engine.isUp,
          outbox: s.results.outbox,
          threads: s.threads,
          memory: s.memory,
          draining: s.drain !== null,
        });
        return { contentType: this.metrics.registry.contentType, body: await this.metrics.registry.metrics() };
      },
    });
    this.log.info({ tag: 'AGENT', httpPort: this.httpPort }, 'http listening: starting');
    try {
      await withTimeout('docker ping', 5000, this.docker.ping());
    } catch (err) {
      throw new Error(`Docker engine not reachable (${String(err)}): start dockerd, or run "npm run setup"`);
    }
    // Pulled (when missing, or always) before anything is ready: a worker without its
    // images would take messages it cannot run.
    await ensureImages(
      this.docker,
      RUNTIMES.map((r) => c.runtimes[r].image),
      { policy: c.imagePull, timeoutMs: c.imagePullTimeoutMs, log: this.log, credentials: this.opts.credentials },
    );
    await this.checkOciRuntimes();
    const conflict = await rangeConflict(c.sandboxUids);
    if (conflict) throw new Error(`${conflict}: functions would share a uid with it; choose a free range with NANOGRID_SANDBOX_UIDS`);
    await ensurePrivateDir(c.workRoot, 'NANOGRID_WORK_ROOT');
    await ensurePrivateDir(c.outboxDir, 'NANOGRID_OUTBOX_DIR');
    // A previous run of this agent that was killed leaves containers behind: clear them.
    await removeAgentContainers(this.docker, c.agentId, { timeoutMs: c.dockerTimeoutMs, log: this.log, workRoot: c.workRoot });
    await mkdir(codeCacheRoot(c.workRoot, c.agentId), { recursive: true });
    await this.checkDisk();
    if (c.memoryBudgetMb < c.defaultMemoryMb) {
      this.log.warn(
        { tag: 'AGENT', memoryBudgetMb: c.memoryBudgetMb, defaultMemoryMb: c.defaultMemoryMb },
        'the memory budget is below the default memory: messages without memoryMb are refused (raise NANOGRID_MEMORY_BUDGET_MB, lower NANOGRID_MEMORY_RESERVE_MB or NANOGRID_DEFAULT_MEMORY_MB)',
      );
    }
    if (c.aiEndpoint) {
      this.egress = new AiEgress(this.docker, { agentId: c.agentId, endpoint: await resolveAiEndpoint(c.aiEndpoint), log: this.log, timeoutMs: c.dockerTimeoutMs });
      await this.egress.start();
    }
    try {
      await this.redis.connect();
    } catch (err) {
      this.log.error({ tag: 'REDIS', err: String(err) }, 'Redis unreachable at start; results wait in the outbox until it answers');
    }
    // Watched from before prewarm: an instance can be taken away while it starts.
    this.terminationWatch?.start();
    await Promise.all([...this.pools.values()].map((p) => p.start()));
    this.engine.start();
    this.cloudwatch?.start(() => this.supervisor.status().running);
    await this.supervisor.start();
    // A notice may have come during start: the drain it began stands.
    this.started = true;
    this.log.info(
      { tag: 'AGENT', runId: this.runId, httpPort: this.httpPort, queueUrl: c.queueUrl, capacity: this.supervisor.capacity, cloudwatch: Boolean(this.cloudwatch) },
      'agent started',
    );
  }

  /** An OCI runtime the engine does not offer would fail every container: say so at start, naming the setting. */
  private async checkOciRuntimes(): Promise<void> {
    const c = this.opts.config;
    const wanted = RUNTIMES.map((r) => [r, c.runtimes[r].ociRuntime] as const).filter((x): x is readonly [Runtime, string] => x[1] !== undefined);
    if (wanted.length === 0) return;
    const info = (await withTimeout('docker info', c.dockerTimeoutMs, this.docker.info())) as { Runtimes?: Record<string, unknown> };
    const offered = Object.keys(info.Runtimes ?? {});
    for (const [runtime, oci] of wanted) {
      if (!offered.includes(oci)) {
        throw new Error(`NANOGRID_OCI_RUNTIME asks for ${oci} for ${runtime}, but dockerd offers ${offered.join(', ')}: register it in /etc/docker/daemon.json (npm run setup does for runsc and crun) and restart dockerd`);
      }
    }
    this.log.info({ tag: 'DOCKER', ociRuntimes: Object.fromEntries(wanted) }, 'OCI runtimes of the pools');
  }

  /**
   * Every container reserves its writable space on the host disk when it is made: say at
   * start when the disk cannot hold a full pool, rather than failing creations later.
   */
  private async checkDisk(): Promise<void> {
    const c = this.opts.config;
    if (!c.diskReserve) return;
    const containers = RUNTIMES.reduce((n, r) => n + c.runtimes[r].maxContainers, 0);
    const needMb = Math.ceil((containers * scratchImageBytes(c.diskLimitMb * 1024 * 1024)) / (1024 * 1024));
    const fs = await statfs(c.workRoot);
    const freeMb = Math.floor((fs.bavail * fs.bsize) / (1024 * 1024));
    if (freeMb < needMb) {
      this.log.warn(
        { tag: 'DOCKER', freeMb, needMb, containers, diskLimitMb: c.diskLimitMb },
        'the work folder cannot hold every container\'s writable space: creations past the free space will fail (lower NANOGRID_DISK_MB or the pool sizes)',
      );
    }
  }

  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  /** Nothing held and no container in the middle of an engine call: a quiet moment. */
  quiescent(): boolean {
    const s = this.status();
    const busy = (p: PoolStatus) => p.containers.creating + p.containers.thawing + p.containers.resetting + p.containers.pausing + p.containers.retiring;
    return s.supervisor.inflight === 0 && s.pools.every((p) => busy(p) === 0);
  }

  status(): AgentStatus {
    return {
      agentId: this.opts.config.agentId,
      runId: this.runId,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      supervisor: this.supervisor.status(),
      pools: [...this.pools.values()].map((p) => p.status()),
      results: { outbox: this.redis.pending, outboxBytes: this.redis.undelivered.bytes, outboxFull: this.redis.full },
      threads: this.threads.stats(),
      engine: this.engine.status(),
      archive: this.archive ? { ...this.archive.counts, pending: this.archive.pending } : null,
      phase: this.phase,
      memoryBudgetMb: this.opts.config.memoryBudgetMb,
      memory: { budgetMb: this.memory.totalMb, inUseMb: this.memory.inUseMb, freeMb: this.memory.freeMb, waiting: this.memory.waiting },
      drain: this.drains.status(),
    };
  }

  /**
   * Stops receiving, gives back what is held but not started, and lets running
   * invocations finish within their own timeouts; the agent stays up, drained. Idempotent:
   * a second call reports the drain under way.
   */
  drain(): DrainStatus {
    return this.drains.start({ trigger: 'http' });
  }

  /** Undoes a drain an operator started over HTTP: the agent receives again and is ready. */
  undrain(): { ok: true; status: AgentStatus } | { ok: false; why: string } {
    if (this.stopping) return { ok: false, why: 'the agent is stopping' };
    const undone = this.drains.undo();
    return undone.ok ? { ok: true, status: this.status() } : undone;
  }

  /** What /health and /status call the agent's phase now. */
  private get phase(): 'starting' | 'ready' | 'draining' | 'drained' | 'stopping' {
    if (this.stopping) return 'stopping';
    const d = this.drains.state;
    if (d === 'drained') return 'drained';
    if (d !== 'idle') return 'draining';
    return this.started ? 'ready' : 'starting';
  }

  private onTerminationNotice(n: TerminationNotice): void {
    const c = this.opts.config;
    let notice: DrainNotice;
    if (n.kind === 'spot') {
      this.log.warn({ tag: 'FLEET', action: n.action, at: new Date(n.deadline).toISOString(), marginMs: c.termination.spotMarginMs }, 'Spot interruption notice: draining');
      notice = { trigger: 'spot', at: n.deadline };
    } else {
      this.log.warn({ tag: 'FLEET', state: n.state }, 'termination lifecycle action: draining');
      notice = { trigger: 'lifecycle' };
    }
    this.drains.start(notice);
  }

  /**
   * Liveness, for the Auto Scaling group: this process and its engine, nothing shared. An
   * outage of SQS or Redis must not mark every worker unhealthy and replace the fleet.
   */
  async live(): Promise<Health> {
    const up = await this.engine.check();
    const e = this.engine.status();
    return { ok: up, phase: this.phase, parts: { process: { ok: true }, docker: up ? { ok: true } : { ok: false, detail: `unreachable since ${e.since}` } } };
  }

  /** Readiness: started, and the engine and the queue answer (Redis reported only). */
  async health(): Promise<Health> {
    if (this.phase !== 'ready') return { ok: false, phase: this.phase, parts: {} };
    const up = await this.engine.check();
    const e = this.engine.status();
    const docker = up
      ? { ok: true, outages: e.outages, downSecondsTotal: e.downSecondsTotal }
      : { ok: false, detail: `unreachable since ${e.since}; intake paused: ${e.lastError ?? ''}`, outages: e.outages, downSecondsTotal: e.downSecondsTotal };
    const queue = this.supervisor.queueReachable ? { ok: true } : { ok: false, detail: this.supervisor.status().lastReceiveError ?? 'unknown' };
    const redisOk = await this.redis.ping();
    // Redis is reported but does not fail health: results wait in the outbox meanwhile.
    return { ok: docker.ok && queue.ok, phase: this.phase, parts: { docker, queue, redis: redisOk ? { ok: true } : { ok: false, detail: 'not answering; results kept in outbox' } } };
  }

  private async shutdown(): Promise<void> {
    const c = this.opts.config;
    this.terminationWatch?.stop();
    this.stopping = true;
    this.log.info({ tag: 'AGENT', graceMs: c.shutdownGraceMs }, 'stopping: no new messages; waiting for running invocations');
    // A drain for the signal: what still runs at the grace's end is given back, then killed
    // (/status shows it; the HTTP server answers to the end).
    this.drains.start({ trigger: 'signal' });
    await this.drains.whenDrained();
    this.drains.close();
    await Promise.all([...this.pools.values()].map((p) => p.stop()));
    this.engine.stop();
    await this.supervisor.awaitTasks(10_000);
    await this.archive?.close(5000);
    await this.cloudwatch?.close().catch(() => undefined);
    await this.redis.close().catch(() => undefined);
    await this.threads.close().catch(() => undefined);
    await this.samplerThreads.close().catch(() => undefined);
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
    this.http?.closeAllConnections();
    // Belt and braces: anything of this run that escaped its pool's bookkeeping.
    await removeAgentContainers(this.docker, c.agentId, { runId: this.runId, timeoutMs: c.dockerTimeoutMs, log: this.log, workRoot: c.workRoot }).catch(
      (err: unknown) => this.log.error({ tag: 'DOCKER', err: String(err) }, 'final container sweep failed'),
    );
    // After the containers: a network with containers attached cannot be removed.
    await this.egress?.stop();
    this.log.info({ tag: 'AGENT' }, 'stopped');
  }
}
