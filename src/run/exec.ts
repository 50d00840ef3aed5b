import type Docker from 'dockerode';
import type { Duplex } from 'node:stream';
import { OutputBuffer } from './outputBuffer.js';
import { sleep, withTimeout } from '../core/timeout.js';

export interface ExecRequest {
  /** Shell command run by `/bin/sh -c` in `workdir`. */
  command: string;
  workdir: string;
  env: string[];
  user: string;
  timeoutMs: number;
  outputLimitBytes: number;
  /** Bound on each Docker API call made here (create, start, inspect). */
  apiTimeoutMs: number;
  /**
   * Called when the run passes its timeout. Docker cannot kill an exec, so the caller
   * kills the container; that ends the exec's stream.
   */
  onTimeout: () => Promise<void>;
  /** Called when the process has started, just before output is awaited. */
  onStart?: () => void;
}

export interface ExecOutcome {
  exitCode: number;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  timedOut: boolean;
  durationMs: number;
}

/** How long after a timeout kill we still wait for the stream before abandoning it. */
const STREAM_GRACE_MS = 3000;

/**
 * Wraps the function's command so that whatever it leaves running is killed when it
 * ends: `kill -9 -1` from the function's own unprivileged user reaches every process of
 * that user but not the caller, and never PID 1 (`sleep infinity`, owned by root).
 */
export function wrapCommand(command: string): string {
  return `${command}\nrc=$?\nkill -9 -1 2>/dev/null\nexit $rc`;
}

export async function runExec(docker: Docker, container: Docker.Container, req: ExecRequest): Promise<ExecOutcome> {
  const exec = await withTimeout(
    'docker exec create',
    req.apiTimeoutMs,
    container.exec({
      Cmd: ['/bin/sh', '-c', wrapCommand(req.command)],
      AttachStdout: true,
      AttachStderr: true,
      AttachStdin: false,
      Tty: false,
      WorkingDir: req.workdir,
      Env: req.env,
      User: req.user,
    }),
  );
  const stdout = new OutputBuffer(req.outputLimitBytes);
  const stderr = new OutputBuffer(req.outputLimitBytes);

  const started = performance.now();
  const stream = (await withTimeout('docker exec start', req.apiTimeoutMs, exec.start({ hijack: true, stdin: false }))) as Duplex;
  req.onStart?.();
  docker.modem.demuxStream(stream, stdout, stderr);

  let timedOut = false;
  let timer: NodeJS.Timeout | undefined;
  const ended = new Promise<void>((resolve) => {
    stream.once('end', resolve);
    stream.once('close', resolve);
    stream.once('error', resolve);
  });
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      timedOut = true;
      resolve();
    }, req.timeoutMs);
  });
  await Promise.race([ended, timeout]);
  clearTimeout(timer);
  const durationMs = performance.now() - started;

  if (timedOut) {
    await req.onTimeout().catch(() => undefined);
    // An exec stream can fail to end even after its container died: bound it.
    await withTimeout('exec stream end', STREAM_GRACE_MS, ended).catch(() => undefined);
    stream.destroy();
    return {
      exitCode: -1,
      stdout: stdout.text(),
      stderr: stderr.text(),
      stdoutTruncated: stdout.truncated,
      stderrTruncated: stderr.truncated,
      timedOut: true,
      durationMs,
    };
  }

  // The stream can end a moment before the engine records the exit code.
  let exitCode: number | null = null;
  for (let i = 0; i < 50 && exitCode === null; i++) {
    const info = await withTimeout('docker exec inspect', req.apiTimeoutMs, exec.inspect());
    if (!info.Running && info.ExitCode !== null && info.ExitCode !== undefined) exitCode = info.ExitCode;
    else await sleep(10);
  }
  return {
    exitCode: exitCode ?? -1,
    stdout: stdout.text(),
    stderr: stderr.text(),
    stdoutTruncated: stdout.truncated,
    stderrTruncated: stderr.truncated,
    timedOut: false,
    durationMs,
  };
}
