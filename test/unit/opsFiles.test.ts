import t from 'tap';
import { readdir, readFile } from 'node:fs/promises';

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

t.test('systemd units: every path a namespace option names exists when the unit starts', async (t) => {
  // systemd refuses to start a unit whose ReadWritePaths= (and the like) names a missing
  // path (status 226/NAMESPACE) unless it is prefixed with '-'. The liveness watch once named
  // /run/nanogrid, which nothing made: it never ran on the fleet. A path must be one the
  // unit makes itself (RuntimeDirectory= and its kin) or one every host has.
  const made: Record<string, string> = { RuntimeDirectory: '/run', StateDirectory: '/var/lib', CacheDirectory: '/var/cache', LogsDirectory: '/var/log', ConfigurationDirectory: '/etc' };
  const everyHost = ['/run', '/var/lib', '/var/cache', '/var/log', '/etc', '/tmp', '/var/tmp', '/home', '/root', '/usr', '/opt'];
  const units = (await readdir(new URL('../../ops/fleet/', import.meta.url))).filter((f) => f.endsWith('.service'));
  t.ok(units.length >= 2, units.join(', '));
  for (const unit of units) {
    const text = await read(`ops/fleet/${unit}`);
    const values = (key: string) => [...text.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].flatMap((m) => m[1]!.trim().split(/\s+/)).filter(Boolean);
    const own = Object.entries(made).flatMap(([key, root]) => values(key).map((d) => `${root}/${d}`));
    for (const key of ['ReadWritePaths', 'ReadOnlyPaths', 'InaccessiblePaths', 'ExecPaths', 'NoExecPaths']) {
      for (const raw of values(key)) {
        const path = raw.replace(/^[+]/, '');
        if (path.startsWith('-')) continue;
        const ok = everyHost.includes(path) || own.some((d) => path === d || path.startsWith(`${d}/`));
        t.ok(ok, `${unit}: ${key}=${raw} exists at start (made by the unit, or on every host)`);
      }
    }
    if (/RuntimeDirectory=/.test(text) && /Type=oneshot/.test(text)) t.match(text, /^RuntimeDirectoryPreserve=yes$/m, `${unit}: a oneshot keeps its runtime state between runs`);
  }
});
