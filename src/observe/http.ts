import { createServer, type Server } from 'node:http';

export interface HttpHandlers {
  host: string;
  port: number;
  health: () => Promise<{ ok: boolean; parts: Record<string, unknown> }>;
  status: () => unknown;
  metrics: () => Promise<{ contentType: string; body: string }>;
}

/** GET /health (200/503), GET /status (JSON), GET /metrics (Prometheus text). */
export async function startHttp(h: HttpHandlers): Promise<Server> {
  const server = createServer((req, res) => {
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const json = (code: number, value: unknown) => send(code, 'application/json', `${JSON.stringify(value, null, 2)}\n`);
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET') return json(405, { error: 'only GET' });
    const route = async () => {
      switch (path) {
        case '/health': {
          const r = await h.health();
          return json(r.ok ? 200 : 503, { status: r.ok ? 'UP' : 'DOWN', ...r });
        }
        case '/status':
          return json(200, h.status());
        case '/metrics': {
          const m = await h.metrics();
          return send(200, m.contentType, m.body);
        }
        default:
          return json(404, { error: `no route ${path}`, routes: ['/health', '/status', '/metrics'] });
      }
    };
    route().catch((err: unknown) => json(500, { error: String(err) }));
  });
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(h.port, h.host, () => resolve());
  });
  return server;
}
