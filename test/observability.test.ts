import { readFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { gunzipSync } from 'node:zlib';
import t from 'tap';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { Writable } from 'node:stream';
import { createLogger } from '../src/core/log.js';
import { SAMPLES } from '../src/local/samples.js';
import { LogShipper } from '../src/sinks/logShipper.js';
import { fakeLogs } from './helpers/fakeLogs.js';
import { startHarness, uniqueId } from './helpers/harness.js';

interface Captured {
  target: string;
  body: {
    Namespace: string;
    MetricData: Array<{
      MetricName: string;
      Unit: string;
      Dimensions: Array<{ Name: string; Value: string }>;
      StatisticValues: { SampleCount: number; Sum: number; Minimum: number; Maximum: number };
    }>;
  };
}

/** A CloudWatch stand-in: decodes what the real SDK sends (AWS JSON 1.0, maybe gzip). */
async function fakeCloudWatch(t: { teardown(fn: () => unknown): void }, status = 200): Promise<{ url: string; calls: Captured[] }> {
  const calls: Captured[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let raw = Buffer.concat(chunks);
      if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      calls.push({ target: String(req.headers['x-amz-target']), body: JSON.parse(raw.toString()) as Captured['body'] });
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(status === 200 ? '{}' : JSON.stringify({ __type: 'InternalFailure', message: 'boom' }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const addr = server.address();
  return { url: `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`, calls };
}

t.test('CloudWatch: one batched PutMetricData per flush, flushed at shutdown', async (t) => {
  const cw = await fakeCloudWatch(t);
  const h = await startHarness(t, {
    env: { NANOGRID_CLOUDWATCH: 'on', NANOGRID_CLOUDWATCH_FLUSH_MS: '3600000' },
    agent: { cloudwatchEndpoint: cw.url },
  });
  for (let i = 0; i < 3; i++) t.equal((await h.invoke('cw-a', SAMPLES.pythonHello)).status, 'SUCCESS');
  t.equal((await h.invoke('cw-b', SAMPLES.pythonFail)).status, 'FAILED');
  t.equal((await h.invoke('cw-bad', SAMPLES.pythonHello, { runtime: 'ruby' })).reason, 'RUNTIME_NOT_SUPPORTED');
  // The concurrency sampler runs every second.
  await new Promise((r) => setTimeout(r, 1100));
  t.equal(cw.calls.length, 0, 'nothing sent per invocation');
  await h.agent.stop();
  t.equal(cw.calls.length, 1, 'one call at shutdown');
  const call = cw.calls[0]!;
  t.equal(call.target, 'GraniteServiceVersion20100801.PutMetricData');
  t.equal(call.body.Namespace, 'NanoGrid/FunctionRunner');
  const find = (metric: string, fn: string) =>
    call.body.MetricData.find((d) => d.MetricName === metric && d.Dimensions.some((x) => x.Name === 'FunctionId' && x.Value === fn));
  const peakA = find('PeakMemoryBytes', 'cw-a')!;
  t.ok(peakA, 'PeakMemoryBytes for cw-a');
  t.equal(peakA.Unit, 'Bytes');
  t.same(peakA.Dimensions, [
    { Name: 'FunctionId', Value: 'cw-a' },
    { Name: 'Runtime', Value: 'python' },
  ]);
  t.equal(peakA.StatisticValues.SampleCount, 3, 'three runs aggregated into one statistic set');
  t.ok(peakA.StatisticValues.Minimum > 0 && peakA.StatisticValues.Maximum >= peakA.StatisticValues.Minimum);
  const durB = find('DurationMillis', 'cw-b')!;
  t.equal(durB.Unit, 'Milliseconds');
  t.equal(durB.StatisticValues.SampleCount, 1);
  // Lambda's names too: Invocations, Errors, Duration.
  type Datum = (typeof call.body.MetricData)[number] & { Value?: number };
  const value = (metric: string, fn: string) => (find(metric, fn) as Datum | undefined)?.Value;
  t.equal(value('Invocations', 'cw-a'), 3);
  t.equal(value('Errors', 'cw-a'), 0);
  t.equal(value('Invocations', 'cw-b'), 1);
  t.equal(value('Errors', 'cw-b'), 1, 'a failed run is an error');
  t.equal(find('Duration', 'cw-a')?.Unit, 'Milliseconds');
  t.equal(find('Duration', 'cw-a')?.StatisticValues.SampleCount, 3);
  // An invocation that never ran (unsupported runtime) is no function's: no series of its
  // own (its sender names any id), one count by reason.
  t.equal(find('Invocations', 'cw-bad'), undefined, 'no series for a function that never ran');
  t.notOk(call.body.MetricData.some((d) => d.Dimensions?.some((x) => x.Value === 'cw-bad')));
  const notRun = call.body.MetricData.find((d) => d.MetricName === 'FailedBeforeRun') as Datum | undefined;
  t.same(notRun?.Dimensions, [{ Name: 'Reason', Value: 'RUNTIME_NOT_SUPPORTED' }]);
  t.equal(notRun?.Value, 1);
  const conc = call.body.MetricData.find((d) => d.MetricName === 'ConcurrentExecutions');
  t.ok(conc, 'the agent\'s concurrency, sampled');
  t.equal(conc?.Unit, 'Count');
  t.same(conc?.Dimensions?.map((d) => d.Name), ['WorkerId'], 'per worker: the fleet\'s workers do not merge into one series');
});

t.test('a failing CloudWatch never fails an invocation; the failure is counted', async (t) => {
  const cw = await fakeCloudWatch(t, 500);
  const h = await startHarness(t, {
    env: { NANOGRID_CLOUDWATCH: 'on', NANOGRID_CLOUDWATCH_FLUSH_MS: '200' },
    agent: { cloudwatchEndpoint: cw.url },
  });
  const r = await h.invoke('cw-fail', SAMPLES.pythonHello);
  t.equal(r.status, 'SUCCESS');
  const deadline = Date.now() + 15_000;
  let text = '';
  while (Date.now() < deadline) {
    text = await (await fetch(`http://127.0.0.1:${h.agent.httpPort}/metrics`)).text();
    if (/nanogrid_sink_failures_total\{sink="cloudwatch",op="put_metric_data"\} [1-9]/.test(text)) break;
    await new Promise((res) => setTimeout(res, 200));
  }
  t.match(text, /nanogrid_sink_failures_total\{sink="cloudwatch",op="put_metric_data"\} [1-9]/);
  t.ok(cw.calls.length >= 1, 'the SDK did call the endpoint');
});

t.test('GET /metrics exposes the key series with Prometheus naming', async (t) => {
  const h = await startHarness(t);
  await h.invoke('m-hello', SAMPLES.pythonHello);
  await h.invoke('m-hello', SAMPLES.pythonHello);
  await h.invoke('m-fail', SAMPLES.pythonFail);
  const res = await fetch(`http://127.0.0.1:${h.agent.httpPort}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /text\/plain/);
  const text = await res.text();
  const expectLine = (re: RegExp, what: string) => t.match(text, re, what);
  expectLine(/nanogrid_invocations_total\{runtime="python",status="SUCCESS",start_kind="prewarm",reason="OK"\} 1/, 'invocations by status and start kind');
  expectLine(/nanogrid_invocations_total\{runtime="python",status="SUCCESS",start_kind="warm",reason="OK"\} 1/, 'the warm one');
  expectLine(/nanogrid_invocations_total\{runtime="python",status="FAILED",start_kind="\w+",reason="NON_ZERO_EXIT"\} 1/, 'the failure');
  expectLine(/nanogrid_start_latency_seconds_bucket\{le="[\d.]+",runtime="python",start_kind="warm"\} \d/, 'start latency histogram');
  // m-fail finds the replacement prewarm container ready or not, depending on load: the
  // warm series is the deterministic one.
  expectLine(/nanogrid_run_duration_seconds_count\{runtime="python",start_kind="warm"\} 1/, 'run duration histogram');
  expectLine(/nanogrid_peak_memory_bytes_count\{runtime="python",method="cgroup-v1-max-usage"\} 3/, 'peak memory');
  expectLine(/nanogrid_containers\{runtime="python",state="paused"\} \d/, 'containers by state');
  expectLine(/nanogrid_free_slots \d/, 'free slots');
  expectLine(/nanogrid_inflight_invocations \d/, 'in flight');
  expectLine(/nanogrid_sqs_messages_received_total 3/, 'received');
  expectLine(/nanogrid_sqs_dispositions_total\{disposition="deleted",reason="OK"\} 2/, 'dispositions');
  expectLine(/nanogrid_thread_pool_utilization_ratio [\d.e-]+/, 'piscina utilisation');
  expectLine(/nanogrid_thread_pool_queue_size \d/, 'piscina queue');
  expectLine(/nanogrid_docker_up 1/, 'docker up');
  expectLine(/process_cpu_seconds_total/, 'default process metrics');
  expectLine(/nanogrid_build_info\{version="\d+\.\d+\.\d+[^"]*",node="v\d+\.\d+\.\d+"\} 1/, 'the build\'s version and Node');
  expectLine(/nanogrid_queue_wait_seconds_count\{runtime="python"\} 3/, 'queue wait of every invocation that ran');
  const status = (await (await fetch(`http://127.0.0.1:${h.agent.httpPort}/status`)).json()) as { version: string; node: string };
  t.match(status.version, /^\d+\.\d+\.\d+/, '/status says the version');
  t.equal(status.node, process.version);
  t.notMatch(text, /request_?id/i, 'no request ids as labels');
});

t.test('every series the ops files use is one the agent exports', async (t) => {
  const h = await startHarness(t);
  await h.invoke('ops-hello', SAMPLES.pythonHello);
  const text = await (await fetch(`http://127.0.0.1:${h.agent.httpPort}/metrics`)).text();
  const exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]!));
  const files = ['ops/prometheus/alerts.yml', 'ops/grafana/nanogrid-worker.json'];
  for (const f of files) {
    const body = await readFile(new URL(`../${f}`, import.meta.url), 'utf8');
    const used = new Set([...body.matchAll(/\b(nanogrid_[a-z_]+|process_[a-z_]+)/g)].map((m) => m[1]!.replace(/_(bucket|count|sum)$/, '')));
    t.ok(used.size > 3, `${f} uses ${used.size} series`);
    for (const name of used) t.ok(exported.has(name), `${f}: ${name} is exported`);
  }
  const dash = JSON.parse(await readFile(new URL('../ops/grafana/nanogrid-worker.json', import.meta.url), 'utf8')) as {
    panels: Array<{ title: string; targets: Array<{ expr?: string; namespace?: string; metricName?: string; dimensions?: Record<string, string> }> }>;
  };
  const panel = (title: string) => dash.panels.find((p) => p.title === title);
  const cw = (title: string) => panel(title)?.targets.map((q) => `${q.namespace} ${q.metricName} ${JSON.stringify(q.dimensions)}`);
  t.same(cw('Queue depth'), ['AWS/SQS ApproximateNumberOfMessagesVisible {"QueueName":"$queue"}', 'AWS/SQS ApproximateNumberOfMessagesNotVisible {"QueueName":"$queue"}']);
  t.same(cw('Oldest message age'), ['AWS/SQS ApproximateAgeOfOldestMessage {"QueueName":"$queue"}']);
  t.same(cw('Dead-letter queue'), ['AWS/SQS ApproximateNumberOfMessagesVisible {"QueueName":"$dlq"}']);
  t.match(panel('Success ratio (all answers)')?.targets[0]?.expr, /nanogrid_answers_total/, 'the success ratio counts failures that never ran');
});

t.test('CloudWatch Logs: the summary line of a real run in the agent\'s group, its output in the function group', async (t) => {
  const logs = await fakeLogs(t, ['/agent', '/functions']);
  const env = { NANOGRID_FUNCTION_LOG_GROUP: '/functions', AWS_ENDPOINT_URL_CLOUDWATCH_LOGS: logs.url, NANOGRID_LOG_FLUSH_MS: '600000', NANOGRID_AGENT_ID: uniqueId('logs') };
  // The agent's own lines go through its logger (main.ts tees it the same way).
  const agentLines = new LogShipper({ group: '/agent', stream: env.NANOGRID_AGENT_ID, flushMs: 600_000, timeoutMs: 5000 });
  const log = createLogger('info', new Writable({ write: (_c, _e, cb) => cb() }), agentLines.destination);
  agentLines.start(new CloudWatchLogsClient({ region: 'us-east-1', endpoint: logs.url, credentials: { accessKeyId: 'x', secretAccessKey: 'x' } }), log);
  t.teardown(() => agentLines.close());
  const h = await startHarness(t, { env, log });
  const ok = await h.invoke('logs-fn', SAMPLES.pythonHello);
  const bad = await h.invoke('logs-fail', SAMPLES.pythonFail);
  await h.agent.stop();
  await agentLines.flush();
  const lines = logs.events('/agent').map((e) => JSON.parse(e.message) as Record<string, unknown>);
  t.match(lines.find((l) => l.msg === 'invocation finished' && l.requestId === ok.requestId), { ran: true, status: 'SUCCESS', functionId: 'logs-fn', runtime: 'python' });
  t.match(lines.find((l) => l.msg === 'invocation finished' && l.requestId === bad.requestId), { ran: true, status: 'FAILED', level: 'warn' });
  const out = logs.events('/functions', env.NANOGRID_AGENT_ID).map((e) => JSON.parse(e.message) as Record<string, unknown>);
  t.match(out.find((e) => e.requestId === ok.requestId), { functionId: 'logs-fn', stdout: ok.stdout, status: 'SUCCESS', exitCode: 0 }, 'flushed at the agent\'s stop');
  t.match(out.find((e) => e.requestId === bad.requestId), { stderr: bad.stderr, status: 'FAILED' });
  t.notOk(lines.some((l) => l.stdout !== undefined && String(l.stdout).includes(ok.stdout.trim())), 'a tenant\'s output is not in the operator\'s lines');
});
