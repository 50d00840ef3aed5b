import type { StartKind } from '../core/result.js';
import { plainArgv, zygoteArgv } from '../core/runtimes.js';
import { join } from 'node:path';
import { INPUT_PATH, SPOOL_NAMES, SPOOL_STDERR, SPOOL_STDOUT, WORKDIR } from '../core/sandbox.js';
import { NO_MEASUREMENT, type Measurement, type MemoryMeter } from '../container/memoryMeter.js';
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
    const session = await meter.begin(engine.cgroup, req.timeoutMs);
    const forked = engine.spec.zygote && runner.zygote === 'ready' ? zygoteArgv(req.command) : null;
    engine.runStarting();
    let started = false;
    let exec: RunnerOutcome;
    try {
      exec = await runner.run(
        {
          mode: forked ? 'zygote' : 'exec',
          // A plain command line starts without a shell, as `python main.py` would.
          argv: forked ?? plainArgv(req.command) ?? ['/bin/sh', '-c', req.command],
          cwd: WORKDIR,
          uid: engine.uid,
          gid: engine.uid,
          env: req.env,
          timeoutMs: req.timeoutMs,
          outputLimitBytes: this.deps.outputLimitBytes,
          ...(req.input ? { stdin: INPUT_PATH } : {}),
          ...(this.deps.spoolLimitBytes ? { spool: { stdout: SPOOL_STDOUT, stderr: SPOOL_STDERR, limitBytes: this.deps.spoolLimitBytes } } : {}),
          hold: session.attach,
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
    // The runner's word is checked from outside: the workspace is read only after both.
    const left = exec.clean ? engine.leftoverProcesses() : exec.leftovers;
    if (left !== 0) {
      exec = { ...exec, clean: false, leftovers: left };
      await this.quarantine();
      return { exec, memory: await session.end(), disk: null, spooled: {} };
    }
    const [memory, disk] = await Promise.all([session.end(), engine.scratchUsage().catch(() => null)]);
    const ctl = engine.controlHostPath;
    const spooled = {
      ...(exec.stdoutTruncated && exec.stdoutSpooled > 0 ? { stdout: join(ctl, SPOOL_NAMES.stdout) } : {}),
      ...(exec.stderrTruncated && exec.stderrSpooled > 0 ? { stderr: join(ctl, SPOOL_NAMES.stderr) } : {}),
    };
    return { exec, memory, disk, spooled };
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
