// The cost of one warm invocation in CPU time, apart by process: the agent, the queue
// server (fauxqs for SQS and S3), Redis, the sending client, the containers (their cgroups)
// and the whole machine, over thousands of invocations in steady state. CPU time, not
// latency: it is what bounds throughput on a loaded machine and it is far less noisy.
import Docker from 'dockerode';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AgentProcess } from '../src/local/agentProcess.js';
import { LocalClient } from '../src/local/client.js';
import { SAMPLES } from '../src/local/samples.js';
import type { Result } from '../src/core/result.js';
import { sleep, waitUntil } from '../src/core/timeout.js';
import { readProcCgroups } from '../src/container/cgroupFiles.js';
import { listAgentContainers } from '../src/pool/leftovers.js';
import { unmountUnder } from '../src/container/scratch.js';

export const COST_AGENT = 'bench-cost';
const TICK_MS = 10; // USER_HZ is 100 on Linux (sysconf(_SC_CLK_TCK)): /proc's times are in 10 ms ticks

export interface StackAddress {
  endpoint: string;
  region: string;
  queueUrl: string;
  bucket: string;
  redisUrl: string;
}

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

/** utime + stime of a process, with its waited-for children, in ms (NaN when it is gone). */
export function processCpuMs(pid: number | undefined): number {
  if (!pid) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields from the state (3rd in proc(5)): utime is the 14th, so index 11 here.
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * TICK_MS;
  } catch {
    return NaN;
  }
}

function processRssMb(pid: number | undefined): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Busy CPU time of the whole machine (every CPU, idle and iowait excluded), ms. */
export function machineBusyMs(stat = readFileSync('/proc/stat', 'utf8')): number {
  const f = stat.split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = f;
  return (user + nice + system + irq + softirq + steal) * TICK_MS;
}

