import type { Result } from '../core/result.js';

/** What the CLI prints: JSON with --json, else a summary for a person. */
export interface Printer {
  json: boolean;
  out: (text: string) => void;
}

export function printValue(p: Printer, v: unknown, summary: () => string): void {
  p.out(p.json ? `${JSON.stringify(v, null, 2)}\n` : summary());
}

const mb = (b: number | null) => (b === null ? '?' : `${(b / (1 << 20)).toFixed(1)} MB`);

/** A result in a few lines: status, times, memory, the streams, the advice. */
export function resultSummary(r: Result): string {
  const lines = [
    `${r.status}${r.reason !== 'OK' ? ` (${r.reason})` : ''}  exit ${r.exitCode}  ${r.runtime}  ${r.startKind ?? 'not started'}  ${r.requestId}`,
    `  run ${r.durationMillis} ms, ${r.timings.totalMs} ms from receive to result${r.timings.queuedMs !== undefined ? `, ${r.timings.queuedMs} ms queued` : ''}; peak ${mb(r.peakMemoryBytes)} of ${r.memoryMb} MB; attempt ${r.attempt} on ${r.workerId}`,
  ];
  if (r.handler) {
    const h = r.handler;
    lines.push(`  handler: ${h.initialised ? `initialised (${h.initDurationMs ?? '?'} ms)` : 'warm'}; ${h.error ? `raised ${h.error.errorType}: ${h.error.errorMessage}` : `returned ${h.returnValueDropped ? '(left out: too large for the result)' : JSON.stringify(h.returnValue)}`}`);
  }
  const stream = (name: string, text: string, cut: boolean) => (text ? [`--- ${name}${cut ? ' (truncated)' : ''}`, text.replace(/\n$/, '')] : []);
  lines.push(...stream('stdout', r.stdout, r.stdoutTruncated), ...stream('stderr', r.stderr, r.stderrTruncated));
  for (const o of r.outputs) lines.push(`  output ${o.key} (${o.bytes} B)`);
  for (const e of r.outputErrors) lines.push(`  output not stored: ${e}`);
  if (r.optimizationTip) lines.push(`  tip: ${r.optimizationTip}`);
  return `${lines.join('\n')}\n`;
}

/** A job's state while it has no result (Redis's job hash). */
export function jobSummary(requestId: string, job: Record<string, string>): string {
  const parts = [`${requestId} is ${job.state ?? 'unknown'}`];
  if (job.workerId) parts.push(`on ${job.workerId}`);
  if (job.attempt) parts.push(`attempt ${job.attempt}`);
  if (job.lastReason) parts.push(`last failure ${job.lastReason}`);
  if (job.updatedAt) parts.push(`updated ${job.updatedAt}`);
  return `${parts.join(', ')}; no result yet\n`;
}

interface StatusLike {
  agentId?: string;
  version?: string;
  uptimeSeconds?: number;
  phase?: string;
  pools?: Array<{ runtime: string; containers?: Record<string, number>; maxContainers?: number }>;
  drain?: unknown;
  memory?: { budgetMb: number; inUseMb: number; waiting: number };
  results?: { outbox: number };
}

export function statusSummary(s: StatusLike): string {
  const lines = [`${s.agentId ?? '?'}  ${s.version ?? ''}  ${s.phase ?? ''}  up ${s.uptimeSeconds ?? '?'} s${s.drain ? '  DRAINING' : ''}`];
  for (const p of s.pools ?? []) {
    const c = Object.entries(p.containers ?? {})
      .filter(([, n]) => n > 0)
      .map(([k, n]) => `${n} ${k}`)
      .join(', ');
    lines.push(`  ${p.runtime.padEnd(8)} ${c || 'no containers'}${p.maxContainers ? ` (at most ${p.maxContainers})` : ''}`);
  }
  if (s.memory) lines.push(`  memory ${s.memory.inUseMb} of ${s.memory.budgetMb} MB in use, ${s.memory.waiting} waiting`);
  if (s.results) lines.push(`  results waiting for Redis: ${s.results.outbox}`);
  return `${lines.join('\n')}\n`;
}
