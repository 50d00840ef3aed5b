// Stand-ins for the AWS parts with no emulator here (IMDSv2, Auto Scaling), on loopback: for the tests and the chaos suite.
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Listens on a free loopback port until teardown; returns the server's base URL. */
/** Where a stand-in listens: loopback on a free port unless asked (the VM suite's guest serves the metadata address). */
export interface ListenAt {
  host?: string;
  port?: number;
}

export async function listen(t: Teardown, server: Server, at: ListenAt = {}): Promise<string> {
  const host = at.host ?? '127.0.0.1';
  await new Promise<void>((r) => server.listen(at.port ?? 0, host, () => r()));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  const addr = server.address();
  return `http://${host}:${typeof addr === 'object' && addr ? addr.port : 0}`;
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString()));
  });
}

export interface ImdsStandIn {
  url: string;
  /** meta-data paths (under /latest/meta-data/) and their answers; absent: 404. */
  paths: Map<string, string>;
  /** Requests seen, as "METHOD path". */
  requests: string[];
  /** Requests refused for lack of a valid token (IMDSv1 attempts). */
  refused: number;
}

/**
 * An IMDSv2 stand-in on loopback: a token from PUT /latest/api/token (TTL header
 * required), and meta-data only with that token, as an instance whose launch template
 * requires tokens answers. 401 without one.
 */
export async function startImds(t: Teardown, paths: Record<string, string> = {}, at: ListenAt = {}): Promise<ImdsStandIn> {
  const tokens = new Set<string>();
  const s: ImdsStandIn = { url: '', paths: new Map(Object.entries(paths)), requests: [], refused: 0 };
  const server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0]!;
    s.requests.push(`${req.method} ${path}`);
    if (req.method === 'PUT' && path === '/latest/api/token') {
      if (!req.headers['x-aws-ec2-metadata-token-ttl-seconds']) return res.writeHead(400).end();
      const token = randomUUID();
      tokens.add(token);
      return res.writeHead(200, { 'content-type': 'text/plain' }).end(token);
    }
    if (req.method !== 'GET' || !path.startsWith('/latest/meta-data/')) return res.writeHead(404).end();
    if (!tokens.has(String(req.headers['x-aws-ec2-metadata-token'] ?? ''))) {
      s.refused++;
      return res.writeHead(401).end();
    }
    const answer = s.paths.get(path.slice('/latest/meta-data/'.length));
    if (answer === undefined) return res.writeHead(404, { 'content-type': 'text/html' }).end('<html>Not Found</html>');
    res.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
  });
  s.url = await listen(t, server, at);
  return s;
}

export interface AutoScalingCall {
  action: string;
  params: Record<string, string>;
  /** The SigV4 credential scope's service ("autoscaling" from the real SDK). */
  service: string | undefined;
  at: number;
}

/**
 * An Auto Scaling stand-in: decodes the AWS Query protocol the real SDK sends (a form
 * body with Action and parameters, signed for service "autoscaling") and answers with the
 * XML envelope it expects. `fail` makes the next n calls answer a throttling error.
 */
export async function startAutoScaling(t: Teardown): Promise<{ url: string; calls: AutoScalingCall[]; fail: { next: number } }> {
  const calls: AutoScalingCall[] = [];
  const fail = { next: 0 };
  const server = createServer((req, res) => {
    void body(req).then((raw) => {
      const params = Object.fromEntries(new URLSearchParams(raw));
      const action = params.Action ?? '';
      const service = /Credential=[^/]+\/[^/]+\/[^/]+\/([^/]+)\//.exec(String(req.headers.authorization ?? ''))?.[1];
      calls.push({ action, params, service, at: Date.now() });
      const ns = 'http://autoscaling.amazonaws.com/doc/2011-01-01/';
      if (fail.next > 0) {
        fail.next--;
        res.writeHead(400, { 'content-type': 'text/xml' });
        return res.end(`<ErrorResponse xmlns="${ns}"><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`);
      }
      res.writeHead(200, { 'content-type': 'text/xml' });
      res.end(`<${action}Response xmlns="${ns}"><${action}Result/><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`);
    });
  });
  return { url: await listen(t, server), calls, fail };
}

/**
 * Both stand-ins as an instance of the group sees them, and the agent settings that point
 * an agent at them (metadata polled every 200 ms). `paths` adds to the instance's metadata.
 */
export async function startFleetStandIns(t: Teardown, paths: Record<string, string> = {}): Promise<{ imds: ImdsStandIn; asg: Awaited<ReturnType<typeof startAutoScaling>>; env: Record<string, string> }> {
  const imds = await startImds(t, { 'instance-id': 'i-0fleet000000001', 'tags/instance/aws:autoscaling:groupName': 'nanogrid-workers', ...paths });
  const asg = await startAutoScaling(t);
  const env = {
    NANOGRID_TERMINATION_WATCH: 'imds',
    AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
    AWS_ENDPOINT_URL_AUTO_SCALING: asg.url,
    NANOGRID_TERMINATION_POLL_MS: '200',
  };
  return { imds, asg, env };
}
