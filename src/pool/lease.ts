import type { StartKind } from '../core/result.js';
import { plainArgv, zygoteArgv } from '../core/runtimes.js';
import { join } from 'node:path';
import { INPUT_PATH, SPOOL_NAMES, SPOOL_STDERR, SPOOL_STDOUT, WORKDIR } from '../core/sandbox.js';
import { NO_MEASUREMENT, type Measurement, type MemoryMeter, type MeterSession } from '../container/memoryMeter.js';
import type { LiveHandler } from '../container/liveHandler.js';
import { hostPidFor } from '../container/hostPid.js';
import { INIT_LEAF } from '../container/cgroupV2Scopes.js';
import { RunnerUnresponsive, type RunnerOutcome } from '../container/runnerClient.js';
import type { ScratchUsage, StagedCode } from '../container/scratch.js';
import type { ContainerProxy } from './containerProxy.js';
import type { BuildView } from '../build/buildCache.js';

export interface RunRequest {
  /** Shell command run in the workspace. */
  command: string;
  env: string[];
  timeoutMs: number;
  /** The input file was provided: it is the run's stdin. */
  input?: boolean;
  /** Called when the function's process has started. */
  onStart: () => void;
  /**
   * Handler mode (a nanogrid.json with a handler; the runtime has one): call `entry` in the
   * container's live handler of `key`, or in a new one. `context` is the call's, as JSON.
   */
  handler?: { entry: string; key: string; context: string };
}

export interface RunOutcome {
  exec: RunnerOutcome;
  memory: Measurement;
  /** The writable space after the run, or null when it could not be read. */
  disk: ScratchUsage | null;
  /** Host paths of the streams kept whole (spooled) because they passed the output limit. */
  spooled: { stdout?: string; stderr?: string };
}

/** How long past a run's timeout its runner may take to answer (it drains output and cleans up first). */
export const RUNNER_BOUND_MS = 5000;

/** How a lease ends: whether the function started, and whether the container may serve again. */
export interface LeaseEnd {
  ran: boolean;
  reusable: boolean;
}

/**
 * A container handed to one invocation: the only handle the run path holds. It stages
 * the code, runs the function, kills it, and is released exactly once.
 */
export interface Lease {
  readonly startKind: StartKind;
  readonly acquireMs: number;
  /** For log lines. */
  readonly containerName: string;
  /** The workspace on the host (outputs are read from it after the run, before release). */
  readonly workspaceHostPath: string;
  /** The container's side of the build cache, for a runtime with one. */
  readonly build: BuildView | undefined;
  /** Its runtime has a handler mode (RunRequest.handler). */
  readonly handlerMode: boolean;
  /** Puts the code in the workspace (nothing to do when this version is already there). */
  stage(code: StagedCode): Promise<void>;
  /** Puts the run's input in the workspace; it is also the run's stdin (RunRequest.input). */
  provideInput(bytes: Buffer): Promise<void>;
  run(req: RunRequest): Promise<RunOutcome>;
  kill(): Promise<void>;
  release(end: LeaseEnd): void;
}

/** Where leases come from: a runtime's pool (RuntimePool), seen only through this. */
export interface LeaseSource {
  /** A container for the function `key` names (its id and code location: Invocation.functionKey). */
  acquire(key: string, memoryMb: number): Promise<Lease>;
}

/** What a lease needs from the agent to run a function. */
export interface LeaseRunDeps {
  meter: MemoryMeter;
  outputLimitBytes: number;
  /** Keep a truncated stream whole up to this many bytes, to be stored (0: not kept). */
  spoolLimitBytes?: number;
}

/** What a lease needs from its pool. */
export interface LeaseOwner {
  started(c: ContainerProxy, kind: StartKind, acquireMs: number, at: number): void;
  takeBack(c: ContainerProxy, end: LeaseEnd): void;
}

export class ContainerLease implements Lease {
  private released = false;

  constructor(
    private readonly c: ContainerProxy,
    readonly startKind: StartKind,
    readonly acquireMs: number,
    private readonly owner: LeaseOwner,
    private readonly deps: LeaseRunDeps,
  ) {}

  get containerName(): string {
    return this.c.name;
  }

  get workspaceHostPath(): string {
    return this.c.engine.workspaceHostPath;
  }

  get build(): BuildView | undefined {
    return this.c.engine.build;
  }

  get handlerMode(): boolean {
    return this.c.engine.spec.handler !== null;
  }

  stage(code: StagedCode): Promise<void> {
    return this.c.engine.stage(code);
  }

  provideInput(bytes: Buffer): Promise<void> {
    return this.c.engine.writeInput(bytes);
  }

