import type Docker from 'dockerode';
import { mkdir, statfs } from 'node:fs/promises';
import type { Config } from './config.js';
import { codeCacheRoot } from './core/sandbox.js';
import { withTimeout } from './core/timeout.js';
import { ensurePrivateDir } from './core/privateDir.js';
import type { Logger } from './core/log.js';
import { rangeConflict } from './container/sandboxUser.js';
import { scratchImageBytes } from './container/scratch.js';
import { ensureImages } from './container/imagePull.js';
import { removeAgentContainers } from './pool/leftovers.js';

/**
 * What the host must offer before the agent takes a message, checked once at start: each
 * failure names the setting or the command that fixes it. A worker that cannot run what it
 * receives must not receive.
 */
export async function prepareHost(docker: Docker, c: Config, log: Logger, credentials?: { accessKeyId: string; secretAccessKey: string }): Promise<void> {
  try {
    await withTimeout('docker ping', 5000, docker.ping());
  } catch (err) {
    throw new Error(`Docker engine not reachable (${String(err)}): start dockerd, or run "npm run setup"`);
  }
  // Pulled (when missing, or always) before anything is ready.
  await ensureImages(
    docker,
    c.runtimes.list.map((r) => r.image),
    { policy: c.imagePull, timeoutMs: c.imagePullTimeoutMs, log, credentials },
  );
  await checkOciRuntimes(docker, c, log);
  const conflict = await rangeConflict(c.sandboxUids);
  if (conflict) throw new Error(`${conflict}: functions would share a uid with it; choose a free range with NANOGRID_SANDBOX_UIDS`);
  await ensurePrivateDir(c.workRoot, 'NANOGRID_WORK_ROOT');
  await ensurePrivateDir(c.outboxDir, 'NANOGRID_OUTBOX_DIR');
  // A previous run of this agent that was killed leaves containers behind: clear them.
  await removeAgentContainers(docker, c.agentId, { timeoutMs: c.dockerTimeoutMs, log, workRoot: c.workRoot });
  await mkdir(codeCacheRoot(c.workRoot, c.agentId), { recursive: true });
  await checkDisk(c, log);
  if (c.memoryBudgetMb < c.defaultMemoryMb) {
    log.warn(
      { tag: 'AGENT', memoryBudgetMb: c.memoryBudgetMb, defaultMemoryMb: c.defaultMemoryMb },
      'the memory budget is below the default memory: messages without memoryMb are refused (raise NANOGRID_MEMORY_BUDGET_MB, lower NANOGRID_MEMORY_RESERVE_MB or NANOGRID_DEFAULT_MEMORY_MB)',
    );
  }
}

/** An OCI runtime the engine does not offer would fail every container: say so at start, naming the setting. */
async function checkOciRuntimes(docker: Docker, c: Config, log: Logger): Promise<void> {
  const wanted = c.runtimes.list.flatMap((r) => (r.ociRuntime === undefined ? [] : [[r.name, r.ociRuntime] as const]));
  if (wanted.length === 0) return;
  const info = (await withTimeout('docker info', c.dockerTimeoutMs, docker.info())) as { Runtimes?: Record<string, unknown> };
  const offered = Object.keys(info.Runtimes ?? {});
  for (const [runtime, oci] of wanted) {
    if (!offered.includes(oci)) {
      throw new Error(`NANOGRID_OCI_RUNTIME asks for ${oci} for ${runtime}, but dockerd offers ${offered.join(', ')}: register it in /etc/docker/daemon.json (npm run setup does for runsc and crun) and restart dockerd`);
    }
  }
  log.info({ tag: 'DOCKER', ociRuntimes: Object.fromEntries(wanted) }, 'OCI runtimes of the pools');
}

/**
 * Every container reserves its writable space on the host disk when it is made: say at
 * start when the disk cannot hold a full pool, rather than failing creations later.
 */
async function checkDisk(c: Config, log: Logger): Promise<void> {
  if (!c.diskReserve) return;
  // The spare scratch file systems reserve theirs too.
  const containers = c.runtimes.containers + c.scratchSpare;
  const needMb = Math.ceil((containers * scratchImageBytes(c.diskLimitMb * 1024 * 1024)) / (1024 * 1024));
  const fs = await statfs(c.workRoot);
  const freeMb = Math.floor((fs.bavail * fs.bsize) / (1024 * 1024));
  if (freeMb < needMb) {
    log.warn(
      { tag: 'DOCKER', freeMb, needMb, containers, diskLimitMb: c.diskLimitMb },
      "the work folder cannot hold every container's writable space: creations past the free space will fail (lower NANOGRID_DISK_MB or the pool sizes)",
    );
  }
}
