// Throughput against cold starts: a burst of a trivial function drawn at random from 1 to
// 16 distinct functions through 4 python containers, each point the median of repeated
// runs, with the prewarm stock off (the gain is the cheaper cold start itself) and on.
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { unmountUnder } from '../src/container/scratch.js';
import { LocalClient } from '../src/local/client.js';
import { SAMPLES } from '../src/local/samples.js';
import { startLocalStack } from '../src/local/stack.js';
import { burst, quiet, withAgent, type BenchEnv } from './agentBench.js';
import { floorCpuMs, machineCpuNs, type AnatomyRun } from './anatomy.js';
import { cpuSplitMs, daemonPids, splitDelta, SPLIT_PARTS, type CpuSplit } from './procCpu.js';
import { summarize } from './stats.js';

export interface ColdCurvePoint {
  distinctFunctions: number;
  capacity: number;
  /** The reactive stock's ceiling (0: no stock). */
  stockMax: number;
  invocations: number;
  coldFraction: number;
  perSecond: number;
  /** Machine CPU (every task, ms) over the burst, per invocation and per start that needed a new container (cold or stock). */
  cpuMsPerInvocation: number;
  cpuMsPerNewContainer: number;
  /** The same per new container, by process. */
  splitPerNewContainer: CpuSplit;
  e2e: number[];
  kinds: Record<string, number>;
  /** The scratch stock's counters at the end of the burst (made, recycled, discarded...). */
  scratch: Record<string, number>;
}

/** A small seeded PRNG (mulberry32): the same function sequence on every run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function measureColdCurve(env: BenchEnv, capacity: number, distinct: number, key: string, count: number, o: { stockMax?: number; seed?: number } = {}): Promise<ColdCurvePoint> {
  const stockMax = o.stockMax ?? 0;
  const overrides = {
    // With the stock on, its minimum is 1 and a stream of new functions raises it to stockMax.
    NANOGRID_PREWARM: `python=${stockMax > 0 ? 1 : 0},cpp=0`,
    NANOGRID_PREWARM_MAX: `python=${stockMax},cpp=0`,
    NANOGRID_MAX_CONTAINERS: `python=${capacity},cpp=1`,
  };
  return withAgent(env, overrides, async (agent) => {
    await quiet(agent);
    const rand = rng(distinct * 7919 + (o.seed ?? 0));
    const tag = `cc-${distinct}-${Date.now()}`;
    const messages = Array.from({ length: count }, () => ({ functionId: `${tag}-${Math.floor(rand() * distinct)}`, key }));
    const pids = daemonPids();
    const cpu0 = machineCpuNs();
    const split0 = cpuSplitMs(pids, cpu0 / 1e6);
    const r = await burst(env, messages);
    const cpu1 = machineCpuNs();
    const cpuMs = (cpu1 - cpu0) / 1e6;
    const fresh = (r.kinds.cold ?? 0) + (r.kinds.prewarm ?? 0);
    const split = splitDelta(split0, cpuSplitMs(pids, cpu1 / 1e6), fresh || NaN);
    return {
      distinctFunctions: distinct,
      capacity,
      stockMax,
      invocations: count,
      coldFraction: (r.kinds.cold ?? 0) / count,
      perSecond: count / r.seconds,
      cpuMsPerInvocation: cpuMs / count,
      cpuMsPerNewContainer: fresh > 0 ? cpuMs / fresh : NaN,
      splitPerNewContainer: split,
      e2e: r.e2e,
      kinds: r.kinds,
      scratch: { ...agent.status().scratch },
    };
  });
}

/** One point of the curve: the median of its runs (throughput, end-to-end p50 and p99, CPU), each run's rate kept. */
export interface ColdCurveCell {
  distinctFunctions: number;
  capacity: number;
  stockMax: number;
  runs: number;
  invocationsPerRun: number;
  coldFraction: number;
  perSecond: number;
  perSecondRuns: number[];
  e2eP50: number;
  e2eP99: number;
  cpuMsPerInvocation: number;
  cpuMsPerNewContainer: number;
  splitPerNewContainer: CpuSplit;
  kinds: Record<string, number>;
}

const median = (xs: readonly number[]) => summarize([...xs]).p50;

let last: ColdCurvePoint | undefined;

export async function measureColdCurveCell(env: BenchEnv, capacity: number, distinct: number, key: string, count: number, runs: number, stockMax = 0): Promise<ColdCurveCell> {
  const points: ColdCurvePoint[] = [];
  for (let i = 0; i < runs; i++) points.push((last = await measureColdCurve(env, capacity, distinct, key, count, { stockMax, seed: i })));
  const kinds: Record<string, number> = {};
  for (const p of points) for (const [k, v] of Object.entries(p.kinds)) kinds[k] = (kinds[k] ?? 0) + v;
  return {
    distinctFunctions: distinct,
    capacity,
    stockMax,
    runs,
    invocationsPerRun: count,
    coldFraction: median(points.map((p) => p.coldFraction)),
    perSecond: median(points.map((p) => p.perSecond)),
    perSecondRuns: points.map((p) => p.perSecond),
    e2eP50: median(points.map((p) => summarize(p.e2e).p50)),
    e2eP99: median(points.map((p) => summarize(p.e2e).p99)),
    cpuMsPerInvocation: median(points.map((p) => p.cpuMsPerInvocation)),
    cpuMsPerNewContainer: median(points.map((p) => p.cpuMsPerNewContainer)),
    splitPerNewContainer: Object.fromEntries(SPLIT_PARTS.map((k) => [k, median(points.map((p) => p.splitPerNewContainer[k]))])) as CpuSplit,
    kinds,
  };
}