/** The children of a process (by /proc/<pid>/task/<tid>/children). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

/** The CPU ms the agent's containers have used so far (their cgroups' counters). */
async function containersCpuMs(docker: Docker, agentId: string): Promise<number> {
  let total = 0;
  for (const c of await listAgentContainers(docker, agentId)) {
    const pid = (await docker.getContainer(c.Id).inspect()).State.Pid;
    const cg = pid ? await readProcCgroups(pid) : null;
    const v1 = cg?.v1('cpuacct');
    if (v1?.path) {
      total += Number(await readFile(join('/sys/fs/cgroup', v1.mount, v1.path, 'cpuacct.usage'), 'utf8')) / 1e6;
    } else if (cg?.v2) {
      const m = /usage_usec (\d+)/.exec(await readFile(join('/sys/fs/cgroup', cg.v2, 'cpu.stat'), 'utf8'));
      total += Number(m?.[1] ?? 0) / 1000;
    }
  }
  return total;
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
  const agentEnv = {
    NANOGRID_AGENT_ID: COST_AGENT,
    NANOGRID_PREWARM: `python=${poolSize},cpp=0`,
    NANOGRID_MAX_CONTAINERS: `python=${poolSize},cpp=1`,
    NANOGRID_WORK_ROOT: workRoot,
    LOG_LEVEL: 'info',
    ...o.env,
  };
  try {
    let address: StackAddress & { pid?: number; redisPid?: number };
    let agentPid: number;
    let httpPort: number;
    let queuePid: number;
    let redisPid: number | undefined;
    if (setup === 'apart') {
      stackChild = spawn(process.execPath, [compiled('stackServer.js')], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' } });
      address = await firstLine(stackChild, 'the stack server');
      queuePid = stackChild.pid!;
      redisPid = address.redisPid;
      agent = new AgentProcess({ stack: address, agentId: COST_AGENT, workRoot, env: agentEnv });
      httpPort = await agent.started();
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
      address = JSON.parse(await readFile(stackFile, 'utf8')) as StackAddress;
      agentPid = agentChild.pid!;
      queuePid = agentPid;
      redisPid = childrenOf(agentPid).find((p) => commOf(p).startsWith('redis-server'));
    }
    client = new LocalClient({ ...address });
    await client.connect();
    await client.uploadZip('bench/python-hello.zip', SAMPLES.pythonHello);

    // Keep `inFlight` messages outstanding; count results as they come.
    let sent = 0;
    let done = 0;
    let failed = 0;
    const total = warmup + measured;
    let marks: Awaited<ReturnType<typeof snap>> | undefined;
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
    let warmAt: Promise<typeof marks> | undefined;
    let resolveEnd!: () => void;
    const ended = new Promise<void>((r) => (resolveEnd = r));
    let sending = false;
    const onResult = (r: Result) => {
      done++;
      if (!r.success) failed++;
      if (done === warmup) warmAt = snap();
      if (done === total) resolveEnd();
      void feed();
    };
    const feed = async () => {
      if (sending) return;
      sending = true;
      try {
        while (sent < total && sent - done < inFlight) {
          const n = Math.min(10, total - sent, inFlight - (sent - done));
          const batch = Array.from({ length: n }, () => `c-${process.pid}-${sent++}`);
          for (const id of batch) void client!.waitForResult(id, 300_000).then((r) => (client!.forget(id), onResult(r)), () => onResult({ success: false } as Result));
          await client!.sendBatch(batch.map((requestId) => ({ requestId, functionId: 'cost-trivial', runtime: 'python', s3Bucket: address.bucket, s3Key: 'bench/python-hello.zip', timeoutMs: 60_000, memoryMb: 128 })));
        }
      } finally {
        sending = false;
      }
    };
    void feed();
    const progressTimer = setInterval(() => o.progress(`cost (${setup}): ${done}/${total} results`), 5000);
    try {
      await ended;
    } finally {
      clearInterval(progressTimer);
    }
    const end = await snap();
    marks = await warmAt!;
    if (failed > 0) throw new Error(`cost cell: ${failed} invocations failed`);
    const per = (k: 'agent' | 'queue' | 'redis' | 'client' | 'machine' | 'containers') => (end[k] - marks![k]) / measured;
    const seconds = (end.t - marks!.t) / 1000;
    const p = { agent: per('agent'), queueServer: per('queue'), redis: per('redis'), client: per('client'), containers: per('containers'), machine: per('machine'), rest: 0 };
    p.rest = p.machine - p.agent - p.queueServer - p.redis - p.client - p.containers;
    const callsPerInvocation = Object.fromEntries(Object.entries(end.calls).map(([k, v]) => [k, Math.round(((v - (marks!.calls[k] ?? 0)) / measured) * 1000) / 1000]));
    await sleep(500);
    return { setup, poolSize, invocations: measured, seconds, perSecond: measured / seconds, perInvocation: p, agentRssMb: { idle: idleRss, after: processRssMb(agentPid) }, callsPerInvocation };
  } finally {
    client?.close();
    if (agent) {
      agent.signal('SIGTERM');
      await Promise.race([agent.exited, sleep(20_000)]);
      agent.signal('SIGKILL');
    }
    await stopChild(agentChild, 20_000);
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

export interface ContainerSideRun {
  runs: number;
  /** CPU ms per run in the container's cgroup (runner, zygote, the child, their kernel time), user and system apart. */
  cpuMsPerRun: { total: number; user: number; system: number };
  /** Wall time per run, p50 (ms), one at a time. */
  wallMsP50: number;
  /** The zygote's resident memory (MB): its fork copies this many pages' tables. */
  zygoteRssMb: number;
}

/**
 * The container side alone: runs of a trivial function through one container's runner
 * and zygote, straight from this process (no agent), one at a time.
 */
export async function measureContainerSide(o: { docker: Docker; image: string; runs: number; workRoot: string; progress: (m: string) => void }): Promise<ContainerSideRun> {
  const { DockerContainer } = await import('../src/container/dockerContainer.js');
  const { soloContainerSpec } = await import('../src/local/soloContainer.js');
  const { LABEL_AGENT, WORKDIR } = await import('../src/core/sandbox.js');
  const { writeFunction } = await import('./direct.js');
  const c = new DockerContainer(
    o.docker,
    soloContainerSpec(join(o.workRoot, 'container-side'), { image: o.image, name: `ng-bench-cside-${process.pid}`, labels: { [LABEL_AGENT]: COST_AGENT }, zygote: ['python3', '/nanogrid/zygote.py'], memoryMb: 256 }),
  );
  try {
    await c.create();
    await writeFunction(c.workspaceHostPath, SAMPLES.pythonHello);
    const cg = await readProcCgroups(c.pid!);
    const v1 = cg?.v1('cpuacct');
    const usage = async () => {
      if (v1?.path) {
        const dir = join('/sys/fs/cgroup', v1.mount, v1.path);
        const stat = await readFile(join(dir, 'cpuacct.stat'), 'utf8');
        return { total: Number(await readFile(join(dir, 'cpuacct.usage'), 'utf8')) / 1e6, user: Number(/user (\d+)/.exec(stat)?.[1]) * TICK_MS, system: Number(/system (\d+)/.exec(stat)?.[1]) * TICK_MS };
      }
      const s = await readFile(join('/sys/fs/cgroup', cg!.v2!, 'cpu.stat'), 'utf8');
      const n = (k: string) => Number(new RegExp(`${k} (\\d+)`).exec(s)?.[1] ?? NaN) / 1000;
      return { total: n('usage_usec'), user: n('user_usec'), system: n('system_usec') };
    };
    const runner = c.runner!;
    const req = { mode: 'zygote' as const, argv: ['python', 'main.py'], cwd: WORKDIR, uid: c.uid!, gid: c.uid!, env: ['PYTHONUNBUFFERED=1', 'HOME=/tmp'], timeoutMs: 10_000, outputLimitBytes: 1 << 20 };
    for (let i = 0; i < 20; i++) await runner.run(req, 5000);
    const walls: number[] = [];
    const before = await usage();
    for (let i = 0; i < o.runs; i++) {
      const t = performance.now();
      const r = await runner.run(req, 5000);
      walls.push(performance.now() - t);
      if (r.exitCode !== 0) throw new Error(`container side: a run failed: ${r.stderr.slice(0, 300)}`);
    }
    const after = await usage();
    walls.sort((a, b) => a - b);
    let zygoteRssMb = NaN;
    for (const pid of childrenOf(c.pid!)) if (commOf(pid).startsWith('python')) zygoteRssMb = processRssMb(pid);
    o.progress(`container side: ${o.runs} runs`);
    return {
      runs: o.runs,
      cpuMsPerRun: { total: (after.total - before.total) / o.runs, user: (after.user - before.user) / o.runs, system: (after.system - before.system) / o.runs },
      wallMsP50: walls[Math.floor(walls.length / 2)]!,
      zygoteRssMb,
    };
  } finally {
    await c.destroy();
  }
}
