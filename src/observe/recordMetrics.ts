import type { EventBus } from '../core/events.js';
import type { EngineWatch } from '../pool/engineWatch.js';
import type { RuntimePool } from '../pool/runtimePool.js';
import type { Supervisor } from '../intake/supervisor.js';
import type { CloudWatchSink } from '../sinks/cloudwatchSink.js';
import type { Metrics } from './metrics.js';

export interface MetricSources {
  bus: EventBus;
  supervisor: Supervisor;
  pools: Iterable<RuntimePool>;
  engine: EngineWatch;
  /** Absent when CloudWatch is off. */
  cloudwatch?: CloudWatchSink | undefined;
}

/**
 * The one place where what the parts report becomes Prometheus series and CloudWatch
 * figures: the parts emit, this subscribes, and none of them knows the other.
 */
export function recordMetrics(m: Metrics, s: MetricSources): void {
  const { bus, cloudwatch } = s;
  bus.on('code', (event) => m.code.inc({ event }));
  bus.on('sinkFailure', (sink, op) => m.sinkFailures.inc({ sink, op }));
  bus.on('output', (outcome, bytes) => {
    m.outputs.inc({ outcome });
    m.outputBytes.inc({ outcome }, bytes);
  });
  bus.on('archive', (event) => m.archive.inc({ event }));
  bus.on('sqsRequest', (op) => m.sqsRequests.inc({ op }));
  bus.on('sqsError', (op) => m.sqsErrors.inc({ op }));
  bus.on('ran', (r, startKind) => {
    m.invocations.inc({ runtime: r.runtime, status: r.status, start_kind: startKind, reason: r.reason });
    m.runDuration.observe({ runtime: r.runtime, start_kind: startKind }, r.durationMillis / 1000);
    if (r.timings.queuedMs !== undefined) m.queueWait.observe({ runtime: r.runtime }, r.timings.queuedMs / 1000);
    if (r.peakMemoryBytes !== null) m.peakMemory.observe({ runtime: r.runtime, method: r.peakMemoryMethod ?? 'unknown' }, r.peakMemoryBytes);
    cloudwatch?.record(r.functionId, r.runtime, { peakMemoryBytes: r.peakMemoryBytes, durationMillis: r.durationMillis, success: r.success });
  });
  s.supervisor.on('answered', (r) => {
    m.answers.inc({ status: r.status, ran: r.startKind === null ? 'no' : 'yes' });
    // A FAILED answer for an invocation that never ran is an error in CloudWatch too.
    if (r.startKind === null) cloudwatch?.recordNeverRan(r.reason);
  });
  s.supervisor.on('received', (n) => m.received.inc(n));
  s.supervisor.on('disposed', (disposition, reason) => m.dispositions.inc({ disposition, reason }));
  s.supervisor.on('receive_failed', () => m.sqsErrors.inc({ op: 'receive' }));
  for (const pool of s.pools) {
    pool.on('served', (runtime, startKind, acquireMs) => m.startLatency.observe({ runtime, start_kind: startKind }, acquireMs / 1000));
  }
  s.engine.on('down', () => m.engineOutages.inc());
}
