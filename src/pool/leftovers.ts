import type Docker from 'dockerode';
import { rm } from 'node:fs/promises';
import { agentRoot, LABEL_AGENT, LABEL_RUN, LABEL_RUNTIME } from '../core/sandbox.js';
import { withTimeout } from '../core/timeout.js';
import type { Logger } from '../core/log.js';
import { isNotFound } from '../container/dockerContainer.js';
import { unmountUnder } from '../container/scratch.js';

/** The containers carrying an agent's label (of one run of it, with `runId`), in any state. */
export function listAgentContainers(docker: Docker, agentId: string, runId?: string): Promise<Docker.ContainerInfo[]> {
  const labels = [`${LABEL_AGENT}=${agentId}`];
  if (runId) labels.push(`${LABEL_RUN}=${runId}`);
  return docker.listContainers({ all: true, filters: { label: labels } });
}

/**
 * Removes containers carrying this agent's label (a killed run leaves them as Exited or
 * even paused) and the agent's work folder. With `runId`, only that run's containers.
 */
export async function removeAgentContainers(
  docker: Docker,
  agentId: string,
  opts: { runId?: string; timeoutMs: number; log?: Logger; workRoot?: string },
): Promise<number> {
  const found = await withTimeout('docker list containers', opts.timeoutMs, listAgentContainers(docker, agentId, opts.runId));
  await Promise.all(
    found.map(async (c) => {
      try {
        await withTimeout(`docker remove ${c.Id.slice(0, 12)}`, opts.timeoutMs, docker.getContainer(c.Id).remove({ force: true, v: true }));
      } catch (err) {
        if (!isNotFound(err)) opts.log?.warn({ tag: 'DOCKER', container: c.Id, err }, 'leftover container not removed');
      }
    }),
  );
  if (opts.workRoot) {
    // A killed agent leaves its containers' scratch file systems mounted: a recursive
    // remove would otherwise walk into them.
    const root = agentRoot(opts.workRoot, agentId);
    const unmounted = await unmountUnder(root, opts.timeoutMs);
    if (unmounted > 0) opts.log?.info({ tag: 'DOCKER', unmounted }, 'unmounted leftover scratch file systems');
    await rm(root, { recursive: true, force: true });
  }
  if (found.length > 0) opts.log?.info({ tag: 'DOCKER', removed: found.length, runId: opts.runId }, 'removed containers by label');
  return found.length;
}

/**
 * After an engine outage: removes the containers of one run and runtime that its pool no
 * longer knows (`known`: engine names), which the outage left behind. Returns how many.
 */
export async function removeOrphans(
  docker: Docker,
  q: { agentId: string; runId: string; runtime: string; known: ReadonlySet<string>; timeoutMs: number; log: Logger },
): Promise<number> {
  const listed = await withTimeout('docker list containers', q.timeoutMs, listAgentContainers(docker, q.agentId, q.runId));
  const orphans = listed.filter((x) => x.Labels[LABEL_RUNTIME] === q.runtime && !x.Names.some((n) => q.known.has(n.replace(/^\//, ''))));
  await Promise.all(
    orphans.map((x) =>
      withTimeout(`docker remove ${x.Id.slice(0, 12)}`, q.timeoutMs, docker.getContainer(x.Id).remove({ force: true, v: true })).catch((err: unknown) => {
        if (!isNotFound(err)) q.log.warn({ tag: 'DOCKER', container: x.Id, err }, 'container the outage left not removed');
      }),
    ),
  );
  if (orphans.length > 0) q.log.info({ tag: 'DOCKER', removed: orphans.length }, 'removed containers the outage left');
  return orphans.length;
}
