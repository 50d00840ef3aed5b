// Measurements through the whole agent on the embedded local stack: SQS (fauxqs over
// HTTP) -> S3 -> pool -> Docker -> Redis, with the real SDK clients.
import { pino } from 'pino';
import { Agent } from '../src/agent.js';
import type { LocalClient, ZipFiles } from '../src/local/client.js';
import type { LocalStack } from '../src/local/stack.js';
import type { Result, StartKind } from '../src/core/result.js';
import { waitUntil } from '../src/core/timeout.js';
import { LOCAL_CREDENTIALS, localAgentConfig } from '../src/local/agentConfig.js';
import { createLogger } from '../src/core/log.js';
import { feed } from './feed.js';

export const BENCH_AGENT = 'bench-agent';

export interface BenchEnv {
  stack: LocalStack;
  client: LocalClient;
  workRoot: string;
  logFile: string;
  progress: (msg: string) => void;
}

export async function withAgent<T>(env: BenchEnv, overrides: Record<string, string>, fn: (agent: Agent) => Promise<T>): Promise<T> {
  // Only the node cells run node: another pool's slots would change every other cell's intake.
  const config = localAgentConfig(env.stack, BENCH_AGENT, { NANOGRID_WORK_ROOT: env.workRoot, NANOGRID_SHUTDOWN_GRACE_MS: '10000', NANOGRID_RUNTIMES: 'python,cpp', ...overrides });
  const agent = new Agent({
    config,
    // NANOGRID_BENCH_LOG_LEVEL=debug keeps every line of the bench's agents in the log file, for a diagnosis.
    log: createLogger(process.env.NANOGRID_BENCH_LOG_LEVEL ?? 'warn', pino.destination({ dest: env.logFile, sync: false, append: true })),
    credentials: LOCAL_CREDENTIALS,
  });
  current = agent;
  try {
    await agent.start();
    return await fn(agent);
  } finally {
    await agent.stop();
    current = undefined;
  }
}

/** The agent running now, for the interrupt handler. */
export let current: Agent | undefined;

export async function quiet(agent: Agent, ms = 30_000): Promise<void> {
  await waitUntil('agent quiescent', () => agent.quiescent(), { timeoutMs: ms, intervalMs: 10 });
}

export interface Sample {
  result: Result;
  e2eMs: number;
}

let seq = 0;
export async function invoke(env: BenchEnv, functionId: string, runtime: string, key: string): Promise<Sample> {
  const requestId = `b-${process.pid}-${++seq}`;
  const sentAt = await env.client.send({ requestId, functionId, runtime, s3Bucket: env.stack.bucket, s3Key: key, timeoutMs: 60_000, memoryMb: 256 });
  const result = await env.client.waitForResult(requestId, 120_000);
  const e2eMs = Date.now() - sentAt;
  env.client.forget(requestId);
  if (!result.success) throw new Error(`bench invocation failed: ${result.reason} ${result.stderr.slice(0, 200)}`);
  return { result, e2eMs };
}

export interface KindSamples {
  inside: number[];
  e2e: number[];
  kinds: Record<string, number>;
}

/**
 * Start latency of one start kind, one invocation at a time. cold: an agent with no
 * prewarm and a new function each time; prewarm: a ready generic container each time;
 * warm: the same function again.
 */
export async function measureStartKind(env: BenchEnv, runtime: 'python' | 'cpp' | 'node', kind: StartKind, key: string, n: number, extra: Record<string, string> = {}): Promise<KindSamples> {
  const prewarm = kind === 'prewarm' ? 1 : 0;
  // Idle warm containers count toward capacity and a prewarm container is only replaced
  // while there is room: give the prewarm and cold cells room for every function they
  // create, so that no start also removes an evicted container (the cold-curve cells
  // measure eviction).
  const max = kind === 'warm' ? 3 : n + 2;
  const overrides = {
    NANOGRID_PREWARM: `python=${runtime === 'python' ? prewarm : 0},cpp=${runtime === 'cpp' ? prewarm : 0},node=${runtime === 'node' ? prewarm : 0}`,
    NANOGRID_MAX_CONTAINERS: `python=${max},cpp=${max},node=${max}`,
    NANOGRID_RUNTIMES: runtime === 'node' ? 'python,cpp,node' : 'python,cpp',
    ...extra,
  };
  return withAgent(env, overrides, async (agent) => {
    const out: KindSamples = { inside: [], e2e: [], kinds: {} };
    const tag = `${runtime}-${kind}-${Date.now()}`;
    if (kind === 'warm') await invoke(env, `${tag}-fn`, runtime, key);
    for (let i = 0; i < n; i++) {
      // Measure each start on a quiet pool: creation and removal in the background are
      // not part of the start being measured.
      await quiet(agent);
      if (kind === 'prewarm') await waitUntil('a ready prewarm container', () => agent.status().pools.find((p) => p.runtime === runtime)!.idlePrewarm > 0, { timeoutMs: 30_000, intervalMs: 10 });
      const fn = kind === 'warm' ? `${tag}-fn` : `${tag}-fn-${i}`;
      const s = await invoke(env, fn, runtime, key);
      out.kinds[s.result.startKind ?? 'none'] = (out.kinds[s.result.startKind ?? 'none'] ?? 0) + 1;
      if (s.result.startKind !== kind) continue;
      out.inside.push(s.result.timings.agentMs ?? NaN);
      out.e2e.push(s.e2eMs);
    }
    return out;
  });
}

