import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { PoolStatus } from '../pool/runtimePool.js';
import type { ThreadStats } from '../run/threads.js';

/** The gauges' sources, read at scrape time. */
export interface GaugeReadings {
  pools: PoolStatus[];
  inflight: number;
  freeSlots: number;
  dockerUp: boolean;
  outbox: number;
  threads: ThreadStats;
}

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const DURATION_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const MEMORY_BUCKETS = [8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096].map((mb) => mb * 1024 * 1024);

/**
 * The agent's Prometheus series. Only the main thread records: worker threads return raw
 * figures (prom-client has no cross-thread aggregation). No request ids as labels.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly invocations = new Counter({
    name: 'nanogrid_invocations_total',
    help: 'Invocations answered, by runtime, result status, start kind and reason',
    labelNames: ['runtime', 'status', 'start_kind', 'reason'] as const,
    registers: [this.registry],
  });
  readonly startLatency = new Histogram({
    name: 'nanogrid_start_latency_seconds',
    help: 'Pool acquire to container ready for exec, by start kind',
    labelNames: ['runtime', 'start_kind'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly runDuration = new Histogram({
    name: 'nanogrid_run_duration_seconds',
    help: 'Function run time (exec), by start kind',
    labelNames: ['runtime', 'start_kind'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly peakMemory = new Histogram({
    name: 'nanogrid_peak_memory_bytes',
    help: 'Per-invocation peak memory of the function container',
    labelNames: ['runtime', 'method'] as const,
    buckets: MEMORY_BUCKETS,
    registers: [this.registry],
  });
  readonly received = new Counter({
    name: 'nanogrid_sqs_messages_received_total',
    help: 'SQS messages received',
    registers: [this.registry],
  });
  readonly dispositions = new Counter({
    name: 'nanogrid_sqs_dispositions_total',
    help: 'What became of received messages: deleted, retried (left for redelivery), dead_lettered (last try, answered), released (shutdown)',
    labelNames: ['disposition', 'reason'] as const,
    registers: [this.registry],
  });
  readonly sinkFailures = new Counter({
    name: 'nanogrid_sink_failures_total',
    help: 'Failed side effects (never failing an invocation), by sink and operation',
    labelNames: ['sink', 'op'] as const,
    registers: [this.registry],
  });
  readonly sqsErrors = new Counter({
    name: 'nanogrid_sqs_errors_total',
    help: 'Failed SQS calls, by operation',
    labelNames: ['op'] as const,
    registers: [this.registry],
  });
  readonly containers = new Gauge({
    name: 'nanogrid_containers',
    help: 'Containers by pool and state',
    labelNames: ['runtime', 'state'] as const,
    registers: [this.registry],
  });
  readonly inflight = new Gauge({ name: 'nanogrid_inflight_invocations', help: 'Messages held by this agent', registers: [this.registry] });
  readonly freeSlots = new Gauge({ name: 'nanogrid_free_slots', help: 'Capacity left across pools', registers: [this.registry] });
  readonly dockerUp = new Gauge({ name: 'nanogrid_docker_up', help: '1 when the Docker engine answered the last health probe', registers: [this.registry] });
  readonly outbox = new Gauge({ name: 'nanogrid_result_outbox', help: 'Results waiting for Redis', registers: [this.registry] });
  readonly threadQueue = new Gauge({ name: 'nanogrid_thread_pool_queue_size', help: 'Tasks waiting for a Piscina thread', registers: [this.registry] });
  readonly threadUtilization = new Gauge({ name: 'nanogrid_thread_pool_utilization_ratio', help: 'Piscina utilisation (0-1)', registers: [this.registry] });
  readonly threadCount = new Gauge({ name: 'nanogrid_thread_pool_threads', help: 'Piscina threads alive', registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
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
    this.threadQueue.set(r.threads.queueSize);
    this.threadUtilization.set(r.threads.utilization);
    this.threadCount.set(r.threads.threads);
  }
}
