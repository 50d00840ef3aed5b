import t from 'tap';
import { waitUntil } from '../src/core/timeout.js';
import { docker, ONE_PYTHON, startHarness } from './helpers/harness.js';

// Lists the processes this run can see other than itself and PID 1 (the runner), and
// whether the zygote is there (it is root: not the function's).
const PROBE = `
import os
mine = {os.getpid(), 1}
seen = []
for p in os.listdir('/proc'):
    if p.isdigit() and int(p) not in mine:
        try:
            st = open(f'/proc/{p}/status').read()
            uid = [l for l in st.splitlines() if l.startswith('Uid:')][0].split()[1]
            name = [l for l in st.splitlines() if l.startswith('Name:')][0].split()[1]
            state = [l for l in st.splitlines() if l.startswith('State:')][0].split()[1]
            if uid != '0':
                seen.append(f'{name}:{state}')
        except Exception:
            pass
print('others=' + ','.join(sorted(seen)))
`;

// Everything a function might do to outlive its run: ignore signals, double-fork a
// daemon into its own session that keeps writing to the run's stdout, leave zombies,
// keep forking while it is being cleaned up, try to kill its parent and the runner.
const HOSTILE = `
import os, signal, sys, time
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
    signal.signal(s, signal.SIG_IGN)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        while True:
            try:
                print('daemon alive', flush=True)
            except Exception:
                pass
            time.sleep(0.02)
    os._exit(0)
for _ in range(50):
    if os.fork() == 0:
        os._exit(0)
if os.fork() == 0:
    while True:
        try:
            if os.fork() == 0:
                time.sleep(0.01)
                os._exit(0)
        except OSError:
            pass
for target, name in ((os.getppid(), 'parent'), (1, 'runner')):
    try:
        os.kill(target, signal.SIGKILL)
        print(name + ' killed', flush=True)
    except OSError as e:
        print(name + ' protected: ' + e.strerror, flush=True)
time.sleep(0.2)
print('hostile done', flush=True)
`;

const parse = (stdout: string) => Object.fromEntries(stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

for (const zygote of ['on', 'off'] as const) {
  t.test(`nothing a run starts outlives it, whatever it does (zygote ${zygote})`, async (t) => {
    const h = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_PYTHON_ZYGOTE: zygote } });
    const before = (await h.containers()).map((c) => c.Id);
    const r = await h.invoke('hostile', { 'main.py': HOSTILE });
    t.equal(r.status, 'SUCCESS', r.stderr);
    t.match(r.stdout, /parent protected: Operation not permitted/);
    t.match(r.stdout, /runner protected: Operation not permitted/);
    t.match(r.stdout, /hostile done/);
    const next = await h.invoke('hostile', { 'main.py': PROBE }, { s3Key: 'hostile/probe.zip' });
    t.equal(next.startKind, 'warm', 'the same container');
    t.equal(parse(next.stdout).others, '', 'no process of the earlier run, not even a zombie');
    t.notMatch(next.stdout, /daemon alive/, 'nothing writes into a later run\'s output');
    t.same((await h.containers()).map((c) => c.Id), before, 'the container was verified clean and kept');
    t.equal(h.agent.status().pools.find((p) => p.runtime === 'python')!.retired, 0);
  });
}

t.test('a run that fills the process table with zombies leaves a healthy container', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  const ZOMBIES = [
    'import os',
    'n = 0',
    'while True:',
    '    try:',
    '        pid = os.fork()',
    '    except OSError:',
    '        break',
    '    if pid == 0:',
    '        os._exit(0)',
    '    n += 1',
    'print("zombies", n)',
  ].join('\n');
  const r = await h.invoke('zombies', { 'main.py': ZOMBIES }, { timeoutMs: 20_000 });
  t.equal(r.status, 'SUCCESS', r.stderr);
  t.ok(Number(r.stdout.split(' ')[1]) > 400, `forked until the pids limit: ${r.stdout.trim()}`);
  const FORKS = 'import subprocess\nfor i in range(100):\n    subprocess.run(["true"], check=True)\nprint("forked 100")\n';
  const next = await h.invoke('zombies', { 'main.py': FORKS }, { s3Key: 'zombies/forks.zip' });
  t.equal(next.startKind, 'warm');
  t.equal(next.status, 'SUCCESS', next.stderr);
  t.equal(next.stdout, 'forked 100\n', 'the zombies were reaped: the next run can fork');
});

t.test('a runner that stops answering: the invocation is answered, the container retired', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  await h.client.uploadZip('frozen/v1.zip', { 'main.py': 'import time\nprint("started", flush=True)\ntime.sleep(60)\n' });
  const before = (await h.containers()).map((c) => c.Id);
  // Long enough that the pause below lands before the timeout even on a loaded machine:
  // "running" counts from admission, and with 1 s the runner sometimes answered TIMEOUT
  // before dockerd had paused the container.
  const m = h.message('frozen', { timeoutMs: 4000 });
  await h.client.send(m);
  await waitUntil('run started', () => h.agent.status().supervisor.running === 1);
  // Freeze the whole container, runner included: it can no longer end the run or answer.
  await docker.getContainer(before[0]!).pause();
  const r = await h.client.waitForResult(m.requestId, 30_000);
  t.equal(r.status, 'FAILED');
  t.equal(r.reason, 'CLEANUP_FAILED', 'a run not verified clean has a reason of its own');
  t.match(r.stderr, /runner did not answer/);
  t.ok(r.durationMillis >= 4000, `answered after its timeout and the runner's bound (${r.durationMillis} ms)`);
  await h.quiet();
  const after = (await h.containers()).map((c) => c.Id);
  t.notOk(after.includes(before[0]!), 'the container was retired');
  const ok = await h.invoke('after-frozen', { 'main.py': 'print("fine")' });
  t.equal(ok.status, 'SUCCESS', 'the pool keeps serving');
});
