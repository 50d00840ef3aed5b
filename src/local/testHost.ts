import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { sleep } from '../core/timeout.js';

const exec = promisify(execFile);

export interface TestHost {
  /** The host's address, reachable from this machine (and from containers, through it). */
  ip: string;
  stop(): Promise<void>;
}

/**
 * A test host of the test's own on this machine: a network namespace joined to the root
 * namespace by a veth pair on a /24 of its own, with an HTTP server on each of `ports`.
 * Nothing leaves the machine.
 */
export async function startTestHost(ports: number[]): Promise<TestHost> {
  const id = randomBytes(3).toString('hex');
  const ns = `ngt-${id}`;
  const hostIf = `ngh${id}`;
  const nsIf = `ngn${id}`;
  const subnet = `10.231.${randomBytes(1)[0]! % 250}`;
  const ip = `${subnet}.2`;
  const procs: ChildProcess[] = [];
  const stop = async () => {
    for (const p of procs) p.kill('SIGKILL');
    await exec('ip', ['link', 'del', hostIf]).catch(() => undefined);
    await exec('ip', ['netns', 'del', ns]).catch(() => undefined);
  };
  try {
    await exec('ip', ['netns', 'add', ns]);
    await exec('ip', ['link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf]);
    await exec('ip', ['link', 'set', nsIf, 'netns', ns]);
    await exec('ip', ['addr', 'add', `${subnet}.1/24`, 'dev', hostIf]);
    await exec('ip', ['link', 'set', hostIf, 'up']);
    await exec('ip', ['netns', 'exec', ns, 'ip', 'addr', 'add', `${ip}/24`, 'dev', nsIf]);
    await exec('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', nsIf, 'up']);
    await exec('ip', ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up']);
    for (const port of ports) {
      const p = spawn('ip', ['netns', 'exec', ns, 'python3', '-m', 'http.server', String(port), '--bind', ip], { stdio: 'ignore', cwd: '/' });
      procs.push(p);
    }
    // Serving once a connection from the root namespace is answered.
    for (const port of ports) {
      for (let i = 0; ; i++) {
        const ok = await fetch(`http://${ip}:${port}/`, { signal: AbortSignal.timeout(1000) }).then(
          () => true,
          () => false,
        );
        if (ok) break;
        if (i > 50) throw new Error(`test host ${ip}:${port} never answered`);
        await sleep(100);
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { ip, stop };
}
