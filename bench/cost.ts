// The cost of one warm invocation in CPU time, apart by process: the agent, the queue
// server (fauxqs for SQS and S3), Redis, the sending client, the containers (their cgroups)
// and the whole machine, over thousands of invocations in steady state. CPU time, not
// latency: it is what bounds throughput on a loaded machine and it is far less noisy.
import Docker from 'dockerode';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentProcess } from '../src/local/agentProcess.js';
import { LocalClient } from '../src/local/client.js';
import { SAMPLES } from '../src/local/samples.js';
import { sleep, waitUntil } from '../src/core/timeout.js';
import { feed } from './feed.js';
import { HeapProbe, inspectorUrl } from './inspect.js';
import { childrenOf, commOf, containersCpuMs, machineBusyMs, processCpuMs, processRssMb } from './procCpu.js';
import { measureContainerSide } from './containerSide.js';
import { listAgentContainers } from '../src/pool/leftovers.js';
import { unmountUnder } from '../src/container/scratch.js';

import { waitForStackFile, type StackAddress } from '../src/local/stackFile.js';

export const COST_AGENT = 'bench-cost';

export interface CostRun {
  /** "apart": the queue server in a process of its own, as in production; "in process": in the agent's (the embedded local stack). */
  setup: 'apart' | 'in process';
  poolSize: number;
  invocations: number;
  seconds: number;
  perSecond: number;
  /** CPU ms per invocation. */
  perInvocation: { agent: number; queueServer: number; redis: number; client: number; containers: number; machine: number; rest: number };
  agentRssMb: { idle: number; after: number };
  /** The agent's JavaScript heap (MB) after a full collection, when the window opened and when it closed (queue server apart only). */
  agentHeapMb: { open: number; close: number };
  /** Requests per invocation the agent sent, by SQS operation and code cache event (from its /metrics). */
  callsPerInvocation: Record<string, number>;
}

/** The agent's counters that say how many calls an invocation costs. */
async function agentCalls(port: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) })).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^nanogrid_(sqs_requests_total\{op|code_cache_total\{event)="([^"]+)"\} (\S+)$/gm)) out[`${m[1]!.startsWith('sqs') ? 'sqs' : 'code'} ${m[2]}`] = Number(m[3]);
  return out;
}

function compiled(rel: string): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  // Under dist/bench when compiled; under bench/ (tsx, tap) otherwise.
  return here.includes('/dist/') ? join(here, rel) : join(here, '..', 'dist', 'bench', rel);
}

