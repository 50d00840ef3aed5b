import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';

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
  /** DELETE /drain: undoes a drain started over HTTP; null and why not when it cannot be. */
  undrain: () => { ok: true; status: unknown } | { ok: false; why: string };
  /** What a state-changing request must carry (Bearer); without one, only loopback may send them. */
  adminToken?: string | undefined;
  metrics: () => Promise<{ contentType: string; body: string }>;
}

/**
 * GET /health and /health/ready (readiness, 200/503: STARTING until the pools are ready),
 * GET /health/live (liveness: the process and its engine), GET /status (JSON), GET
 * /metrics (Prometheus text): anyone may read them. POST /drain and DELETE /drain change
 * what the worker does: they need the admin token, or without one a client on loopback.
 */
export async function startHttp(h: HttpHandlers): Promise<Server> {
  const server = createServer((req, res) => {
    const send = (code: number, type: string, body: string) => {
      res.writeHead(code, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    const json = (code: number, value: unknown) => send(code, 'application/json', `${JSON.stringify(value, null, 2)}\n`);
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/drain' && (req.method === 'POST' || req.method === 'DELETE')) {
      const denied = refusal(req, h.adminToken);
      if (denied) {
        res.setHeader('www-authenticate', 'Bearer realm="nanogrid"');
        return json(denied.code, { error: denied.why });
      }
      if (req.method === 'POST') return json(202, h.drain());
      const undone = h.undrain();
      return undone.ok ? json(200, undone.status) : json(409, { error: undone.why });
    }
    if (req.method !== 'GET') return json(405, { error: 'only GET (and POST or DELETE /drain)' });
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
          return json(404, { error: `no route ${path}`, routes: ['/health', '/health/live', '/health/ready', '/status', '/metrics', 'POST /drain', 'DELETE /drain'] });
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

/** Why a state-changing request is refused, or null: a token must match; without one, the client must be on loopback. */
export function refusal(req: Pick<IncomingMessage, 'headers' | 'socket'>, token: string | undefined): { code: 401 | 403; why: string } | null {
  if (token) {
    const given = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '')?.[1] ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    return a.length === b.length && timingSafeEqual(a, b) ? null : { code: 401, why: 'this request needs Authorization: Bearer <NANOGRID_ADMIN_TOKEN>' };
  }
  return isLoopback(req.socket.remoteAddress) ? null : { code: 403, why: 'without NANOGRID_ADMIN_TOKEN, only a client on this host (loopback) may drain the worker' };
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return address === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(v4);
}
