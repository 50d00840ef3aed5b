import type { Invocation } from '../core/invocation.js';
import { InvocationError, type Reason } from '../core/reasons.js';
import type { HandlerResult, Result, StartKind, Status, Timings } from '../core/result.js';
import { createHash } from 'node:crypto';
import { manifestOf, MANIFEST_NAME } from './manifest.js';
import type { StagedCode } from '../container/scratch.js';
import type { Logger } from '../core/log.js';
import { RUNNER_BOUND_MS, type Lease, type LeaseSource, type RunOutcome, type RunRequest } from '../pool/lease.js';
import type { RunHooks } from '../core/ports.js';
import { INPUT_PATH } from '../core/sandbox.js';
import type { CodeCache } from '../code/codeCache.js';
import type { InputFetcher } from './inputFetch.js';
import type { OutputPort } from './ports.js';
import type { RunnerOutcome } from '../container/runnerClient.js';
import type { Measurement } from '../container/memoryMeter.js';
import type { BuildCache } from '../build/buildCache.js';

export interface RunDeps {
  code: CodeCache;
  command: string;
  /** The agent's additions to every function's environment. */
  env?: string[];
  /** Reads an invocation's input (inline or by reference). */
  inputs: Pick<InputFetcher, 'get'>;
  /** Stores what the function left under output/ (only with a user-data bucket). */
  outputs?: OutputPort;
  /** The build cache, for a runtime whose compiler calls go through its front, and the environment the front reads. */
  build?: { cache: BuildCache; env: string[] };
}

/** What a run that happened produced, before the auto-tuner adds its advice. */
export interface RunReport
  extends Pick<Result, 'status' | 'reason' | 'exitCode' | 'stdout' | 'stderr' | 'stdoutTruncated' | 'stderrTruncated' | 'durationMillis'> {
  startKind: StartKind;
  memory: Measurement;
  diskUsedBytes: number | null;
  outputs: Result['outputs'];
  outputErrors: string[];
  /** The code version's ETag (S3 code), for the archive. */
  codeEtag: string | undefined;
  timings: Omit<Timings, 'totalMs' | 'queuedMs'>;
  /** Handler mode only. */
  handler?: HandlerResult;
}

/**
 * Runs one invocation on a lease from `pool`. The code (from the cache, or fetched) and
 * the container are got side by side; the lease is released once the run is over. Throws an InvocationError when
 * the function never ran.
 */
