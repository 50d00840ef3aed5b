import type Docker from 'dockerode';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Runtime } from './config.js';
import type { CgroupRef } from './memoryMeter.js';
import { withTimeout } from './timeout.js';

export type ContainerState = 'creating' | 'paused' | 'running' | 'wiping' | 'retiring';

/** The uid:gid functions run as inside the container; the workspace is chowned to it. */
export const SANDBOX_UID = 65534;
export const SANDBOX_GID = 65534;
/** Where the container's own host folder is mounted; the workspace is a folder in it. */
export const SANDBOX_MOUNT = '/sandbox';
export const WORKSPACE_NAME = 'work';

export const LABEL_AGENT = 'nanogrid.agent';
export const LABEL_RUN = 'nanogrid.run';
export const LABEL_RUNTIME = 'nanogrid.runtime';

const ALLOWED: Record<ContainerState, ContainerState[]> = {
  creating: ['paused', 'running', 'retiring'],
  paused: ['running', 'retiring'],
  running: ['wiping', 'retiring'],
  // wiping -> running: handed straight to a waiting request of the same function.
  wiping: ['paused', 'running', 'retiring'],
  retiring: [],
};

export interface ContainerSpec {
  runtime: Runtime;
  image: string;
  name: string;
  hostDir: string;
  network: string;
  memoryMb: number;
  labels: Record<string, string>;
  apiTimeoutMs: number;
}

/**
 * One container and its state machine. Only its RuntimePool calls these methods, and
 * only for a container whose state the pool has just moved, so no two callers race.
 */
export class WarmContainer {
  state: ContainerState = 'creating';
  /** The function this container last served; null while it is a fresh prewarm one. */
  functionId: string | null = null;
  lastUsedAt = Date.now();
  /** When the current run's function started, for the pool's run-time estimate. */
  runStartedAt = 0;
  served = 0;
  memoryMb: number;
  /** PID of the container's init on the host, for locating its cgroup. */
  pid: number | undefined;
  /** Resolved lazily by the memory meter and kept for the container's life. */
  cgroup: CgroupRef | null | undefined;
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

  get container(): Docker.Container {
    if (!this.handle) throw new Error(`container ${this.name} was never created`);
    return this.handle;
  }

  /** Host path of the invocation's workspace, seen as /sandbox/work inside. */
  get workspaceHostPath(): string {
    return join(this.spec.hostDir, WORKSPACE_NAME);
  }

  to(next: ContainerState): void {
    if (!ALLOWED[this.state].includes(next)) {
      throw new Error(`container ${this.name}: illegal transition ${this.state} -> ${next}`);
    }
    this.state = next;
  }

  /** Creates and starts the container with a memory limit; it is left running. */
  async create(memoryMb = this.memoryMb): Promise<void> {
    const s = this.spec;
    this.memoryMb = memoryMb;
    await mkdir(s.hostDir, { recursive: true, mode: 0o755 });
    const bytes = memoryMb * 1024 * 1024;
    this.handle = await this.call(
      'create',
      this.docker.createContainer({
        name: s.name,
        Image: s.image,
        Cmd: ['sleep', 'infinity'],
        Labels: s.labels,
        WorkingDir: SANDBOX_MOUNT,
        HostConfig: {
          // Each container gets its own host folder: nothing is shared between containers.
          Binds: [`${s.hostDir}:${SANDBOX_MOUNT}:rw`],
          NetworkMode: s.network,
          ReadonlyRootfs: true,
          Tmpfs: { '/tmp': 'rw,nosuid,nodev,size=64m' },
          Memory: bytes,
          MemorySwap: bytes,
          PidsLimit: 512,
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges'],
          Init: false,
        },
      }),
    );
    await this.call('start', this.container.start());
    const info = await this.call('inspect', this.container.inspect());
    this.pid = info.State.Pid;
  }

  async pause(): Promise<void> {
    await this.call('pause', this.container.pause());
  }

  async unpause(): Promise<void> {
    await this.call('unpause', unpauseContainer(this.container));
  }

  /** Applies a new memory limit; swap equal to it, so the limit is the real ceiling. */
  async setMemory(memoryMb: number): Promise<void> {
    if (memoryMb === this.memoryMb) return;
    const bytes = memoryMb * 1024 * 1024;
    await this.call('update', this.container.update({ Memory: bytes, MemorySwap: bytes }));
    this.memoryMb = memoryMb;
  }

  async kill(): Promise<void> {
    await this.call('kill', this.container.kill()).catch(() => undefined);
  }

  /** Removes the workspace left by the last invocation. Host-side: no exec needed. */
  async wipeWorkspace(): Promise<void> {
    await rm(this.workspaceHostPath, { recursive: true, force: true });
  }

  /** Force-removes the container and its host folder. Never throws. */
  async remove(): Promise<void> {
    if (this.handle) {
      await this.call('remove', this.handle.remove({ force: true, v: true })).catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    }
    await rm(this.spec.hostDir, { recursive: true, force: true });
  }

  async isRunning(): Promise<boolean> {
    const info = await this.call('inspect', this.container.inspect());
    return info.State.Running && !info.State.Paused;
  }

  private call<T>(what: string, work: Promise<T>): Promise<T> {
    return withTimeout(`docker ${what} ${this.name}`, this.spec.apiTimeoutMs, work);
  }
}

/**
 * Unpauses, tolerating the engine's race where an unpause right after a pause answers
 * "is not paused": if the engine then reports the container running and not paused, it
 * is in the state unpause wants.
 */
export async function unpauseContainer(c: Docker.Container): Promise<void> {
  try {
    await c.unpause();
  } catch (err) {
    if (!/is not paused/.test(String(err))) throw err;
    const info = await c.inspect();
    if (!info.State.Running || info.State.Paused) throw err;
  }
}

export function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { statusCode?: number }).statusCode === 404;
}
