import type { LiveHandler } from './liveHandler.js';
import type Docker from 'dockerode';
import { closeSync, openSync, readdirSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { BUILD_CACHE_DIR, CONTROL_DIR, RUNNER_SOCKET } from '../core/sandbox.js';
import type { BuildView } from '../build/buildCache.js';
import { withTimeout } from '../core/timeout.js';
import { pidsIn, procStatus } from './hostPid.js';
import { engineNameFor, groupFor, passwdFor } from './sandboxUser.js';
import type { CgroupRef } from './memoryMeter.js';
import { CgroupHandles, pidsInText } from './cgroupHandles.js';
import { RunnerClient } from './runnerClient.js';
import { cpuFor } from './cpuShare.js';
import { createOptions, HOST_CPUS, MB, type ContainerSpec, type ContainerStep } from './containerSpec.js';
import { locateFreezer, type Freezer } from './freezer.js';
import { locateLimits, type CgroupLimits } from './cgroupLimits.js';
import { CONTROL, type ScratchUsage, type StagedCode } from './scratch.js';
import { Workspace } from './workspace.js';

export type { ContainerSpec, ContainerStep, SandboxSpec } from './containerSpec.js';

/** The label that carries a container's sandbox uid. */
export { LABEL_UID } from './containerSpec.js';

/** How long a fresh runner may take to listen, and its zygote to be ready. */
const RUNNER_START_MS = 15_000;
/** Tries at a uid another container (of any agent on this host) has not taken. */
const UID_ATTEMPTS = 8;

/**
 * The engine calls for one container, each bounded by the API timeout. It keeps no
 * state machine: its ContainerProxy decides when each call may happen.
 */
export class DockerContainer {
  /** PID of the container's init on the host, for locating its cgroup. */
  pid: number | undefined;
  /** Its side of the build cache (a runtime with one), after create. */
  build: BuildView | undefined;
  /** The host uid (and gid) its function runs as, from create on. */
  uid: number | undefined;
  /** The engine's name for it (its uid's), from create on. */
  engineName: string | undefined;
  /** Its memory cgroup, located on first use and kept for the container's life. */
  cgroup: CgroupRef | null | undefined;
  /** The connection to the container's runner, from create on. */
  runner: RunnerClient | undefined;
  /** Handler mode: the handler living in it between calls, or null. */
  handler: LiveHandler | null = null;
  /** The workspace on its scratch file system: staged code, input, the clean slate between runs. */
  private workspace: Workspace | undefined;
  private cgroupFreezer: Freezer | null = null;
  /** Its memory and CPU cgroups, located on the first change of its limits. */
  private limits: CgroupLimits | null | undefined;
  private frozen = false;
  private memoryMb: number;
  private handle: Docker.Container | undefined;

  constructor(
    private readonly docker: Docker,
    readonly spec: ContainerSpec,
  ) {
    this.memoryMb = spec.memoryMb;
  }

  get name(): string {
    return this.spec.name;
  }

  /** The engine's handle, for exec; only after create. */
  get engineHandle(): Docker.Container {
    if (!this.handle) throw new Error(`container ${this.name} was never created`);
    return this.handle;
  }

  /** The invocation's workspace in the agent's view of it, where no link is followed. */
  get workspaceHostPath(): string {
    return this.space().scratch.path('work');
  }

  /** The runner's folder in the agent's view: the streams it kept whole are read from here. */
  get controlHostPath(): string {
    return this.space().scratch.path(CONTROL);
  }

  /**
   * Creates and starts the container with the runner as its init and connects to the
   * runner; the container is left running. With `awaitZygote` (stock containers) it also
   * waits for the zygote; a cold start does not: its first run goes through plain exec
   * while the zygote starts beside it.
   */
  async create(memoryMb = this.memoryMb, opts: { awaitZygote: boolean } = { awaitZygote: true }): Promise<void> {
    const s = this.spec;
    this.memoryMb = memoryMb;
    await mkdir(s.hostDir, { recursive: true, mode: 0o755 });
    await chmod(s.hostDir, 0o755);
    // The mount point of the runner's folder, which lives on the scratch file system.
    await mkdir(join(s.hostDir, CONTROL_DIR), { mode: 0o700 });
    // Root's: the function reads its build cache entries there and cannot write them.
    if (s.buildCache) await mkdir(join(s.hostDir, BUILD_CACHE_DIR), { mode: 0o755 });
    // Taken first: the binds name its folders. A ready one is at hand (ScratchStock).
    this.workspace = new Workspace(await this.step('scratch', s.scratch.take()));
    await this.step('create', this.createEngineContainer(memoryMb, opts.awaitZygote, this.workspace.scratch.spec.mountDir));
    const uid = this.uid!;
    await writeFile(join(s.hostDir, 'passwd'), passwdFor(uid), { mode: 0o644 });
    await writeFile(join(s.hostDir, 'group'), groupFor(uid), { mode: 0o644 });
    await this.step('start', this.call('start', this.engineHandle.start()));
    const info = await this.step('inspect', this.call('inspect', this.engineHandle.inspect()));
    this.pid = info.State.Pid;
    if (s.buildCache) this.build = { cacheDir: join(s.hostDir, BUILD_CACHE_DIR), tmpDir: this.space().scratch.path('tmp'), imageId: info.Image, installed: new Set() };
    this.runner = await this.step(
      'connect',
      (async () => {
        if (s.freezer === 'cgroup') this.cgroupFreezer = await locateFreezer(this.pid!);
        return this.connectRunner();
      })(),
    );
    if (s.zygote && opts.awaitZygote) await this.step('zygote', this.runner.zygoteReady(RUNNER_START_MS));
  }

  /** Times one step of a container's life for an observer (the bench's anatomy of a cold start). */
  private async step<T>(name: ContainerStep, work: Promise<T>): Promise<T> {
    const o = this.spec.observe;
    if (!o) return work;
    o(name, 'begin');
    try {
      return await work;
    } finally {
      o(name, 'end');
    }
  }

  /**
   * Creates the engine's container under a uid of its own: the engine refuses a name that
   * another live container has, and the name is the uid's, so a uid taken by any other
   * container on this host (another agent's too) is passed over.
   */
  private async createEngineContainer(memoryMb: number, awaitZygote: boolean, scratchDir: string): Promise<void> {
    const s = this.spec;
    for (let attempt = 1; ; attempt++) {
      const uid = s.sandbox.uids.take();
      try {
        this.handle = await this.call(
          'create',
          this.docker.createContainer(createOptions(s, uid, memoryMb, awaitZygote, scratchDir)),
        );
        this.uid = uid;
        this.engineName = engineNameFor(uid);
        return;
      } catch (err) {
        s.sandbox.uids.release(uid);
        if (!isConflict(err) || attempt >= UID_ATTEMPTS) throw err;
      }
    }
  }

  /**
   * Socket paths are limited to 108 bytes and a host folder can be deeper: connect through
   * /proc/self/fd/N, a short name for the runner's folder held open meanwhile.
   */
  private async connectRunner(): Promise<RunnerClient> {
    const fd = openSync(this.controlHostPath, 'r');
    try {
      return await RunnerClient.connect(join(`/proc/self/fd/${fd}`, RUNNER_SOCKET), RUNNER_START_MS);
    } finally {
      closeSync(fd);
    }
  }

  /** A cold start's zygote (the runner's --lazy one) starts after the current run. */
  startZygote(): void {
    if (this.spec.zygote) this.runner?.startZygote();
  }

  /** How freezing is done for this container. */
  get freezeMethod(): 'cgroup-v1' | 'cgroup-v2' | 'docker' {
    return this.cgroupFreezer?.kind ?? 'docker';
  }

  /** Stops every process of the container where it is (the cgroup freezer, else dockerd's pause). */
  async freeze(): Promise<void> {
    // Marked before the call: a freeze that fails or times out may still take effect (a
    // gVisor sandbox can take seconds to reach FROZEN), and removal must thaw what it
    // froze, or the OCI runtime's kill waits on the frozen sandbox for ever.
    this.frozen = true;
    if (this.cgroupFreezer) await withTimeout(`freeze ${this.name}`, this.spec.apiTimeoutMs, this.cgroupFreezer.freeze());
    else await this.call('pause', this.engineHandle.pause());
  }

  async thaw(): Promise<void> {
    if (this.cgroupFreezer) await withTimeout(`thaw ${this.name}`, this.spec.apiTimeoutMs, this.cgroupFreezer.thaw());
    else await this.call('unpause', unpauseContainer(this.engineHandle));
    this.frozen = false;
  }

  /**
   * What is left of the function's processes, seen from the host: the container's cgroup
   * holding a process of the sandbox uid but `except` (a live handler's host pid). The
   * runner checks the same from inside before it answers; this check does not depend on it.
   */
  leftoverProcesses(except?: number): number {
    const cg = this.cgroup;
    if (!cg || this.uid === undefined) return 0;
    let n = 0;
    const count = (pids: number[]) => {
      // The container's init (the runner) is root's for the container's life, and its pid
      // cannot be reused while the container lives: no need to look it up on every run.
      for (const pid of pids) if (pid !== this.pid && pid !== except && procStatus(pid)?.uid === this.uid) n++;
    };
    if (cg.version === 1) {
      // v1: every process of the container is in its one memory cgroup (a container cannot
      // make cgroups: its cgroupfs is read-only), read through a file kept open.
      let raw = '';
      try {
        raw = (cg.handles ??= new CgroupHandles(cg.dir)).read('cgroup.procs');
      } catch {
        // gone with the container
      }
      count(pidsInText(raw));
    } else {
      for (const file of procsFiles(cg.dir)) count(pidsIn(file));
    }
    return n;
  }

  /**
   * Applies a new memory limit (swap equal to it, so the limit is the real ceiling) and the
   * CPU that goes with it, written into the container's cgroup: dockerd's update goes
   * through containerd and an exec of the OCI runtime (15-25 ms of a stock container's
   * start here; gVisor's runsc has no update at all). dockerd's record of the limits stays
   * the create's: nothing reads it. Through dockerd only when the cgroup is not found.
   */
  async setMemory(memoryMb: number): Promise<void> {
    if (memoryMb === this.memoryMb) return;
    const bytes = memoryMb * MB;
    const cpu = cpuFor(memoryMb, this.spec.cpu, HOST_CPUS);
    if (this.limits === undefined) this.limits = this.pid === undefined ? null : await locateLimits(this.pid);
    if (this.limits) await this.limits.apply({ memoryBytes: bytes, nanoCpus: cpu.nanoCpus, shares: cpu.shares });
    else await this.call('update', this.engineHandle.update({ Memory: bytes, MemorySwap: bytes, NanoCpus: cpu.nanoCpus, CpuShares: cpu.shares }));
    this.memoryMb = memoryMb;
  }

  /** Puts `code` in the workspace, unless that version is already there. */
  stage(code: StagedCode): Promise<void> {
    return this.space().stage(code);
  }

  /** Puts the run's input in the workspace (after stage). */
  writeInput(bytes: Buffer): Promise<void> {
    return this.space().writeInput(bytes);
  }

  /** A run starts: what the scratch space held after the last one no longer says anything. */
  runStarting(): void {
    this.workspace?.runStarting();
  }

  /**
   * Gives the next run a clean slate (Workspace.reset: skipped when the run provably left
   * nothing); while a handler lives, its /tmp and /dev/shm stay with it.
   */
  resetWorkspace(): Promise<void> {
    return this.space().reset({ keepScratch: this.handler !== null });
  }

  /** What the writable space holds now (after a run: whether the run filled it). */
  scratchUsage(): Promise<ScratchUsage> {
    return this.space().usage();
  }

  private space(): Workspace {
    if (!this.workspace) throw new Error(`container ${this.name} has no scratch file system`);
    return this.workspace;
  }

  /**
   * Force-removes the container and its host folder. Throws only on an engine error other
   * than "gone". A container frozen through its cgroup has every process killed while it
   * is frozen, then thawed (dockerd does not know of the freeze and could not stop it): no
   * process of it runs again.
   */
  async destroy(opts: { removeAfter?: Promise<unknown> } = {}): Promise<void> {
    if (this.workspace) this.spec.scratch.returning?.();
    this.runner?.close();
    this.cgroup?.handles?.close();
    // A removal that waits (an eviction) kills first, so that nothing of the container runs
    // or holds memory meanwhile: one still in its pause grace is frozen for the kill.
    if (opts.removeAfter && !this.frozen && this.cgroupFreezer) await this.freeze().catch(() => undefined);
    if (this.frozen && this.cgroupFreezer) {
      const f = this.cgroupFreezer;
      await this.step(
        'kill',
        (async () => {
          await f.killAll().catch(() => 0);
          await f.thaw().catch(() => undefined);
        })(),
      );
    }
    let gone = !this.handle;
    try {
      // An evicted container's processes are dead by now (its memory is back); the engine's
      // removal waits for the cold start it made room for, so as not to compete with it.
      if (opts.removeAfter) await withTimeout('an eviction waits for its cold start', this.spec.apiTimeoutMs, opts.removeAfter).catch(() => undefined);
      if (this.handle) {
        await this.step(
          'remove',
          this.call('remove', this.handle.remove({ force: true, v: true })).catch((err: unknown) => {
            if (!isNotFound(err)) throw err;
          }),
        );
        gone = true;
      }
    } finally {
      const scratch = this.workspace?.scratch;
      this.workspace = undefined;
      // Only a removed container's file system goes back for another container; when the
      // engine could not remove it (an outage) it is detached now (lazily, while the
      // container still holds it) and its image deleted.
      if (scratch) await this.step('scratch back', this.spec.scratch.give(scratch, { reusable: gone }));
      await rm(this.spec.hostDir, { recursive: true, force: true });
      if (this.uid !== undefined) this.spec.sandbox.uids.release(this.uid);
    }
  }

  private call<T>(what: string, work: Promise<T>): Promise<T> {
    return withTimeout(`docker ${what} ${this.name}`, this.spec.apiTimeoutMs, work);
  }
}

/** cgroup.procs of a container's cgroup and of its children (cgroup v2 runs in child cgroups). */
function procsFiles(dir: string): string[] {
  const files = [join(dir, 'cgroup.procs')];
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) files.push(join(dir, e.name, 'cgroup.procs'));
  } catch {
    // a v1 cgroup without children
  }
  return files;
}

/**
 * Unpauses, tolerating the engine's race where an unpause right after a pause answers
 * "is not paused" (or "cannot resume a running process"): if the engine then reports the
 * container running and not paused, it is in the state unpause wants.
 */
export async function unpauseContainer(c: Docker.Container): Promise<void> {
  try {
    await c.unpause();
  } catch (err) {
    // Both are dockerd 20.10's answers when the container is already running.
    if (!/is not paused|cannot resume a running process/.test(String(err))) throw err;
    const info = await c.inspect();
    if (!info.State.Running || info.State.Paused) throw err;
  }
}

export function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { statusCode?: number }).statusCode === 404;
}

/** The engine's answer to a name another container has. */
export function isConflict(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { statusCode?: number }).statusCode === 409;
}
