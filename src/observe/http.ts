import { createServer, type Server } from 'node:http';

export interface HealthAnswer {
  ok: boolean;
  phase?: string;
  parts: Record<string, unknown>;
}

export interface HttpHandlers {
  host: string;
  port: number;
  /** Readiness (what /health has always answered). */
  health: () => Promise<HealthAnswer>;
  /** Liveness: the process and its engine only. */
  live: () => Promise<HealthAnswer>;
  ready: () => Promise<HealthAnswer>;
  status: () => unknown;
  /** POST /drain: starts a drain (idempotent) and returns its status. */
  drain: () => unknown;
  metrics: () => Promise<{ contentType: string; body: string }>;
}

/**
 * GET /health and /health/ready (readiness, 200/503: STARTING until the pools are ready),
 * GET /health/live (liveness: the process and its engine), GET /status (JSON), GET
 * /metrics (Prometheus text).
 */
export async function startHttp(h: HttpHandlers): Promise<Server> {
  const server = createServer((req, res) => {
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const json = (code: number, value: unknown) => send(code, 'application/json', `${JSON.stringify(value, null, 2)}\n`);
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'POST' && path === '/drain') return json(202, h.drain());
    if (req.method !== 'GET') return json(405, { error: 'only GET (and POST /drain)' });
    const route = async () => {
      switch (path) {
        case '/health':
        case '/health/ready':
        case '/health/live': {
          const r = await (path === '/health/live' ? h.live() : path === '/health/ready' ? h.ready() : h.health());
          const down = r.phase === 'starting' && path !== '/health/live' ? 'STARTING' : 'DOWN';
          return json(r.ok ? 200 : 503, { status: r.ok ? 'UP' : down, ...r });
        }
        case '/status':
          return json(200, h.status());
        case '/metrics': {
          const m = await h.metrics();
          return send(200, m.contentType, m.body);
        }
        default:
          return json(404, { error: `no route ${path}`, routes: ['/health', '/health/live', '/health/ready', '/status', '/metrics', 'POST /drain'] });
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
