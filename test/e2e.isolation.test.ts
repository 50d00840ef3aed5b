import t from 'tap';
import { docker, ONE_PYTHON, startHarness } from './helpers/harness.js';

// A probe that reports what it can see of earlier runs: files in its workspace and /tmp,
// processes of the sandbox user other than itself (the runner and the zygote are root's),
// and whether it can reach the network or write /.
const PROBE = `
import os, socket
mine = {os.getpid(), os.getppid(), 1}
procs = []
for p in os.listdir('/proc'):
    if p.isdigit() and int(p) not in mine:
        try:
            # The real uid: /proc/<pid>'s owner is root for a moment while it execs.
            uid = [l for l in open(f'/proc/{p}/status').read().splitlines() if l.startswith('Uid:')][0].split()[1]
            if int(uid) != os.getuid():
                continue
            procs.append(open(f'/proc/{p}/cmdline','rb').read().replace(b'\\0', b' ').decode().strip())
        except Exception:
            pass
print('cwd=' + os.getcwd())
print('workspace=' + ','.join(sorted(os.listdir('.'))))
print('tmp=' + ','.join(sorted(os.listdir('/tmp'))))
print('procs=' + '|'.join(p for p in procs if p))
try:
    socket.create_connection(('1.1.1.1', 53), timeout=1)
    print('net=yes')
except OSError:
    print('net=no')
try:
    open('/etc/probe', 'w')
    print('rootfs=writable')
except OSError:
    print('rootfs=readonly')
print('uid=%d' % os.getuid())
`;

const LITTER = `
import os, subprocess
open('left-behind.txt', 'w').write('secret')
open('/tmp/tmp-left-behind.txt', 'w').write('secret')
subprocess.Popen(['sleep', '300'], start_new_session=True)
print('littered')
`;

const parse = (stdout: string) => Object.fromEntries(stdout.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

t.test('nothing one invocation leaves is visible to the next', async (t) => {
  // One python container at most: every run below lands in the same pool slot.
  const h = await startHarness(t, { env: ONE_PYTHON });

  const litter = await h.invoke('litterbug', { 'main.py': LITTER, 'data.txt': 'x' });
  t.equal(litter.status, 'SUCCESS', litter.stderr);

  t.test('another function: new container, sees none of it', async (t) => {
    const r = await h.invoke('probe', { 'main.py': PROBE });
    t.equal(r.status, 'SUCCESS', r.stderr);
    t.not(r.startKind, 'warm');
    const seen = parse(r.stdout);
    t.equal(seen.cwd, '/sandbox/work');
    t.equal(seen.workspace, 'main.py', 'only its own code in the workspace');
    t.equal(seen.tmp, '', 'an empty /tmp');
    t.equal(seen.procs, '', 'no processes but its own');
    t.equal(seen.net, 'no', 'network none');
    t.equal(seen.rootfs, 'readonly');
    t.ok(Number(seen.uid) >= 1879048192 && Number(seen.uid) <= 1879113727, `runs as a uid of its own container, from the sandbox range (${seen.uid})`);
  });

  t.test('a warm run of the same function keeps no workspace files and no processes', async (t) => {
    const code = `${LITTER}\n${PROBE}`;
    const first = await h.invoke('litter-then-probe', { 'main.py': code });
    t.equal(first.status, 'SUCCESS', first.stderr);
    const second = await h.invoke('litter-then-probe', undefined);
    t.equal(second.startKind, 'warm');
    const seen = parse(second.stdout.split('\n').slice(1).join('\n'));
    t.equal(seen.workspace, 'left-behind.txt,main.py', 'only what this run wrote itself');
    t.equal(seen.procs, 'sleep 300', 'only the sleep this run started itself');
  });

  t.test('no writable host directory is shared between containers', async (t) => {
    const containers = await h.containers();
    const mounts = new Set<string>();
    for (const c of containers) {
      const info = await docker.getContainer(c.Id).inspect();
      // The runner's folder is read-only in every container (the same binary): only what a container can write must be its own.
      for (const m of info.Mounts.filter((x) => x.RW)) {
        t.notOk(mounts.has(m.Source), `${m.Source} mounted once`);
        mounts.add(m.Source);
      }
    }
    t.ok(mounts.size >= 1);
  });
});

// The agent skips the wipe after a run whose scratch file system shows the same free
// inodes and blocks as after the last wipe (DockerContainer.resetWorkspace). Each trace
// below is the smallest a run can leave, one kind at a time: the next run of the same
// function, in the same container, must see none of them.
const TRACE = (leave: string) => `
import os
seen = []
for d in ('.', '/tmp', '/dev/shm'):
    for n in os.listdir(d):
        if d == '.' and n == 'main.py':
            continue
        seen.append(d + '/' + n)
print('seen=' + ','.join(sorted(seen)))
try:
    ${leave}
    print('left')
except OSError as e:
    print('refused=' + e.__class__.__name__)
`;

t.test('the smallest trace of each kind is gone before the next run', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  const kinds: Record<string, string> = {
    'an empty file': "open('/tmp/e', 'w').close()",
    'an empty folder': "os.mkdir('/dev/shm/d')",
    'a link': "os.symlink('/etc/passwd', 'l')",
    'a FIFO': "os.mkfifo('/tmp/f')",
    'a hard link to the code': "os.link('main.py', '/tmp/h')",
  };
  for (const [kind, leave] of Object.entries(kinds)) {
    const fn = `trace-${kind.replace(/\W+/g, '-')}`;
    const first = await h.invoke(fn, { 'main.py': TRACE(leave) });
    t.equal(first.status, 'SUCCESS', first.stderr);
    const second = await h.invoke(fn, undefined);
    t.equal(second.startKind, 'warm', `${kind}: the same container`);
    t.match(second.stdout, /^seen=\n/, `${kind}: the next run sees nothing (${second.stdout.split('\n')[0]}; the first said ${first.stdout.trim().split('\n').pop()})`);
  }
});

