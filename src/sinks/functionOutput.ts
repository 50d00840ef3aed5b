import type { Result } from '../core/result.js';
import type { LogShipper } from './logShipper.js';

/** Of each stream, what one event carries: two of them and the fields stay under an event's limit. */
export const OUTPUT_EVENT_CHARS = 100 * 1024;

/**
 * A run's stdout and stderr as one JSON event of the function-output log group (Lambda's
 * per-function log), kept apart from the agent's own lines: a tenant's output is not the
 * operator's log, and has its own retention. Each stream is cut to OUTPUT_EVENT_CHARS, and
 * the event says so; the whole output stays in the result.
 */
export function functionOutputEvent(r: Result): string {
  const cut = (s: string) => (s.length > OUTPUT_EVENT_CHARS ? s.slice(0, OUTPUT_EVENT_CHARS) : s);
  return JSON.stringify({
    requestId: r.requestId,
    functionId: r.functionId,
    runtime: r.runtime,
    status: r.status,
    reason: r.reason,
    exitCode: r.exitCode,
    stdout: cut(r.stdout),
    stderr: cut(r.stderr),
    stdoutTruncated: r.stdoutTruncated || r.stdout.length > OUTPUT_EVENT_CHARS,
    stderrTruncated: r.stderrTruncated || r.stderr.length > OUTPUT_EVENT_CHARS,
  });
}

export function shipFunctionOutput(shipper: LogShipper, r: Result): void {
  shipper.push(functionOutputEvent(r));
}
