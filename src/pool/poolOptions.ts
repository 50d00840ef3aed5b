import type Docker from 'dockerode';
import { plainArgv, zygoteArgv, type Runtime, type RuntimeConfig } from '../core/runtimes.js';
import { containerHostDir, LABEL_AGENT, LABEL_RUN, LABEL_RUNTIME, RUNNER_MOUNT } from '../core/sandbox.js';
import type { ScratchSource } from '../container/scratch.js';
import type { Logger } from '../core/log.js';
import type { CpuPolicy } from '../container/cpuShare.js';
import type { ContainerSpec, SandboxSpec } from '../container/dockerContainer.js';
import type { EngineWatch } from './engineWatch.js';
import type { LeaseRunDeps } from './lease.js';

export interface PoolOptions {
  runtime: Runtime;
  config: RuntimeConfig;
  docker: Docker;
  agentId: string;
  runId: string;
  workRoot: string;
  network: string;
  defaultMemoryMb: number;
  idleTimeoutMs: number;
  apiTimeoutMs: number;
  log: Logger;
  run: LeaseRunDeps;
  /** Host folder of the runner and the zygote (runner/build.sh). */
  runnerDir: string;
  freezer: 'cgroup' | 'docker';
  /** How long a container stays thawed after a run before it is frozen (0: at once). */
  pauseGraceMs: number;
  /** Each container's writable space: the agent's ScratchStock, shared by its pools. */
  scratch: ScratchSource;
  /** Who functions run as (a uid per container, shared by the agent's pools) and their limits. */
  sandbox: SandboxSpec;
  cpu: CpuPolicy;
  /** Whether the engine answers; the pool stops creating while it does not, and rebuilds after. */
  engine: EngineWatch;
}

/** What one container of a pool is made from: its image, folders, labels, limits and sandbox. */
export function containerSpec(o: PoolOptions, name: string): ContainerSpec {
  const argv = o.config.zygote ? zygoteArgv(o.config.command) : null;
  return {
    image: o.config.image,
    name,
    hostDir: containerHostDir(o.workRoot, o.agentId, name),
    network: o.network,
    memoryMb: o.defaultMemoryMb,
    labels: { [LABEL_AGENT]: o.agentId, [LABEL_RUN]: o.runId, [LABEL_RUNTIME]: o.runtime },
    apiTimeoutMs: o.apiTimeoutMs,
    runnerDir: o.runnerDir,
    // The zygote's command for this runtime, or null when runs go through the shell.
    zygote: argv ? [argv[0]!, `${RUNNER_MOUNT}/zygote.py`] : null,
    buildCache: o.config.buildCache,
    handler: o.config.handler === null ? null : plainArgv(o.config.handler),
    freezer: o.freezer,
    scratch: o.scratch,
    cpu: o.cpu,
    sandbox: o.sandbox,
    ociRuntime: o.config.ociRuntime,
  };
}
