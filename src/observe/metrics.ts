import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PoolStatus } from '../pool/runtimePool.js';
import type { ThreadStats } from '../core/threads.js';
import { buildVersion } from '../core/version.js';

/** The gauges' sources, read at scrape time. */
export interface GaugeReadings {
  pools: PoolStatus[];
  inflight: number;
  freeSlots: number;
  dockerUp: boolean;
  outbox: number;
  threads: ThreadStats;
  memory: { budgetMb: number; inUseMb: number; waiting: number };
  draining: boolean;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const QUEUE_WAIT_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900];
const MEMORY_BUCKETS = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096].map((mb) => mb * 1024 * 1024);

/**
 * The agent's Prometheus series. Only the main thread records: worker threads return raw
 * figures (prom-client has no cross-thread aggregation). No request ids as labels.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly invocations = this.counter('nanogrid_invocations_total', 'Invocations answered, by runtime, result status, start kind and reason', [
    'runtime',
    'status',
    'start_kind',
    'reason',
  ]);
  /** Every answer stored, including failures that never ran (bad message, missing code): the success ratio's base. */
  readonly answers = this.counter('nanogrid_answers_total', 'Results answered, by status and whether the function ran (ran="no": refused or failed before running)', ['status', 'ran']);
  readonly startLatency = this.histogram('nanogrid_start_latency_seconds', 'Pool acquire to container ready for exec, by start kind', ['runtime', 'start_kind'], LATENCY_BUCKETS);
  readonly runDuration = this.histogram('nanogrid_run_duration_seconds', 'Function run time (exec), by start kind', ['runtime', 'start_kind'], DURATION_BUCKETS);
  readonly peakMemory = this.histogram('nanogrid_peak_memory_bytes', 'Per-invocation peak memory of the function container', ['runtime', 'method'], MEMORY_BUCKETS);
  readonly received = this.counter('nanogrid_sqs_messages_received_total', 'SQS messages received', []);
  readonly dispositions = this.counter(
    'nanogrid_sqs_dispositions_total',
    'What became of received messages: deleted, retried (left for redelivery), dead_lettered (last try, answered), released (shutdown)',
    ['disposition', 'reason'],
  );
  readonly sinkFailures = this.counter('nanogrid_sink_failures_total', 'Failed side effects (never failing an invocation), by sink and operation', ['sink', 'op']);
  readonly sqsRequests = this.counter('nanogrid_sqs_requests_total', 'SQS requests sent, by API operation', ['op']);
  readonly sqsErrors = this.counter('nanogrid_sqs_errors_total', 'Failed SQS calls, by operation', ['op']);
  readonly code = this.counter('nanogrid_code_cache_total', 'Code cache: hit (served without S3), download, revalidated_unchanged, revalidated_changed, revalidation_failed', ['event']);
  readonly containers = this.gauge('nanogrid_containers', 'Containers by pool and state', ['runtime', 'state']);
  readonly inflight = this.gauge('nanogrid_inflight_invocations', 'Messages held by this agent', []);
  readonly freeSlots = this.gauge('nanogrid_free_slots', 'Capacity left across pools', []);
  readonly dockerUp = this.gauge('nanogrid_docker_up', '1 while the Docker engine answers (0 during an outage: intake is paused)', []);
  readonly outputs = this.counter('nanogrid_outputs_total', 'Files under output/ after a run, by outcome (stored, failed, skipped by a limit)', ['outcome']);
  readonly outputBytes = this.counter('nanogrid_output_bytes_total', 'Bytes of files under output/ after a run, by outcome', ['outcome']);
  readonly archive = this.counter('nanogrid_code_archive_total', 'Code versions offered to the archive, by what became of them', ['event']);
  readonly engineOutages = this.counter('nanogrid_engine_outages_total', 'Times the Docker engine became unreachable', []);
  readonly memoryBudget = this.gauge('nanogrid_memory_budget_bytes', 'Memory running invocations may be allowed in all (NANOGRID_MEMORY_BUDGET_MB)', []);
  readonly memoryInUse = this.gauge('nanogrid_memory_in_use_bytes', 'Memory allowed to the invocations admitted now', []);
  readonly memoryWaiting = this.gauge('nanogrid_memory_waiting_invocations', 'Invocations held until memory of the budget frees', []);
  readonly draining = this.gauge('nanogrid_draining', '1 from the start of a drain (POST /drain, SIGTERM, a lifecycle hook or a Spot notice)', []);
  readonly outbox = this.gauge('nanogrid_result_outbox', 'Results waiting for Redis', []);
  readonly threadQueue = this.gauge('nanogrid_thread_pool_queue_size', 'Tasks waiting for a Piscina thread', []);
  readonly threadUtilization = this.gauge('nanogrid_thread_pool_utilization_ratio', 'Piscina utilisation (0-1)', []);
  readonly threadCount = this.gauge('nanogrid_thread_pool_threads', 'Piscina threads alive', []);
  readonly queueWait = this.histogram('nanogrid_queue_wait_seconds', 'SQS send to receive of invocations that ran (the message\'s SentTimestamp)', ['runtime'], QUEUE_WAIT_BUCKETS);
  readonly buildInfo = this.gauge('nanogrid_build_info', 'Always 1: the agent\'s version and the Node it runs on', ['version', 'node']);

  constructor(version = buildVersion()) {
    collectDefaultMetrics({ register: this.registry });
    this.buildInfo.set({ version, node: process.version }, 1);
  }

  /** Sets every gauge from current readings (at scrape time). */
  setGauges(r: GaugeReadings): void {
    for (const p of r.pools) {
      for (const [state, n] of Object.entries(p.containers)) this.containers.set({ runtime: p.runtime, state }, n);
    }
    this.inflight.set(r.inflight);
    this.freeSlots.set(r.freeSlots);
    this.dockerUp.set(r.dockerUp ? 1 : 0);
    this.outbox.set(r.outbox);
    this.memoryBudget.set(r.memory.budgetMb * 1048576);
    this.memoryInUse.set(r.memory.inUseMb * 1048576);
    this.memoryWaiting.set(r.memory.waiting);
    this.draining.set(r.draining ? 1 : 0);
    this.threadQueue.set(r.threads.queueSize);
    this.threadUtilization.set(r.threads.utilization);
    this.threadCount.set(r.threads.threads);
  }

  private counter<L extends string>(name: string, help: string, labelNames: readonly L[]): Counter<L> {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  private histogram<L extends string>(name: string, help: string, labelNames: readonly L[], buckets: number[]): Histogram<L> {
    return new Histogram({ name, help, labelNames, buckets, registers: [this.registry] });
  }

  private gauge<L extends string>(name: string, help: string, labelNames: readonly L[]): Gauge<L> {
    return new Gauge({ name, help, labelNames, registers: [this.registry] });
  }
}
