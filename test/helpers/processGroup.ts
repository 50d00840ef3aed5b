import { spawn } from 'node:child_process';

/** Kills a process group (a child spawned detached leads its own); a group already gone is fine. */
export function killGroup(pid: number): void {
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    /* already gone */
  }
}

export interface GroupRun {
  code: number | null;
  out: string;
  err: string;
}

/**
 * Runs a command in a process group of its own and collects its output: whatever it starts
 * (an agent, redis-server, QEMU) is killed with it at the timeout, or by the caller through
 * `onChild`'s pid when a test ends early.
 */
export function runInGroup(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; onChild?: (pid: number) => void; echoStderr?: boolean } = {},
): Promise<GroupRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    opts.onChild?.(child.pid!);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      if (opts.echoStderr) process.stderr.write(d);
    });
    const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => killGroup(child.pid!), opts.timeoutMs);
    child.once('error', reject);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}
