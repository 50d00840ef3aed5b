import type Docker from 'dockerode';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from './log.js';
import { withTimeout } from './timeout.js';
import { LABEL_AGENT, LABEL_RUN, isNotFound } from './warmContainer.js';

/**
 * Removes containers carrying this agent's label (a killed run leaves them as Exited or
 * even paused) and the agent's work folder. With `runId`, only that run's containers.
 */
export async function removeAgentContainers(
  docker: Docker,
  agentId: string,
  opts: { runId?: string; timeoutMs: number; log?: Logger; workRoot?: string },
): Promise<number> {
  const labels = [`${LABEL_AGENT}=${agentId}`];
  if (opts.runId) labels.push(`${LABEL_RUN}=${opts.runId}`);
  const found = await withTimeout(
    'docker list containers',
    opts.timeoutMs,
    docker.listContainers({ all: true, filters: { label: labels } }),
  );
  await Promise.all(
    found.map(async (c) => {
      try {
        await withTimeout(`docker remove ${c.Id.slice(0, 12)}`, opts.timeoutMs, docker.getContainer(c.Id).remove({ force: true, v: true }));
      } catch (err) {
        if (!isNotFound(err)) opts.log?.warn({ tag: 'DOCKER', container: c.Id, err: String(err) }, 'leftover container not removed');
      }
    }),
  );
  if (opts.workRoot) await rm(join(opts.workRoot, agentId), { recursive: true, force: true });
  if (found.length > 0) opts.log?.info({ tag: 'DOCKER', removed: found.length, runId: opts.runId }, 'removed containers by label');
  return found.length;
}
