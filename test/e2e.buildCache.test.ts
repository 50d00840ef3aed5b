import t from 'tap';
import type { ZipFiles } from '../src/local/client.js';
import { SAMPLES } from '../src/local/samples.js';
import { startHarness, uniqueId } from './helpers/harness.js';

// C++ built once per code version, on the real engine: run.sh still runs g++ on every run
// (the contract), and the compiler front in the container serves an unchanged call from
// the function's own cache, in the same container and in another one.

const HELLO = SAMPLES.cppHello;
const CPP = { NANOGRID_PREWARM: 'python=0,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=1,cpp=2' };

const withMain = (src: string): ZipFiles => ({ ...HELLO, 'main.cpp': src });

t.test('C++ is compiled once per code version', async (t) => {
  const h = await startHarness(t, { env: CPP });
  const build = () => h.agent.status().build!;

  t.test('the first run compiles; the next one in the same container is served from the cache', async (t) => {
    const fn = uniqueId('cc-same');
    const first = await h.invoke(fn, HELLO, { runtime: 'cpp' });
    t.equal(first.status, 'SUCCESS');
    t.equal(first.stdout, 'hello from c++\n');
    const after1 = { ...build() };
    t.equal(after1.compiled, 1, 'the compiler ran once');
    const second = await h.invoke(fn, undefined, { runtime: 'cpp' });
    t.equal(second.startKind, 'warm');
    t.equal(second.stdout, 'hello from c++\n', 'the kept binary runs');
    t.equal(second.stderr, '');
    t.equal(build().compiled, after1.compiled, 'no compile on the second run');
    t.equal(build().hits, after1.hits + 1, 'served from the cache');
  });

  t.test('runs of a new version side by side on two containers compile it once; a warning is replayed', async (t) => {
    const fn = uniqueId('cc-pair');
    // Stderr from the compiler (a warning) comes back on the cached run too.
    const src = '#include <iostream>\nint main() { int unused; std::cout << "pair" << std::endl; return 0; }\n';
    const files = { ...withMain(src), 'run.sh': { content: 'set -e\ng++ -Wall -O0 -o program main.cpp\n./program\n', mode: 0o100755 } };
    await h.client.uploadZip(`${fn}/v1.zip`, files);
    const before = { ...build() };
    const [a, b] = await Promise.all([h.invoke(fn, undefined, { runtime: 'cpp', s3Key: `${fn}/v1.zip` }), h.invoke(fn, undefined, { runtime: 'cpp', s3Key: `${fn}/v1.zip` })]);
    t.same([a.status, b.status], ['SUCCESS', 'SUCCESS']);
    t.same([a.stdout, b.stdout], ['pair\n', 'pair\n']);
    t.equal(build().compiled - before.compiled, 1, 'one compile for the two runs');
    t.equal(build().hits - before.hits, 1, 'the other was served from the cache');
    t.match(a.stderr, /unused variable/);
    t.equal(b.stderr, a.stderr, "the compiler's warning is the same on both");
  });

  t.test('a changed source or flag compiles again; a compile error is reported as before', async (t) => {
    const fn = uniqueId('cc-change');
    const v1 = await h.invoke(fn, withMain('#include <cstdio>\nint main() { puts("one"); }\n'), { runtime: 'cpp', s3Key: `${fn}/v1.zip` });
    t.equal(v1.stdout, 'one\n');
    const compiled = build().compiled;
    const v2 = await h.invoke(fn, withMain('#include <cstdio>\nint main() { puts("two"); }\n'), { runtime: 'cpp', s3Key: `${fn}/v2.zip` });
    t.equal(v2.stdout, 'two\n', 'the new source is what runs');
    const flags = { ...withMain('#include <cstdio>\nint main() { puts(NAME); }\n'), 'run.sh': { content: 'set -e\ng++ -DNAME=\\"three\\" -O0 -o program main.cpp\n./program\n', mode: 0o100755 } };
    const v3 = await h.invoke(fn, flags, { runtime: 'cpp', s3Key: `${fn}/v3.zip` });
    t.equal(v3.stdout, 'three\n');
    t.equal(build().compiled, compiled + 2, 'each version compiled');
    const broken = await h.invoke(fn, withMain('int main() { return missing; }\n'), { runtime: 'cpp', s3Key: `${fn}/v4.zip` });
    t.equal(broken.status, 'FAILED');
    t.equal(broken.reason, 'NON_ZERO_EXIT');
    t.match(broken.stderr, /missing.*not declared|was not declared/);
    const again = await h.invoke(fn, undefined, { runtime: 'cpp', s3Key: `${fn}/v4.zip` });
    t.equal(again.status, 'FAILED', 'a failed compile is not kept: it fails again the same way');
    t.match(again.stderr, /not declared/);
  });

  t.test("what a function plants reaches only itself: another function's same call compiles its own", async (t) => {
    const evil = uniqueId('cc-evil');
    const victim = uniqueId('cc-victim');
    // The same files for both, so the same key: the hostile one overwrites its compiler
    // output after the compile, and plants a link to a host file and a FIFO as entries.
    const plant = [
      `if [ "$NANOGRID_FUNCTION_ID" = "${evil}" ]; then`,
      '  for f in /tmp/.nanogrid-cc/*.out; do printf "#!/bin/sh\\necho pwned\\n" > "$f"; done',
      `  ln -s /etc/shadow /tmp/.nanogrid-cc/${'a'.repeat(64)}.out`,
      `  mkfifo /tmp/.nanogrid-cc/${'b'.repeat(64)}.out`,
      `  ls /sandbox/cc > /dev/null`,
      '  touch /sandbox/cc/x 2>/dev/null && echo "wrote the cache"',
      'fi',
    ].join('\n');
    const files = { ...HELLO, 'run.sh': { content: `set -e\ng++ -O0 -o program main.cpp\n${plant}\n./program\n`, mode: 0o100755 } };
    await h.client.uploadZip(`${evil}/v1.zip`, files);
    await h.client.uploadZip(`${victim}/v1.zip`, files);
    const before = { ...build() };
    const e = await h.invoke(evil, undefined, { runtime: 'cpp', s3Key: `${evil}/v1.zip` });
    t.equal(e.status, 'SUCCESS');
    t.notMatch(e.stdout, /wrote the cache/, 'the cache folder is read-only to the function');
    t.ok(build().refused - before.refused >= 2, 'the link and the FIFO are refused');
    const e2 = await h.invoke(evil, undefined, { runtime: 'cpp', s3Key: `${evil}/v1.zip` });
    t.equal(e2.stdout, 'pwned\n', 'its own planted entry reaches itself (its own code, its own scope)');
    const v = await h.invoke(victim, undefined, { runtime: 'cpp', s3Key: `${victim}/v1.zip` });
    t.equal(v.status, 'SUCCESS');
    t.equal(v.stdout, 'hello from c++\n', "the other function never gets the planted entry: it compiled its own");
    t.equal(build().compiled - before.compiled, 2, 'one compile each');
  });
});