  /**
   * Runs the function through the container's runner: forked by the zygote when the
   * command allows it, else through the shell. A run is clean when the runner killed
   * every process it started and found none left, and the host sees none of the sandbox
   * uid in the container's cgroup either. Anything else (processes left, or a runner that
   * stopped answering after the function started) has the container frozen at once and
   * yields an unclean outcome with nothing read from the workspace: the pool destroys the
   * container, and the invocation still gets its answer.
   */
  async run(req: RunRequest): Promise<RunOutcome> {
    const engine = this.c.engine;
    const runner = engine.runner;
    if (!runner?.usable) throw new Error(`no runner connection in ${this.c.name}`);
    if (engine.uid === undefined) throw new Error(`container ${this.c.name} has no sandbox uid`);
    const { meter } = this.deps;
    if (engine.cgroup === undefined) engine.cgroup = engine.pid ? await meter.locate(engine.pid) : null;
    const call = req.handler && engine.spec.handler ? req.handler : undefined;
    const live = engine.handler;
    const same = call !== undefined && live !== null && live.key === call.key;
    // Any other run ends the live handler first (the runner does): its cgroup goes after.
    const ended = live && !same ? live : null;
    if (ended) engine.handler = null;
    const session = await meter.begin(engine.cgroup, req.timeoutMs, same ? live : undefined);
    const forked = !call && engine.spec.zygote && runner.zygote === 'ready' ? zygoteArgv(req.command) : null;
    engine.runStarting();
    let started = false;
    let exec: RunnerOutcome;
    try {
      exec = await runner.run(
        {
          mode: call ? 'handler' : forked ? 'zygote' : 'exec',
          // A plain command line starts without a shell, as `python main.py` would.
          argv: call ? engine.spec.handler! : (forked ?? plainArgv(req.command) ?? ['/bin/sh', '-c', req.command]),
          cwd: WORKDIR,
          uid: engine.uid,
          gid: engine.uid,
          env: call ? [...req.env, `NANOGRID_HANDLER=${call.entry}`] : req.env,
          ...(call ? { handler: { key: call.key, context: call.context } } : {}),
          timeoutMs: req.timeoutMs,
          outputLimitBytes: this.deps.outputLimitBytes,
          ...(req.input ? { stdin: INPUT_PATH } : {}),
          ...(this.deps.spoolLimitBytes ? { spool: { stdout: SPOOL_STDOUT, stderr: SPOOL_STDERR, limitBytes: this.deps.spoolLimitBytes } } : {}),
          // A live handler is placed already: only a new process is held.
          ...(same ? {} : { hold: session.attach }),
          onStart: () => {
            started = true;
            this.owner.started(this.c, this.startKind, this.acquireMs, Date.now());
            req.onStart();
          },
        },
        RUNNER_BOUND_MS,
      );
    } catch (err) {
      await session.end();
      await this.forgetHandler(ended);
      if (!(started && err instanceof RunnerUnresponsive)) throw err;
      runner.close();
      await this.quarantine();
      exec = {
        exitCode: -1,
        signal: 0,
        timedOut: true,
        durationMs: req.timeoutMs + RUNNER_BOUND_MS,
        stdout: '',
        stderr: err.message,
        stdoutTruncated: false,
        stderrTruncated: false,
        clean: false,
        leftovers: -1,
        stdoutSpooled: 0,
        stderrSpooled: 0,
      };
      return { exec, memory: NO_MEASUREMENT, disk: null, spooled: {} };
    }
    const staying = call && exec.clean ? this.handlerAfter(call.key, exec, session, same ? live : null) : null;
    // The runner's word is checked from outside: the workspace is read only after both.
    const left = exec.clean ? engine.leftoverProcesses(staying?.hostPid) : exec.leftovers;
    if (left !== 0) {
      exec = { ...exec, clean: false, leftovers: left };
      await this.quarantine();
      await this.forgetHandler(ended);
      return { exec, memory: await session.end(), disk: null, spooled: {} };
    }
    const fresh = staying !== null && staying !== live;
    const [memory, disk] = await Promise.all([session.end({ keepScope: fresh }), engine.scratchUsage().catch(() => null)]);
    if (fresh) staying.scope = session.kept;
    engine.handler = staying;
    // A handler that ended in this run, or was replaced, leaves its cgroup (it is empty now).
    await this.forgetHandler(ended ?? (live && live !== staying ? live : null));
    const ctl = engine.controlHostPath;
    const spooled = {
      ...(exec.stdoutTruncated && exec.stdoutSpooled > 0 ? { stdout: join(ctl, SPOOL_NAMES.stdout) } : {}),
      ...(exec.stderrTruncated && exec.stderrSpooled > 0 ? { stderr: join(ctl, SPOOL_NAMES.stderr) } : {}),
    };
    return { exec, memory, disk, spooled };
  }

  /**
   * The handler that lives on after this call, or null: the live one when it served the
   * call, or the new one the call started, found on the host by its namespace pid (a
   * handler the host cannot find fails the host's check: it counts as a leftover).
   */
  private handlerAfter(key: string, exec: RunnerOutcome, session: MeterSession, live: LiveHandler | null): LiveHandler | null {
    const h = exec.handler;
    if (!h?.alive) return null;
    if (live && !h.init && live.nsPid === h.pid) return live;
    const engine = this.c.engine;
    const cg = engine.cgroup;
    const files = !cg ? [] : cg.version === 1 ? [join(cg.dir, 'cgroup.procs')] : [join(cg.dir, INIT_LEAF, 'cgroup.procs'), ...(session.scopeDir ? [join(session.scopeDir, 'cgroup.procs')] : [])];
    for (const f of files) {
      const hostPid = hostPidFor(h.pid, f);
      if (hostPid !== null) return { key, nsPid: h.pid, hostPid, baselineBytes: session.idleBytes ?? 0 };
    }
    return null;
  }

  private async forgetHandler(h: LiveHandler | null): Promise<void> {
    if (this.c.engine.handler === h && h) this.c.engine.handler = null;
    await h?.scope?.remove().catch(() => false);
  }

  /** Freezes the container where it is: nothing of it runs until the pool destroys it. */
  private async quarantine(): Promise<void> {
    await this.c.engine.freeze().catch(() => undefined);
  }

  /** Kills the run's processes now (the runner reports the run's end as usual). */
  async kill(): Promise<void> {
    this.c.engine.runner?.kill();
  }

  release(end: LeaseEnd): void {
    if (this.released) return;
    this.released = true;
    this.owner.takeBack(this.c, end);
  }
}
