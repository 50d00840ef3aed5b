import type Docker from 'dockerode';
import { randomBytes } from 'node:crypto';
import { rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { CodeFetcher, FetchedCode } from './codeFetch.js';
import { runExec, type ExecOutcome } from './exec.js';
import type { Invocation } from './invocation.js';
import type { Logger } from './log.js';
import type { Measurement, MemoryMeter } from './memoryMeter.js';
import { InvocationError, type Reason, type Result, type StartKind, type Status, type Timings } from './result.js';
import type { Lease, RuntimePool } from './runtimePool.js';
import { SANDBOX_GID, SANDBOX_MOUNT, SANDBOX_UID, WORKSPACE_NAME } from './warmContainer.js';

export interface ExecuteDeps {
  docker: Docker;
  fetcher: CodeFetcher;
  meter: MemoryMeter;
  command: string;
  stagingRoot: string;
  outputLimitBytes: number;
  apiTimeoutMs: number;
}

/** What a run that happened produced, before the auto-tuner adds its advice. */
export interface RunReport
  extends Pick<Result, 'status' | 'reason' | 'exitCode' | 'stdout' | 'stderr' | 'stdoutTruncated' | 'stderrTruncated' | 'durationMillis'> {
  startKind: StartKind;
  memory: Measurement;
  timings: Omit<Timings, 'totalMs' | 'queuedMs'>;
}

const WORKDIR = `${SANDBOX_MOUNT}/${WORKSPACE_NAME}`;

/**
 * Runs one invocation on its pool. Code fetch and container acquisition overlap; the
 * container goes back to the pool (or is retired) once the run is over. Throws an
 * InvocationError when the function never ran.
 */
export interface ExecuteHooks {
  onRunStart?: () => void;
  /** Checked once code and container are ready: false (shutting down) gives the message back. */
  shouldStart?: () => boolean;
}

export async function execute(inv: Invocation, pool: RuntimePool, deps: ExecuteDeps, log: Logger, hooks: ExecuteHooks = {}): Promise<RunReport> {
  const staging = join(deps.stagingRoot, `${inv.requestId}-${randomBytes(4).toString('hex')}`);
  const t0 = performance.now();
  const [leaseR, codeR] = await Promise.allSettled([pool.acquire(inv.functionId, inv.memoryMb), deps.fetcher.fetch(inv, staging)]);

  if (codeR.status === 'rejected') {
    if (leaseR.status === 'fulfilled') void pool.release(leaseR.value, true, false);
    await rm(staging, { recursive: true, force: true });
    throw codeR.reason;
  }
  if (leaseR.status === 'rejected') {
    await rm(staging, { recursive: true, force: true });
    throw leaseR.reason;
  }
  const code: FetchedCode = codeR.value;
  let lease: Lease = leaseR.value;
  log.info({ tag: 'DOCKER', container: lease.container.name, startKind: lease.startKind, acquireMs: round(lease.acquireMs), fetchMs: round(code.fetchMs) }, 'container ready');

  let healthy = false;
  let used = false;
  try {
    if (hooks.shouldStart && !hooks.shouldStart()) {
      healthy = true;
      throw new InvocationError('SHUTTING_DOWN', 'transient', 'the agent is stopping; the message goes back to the queue');
    }
    let outcome: ExecOutcome;
    let memory: Measurement;
    let started = false;
    for (let attempt = 0; ; attempt++) {
      try {
        await rename(staging, lease.container.workspaceHostPath);
        ({ outcome, memory } = await runOn(inv, lease, deps, () => {
          started = true;
          used = true;
          pool.markStarted(lease);
          hooks.onRunStart?.();
        }));
        break;
      } catch (err) {
        // The container broke before the function started: one more try on another.
        if (started || attempt > 0) throw err;
        log.warn({ tag: 'DOCKER', container: lease.container.name, err: String(err) }, 'exec could not start; retrying on another container');
        await rename(lease.container.workspaceHostPath, staging).catch(() => undefined);
        void pool.release(lease, false, false);
        lease = await pool.acquire(inv.functionId, inv.memoryMb);
      }
    }

    const oom = memory.oomKilled && !outcome.timedOut;
    // A timed-out container was killed; an OOM one may hold a half-dead process tree.
    healthy = !outcome.timedOut && !oom;
    const { status, reason } = classify(outcome, oom);
    return {
      status,
      reason,
      exitCode: outcome.exitCode,
      stdout: outcome.stdout,
      stderr: outcome.stderr,
      stdoutTruncated: outcome.stdoutTruncated,
      stderrTruncated: outcome.stderrTruncated,
      durationMillis: Math.round(outcome.durationMs),
      startKind: lease.startKind,
      memory,
      timings: { fetchMs: round(code.fetchMs), acquireMs: round(lease.acquireMs), execMs: round(outcome.durationMs), agentMs: round(performance.now() - t0) },
    };
  } catch (err) {
    if (err instanceof InvocationError) throw err;
    throw new InvocationError('DOCKER_UNAVAILABLE', 'transient', `run failed in ${lease.container.name}: ${String(err)}`, { cause: err });
  } finally {
    await rm(staging, { recursive: true, force: true });
    void pool.release(lease, healthy, used);
  }
}

async function runOn(inv: Invocation, lease: Lease, deps: ExecuteDeps, onStart: () => void): Promise<{ outcome: ExecOutcome; memory: Measurement }> {
  const c = lease.container;
  if (c.cgroup === undefined) c.cgroup = c.pid ? await deps.meter.locate(c.pid) : null;
  const session = await deps.meter.begin(c.cgroup, inv.timeoutMs);
  const outcome = await runExec(deps.docker, c.container, {
    command: deps.command,
    workdir: WORKDIR,
    env: [
      'HOME=/tmp',
      'PYTHONUNBUFFERED=1',
      `NANOGRID_REQUEST_ID=${inv.requestId}`,
      `NANOGRID_FUNCTION_ID=${inv.functionId}`,
      `NANOGRID_MEMORY_MB=${inv.memoryMb}`,
    ],
    user: `${SANDBOX_UID}:${SANDBOX_GID}`,
    timeoutMs: inv.timeoutMs,
    outputLimitBytes: deps.outputLimitBytes,
    apiTimeoutMs: deps.apiTimeoutMs,
    onTimeout: () => c.kill(),
    onStart,
  });
  const memory = await session.end();
  return { outcome, memory };
}

export function classify(outcome: Pick<ExecOutcome, 'timedOut' | 'exitCode'>, oom: boolean): { status: Status; reason: Reason } {
  if (outcome.timedOut) return { status: 'TIMEOUT', reason: 'TIMEOUT' };
  if (oom) return { status: 'OOM', reason: 'OOM' };
  if (outcome.exitCode === 0) return { status: 'SUCCESS', reason: 'OK' };
  return { status: 'FAILED', reason: 'NON_ZERO_EXIT' };
}

const round = (ms: number) => Math.round(ms * 10) / 10;
