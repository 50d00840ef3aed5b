import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { waitUntil } from '../core/timeout.js';
import type { LocalStack } from './stack.js';

/** dist/src/main.js, whether this module runs from dist/ or from src/ under the test runner. */
function compiledMain(): string {
  const candidates = [new URL('../main.js', import.meta.url), new URL('../../dist/src/main.js', import.meta.url)].map((u) => fileURLToPath(u));
  return candidates.find((p) => p.endsWith('.js') && p.includes('/dist/') && existsSync(p)) ?? candidates[1]!;
}

export interface AgentProcessOptions {
  stack: Pick<LocalStack, 'queueUrl' | 'endpoint' | 'redisUrl' | 'region'>;
  agentId: string;
  workRoot: string;
  env?: Record<string, string>;
  /** The compiled entry point (dist/src/main.js by default). */
  main?: string;
}

/**
 * The agent as its own process on the local stack, as an operator runs it: for tests and
 * the chaos suite that signal or kill it. Its JSON log lines are kept, parsed.
 */
export class AgentProcess {
  readonly lines: Record<string, unknown>[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private partial = '';

  constructor(readonly opts: AgentProcessOptions) {
    this.child = spawn(process.execPath, [opts.main ?? compiledMain()], {
      env: {
        ...process.env,
        NANOGRID_AGENT_ID: opts.agentId,
        SQS_QUEUE_URL: opts.stack.queueUrl,
        AWS_ENDPOINT_URL: opts.stack.endpoint,
        AWS_REGION: opts.stack.region,
        AWS_ACCESS_KEY_ID: 'local',
        AWS_SECRET_ACCESS_KEY: 'local',
        AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
        REDIS_URL: opts.stack.redisUrl,
        HTTP_PORT: '0',
        HTTP_HOST: '127.0.0.1',
        NANOGRID_WORK_ROOT: opts.workRoot,
        NANOGRID_CLOUDWATCH: 'off',
        NANOGRID_RECEIVE_WAIT_S: '1',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const take = (d: Buffer) => {
      const text = this.partial + d.toString();
      const parts = text.split('\n');
      this.partial = parts.pop() ?? '';
      for (const l of parts) {
        if (!l.trim()) continue;
        try {
          this.lines.push(JSON.parse(l) as Record<string, unknown>);
        } catch {
          this.lines.push({ msg: l, level: 'text' });
        }
      }
    };
    this.child.stdout!.on('data', take);
    this.child.stderr!.on('data', take);
    this.exited = new Promise((resolve) => this.child.once('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Waits for "agent started" and returns the HTTP port it bound. */
  async started(timeoutMs = 90_000): Promise<number> {
    return waitUntil(
      'agent started',
      () => {
        if (!this.running) throw new Error(`agent exited before it started: ${this.tail()}`);
        const line = this.lines.find((l) => l.msg === 'agent started');
        return line ? (line.httpPort as number) : undefined;
      },
      { timeoutMs },
    );
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) this.child.kill(sig);
  }

  /** Lines with this message. */
  count(msg: string): number {
    return this.lines.filter((l) => l.msg === msg).length;
  }

  /** The summary line of every invocation taken here, run or not: one per try. */
  summaries(): Array<Record<string, unknown>> {
    return this.lines.filter((l) => l.msg === 'invocation finished');
  }

  /** Runs that finished here: summary lines of invocations that ran. */
  runs(filter: (line: Record<string, unknown>) => boolean = () => true): Array<Record<string, unknown>> {
    return this.summaries().filter((l) => l.ran !== false && filter(l));
  }

  tail(n = 10): string {
    return this.lines
      .slice(-n)
      .map((l) => JSON.stringify(l))
      .join('\n');
  }
}
