import { join } from 'node:path';
import { DEFAULT_LIMITS } from '../container/limits.js';
import { DEFAULT_UID_RANGE, SandboxUids } from '../container/sandboxUser.js';
import { defaultRunnerDir } from '../core/sandbox.js';
import { DEFAULT_CPU_POLICY } from '../container/cpuShare.js';
import type { ContainerSpec } from '../container/dockerContainer.js';
import { OwnScratch } from '../container/scratch.js';

/** Shared by every solo container of this process: none of them gets a uid another has. */
const uids = new SandboxUids(DEFAULT_UID_RANGE);

/**
 * A container of its own with every folder under `root`, with the agent's defaults for
 * the rest: for tests and the bench, which drive one container without a pool.
 */
export function soloContainerSpec(
  root: string,
  o: { image: string; name: string; labels: Record<string, string>; zygote: string[] | null; handler?: string[] | null; memoryMb?: number; runnerDir?: string; diskBytes?: number; ociRuntime?: string },
): ContainerSpec {
  return {
    image: o.image,
    name: o.name,
    hostDir: join(root, 'host'),
    network: 'none',
    memoryMb: o.memoryMb ?? 128,
    labels: o.labels,
    apiTimeoutMs: 30_000,
    runnerDir: o.runnerDir ?? defaultRunnerDir(),
    zygote: o.zygote,
    handler: o.handler ?? null,
    freezer: 'cgroup',
    scratch: new OwnScratch({ imagePath: join(root, 'scratch.img'), mountDir: join(root, 'scratch'), viewDir: join(root, 'view'), limitBytes: o.diskBytes ?? 64 << 20, reserve: false, timeoutMs: 30_000 }),
    cpu: DEFAULT_CPU_POLICY,
    sandbox: { uids, limits: DEFAULT_LIMITS },
    ociRuntime: o.ociRuntime,
  };
}
