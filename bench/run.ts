// `npm run bench` (full) and `npm run bench -- --quick`: cold against warm starts, the
// original system's paths and the engine's floors side by side in one run, throughput,
// and throughput against the fraction of cold starts.
import Docker from 'dockerode';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LocalClient } from '../src/local/client.js';
import { SAMPLES } from '../src/local/samples.js';
import { startLocalStack, type LocalStack } from '../src/local/stack.js';
import type { StartKind } from '../src/core/result.js';
import { defaultRunnerDir } from '../src/core/sandbox.js';
import { sleep } from '../src/core/timeout.js';
import { listAgentContainers } from '../src/pool/leftovers.js';
import { unmountUnder } from '../src/container/scratch.js';
import { BENCH_AGENT, current, measureCppColdHit, withAgent, measureCpuShare, measureFleet, CPU_HOG, FLEET_AGENTS, type FleetRun, measureStartKind, measureThroughput, type BenchEnv, type KindSamples } from './agentBench.js';
import { coldCurveChart, latencyChart, type LatencyRow } from './charts.js';
import { DIRECT_AGENT, measureFloors, measureResident, measureStage4Pool, measureOwnRunTime, measureStage3, measureStage4, writeFunction } from './direct.js';
import { ratio, summarize, type Summary } from './stats.js';
import { COST_AGENT, costSummary, measureCost, type CostRun } from './cost.js';
import { CONTAINER_SIDE_AGENT, measureContainerSide } from './containerSide.js';
import { firstSampleLine, gitCommit, machine, markdown, type Report } from './report.js';
import { coldCurveSummary, measureColdCurveCell, type ColdCurveCell } from './coldCurve.js';
import { ANATOMY_AGENT, anatomySummary, measureAnatomy, type AnatomyRun } from './anatomy.js';

const quick = process.argv.includes('--quick');
const plan = quick
  ? { latencyN: { python: 10, cpp: 4, node: 10 }, floorN: 10, baselineN: { python: 8, cpp: 3 }, tpCount: 96, ccCount: 60, ccRuns: 1, anatomyN: 8, tp: { trivial: 1000, perSlot100: 60, gvisorTrivial: 300, gvisor100: 200 }, cpuShareN: 20, cost: 2000, containerRuns: 1000 }
  : { latencyN: { python: 30, cpp: 30, node: 30 }, floorN: 30, baselineN: { python: 30, cpp: 10 }, tpCount: 160, ccCount: 200, ccRuns: 3, anatomyN: 30, tp: { trivial: 3000, perSlot100: 150, gvisorTrivial: 1000, gvisor100: 600 }, cpuShareN: 40, cost: 5000, containerRuns: 3000 };
const POOL_SIZES = [1, 2, 4, 8];
const CC_CAPACITY = 4;
const CC_DISTINCT = [1, 4, 8, 16];
const IMAGES = { python: process.env.NANOGRID_IMAGE_PYTHON ?? 'nanogrid/python:local', cpp: process.env.NANOGRID_IMAGE_CPP ?? 'nanogrid/cpp:local' };
const COMMANDS = { python: ['python', 'main.py'], cpp: ['/bin/bash', 'run.sh'] };

const root = fileURLToPath(new URL(existsSync(fileURLToPath(new URL('../../package.json', import.meta.url))) ? '../../' : '../', import.meta.url));
const started = Date.now();
const progress = (msg: string) => process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${msg}\n`);
const docker = new Docker();

let stack: LocalStack | undefined;
let client: LocalClient | undefined;
let scratch: string | undefined;

async function cleanup(): Promise<void> {
  await current?.stop().catch(() => undefined);
  client?.close();
  await stack?.stop().catch(() => undefined);
  for (const agent of [DIRECT_AGENT, BENCH_AGENT, COST_AGENT, CONTAINER_SIDE_AGENT, ANATOMY_AGENT, ...FLEET_AGENTS]) {
    const left = await listAgentContainers(docker, agent).catch(() => []);
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  }
  if (scratch) {
    await unmountUnder(scratch, 10_000).catch(() => undefined);
    await rm(scratch, { recursive: true, force: true });
  }
}

/** This process's resident memory after a garbage collection (node --expose-gc), MB. */
async function rss(): Promise<number> {
  (globalThis as { gc?: () => void }).gc?.();
  await sleep(200);
  return process.memoryUsage().rss / 2 ** 20;
}

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    if (interrupted) return;
    interrupted = true;
    progress(`${sig}: removing the bench's containers, queues and processes`);
    void cleanup().finally(() => process.exit(130));
  });
}

