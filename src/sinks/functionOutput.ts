import type { Result } from '../core/result.js';
import type { LogShipper } from './logShipper.js';

/** Of each stream, what one event carries, in bytes as JSON: two of them and the fields stay under an event's limit. */
export const OUTPUT_EVENT_BYTES = 100 * 1024;

/** The longest head of `s` whose JSON form fits `bytes` (escapes and multi-byte characters counted). */
function head(s: string, bytes: number): string {
  const size = (x: string) => Buffer.byteLength(JSON.stringify(x));
  if (size(s) <= bytes) return s;
  let lo = 0;
  let hi = Math.min(s.length, bytes);
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (size(s.slice(0, mid)) <= bytes) lo = mid;
    else hi = mid - 1;
  }
  return s.slice(0, lo);
}

/**
 * A run's stdout and stderr as one JSON event of the function-output log group (Lambda's
 * per-function log), kept apart from the agent's own lines: a tenant's output is not the
 * operator's log, and has its own retention. Each stream is cut to OUTPUT_EVENT_BYTES, and
 * the event says so; the whole output stays in the result.
 */
export function functionOutputEvent(r: Result): string {
  const stdout = head(r.stdout, OUTPUT_EVENT_BYTES);
  const stderr = head(r.stderr, OUTPUT_EVENT_BYTES);
  return JSON.stringify({
    requestId: r.requestId,
    functionId: r.functionId,
    runtime: r.runtime,
    status: r.status,
    reason: r.reason,
    exitCode: r.exitCode,
    stdout,
    stderr,
    stdoutTruncated: r.stdoutTruncated || stdout.length < r.stdout.length,
    stderrTruncated: r.stderrTruncated || stderr.length < r.stderr.length,
  });
}

export function shipFunctionOutput(shipper: LogShipper, r: Result): void {
  shipper.push(functionOutputEvent(r));
}
