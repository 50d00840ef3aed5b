import { connect, type Socket } from 'node:net';
import { sleep } from '../core/timeout.js';
import { decodeFields, encodeFields, encodeFrame, FRAME, FrameDecoder, type Frame } from './runnerProtocol.js';

export type ZygoteState = 'off' | 'starting' | 'ready' | 'failed';

export interface RunnerRunRequest {
  /**
   * exec: the runner starts argv itself; zygote: the pre-started interpreter runs argv's
   * script; handler: the call goes to the live handler process of `handler.key`, or to a
   * new one started from argv (runner/handler.c).
   */
  mode: 'exec' | 'zygote' | 'handler';
  /** Handler mode: which handler (a new key ends the live one) and the call's context (JSON). */
  handler?: { key: string; context: string };
  argv: string[];
  cwd: string;
  uid: number;
  gid: number;
  env: string[];
  timeoutMs: number;
  outputLimitBytes: number;
  /** A file inside the container to give the function as its stdin (else /dev/null). */
  stdin?: string;
  /** Files (inside the container, root's) that get a stream whole once it passes outputLimitBytes, up to limitBytes. */
  spool?: { stdout: string; stderr: string; limitBytes: number };
  /** The function's process has started. */
  onStart?: (pid: number) => void;
  /**
   * With this, the runner holds the run's first process until it resolves (the agent moves
   * it into the run's own cgroup meanwhile); a rejection still releases it.
   */
  hold?: (pid: number) => Promise<void>;
}

export interface RunnerOutcome {
  exitCode: number;
  signal: number;
  timedOut: boolean;
  durationMs: number;
  stdout: string;
  stderr: string;
  stdoutTruncated: boolean;
  stderrTruncated: boolean;
  /** No process of the run was left when it ended. */
  clean: boolean;
  leftovers: number;
  /** Bytes of each stream written to its spool file (0: none). */
  stdoutSpooled: number;
  stderrSpooled: number;
  /** Handler mode: how the call went. */
  handler?: HandlerCall;
}

export interface HandlerCall {
  /** The handler stays (stopped) for the next call of its key. */
  alive: boolean;
  /** Its pid in the container's namespace while alive. */
  pid: number;
  /** This call started it. */
  init: boolean;
  /** Process start to ready, when this call started it (0 when it never got ready). */
  initMs: number;
  answer: 'value' | 'error' | 'none';
  /** The answer's JSON text (the value, or {errorType, errorMessage}). */
  answerText: string;
}

/** The runner did not answer within its bound: the container cannot be trusted. */
export class RunnerUnresponsive extends Error {
  constructor(what: string, ms: number) {
    super(`the runner did not answer ${what} within ${ms} ms`);
    this.name = 'RunnerUnresponsive';
  }
}

interface Pending {
  onFrame: (f: Frame) => void;
  fail: (err: Error) => void;
}

/**
 * The agent's end of one container's runner socket: one connection for the container's
 * life, one run at a time. Every wait on the runner is bounded.
 */
