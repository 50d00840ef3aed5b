// The agent's JavaScript heap after a full garbage collection, through its inspector (the
// agent process runs with --inspect on loopback in the bench only): RSS alone cannot tell
// a leak from a heap V8 was merely allowed to grow.
export class HeapProbe {
  private id = 0;
  private readonly waiting = new Map<number, (r: unknown) => void>();

  private constructor(private readonly ws: WebSocket) {
    ws.addEventListener('message', (e) => {
      const m = JSON.parse(String(e.data)) as { id?: number; result?: unknown };
      if (m.id !== undefined) this.waiting.get(m.id)?.(m.result);
    });
  }

  /** Connects to the inspector whose "Debugger listening on ws://..." line `lines` holds. */
  static async connect(url: string): Promise<HeapProbe> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve());
      ws.addEventListener('error', () => reject(new Error(`cannot reach the agent's inspector at ${url}`)));
    });
    return new HeapProbe(ws);
  }

  private call<T>(method: string): Promise<T> {
    const id = ++this.id;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`inspector: no answer to ${method}`)), 10_000);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        this.waiting.delete(id);
        resolve(r as T);
      });
      this.ws.send(JSON.stringify({ id, method, params: {} }));
    });
  }

  /** MB of the heap in use after two full collections. */
  async heapMbAfterGc(): Promise<number> {
    await this.call('HeapProfiler.collectGarbage');
    await this.call('HeapProfiler.collectGarbage');
    const u = await this.call<{ usedSize: number }>('Runtime.getHeapUsage');
    return Math.round((u.usedSize / 2 ** 20) * 10) / 10;
  }

  close(): void {
    this.ws.close();
  }
}

/** The inspector's WebSocket address in a process's output lines. */
export function inspectorUrl(lines: Array<Record<string, unknown>>): string | undefined {
  for (const l of lines) {
    const m = /(ws:\/\/127\.0\.0\.1:\d+\/[\w-]+)/.exec(String(l.msg ?? ''));
    if (m) return m[1];
  }
  return undefined;
}
