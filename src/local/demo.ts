import Docker from 'dockerode';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Agent } from '../agent.js';
import type { Result } from '../core/result.js';
import { createLogger } from '../core/log.js';
import { listAgentContainers } from '../pool/leftovers.js';
import { LOCAL_CREDENTIALS, localAgentConfig } from './agentConfig.js';
import { LocalClient } from './client.js';
import { SAMPLES } from './samples.js';
import { startLocalStack, type LocalStack } from './stack.js';
import { startTestHost, type TestHost } from './testHost.js';

/**
 * `npm run demo`: the agent's main job on the embedded local stack. Uploads and enqueues
 * real functions, waits for their results through Redis, prints them with cold, prewarm
 * and warm timings, and stops leaving no containers.
 */

const AGENT_ID = 'demo';
const say = (msg: string) => process.stdout.write(`[demo] ${msg}\n`);

interface Row {
  label: string;
  expected: string;
  sentAt: number;
  result?: Result;
  e2eMs?: number;
  error?: string;
}

async function main(): Promise<number> {
  const started = Date.now();
  const logFile = join(tmpdir(), 'nanogrid-demo.log');
  say(`agent logs (JSON lines) go to ${logFile}`);
  say('starting the embedded local stack: fauxqs (SQS + S3 + DLQ) and redis-server');
  let stack: LocalStack | undefined;
  let agent: Agent | undefined;
  let client: LocalClient | undefined;
  let interrupted = false;
  const onSignal = () => {
    interrupted = true;
    say('interrupted: stopping cleanly');
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let platform: Platform | undefined;
  try {
    stack = await startLocalStack();
    say('starting the platform stand-ins: a user-data bucket, an archive S3 (s3rver) and an AI node (a network namespace of its own)');
    platform = await startPlatform(stack);
    const config = localAgentConfig(
      stack,
      AGENT_ID,
      { HTTP_PORT: process.env.HTTP_PORT ?? '0', NANOGRID_RECEIVE_WAIT_S: process.env.NANOGRID_RECEIVE_WAIT_S ?? '2', ...platform.env },
      process.env,
    );
    agent = new Agent({ config, log: createLogger('info', pino.destination({ dest: logFile, sync: false })), credentials: LOCAL_CREDENTIALS });
    say(`starting the agent (prewarm ${config.runtimes.list.map((r) => `${r.name}=${r.prewarm}`).join(' ')})`);
    await agent.start();
    say(`agent up: GET http://127.0.0.1:${agent.httpPort}/status`);

    client = new LocalClient({ ...stack });
    await client.connect();
    await client.uploadZip('py-hello/v1.zip', SAMPLES.pythonHello);
    await client.uploadZip('py-fail/v1.zip', SAMPLES.pythonFail);
    await client.uploadZip('cpp-hello/v1.zip', SAMPLES.cppHello);
    await client.uploadZip('node-hello/v1.zip', SAMPLES.nodeHello);
    await client.uploadZip('py-page/v1.zip', SAMPLES.pythonTemplateHandler);

    const rows: Row[] = [];
    const run = async (label: string, expected: string, message: Record<string, unknown>) => {
      const requestId = String(message.requestId ?? message.job_id);
      const row: Row = { label, expected, sentAt: await client!.send(message) };
      rows.push(row);
      try {
        row.result = await client!.waitForResult(requestId, 90_000);
        row.e2eMs = Date.now() - row.sentAt;
      } catch (err) {
        row.error = (err as Error).message;
      }
      return row;
    };
    const msg = (id: string, functionId: string, runtime: string, key: string, extra: object = {}) => ({
      requestId: id,
      functionId,
      runtime,
      s3Bucket: stack!.bucket,
      s3Key: key,
      timeoutMs: 30_000,
      memoryMb: 256,
      ...extra,
    });

    say('wave 1: seven samples at once (the missing S3 key retries with backoff until its last try)');
    await Promise.all([
      run('python hello', 'SUCCESS', msg('demo-py-hello-1', 'py-hello', 'python', 'py-hello/v1.zip')),
      run('cpp hello (g++)', 'SUCCESS', msg('demo-cpp-hello-1', 'cpp-hello', 'cpp', 'cpp-hello/v1.zip')),
      run('node hello', 'SUCCESS', msg('demo-node-hello-1', 'node-hello', 'node', 'node-hello/v1.zip')),
      run('python exit 3 + stderr', 'FAILED', msg('demo-py-fail-1', 'py-fail', 'python', 'py-fail/v1.zip')),
      run('unsupported runtime', 'FAILED', msg('demo-ruby-1', 'rb-hello', 'ruby', 'rb-hello/v1.zip')),
      run('missing S3 key', 'FAILED', msg('demo-missing-1', 'py-missing', 'python', 'py-missing/v1.zip')),
      run('legacy inline code', 'SUCCESS', { job_id: 'demo-legacy-1', function_id: 'legacy-hello', code: 'print("hello from legacy inline code")' }),
    ]);
    if (interrupted) return 130;

    say('wave 2: the same functions again, one at a time (warm containers)');
    for (let i = 2; i <= 5; i++) await run('python hello', 'SUCCESS', msg(`demo-py-hello-${i}`, 'py-hello', 'python', 'py-hello/v1.zip'));
    await run('cpp hello (build kept)', 'SUCCESS', msg('demo-cpp-hello-2', 'cpp-hello', 'cpp', 'cpp-hello/v1.zip'));
    await run('node hello (input)', 'SUCCESS', msg('demo-node-hello-2', 'node-hello', 'nodejs', 'node-hello/v1.zip', { inputData: { name: 'NanoGrid' } }));
    const page = { title: 'NanoGrid', items: ['warm', 'handler'] };
    await run('python handler mode (jinja2)', 'SUCCESS', msg('demo-py-page-1', 'py-page', 'python', 'py-page/v1.zip', { inputData: page }));
    const pageWarm = await run('python handler mode (warm)', 'SUCCESS', msg('demo-py-page-2', 'py-page', 'python', 'py-page/v1.zip', { inputData: page }));
    say('wave 3: new functions one at a time (prewarm while ready, then cold)');
    for (let i = 1; i <= 4; i++) {
      await client.uploadZip(`py-new-${i}/v1.zip`, SAMPLES.pythonHello);
      await run(`python new fn ${i}`, 'SUCCESS', msg(`demo-py-new-${i}`, `py-new-${i}`, 'python', `py-new-${i}/v1.zip`));
    }
    if (interrupted) return 130;

    say('wave 4: the platform: input in, an output file stored, the AI node called, code archived');
    await client.uploadZip('py-io/v1.zip', { 'main.py': IO_FUNCTION });
    await client.uploadZip('py-ai/v1.zip', { 'main.py': AI_FUNCTION });
    const io = await run('python input -> output', 'SUCCESS', msg('demo-py-io-1', 'py-io', 'python', 'py-io/v1.zip', { inputData: { name: 'NanoGrid', numbers: [3, 4, 35] } }));
    const aiRow = await run('python calls the AI node', 'SUCCESS', msg('demo-py-ai-1', 'py-ai', 'python', 'py-ai/v1.zip'));
    if (interrupted) return 130;

    printTable(rows);
    printTimings(rows);
    // The archive copies in the background: give it a moment to finish.
    for (let i = 0; i < 100 && (agent.status().archive?.pending ?? 0) > 0; i++) await new Promise((r) => setTimeout(r, 100));
    const archive = agent.status().archive;
    process.stdout.write('platform:\n');
    process.stdout.write(`  input echo          ${io.result?.stdout.trim() ?? io.error}\n`);
    process.stdout.write(`  stored outputs      ${io.result?.outputs.map((o) => `s3://user-data/${o.key} (${o.bytes} B)`).join(', ') || 'none'}\n`);
    process.stdout.write(`  AI node             ${aiRow.result?.stdout.trim() ?? aiRow.error}\n`);
    process.stdout.write(`  code archive        ${archive?.archived ?? 0} versions copied to s3://archive (s3rver), ${archive?.failed ?? 0} failed\n`);
    const pageInit = rows.find((r) => r.label === 'python handler mode (jinja2)')?.result?.handler;
    process.stdout.write(
      `  handler mode        nanogrid.json {"handler": "app.handle"}: Jinja2 imported once (init ${pageInit?.initDurationMs ?? '?'} ms on the first call), the second call ${pageWarm.result?.handler?.initialised === false ? 'in the same process' : 'NOT in the same process'}, ${pageWarm.result?.timings.agentMs ?? '?'} ms inside; it returned ${JSON.stringify(pageWarm.result?.handler?.returnValue ?? pageWarm.error)}\n`,
    );
    const build = agent.status().build;
    process.stdout.write(`  C++ build cache     ${build ? `${build.compiled} compile(s), ${build.hits} run(s) served without the compiler (run.sh still calls g++)` : 'off'}\n\n`);
    const dlq = await client.queueDepth(stack.dlqUrl);
    say(`dead-letter queue now holds ${dlq.visible + dlq.inflight} message(s) (the missing S3 key after ${stack.maxReceiveCount} tries)`);
    const failures = rows.filter((r) => !r.result || (r.expected === 'SUCCESS') !== r.result.success);
    if (failures.length > 0) {
      say(`UNEXPECTED: ${failures.map((r) => `${r.label}: ${r.error ?? r.result?.status}`).join('; ')}`);
      return 1;
    }
    return 0;
  } finally {
    client?.close();
    say('stopping the agent');
    await agent?.stop();
    await platform?.stop();
    await stack?.stop();
    const left = await listAgentContainers(new Docker(), AGENT_ID).catch(() => []);
    say(`containers left behind: ${left.length}`);
    say(`done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

const IO_FUNCTION = `import json, os, sys
data = json.load(sys.stdin)
os.makedirs('output', exist_ok=True)
summary = {'name': data['name'], 'sum': sum(data['numbers'])}
with open('output/summary.json', 'w') as f:
    json.dump(summary, f)
print('hello %s: the numbers add up to %d' % (data['name'], summary['sum']))
`;

const AI_FUNCTION = `import os, urllib.request
with urllib.request.urlopen(os.environ['AI_ENDPOINT'] + '/', timeout=5) as r:
    print('the AI node at %s answered HTTP %d' % (os.environ['AI_ENDPOINT'], r.status))
`;

interface Platform {
  env: Record<string, string>;
  stop(): Promise<void>;
}

/**
 * What the original platform gave its workers, stood in for on this machine: a user-data
 * bucket on the same S3, a second S3 implementation (s3rver) as the code archive, and an
 * AI node on a test host of the demo's own (a network namespace), as AI_ENDPOINT.
 */
async function startPlatform(stack: LocalStack): Promise<Platform> {
  const client = new LocalClient({ ...stack });
  await client.connect();
  await client.createBucket('user-data').finally(() => client.close());
  const { default: S3rver } = await import('s3rver');
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-demo-archive-'));
  const archive = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: dir, configureBuckets: [{ name: 'archive' }] });
  const { port } = await archive.run();
  let ai: TestHost | undefined;
  try {
    ai = await startTestHost([11434]);
  } catch (err) {
    await archive.close();
    throw err;
  }
  return {
    env: {
      S3_USER_DATA_BUCKET: 'user-data',
      GCP_BUCKET_NAME: 'archive',
      NANOGRID_ARCHIVE_ENDPOINT: `http://127.0.0.1:${port}`,
      NANOGRID_ARCHIVE_ACCESS_KEY_ID: 'S3RVER',
      NANOGRID_ARCHIVE_SECRET_ACCESS_KEY: 'S3RVER',
      AI_ENDPOINT: `http://${ai.ip}:11434`,
    },
    async stop() {
      await ai?.stop();
      await archive.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

function printTable(rows: Row[]): void {
  const head = ['requestId', 'runtime', 'start', 'status', 'reason', 'exit', 'run ms', 'e2e ms', 'peak MB', 'stdout (first line)'];
  const body = rows.map((r) => {
    const x = r.result;
    if (!x) return [r.label, '-', '-', 'NO RESULT', '-', '-', '-', '-', '-', r.error ?? ''];
    // A handler-mode call's answer is its return value.
    const answer = x.handler && x.handler.returnValue !== null ? `-> ${JSON.stringify(x.handler.returnValue)}` : '';
    const first = (x.stdout.split('\n')[0] || answer || (x.stderr.split('\n')[0] ?? '')).slice(0, 48);
    return [
      x.requestId,
      String(x.runtime),
      x.startKind ?? '-',
      x.status,
      x.reason,
      String(x.exitCode),
      String(x.durationMillis),
      String(r.e2eMs ?? '-'),
      x.peakMemoryBytes === null ? '-' : (x.peakMemoryBytes / 1048576).toFixed(1),
      first,
    ];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  process.stdout.write(`\n${line(head)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${body.map(line).join('\n')}\n\n`);
  // The auto-tuner's latest advice per function (it needs 5 runs before naming a size).
  const latest = new Map<string, Result>();
  for (const r of rows) if (r.result?.optimizationTip) latest.set(r.result.functionId, r.result);
  process.stdout.write('auto-tuner (peak memory -> tip):\n');
  for (const [fn, x] of latest) {
    const mb = x.peakMemoryBytes === null ? '?' : (x.peakMemoryBytes / 1048576).toFixed(1);
    process.stdout.write(`  ${fn.padEnd(12)} ${mb.padStart(6)} MB of ${x.memoryMb} MB  ${x.optimizationTip}\n`);
  }
  process.stdout.write('\n');
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

function printTimings(rows: Row[]): void {
  process.stdout.write('start kind  n   acquire ms (median)  end-to-end ms (median)   [successful runs above]\n');
  for (const kind of ['cold', 'prewarm', 'warm'] as const) {
    const rs = rows.filter((r) => r.result?.startKind === kind && r.result.success);
    if (rs.length === 0) continue;
    const acquire = median(rs.map((r) => r.result!.timings.acquireMs ?? 0));
    const e2e = median(rs.map((r) => r.e2eMs ?? 0));
    process.stdout.write(`${kind.padEnd(10)}  ${String(rs.length).padEnd(2)}  ${acquire.toFixed(1).padStart(19)}  ${e2e.toFixed(0).padStart(22)}\n`);
  }
  process.stdout.write('\n');
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[demo] failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