export class RunnerClient {
  zygote: ZygoteState = 'off';
  private readonly decoder = new FrameDecoder();
  private pending: Pending | undefined;
  private zygoteWaiters: Array<() => void> = [];
  private closed: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = this.decoder.push(chunk);
      } catch (err) {
        this.shut(err as Error);
        return;
      }
      for (const f of frames) this.dispatch(f);
    });
    socket.on('error', (err) => this.shut(err));
    socket.on('close', () => this.shut(new Error('runner connection closed')));
  }

  /** Connects once the runner listens (it binds its socket as the container starts). */
  static async connect(socketPath: string, timeoutMs: number): Promise<RunnerClient> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      try {
        return await RunnerClient.once(socketPath, Math.max(1, deadline - Date.now()));
      } catch (err) {
        lastError = err;
        await sleep(5);
      }
    }
    throw new RunnerUnresponsive(`a connection (${String(lastError)})`, timeoutMs);
  }

  private static once(socketPath: string, timeoutMs: number): Promise<RunnerClient> {
    return new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error('no hello'));
      }, timeoutMs);
      const decoder = new FrameDecoder();
      const onData = (chunk: Buffer) => {
        const frames = decoder.push(chunk);
        const hello = frames.find((f) => f.type === FRAME.HELLO);
        if (!hello) return;
        clearTimeout(timer);
        socket.off('data', onData);
        socket.off('error', onError);
        const client = new RunnerClient(socket);
        client.zygote = (decodeFields(hello.payload).zygote ?? 'off') as ZygoteState;
        for (const f of frames.slice(frames.indexOf(hello) + 1)) client.dispatch(f);
        resolve(client);
      };
      const onError = (err: Error) => {
        clearTimeout(timer);
        socket.destroy();
        reject(err);
      };
      socket.on('data', onData);
      socket.once('error', onError);
    });
  }

  get usable(): boolean {
    return this.closed === undefined;
  }

  /**
   * Starts a lazy runner's zygote, once its current run (if any) ends: the container is
   * expected to serve again. Only for a runner started with a zygote command (--lazy).
   */
  startZygote(): void {
    if (this.zygote !== 'off' || this.closed) return;
    // Its HELLO follows; meanwhile runs go through exec as they would while it starts.
    this.zygote = 'starting';
    this.socket.write(encodeFrame(FRAME.ZYGOTE));
  }

  /** Resolves true once the zygote is ready, false if it failed, is off, or the bound passes. */
  async zygoteReady(timeoutMs: number): Promise<boolean> {
    if (this.zygote !== 'starting') return this.zygote === 'ready';
    let timer: NodeJS.Timeout | undefined;
    await new Promise<void>((resolve) => {
      this.zygoteWaiters.push(resolve);
      timer = setTimeout(resolve, timeoutMs);
    });
    clearTimeout(timer);
    return (this.zygote as ZygoteState) === 'ready';
  }

  /**
   * Runs one invocation and waits for its end (the runner enforces the timeout and kills
   * what the run left). `boundMs` is how long past the timeout the runner may take to
   * answer before it is given up on.
   */
  run(req: RunnerRunRequest, boundMs: number): Promise<RunnerOutcome> {
    if (this.closed) return Promise.reject(this.closed);
    if (this.pending) return Promise.reject(new Error('a run is already in progress on this runner'));
    const fields: Array<[string, string | number]> = [
      ['mode', req.mode],
      ['cwd', req.cwd],
      ['uid', req.uid],
      ['gid', req.gid],
      ['timeout_ms', req.timeoutMs],
      ['out_limit', req.outputLimitBytes],
      ['hold', req.hold ? 1 : 0],
    ];
    if (req.stdin) fields.push(['stdin', req.stdin]);
    if (req.handler) fields.push(['handler_key', req.handler.key], ['ctx', req.handler.context]);
    if (req.spool) fields.push(['spool_out', req.spool.stdout], ['spool_err', req.spool.stderr], ['spool_limit', req.spool.limitBytes]);
    for (const a of req.argv) fields.push(['arg', a]);
    for (const e of req.env) fields.push(['env', e]);
    return new Promise<RunnerOutcome>((resolve, reject) => {
      let exit: Record<string, string> | undefined;
      const stdout: Buffer[] = [];
      const stderr: Buffer[] = [];
      const answer: Buffer[] = [];
      const limit = req.timeoutMs + boundMs;
      const timer = setTimeout(() => {
        this.pending = undefined;
        reject(new RunnerUnresponsive('the end of a run', limit));
      }, limit);
      const settle = (fn: () => void) => {
        clearTimeout(timer);
        this.pending = undefined;
        fn();
      };
      this.pending = {
        fail: (err) => settle(() => reject(err)),
        onFrame: (f) => {
          if (f.type === FRAME.STARTED) {
            const pid = Number(decodeFields(f.payload).pid);
            req.onStart?.(pid);
            if (req.hold) {
              void req
                .hold(pid)
                .catch(() => undefined)
                .then(() => {
                  if (!this.closed) this.socket.write(encodeFrame(FRAME.GO));
                });
            }
          }
          else if (f.type === FRAME.FAILED) settle(() => reject(new Error(`the runner could not start the run: ${decodeFields(f.payload).error ?? 'unknown'}`)));
          else if (f.type === FRAME.EXIT) exit = decodeFields(f.payload);
          // The kept bytes come in chunks (a frame is at most 4 MiB, an output limit may be more).
          else if (f.type === FRAME.STDOUT && exit) stdout.push(Buffer.from(f.payload));
          else if (f.type === FRAME.STDERR && exit) stderr.push(Buffer.from(f.payload));
          else if (f.type === FRAME.RETURN && exit) answer.push(Buffer.from(f.payload));
          else if (f.type === FRAME.DONE && exit) {
            const e = exit;
            const out = Buffer.concat(stdout);
            const err = Buffer.concat(stderr);
            settle(() =>
              resolve({
                exitCode: Number(e.code),
                signal: Number(e.signal),
                timedOut: e.timed_out === '1',
                durationMs: Number(e.duration_us) / 1000,
                stdout: out.toString('utf8'),
                stderr: err.toString('utf8'),
                stdoutTruncated: Number(e.out_total) > out.length,
                stderrTruncated: Number(e.err_total) > err.length,
                clean: e.clean === '1',
                leftovers: Number(e.leftovers),
                stdoutSpooled: Number(e.out_spooled ?? 0),
                stderrSpooled: Number(e.err_spooled ?? 0),
                ...(e.handler !== undefined ? { handler: handlerCall(e, Buffer.concat(answer)) } : {}),
              }),
            );
          }
        },
      };
      this.socket.write(encodeFrame(FRAME.RUN, encodeFields(fields)));
    });
  }

  /** Asks the runner to kill the current run's processes now. */
  kill(): void {
    if (!this.closed) this.socket.write(encodeFrame(FRAME.KILL));
  }

  /** One round trip; resolves with its time in ms. */
  ping(timeoutMs: number): Promise<number> {
    if (this.closed) return Promise.reject(this.closed);
    if (this.pending) return Promise.reject(new Error('a run is in progress on this runner'));
    const t0 = performance.now();
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending = undefined;
        reject(new RunnerUnresponsive('a ping', timeoutMs));
      }, timeoutMs);
      this.pending = {
        fail: (err) => {
          clearTimeout(timer);
          this.pending = undefined;
          reject(err);
        },
        onFrame: (f) => {
          if (f.type !== FRAME.PONG) return;
          clearTimeout(timer);
          this.pending = undefined;
          resolve(performance.now() - t0);
        },
      };
      this.socket.write(encodeFrame(FRAME.PING));
    });
  }

  close(): void {
    this.shut(new Error('runner connection closed by the agent'));
    this.socket.destroy();
  }

  private dispatch(f: Frame): void {
    if (f.type === FRAME.HELLO) {
      this.zygote = (decodeFields(f.payload).zygote ?? this.zygote) as ZygoteState;
      if (this.zygote !== 'starting') for (const w of this.zygoteWaiters.splice(0)) w();
      return;
    }
    this.pending?.onFrame(f);
  }

  private shut(err: Error): void {
    if (this.closed) return;
    this.closed = err;
    this.pending?.fail(err);
    for (const w of this.zygoteWaiters.splice(0)) w();
  }
}

function handlerCall(e: Record<string, string>, answer: Buffer): HandlerCall {
  const kind = e.answer === 'value' || e.answer === 'error' ? e.answer : 'none';
  return { alive: e.handler === 'alive', pid: Number(e.handler_pid) || 0, init: e.init === '1', initMs: Number(e.init_us) / 1000 || 0, answer: kind, answerText: answer.toString('utf8') };
}
