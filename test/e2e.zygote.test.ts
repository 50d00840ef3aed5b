import t from 'tap';
import type { Result } from '../src/core/result.js';
import { type Harness, ONE_PYTHON, startHarness, uniqueId } from './helpers/harness.js';

// Each script runs twice in the same sandbox: forked by the zygote, and as plain
// `python main.py` through the shell (NANOGRID_PYTHON_ZYGOTE=off). Stdout, stderr and
// the exit code must be the same.
const ENV_PROBE = `
import os, sys
print(__name__, __file__, __doc__, __package__, __spec__, __cached__, type(__loader__).__name__)
print(sorted(globals()))
print(sys.argv, os.getcwd(), sys.path[0], sys.orig_argv[1:])
# Each container has a uid of its own: print what must hold of it, not the number.
print(sys.flags.dont_write_bytecode, sys.dont_write_bytecode, os.getuid() == os.getgid() >= 1879048192, os.getgroups())
print(sorted(k for k in os.environ if k != 'NANOGRID_REQUEST_ID'))
print(os.environ['HOME'], os.environ['PYTHONUNBUFFERED'], os.environ['PATH'])
print(repr(sys.stdin.read()), sys.stdin.isatty(), sys.stdout.isatty())
print(len(os.listdir('/proc/self/fd')) > 0, open('/proc/self/oom_score_adj').read().strip())
import __main__; print(__main__.__dict__ is globals())
`;

const CASES: Record<string, string> = {
  environment: ENV_PROBE,
  'sys.exit(n)': 'print("before")\nimport sys\nsys.exit(3)\n',
  'sys.exit(msg)': 'import sys\nsys.exit("fatal: bad input")\n',
  'sys.exit()': 'import sys\nsys.exit()\n',
  'uncaught exception': 'def f():\n    raise ValueError("boom")\nprint("x")\nf()\n',
  'exception chain': 'try:\n    1/0\nexcept ZeroDivisionError as e:\n    raise KeyError("k") from e\n',
  'syntax error': 'print("never"\n',
  'os._exit(n)': 'import os, sys\nsys.stdout.write("partial")\nos._exit(7)\n',
  'death by SIGKILL': 'import os, signal\nprint("dying", flush=True)\nos.kill(os.getpid(), signal.SIGKILL)\n',
  'death by SIGTERM': 'import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nimport time; time.sleep(5)\n',
  'separate unbuffered streams': 'import sys\nfor i in range(3):\n    print("out", i)\n    print("err", i, file=sys.stderr)\n',
  'atexit and threads': [
    'import atexit, threading, time',
    'atexit.register(lambda: print("atexit ran"))',
    'def work():',
    '    time.sleep(0.2)',
    '    print("thread done")',
    'threading.Thread(target=work).start()',
    'print("main done")',
  ].join('\n'),
  'subprocess': 'import subprocess\nprint(subprocess.run(["echo", "child"], capture_output=True, text=True).stdout.strip())\n',
  'pickle from __main__': 'import pickle\nclass P:\n    x = 1\nprint(type(pickle.loads(pickle.dumps(P()))).__name__)\n',
  'local import': 'import helper\nprint(helper.VALUE, helper.__file__)\n',
  'sys.exit(256) wraps': 'import sys\nsys.exit(256)\n',
  'sys.exit(-1)': 'import sys\nsys.exit(-1)\n',
  'sys.exit in atexit': 'import atexit, sys\natexit.register(lambda: sys.exit(5))\nprint("bye")\n',
  'closed stdout': 'import sys\nprint("x")\nsys.stdout.close()\n',
  'buffered write, no newline': 'import sys\nsys.stdout.write("no newline")\n',
};

async function runBoth(zygote: Harness, plain: Harness, code: string): Promise<[Result, Result]> {
  const fn = uniqueId('zy');
  const files = { 'main.py': code, 'helper.py': 'VALUE = 42\n' };
  return [await zygote.invoke(fn, files), await plain.invoke(fn, files)];
}

