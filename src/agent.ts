import { buildVersion } from './core/version.js';
import type Docker from 'dockerode';
import { randomUUID } from 'node:crypto';
import type { Server } from 'node:http';
import type { Config } from './config.js';
import type { Runtime } from './core/runtimes.js';
import type { Logger } from './core/log.js';
import type { ThreadPool, ThreadStats } from './core/threads.js';
import type { Imds } from './fleet/imds.js';
import type { Drain, DrainNotice, DrainStatus } from './fleet/drain.js';
import type { TerminationNotice } from './fleet/notice.js';
import type { TerminationWatch } from './fleet/terminationWatch.js';
import type { MemoryBudget } from './intake/memoryBudget.js';
import type { Supervisor, SupervisorStatus } from './intake/supervisor.js';
import { startHttp } from './observe/http.js';
import { Metrics } from './observe/metrics.js';
import { liveness, readiness, type Health, type HealthSources, type Phase } from './observe/health.js';
import { AiEgress, resolveAiEndpoint } from './container/aiEgress.js';
import type { EngineStatus, EngineWatch } from './pool/engineWatch.js';
import { removeAgentContainers } from './pool/leftovers.js';
import type { ScratchStock, ScratchStockStatus } from './container/scratchStock.js';
import type { BuildCache, BuildCacheStatus } from './build/buildCache.js';
import type { PoolStatus, RuntimePool } from './pool/runtimePool.js';
import type { CodeArchive } from './sinks/codeArchive.js';
import type { CloudWatchSink } from './sinks/cloudwatchSink.js';
import type { LogShipper } from './sinks/logShipper.js';
import type { RedisSink } from './sinks/redisSink.js';
import { buildParts, type PartsOptions } from './parts.js';
import { prepareHost } from './startup.js';

export type { Health } from './observe/health.js';

/** The configuration, and what tests and the embedded stack override (parts.ts). */
export type AgentOptions = Omit<PartsOptions, 'runId' | 'metrics'>;

export interface AgentStatus {
  agentId: string;
  /** This build's version (the release artifact's, else package.json's) and the Node it runs on. */
  version: string;
  node: string;
  runId: string;
  uptimeSeconds: number;
  supervisor: SupervisorStatus;
  pools: PoolStatus[];
  /** The scratch file systems kept ready for cold starts, and how many were made, recycled and discarded. */
  scratch: ScratchStockStatus;
  /** The C++ build cache: functions and entries kept, bytes, entries taken from runs and refused (null: off). */
  build: BuildCacheStatus | null;
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

/** The worker agent: its parts (built in parts.ts), started in order and stopped in reverse. */
export class Agent {
  readonly runId = randomUUID();
  readonly metrics = new Metrics();
  readonly docker: Docker;
  readonly pools: Map<Runtime, RuntimePool>;
  private readonly scratch: ScratchStock;
  private readonly build: BuildCache | undefined;
  readonly redis: RedisSink;
  readonly supervisor: Supervisor;
  readonly log: Logger;
  private readonly threads: ThreadPool;
  private readonly samplerThreads: ThreadPool;
  private readonly cloudwatch: CloudWatchSink | undefined;
  private readonly functionLogs: LogShipper | undefined;
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
  /** The AI node's egress (AI_ENDPOINT), once started. */
  egress: AiEgress | undefined;

  constructor(private readonly opts: AgentOptions) {
    const p = buildParts({ ...opts, runId: this.runId, metrics: this.metrics });
    this.log = p.log;
    this.docker = p.docker;
    this.engine = p.engine;
    this.threads = p.threads;
    this.samplerThreads = p.samplerThreads;
    this.pools = p.pools;
    this.scratch = p.scratch;
    this.build = p.build;
    this.redis = p.redis;
    this.cloudwatch = p.cloudwatch;
    this.functionLogs = p.functionLogs;
    this.archive = p.archive;
    this.memory = p.memory;
    this.supervisor = p.supervisor;
    this.imds = p.imds;
    this.terminationWatch = p.terminationWatch;
    this.drains = p.drains;
    this.terminationWatch?.on('notice', (n) => this.onTerminationNotice(n));
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
    await prepareHost(this.docker, c, this.log, this.opts.credentials);
    if (c.aiEndpoint) {
      this.egress = new AiEgress(this.docker, { agentId: c.agentId, endpoint: await resolveAiEndpoint(c.aiEndpoint), log: this.log, timeoutMs: c.dockerTimeoutMs });
      await this.egress.start();
    }
    try {
      await this.redis.connect();
    } catch (err) {
      this.log.error({ tag: 'REDIS', err }, 'Redis unreachable at start; results wait in the outbox until it answers');
    }
    // Watched from before prewarm: an instance can be taken away while it starts.
    this.terminationWatch?.start();
    // The spares first: the prewarm stock's containers take them.
    this.scratch.fill();
    await this.build?.reset();
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
      version: buildVersion(),
      node: process.version,
      runId: this.runId,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      supervisor: this.supervisor.status(),
      pools: [...this.pools.values()].map((p) => p.status()),
      scratch: this.scratch.status(),
      build: this.build?.status() ?? null,
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
  private get phase(): Phase {
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

  private get healthSources(): HealthSources {
    return {
      phase: () => this.phase,
      engine: this.engine,
      queue: () => ({ reachable: this.supervisor.queueReachable, lastError: this.supervisor.status().lastReceiveError }),
      redisPing: () => this.redis.ping(),
    };
  }

  /** Liveness, for the Auto Scaling group (observe/health.ts). */
  live(): Promise<Health> {
    return liveness(this.healthSources);
  }

  /** Readiness: started, and the engine and the queue answer. */
  health(): Promise<Health> {
    return readiness(this.healthSources);
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
    // Removed containers' file systems are destroyed from now on, not recycled.
    this.scratch.stopKeeping();
    await Promise.all([...this.pools.values()].map((p) => p.stop()));
    await this.scratch.close();
    this.engine.stop();
    await this.supervisor.awaitTasks(10_000);
    await this.archive?.close(5000);
    await this.cloudwatch?.close().catch(() => undefined);
    await this.functionLogs?.close().catch(() => undefined);
    await this.redis.close().catch(() => undefined);
    await this.threads.close().catch(() => undefined);
    await this.samplerThreads.close().catch(() => undefined);
    await new Promise<void>((resolve) => (this.http ? this.http.close(() => resolve()) : resolve()));
    this.http?.closeAllConnections();
    // Belt and braces: anything of this run that escaped its pool's bookkeeping.
    await removeAgentContainers(this.docker, c.agentId, { runId: this.runId, timeoutMs: c.dockerTimeoutMs, log: this.log, workRoot: c.workRoot }).catch(
      (err: unknown) => this.log.error({ tag: 'DOCKER', err }, 'final container sweep failed'),
    );
    // After the containers: a network with containers attached cannot be removed.
    await this.egress?.stop();
    this.log.info({ tag: 'AGENT' }, 'stopped');
  }
}
