import { GetObjectCommand } from '@aws-sdk/client-s3';
import { readdir, readFile, stat } from 'node:fs/promises';
import type { Result } from '../src/core/result.js';
import { QUICK, USER_DATA_BUCKET, type HostSecret, type Row, type World } from './world.js';

/**
 * Functions that try to break out of their limits, each with the limit it must hit and
 * how its result shows it. Every one is followed by a probe of the same function (a new
 * code version, so it lands in the same container when that container was kept): the probe
 * must succeed and see nothing the hostile run left.
 */
export interface Hostile {
  name: string;
  /** Its code; given the host's secret where it tries to reach it. */
  code: string | ((secret: HostSecret) => string);
  /** Overrides for the invocation message. */
  message: { timeoutMs?: number; memoryMb?: number };
  /** The limit that contains it, for the table. */
  limit: string;
  /** Null when the result shows the containment, else why not. */
  check: (r: Result) => string | null;
  /** What else must hold, seen from outside (the stored outputs, the host's files): null, or why not. */
  verify?: (w: World, r: Result, secret: HostSecret) => Promise<string | null>;
}

/** Why the host's secret is not as it was made, or null. */
async function secretIntact(s: HostSecret): Promise<string | null> {
  const names = await readdir(s.dir).catch(() => []);
  if (names.join() !== 'secret.txt') return `the host folder changed: ${names.join(', ')}`;
  const st = await stat(s.file);
  if ((st.mode & 0o777) !== 0o600 || (await readFile(s.file, 'utf8')) !== s.text) return 'the host file changed';
  return null;
}

/** Why a stored output of the run holds something of the host, or null. */
async function outputsClean(w: World, r: Result, secret: HostSecret): Promise<string | null> {
  for (const o of r.outputs) {
    const body = await w.client.s3.send(new GetObjectCommand({ Bucket: USER_DATA_BUCKET, Key: o.key }));
    const text = Buffer.from(await body.Body!.transformToByteArray()).toString('latin1');
    if (text.includes(secret.text)) return `${o.key} holds the host's secret`;
    if (/NANOGRID_AGENT_ID=|REDIS_URL=/.test(text)) return `${o.key} holds the agent's environment`;
  }
  return secretIntact(secret);
}

const expect = (r: Result, status: Result['status'], reason: Result['reason']) =>
  r.status === status && r.reason === reason ? null : `expected ${status}/${reason}, got ${r.status}/${r.reason}: ${r.stderr.slice(0, 160)}`;