t.test('a zygote child behaves exactly as `python main.py`', async (t) => {
  const zygote = await startHarness(t, { env: ONE_PYTHON });
  const plain = await startHarness(t, { env: { ...ONE_PYTHON, NANOGRID_PYTHON_ZYGOTE: 'off' } });
  for (const [name, code] of Object.entries(CASES)) {
    const [a, b] = await runBoth(zygote, plain, code);
    // Object addresses differ between any two processes.
    const norm = (x: string) => x.replace(/0x[0-9a-f]+/g, '0x');
    t.equal(norm(a.stdout), norm(b.stdout), `${name}: same stdout`);
    t.equal(norm(a.stderr), norm(b.stderr), `${name}: same stderr`);
    t.equal(a.exitCode, b.exitCode, `${name}: same exit code (${b.exitCode})`);
    t.equal(a.status, b.status, `${name}: same status`);
  }
  const sigkill = await zygote.invoke('sigkill-check', { 'main.py': CASES['death by SIGKILL']! });
  t.equal(sigkill.exitCode, 137, 'death by signal: 128 + the signal, as the shell reports it');
  const exitMsg = await zygote.invoke('exit-msg-check', { 'main.py': CASES['sys.exit(msg)']! });
  t.same([exitMsg.exitCode, exitMsg.stderr], [1, 'fatal: bad input\n']);
});

t.test('no module state or randomness carries from one zygote child to the next', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  const code = [
    'import builtins, json, random, sys',
    'print(hasattr(json, "leak"), hasattr(builtins, "leak"), "helper" in sys.modules)',
    'json.leak = builtins.leak = True',
    'import helper',
    'print(random.random())',
  ].join('\n');
  const files = { 'main.py': code, 'helper.py': 'VALUE = 1\n' };
  const first = await h.invoke('stateful', files);
  const second = await h.invoke('stateful', undefined);
  t.equal(second.startKind, 'warm', 'the same container and zygote');
  const [l1, r1] = first.stdout.trim().split('\n');
  const [l2, r2] = second.stdout.trim().split('\n');
  t.equal(l1, 'False False False');
  t.equal(l2, 'False False False', 'nothing the first run set is seen by the second');
  t.not(r1, r2, 'random is reseeded in each child');
});

t.test('with the zygote off, python is started by the runner itself', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PYTHON_ZYGOTE: 'off' } });
  const r = await h.invoke('no-zygote', { 'main.py': 'import os\nprint(os.getppid())\n' });
  t.equal(r.status, 'SUCCESS', r.stderr);
  t.equal(r.stdout, '1\n', 'its parent is the runner (PID 1), not a zygote or a shell');
  const z = await startHarness(t);
  const forked = await z.invoke('zygote-parent', { 'main.py': 'import os\nprint(os.getppid())\n' });
  t.not(forked.stdout, '1\n', 'with the zygote on, its parent is the zygote');
});

t.test('a cold start runs plain python; its zygote starts only once the container serves again, and takes over', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=1' } });
  const code = { 'main.py': 'import os\nprint(os.getppid())\n' };
  const first = await h.invoke('lazy-zygote', code);
  t.equal(first.startKind, 'cold');
  t.equal(first.stdout, '1\n', 'the first run was started by the runner: no zygote competed with it');
  await h.quiet();
  await new Promise((r) => setTimeout(r, 1000));
  const second = await h.invoke('lazy-zygote', undefined);
  t.equal(second.startKind, 'warm');
  t.equal(second.stdout, '1\n', 'a container that served once has no zygote: the second run is plain too');
  let forked = false;
  for (let i = 0; i < 50 && !forked; i++) forked = (await h.invoke('lazy-zygote', undefined)).stdout !== '1\n';
  t.ok(forked, 'later runs of the same container are forked by its zygote');
});
