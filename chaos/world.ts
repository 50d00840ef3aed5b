import Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Result } from '../src/core/result.js';
import { sleep } from '../src/core/timeout.js';
import { AgentProcess } from '../src/local/agentProcess.js';
import { LocalClient } from '../src/local/client.js';
import { startLocalStack, type LocalStack } from '../src/local/stack.js';
import { listAgentContainers } from '../src/pool/leftovers.js';
import { unmountUnder } from '../src/container/scratch.js';

/** The chaos suite's world: a fresh stack per scenario, its agents, what was sent, and the row it makes. */
export const QUICK = process.argv.includes('--quick');
export const docker = new Docker();
/** Where the hostile world's agent stores outputs. */
export const USER_DATA_BUCKET = 'user-data';
export const say = (msg: string) => process.stderr.write(`[chaos] ${msg}\n`);

/** A root-only folder and file of the host, made for the suite: no function may read or change them. */
export interface HostSecret {
  dir: string;
  file: string;
  text: string;
}

export async function makeHostSecret(): Promise<HostSecret & { remove(): Promise<void> }> {
  const text = `HOST-SECRET-${randomBytes(8).toString('hex')}`;
  const dir = join('/root', `.nanogrid-chaos-secret-${randomBytes(4).toString('hex')}`);
  await mkdir(dir, { mode: 0o700 });
  const file = join(dir, 'secret.txt');
  await writeFile(file, text, { mode: 0o600 });
  return { dir, file, text, remove: () => rm(dir, { recursive: true, force: true }) };
}

export interface Row {
  scenario: string;
  sent: number;
  results: number;
  missing: number;
  ranTwice: number;
  deadLettered: number;
  restarts: number;
  verdict: 'PASS' | 'FAIL';
  note: string;
}

export const ECHO = 'import os, time\ntime.sleep(float(os.environ.get("ECHO_SLEEP", "0.1")))\nprint(os.environ["NANOGRID_REQUEST_ID"])\n';
export const SLOW_ECHO = 'import os, time\ntime.sleep(1.0)\nprint(os.environ["NANOGRID_REQUEST_ID"])\n';
export const LONG_ECHO = 'import os, time\ntime.sleep(8.0)\nprint(os.environ["NANOGRID_REQUEST_ID"])\n';

/** One scenario's world: a fresh queue, bucket and Redis, and the agents it starts. */
export class World {
  readonly agents: AgentProcess[] = [];
  readonly ids: string[] = [];
  private seq = 0;
  private readonly cleanups: (() => unknown)[] = [];