export const HOSTILE: Hostile[] = [
  {
    name: 'pid exhaustion with a link race on outputs',
    // Every pid of the container taken with threads (a clean-up that forks would be refused),
    // while a process forked first swaps output/d between a folder and a link to a host
    // folder; links to a host file and to /proc/self/environ (the agent's, seen from the host).
    code: (s) =>
      [
        'import os, threading, time',
        "os.makedirs('output/d', exist_ok=True)",
        "open('output/d/x.txt', 'w').write('mine')",
        `os.symlink(${JSON.stringify(s.file)}, 'output/secret')`,
        "os.symlink('/proc/self/environ', 'output/environ')",
        'if os.fork() == 0:',
        '    while True:',
        '        try:',
        "            os.rename('output/d', 'output/d.real')",
        `            os.symlink(${JSON.stringify(s.dir)}, 'output/d')`,
        "            os.unlink('output/d')",
        "            os.rename('output/d.real', 'output/d')",
        '        except OSError:',
        '            pass',
        'threads = []',
        'try:',
        '    while True:',
        '        th = threading.Thread(target=time.sleep, args=(3600,), daemon=True)',
        '        th.start()',
        '        threads.append(th)',
        'except RuntimeError:',
        '    pass',
        "print('threads', len(threads), flush=True)",
        'time.sleep(3600)',
        '',
      ].join('\n'),
    message: { timeoutMs: 3000 },
    limit: 'pids 512 taken by threads: the runner kills without forking; outputs read through a nosymfollow view, only once the run is verified clean',
    check: (r) => expect(r, 'TIMEOUT', 'TIMEOUT') ?? (/threads \d{3}/.test(r.stdout) ? null : `the pids were not exhausted: ${r.stdout.slice(0, 80)}`),
    verify: outputsClean,
  },
  {
    name: 'io_uring and core dumps',
    code: [
      'import ctypes, errno, os, resource',
      'libc = ctypes.CDLL(None, use_errno=True)',
      'p = ctypes.create_string_buffer(120)',
      'r = libc.syscall(ctypes.c_long(425), ctypes.c_long(8), ctypes.c_void_p(ctypes.addressof(p)))',
      "print('io_uring_setup', 'ok' if r >= 0 else errno.errorcode[ctypes.get_errno()])",
      'try:',
      '    resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))',
      "    print('core raised')",
      'except (ValueError, OSError):',
      "    print('core limit stays', resource.getrlimit(resource.RLIMIT_CORE))",
      'for _ in range(3):',
      '    if os.fork() == 0:',
      '        ctypes.string_at(0)',
      '    os.wait()',
      "print('cores', [f for d in ('.', '/tmp') for f in os.listdir(d) if f.startswith('core')])",
      '',
    ].join('\n'),
    message: { timeoutMs: 10_000 },
    limit: 'seccomp profile of our own (io_uring refused), core 0 (soft = hard)',
    check: (r) =>
      expect(r, 'SUCCESS', 'OK') ??
      (r.stdout.includes('io_uring_setup EPERM') && r.stdout.includes('core limit stays (0, 0)') && r.stdout.includes('cores []') ? null : `not contained: ${r.stdout}`),
  },
  {
    name: 'huge result',
    // 1 MiB of control bytes on each stream: 12 MiB of JSON if nothing counted it.
    code: "import sys\nsys.stdout.write('\\x01' * (1 << 20))\nsys.stderr.write('\\x1b' * (1 << 20))\n",
    message: { timeoutMs: 20_000 },
    limit: 'the result budget (4 MiB) counted after JSON encoding',
    check: (r) => {
      const bytes = Buffer.byteLength(JSON.stringify(r));
      return expect(r, 'SUCCESS', 'OK') ?? (bytes <= 4 << 20 && r.stdoutTruncated && r.stderrTruncated ? null : `${bytes} bytes of JSON, truncated ${r.stdoutTruncated}/${r.stderrTruncated}`);
    },
  },
  {
    name: 'fork bomb',
    code: 'import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n',
    message: { timeoutMs: 3000 },
    limit: 'pids 512 per container, CPU quota, memory 128 MB, killed at timeoutMs (whichever comes first)',
    // 512 forked interpreters dirty their copied pages: the memory limit can come before
    // the timeout. Either contains it; the probe after it checks nothing was left.
    check: (r) => (expect(r, 'OOM', 'OOM') === null ? null : expect(r, 'TIMEOUT', 'TIMEOUT')),
  },
  {
    name: 'memory hog',
    code: 'hog = []\nwhile True:\n    hog.append(bytearray(16 << 20))\n',
    message: { memoryMb: 128, timeoutMs: 20_000 },
    limit: 'memory 128 MB (swap equal: none)',
    check: (r) => expect(r, 'OOM', 'OOM'),
  },
  {
    name: 'CPU loop past its timeout',
    code: 'while True:\n    pass\n',
    message: { timeoutMs: 2000 },
    limit: 'timeoutMs 2000, killed by the runner',
    check: (r) => expect(r, 'TIMEOUT', 'TIMEOUT') ?? (r.durationMillis < 4000 ? null : `ran ${r.durationMillis} ms`),
  },
  {
    name: 'output flood',
    code: 'import sys\nchunk = "x" * 65536\nfor _ in range(4096):\n    sys.stdout.write(chunk)\nsys.stderr.write("e" * (8 << 20))\n',
    message: { timeoutMs: 30_000 },
    limit: 'output cap 1 MiB per stream (256 MiB written)',
    check: (r) =>
      r.stdoutTruncated && r.stderrTruncated && r.stdout.length <= 1 << 20 && r.stderr.length <= (1 << 20) + 256
        ? null
        : `not truncated: ${r.stdout.length}/${r.stderr.length} bytes, flags ${r.stdoutTruncated}/${r.stderrTruncated}`,
  },
  {
    name: 'disk fill',
    code: [
      'import sys',
      'block = b"x" * (1 << 20)',
      'files = [open(p, "wb") for p in ("fill.bin", "/tmp/fill.bin", "/dev/shm/fill.bin")]',
      'n = 0',
      'while True:',
      '    files[n % 3].write(block)',
      '    files[n % 3].flush()',
      '    n += 1',
      '',
    ].join('\n'),
    message: { timeoutMs: 60_000 },
    limit: 'writable space 512 MB (ENOSPC)',
    check: (r) => expect(r, 'FAILED', 'DISK_FULL') ?? (/No space left/.test(r.stderr) ? null : 'no ENOSPC in stderr'),
  },
  {
    name: 'daemons that outlive their run',
    code: [
      'import os, subprocess, time',
      'if os.fork() == 0:',
      '    os.setsid()',
      '    if os.fork() == 0:',
      '        time.sleep(600)',
      '    os._exit(0)',
      'subprocess.Popen(["sleep", "600"], start_new_session=True)',
      'subprocess.Popen(["sh", "-c", "trap \\"\\" TERM HUP; sleep 600"], start_new_session=True)',
      'time.sleep(0.2)',
      'print("daemonized")',
      '',
    ].join('\n'),
    message: { timeoutMs: 10_000 },
    limit: 'every process of the run killed at its end',
    check: (r) => expect(r, 'SUCCESS', 'OK'),
  },
  {
    name: 'zombies',
    code: 'import os, time\nfor _ in range(100):\n    if os.fork() == 0:\n        os._exit(0)\ntime.sleep(0.3)\nprint("100 zombies left")\n',
    message: { timeoutMs: 10_000 },
    limit: 'the runner (pid 1) reaps them',
    check: (r) => expect(r, 'SUCCESS', 'OK'),
  },
  {
    name: 'network attempts',
    // Only addresses of this machine: the function's own loopback, and the host's Docker
    // bridge; with network "none" there is no route, so no packet leaves the container.
    code: [
      'import socket',
      'ifaces = [l.split(":")[0].strip() for l in open("/proc/net/dev").read().splitlines()[2:]]',
      'print("interfaces=" + ",".join(ifaces))',
      'for host, port in (("172.17.0.1", 6379), ("172.17.0.1", 2375), ("172.17.0.1", 22)):',
      '    try:',
      '        socket.create_connection((host, port), timeout=2)',
      '        print("reached", host, port)',
      '    except OSError as e:',
      '        print("blocked", host, port, e.errno)',
      'try:',
      '    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("172.17.0.1", 53))',
      '    print("reached udp")',
      'except OSError as e:',
      '    print("blocked udp", e.errno)',
      '',
    ].join('\n'),
    message: { timeoutMs: 10_000 },
    limit: 'network none (loopback only, no route)',
    check: (r) =>
      expect(r, 'SUCCESS', 'OK') ?? (r.stdout.includes('interfaces=lo\n') && !r.stdout.includes('reached') ? null : `network reachable: ${r.stdout}`),
  },
];

