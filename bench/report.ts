// The bench's report: its shape, its markdown, and the facts about the machine and commit.
import type Docker from 'dockerode';
import { execSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import type { ThroughputRun } from './agentBench.js';
import { coldCurveTable, type ColdCurveCell } from './coldCurve.js';
import { anatomySplitLines, anatomyTable, type AnatomyRun } from './anatomy.js';
import type { CostRun } from './cost.js';
import type { ContainerSideRun } from './containerSide.js';
import { summarize, type Summary } from './stats.js';

export interface Report {
  mode: 'quick' | 'full';
  startedAt: string;
  durationSeconds: number;
  machine: Record<string, unknown>;
  commit: string;
  latency: Record<string, Summary>;
  startKinds: Record<string, Record<string, number>>;
  throughput: Array<Omit<ThroughputRun, 'e2e'> & { e2e: Summary }>;
  /** The same cells with python in gVisor (runsc), pool 8. */
  gvisorThroughput: Array<Omit<ThroughputRun, 'e2e'> & { e2e: Summary }>;
  stage4Pool: { size: number; invocations: number; perSecond: number };
  rssMb: { idle: number; afterThroughput: number };
  summary: string[];
  coldCurve: ColdCurveCell[];
  /** The anatomy of a cold start per OCI runtime (and why one could not be measured). */
  anatomy: AnatomyRun[];
  anatomyRefused: Record<string, string>;
  ratios: Record<string, number>;
  overheadOverFloorMs: Record<string, number>;
  cost: CostRun[];
  containerSide: ContainerSideRun;
}


export function markdown(r: Report, ccCapacity: number): string {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '-');
  const lines: string[] = [];
  lines.push(`\n## NanoGrid bench (${r.mode}), ${r.startedAt}, commit ${r.commit}, ${r.durationSeconds} s`);
  lines.push(`Machine: ${r.machine.cpus} x ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, kernel ${r.machine.kernel}, Docker ${r.machine.docker}, Node ${r.machine.node}, cgroup v${r.machine.cgroup}\n`);
  lines.push('### Latency (ms)\n');
  lines.push('| cell | n | p50 | p95 | p99 |');
  lines.push('|---|---:|---:|---:|---:|');
  for (const [k, s] of Object.entries(r.latency)) lines.push(`| ${k} | ${s.n} | ${f(s.p50)} | ${f(s.p95)} | ${f(s.p99)} |`);
  lines.push('\n"inside": pool acquire to result ready in the agent; "end to end": SQS send to result heard on Redis.\n');
  lines.push('### Summary\n');
  for (const l of r.summary) lines.push(l);
  lines.push(`\nThe original stage 4 path by a pool of ${r.stage4Pool.size} containers: ${f(r.stage4Pool.perSecond)} invocations/s (trivial python, ${r.stage4Pool.invocations} invocations).`);
  lines.push('Agent RSS: the bench process (the agent, the embedded fauxqs and the client) after a GC, with an idle pool-8 agent, and right after the last throughput cell.\n');
  lines.push('### Ratios (p50, same run)\n');
  for (const [k, v] of Object.entries(r.ratios)) lines.push(`- ${k}: **${f(v)}x**`);
  lines.push('\n### Agent overhead over the floor (inside p50 minus container step + runner round trip + own run time), ms\n');
  for (const [k, v] of Object.entries(r.overheadOverFloorMs)) lines.push(`- ${k}: ${f(v)}`);
  lines.push('\n### Throughput (full path: SQS, S3, pool, Docker, Redis; warm steady state)\n');
  lines.push('| function | pool size | invocations | per second | end to end p50 | p99 |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  for (const t of r.throughput) lines.push(`| ${t.fn} | ${t.poolSize} | ${t.invocations} | ${f(t.perSecond)} | ${f(t.e2e.p50)} | ${f(t.e2e.p99)} |`);
  for (const t of r.gvisorThroughput) lines.push(`| ${t.fn}, gVisor | ${t.poolSize} | ${t.invocations} | ${f(t.perSecond)} | ${f(t.e2e.p50)} | ${f(t.e2e.p99)} |`);
  lines.push(`\n### Throughput against cold starts (${ccCapacity} python containers, functions drawn at random, a burst at once; each row the median of its runs)\n`);
  for (const l of coldCurveTable(r.coldCurve)) lines.push(l);
  lines.push('\n### The anatomy of a cold start (one at a time; wall p50 and machine CPU mean per step, ms)\n');
  for (const l of anatomyTable(r.anatomy)) lines.push(l);
  lines.push('\nWhere that CPU went, by process (the bench process holds the agent\'s steps):\n');
  for (const l of anatomySplitLines(r.anatomy)) lines.push(l);
  for (const [rt, why] of Object.entries(r.anatomyRefused)) lines.push(`\n${rt} could not be measured here: ${why}`);
  lines.push('');
  return `${lines.join('\n')}\n`;
}

export async function machine(docker: Docker): Promise<Record<string, unknown>> {
  let dockerVersion = 'unknown';
  try {
    dockerVersion = (await docker.version()).Version;
  } catch {
    // reported as unknown
  }
  return {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    docker: dockerVersion,
    cgroup: existsSync('/sys/fs/cgroup/memory') ? 1 : 2,
  };
}

export function gitCommit(root: string): string {
  try {
    const sha = execSync('git rev-parse --short HEAD', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim();
    const dirty = execSync('git status --porcelain', { cwd: root, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() ? '-dirty' : '';
    return sha + dirty;
  } catch {
    return 'unknown';
  }
}

/**
 * Each latency cell's first sample against the median of the rest: the first invocation
 * after an agent starts should cost what the others do.
 */
export function firstSampleLine(samples: Record<string, number[]>): string {
  let worst = { cell: '-', over: -Infinity };
  for (const [cell, v] of Object.entries(samples)) {
    if (!cell.includes('agent') || v.length < 3) continue;
    const rest = summarize(v.slice(1)).p50;
    const over = v[0]! - rest;
    if (over > worst.over) worst = { cell, over };
  }
  return `- first sample of each agent cell over the median of the rest: at most **${Number.isFinite(worst.over) ? `${Math.round(worst.over)} ms` : '-'}** (${worst.cell})`;
}
