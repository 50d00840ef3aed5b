import type { Result } from '../src/core/result.js';

/**
 * Functions that try to break out of their limits, each with the limit it must hit and
 * how its result shows it. Every one is followed by a probe of the same function (a new
 * code version, so it lands in the same container when that container was kept): the probe
 * must succeed and see nothing the hostile run left.
 */
export interface Hostile {
  name: string;
  code: string;
  /** Overrides for the invocation message. */
  message: { timeoutMs?: number; memoryMb?: number };
  /** The limit that contains it, for the table. */
  limit: string;
  /** Null when the result shows the containment, else why not. */
  check: (r: Result) => string | null;
}

const expect = (r: Result, status: Result['status'], reason: Result['reason']) =>
  r.status === status && r.reason === reason ? null : `expected ${status}/${reason}, got ${r.status}/${r.reason}: ${r.stderr.slice(0, 160)}`;

export const HOSTILE: Hostile[] = [
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
