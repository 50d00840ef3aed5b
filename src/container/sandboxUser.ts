import { readFile } from 'node:fs/promises';

/**
 * Who a function runs as: a host uid (and gid of the same number) of its container's own,
 * from a range no host account uses. The kernel keeps some limits per uid (processes,
 * queued signals, message queue bytes, inotify instances): with one uid per container a
 * function exhausting them reaches only itself, and it can signal nothing outside its
 * container even where a pid namespace would let it.
 *
 * The container engine is the registry: a container is named after its uid
 * (`ng-uid-<uid>`), and the engine refuses a second container of the same name. Two agents
 * on one host (or one agent racing itself) can therefore never hand one uid to two live
 * containers; a name, and with it the uid, is free again once its container is removed,
 * which ends every process of it.
 */
export interface UidRange {
  first: number;
  last: number;
}

/** systemd's "unused" block (docs/UIDS-GIDS.md): above its container ranges, below 2^31. */
export const DEFAULT_UID_RANGE: UidRange = { first: 1_879_048_192, last: 1_879_048_192 + 65_535 };

export const engineNameFor = (uid: number) => `ng-uid-${uid}`;

/** Parses "FIRST-LAST"; null when it is not a valid range of at least 16 uids. */
export function parseUidRange(raw: string): UidRange | null {
  const m = /^\s*(\d+)\s*-\s*(\d+)\s*$/.exec(raw);
  if (!m) return null;
  const first = Number(m[1]);
  const last = Number(m[2]);
  // Above every system and regular account, and short of 2^31: some tools read a uid as signed.
  if (first < 65_536 || last >= 2 ** 31 - 1 || last - first < 15) return null;
  return { first, last };
}

/**
 * Hands out uids of the range that this agent does not use now, at random so that agents
 * sharing a host rarely try the same one; the engine's name check settles the rest.
 */
export class SandboxUids {
  private readonly mine = new Set<number>();

  constructor(
    readonly range: UidRange,
    private readonly random: () => number = Math.random,
  ) {}

  get inUse(): number {
    return this.mine.size;
  }

  take(): number {
    const size = this.range.last - this.range.first + 1;
    if (this.mine.size >= size) throw new Error(`every uid of ${this.range.first}-${this.range.last} is in use by this agent (NANOGRID_SANDBOX_UIDS)`);
    for (;;) {
      const uid = this.range.first + Math.floor(this.random() * size);
      if (!this.mine.has(uid)) {
        this.mine.add(uid);
        return uid;
      }
    }
  }

  release(uid: number): void {
    this.mine.delete(uid);
  }
}

/**
 * The container's /etc/passwd and /etc/group: root, nobody and the sandbox user, so that
 * what asks who it runs as (getpwuid: whoami, getpass, pip) gets an answer.
 */
export function passwdFor(uid: number): string {
  return ['root:x:0:0:root:/root:/usr/sbin/nologin', 'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin', `sandbox:x:${uid}:${uid}:NanoGrid function:/tmp:/usr/sbin/nologin`, ''].join('\n');
}

export function groupFor(uid: number): string {
  return ['root:x:0:', 'nogroup:x:65534:', `sandbox:x:${uid}:`, ''].join('\n');
}

/**
 * Why the range cannot be used on this host, or null: an account or group of the host, or
 * a subordinate range (user namespaces of the host's own containers), falls inside it.
 */
export async function rangeConflict(range: UidRange, files = { passwd: '/etc/passwd', group: '/etc/group', subuid: '/etc/subuid', subgid: '/etc/subgid' }): Promise<string | null> {
  const inside = (n: number) => n >= range.first && n <= range.last;
  for (const [what, file] of [
    ['account', files.passwd],
    ['group', files.group],
  ] as const) {
    for (const line of await lines(file)) {
      const [name, , id] = line.split(':');
      if (id !== undefined && inside(Number(id))) return `the host ${what} ${name} (${id}, ${file}) is inside NANOGRID_SANDBOX_UIDS ${range.first}-${range.last}`;
    }
  }
  for (const file of [files.subuid, files.subgid]) {
    for (const line of await lines(file)) {
      const [name, start, count] = line.split(':');
      const a = Number(start);
      const b = a + Number(count) - 1;
      if (Number.isFinite(a) && Number.isFinite(b) && a <= range.last && b >= range.first) {
        return `the subordinate range ${a}-${b} of ${name} (${file}) overlaps NANOGRID_SANDBOX_UIDS ${range.first}-${range.last}`;
      }
    }
  }
  return null;
}

async function lines(file: string): Promise<string[]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((l) => l && !l.startsWith('#'));
}