async function main(): Promise<void> {
  progress(`mode ${quick ? 'quick' : 'full'}; images ${IMAGES.python}, ${IMAGES.cpp}`);
  await cleanup();
  scratch = await mkdtemp(join(tmpdir(), 'nanogrid-bench-'));
  const codeDirs = { python: join(scratch, 'code-python'), cpp: join(scratch, 'code-cpp'), template: join(scratch, 'code-template') };
  await writeFunction(codeDirs.python, SAMPLES.pythonHello);
  await writeFunction(codeDirs.template, SAMPLES.pythonTemplate);
  await writeFunction(codeDirs.cpp, SAMPLES.cppHello);

  const latency: Record<string, Summary> = {};
  const raw: Record<string, number[]> = {};
  const put = (k: string, v: number[]) => {
    raw[k] = v;
    latency[k] = summarize(v);
  };

  progress('floors on the bare engine');
  for (const [k, v] of Object.entries(await measureFloors({ docker, image: IMAGES.python, n: plan.floorN, progress }))) put(k, v);
  for (const rt of ['python', 'cpp'] as const) {
    const o = { docker, image: IMAGES[rt], codeDir: codeDirs[rt], command: COMMANDS[rt], n: plan.baselineN[rt], progress };
    put(`${rt}: own run time`, await measureOwnRunTime({ ...o, n: plan.floorN }));
    progress(`${rt}: own run time p50 ${latency[`${rt}: own run time`]!.p50} ms`);
    if (rt === 'python') {
      put('python (jinja2): own run time', await measureOwnRunTime({ ...o, codeDir: codeDirs.template, n: plan.floorN }));
      progress(`python (jinja2): own run time p50 ${latency['python (jinja2): own run time']!.p50} ms`);
    }
    if (rt === 'cpp') {
      put('cpp: own run time, build kept', await measureOwnRunTime({ ...o, n: plan.floorN, frontDir: defaultRunnerDir() }));
      progress(`cpp: own run time with the build kept p50 ${latency['cpp: own run time, build kept']!.p50} ms`);
    }
    put(`${rt}: original stage 3 (create/start/wait/logs/remove)`, await measureStage3(o));
    put(`${rt}: original stage 4 (unpause/exec/pause)`, await measureStage4(o));
    progress(`${rt}: original stage 3 and 4 paths x${o.n}`);
  }
  for (const [k, v] of Object.entries(
    await measureResident({ docker, image: IMAGES.python, codeDir: codeDirs.python, command: COMMANDS.python, n: plan.floorN, progress, workRoot: scratch, runnerDir: defaultRunnerDir() }),
  )) {
    put(k, v);
  }
  const anatomy: AnatomyRun[] = [];
  const anatomyRefused: Record<string, string> = {};
  for (const rt of ['runc', 'crun']) {
    try {
      anatomy.push(await measureAnatomy({ docker, image: IMAGES.python, workRoot: scratch, n: plan.anatomyN, ociRuntime: rt, progress }));
    } catch (err) {
      // crun refuses a host with cgroup v1 and v2 controllers side by side (this one).
      anatomyRefused[rt] = String((err as Error).message ?? err).replace(/\s+/g, ' ').slice(0, 300);
      progress(`anatomy: ${rt} refused: ${anatomyRefused[rt]}`);
    }
  }
  progress(`resident: ping p50 ${latency['floor: resident round trip (ping)']!.p50} ms, zygote run p50 ${latency['python: resident run, zygote']!.p50} ms`);
  const stage4 = await measureStage4Pool({ docker, image: IMAGES.python, codeDir: codeDirs.python, command: COMMANDS.python, n: 0, progress, size: 8, count: plan.tpCount });
  const stage4Pool = { size: 8, invocations: plan.tpCount, perSecond: stage4.perSecond };
  progress(`python: original stage 4 by a pool of 8: ${stage4.perSecond.toFixed(1)}/s`);

  // The cost of one invocation in CPU time, by process: the agent in a process of its own,
  // the queue server apart (as in production) and in the agent's process (the local stack).
  const cost: CostRun[] = [];
  for (const setup of ['apart', 'in process'] as const) {
    const r = await measureCost(setup, { docker, progress, measured: plan.cost });
    cost.push(r);
    progress(`cost (${setup}): agent ${r.perInvocation.agent.toFixed(2)} ms, machine ${r.perInvocation.machine.toFixed(2)} ms per invocation, ${r.perSecond.toFixed(0)}/s`);
  }
  const containerSide = await measureContainerSide({ docker, image: IMAGES.python, runs: plan.containerRuns, workRoot: scratch, progress });
  progress(`container side alone: ${containerSide.cpuMsPerRun.total.toFixed(2)} ms of CPU per run`);

  stack = await startLocalStack();
  client = new LocalClient({ ...stack });
  await client.connect();
  const env: BenchEnv = { stack, client, workRoot: join(scratch, 'work'), logFile: join(scratch, 'agent.log'), progress };
  await mkdir(env.workRoot, { recursive: true });
  await client.uploadZip('bench/python-hello.zip', SAMPLES.pythonHello);
  await client.uploadZip('bench/cpp-hello.zip', SAMPLES.cppHello);
  await client.uploadZip('bench/node-hello.zip', SAMPLES.nodeHello);
  await client.uploadZip('bench/python-template.zip', SAMPLES.pythonTemplate);
  await client.uploadZip('bench/python-template-handler.zip', SAMPLES.pythonTemplateHandler);
  await client.uploadZip('bench/python-sleep100.zip', SAMPLES.pythonSleep(100));

  const startKinds: Record<string, Record<string, number>> = {};
  for (const rt of ['python', 'cpp', 'node'] as const) {
    for (const kind of ['cold', 'prewarm', 'warm'] as const satisfies readonly StartKind[]) {
      const n = plan.latencyN[rt];
      const s: KindSamples = await measureStartKind(env, rt, kind, `bench/${rt}-hello.zip`, n);
      put(`${rt}: agent ${kind} (inside)`, s.inside);
      put(`${rt}: agent ${kind} (end to end)`, s.e2e);
      startKinds[`${rt}:${kind}`] = s.kinds;
      progress(`${rt} ${kind}: inside p50 ${latency[`${rt}: agent ${kind} (inside)`]!.p50} ms, end to end p50 ${latency[`${rt}: agent ${kind} (end to end)`]!.p50} ms (n=${s.inside.length})`);
    }
  }
  // An import-heavy function warm, plain mode: every run imports Jinja2 again (a new process).
  const template = await measureStartKind(env, 'python', 'warm', 'bench/python-template.zip', plan.latencyN.python);
  put('python (jinja2): agent warm (inside)', template.inside);
  put('python (jinja2): agent warm (end to end)', template.e2e);
  progress(`python (jinja2) warm: inside p50 ${latency['python (jinja2): agent warm (inside)']!.p50} ms`);
  // The same page in handler mode: imported once per container, a call per invocation.
  const handler = await measureStartKind(env, 'python', 'warm', 'bench/python-template-handler.zip', plan.latencyN.python);
  put('python (jinja2, handler mode): agent warm (inside)', handler.inside);
  put('python (jinja2, handler mode): agent warm (end to end)', handler.e2e);
  progress(`python (jinja2) warm in handler mode: inside p50 ${latency['python (jinja2, handler mode): agent warm (inside)']!.p50} ms`);
  // C++ cold in a new container with its build already kept (the cells above compile: a new function each time).
  const coldHit = await measureCppColdHit(env, 'bench/cpp-hello.zip', plan.latencyN.cpp);
  put('cpp: agent cold, build kept (inside)', coldHit.inside);
  put('cpp: agent cold, build kept (end to end)', coldHit.e2e);
  startKinds['cpp:cold-build-kept'] = coldHit.kinds;
  progress(`cpp cold with its build kept: inside p50 ${latency['cpp: agent cold, build kept (inside)']!.p50} ms (n=${coldHit.inside.length})`);
  // The pause grace, side by side: back-to-back warm runs with and without it.
  const noGrace = await measureStartKind(env, 'python', 'warm', 'bench/python-hello.zip', plan.latencyN.python, { NANOGRID_PAUSE_GRACE_MS: '0' });
  put('python: agent warm, no pause grace (inside)', noGrace.inside);
  put('python: agent warm, no pause grace (end to end)', noGrace.e2e);
  progress(`python warm without a pause grace: inside p50 ${latency['python: agent warm, no pause grace (inside)']!.p50} ms`);

  // The gVisor tier side by side: the same cells with python in runsc.
  const GVISOR = { NANOGRID_OCI_RUNTIME: 'python=runsc' };
  for (const kind of ['cold', 'prewarm', 'warm'] as const) {
    const s = await measureStartKind(env, 'python', kind, 'bench/python-hello.zip', plan.latencyN.python, GVISOR);
    put(`python (gVisor): agent ${kind} (inside)`, s.inside);
    put(`python (gVisor): agent ${kind} (end to end)`, s.e2e);
    startKinds[`python-gvisor:${kind}`] = s.kinds;
    progress(`python in gVisor ${kind}: inside p50 ${latency[`python (gVisor): agent ${kind} (inside)`]!.p50} ms`);
  }

  const rssMb = { idle: NaN, afterThroughput: NaN };
  rssMb.idle = await withAgent(env, { NANOGRID_PREWARM: 'python=8,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=8,cpp=1' }, () => rss());

  const throughput: Report['throughput'] = [];
  for (const [fn, key] of [
    ['trivial', 'bench/python-hello.zip'],
    ['100 ms', 'bench/python-sleep100.zip'],
  ] as const) {
    for (const size of POOL_SIZES) {
      const last = fn === '100 ms' && size === POOL_SIZES[POOL_SIZES.length - 1];
      const count = fn === 'trivial' ? plan.tp.trivial : plan.tp.perSlot100 * size;
      const r = await measureThroughput(env, size, fn, key, count, last ? async () => void (rssMb.afterThroughput = await rss()) : undefined);
      throughput.push({ ...r, e2e: summarize(r.e2e) });
      progress(`throughput ${fn} pool ${size}: ${r.perSecond.toFixed(1)}/s`);
    }
  }

  const gvisorThroughput: Report['throughput'] = [];
  for (const [fn, key] of [
    ['trivial', 'bench/python-hello.zip'],
    ['100 ms', 'bench/python-sleep100.zip'],
  ] as const) {
    const r = await measureThroughput(env, 8, fn, key, fn === 'trivial' ? plan.tp.gvisorTrivial : plan.tp.gvisor100, undefined, GVISOR);
    gvisorThroughput.push({ ...r, e2e: summarize(r.e2e) });
    progress(`throughput in gVisor ${fn} pool 8: ${r.perSecond.toFixed(1)}/s`);
  }

  // CPU share: a trivial function alone and beside a CPU hog, with the CPU limits on (the
  // default) and off (weights only), side by side in this run.
  const hogSeconds = quick ? 12 : 30;
  await client.uploadZip('bench/cpu-hog.zip', CPU_HOG(hogSeconds));
  for (const [label, overrides] of [
    ['limits on', {}],
    ['limits off', { NANOGRID_MB_PER_VCPU: '0' }],
  ] as const) {
    const r = await measureCpuShare(env, plan.cpuShareN, overrides, 'bench/cpu-hog.zip');
    put(`cpu share (${label}): trivial alone (end to end)`, r.alone);
    put(`cpu share (${label}): trivial beside a 4-process hog (end to end)`, r.beside);
    put(`cpu share (${label}): trivial alone (run time)`, r.aloneRun);
    put(`cpu share (${label}): trivial beside a 4-process hog (run time)`, r.besideRun);
    progress(`cpu share, ${label}: trivial run time p50 alone ${latency[`cpu share (${label}): trivial alone (run time)`]!.p50} ms, beside the hog ${latency[`cpu share (${label}): trivial beside a 4-process hog (run time)`]!.p50} ms`);
  }

  // A fleet on one machine: 1, 2 and 3 agents on one queue, 2 containers each, 100 ms function.
  const fleet: FleetRun[] = [];
  for (const n of [1, 2, 3]) {
    const r = await measureFleet(env, n, 'bench/python-sleep100.zip', quick ? 48 : 120);
    fleet.push(r);
    progress(`fleet: ${n} agent(s): ${r.perSecond.toFixed(1)}/s`);
  }

  const coldCurve: ColdCurveCell[] = [];
  for (const d of CC_DISTINCT) {
    const p = await measureColdCurveCell(env, CC_CAPACITY, d, 'bench/python-hello.zip', plan.ccCount, plan.ccRuns);
    coldCurve.push(p);
    progress(`cold curve: ${d} functions on ${CC_CAPACITY} containers, stock off: ${(p.coldFraction * 100).toFixed(0)}% cold, ${p.perSecond.toFixed(1)}/s (median of ${p.runs})`);
  }
  // The stock on where new functions outnumber containers: its minimum 1, raised to 3 by the rate of new functions.
  for (const d of [8, 16]) {
    const p = await measureColdCurveCell(env, CC_CAPACITY, d, 'bench/python-hello.zip', plan.ccCount, plan.ccRuns, 3);
    coldCurve.push(p);
    progress(`cold curve: ${d} functions on ${CC_CAPACITY} containers, stock on: ${(p.coldFraction * 100).toFixed(0)}% cold, ${p.perSecond.toFixed(1)}/s`);
  }

  const L = (k: string) => latency[k]?.p50 ?? NaN;
  const ratios: Record<string, number> = {};
  const overhead: Record<string, number> = {};
  for (const rt of ['python', 'cpp'] as const) {
    ratios[`${rt}: cold / warm (inside, p50)`] = ratio(L(`${rt}: agent cold (inside)`), L(`${rt}: agent warm (inside)`));
    ratios[`${rt}: cold / warm (end to end, p50)`] = ratio(L(`${rt}: agent cold (end to end)`), L(`${rt}: agent warm (end to end)`));
    ratios[`${rt}: prewarm / warm (inside, p50)`] = ratio(L(`${rt}: agent prewarm (inside)`), L(`${rt}: agent warm (inside)`));
    ratios[`${rt}: original stage 3 / agent warm (inside, p50)`] = ratio(L(`${rt}: original stage 3 (create/start/wait/logs/remove)`), L(`${rt}: agent warm (inside)`));
    ratios[`${rt}: original stage 4 / agent warm (inside, p50)`] = ratio(L(`${rt}: original stage 4 (unpause/exec/pause)`), L(`${rt}: agent warm (inside)`));
    // A kept build serves cpp's warm runs; its cold and prewarm runs here are new versions, which compile.
    const own = L(`${rt}: own run time`);
    const ownWarm = rt === 'cpp' ? L('cpp: own run time, build kept') : own;
    const rt0 = L('floor: resident round trip (ping)');
    // The least a start of each kind can cost: its container step, one runner round trip, the function.
    const floors: Record<StartKind, number> = {
      warm: rt0 + ownWarm,
      prewarm: L('floor: cgroup freeze+thaw') / 2 + rt0 + own,
      cold: L('floor: create+start') + rt0 + own,
    };
    for (const kind of ['cold', 'prewarm', 'warm'] as const) {
      overhead[`${rt}: ${kind}`] = Math.round((L(`${rt}: agent ${kind} (inside)`) - floors[kind]) * 10) / 10;
    }
  }

  const tp = (fn: string, size: number) => throughput.find((x) => x.fn === fn && x.poolSize === size)?.perSecond ?? NaN;
  const pct = (v: number) => (Number.isFinite(v) ? Math.round(v * 100) : NaN);
  const summary = [
    `- python: original stage 4 / agent warm (inside, p50): **${ratio(L('python: original stage 4 (unpause/exec/pause)'), L('python: agent warm (inside)')).toFixed(1)}x**`,
    `- cpp (the build kept per code version): agent warm (inside, p50) **${L('cpp: agent warm (inside)').toFixed(1)} ms**, beside run.sh's own time with the kept build (bash, the front, the program, timed in the container by another path) ${L('cpp: own run time, build kept').toFixed(1)} ms; cold with the build kept **${L('cpp: agent cold, build kept (inside)').toFixed(0)} ms** against python cold ${L('python: agent cold (inside)').toFixed(0)} ms (**${(L('cpp: agent cold, build kept (inside)') - L('python: agent cold (inside)')).toFixed(0)} ms** apart), a first compile ${L('cpp: agent cold (inside)').toFixed(0)} ms; original stage 4 (compiles every run) / agent warm **${ratio(L('cpp: original stage 4 (unpause/exec/pause)'), L('cpp: agent warm (inside)')).toFixed(1)}x**`,
    `- python, import-heavy (Jinja2 renders a page): agent warm (inside, p50) in handler mode **${L('python (jinja2, handler mode): agent warm (inside)').toFixed(1)} ms** (end to end ${L('python (jinja2, handler mode): agent warm (end to end)').toFixed(1)} ms), in plain mode **${L('python (jinja2): agent warm (inside)').toFixed(1)} ms** (end to end ${L('python (jinja2): agent warm (end to end)').toFixed(1)} ms), as a new \`python main.py\` process ${L('python (jinja2): own run time').toFixed(1)} ms, against hello's ${L('python: agent warm (inside)').toFixed(1)} ms: the zygote saves the interpreter's start, the handler mode the imports too`,
    `- node (node main.js, no zygote): agent cold (inside, p50) **${L('node: agent cold (inside)').toFixed(0)} ms**, prewarm ${L('node: agent prewarm (inside)').toFixed(1)} ms, warm **${L('node: agent warm (inside)').toFixed(1)} ms**; end to end cold ${L('node: agent cold (end to end)').toFixed(0)} ms, warm ${L('node: agent warm (end to end)').toFixed(1)} ms`,
    `- python: agent warm (inside, p50) / own run time (p50): **${(L('python: agent warm (inside)') / L('python: own run time')).toFixed(2)}x**`,
    `- throughput: agent pool 8 / original stage 4 pool 8 (trivial): **${(tp('trivial', 8) / stage4Pool.perSecond).toFixed(1)}x**`,
    `- throughput: agent pool 8 (100 ms) / ideal: **${pct(tp('100 ms', 8) / (8 / 0.1))}%**`,
    `- agent RSS: idle ${Math.round(rssMb.idle)} MB, after the throughput cells ${Math.round(rssMb.afterThroughput)} MB`,
    `- python: agent cold (inside, p50) / (create+start + own run time): **${(L('python: agent cold (inside)') / (L('floor: create+start') + L('python: own run time'))).toFixed(2)}x**`,
    `- freeze+thaw: dockerd / cgroup (p50): **${ratio(L('floor: dockerd pause+unpause'), L('floor: cgroup freeze+thaw')).toFixed(1)}x**`,
    `- fleet: 1 / 2 / 3 agents on one queue (100 ms function, 2 containers each): **${fleet.map((f) => f.perSecond.toFixed(1)).join(' / ')} per second**`,
    `- gVisor: python warm (inside, p50) / runc: **${ratio(L('python (gVisor): agent warm (inside)'), L('python: agent warm (inside)')).toFixed(1)}x**; cold: **${ratio(L('python (gVisor): agent cold (inside)'), L('python: agent cold (inside)')).toFixed(2)}x**; throughput pool 8 trivial / runc: **${pct(gvisorThroughput[0]!.perSecond / tp('trivial', 8))}%**, 100 ms / ideal: **${pct(gvisorThroughput[1]!.perSecond / (8 / 0.1))}%**`,
    `- cpu share: trivial run time p50 beside a 4-process hog / alone: **${ratio(L('cpu share (limits on): trivial beside a 4-process hog (run time)'), L('cpu share (limits on): trivial alone (run time)')).toFixed(2)}x** with CPU limits (${ratio(L('cpu share (limits off): trivial beside a 4-process hog (run time)'), L('cpu share (limits off): trivial alone (run time)')).toFixed(2)}x with weights only); end to end ${ratio(L('cpu share (limits on): trivial beside a 4-process hog (end to end)'), L('cpu share (limits on): trivial alone (end to end)')).toFixed(2)}x (${ratio(L('cpu share (limits off): trivial beside a 4-process hog (end to end)'), L('cpu share (limits off): trivial alone (end to end)')).toFixed(2)}x)`,
    ...costSummary(cost),
    `- container side alone (runner, zygote fork, the child, their kernel time; one at a time): **${containerSide.cpuMsPerRun.total.toFixed(2)} ms** of CPU per run (user ${containerSide.cpuMsPerRun.user.toFixed(2)}, system ${containerSide.cpuMsPerRun.system.toFixed(2)}), zygote RSS ${containerSide.zygoteRssMb.toFixed(1)} MB`,
    `- throughput: agent pool 8 (trivial), steady state: **${tp('trivial', 8).toFixed(0)}/s**`,
    firstSampleLine(raw),
    ...anatomySummary(anatomy),
    ...coldCurveSummary(coldCurve, anatomy),
  ];

  const report: Report = {
    mode: quick ? 'quick' : 'full',
    startedAt: new Date(started).toISOString(),
    durationSeconds: Math.round((Date.now() - started) / 1000),
    machine: await machine(docker),
    commit: gitCommit(root),
    latency,
    startKinds,
    throughput,
    gvisorThroughput,
    coldCurve,
    anatomy,
    anatomyRefused,
    ratios,
    overheadOverFloorMs: overhead,
    stage4Pool,
    rssMb,
    summary,
    cost,
    containerSide,
  };
  const stamp = new Date(started).toISOString().replace(/[:.]/g, '-');
  const outDir = join(root, 'bench', 'results');
  await mkdir(outDir, { recursive: true });
  const base = join(outDir, `${stamp}-${report.mode}`);
  await writeFile(`${base}.json`, `${JSON.stringify({ ...report, samples: raw }, null, 1)}\n`);
  await writeFile(`${base}-latency.svg`, latencyChart(`Start latency per start kind and path (${report.mode}, ${report.machine.cpus} cores)`, latencyRows(latency)));
  await writeFile(
    `${base}-cold-curve.svg`,
    coldCurveChart(
      `Throughput against cold starts (${CC_CAPACITY} python containers, trivial function)`,
      coldCurve.map((p) => ({ label: `${p.distinctFunctions} fn${p.stockMax ? ', stock' : ''}`, x: p.coldFraction, y: p.perSecond, note: `p50 ${Math.round(p.e2eP50)}${Number.isFinite(p.e2eP99) ? ` / p99 ${Math.round(p.e2eP99)}` : ''} ms` })),
    ),
  );
  process.stdout.write(markdown(report, CC_CAPACITY));
  progress(`wrote ${base}.json, ${base}-latency.svg, ${base}-cold-curve.svg`);
}

function latencyRows(latency: Record<string, Summary>): LatencyRow[] {
  return Object.entries(latency).map(([label, summary]) => ({
    label,
    summary,
    group: label.startsWith('floor') || label.includes('own run') ? 'floor' : label.includes('original') ? 'baseline' : (label.match(/agent (\w+)/)?.[1] ?? 'other'),
  }));
}

main()
  .catch((err: unknown) => {
    progress(`failed: ${(err as Error).stack ?? String(err)}`);
    process.exitCode = 1;
  })
  .finally(async () => {
    if (!interrupted) await cleanup();
  });
