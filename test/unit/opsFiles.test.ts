import t from 'tap';
import { readFile } from 'node:fs/promises';

// The ops files say what is true: the alert descriptions, the Grafana axes.
const read = (p: string) => readFile(new URL(`../../${p}`, import.meta.url), 'utf8');

t.test('alert descriptions name what the fleet does', async (t) => {
  const alerts = await read('ops/prometheus/alerts.yml');
  for (const stale of [/kept in memory/, /with part /, /GET \/health answers/, /the ASG health check should/, /max 5 in the original/, /queue >= 10 visible/]) t.notMatch(alerts, stale, `no ${stale}`);
  t.match(alerts, /nanogrid-health-watch\.timer/, 'the liveness watch that replaces a worker');
  t.match(alerts, /backlog per instance/, 'the scaling rule the stack has');
  t.match(alerts, /outbox on the worker's disk/);
});

t.test('Grafana: a panel with two units puts them on two axes', async (t) => {
  const dash = JSON.parse(await read('ops/grafana/nanogrid-worker.json')) as { panels: Array<{ title: string; targets?: Array<{ refId: string; expr: string }>; fieldConfig?: { overrides?: Array<{ matcher: { id: string; options: string }; properties: Array<{ id: string; value: unknown }> }> } }> };
  const panel = dash.panels.find((p) => p.title === 'Agent process')!;
  const unitOf = (ref: string) => panel.fieldConfig?.overrides?.find((o) => o.matcher.id === 'byFrameRefID' && o.matcher.options === ref)?.properties;
  const prop = (ref: string, id: string) => unitOf(ref)?.find((x) => x.id === id)?.value;
  const cpu = panel.targets!.find((x) => /process_cpu_seconds_total/.test(x.expr))!.refId;
  const rss = panel.targets!.find((x) => /process_resident_memory_bytes/.test(x.expr))!.refId;
  t.equal(prop(rss, 'unit'), 'bytes');
  t.not(prop(cpu, 'unit'), 'bytes');
  t.not(prop(cpu, 'custom.axisPlacement'), prop(rss, 'custom.axisPlacement'), 'cores and bytes on different axes');
});
