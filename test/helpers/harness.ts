import Docker from 'dockerode';
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, type AgentOptions } from '../../src/agent.js';
import type { Result } from '../../src/core/result.js';
import { waitUntil } from '../../src/core/timeout.js';
import { LOCAL_CREDENTIALS, localAgentConfig } from '../../src/local/agentConfig.js';
import { LocalClient, type ZipFiles } from '../../src/local/client.js';
import { startLocalStack, type LocalStack } from '../../src/local/stack.js';
import { createLogger, silentLogger, type Logger } from '../../src/core/log.js';
import { listAgentContainers } from '../../src/pool/leftovers.js';
import { unmountUnder } from '../../src/container/scratch.js';

export const docker = new Docker();

/** Minimal view of a tap test used here, so helpers need not import tap's types. */
export interface T {
  teardown(fn: () => unknown): void;
  name: string;
}

export interface Harness {
  stack: LocalStack;
  agent: Agent;
  client: LocalClient;
  agentId: string;
  workRoot: string;
  /** Uploads `files` as a zip under `functionId/v1.zip` or `extra.s3Key` (unless already uploaded) and runs it. */
  invoke(functionId: string, files: ZipFiles | undefined, extra?: Record<string, unknown>): Promise<Result>;
  message(functionId: string, extra?: Record<string, unknown>): Record<string, unknown> & { requestId: string };
  containers(): Promise<Docker.ContainerInfo[]>;
  /** Waits until no message is held and no container is in the middle of an engine call. */
  quiet(): Promise<void>;
}

/**
 * Leaves nothing of an agent behind, whatever the test did: its containers (by label) and,
 * with `workRoot`, the scratch file systems mounted under it and the folder itself.
 */
export async function removeLeftovers(agentId: string, workRoot?: string): Promise<void> {
  const left = await listAgentContainers(docker, agentId);
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined)));
  if (workRoot) {
    await unmountUnder(workRoot, 10_000);
    await rm(workRoot, { recursive: true, force: true });
  }
}

/** Stops the redis-server at `url` at once (SHUTDOWN NOSAVE), as a crash would. */
export async function shutdownRedis(url: string): Promise<void> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  r.on('error', () => undefined);
  await r.connect();
  await r.call('SHUTDOWN', 'NOSAVE').catch(() => undefined);
  r.disconnect();
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`;
}

/** One python container, prewarmed: every python run lands in the same container. */
export const ONE_PYTHON = { NANOGRID_PREWARM: 'python=1,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=1' } as const;

export interface HarnessOptions {
  env?: Record<string, string>;
  maxReceiveCount?: number;
  agent?: Partial<AgentOptions>;
  log?: Logger;
  /** Share another harness's stack (its queue, bucket and Redis). */
  stack?: LocalStack;
}

/**
 * A real stack for one test file: fauxqs over HTTP, a private redis-server, the real
 * Docker engine, and an agent with its own id (so files running side by side never touch
 * each other's containers). Everything is torn down when the test ends, pass or fail.
 */
export async function startHarness(t: T, opts: HarnessOptions = {}): Promise<Harness> {
  const agentId = opts.env?.NANOGRID_AGENT_ID ?? uniqueId('t');
  const workRoot = await mkdtemp(join(tmpdir(), 'nanogrid-test-'));
  const stack = opts.stack ?? (await startLocalStack({ maxReceiveCount: opts.maxReceiveCount ?? 3 }));
  t.teardown(async () => {
    if (!opts.stack) await stack.stop();
    // Containers' scratch file systems are mounted under workRoot: unmount before removing.
    await unmountUnder(workRoot, 10_000);
    await rm(workRoot, { recursive: true, force: true });
  });
  const config = localAgentConfig(stack, agentId, {
    NANOGRID_WORK_ROOT: workRoot,
    NANOGRID_PREWARM: 'python=1,cpp=0',
    NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1',
    NANOGRID_SHUTDOWN_GRACE_MS: '5000',
    // Each container reserves its writable space on disk: keep the tests' footprint small.
    NANOGRID_DISK_MB: '128',
    // Stop returns once the current long poll does: keep it short in tests.
    NANOGRID_RECEIVE_WAIT_S: '1',
    ...opts.env,
  });
  const log = opts.log ?? (process.env.TEST_LOGS ? createLogger('debug') : silentLogger);
  const agent = new Agent({ config, log, credentials: LOCAL_CREDENTIALS, ...opts.agent });
  t.teardown(async () => {
    await agent.stop();
    // Whatever the test did, leave nothing of this agent behind (the folder goes with the stack, below).
    await removeLeftovers(agentId);
    await unmountUnder(workRoot, 10_000);
  });
  await agent.start();
  const client = new LocalClient({ ...stack });
  await client.connect();
  t.teardown(() => client.close());

  const uploaded = new Set<string>();
  const message = (functionId: string, extra: Record<string, unknown> = {}) => ({
    requestId: uniqueId(functionId),
    functionId,
    runtime: 'python',
    s3Bucket: stack.bucket,
    s3Key: `${functionId}/v1.zip`,
    timeoutMs: 20_000,
    memoryMb: 128,
    ...extra,
  });
  return {
    stack,
    agent,
    client,
    agentId,
    workRoot,
    message,
    async invoke(functionId, files, extra = {}) {
      const key = typeof extra.s3Key === 'string' ? extra.s3Key : `${functionId}/v1.zip`;
      if (files && !uploaded.has(key)) {
        await client.uploadZip(key, files);
        uploaded.add(key);
      }
      const m = message(functionId, extra);
      await client.send(m);
      return client.waitForResult(m.requestId, 120_000);
    },
    containers: () => listAgentContainers(docker, agentId),
    quiet: async () => {
      await waitUntil('agent quiet', () => agent.quiescent());
    },
  };
}