/**
 * C++ cold starts of a function whose build the cache already keeps: it ran once, its
 * container was removed when idle (1 s), and it starts cold in a new container, no
 * eviction on the way, like the python cold cell.
 */
export async function measureCppColdHit(env: BenchEnv, key: string, n: number): Promise<KindSamples> {
  return withAgent(env, { NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=2', NANOGRID_IDLE_TIMEOUT_MS: '1000' }, async (agent) => {
    const out: KindSamples = { inside: [], e2e: [], kinds: {} };
    const fn = `cpp-coldhit-${Date.now()}`;
    await invoke(env, fn, 'cpp', key);
    const cppContainers = () => Object.values(agent.status().pools.find((p) => p.runtime === 'cpp')!.containers).reduce((a, b) => a + b, 0);
    for (let i = 0; i < n; i++) {
      await waitUntil('the idle cpp container removed', () => cppContainers() === 0, { timeoutMs: 30_000, intervalMs: 20 });
      await quiet(agent);
      const hits = agent.status().build?.hits ?? 0;
      const s = await invoke(env, fn, 'cpp', key);
      out.kinds[s.result.startKind ?? 'none'] = (out.kinds[s.result.startKind ?? 'none'] ?? 0) + 1;
      // Only a cold start the cache served (the hit is counted once the run is over).
      if (s.result.startKind !== 'cold' || (agent.status().build?.hits ?? 0) !== hits + 1) continue;
      out.inside.push(s.result.timings.agentMs ?? NaN);
      out.e2e.push(s.e2eMs);
    }
    return out;
  });
}

export interface ThroughputRun {
  poolSize: number;
  fn: string;
  invocations: number;
  seconds: number;
  perSecond: number;
  e2e: number[];
  kinds: Record<string, number>;
}

/** Sends `count` invocations at once and times them until the last result. */
export async function burst(env: BenchEnv, messages: Array<{ functionId: string; key: string }>): Promise<{ seconds: number; e2e: number[]; kinds: Record<string, number> }> {
  const ids = messages.map(() => `t-${process.pid}-${++seq}`);
  const waits = ids.map((id) => env.client.waitForResult(id, 300_000));
  const t0 = Date.now();
  await env.client.sendBatch(
    messages.map((m, i) => ({ requestId: ids[i], functionId: m.functionId, runtime: 'python', s3Bucket: env.stack.bucket, s3Key: m.key, timeoutMs: 60_000, memoryMb: 256 })),
  );
  const e2e: number[] = [];
  const kinds: Record<string, number> = {};
  await Promise.all(
    waits.map(async (w) => {
      const r = await w;
      e2e.push(Date.now() - t0);
      kinds[r.startKind ?? 'none'] = (kinds[r.startKind ?? 'none'] ?? 0) + 1;
      env.client.forget(r.requestId);
      if (!r.success) throw new Error(`throughput invocation failed: ${r.reason}`);
    }),
  );
  return { seconds: (Date.now() - t0) / 1000, e2e, kinds };
}

/**
 * Throughput in steady state: the pool warmed with the function, then the queue kept fed
 * (a bounded number outstanding, enough for every slot) and `count` results timed after a
 * warm-up of its own, so the figure is the pool's rate, not a burst's ramp and tail.
 */
export async function measureThroughput(env: BenchEnv, poolSize: number, fn: string, key: string, count: number, afterBurst?: () => Promise<void>, extra: Record<string, string> = {}): Promise<ThroughputRun> {
  return withAgent(env, { NANOGRID_PREWARM: `python=${poolSize},cpp=0`, NANOGRID_MAX_CONTAINERS: `python=${poolSize},cpp=1`, ...extra }, async (agent) => {
    const functionId = `tp-${fn.replace(/\W+/g, "")}-${poolSize}-${Date.now()}`;
    // Warm every container with this function first.
    await burst(env, Array.from({ length: poolSize }, () => ({ functionId, key })));
    await quiet(agent);
    const r = await feed({
      client: env.client,
      message: () => ({ functionId, runtime: 'python', s3Bucket: env.stack.bucket, s3Key: key, timeoutMs: 60_000, memoryMb: 256 }),
      warmup: 2 * poolSize + 10,
      measured: count,
      inFlight: 2 * poolSize + 10,
      progress: (done, total) => env.progress(`throughput ${fn} pool ${poolSize}: ${done}/${total}`),
    });
    if (r.failed > 0) throw new Error(`throughput: ${r.failed} invocations failed`);
    await quiet(agent);
    await afterBurst?.();
    return { poolSize, fn, invocations: count, seconds: r.seconds, perSecond: r.perSecond, e2e: r.e2e, kinds: r.kinds };
  });
}

