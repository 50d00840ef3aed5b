import type Docker from 'dockerode';
import { closeSync, openSync } from 'node:fs';
import { chmod, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { cpus } from 'node:os';
import { CONTROL_DIR, controlHostDir, RUNNER_MOUNT, RUNNER_SOCKET, SANDBOX_MOUNT, WORKDIR } from '../core/sandbox.js';
import { withTimeout } from '../core/timeout.js';
import type { CgroupRef } from '../run/memoryMeter.js';
import { RunnerClient } from '../run/runnerClient.js';
import type { CodeVersion } from '../run/codeCache.js';
import { cpuFor, type CpuPolicy } from './cpuShare.js';
import { locateFreezer, type Freezer } from './freezer.js';
import { Scratch, type ScratchSpec, type ScratchUsage } from './scratch.js';

export interface ContainerSpec {
  image: string;
  name: string;
  /** The container's own host folder, mounted at SANDBOX_MOUNT. */
  hostDir: string;
  network: string;
  memoryMb: number;
  labels: Record<string, string>;
  apiTimeoutMs: number;
  /** Host folder with the runner binary and the zygote, mounted read-only at RUNNER_MOUNT. */
  runnerDir: string;
  /** The zygote's command (for example python3 /nanogrid/zygote.py), or null for none. */
  zygote: string[] | null;
  /** Freeze through the container's cgroup (fast) or through dockerd's pause. */
  freezer: 'cgroup' | 'docker';
  /** The writable space: workspace, /tmp and /dev/shm on one file system with a hard limit. */
  scratch: Omit<ScratchSpec, 'timeoutMs'>;
  cpu: CpuPolicy;
}

const HOST_CPUS = Math.max(1, cpus().length);

/** How long a fresh runner may take to listen, and its zygote to be ready. */
const RUNNER_START_MS = 15_000;

const MB = 1024 * 1024;

/**
 * The engine calls for one container, each bounded by the API timeout. It keeps no
 * state machine: its WarmContainer decides when each call may happen.
 */
export class DockerContainer {
  /** PID of the container's init on the host, for locating its cgroup. */
  pid: number | undefined;
  /** Its memory cgroup, located on first use and kept for the container's life. */
  cgroup: CgroupRef | null | undefined;
  /** The connection to the container's runner, from create on. */
  runner: RunnerClient | undefined;
  /** The code version in the workspace, kept between runs of that version. */
  private staged: { id: string; names: readonly string[] } | null = null;
  private cgroupFreezer: Freezer | null = null;
  private scratch: Scratch | undefined;
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

  /** Host path of the invocation's workspace. */
  get workspaceHostPath(): string {
    return join(this.spec.scratch.mountDir, 'work');
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
    // The runner's socket lives where only root can go: the function cannot reach it.
    await mkdir(controlHostDir(s.hostDir), { mode: 0o700 });
    const bytes = memoryMb * MB;
    const cpu = cpuFor(memoryMb, s.cpu, HOST_CPUS);
    // The file system is made while the engine creates the container; both before start,
    // when the binds are made.
    const scratch = Scratch.create({ ...s.scratch, timeoutMs: s.apiTimeoutMs }).then((x) => (this.scratch = x));
    const created = this.docker.createContainer({
        name: s.name,
        Image: s.image,
        Entrypoint: [`${RUNNER_MOUNT}/runner`],
        // A cold start's zygote waits for the first run (--lazy): it would compete with it.
        Cmd: [`${SANDBOX_MOUNT}/${CONTROL_DIR}/${RUNNER_SOCKET}`, ...(s.zygote ? [...(opts.awaitZygote ? [] : ['--lazy']), ...s.zygote] : [])],
        // The runner starts as root to switch each run to the sandbox user; the
        // capabilities below are all it keeps, and the function none of them.
        User: '0:0',
        Labels: s.labels,
        WorkingDir: SANDBOX_MOUNT,
        HostConfig: {
          // Each container gets its own host folder and scratch file system: nothing is
          // shared between containers. Everything the function may write is on the scratch
          // file system (the root file system is read-only), under its one limit.
          Binds: [
            `${s.hostDir}:${SANDBOX_MOUNT}:rw`,
            `${s.runnerDir}:${RUNNER_MOUNT}:ro`,
            `${join(s.scratch.mountDir, 'work')}:${WORKDIR}:rw`,
            `${join(s.scratch.mountDir, 'tmp')}:/tmp:rw`,
            `${join(s.scratch.mountDir, 'shm')}:/dev/shm:rw`,
          ],
          NetworkMode: s.network,
          ReadonlyRootfs: true,
          Memory: bytes,
          MemorySwap: bytes,
          NanoCpus: cpu.nanoCpus,
          CpuShares: cpu.shares,
          PidsLimit: 512,
          CapDrop: ['ALL'],
          CapAdd: ['SETUID', 'SETGID', 'KILL'],
          SecurityOpt: ['no-new-privileges'],
          Init: false,
        },
      });
    const [made] = await Promise.allSettled([scratch]);
    this.handle = await this.call('create', created);
    if (made.status === 'rejected') throw made.reason;
    await this.call('start', this.engineHandle.start());
    const info = await this.call('inspect', this.engineHandle.inspect());
    this.pid = info.State.Pid;
    if (s.freezer === 'cgroup') this.cgroupFreezer = await locateFreezer(this.pid);
    this.runner = await this.connectRunner();
    if (s.zygote && opts.awaitZygote) await this.runner.zygoteReady(RUNNER_START_MS);
  }

  /**
   * Socket paths are limited to 108 bytes and a host folder can be deeper: connect through
   * /proc/self/fd/N, a short name for the control folder held open meanwhile.
   */
  private async connectRunner(): Promise<RunnerClient> {
    const fd = openSync(controlHostDir(this.spec.hostDir), 'r');
    try {
      return await RunnerClient.connect(join(`/proc/self/fd/${fd}`, RUNNER_SOCKET), RUNNER_START_MS);
    } finally {
      closeSync(fd);
    }
  }

  /** How freezing is done for this container. */
  get freezeMethod(): 'cgroup-v1' | 'cgroup-v2' | 'docker' {
    return this.cgroupFreezer?.kind ?? 'docker';
  }

  /** Stops every process of the container where it is (the cgroup freezer, else dockerd's pause). */
  async freeze(): Promise<void> {
    if (this.cgroupFreezer) await withTimeout(`freeze ${this.name}`, this.spec.apiTimeoutMs, this.cgroupFreezer.freeze());
    else await this.call('pause', this.engineHandle.pause());
    this.frozen = true;
  }

  async thaw(): Promise<void> {
    if (this.cgroupFreezer) await withTimeout(`thaw ${this.name}`, this.spec.apiTimeoutMs, this.cgroupFreezer.thaw());
    else await this.call('unpause', unpauseContainer(this.engineHandle));
    this.frozen = false;
  }

  /** Applies a new memory limit (swap equal to it, so the limit is the real ceiling) and the CPU that goes with it. */
  async setMemory(memoryMb: number): Promise<void> {
    if (memoryMb === this.memoryMb) return;
    const bytes = memoryMb * MB;
    const cpu = cpuFor(memoryMb, this.spec.cpu, HOST_CPUS);
    await this.call('update', this.engineHandle.update({ Memory: bytes, MemorySwap: bytes, NanoCpus: cpu.nanoCpus, CpuShares: cpu.shares }));
    this.memoryMb = memoryMb;
  }

  /** Puts `code` in the workspace, unless that version is already there. */
  async stage(code: CodeVersion): Promise<void> {
    if (this.staged?.id === code.id) return;
    this.staged = null;
    await this.scratchSpace().stage(code);
    this.staged = { id: code.id, names: code.names };
  }

  /** Puts the run's input in the workspace (after stage). */
  writeInput(bytes: Buffer): Promise<void> {
    return this.scratchSpace().writeInput(bytes);
  }

  /**
   * Gives the next run a clean slate: empties /tmp and /dev/shm and removes what the last
   * run added to the workspace (all of it when no code is staged). Host-side: no exec.
   */
  async resetWorkspace(): Promise<void> {
    await this.scratchSpace().wipe(this.staged?.names ?? []);
  }

  /** What the writable space holds now (after a run: whether the run filled it). */
  scratchUsage(): Promise<ScratchUsage> {
    return this.scratchSpace().usage();
  }

  private scratchSpace(): Scratch {
    if (!this.scratch) throw new Error(`container ${this.name} has no scratch file system`);
    return this.scratch;
  }

  /** Force-removes the container and its host folder. Throws only on an engine error other than "gone". */
  async destroy(): Promise<void> {
    this.runner?.close();
    // dockerd does not know of a cgroup freeze: a frozen container would not die.
    if (this.frozen && this.cgroupFreezer) await this.cgroupFreezer.thaw().catch(() => undefined);
    try {
      if (this.handle) {
        await this.call('remove', this.handle.remove({ force: true, v: true })).catch((err: unknown) => {
          if (!isNotFound(err)) throw err;
        });
      }
    } finally {
      // Even when the engine could not remove it (an outage): the scratch file system is
      // detached now (lazily, while the container still holds it) and its image deleted.
      await this.scratch?.destroy();
      await rm(this.spec.hostDir, { recursive: true, force: true });
    }
  }

  private call<T>(what: string, work: Promise<T>): Promise<T> {
    return withTimeout(`docker ${what} ${this.name}`, this.spec.apiTimeoutMs, work);
  }
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