t.test('timeoutMs kills the run, not the container: the next run reuses it, clean', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  const before = (await h.containers()).map((c) => c.Id);
  // A run that also leaves a daemon behind and ignores SIGTERM: the timeout must end both.
  const SLEEPER = [
    'import os, signal, subprocess, time',
    'signal.signal(signal.SIGTERM, signal.SIG_IGN)',
    'subprocess.Popen(["sleep", "300"], start_new_session=True)',
    'print("started", flush=True)',
    'time.sleep(60)',
  ].join('\n');
  const r = await h.invoke('sleeper', { 'main.py': SLEEPER }, { timeoutMs: 1500 });
  t.equal(r.status, 'TIMEOUT');
  t.equal(r.reason, 'TIMEOUT');
  t.equal(r.success, false);
  t.equal(r.exitCode, -1, 'the contract: -1 when killed on timeout');
  t.equal(r.stdout, 'started\n', 'output before the kill is kept');
  t.ok(r.durationMillis >= 1400 && r.durationMillis < 5000, `killed near its timeout (${r.durationMillis} ms)`);
  await h.quiet();
  const next = await h.invoke('sleeper', { 'main.py': PROBE }, { s3Key: 'sleeper/v2.zip', timeoutMs: 5000 });
  t.equal(next.status, 'SUCCESS', next.stderr);
  t.equal(next.startKind, 'warm', 'the same container serves the next run');
  t.same((await h.containers()).map((c) => c.Id), before, 'no container was replaced');
  t.equal(parse(next.stdout).procs, '', 'nothing of the timed-out run is left: no sleep, no python');
  t.equal(h.agent.status().pools.find((p) => p.runtime === 'python')!.retired, 0);
});

t.test('output beyond the cap is cut and flagged', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_OUTPUT_LIMIT_BYTES: '4096' } });
  const r = await h.invoke('chatty', { 'main.py': 'import sys\nsys.stdout.write("x" * 100000)\nsys.stderr.write("e" * 10)\n' });
  t.equal(r.status, 'SUCCESS');
  t.equal(r.stdout.length, 4096);
  t.equal(r.stdoutTruncated, true);
  t.equal(r.stderr, 'eeeeeeeeee');
  t.equal(r.stderrTruncated, false);
});