export type { ZipFiles };

/** A CPU hog: four processes spinning for `seconds`. */
export const CPU_HOG = (seconds: number) => ({
  'main.py': `import os, time\nos.fork(); os.fork()\nend = time.time() + ${seconds}\nwhile time.time() < end:\n    pass\n`,
});

export interface CpuShareRun {
  /** End to end, ms. */
  alone: number[];
  beside: number[];
  /** The function's own run time (the runner's clock), ms: what a share of the CPU changes, without the queue's noise. */
  aloneRun: number[];
  besideRun: number[];
}

/**
 * A trivial function's latency alone, then beside a 4-process CPU hog in another
 * container of the same agent (the hog at 1,769 MB: one vCPU earned).
 */
export async function measureCpuShare(env: BenchEnv, n: number, overrides: Record<string, string>, hogKey: string): Promise<CpuShareRun> {
  return withAgent(env, { NANOGRID_PREWARM: 'python=2,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=3,cpp=1', ...overrides }, async (agent) => {
    for (let i = 0; i < 3; i++) await invoke(env, 'cpu-trivial', 'python', 'bench/python-hello.zip');
    // Nothing else going on (the prewarm stock is made): "alone" means alone.
    await quiet(agent);
    await new Promise((r) => setTimeout(r, 500));
    const out: CpuShareRun = { alone: [], beside: [], aloneRun: [], besideRun: [] };
    const sample = async (e2e: number[], run: number[]) => {
      const s = await invoke(env, 'cpu-trivial', 'python', 'bench/python-hello.zip');
      e2e.push(s.e2eMs);
      run.push(s.result.timings.execMs ?? NaN);
    };
    for (let i = 0; i < n; i++) await sample(out.alone, out.aloneRun);
    const hogId = `hog-${process.pid}-${++seq}`;
    await env.client.send({ requestId: hogId, functionId: 'cpu-hog', runtime: 'python', s3Bucket: env.stack.bucket, s3Key: hogKey, timeoutMs: 120_000, memoryMb: 1769 });
    // The hog's four processes are spinning once its container is up.
    await waitUntil('hog running', () => agent.status().supervisor.running > 0, { timeoutMs: 30_000, intervalMs: 20 });
    await new Promise((r) => setTimeout(r, 1000));
    for (let i = 0; i < n; i++) await sample(out.beside, out.besideRun);
    await env.client.waitForResult(hogId, 180_000);
    return out;
  });
}

export const FLEET_AGENTS = ['bench-fleet-1', 'bench-fleet-2', 'bench-fleet-3'];

export interface FleetRun {
  agents: number;
  invocations: number;
  perSecond: number;
}

/**
 * Throughput of `n` agents on one queue (each with 2 python containers, warmed), for a
 * 100 ms function: a batch sent at once, timed from the first send to the last result.
 */
export async function measureFleet(env: BenchEnv, n: number, key: string, count: number): Promise<FleetRun> {
  const agents = FLEET_AGENTS.slice(0, n).map(
    (id) =>
      new Agent({
        config: localAgentConfig(env.stack, id, { NANOGRID_WORK_ROOT: env.workRoot, NANOGRID_PREWARM: 'python=2,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1', NANOGRID_RECEIVE_WAIT_S: '1' }),
        log: createLogger('warn', pino.destination({ dest: env.logFile, sync: false, append: true })),
        credentials: LOCAL_CREDENTIALS,
      }),
  );
  try {
    await Promise.all(agents.map((a) => a.start()));
    // Warm every container with the function first.
    await Promise.all(Array.from({ length: 2 * n }, () => invoke(env, 'fleet', 'python', key)));
    await Promise.all(agents.map((a) => quiet(a)));
    const ids = Array.from({ length: count }, () => `f-${process.pid}-${++seq}`);
    const t0 = performance.now();
    await env.client.sendBatch(ids.map((requestId) => ({ requestId, functionId: 'fleet', runtime: 'python', s3Bucket: env.stack.bucket, s3Key: key, timeoutMs: 60_000, memoryMb: 128 })));
    const results = await Promise.all(ids.map((id) => env.client.waitForResult(id, 300_000)));
    const seconds = (performance.now() - t0) / 1000;
    for (const id of ids) env.client.forget(id);
    const failed = results.filter((r) => !r.success);
    if (failed.length > 0) throw new Error(`fleet bench: ${failed.length} invocations failed (${failed[0]!.reason})`);
    return { agents: n, invocations: count, perSecond: count / seconds };
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
}