/** Run after each hostile function, as a new version of it: what can it see of the last run? */
export const PROBE = [
  'import os',
  'mine = {os.getpid(), os.getppid(), 1}',
  'others, zombies = [], 0',
  'for p in os.listdir("/proc"):',
  '    if not p.isdigit() or int(p) in mine:',
  '        continue',
  '    try:',
  '        st = open(f"/proc/{p}/status").read()',
  '    except OSError:',
  '        continue',
  '    state = [l for l in st.splitlines() if l.startswith("State:")][0].split()[1]',
  '    uid = int([l for l in st.splitlines() if l.startswith("Uid:")][0].split()[1])',
  '    if state == "Z":',
  '        zombies += 1',
  '    elif uid == os.getuid():',
  '        others.append(p)',
  'print("others=%d zombies=%d tmp=%d work=%s" % (len(others), zombies, len(os.listdir("/tmp")), ",".join(sorted(os.listdir(".")))))',
  '',
].join('\n');

export const PROBE_CLEAN = 'others=0 zombies=0 tmp=0 work=main.py';

/** The hostile function among a small stream, then a probe of the same function. */
export async function hostileScenario(w: World, h: Hostile): Promise<Row> {
  const agentId = 'chaos-hostile';
  if (w.agents.length === 0) await w.startAgent(agentId, { S3_USER_DATA_BUCKET: USER_DATA_BUCKET });
  const secret = await w.hostSecret();
  const fn = `hostile-${h.name.replace(/[^a-z]+/g, '-')}`;
  await w.client.uploadZip(`${fn}/v1.zip`, { 'main.py': typeof h.code === 'string' ? h.code : h.code(secret) });
  await w.client.uploadZip(`${fn}/v2.zip`, { 'main.py': PROBE });
  const streamStart = w.ids.length;
  const stream = w.stream('echo', QUICK ? 6 : 20, 300);
  const m = w.message(fn, h.message);
  await w.client.send(m);
  const result = await w.client.waitForResult(m.requestId, 120_000).catch(() => undefined);
  await stream;
  const probe = w.message(fn, { s3Key: `${fn}/v2.zip` });
  await w.client.send(probe);
  const after = await w.client.waitForResult(probe.requestId, 60_000).catch(() => undefined);
  const problems: string[] = [];
  const contained = result ? h.check(result) : 'no result';
  if (contained) problems.push(contained);
  const outside = result && h.verify ? await h.verify(w, result, secret) : null;
  if (outside) problems.push(outside);
  if (!after || after.status !== 'SUCCESS') problems.push(`next invocation unhealthy: ${after ? `${after.status}/${after.reason} ${after.stderr.slice(0, 120)}` : 'no result'}`);
  else if (after.startKind === 'warm' && after.stdout.trim() !== PROBE_CLEAN) problems.push(`the next run saw leftovers: ${after.stdout.trim()}`);
  const ids = [...w.ids.slice(streamStart), m.requestId, probe.requestId];
  const row = await w.row(`hostile: ${h.name}`, ids, { timeoutMs: 60_000, extra: problems });
  HOSTILE_DETAIL.push({
    name: h.name,
    status: result ? `${result.status} / ${result.reason}` : 'no result',
    limit: h.limit,
    next: after ? `${after.status} (${after.startKind}${after.startKind === 'warm' ? `: ${after.stdout.trim()}` : ''})` : 'none',
  });
  return { ...row, note: row.note || `${result?.status}/${result?.reason}; next: ${after?.status} ${after?.startKind}` };
}

export const HOSTILE_DETAIL: { name: string; status: string; limit: string; next: string }[] = [];

