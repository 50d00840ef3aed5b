import type Docker from 'dockerode';
import { rename } from 'node:fs/promises';
import type { StartKind } from '../core/result.js';
import { SANDBOX_GID, SANDBOX_UID, WORKDIR } from '../core/sandbox.js';
import { runExec, type ExecOutcome } from '../run/exec.js';
import type { Measurement, MemoryMeter } from '../run/memoryMeter.js';
import type { WarmContainer } from './warmContainer.js';

export interface RunRequest {
  /** Shell command run in the workspace. */
  command: string;
  env: string[];
  timeoutMs: number;
  /** Called when the function's process has started. */
  onStart: () => void;
}

export interface RunOutcome {
  exec: ExecOutcome;
  memory: Measurement;
}

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
  /** Moves an unpacked code folder in as the workspace. */
  stage(codeDir: string): Promise<void>;
  /** Moves the workspace back out, for a retry on another container. */
  unstage(codeDir: string): Promise<void>;
  run(req: RunRequest): Promise<RunOutcome>;
  kill(): Promise<void>;
  release(end: LeaseEnd): void;
}

/** What a lease needs from the agent to run a function. */
export interface LeaseRunDeps {
  docker: Docker;
  meter: MemoryMeter;
  outputLimitBytes: number;
  apiTimeoutMs: number;
}

/** What a lease needs from its pool. */
export interface LeaseOwner {
  started(c: WarmContainer, kind: StartKind, acquireMs: number, at: number): void;
  takeBack(c: WarmContainer, end: LeaseEnd): void;
}

export class ContainerLease implements Lease {
  private released = false;

  constructor(
    private readonly c: WarmContainer,
    readonly startKind: StartKind,
    readonly acquireMs: number,
    private readonly owner: LeaseOwner,
    private readonly deps: LeaseRunDeps,
  ) {}

  get containerName(): string {
    return this.c.name;
  }

  async stage(codeDir: string): Promise<void> {
    await rename(codeDir, this.c.engine.workspaceHostPath);
  }

  async unstage(codeDir: string): Promise<void> {
    await rename(this.c.engine.workspaceHostPath, codeDir);
  }

  async run(req: RunRequest): Promise<RunOutcome> {
    const engine = this.c.engine;
    const { meter } = this.deps;
    if (engine.cgroup === undefined) engine.cgroup = engine.pid ? await meter.locate(engine.pid) : null;
    const session = await meter.begin(engine.cgroup, req.timeoutMs);
    const exec = await runExec(this.deps.docker, engine.engineHandle, {
      command: req.command,
      workdir: WORKDIR,
      env: req.env,
      user: `${SANDBOX_UID}:${SANDBOX_GID}`,
      timeoutMs: req.timeoutMs,
      outputLimitBytes: this.deps.outputLimitBytes,
      apiTimeoutMs: this.deps.apiTimeoutMs,
      onTimeout: () => this.kill(),
      onStart: () => {
        this.owner.started(this.c, this.startKind, this.acquireMs, Date.now());
        req.onStart();
      },
    });
    return { exec, memory: await session.end() };
  }

  kill(): Promise<void> {
    return this.c.engine.kill();
  }

  release(end: LeaseEnd): void {
    if (this.released) return;
    this.released = true;
    this.owner.takeBack(this.c, end);
  }
}
