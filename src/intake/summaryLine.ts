import type { Logger } from '../core/log.js';
import type { Reason } from '../core/reasons.js';
import type { Result } from '../core/result.js';

/**
 * The one line per invocation at info or warn (Lambda's REPORT line): for every
 * invocation this worker took, whether it ran or not, with the same fields. The failure's
 * reason is under `reason`, like every FAIL line's.
 */
export function logSummary(log: Logger, s: { result?: Result; ran: boolean; disposition: string; runtime?: string; attempt: number; memoryMb?: number; reason?: Reason; timings?: Record<string, number | undefined> }): void {
  const r = s.result;
  const success = r?.success ?? false;
  log[success ? 'info' : 'warn'](
    {
      tag: success ? 'DONE][OK' : 'DONE][FAIL',
      ran: s.ran,
      disposition: s.disposition,
      runtime: r?.runtime ?? s.runtime,
      attempt: r?.attempt ?? s.attempt,
      status: r?.status ?? 'NOT_RUN',
      reason: r?.reason ?? s.reason,
      exitCode: r?.exitCode ?? null,
      startKind: r?.startKind ?? null,
      memoryMb: r?.memoryMb ?? s.memoryMb,
      durationMillis: r?.durationMillis ?? null,
      peakMemoryBytes: r?.peakMemoryBytes ?? null,
      recommendedMemoryMb: r?.recommendedMemoryMb ?? null,
      timings: s.timings ?? r?.timings,
    },
    'invocation finished',
  );
}
