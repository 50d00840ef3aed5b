import { createServer, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';

export interface LogsCall {
  op: string;
  body: { logGroupName?: string; logStreamName?: string; logEvents?: Array<{ timestamp: number; message: string }> };
}

export interface FakeLogs {
  url: string;
  calls: LogsCall[];
  /** The events stored, by group, then stream. */
  events(group: string, stream?: string): Array<{ timestamp: number; message: string }>;
  /** The next answers, by operation: an error name (with status 400) or 'fail' (500). */
  failNext(op: string, error: string, times?: number): void;
  groups: Set<string>;
  /** Answers PutLogEvents this much later (a slow service: what happens meanwhile). */
  delayMs: number;
}

/**
 * A CloudWatch Logs stand-in on loopback: decodes what the real SDK sends (AWS JSON 1.1,
 * `X-Amz-Target: Logs_20140328.<op>`), keeps streams of known groups and answers as the
 * service does (ResourceNotFoundException for a missing group or stream,
 * ResourceAlreadyExistsException for a stream made twice).
 */
export async function fakeLogs(t: { teardown(fn: () => unknown): void }, groups: string[]): Promise<FakeLogs> {
  const calls: LogsCall[] = [];
  const streams = new Map<string, Array<{ timestamp: number; message: string }>>();
  const failures = new Map<string, string[]>();
  const known = new Set(groups);
  const state = { delayMs: 0 };
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => void respond());
    const respond = async () => {
      if (state.delayMs > 0 && String(req.headers['x-amz-target']).endsWith('PutLogEvents')) await new Promise((r) => setTimeout(r, state.delayMs));
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      const op = String(req.headers['x-amz-target']).replace(/^Logs_20140328\./, '');
      const body = JSON.parse(raw.toString() || '{}') as LogsCall['body'];
      calls.push({ op, body });
      const answer = (status: number, out: unknown) => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(out));
      };
      const err = (type: string) => answer(type === 'fail' ? 500 : 400, { __type: type === 'fail' ? 'ServiceUnavailableException' : type, message: type });
      const planned = failures.get(op)?.shift();
      if (planned) return err(planned);
      const key = `${body.logGroupName}\u0000${body.logStreamName}`;
      if (!known.has(body.logGroupName ?? '')) return err('ResourceNotFoundException');
      if (op === 'CreateLogStream') {
        if (streams.has(key)) return err('ResourceAlreadyExistsException');
        streams.set(key, []);
        return answer(200, {});
      }
      if (op === 'PutLogEvents') {
        const s = streams.get(key);
        if (!s) return err('ResourceNotFoundException');
        const events = body.logEvents ?? [];
        for (let i = 1; i < events.length; i++) if (events[i]!.timestamp < events[i - 1]!.timestamp) return err('InvalidParameterException');
        s.push(...events);
        return answer(200, {});
      }
      return err('UnknownOperationException');
    };
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const addr = server.address();
  return {
    get delayMs() {
      return state.delayMs;
    },
    set delayMs(ms: number) {
      state.delayMs = ms;
    },
    url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`,
    calls,
    groups: known,
    events: (group, stream) => [...streams].filter(([k]) => k.startsWith(`${group}\u0000`) && (stream === undefined || k === `${group}\u0000${stream}`)).flatMap(([, v]) => v),
    failNext: (op, error, times = 1) => failures.set(op, [...(failures.get(op) ?? []), ...Array<string>(times).fill(error)]),
  };
}
