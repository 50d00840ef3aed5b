import type { Emitter } from '../core/events.js';
import type { Invocation } from '../core/invocation.js';
import type { InvocationRunner, RunHooks } from '../core/ports.js';
import { InvocationError } from '../core/reasons.js';
import type { Result } from '../core/result.js';
import type { Runtime } from '../core/runtimes.js';
import type { Logger } from '../core/log.js';
import { advise, DEFAULT_POLICY, type Advice, type TunerPolicy } from './autoTuner.js';
import type { CodeCache } from '../code/codeCache.js';
import type { InputFetcher } from './inputFetch.js';
import type { ArchivePort, OutputPort, PeakHistory } from './ports.js';
import type { LeaseSource } from '../pool/lease.js';
import { runOnLease, type RunDeps, type RunReport } from './runOnLease.js';
import type { BuildCache } from '../build/buildCache.js';

export interface InvokerOptions {
  pools: ReadonlyMap<Runtime, LeaseSource>;
  commands: ReadonlyMap<Runtime, string>;
  code: CodeCache;
  /** Added to every function's environment (AI_ENDPOINT). */
  functionEnv?: string[];
  inputs: InputFetcher;
  outputs: OutputPort | undefined;
  /** Where the code of versions that succeeded is copied (GCP_BUCKET_NAME). */
  archive: ArchivePort | undefined;
  history: PeakHistory;
  tipLanguage: TunerPolicy['language'];
  workerId: string;
  /** Every result of a run that happened, for metrics. */
  events?: Emitter<'ran'>;
  /** The build cache and the runtimes whose compiler calls go through it. */
  build?: { cache: BuildCache; runtimes: ReadonlySet<Runtime>; env: string[] };
}

/**
 * Runs an invocation on its runtime's pool and makes its Result: the run's report, the
 * right-sizing advice from the function's recent peaks, and the timings.
 */
export class Invoker implements InvocationRunner {
  constructor(private readonly opts: InvokerOptions) {}

  async run(inv: Invocation, log: Logger, hooks: RunHooks): Promise<Result> {
    const pool = this.opts.pools.get(inv.runtime);
    const command = this.opts.commands.get(inv.runtime);
    // Parsing accepted a runtime that has no pool: configuration, not the message, is off.
    if (!pool || command === undefined) throw new InvocationError('RUNTIME_NOT_SUPPORTED', 'permanent', `no pool for runtime ${inv.runtime}`);
    const build = this.opts.build;
    const deps: RunDeps = {
      code: this.opts.code,
      command,
      env: this.opts.functionEnv ?? [],
      inputs: this.opts.inputs,
      ...(this.opts.outputs ? { outputs: this.opts.outputs } : {}),
      ...(build?.runtimes.has(inv.runtime) ? { build: { cache: build.cache, env: build.env } } : {}),
    };
    const report = await runOnLease(inv, pool, deps, log, hooks);
    const advice = await this.advise(inv, report, log);
    const result = this.resultOf(inv, report, advice);
    // A version that ran successfully is worth keeping elsewhere: queued, never awaited.
    if (result.success && inv.code.kind === 's3' && report.codeEtag) this.opts.archive?.offer({ bucket: inv.code.bucket, key: inv.code.key, etag: report.codeEtag });
    this.opts.events?.emit('ran', result, report.startKind);
    return result;
  }

  /** Advice never fails a run: without it the result carries no tip. */
  private async advise(inv: Invocation, report: RunReport, log: Logger): Promise<Advice | undefined> {
    const peak = report.memory.peakBytes;
    try {
      // Keyed on the function and its code: another sender's message under this id cannot skew it.
      const peaks = peak !== null ? await this.opts.history.record(inv.functionKey, peak, log, inv.requestId) : [];
      const advice = advise(
        { peaksBytes: peaks, allocatedMb: inv.memoryMb, oomKilled: report.status === 'OOM' },
        { ...DEFAULT_POLICY, language: this.opts.tipLanguage },
      );
      log.debug(
        { tag: 'AUTO-TUNER', peakMemoryBytes: peak, peakMemoryFileBytes: report.memory.fileBytes ?? null, method: report.memory.method, band: advice.band, recommendedMemoryMb: advice.recommendedMemoryMb, samples: advice.samples },
        advice.tip,
      );
      return advice;
    } catch (err) {
      log.warn({ tag: 'AUTO-TUNER', err }, 'no advice for this run');
      return undefined;
    }
  }

  private resultOf(inv: Invocation, report: RunReport, advice: Advice | undefined): Result {
    return {
      requestId: inv.requestId,
      functionId: inv.functionId,
      codeLocation: inv.codeLocation,
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
      peakMemoryBytes: report.memory.peakBytes,
      peakMemoryMethod: report.memory.method,
      peakMemoryFileBytes: report.memory.fileBytes ?? null,
      recommendedMemoryMb: advice?.recommendedMemoryMb ?? null,
      diskUsedBytes: report.diskUsedBytes,
      outputs: report.outputs,
      outputErrors: report.outputErrors,
      optimizationTip: advice?.tip ?? null,
      memoryMb: inv.memoryMb,
      timings: { ...report.timings, queuedMs: inv.sentAt !== undefined ? Math.max(0, inv.receivedAt - inv.sentAt) : undefined, totalMs: Date.now() - inv.receivedAt },
      attempt: inv.receiveCount,
      workerId: this.opts.workerId,
      finishedAt: new Date().toISOString(),
      ...(report.handler ? { handler: report.handler } : {}),
    };
  }
}
