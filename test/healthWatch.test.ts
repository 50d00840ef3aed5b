import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

// ops/fleet/health-watch.sh, the fleet's liveness check from outside the agent, against
// stand-ins on loopback: the agent's /health/live, the instance metadata (IMDSv2) and the
// aws CLI (a script that records its arguments). No packet leaves the machine.
const SCRIPT = fileURLToPath(new URL('../ops/fleet/health-watch.sh', import.meta.url));

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ port: number; close: () => Promise<void> }> {
  const s: Server = createServer(handler);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as { port: number }).port;
  return { port, close: () => new Promise<void>((r) => s.close(() => r())) };
}

t.test('health-watch: a worker whose /health/live keeps failing is marked Unhealthy in its group, once', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nanogrid-health-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  let live = 200;
  const agent = await listen((req, res) => {
    res.writeHead(req.url === '/health/live' ? live : 404).end('{}');
  });
  t.teardown(agent.close);
  const imds = await listen((req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') return res.end('a-token');
    if (req.url === '/latest/meta-data/instance-id' && req.headers['x-aws-ec2-metadata-token'] === 'a-token') return res.end('i-0123456789abcdef0');
    if (req.url === '/latest/meta-data/placement/region' && req.headers['x-aws-ec2-metadata-token'] === 'a-token') return res.end('eu-west-3');
    res.writeHead(401).end();
  });
  t.teardown(imds.close);
  const calls = join(dir, 'aws-calls');
  await writeFile(join(dir, 'aws'), `#!/bin/sh\necho "$@" >> ${calls}\n`);
  await chmod(join(dir, 'aws'), 0o755);
  await writeFile(join(dir, 'worker.env'), `HTTP_PORT=${agent.port}\nNANOGRID_ASG_NAME=g\n`);
  // systemd, as the script asks it: the unit's state and its run's id.
  const unit = (state: string, runId: string) => writeFile(join(dir, 'unit'), `${state}\n${runId}\n`);
  await writeFile(
    join(dir, 'systemctl'),
    `#!/bin/sh\ncase "$*" in\n  "is-active nanogrid-worker") sed -n 1p ${join(dir, 'unit')} ;;\n  "show -p InvocationID --value nanogrid-worker") sed -n 2p ${join(dir, 'unit')} ;;\n  *) exit 1 ;;\nesac\n`,
  );
  await chmod(join(dir, 'systemctl'), 0o755);
  await unit('active', 'run-1');
  // The grace's start, as the script keeps it: moved back to stand for time gone by.
  const graceStartedAgo = (s: number) => writeFile(join(dir, 'state', 'failures.since'), `${Math.floor(Date.now() / 1000) - s}\n`);
  const env = { ...process.env, PATH: `${dir}:${process.env.PATH}`, NANOGRID_ENV_FILE: join(dir, 'worker.env'), NANOGRID_HEALTH_STATE: join(dir, 'state', 'failures'), NANOGRID_IMDS_ENDPOINT: `http://127.0.0.1:${imds.port}` };
  const run = () => new Promise<{ code: number; stderr: string }>((resolve) => execFile('bash', [SCRIPT], { env, timeout: 30_000 }, (err, _o, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stderr })));
  const called = () => readFile(calls, 'utf8').catch(() => '');

  t.equal((await run()).code, 0, 'alive');
  live = 503;
  for (let i = 1; i <= 2; i++) {
    const r = await run();
    t.match(r.stderr, new RegExp(`failed \\(${i} of 3 in a row\\)`));
  }
  t.equal(await called(), '', 'two failures: not yet');
  live = 200;
  await run();
  live = 503;
  await run();
  await run();
  t.equal(await called(), '', 'a success in between starts the count again');
  const third = await run();
  t.match(third.stderr, /marking i-0123456789abcdef0 Unhealthy/);
  t.equal((await called()).trim(), 'autoscaling set-instance-health --region eu-west-3 --instance-id i-0123456789abcdef0 --health-status Unhealthy --no-should-respect-grace-period', 'in its own region, from the metadata');
  await writeFile(calls, '');

  // What systemd is doing: stopped on purpose or restarting is no failure; given up on is.
  for (const state of ['inactive', 'activating', 'deactivating']) {
    await unit(state, 'run-1');
    for (let i = 0; i < 4; i++) t.match((await run()).stderr, new RegExp(`nanogrid-worker is ${state}: (stopped on purpose, )?not counted`));
  }
  t.equal(await called(), '', 'a stopped or restarting unit is never reported');
  await unit('failed', 'run-1');
  for (let i = 0; i < 3; i++) await run();
  t.match(await called(), /set-instance-health/, 'one systemd gave up on is');
  await writeFile(calls, '');

  // A new run of the unit that has not answered yet: within its grace, then counted.
  await unit('active', 'run-2');
  for (let i = 0; i < 4; i++) t.match((await run()).stderr, /has not answered since its start, \d+ s ago: within its grace of 600 s/);
  t.equal(await called(), '', 'a worker still starting (its first image pulls) is not replaced');
  await graceStartedAgo(700);
  t.match((await run()).stderr, /failed \(1 of 3/, 'past the grace it counts');
  // A crash loop: restarts (activating) neither count nor forgive, and each new run does
  // not start the grace again.
  await unit('activating', 'run-2');
  await run();
  await unit('active', 'run-3');
  t.match((await run()).stderr, /failed \(2 of 3/, 'a restart does not start the grace again');
  await unit('activating', 'run-3');
  await run();
  await unit('active', 'run-4');
  t.match((await run()).stderr, /marking i-0123456789abcdef0 Unhealthy/, 'an agent in a crash loop is replaced');
  await writeFile(calls, '');
  live = 200;
  await run();
  live = 503;
  t.match((await run()).stderr, /failed \(1 of 3/, 'once it has answered, a failure counts at once');

  await agent.close();
  await run();
  t.match((await run()).stderr, /failed \(3 of 3/, 'an agent that does not answer at all fails too');
});
