import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A Unix socket in front of the real Docker socket, for an engine outage that touches no
 * other test: `cut()` refuses every connection (the socket file is gone, as when dockerd
 * stops) and drops the open ones; `restore()` serves again.
 */
export class EngineProxy {
  private server: Server | undefined;
  private readonly open = new Set<Socket>();

  private constructor(
    readonly socketPath: string,
    private readonly dir: string,
    private readonly target: string,
  ) {}

  static async start(target = '/var/run/docker.sock'): Promise<EngineProxy> {
    const dir = await mkdtemp(join(tmpdir(), 'nanogrid-engine-proxy-'));
    const p = new EngineProxy(join(dir, 'docker.sock'), dir, target);
    await p.restore();
    return p;
  }

  restore(): Promise<void> {
    if (this.server) return Promise.resolve();
    const server = createServer((client) => {
      const upstream = createConnection(this.target);
      for (const s of [client, upstream]) {
        this.open.add(s);
        s.on('close', () => this.open.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.socketPath, () => resolve());
    });
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.open) s.destroy();
    this.open.clear();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async stop(): Promise<void> {
    await this.cut();
    await rm(this.dir, { recursive: true, force: true });
  }
}