/** Reads the first line of a child's stdout as JSON. */
function firstLine<T>(child: ChildProcess, what: string, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${what}: no address within ${timeoutMs} ms: ${err}`)), timeoutMs);
    child.stderr?.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-2000)));
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf.slice(0, nl)) as T);
      } catch (e) {
        reject(new Error(`${what}: ${(e as Error).message}: ${buf.slice(0, 200)}`));
      }
    });
    child.once('exit', (code) => reject(new Error(`${what} exited (${code}): ${err}`)));
  });
}

async function stopChild(child: ChildProcess | undefined, ms = 15_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(ms)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

export interface CostOptions {
  docker: Docker;
  progress: (msg: string) => void;
  poolSize?: number;
  /** Results to wait for before measuring (warm-up), and results measured. */
  warmup?: number;
  measured?: number;
  /** Messages kept in the queue ahead of the pool. */
  inFlight?: number;
  env?: Record<string, string>;
}

/**
 * Trivial python invocations through an agent process at pool `poolSize`, kept fed with
 * `inFlight` messages, timed and CPU-counted over `measured` results after `warmup`.
 */
export async function measureCost(setup: CostRun['setup'], o: CostOptions): Promise<CostRun> {
  const poolSize = o.poolSize ?? 8;
  const warmup = o.warmup ?? 400;
  const measured = o.measured ?? 2000;
  const inFlight = o.inFlight ?? 6 * poolSize;
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-cost-'));
  const workRoot = join(dir, 'work');
  await mkdir(workRoot, { recursive: true });
  let stackChild: ChildProcess | undefined;
  let agentChild: ChildProcess | undefined;
  let agent: AgentProcess | undefined;
  let client: LocalClient | undefined;
  let probe: HeapProbe | undefined;
  const agentEnv = {
    NANOGRID_AGENT_ID: COST_AGENT,
    NANOGRID_PREWARM: `python=${poolSize},cpp=0`,
    NANOGRID_MAX_CONTAINERS: `python=${poolSize},cpp=1`,
    // The runtimes of the earlier reference runs: a node pool would add 2 slots of intake.
    NANOGRID_RUNTIMES: 'python,cpp',
    NANOGRID_WORK_ROOT: workRoot,
    LOG_LEVEL: 'info',
    // Short long polls: stopping waits for the one in flight (under load polls return at once).
    NANOGRID_RECEIVE_WAIT_S: '2',
    ...o.env,
  };
  try {
    let address: StackAddress & { pid?: number; redisPid?: number };
    let agentPid: number;
    const heap = { open: NaN, close: NaN };
    let httpPort: number;
    let queuePid: number;
    let redisPid: number | undefined;
    if (setup === 'apart') {
      stackChild = spawn(process.execPath, [compiled('stackServer.js')], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
      address = await firstLine(stackChild, 'the stack server');
      queuePid = stackChild.pid!;
      redisPid = address.redisPid;
      // The inspector on loopback: the heap after a full collection, at each edge of the window.
      agent = new AgentProcess({ stack: address, agentId: COST_AGENT, workRoot, env: { ...agentEnv, NODE_OPTIONS: `${(agentEnv as Record<string, string | undefined>).NODE_OPTIONS ?? process.env.NODE_OPTIONS ?? ''} --inspect=127.0.0.1:0`.trim() } });
      httpPort = await agent.started();
      const url = inspectorUrl(agent.lines);
      probe = url ? await HeapProbe.connect(url) : undefined;
      agentPid = agent.pid!;
    } else {
      // The agent's own local mode: the embedded stack in its process.
      const stackFile = join(dir, 'stack.json');
      agentChild = spawn(process.execPath, [compiled('../src/main.js')], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !['SQS_QUEUE_URL', 'REDIS_URL', 'AWS_ENDPOINT_URL'].includes(k))),
          ...agentEnv,
          NANOGRID_LOCAL: '1',
          NANOGRID_LOCAL_PORT: '0',
          NANOGRID_LOCAL_STACK_FILE: stackFile,
          NANOGRID_CLOUDWATCH: 'off',
          HTTP_PORT: '0',
          HTTP_HOST: '127.0.0.1',
          AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        },
      });
      let out = '';
      agentChild.stdout!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-100_000)));
      agentChild.stderr!.on('data', (d: Buffer) => (out = (out + d.toString()).slice(-100_000)));
      await waitUntil('the local agent started', () => {
        if (agentChild!.exitCode !== null) throw new Error(`the local agent exited: ${out.slice(-2000)}`);
        return out.includes('"agent started"');
      }, { timeoutMs: 90_000, intervalMs: 50 });
      httpPort = Number(/"httpPort":(\d+)/.exec(out)?.[1]);
      // The agent writes its stack file just after it logs its start.
      address = await waitForStackFile(stackFile, 30_000, () => undefined);
      agentPid = agentChild.pid!;
      queuePid = agentPid;
      redisPid = childrenOf(agentPid).find((p) => commOf(p).startsWith('redis-server'));
    }
    client = new LocalClient({ ...address });
    await client.connect();
    await client.uploadZip('bench/python-hello.zip', SAMPLES.pythonHello);

    let marks: Awaited<ReturnType<typeof snap>> | undefined;
    let end: Awaited<ReturnType<typeof snap>> | undefined;
    const snap = async () => ({
      t: performance.now(),
      agent: processCpuMs(agentPid),
      queue: setup === 'apart' ? processCpuMs(queuePid) : 0,
      redis: processCpuMs(redisPid),
      client: (process.cpuUsage().user + process.cpuUsage().system) / 1000,
      machine: machineBusyMs(),
      containers: await containersCpuMs(o.docker, COST_AGENT),
      calls: await agentCalls(httpPort),
    });
    const idleRss = processRssMb(agentPid);
    const run = await feed({
      client,
      message: () => ({ functionId: 'cost-trivial', runtime: 'python', s3Bucket: address.bucket, s3Key: 'bench/python-hello.zip', timeoutMs: 60_000, memoryMb: 128 }),
      warmup,
      measured,
      inFlight,
      onWindow: async (edge) => {
        if (edge === 'open') marks = await snap();
        else end = await snap();
        // After the CPU counters: the collections are not the invocations' cost.
        if (probe) heap[edge] = await probe.heapMbAfterGc();
      },
      progress: (done, total) => o.progress(`cost (${setup}): ${done}/${total} results`),
    });
    if (run.failed > 0) throw new Error(`cost cell: ${run.failed} invocations failed`);
    const a = marks!;
    const b = end!;
    const per = (k: 'agent' | 'queue' | 'redis' | 'client' | 'machine' | 'containers') => (b[k] - a[k]) / measured;
    const seconds = (b.t - a.t) / 1000;
    const p = { agent: per('agent'), queueServer: per('queue'), redis: per('redis'), client: per('client'), containers: per('containers'), machine: per('machine'), rest: 0 };
    p.rest = p.machine - p.agent - p.queueServer - p.redis - p.client - p.containers;
    const callsPerInvocation = Object.fromEntries(
      Object.entries(b.calls).map(([k, v]) => [k, Math.round(((v - (a.calls[k] ?? 0)) / measured) * 1000) / 1000]),
    );
    await sleep(500);
    return { setup, poolSize, invocations: measured, seconds, perSecond: measured / seconds, perInvocation: p, agentRssMb: { idle: idleRss, after: processRssMb(agentPid) }, agentHeapMb: heap, callsPerInvocation };
  } finally {
    // The agent first: nothing before it may throw and leave it running with its containers.
    if (agent) {
      agent.signal('SIGTERM');
      await Promise.race([agent.exited, sleep(20_000)]);
      agent.signal('SIGKILL');
    }
    await stopChild(agentChild, 20_000);
    try {
      probe?.close();
      client?.close();
    } catch {
      // closing a connection the agent's exit already broke
    }
    await stopChild(stackChild);
    const left = await listAgentContainers(o.docker, COST_AGENT).catch(() => []);
    await Promise.all(left.map((c) => o.docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
    await unmountUnder(dir, 10_000).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

/** The summary lines, in the bench's fixed form. */
export function costSummary(runs: CostRun[]): string[] {
  const f = (v: number, d = 2) => (Number.isFinite(v) ? v.toFixed(d) : '-');
  const lines: string[] = [];
  for (const r of runs) {
    const p = r.perInvocation;
    lines.push(
      `- cost per warm trivial invocation, pool ${r.poolSize}, queue server ${r.setup === 'apart' ? 'in its own process' : 'in the agent process'} (CPU ms): agent **${f(p.agent)}**, containers ${f(p.containers)}, queue server ${f(p.queueServer)}, Redis ${f(p.redis)}, client ${f(p.client)}, rest of the machine ${f(p.rest)}; machine **${f(p.machine)}**; throughput **${f(r.perSecond, 0)}/s** (${r.invocations} after warm-up)`,
    );
  }
  const apart = runs.find((r) => r.setup === 'apart');
  if (apart) {
    const p = apart.perInvocation;
    const own = p.machine - p.queueServer - p.client;
    lines.push(`- machine CPU per invocation less the queue server and the client: **${f(own)} ms**; with a remote queue that is **${f((2 * 1000) / own, 0)}/s** on 2 cores`);
    const m = apart.agentRssMb;
    lines.push(
      `- agent process memory across the cost cell: RSS idle ${f(m.idle, 0)} MB, after ${f(m.after, 0)} MB (**${f(m.after / m.idle, 2)}x**); JavaScript heap after a full GC ${f(apart.agentHeapMb.open, 1)} MB at the window's start, ${f(apart.agentHeapMb.close, 1)} MB at its end`,
    );
  }
  return lines;
}

// Run alone: `node dist/bench/cost.js [apart|in-process|both|container] [measured]`.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const which = process.argv[2] ?? 'apart';
  const measured = Number(process.argv[3] ?? 2000);
  const docker = new Docker();
  const progress = (m: string) => process.stderr.write(`[cost] ${m}\n`);
  if (which === 'container') {
    const workRoot = await mkdtemp(join(tmpdir(), 'nanogrid-cside-'));
    try {
      process.stdout.write(`${JSON.stringify(await measureContainerSide({ docker, image: process.env.NANOGRID_IMAGE_PYTHON ?? 'nanogrid/python:local', runs: measured, workRoot, progress }))}\n`);
    } finally {
      await rm(workRoot, { recursive: true, force: true });
    }
    process.exit(0);
  }
  const runs: CostRun[] = [];
  for (const setup of which === 'both' ? (['apart', 'in process'] as const) : which === 'in-process' ? (['in process'] as const) : (['apart'] as const)) {
    runs.push(await measureCost(setup, { docker, progress, measured }));
  }
  process.stdout.write(`${JSON.stringify(runs, null, 1)}\n${costSummary(runs).join('\n')}\n`);
}
