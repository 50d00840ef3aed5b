import { readdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { sleep } from '../core/timeout.js';
import { readProcCgroups } from './cgroupFiles.js';
import { pidsIn } from './hostPid.js';

/**
 * Freezes and thaws a container by writing its cgroup directly: dockerd's pause path costs
 * about 17 ms per call on this machine class, the cgroup write under 1 ms (bench/README.md).
 * OpenWhisk pauses through runc for the same reason. cgroup v1 uses the freezer
 * controller's freezer.state; v2 uses cgroup.freeze and waits for cgroup.events.
 */
export interface Freezer {
  readonly kind: 'cgroup-v1' | 'cgroup-v2';
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /**
   * Sends SIGKILL to every process of the cgroup; called while it is frozen, so that none
   * can fork or run again: each dies as it is thawed, before it returns to user space.
   * Returns how many were signalled.
   */
  killAll(): Promise<number>;
}

const SETTLE_MS = 2000;

/** Finds the freezer of a process's cgroup (the container's init), or null when there is none. */
export async function locateFreezer(pid: number, roots: { proc?: string; cgroup?: string } = {}): Promise<Freezer | null> {
  const cgroupRoot = roots.cgroup ?? '/sys/fs/cgroup';
  const cg = await readProcCgroups(pid, roots.proc);
  if (!cg) return null;
  const v1 = cg.v1('freezer')?.path;
  if (v1) return new V1Freezer(join(cgroupRoot, 'freezer', v1));
  if (cg.v2 !== undefined) return new V2Freezer(join(cgroupRoot, cg.v2));
  return null;
}

class V1Freezer implements Freezer {
  readonly kind = 'cgroup-v1';
  constructor(private readonly dir: string) {}

  freeze(): Promise<void> {
    return this.set('FROZEN');
  }

  thaw(): Promise<void> {
    return this.set('THAWED');
  }

  async killAll(): Promise<number> {
    return killEach(pidsIn(join(this.dir, 'cgroup.procs')));
  }

  /** Writes the state and waits until the kernel reports it (FREEZING passes). */
  private async set(state: 'FROZEN' | 'THAWED'): Promise<void> {
    const file = join(this.dir, 'freezer.state');
    await writeFile(file, state);
    await settle(`freezer.state ${state}`, async () => (await readFile(file, 'utf8')).trim() === state);
  }
}

class V2Freezer implements Freezer {
  readonly kind = 'cgroup-v2';
  constructor(private readonly dir: string) {}

  freeze(): Promise<void> {
    return this.set(1);
  }

  thaw(): Promise<void> {
    return this.set(0);
  }

  async killAll(): Promise<number> {
    // cgroup.kill (5.14+) kills the whole subtree at once, the run's child cgroups included.
    const pids = pidsUnder(this.dir);
    const written = await writeFile(join(this.dir, 'cgroup.kill'), '1').then(
      () => true,
      () => false,
    );
    return written ? pids.length : killEach(pids);
  }

  private async set(frozen: 0 | 1): Promise<void> {
    await writeFile(join(this.dir, 'cgroup.freeze'), String(frozen));
    const events = join(this.dir, 'cgroup.events');
    await settle(`cgroup.freeze ${frozen}`, async () => new RegExp(`^frozen ${frozen}$`, 'm').test(await readFile(events, 'utf8')));
  }
}

async function settle(what: string, done: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + SETTLE_MS;
  for (let delay = 0; ; delay = Math.min(20, delay + 1)) {
    if (await done()) return;
    if (Date.now() > deadline) throw new Error(`${what} did not take effect within ${SETTLE_MS} ms`);
    if (delay) await sleep(delay);
  }
}

function killEach(pids: number[]): number {
  let n = 0;
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
      n++;
    } catch {
      // gone already
    }
  }
  return n;
}

/** The pids of a v2 cgroup and of its children (a container's init leaf and run scopes). */
function pidsUnder(dir: string, depth = 0): number[] {
  const own = pidsIn(join(dir, 'cgroup.procs'));
  if (depth >= 3) return own;
  let children: string[] = [];
  try {
    children = readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    // no children to read
  }
  return [...own, ...children.flatMap((c) => pidsUnder(join(dir, c), depth + 1))];
}