export async function runOnLease(inv: Invocation, pool: LeaseSource, deps: RunDeps, log: Logger, hooks: Partial<RunHooks> = {}): Promise<RunReport> {
  const t0 = performance.now();
  let fetchMs = 0;
  const fetched = deps.code.get(inv.code).finally(() => (fetchMs = performance.now() - t0));
  const input = inv.input ? deps.inputs.get(inv.input) : Promise.resolve(null);
  const [leaseR, codeR, inputR] = await Promise.allSettled([pool.acquire(inv.functionKey, inv.memoryMb), fetched, input]);

  if (codeR.status === 'rejected' || leaseR.status === 'rejected' || inputR.status === 'rejected') {
    if (leaseR.status === 'fulfilled') leaseR.value.release({ ran: false, reusable: true });
    // The message's own faults first: a bad input or code fails the same way on any container.
    throw inputR.status === 'rejected' ? inputR.reason : codeR.status === 'rejected' ? codeR.reason : (leaseR as PromiseRejectedResult).reason;
  }
  const code = codeR.value;
  const inputBytes = inputR.value;
  let lease = leaseR.value;
  log.debug({ tag: 'DOCKER', container: lease.containerName, startKind: lease.startKind, acquireMs: round(lease.acquireMs), fetchMs: round(fetchMs) }, 'container ready');

  const end = { ran: false, reusable: false };
  // The first run of a code version in this agent; the others of it wait for its compile.
  let firstRunOver: (() => void) | undefined;
  try {
    const back = hooks.holdBack?.();
    if (back) {
      end.reusable = true;
      throw back;
    }
    const handler = await handlerRequest(inv, code, lease).catch((err: unknown) => {
      end.reusable = true;
      throw err;
    });
    let outcome: RunOutcome;
    for (let attempt = 0; ; attempt++) {
      try {
        await lease.stage(code);
        if (inputBytes) await lease.provideInput(inputBytes);
        const view = deps.build && lease.build;
        if (view) {
          if (firstRunOver) await deps.build!.cache.install(view, inv.functionKey);
          else firstRunOver = await deps.build!.cache.beforeRun(view, inv.functionKey, code.id, inv.timeoutMs + RUNNER_BOUND_MS);
        }
        outcome = await lease.run({
          command: deps.command,
          env: [...functionEnv(inv), ...(deps.env ?? []), ...(view ? deps.build!.env : [])],
          timeoutMs: inv.timeoutMs,
          input: inputBytes !== null,
          ...(handler ? { handler } : {}),
          onStart: () => {
            end.ran = true;
            hooks.onRunStart?.();
          },
        });
        break;
      } catch (err) {
        // The container broke before the function started: one more try on another.
        if (end.ran || attempt > 0) throw err;
        log.warn({ tag: 'DOCKER', container: lease.containerName, err }, 'the run could not start; retrying on another container');
        lease.release({ ran: false, reusable: false });
        lease = await pool.acquire(inv.functionKey, inv.memoryMb);
      }
    }

    const { exec, memory, disk, spooled } = outcome;
    const oom = memory.oomKilled && !exec.timedOut;
    // A run not verified clean (processes left, or a runner that stopped answering) had
    // its container frozen by the lease; it is destroyed, and nothing of its workspace is read.
    end.reusable = exec.clean;
    const { status, reason } = classify(exec, oom, disk?.full ?? false);
    const handlerPart = handler ? handlerResult(exec) : undefined;
    let stderr = exec.stderr;
    const stored: { outputs: Result['outputs']; errors: string[] } = { outputs: [], errors: [] };
    if (!exec.clean) {
      const why = exec.leftovers < 0 ? exec.stderr : `${exec.leftovers} process(es) of the run could not be killed`;
      log.error({ tag: 'FAIL', reason, container: lease.containerName, leftovers: exec.leftovers }, `${why}: the container was frozen and is destroyed; its outputs are not read`);
      const note = `[${reason}] ${why}; the container was frozen and destroyed, and its outputs were not read`;
      // A runner that stopped answering sent no stream: its stderr is the agent's message.
      stderr = exec.leftovers < 0 || !exec.stderr ? note : `${exec.stderr}${exec.stderr.endsWith('\n') ? '' : '\n'}${note}`;
    } else {
      // Before the release: the reset that follows it empties /tmp. No process of the run is left.
      const view = deps.build && lease.build;
      if (view) await deps.build!.cache.harvest(view, inv.functionKey, log).catch((err: unknown) => log.warn({ tag: 'BUILD', err }, 'the compiler output of this run could not be kept'));
    }
    if (exec.clean && deps.outputs) {
      // Before the release: the reset that follows it empties the workspace.
      const files = await deps.outputs.store(lease.workspaceHostPath, inv.functionId, inv.requestId, log);
      stored.outputs.push(...files.outputs);
      stored.errors.push(...files.errors);
      // A stream cut at the output limit was kept whole by the runner: store it beside the files.
      for (const [stream, path] of Object.entries(spooled)) {
        if (!path) continue;
        const s = await deps.outputs.storeStream(path, inv.functionId, inv.requestId, `${stream}.txt`, log);
        if (typeof s === 'string') stored.errors.push(s);
        else stored.outputs.push(s);
      }
    }
    return {
      status,
      reason,
      // The contract: -1 when the function was killed on timeout, or the run failed inside the agent.
      exitCode: exec.timedOut || !exec.clean ? -1 : exec.exitCode,
      stdout: exec.stdout,
      stderr,
      stdoutTruncated: exec.stdoutTruncated,
      stderrTruncated: exec.stderrTruncated,
      durationMillis: Math.round(exec.durationMs),
      startKind: lease.startKind,
      memory,
      diskUsedBytes: disk?.usedBytes ?? null,
      outputs: stored.outputs,
      outputErrors: stored.errors,
      codeEtag: code.etag,
      timings: { fetchMs: round(fetchMs), acquireMs: round(lease.acquireMs), execMs: round(exec.durationMs), agentMs: round(performance.now() - t0) },
      ...(handlerPart ? { handler: handlerPart } : {}),
    };
  } catch (err) {
    if (err instanceof InvocationError) throw err;
    throw new InvocationError('DOCKER_UNAVAILABLE', 'transient', `run failed in ${lease.containerName}: ${String(err)}`, { cause: err });
  } finally {
    firstRunOver?.();
    lease.release(end);
    hooks.onRunEnd?.();
  }
}

