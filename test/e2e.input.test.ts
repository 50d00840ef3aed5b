import t from 'tap';
import { ONE_PYTHON, startHarness } from './helpers/harness.js';

// Reads its input twice, from stdin and from the file NANOGRID_INPUT_FILE names, and says
// what it found (and what is in its workspace).
const ECHO_INPUT = `
import json, os, sys
raw = sys.stdin.read()
path = os.environ.get('NANOGRID_INPUT_FILE')
from_file = open(path).read() if path else None
print(json.dumps({'stdin': raw, 'file': from_file, 'path': path, 'workspace': sorted(os.listdir('.'))}))
`;

const seen = (stdout: string) => JSON.parse(stdout) as { stdin: string; file: string | null; path: string | null; workspace: string[] };

t.test('inputData reaches the function on stdin and as a file; a function without input runs as before', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  const input = { name: 'NanoGrid', numbers: [1, 2, 3], nested: { ok: true }, text: 'ünïcødé "quoted"' };
  const r = await h.invoke('echo-input', { 'main.py': ECHO_INPUT }, { inputData: input });
  t.equal(r.status, 'SUCCESS', r.stderr);
  const s = seen(r.stdout);
  t.same(JSON.parse(s.stdin), input, 'stdin carries the input as JSON');
  t.same(JSON.parse(s.file!), input, 'so does the file');
  t.equal(s.path, '/sandbox/work/.nanogrid/input.json');

  const scalar = await h.invoke('echo-input', undefined, { inputData: null });
  t.equal(seen(scalar.stdout).stdin, 'null', 'null is an input too');

  // The same container, no input: stdin is empty, no variable, and no input file is left.
  const none = await h.invoke('echo-input', undefined);
  t.equal(none.startKind, 'warm');
  const n = seen(none.stdout);
  t.equal(n.stdin, '');
  t.equal(n.path, null);
  t.same(n.workspace, ['main.py'], 'the last run\'s input is gone');
});

t.test('the legacy format and a cpp function read input the same way', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=1,cpp=1' } });
  await h.client.send({ job_id: 'legacy-input-1', function_id: 'legacy-echo', code: 'import sys\nprint(sys.stdin.read())', input_data: { legacy: true } });
  const legacy = await h.client.waitForResult('legacy-input-1', 60_000);
  t.equal(legacy.status, 'SUCCESS', legacy.stderr);
  t.equal(legacy.stdout.trim(), '{"legacy":true}');
  const cpp = await h.invoke('cpp-echo', { 'run.sh': { content: 'cat; echo; cat "$NANOGRID_INPUT_FILE"\n', mode: 0o100755 } }, { runtime: 'cpp', inputData: [7, 8] });
  t.equal(cpp.status, 'SUCCESS', cpp.stderr);
  t.equal(cpp.stdout.trim(), '[7,8]\n[7,8]');
});

t.test('an input by reference comes from the user-data bucket; limits are named', async (t) => {
  const h = await startHarness(t, { env: { ...ONE_PYTHON, S3_USER_DATA_BUCKET: 'user-data', NANOGRID_INPUT_S3_MAX_BYTES: '4096', NANOGRID_INPUT_MAX_BYTES: '1000' } });
  await h.client.createBucket('user-data');
  const big = { rows: Array.from({ length: 100 }, (_, i) => ({ i, v: 'value' })) };
  await h.client.upload('inputs/echo-input/big.json', Buffer.from(JSON.stringify(big)), 'user-data');
  const r = await h.invoke('echo-input', { 'main.py': ECHO_INPUT }, { inputS3Key: 'inputs/echo-input/big.json' });
  t.equal(r.status, 'SUCCESS', r.stderr);
  t.same(JSON.parse(seen(r.stdout).stdin), big, 'the object, on stdin');

  await h.client.upload('inputs/echo-input/huge.json', Buffer.alloc(5000, 'x'), 'user-data');
  const huge = await h.invoke('echo-input', undefined, { inputS3Key: 'inputs/echo-input/huge.json' });
  t.equal(huge.reason, 'INVALID_MESSAGE');
  t.match(huge.stderr, /over the NANOGRID_INPUT_S3_MAX_BYTES limit of 4096/);

  const inline = await h.invoke('echo-input', undefined, { inputData: 'y'.repeat(2000) });
  t.equal(inline.reason, 'INVALID_MESSAGE');
  t.match(inline.stderr, /over the NANOGRID_INPUT_MAX_BYTES limit of 1000/);

  const missing = await h.invoke('echo-input', undefined, { inputS3Key: 'inputs/echo-input/none.json', inputS3Bucket: 'someone-else' });
  t.equal(missing.reason, 'INVALID_MESSAGE', 'a bucket other than the user-data bucket');
  // Another function's input, its code, and its stored outputs are out of reach.
  await h.client.upload('inputs/other/secret.json', Buffer.from('{"secret":1}'), 'user-data');
  for (const [inputS3Key, inputS3Bucket] of [['inputs/other/secret.json'], ['echo-input/v1.zip', h.stack.bucket], ['other/some-request/result.txt'], ['inputs/echo-input/../other/secret.json']]) {
    const r = await h.invoke('echo-input', undefined, { inputS3Key, ...(inputS3Bucket ? { inputS3Bucket } : {}) });
    t.equal(r.reason, 'INVALID_MESSAGE', `${inputS3Key} is refused`);
    t.equal(r.stdout, '', 'nothing of it was read');
  }
});

// The local python image is a real Python: the standard library an ordinary function
// reaches for is there (python3-minimal lacked most of it, json included).
t.test('the python runtime has its standard library', async (t) => {
  const h = await startHarness(t, { env: ONE_PYTHON });
  const modules = ['json', 'urllib.request', 'http.client', 'sqlite3', 'csv', 'decimal', 'datetime', 'hashlib', 'zlib', 'gzip', 'base64', 'xml.etree.ElementTree', 'email', 'asyncio', 'concurrent.futures', 'multiprocessing', 'ctypes', 'statistics', 'unittest', 'logging', 'uuid', 'ssl'];
  const r = await h.invoke('stdlib', { 'main.py': `import importlib\nfor m in ${JSON.stringify(modules)}:\n    importlib.import_module(m)\nimport sqlite3\nprint(sqlite3.connect(':memory:').execute('select 6*7').fetchone()[0])\n` });
  t.equal(r.status, 'SUCCESS', r.stderr);
  t.equal(r.stdout.trim(), '42');
});
