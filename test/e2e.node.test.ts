import t from 'tap';
import { SAMPLES } from '../src/local/samples.js';
import { startHarness, uniqueId } from './helpers/harness.js';

// The node runtime on the real engine: its own image (ops/setup.sh: the project's Node on
// a Debian minbase root), `node main.js` in the workspace, the same contract as python.

const NODE = { NANOGRID_PREWARM: 'python=0,cpp=0,node=0', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=1,node=2' };

t.test('Node.js functions', async (t) => {
  const h = await startHarness(t, { env: NODE });

  t.test('hello: cold, then warm in the same container, its input on stdin', async (t) => {
    const fn = uniqueId('node-hello');
    const cold = await h.invoke(fn, SAMPLES.nodeHello, { runtime: 'node' });
    t.equal(cold.status, 'SUCCESS', cold.stderr);
    t.equal(cold.runtime, 'node');
    t.equal(cold.startKind, 'cold');
    t.equal(cold.stdout, 'hello from node\n');
    const warm = await h.invoke(fn, undefined, { runtime: 'nodejs', inputData: { name: 'NanoGrid' } });
    t.equal(warm.startKind, 'warm', 'an alias names the same runtime and pool');
    t.equal(warm.stdout, 'hello from node, NanoGrid\n');
    // Node's heap and its own pages: some 10 MB here (its code is the image's, in page cache).
    const peak = warm.peakMemoryBytes ?? 0;
    t.ok(peak > 4 * 1024 * 1024 && peak < 128 * 1024 * 1024, `its peak memory is measured: ${peak} B`);
  });

  t.test('the contract holds as for python: the version, exit status, stderr, environment, outputs and limits', async (t) => {
    const fn = uniqueId('node-contract');
    const src = [
      "const fs = require('node:fs');",
      'console.log(process.versions.node.split(".")[0]);',
      'console.log(process.env.NANOGRID_FUNCTION_ID, process.env.NANOGRID_MEMORY_MB, process.getuid() === 0 ? "root" : "not root");',
      "fs.mkdirSync('output', { recursive: true }); fs.writeFileSync('output/x.txt', 'x');",
      "try { fs.writeFileSync('/etc/x', 'x'); console.log('wrote /etc'); } catch (e) { console.log(e.code); }",
      "console.error('to stderr');",
      'process.exit(4);',
    ].join('\n');
    const r = await h.invoke(fn, { 'main.js': src }, { runtime: 'node', memoryMb: 192 });
    t.equal(r.status, 'FAILED');
    t.equal(r.reason, 'NON_ZERO_EXIT');
    t.equal(r.exitCode, 4);
    const [major, env, write] = r.stdout.trim().split('\n');
    t.ok(Number(major) >= 22, `a supported Node (${major})`);
    t.equal(env, `${fn} 192 not root`);
    t.match(write, /^(EACCES|EROFS)$/, 'the root file system is not the function\'s');
    t.equal(r.stderr, 'to stderr\n');
  });

  t.test('a node function past its memory is stopped and said to be', async (t) => {
    const fn = uniqueId('node-oom');
    const src = 'const a = []; for (;;) a.push(Buffer.alloc(8 << 20, 1));\n';
    const r = await h.invoke(fn, { 'main.js': src }, { runtime: 'node', memoryMb: 128 });
    t.equal(r.status, 'OOM', r.stderr);
    t.equal(r.reason, 'OOM');
  });
});
