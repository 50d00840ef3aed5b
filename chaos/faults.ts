import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { waitUntil } from '../src/core/timeout.js';

const exec = promisify(execFile);
const SETUP = fileURLToPath(new URL('../../ops/setup.sh', import.meta.url));

/** Kills dockerd outright (SIGKILL), as a crash would; its containers' shims live on. */
export async function killDockerd(): Promise<void> {
  await exec('pkill', ['-9', '-x', 'dockerd']).catch(() => undefined);
  const docker = new Docker();
  await waitUntil('dockerd gone', () => docker.ping().then(() => undefined, () => true), { timeoutMs: 10_000, intervalMs: 100 });
}

/** Starts dockerd again through the project's own setup script (it clears a stale pid file). */
export async function startDockerd(): Promise<void> {
  await exec('bash', [SETUP, 'dockerd'], { timeout: 120_000 });
  await new Docker().ping();
}

/** The pid of the redis-server listening on `port` (its title is "redis-server 127.0.0.1:port"). */
async function redisPid(port: number): Promise<number> {
  const { stdout } = await exec('pgrep', ['-f', `redis-server 127.0.0.1:${port}`]);
  const pid = Number(stdout.trim().split('\n')[0]);
  if (!pid) throw new Error(`no redis-server on port ${port}`);
  return pid;
}

/**
 * Makes Redis unreachable without losing what it holds: the server is stopped (SIGSTOP),
 * so connections hang and commands time out, as in a network partition. Returns the thaw.
 */
export async function freezeRedis(url: string): Promise<() => void> {
  const pid = await redisPid(Number(new URL(url).port));
  process.kill(pid, 'SIGSTOP');
  return () => process.kill(pid, 'SIGCONT');
}
