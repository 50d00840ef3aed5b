import t from 'tap';
import { ConfigError, loadConfig } from '../../src/config.js';
import { loadRuntimes } from '../../src/core/runtimeConfig.js';
import { parseInvocation } from '../../src/intake/parse.js';

const files = (json: unknown) => ({ readText: () => JSON.stringify(json), buildCacheMb: 512 });
const FILE = { NANOGRID_RUNTIMES_FILE: '/etc/nanogrid/runtimes.json' };

t.test('python, cpp and node are built in, each with its own image and command', async (t) => {
  const r = loadConfig({}).runtimes;
  t.same(r.names, ['python', 'cpp', 'node']);
  t.same(r.list.map((x) => [x.image, x.command]), [
    ['nanogrid/python:local', 'python main.py'],
    ['nanogrid/cpp:local', '/bin/bash run.sh'],
    ['nanogrid/node:local', 'node main.js'],
  ]);
  t.same(r.list.map((x) => [x.zygote, x.buildCache, x.prewarm, x.prewarmMax, x.maxContainers]), [
    [true, false, 2, 4, 4],
    [false, true, 1, 2, 2],
    [false, false, 0, 0, 2],
  ]);
  t.equal(r.resolve(' NodeJS '), 'node');
  t.equal(r.resolve('js'), 'node');
  t.equal(r.containers, 8);
  t.equal(r.describe(), 'python (python3), cpp (c++), node (nodejs, javascript, js)');
});

t.test('NANOGRID_RUNTIMES enables some of them; a message for another is refused as unknown', async (t) => {
  const r = loadConfig({ NANOGRID_RUNTIMES: 'python, c++', NANOGRID_PREWARM: 'node=1' }).runtimes;
  t.same(r.names, ['python', 'cpp'], 'aliases name runtimes there too; a disabled runtime may keep its settings');
  t.equal(r.resolve('node'), undefined);
  const out = parseInvocation({ requestId: 'r1', functionId: 'f', runtime: 'node', s3Bucket: 'code', s3Key: 'f/v1.zip' }, { receiveCount: 1 } as never, { defaultTimeoutMs: 1000, maxTimeoutMs: 2000, defaultMemoryMb: 128, runtimes: r });
  t.equal(out.ok, false);
  if (!out.ok) {
    t.equal(out.rejection.reason, 'RUNTIME_NOT_SUPPORTED');
    t.match(out.rejection.message, /runtime "node" is not supported \(python \(python3\), cpp \(c\+\+\)\)/);
  }
  t.throws(() => loadConfig({ NANOGRID_RUNTIMES: 'python,java' }), /NANOGRID_RUNTIMES: unknown runtime "java" \(known: python, cpp, node; define others in NANOGRID_RUNTIMES_FILE\)/);
});

t.test('a runtimes file adds a runtime and changes a built-in; the variables still win', async (t) => {
  const r = loadRuntimes(
    { ...FILE, NANOGRID_IMAGE_RUBY: 'ruby:3.3-slim', NANOGRID_PREWARM: 'rb=1', NANOGRID_OCI_RUNTIME: 'ruby=runsc' },
    files({ ruby: { aliases: ['rb'], image: 'ruby:local', command: 'ruby main.rb', maxContainers: 3 }, node: { command: 'node index.js', prewarm: 1 } }),
  );
  t.same(r.names, ['python', 'cpp', 'node', 'ruby']);
  const ruby = r.require('ruby');
  t.same([ruby.image, ruby.command, ruby.prewarm, ruby.prewarmMax, ruby.maxContainers, ruby.zygote, ruby.buildCache, ruby.ociRuntime], ['ruby:3.3-slim', 'ruby main.rb', 1, 3, 3, false, false, 'runsc']);
  t.equal(r.resolve('RB'), 'ruby');
  const node = r.require('node');
  t.same([node.command, node.prewarm, node.prewarmMax, node.image], ['node index.js', 1, 2, 'nanogrid/node:local'], 'the fields not given stay the built-in ones');
  t.equal(loadRuntimes({ NANOGRID_BUILD_CACHE_MB: '0' }, { buildCacheMb: 0 }).require('cpp').buildCache, false, 'no cache bound, no front');
  t.equal(loadRuntimes({ NANOGRID_PYTHON_ZYGOTE: 'off' }, { buildCacheMb: 1 }).require('python').zygote, false);
});

t.test('the handler mode is a runtime\'s field: python and node have one, cpp none; a file can set or clear it', async (t) => {
  const d = loadRuntimes({}, { buildCacheMb: 1 });
  t.same(d.list.map((x) => [x.name, x.handler]), [['python', 'python3 /nanogrid/handler.py'], ['cpp', null], ['node', 'node /nanogrid/handler.js']]);
  const r = loadRuntimes(FILE, files({ node: { handler: null }, ruby: { image: 'ruby:3', command: 'ruby main.rb', handler: 'ruby /opt/handler.rb' } }));
  t.equal(r.require('node').handler, null, 'cleared');
  t.equal(r.require('ruby').handler, 'ruby /opt/handler.rb');
  t.equal(loadRuntimes(FILE, files({ ruby: { image: 'ruby:3', command: 'ruby main.rb' } })).require('ruby').handler, null, 'a new runtime has none unless given');
  t.throws(() => loadRuntimes(FILE, files({ python: { handler: 'python3 $HOME/h.py' } })), /python.handler must be a plain command line/);
});

t.test('a runtimes file that cannot be used names the file and what is wrong', async (t) => {
  const bad = (json: unknown, re: RegExp, what: string) => t.throws(() => loadRuntimes(FILE, files(json)), re, what);
  bad({ ruby: { image: 'ruby:3' } }, /the new runtime ruby needs an image and a command/, 'a new runtime without a command');
  bad({ node: { imgae: 'x' } }, /node: Unrecognized key: "imgae"/, 'a misspelt field');
  bad({ 'Py Thon': { image: 'x', command: 'y' } }, /"Py Thon" is not a runtime name/, 'a name that cannot be one');
  bad({ node: { maxContainers: 0 } }, /node\.maxContainers/, 'no capacity');
  bad({ ruby: { aliases: ['python3'], image: 'r', command: 'ruby x.rb' } }, /runtime name "python3" is given to both python and ruby/, 'an alias taken');
  bad({ node: { prewarm: 3 } }, /NANOGRID_PREWARM: node=3 exceeds NANOGRID_MAX_CONTAINERS node=2/, 'more stock than capacity');
  t.throws(() => loadRuntimes(FILE, { buildCacheMb: 1, readText: () => '{ not json' }), /NANOGRID_RUNTIMES_FILE: \/etc\/nanogrid\/runtimes\.json: .*JSON/);
  t.throws(() => loadRuntimes({ NANOGRID_RUNTIMES_FILE: '/nonexistent/runtimes.json' }, { buildCacheMb: 1 }), /NANOGRID_RUNTIMES_FILE: \/nonexistent\/runtimes\.json: ENOENT/);
  const err = t.throws(() => loadRuntimes(FILE, files([]))) as unknown;
  t.ok(err instanceof ConfigError, 'a ConfigError, as every setting gives');
});
