import { CloudWatchClient, PutMetricDataCommand, StandardUnit, type MetricDatum } from '@aws-sdk/client-cloudwatch';
import type { Emitter } from '../core/events.js';
import type { Logger } from '../core/log.js';

interface Stat {
  count: number;
  sum: number;
  min: number;
  max: number;
}

interface Bucket {
  functionId: string;
  runtime: string;
  peak?: Stat;
  duration?: Stat;
  invocations: number;
  errors: number;
}

/** PutMetricData takes at most 1000 datums per call. */
const MAX_DATUMS = 1000;
/** Functions with figures in one flush; past it the rest are dropped and counted (each series costs money). */
export const DEFAULT_MAX_SERIES = 1000;

/**
 * Aggregates per-function figures into statistic sets and sends them in batches, on a
 * timer and at shutdown: one call per flush, not per invocation. A failed send is logged
 * and counted; it never reaches an invocation.
 */
export class CloudWatchSink {
  private buckets = new Map<string, Bucket>();
  /** Failures of invocations that never ran, by reason: no function dimension (the function may not exist). */
  private notRun = new Map<string, number>();
  /** Functions whose figures were dropped in this flush for the series cap. */
  private dropped = 0;
  /** The agent's running invocations, sampled every second (Lambda's ConcurrentExecutions). */
  private concurrency: Stat | undefined;
  private sampler: NodeJS.Timeout | undefined;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(
    private readonly client: CloudWatchClient,
    private readonly opts: { namespace: string; flushMs: number; timeoutMs: number; log: Logger; events?: Emitter<'sinkFailure'>; maxSeries?: number; workerId?: string },
  ) {}

  /** `running`: how many invocations run now, sampled every second while started. */
  start(running?: () => number): void {
    this.timer = setInterval(() => void this.flush(), this.opts.flushMs);
    this.timer.unref();
    if (running) {
      this.sampler = setInterval(() => (this.concurrency = add(this.concurrency, running())), 1000);
      this.sampler.unref();
    }
  }

  /** A run that happened: its peak, its duration, and whether it failed. */
  record(functionId: string, runtime: string, figures: { peakMemoryBytes: number | null; durationMillis: number; success?: boolean }): void {
    const b = this.bucket(functionId, runtime);
    if (!b) return;
    // Skipped when unknown, as in the original: a null peak is not a zero.
    if (figures.peakMemoryBytes !== null) b.peak = add(b.peak, figures.peakMemoryBytes);
    b.duration = add(b.duration, figures.durationMillis);
    b.invocations++;
    if (figures.success === false) b.errors++;
  }

  /**
   * An invocation answered FAILED without running (bad message, missing code, ...): not a
   * function's invocation, as Lambda counts them, and no series of a function that may
   * not exist (a sender names any id it likes): `FailedBeforeRun` by reason only.
   */
  recordNeverRan(reason: string): void {
    this.notRun.set(reason, (this.notRun.get(reason) ?? 0) + 1);
  }

  private bucket(functionId: string, runtime: string): Bucket | undefined {
    const key = `${functionId}\u0000${runtime}`;
    let b = this.buckets.get(key);
    if (!b) {
      if (this.buckets.size >= (this.opts.maxSeries ?? DEFAULT_MAX_SERIES)) {
        this.dropped++;
        return undefined;
      }
      b = { functionId, runtime, invocations: 0, errors: 0 };
      this.buckets.set(key, b);
    }
    return b;
  }

  get pendingSeries(): number {
    return this.buckets.size;
  }

  async flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    this.flushing = this.send().finally(() => (this.flushing = undefined));
    return this.flushing;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    clearInterval(this.sampler);
    await this.flush();
    this.client.destroy();
  }

  private async send(): Promise<void> {
    if (this.buckets.size === 0 && this.notRun.size === 0 && !this.concurrency) return;
    const buckets = [...this.buckets.values()];
    const notRun = [...this.notRun];
    this.buckets = new Map();
    this.notRun = new Map();
    if (this.dropped > 0) {
      this.opts.log.warn({ tag: 'CLOUDWATCH', dropped: this.dropped, maxSeries: this.opts.maxSeries ?? DEFAULT_MAX_SERIES }, 'more functions ran in this flush than NANOGRID_CLOUDWATCH_MAX_SERIES: the figures of the rest are dropped');
      this.dropped = 0;
    }
    const now = new Date();
    const datums: MetricDatum[] = [];
    if (this.concurrency) {
      // Per worker: undimensioned, the workers' per-second samples would merge into one
      // meaningless series. The fleet's is their sum (docs/operations.md: SEARCH and SUM).
      const dims = this.opts.workerId ? [{ Name: 'WorkerId', Value: this.opts.workerId }] : undefined;
      datums.push({ MetricName: 'ConcurrentExecutions', Unit: StandardUnit.Count, Dimensions: dims, Timestamp: now, StatisticValues: stat(this.concurrency) });
      this.concurrency = undefined;
    }
    for (const [reason, n] of notRun) {
      datums.push({ MetricName: 'FailedBeforeRun', Unit: StandardUnit.Count, Dimensions: [{ Name: 'Reason', Value: reason }], Timestamp: now, Value: n });
    }
    for (const b of buckets) {
      const dims = [
        { Name: 'FunctionId', Value: b.functionId },
        { Name: 'Runtime', Value: b.runtime },
      ];
      if (b.peak) datums.push({ MetricName: 'PeakMemoryBytes', Unit: StandardUnit.Bytes, Dimensions: dims, Timestamp: now, StatisticValues: stat(b.peak) });
      if (b.duration) {
        // Duration is Lambda's name; DurationMillis the original's, kept for its dashboards.
        datums.push({ MetricName: 'Duration', Unit: StandardUnit.Milliseconds, Dimensions: dims, Timestamp: now, StatisticValues: stat(b.duration) });
        datums.push({ MetricName: 'DurationMillis', Unit: StandardUnit.Milliseconds, Dimensions: dims, Timestamp: now, StatisticValues: stat(b.duration) });
      }
      datums.push({ MetricName: 'Invocations', Unit: StandardUnit.Count, Dimensions: dims, Timestamp: now, Value: b.invocations });
      datums.push({ MetricName: 'Errors', Unit: StandardUnit.Count, Dimensions: dims, Timestamp: now, Value: b.errors });
    }
    for (let i = 0; i < datums.length; i += MAX_DATUMS) {
      const chunk = datums.slice(i, i + MAX_DATUMS);
      try {
        await this.client.send(new PutMetricDataCommand({ Namespace: this.opts.namespace, MetricData: chunk }), {
          abortSignal: AbortSignal.timeout(this.opts.timeoutMs),
        });
        this.opts.log.debug({ tag: 'CLOUDWATCH', datums: chunk.length }, 'metrics sent');
      } catch (err) {
        this.opts.events?.emit('sinkFailure', 'cloudwatch', 'put_metric_data');
        this.opts.log.warn({ tag: 'CLOUDWATCH', err, datums: chunk.length }, 'PutMetricData failed; these figures are dropped');
      }
    }
  }
}

function add(s: Stat | undefined, v: number): Stat {
  if (!s) return { count: 1, sum: v, min: v, max: v };
  return { count: s.count + 1, sum: s.sum + v, min: Math.min(s.min, v), max: Math.max(s.max, v) };
}

const stat = (s: Stat) => ({ SampleCount: s.count, Sum: s.sum, Minimum: s.min, Maximum: s.max });
