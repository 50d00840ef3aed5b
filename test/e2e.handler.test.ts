import t from 'tap';
import { startHarness, uniqueId } from './helpers/harness.js';

// The handler mode on the real engine: a nanogrid.json {"handler": "module.function"} has
// the runtime import the module once per container and call the function per invocation
// in that process (runner/handler.c, runner/handler.py, runner/handler.js).

const ENV = { NANOGRID_PREWARM: 'python=0,cpp=0,node=0', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=1,node=1' };
const MANIFEST = (handler: string) => JSON.stringify({ handler });

const COUNTER = `
import os, sys, time
print("importing", flush=True)
calls = 0
def handle(event, context):
    global calls
    calls += 1
    print("call", calls)
    print("to stderr", file=sys.stderr)
    return {"calls": calls, "event": event, "requestId": context.request_id, "memory": context.memory_limit_in_mb,
            "remaining": context.get_remaining_time_in_millis() > 0, "pid": os.getpid(), "uid": os.getuid()}
`;

t.test('handler mode (python)', async (t) => {
  const h = await startHarness(t, { env: ENV });

  t.test('imported once, called per invocation: module state, its own streams, return value, context and init', async (t) => {
    const fn = uniqueId('h-counter');
    const files = { 'nanogrid.json': MANIFEST('app.handle'), 'app.py': COUNTER };
    const first = await h.invoke(fn, files, { inputData: { n: 1 }, memoryMb: 192 });
    t.equal(first.status, 'SUCCESS', first.stderr);
    t.equal(first.stdout, 'importing\ncall 1\n', 'the import\'s output goes to the call that made it');
    t.equal(first.stderr, 'to stderr\n');
    t.equal(first.handler?.initialised, true);
    t.ok((first.handler?.initDurationMs ?? 0) > 0, `an init duration: ${first.handler?.initDurationMs} ms`);
    const v1 = first.handler?.returnValue as Record<string, unknown>;
    t.same(v1.event, { n: 1 }, 'the input is the event, parsed as JSON');
    t.equal(v1.requestId, first.requestId);
    t.equal(v1.memory, 192);
    t.equal(v1.remaining, true);
    t.not(v1.uid, 0, 'not root');
    const second = await h.invoke(fn, undefined, { inputData: 'plain text', memoryMb: 192 });
    t.equal(second.startKind, 'warm');
    t.equal(second.stdout, 'call 2\n', 'only this call\'s output');
    t.equal(second.handler?.initialised, false);
    t.equal(second.handler?.initDurationMs, null);
    const v2 = second.handler?.returnValue as Record<string, unknown>;
    t.equal(v2.calls, 2, 'the module was not imported again');
    t.equal(v2.pid, v1.pid, 'the same process');
    t.equal(v2.event, 'plain text', 'an input that is not JSON is text');
    t.equal(v2.requestId, second.requestId);
    t.ok(second.peakMemoryBytes !== null && second.peakMemoryBytes > 0, `a peak per call: ${second.peakMemoryBytes}`);
  });

  t.test('/tmp and module state persist; the workspace does not; a process the call started does not outlive it', async (t) => {
    const fn = uniqueId('h-persist');
    const src = `
import os, subprocess
def handle(event, context):
    out = {"tmp": os.path.exists("/tmp/kept"), "work": os.path.exists("left.txt")}
    others = []
    for p in os.listdir("/proc"):
        if p.isdigit() and int(p) != os.getpid():
            try:
                with open("/proc/%s/status" % p) as f:
                    status = dict(l.split(":", 1) for l in f if ":" in l)
                # A killed child of the handler stays a zombie until the handler reaps it: dead.
                if int(status["Uid"].split()[0]) == os.getuid() and not status["State"].strip().startswith("Z"):
                    others.append(p)
            except OSError:
                pass
    out["others"] = others
    open("/tmp/kept", "w").write("x")
    open("left.txt", "w").write("x")
    subprocess.Popen(["sleep", "300"], start_new_session=True)
    subprocess.Popen(["/bin/sh", "-c", "while :; do sleep 0.01 & done"], start_new_session=True)
    return out
`;
    const files = { 'nanogrid.json': MANIFEST('main.handle'), 'main.py': src };
    const a = await h.invoke(fn, files);
    t.equal(a.status, 'SUCCESS', a.stderr);
    t.same(a.handler?.returnValue, { tmp: false, work: false, others: [] });
    const b = await h.invoke(fn, undefined);
    t.equal(b.status, 'SUCCESS', b.stderr);
    t.equal(b.handler?.initialised, false, 'the handler stayed');
    t.same(b.handler?.returnValue, { tmp: true, work: false, others: [] }, '/tmp kept, the workspace emptied, every process of the last call gone');
  });

  t.test('an exception fails the call with its type and message; the handler stays', async (t) => {
    const fn = uniqueId('h-raise');
    const src = 'n = 0\ndef handle(event, context):\n    global n\n    n += 1\n    if n == 1:\n        raise ValueError("bad input %d" % n)\n    return n\n';
    const a = await h.invoke(fn, { 'nanogrid.json': MANIFEST('main.handle'), 'main.py': src });
    t.equal(a.status, 'FAILED');
    t.equal(a.reason, 'HANDLER_ERROR');
    t.equal(a.exitCode, 1);
    t.same(a.handler?.error, { errorType: 'ValueError', errorMessage: 'bad input 1' });
    t.match(a.stderr, /Traceback[\s\S]*ValueError: bad input 1/);
    const b = await h.invoke(fn, undefined);
    t.equal(b.status, 'SUCCESS', b.stderr);
    t.equal(b.handler?.returnValue, 2);
    t.equal(b.handler?.initialised, false);
  });

  t.test('a timeout or a crash ends the handler: the next call initialises again', async (t) => {
    const fn = uniqueId('h-crash');
    const src = 'import os, time\nn = 0\ndef handle(event, context):\n    global n\n    n += 1\n    if event == "hang":\n        time.sleep(60)\n    if event == "crash":\n        os._exit(3)\n    return n\n';
    const files = { 'nanogrid.json': MANIFEST('main.handle'), 'main.py': src };
    t.equal((await h.invoke(fn, files, { inputData: 'ok' })).handler?.returnValue, 1);
    const hang = await h.invoke(fn, undefined, { inputData: 'hang', timeoutMs: 1500 });
    t.equal(hang.status, 'TIMEOUT');
    t.equal(hang.exitCode, -1);
    const after = await h.invoke(fn, undefined, { inputData: 'ok' });
    t.equal(after.handler?.initialised, true, 'initialised again');
    t.equal(after.handler?.returnValue, 1, 'with fresh module state');
    const crash = await h.invoke(fn, undefined, { inputData: 'crash' });
    t.equal(crash.status, 'FAILED');
    t.equal(crash.exitCode, 3, 'the process\'s exit status');
    const again = await h.invoke(fn, undefined, { inputData: 'ok' });
    t.equal(again.handler?.initialised, true);
    t.equal(again.handler?.returnValue, 1);
  });

  t.test('an import that fails is reported with its traceback, and tried again next time', async (t) => {
    const fn = uniqueId('h-import');
    const a = await h.invoke(fn, { 'nanogrid.json': MANIFEST('main.handle'), 'main.py': 'import not_a_module\n' });
    t.equal(a.status, 'FAILED');
    t.equal(a.reason, 'HANDLER_INIT_FAILED');
    t.match(a.stderr, /ModuleNotFoundError: No module named 'not_a_module'/);
    t.equal(a.handler?.initialised, true);
    const b = await h.invoke(fn, undefined);
    t.equal(b.reason, 'HANDLER_INIT_FAILED');
    const c = await h.invoke(uniqueId('h-missing'), { 'nanogrid.json': MANIFEST('main.nothere'), 'main.py': 'x = 1\n' });
    t.equal(c.reason, 'HANDLER_INIT_FAILED');
    t.match(c.stderr, /nothere/);
  });

  t.test('a handler that breaks the protocol or its streams is ended, and the call still answered', async (t) => {
    const fn = uniqueId('h-hostile');
    const src = `
import os, struct, sys
def handle(event, context):
    if event == "close":
        os.close(1)
        return "closed"
    if event == "huge":
        os.write(3, struct.pack(">IB", 64 << 20, ord("V")))
        return "huge"
    if event == "twice":
        os.write(3, struct.pack(">IB", 3, ord("V")) + b"42")
        return "first"
    if event == "notjson":
        return object()
    return "ok"
`;
    const files = { 'nanogrid.json': MANIFEST('main.handle'), 'main.py': src };
    const closed = await h.invoke(fn, files, { inputData: 'close' });
    t.equal(closed.status, 'SUCCESS', closed.stderr);
    t.equal(closed.handler?.returnValue, 'closed');
    const next = await h.invoke(fn, undefined, { inputData: 'ok' });
    t.equal(next.handler?.initialised, true, 'a handler without its stdout is not kept');
    const twice = await h.invoke(fn, undefined, { inputData: 'twice' });
    t.equal(twice.handler?.returnValue, 42, 'the first answer ends the call');
    const after = await h.invoke(fn, undefined, { inputData: 'ok' });
    t.equal(after.handler?.returnValue, 'ok', 'a stale second answer never reaches the next call');
    const huge = await h.invoke(fn, undefined, { inputData: 'huge' });
    if (huge.status !== 'FAILED') t.comment(JSON.stringify({ ...huge, optimizationTip: undefined }));
    t.equal(huge.status, 'FAILED');
    t.equal(huge.exitCode, 137, 'killed for a frame past the protocol\'s limit');
    const nj = await h.invoke(fn, undefined, { inputData: 'notjson' });
    t.equal(nj.reason, 'HANDLER_ERROR');
    t.equal(nj.handler?.error?.errorType, 'ReturnValueNotJSON');
  });

  t.test('a bad manifest, or a handler for a runtime without the mode, fails with MANIFEST_INVALID', async (t) => {
    const bad = await h.invoke(uniqueId('h-bad'), { 'nanogrid.json': '{"handler": "../x.y"}', 'main.py': 'print(1)\n' });
    t.equal(bad.reason, 'MANIFEST_INVALID');
    t.match(bad.stderr, /handler/);
    const typo = await h.invoke(uniqueId('h-typo'), { 'nanogrid.json': '{"handlr": "main.x"}', 'main.py': 'print(1)\n' });
    t.equal(typo.reason, 'MANIFEST_INVALID');
    t.match(typo.stderr, /handlr/);
    const cpp = await h.invoke(uniqueId('h-cpp'), { 'nanogrid.json': MANIFEST('main.handle'), 'run.sh': 'echo hi\n' }, { runtime: 'cpp' });
    t.equal(cpp.reason, 'MANIFEST_INVALID');
    t.match(cpp.stderr, /no handler mode/);
  });

  t.test('the peak of a call counts the memory the handler keeps', async (t) => {
    const fn = uniqueId('h-memory');
    const src = 'kept = []\ndef handle(event, context):\n    if event == "keep":\n        kept.append(bytearray(48 << 20))\n    if event == "burst":\n        b = bytearray(32 << 20)\n    return len(kept)\n';
    const files = { 'nanogrid.json': MANIFEST('main.handle'), 'main.py': src };
    const keep = await h.invoke(fn, files, { inputData: 'keep', memoryMb: 256 });
    t.equal(keep.status, 'SUCCESS', keep.stderr);
    const idle = await h.invoke(fn, undefined, { inputData: 'idle', memoryMb: 256 });
    const burst = await h.invoke(fn, undefined, { inputData: 'burst', memoryMb: 256 });
    const mb = (b: number | null) => (b ?? 0) / (1 << 20);
    t.ok(mb(idle.peakMemoryBytes) >= 48, `a call that allocates nothing still peaks at what the handler holds: ${mb(idle.peakMemoryBytes).toFixed(1)} MB`);
    t.ok(mb(burst.peakMemoryBytes) >= mb(idle.peakMemoryBytes) + 30, `a call's own allocation adds to it: ${mb(burst.peakMemoryBytes).toFixed(1)} MB`);
  });

  t.test('a plain function is unchanged, and a new version without the manifest runs as a program with a clean /tmp', async (t) => {
    const fn = uniqueId('h-plain');
    const handler = await h.invoke(fn, { 'nanogrid.json': MANIFEST('main.handle'), 'main.py': 'def handle(e, c):\n    open("/tmp/mark", "w").write("x")\n    return 1\n' });
    t.equal(handler.status, 'SUCCESS', handler.stderr);
    const plain = await h.invoke(fn, { 'main.py': 'import os\nprint(os.path.exists("/tmp/mark"))\n' }, { s3Key: `${fn}/v2.zip` });
    t.equal(plain.status, 'SUCCESS', plain.stderr);
    t.equal(plain.stdout, 'False\n');
    t.equal(plain.handler, undefined, 'no handler part in a plain result');
  });
});

t.test('handler mode (node)', async (t) => {
  const h = await startHarness(t, { env: ENV });
  const fn = uniqueId('h-node');
  const src = "let n = 0;\nconsole.log('loading');\nexports.handler = async (event, context) => {\n  n += 1;\n  console.log('call', n);\n  await new Promise((r) => setTimeout(r, 5));\n  if (event === 'throw') throw new TypeError('no good');\n  return { n, event, requestId: context.requestId };\n};\n";
  const files = { 'nanogrid.json': MANIFEST('index.handler'), 'index.js': src };
  const a = await h.invoke(fn, files, { runtime: 'node', inputData: { x: 1 } });
  t.equal(a.status, 'SUCCESS', a.stderr);
  t.equal(a.stdout, 'loading\ncall 1\n');
  t.same(a.handler?.returnValue, { n: 1, event: { x: 1 }, requestId: a.requestId });
  t.equal(a.handler?.initialised, true);
  const b = await h.invoke(fn, undefined, { runtime: 'node', inputData: 'throw' });
  t.equal(b.reason, 'HANDLER_ERROR');
  t.same(b.handler?.error, { errorType: 'TypeError', errorMessage: 'no good' });
  t.match(b.stderr, /TypeError: no good/);
  const c = await h.invoke(fn, undefined, { runtime: 'node' });
  t.equal(c.stdout, 'call 3\n');
  t.equal((c.handler?.returnValue as { n: number }).n, 3, 'module state persists');
  t.equal(c.handler?.initialised, false);
});
