import type Docker from 'dockerode';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { CONTROL_DIR, RUNNER_MOUNT, RUNNER_SOCKET, SANDBOX_MOUNT, WORKDIR } from '../core/sandbox.js';
import { securityOptions, ulimitsFor, type SandboxLimits } from './limits.js';
import { engineNameFor, type SandboxUids } from './sandboxUser.js';
import { cpuFor, type CpuPolicy } from './cpuShare.js';
import { CONTROL, type ScratchSource } from './scratch.js';

/** Who the container's function runs as, and under which limits. */
export interface SandboxSpec {
  uids: SandboxUids;
  limits: SandboxLimits;
}

export interface ContainerSpec {
  image: string;
  /** The agent's own name for it: its host folders and log lines (the engine's name is its uid's). */
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
  /** The handler mode's command (runner/handler.py ...), or null: the runtime has no handler mode. */
  handler: string[] | null;
  /** Give it a build cache folder (BUILD_CACHE_DIR in its host folder) for the compiler front. */
  buildCache?: boolean;
  /** Freeze through the container's cgroup (fast) or through dockerd's pause. */
  freezer: 'cgroup' | 'docker';
  /** Where its writable space comes from: workspace, /tmp and /dev/shm on one file system with a hard limit. */
  scratch: ScratchSource;
  cpu: CpuPolicy;
  sandbox: SandboxSpec;
  /** The engine's OCI runtime for it (runsc: gVisor); unset, dockerd's default (runc). */
  ociRuntime?: string | undefined;
  /** Hears each step of its bring-up and removal begin and end (the bench's anatomy of a cold start). */
  observe?: ((step: ContainerStep, phase: 'begin' | 'end') => void) | undefined;
}

export type ContainerStep = 'scratch' | 'create' | 'start' | 'inspect' | 'connect' | 'zygote' | 'kill' | 'remove' | 'scratch back';

/** The label that carries a container's sandbox uid. */
export const LABEL_UID = 'nanogrid.uid';

export const HOST_CPUS = Math.max(1, cpus().length);
export const MB = 1024 * 1024;

/**
 * The engine's create request for a container under sandbox uid `uid`: the runner as its
 * init, every writable path on the scratch file system, and the limits and sandbox of the
 * spec. Pure: what each container is made of can be read and tested in one place.
 */
export function createOptions(s: ContainerSpec, uid: number, memoryMb: number, awaitZygote: boolean, scratchDir: string): Docker.ContainerCreateOptions {
  const bytes = memoryMb * MB;
  const cpu = cpuFor(memoryMb, s.cpu, HOST_CPUS);
  const limits = s.sandbox.limits;
  return {
    name: engineNameFor(uid),
    Image: s.image,
    Entrypoint: [`${RUNNER_MOUNT}/runner`],
    // A cold start's zygote waits for the first run (--lazy): it would compete with it.
    Cmd: [`${SANDBOX_MOUNT}/${CONTROL_DIR}/${RUNNER_SOCKET}`, ...(s.zygote ? [...(awaitZygote ? [] : ['--lazy']), ...s.zygote] : [])],
    // The runner starts as root to switch each run to the sandbox user; the
    // capabilities below are all it keeps, and the function none of them.
    User: '0:0',
    Labels: { ...s.labels, [LABEL_UID]: String(uid) },
    WorkingDir: SANDBOX_MOUNT,
    HostConfig: {
      // Each container gets its own host folder and scratch file system: nothing is
      // shared between containers. Everything the function may write is on the scratch
      // file system (the root file system is read-only), under its one limit.
      Binds: [
        `${s.hostDir}:${SANDBOX_MOUNT}:rw`,
        `${s.runnerDir}:${RUNNER_MOUNT}:ro`,
        `${join(scratchDir, CONTROL)}:${SANDBOX_MOUNT}/${CONTROL_DIR}:rw`,
        `${join(scratchDir, 'work')}:${WORKDIR}:rw`,
        `${join(scratchDir, 'tmp')}:/tmp:rw`,
        `${join(scratchDir, 'shm')}:/dev/shm:rw`,
        `${join(s.hostDir, 'passwd')}:/etc/passwd:ro`,
        `${join(s.hostDir, 'group')}:/etc/group:ro`,
      ],
      NetworkMode: s.network,
      ReadonlyRootfs: true,
      Memory: bytes,
      MemorySwap: bytes,
      NanoCpus: cpu.nanoCpus,
      CpuShares: cpu.shares,
      PidsLimit: limits.pids,
      Ulimits: ulimitsFor(limits),
      CapDrop: ['ALL'],
      CapAdd: ['SETUID', 'SETGID', 'KILL'],
      SecurityOpt: securityOptions(limits),
      Init: false,
      ...(s.ociRuntime ? { Runtime: s.ociRuntime } : {}),
    },
  };
}