  /** Something to undo when the world closes (a stand-in server). */
  teardown(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  private constructor(
    readonly stack: LocalStack,
    readonly client: LocalClient,
    readonly workRoot: string,
  ) {}

  private secret: (HostSecret & { remove(): Promise<void> }) | undefined;

  /** The host's secret for this world's hostile functions, made once, removed with the world. */
  async hostSecret(): Promise<HostSecret> {
    if (!this.secret) {
      this.secret = await makeHostSecret();
      this.teardown(() => this.secret?.remove());
    }
    return this.secret;
  }

  static async create(): Promise<World> {
    const stack = await startLocalStack({ maxReceiveCount: 3 });
    const client = new LocalClient({ ...stack });
    await client.connect();
    const w = new World(stack, client, await mkdtemp(join(tmpdir(), 'nanogrid-chaos-')));
    await client.uploadZip('echo/v1.zip', { 'main.py': ECHO });
    await client.uploadZip('slow-echo/v1.zip', { 'main.py': SLOW_ECHO });
    await client.uploadZip('long-echo/v1.zip', { 'main.py': LONG_ECHO });
    await client.createBucket(USER_DATA_BUCKET);
    return w;
  }

  agentEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      NANOGRID_PREWARM: 'python=2,cpp=0',
      NANOGRID_MAX_CONTAINERS: 'python=4,cpp=1',
      NANOGRID_VISIBILITY_TIMEOUT_S: '10',
      NANOGRID_SHUTDOWN_GRACE_MS: '20000',
      // The crash rows read 'invocation received' (a debug line) to know what was in flight.
      LOG_LEVEL: 'debug',
      ...extra,
    };
  }

  async startAgent(agentId: string, env: Record<string, string> = {}): Promise<AgentProcess> {
    const a = new AgentProcess({ stack: this.stack, agentId, workRoot: this.workRoot, env: this.agentEnv(env) });
    this.agents.push(a);
    await a.started();
    return a;
  }

  message(functionId: string, extra: Record<string, unknown> = {}): Record<string, unknown> & { requestId: string } {
    return { requestId: `${functionId}-${process.pid}-${++this.seq}`, functionId, runtime: 'python', s3Bucket: this.stack.bucket, s3Key: `${functionId}/v1.zip`, timeoutMs: 30_000, memoryMb: 128, ...extra };
  }

  /** Sends `count` invocations of `functionId`, one every `everyMs`, recording their ids. */
  async stream(functionId: string, count: number, everyMs: number): Promise<void> {
    for (let i = 0; i < count; i++) {
      const m = this.message(functionId);
      this.ids.push(m.requestId);
      await this.client.send(m).catch(async () => {
        await sleep(200);
        await this.client.send(m);
      });
      await sleep(everyMs);
    }
  }

  /** Waits until every id has a stored result, or the deadline; returns what was found. */
  async collect(ids: string[], timeoutMs: number): Promise<Map<string, Result>> {
    const found = new Map<string, Result>();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const id of ids) {
        if (found.has(id)) continue;
        const r = await this.client.readStored(id).catch(() => undefined);
        if (r) found.set(id, r);
      }
      if (found.size === ids.length) break;
      await sleep(500);
    }
    return found;
  }

  /** How many times each request's run finished, over every agent this world started. */
  finishes(): Map<string, number> {
    // Runs only: an invocation given back before it ran has its summary line too.
    return byRequestId(this.agents.flatMap((a) => a.runs()));
  }

  /** How many times each request was taken, run or not (its summary line per try), over every agent. */
  tries(): Map<string, number> {
    return byRequestId(this.agents.flatMap((a) => a.summaries()));
  }

  async deadLettered(): Promise<number> {
    const d = await this.client.queueDepth(this.stack.dlqUrl);
    return d.visible + d.inflight;
  }

  /** A row for `ids`: every one must have a result that names its own request id. */
  async row(
    scenario: string,
    ids: string[],
    opts: { timeoutMs: number; allowedTwice?: number; restarts?: number; extra?: string[]; note?: string; interrupted?: ReadonlySet<string>; deadLettered?: number },
  ): Promise<Row> {
    const found = await this.collect(ids, opts.timeoutMs);
    const finishes = this.finishes();
    const wrong = [...found.values()].filter((r) => r.functionId.endsWith('echo') && (r.status !== 'SUCCESS' || r.stdout.trim() !== r.requestId));
    // Ran twice: finished twice, or started by an agent that was killed mid-run and then run again.
    const ranTwice = ids.filter((id) => (finishes.get(id) ?? 0) > 1 || (opts.interrupted?.has(id) && (finishes.get(id) ?? 0) >= 1)).length;
    const dlq = await this.deadLettered();
    const problems = [...(opts.extra ?? [])];
    if (found.size < ids.length) {
      const missing = ids.filter((id) => !found.has(id));
      problems.push(`${missing.length} missing (${missing.slice(0, 3).join(', ')})`);
      if (process.env.CHAOS_DEBUG) for (const a of this.agents) for (const l of a.lines) if (missing.includes(l.requestId as string)) say(JSON.stringify(l).slice(0, 400));
    }
    if (wrong.length > 0) problems.push(`${wrong.length} wrong results (${wrong[0]!.requestId}: ${wrong[0]!.status}/${wrong[0]!.reason} ${wrong[0]!.stderr.slice(0, 100)})`);
    if (ranTwice > (opts.allowedTwice ?? 0)) problems.push(`${ranTwice} ran twice (allowed ${opts.allowedTwice ?? 0})`);
    // Only what the scenario expects there (none unless it says so).
    if (dlq !== (opts.deadLettered ?? 0)) {
      // What landed there, so a failed row says which messages and not only how many.
      const seen = await this.client.peek(this.stack.dlqUrl).catch(() => []);
      const shown = seen.slice(0, 3).map((body) => `${JSON.stringify(body.slice(0, 80))} (${body.length} chars)`);
      problems.push(`${dlq} dead-lettered (expected ${opts.deadLettered ?? 0})${shown.length ? `: ${shown.join(', ')}` : ''}`);
    }
    return {
      scenario,
      sent: ids.length,
      results: found.size,
      missing: ids.length - found.size,
      ranTwice,
      deadLettered: dlq,
      restarts: opts.restarts ?? 0,
      verdict: problems.length === 0 ? 'PASS' : 'FAIL',
      note: problems.length > 0 ? problems.join('; ') : (opts.note ?? ''),
    };
  }

  async close(): Promise<void> {
    for (const a of this.agents) a.signal('SIGKILL');
    await Promise.all(this.agents.map((a) => a.exited));
    // A killed agent may have left a removal in progress (the engine then refuses a second
    // one with a conflict): sweep until nothing of its containers is left, bounded.
    for (let round = 0; round < 20; round++) {
      let left = 0;
      for (const a of this.agents) {
        for (const c of await listAgentContainers(docker, a.opts.agentId).catch(() => [])) {
          left++;
          await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
        }
      }
      if (left === 0) break;
      await sleep(500);
    }
    for (const fn of this.cleanups.reverse()) await Promise.resolve(fn()).catch(() => undefined);
    await unmountUnder(this.workRoot, 10_000).catch(() => undefined);
    await rm(this.workRoot, { recursive: true, force: true });
    this.client.close();
    await this.stack.stop();
  }
}

export type Scenario = { name: string; run: (w: World) => Promise<Row> };

function byRequestId(lines: readonly Record<string, unknown>[]): Map<string, number> {
  const n = new Map<string, number>();
  for (const l of lines) if (typeof l.requestId === 'string') n.set(l.requestId, (n.get(l.requestId) ?? 0) + 1);
  return n;
}