export function coldCurveTable(cells: readonly ColdCurveCell[]): string[] {
  const f = (v: number) => (Number.isFinite(v) ? v.toFixed(1) : '-');
  const lines = [
    '| distinct functions | x capacity | stock (max) | runs x n | cold fraction | per second (median; each run) | end to end p50 | p99 | machine CPU per invocation / per new container (ms) |',
    '|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const c of cells) {
    lines.push(
      `| ${c.distinctFunctions} | ${c.distinctFunctions / c.capacity} | ${c.stockMax || 'off'} | ${c.runs} x ${c.invocationsPerRun} | ${(c.coldFraction * 100).toFixed(0)}% | ${f(c.perSecond)} (${c.perSecondRuns.map((x) => x.toFixed(1)).join(', ')}) | ${f(c.e2eP50)} | ${f(c.e2eP99)} | ${f(c.cpuMsPerInvocation)} / ${f(c.cpuMsPerNewContainer)} |`,
    );
  }
  lines.push('', `| distinct functions | stock (max) | per new container: ${SPLIT_PARTS.join(' | ')} (ms) | warm runs per new container |`, `|---:|---:|${SPLIT_PARTS.map(() => '---:').join('|')}|---:|`);
  for (const c of cells) {
    const fresh = (c.kinds.cold ?? 0) + (c.kinds.prewarm ?? 0);
    lines.push(`| ${c.distinctFunctions} | ${c.stockMax || 'off'} | ${SPLIT_PARTS.map((k) => f(c.splitPerNewContainer[k])).join(' | ')} | ${fresh ? ((c.kinds.warm ?? 0) / fresh).toFixed(2) : '-'} |`);
  }
  return lines;
}

/** The summary lines: 4x capacity with the stock off and on, and machine CPU per new container beside the engine's floor. */
export function coldCurveSummary(cells: readonly ColdCurveCell[], anatomy: readonly AnatomyRun[]): string[] {
  const at = (x: number, stock: boolean) => cells.find((c) => c.distinctFunctions === x * c.capacity && (c.stockMax > 0) === stock);
  const off = at(4, false);
  const on = at(4, true);
  const floor = anatomy.find((a) => a.ociRuntime === 'runc') ?? anatomy[0];
  const lines: string[] = [];
  if (off) {
    lines.push(
      `- cold curve, 4x capacity (${off.distinctFunctions} functions on ${off.capacity} containers, ${off.runs} x ${off.invocationsPerRun}): stock off **${off.perSecond.toFixed(1)}/s** (each run ${off.perSecondRuns.map((x) => x.toFixed(1)).join(', ')}), end to end p50 ${off.e2eP50.toFixed(0)} ms, ${(off.coldFraction * 100).toFixed(0)}% cold` +
        (on ? `; stock on (max ${on.stockMax}) **${on.perSecond.toFixed(1)}/s**, p50 ${on.e2eP50.toFixed(0)} ms, ${(on.coldFraction * 100).toFixed(0)}% cold, ${(((on.kinds.prewarm ?? 0) / (on.runs * on.invocationsPerRun)) * 100).toFixed(0)}% from the stock` : ''),
    );
    lines.push(
      `- machine CPU per new container at 4x, stock off (the whole burst's CPU over its cold starts, warm runs and the queue included): **${off.cpuMsPerNewContainer.toFixed(0)} ms**` +
        (floor ? `; the engine's floor (anatomy, ${floor.ociRuntime}) ${floorCpuMs(floor).toFixed(0)} ms, so **${(off.cpuMsPerNewContainer - floorCpuMs(floor)).toFixed(0)} ms** over it; 2 cores over that floor allow at most ${((2 * 1000) / floorCpuMs(floor)).toFixed(1)} cold starts/s` : ''),
    );
  }
  return lines;
}

// Run alone: `node dist/bench/coldCurve.js [distinct functions] [n] [runs] [stock max]` (4 containers; default 16 60 1 0).
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [distinct = 16, n = 60, runs = 1, stockMax = 0] = process.argv.slice(2).map(Number);
  const progress = (m: string) => process.stderr.write(`[cold curve] ${m}\n`);
  const scratch = await mkdtemp(join(tmpdir(), 'nanogrid-coldcurve-'));
  const stack = await startLocalStack();
  const client = new LocalClient({ ...stack });
  try {
    await client.connect();
    const env: BenchEnv = { stack, client, workRoot: join(scratch, 'work'), logFile: join(scratch, 'agent.log'), progress };
    await mkdir(env.workRoot, { recursive: true });
    await client.uploadZip('bench/python-hello.zip', SAMPLES.pythonHello);
    const cell = await measureColdCurveCell(env, 4, distinct, 'bench/python-hello.zip', n, runs, stockMax);
    process.stdout.write(`${coldCurveTable([cell]).join('\n')}\n`);
    process.stdout.write(`scratch stock of the last run: ${JSON.stringify(last?.scratch)}\n`);
  } finally {
    client.close();
    await stack.stop();
    await unmountUnder(scratch, 10_000).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
  }
}