/**
 * The handler call an invocation makes, when its code's nanogrid.json names a handler; the
 * key (function, code version, entry) changes with any of them, so a live handler never
 * serves another version or function.
 */
async function handlerRequest(inv: Invocation, code: StagedCode, lease: Lease): Promise<RunRequest['handler']> {
  const entry = (await manifestOf(code))?.handler;
  if (!entry) return undefined;
  if (!lease.handlerMode) throw new InvocationError('MANIFEST_INVALID', 'permanent', `${MANIFEST_NAME} names a handler, but runtime ${inv.runtime} has no handler mode: remove "handler" to run the function as a program`);
  const key = createHash('sha256').update(`${inv.functionKey}\0${code.id}\0${entry}`).digest('hex');
  const context = JSON.stringify({ requestId: inv.requestId, functionId: inv.functionId, memoryMb: inv.memoryMb, deadlineMs: Date.now() + inv.timeoutMs });
  return { entry, key, context };
}

/** A handler call's own part of the result; its answer is the handler's, so parsed with care. */
function handlerResult(exec: RunnerOutcome): HandlerResult {
  const h = exec.handler;
  const part: HandlerResult = { returnValue: null, error: null, initialised: h?.init ?? false, initDurationMs: h?.init && h.initMs > 0 ? round(h.initMs) : null };
  if (!h || !exec.clean) return part;
  let parsed: unknown = null;
  try {
    parsed = JSON.parse(h.answerText);
  } catch {
    parsed = null;
  }
  if (h.answer === 'value') part.returnValue = parsed;
  else if (h.answer === 'error') {
    const e = (parsed ?? {}) as Record<string, unknown>;
    part.error = { errorType: String(e.errorType ?? 'Error').slice(0, 256), errorMessage: String(e.errorMessage ?? '').slice(0, 4096) };
  }
  return part;
}

/** The environment every function sees. */
function functionEnv(inv: Invocation): string[] {
  return [
    'HOME=/tmp',
    'PYTHONUNBUFFERED=1',
    `NANOGRID_REQUEST_ID=${inv.requestId}`,
    `NANOGRID_FUNCTION_ID=${inv.functionId}`,
    `NANOGRID_MEMORY_MB=${inv.memoryMb}`,
    // Only with an input: a function of the original contract sees what it always saw.
    ...(inv.input ? [`NANOGRID_INPUT_FILE=${INPUT_PATH}`] : []),
  ];
}

/**
 * A run's status and reason; a failure with the writable space full is put down to it. A
 * run whose clean-up could not be verified fails with a reason of its own, whatever the
 * function did.
 */
export function classify(outcome: Pick<RunnerOutcome, 'timedOut' | 'exitCode'> & Partial<Pick<RunnerOutcome, 'clean' | 'handler'>>, oom: boolean, diskFull = false): { status: Status; reason: Reason } {
  if (outcome.clean === false) return { status: 'FAILED', reason: 'CLEANUP_FAILED' };
  if (outcome.timedOut) return { status: 'TIMEOUT', reason: 'TIMEOUT' };
  if (oom) return { status: 'OOM', reason: 'OOM' };
  const h = outcome.handler;
  if (h?.answer === 'error') return { status: 'FAILED', reason: 'HANDLER_ERROR' };
  // A handler that ended before it was ready never ran the call: its import failed.
  if (h && h.init && !h.alive && h.answer === 'none' && h.initMs === 0) return { status: 'FAILED', reason: 'HANDLER_INIT_FAILED' };
  if (outcome.exitCode === 0) return { status: 'SUCCESS', reason: 'OK' };
  return { status: 'FAILED', reason: diskFull ? 'DISK_FULL' : 'NON_ZERO_EXIT' };
}

const round = (ms: number) => Math.round(ms * 10) / 10;
