import { closeSync, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A container's cgroup files that every run reads or writes, opened once and kept for the
 * container's life: each read is then one pread from offset 0 (cgroup files regenerate
 * their text on every read), not an open, a read and a close. Closed when the container is
 * destroyed; a file whose cgroup is gone fails its read, which the callers treat as no figure.
 */
export class CgroupHandles {
  private readonly fds = new Map<string, number>();
  private readonly buf = Buffer.alloc(4096);
  private closed = false;

  constructor(private readonly dir: string) {}

  private fd(name: string, flags: 'r' | 'r+'): number {
    if (this.closed) throw new Error(`the cgroup files of ${this.dir} are closed`);
    const key = `${name}:${flags}`;
    let fd = this.fds.get(key);
    if (fd === undefined) {
      fd = openSync(join(this.dir, name), flags);
      this.fds.set(key, fd);
    }
    return fd;
  }

  read(name: string): string {
    const n = readSync(this.fd(name, 'r'), this.buf, 0, this.buf.length, 0);
    return this.buf.toString('utf8', 0, n);
  }

  write(name: string, text: string): void {
    writeSync(this.fd(name, 'r+'), text, 0);
  }

  close(): void {
    this.closed = true;
    for (const fd of this.fds.values()) {
      try {
        closeSync(fd);
      } catch {
        // closed already
      }
    }
    this.fds.clear();
  }
}

/** The `oom_kill N` counter of memory.oom_control (v1) or memory.events (v2) text. */
export function oomKillsIn(text: string): number {
  const m = /^oom_kill (\d+)$/m.exec(text);
  return m ? Number(m[1]) : 0;
}

/** The pids listed in a cgroup.procs text. */
export function pidsInText(raw: string): number[] {
  const out: number[] = [];
  for (const l of raw.split('\n')) {
    const n = Number(l);
    if (l && Number.isInteger(n) && n > 0) out.push(n);
  }
  return out;
}
