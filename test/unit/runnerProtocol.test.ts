import t from 'tap';
import { plainArgv, zygoteArgv } from '../../src/core/runtimes.js';
import { decodeFields, encodeFields, encodeFrame, FrameDecoder } from '../../src/container/runnerProtocol.js';

t.test('frames survive any split of the byte stream', async (t) => {
  const bytes = Buffer.concat([encodeFrame('E', encodeFields([['code', 3], ['clean', 1]])), encodeFrame('o', Buffer.from('out')), encodeFrame('e')]);
  for (let cut = 0; cut <= bytes.length; cut++) {
    const d = new FrameDecoder();
    const frames = [...d.push(bytes.subarray(0, cut)), ...d.push(bytes.subarray(cut))];
    t.same(
      frames.map((f) => [f.type, f.payload.toString()]),
      [
        ['E', 'code=3\0clean=1\0'],
        ['o', 'out'],
        ['e', ''],
      ],
      `cut at ${cut}`,
    );
  }
});

t.test('fields: repeated keys kept on the way out, values may hold "="; NUL is refused', async (t) => {
  const payload = encodeFields([['env', 'A=1'], ['env', 'B=x=y'], ['cwd', '/w']]);
  t.equal(payload.toString(), 'env=A=1\0env=B=x=y\0cwd=/w\0');
  t.same(decodeFields(Buffer.from('code=0\0signal=9\0')), { code: '0', signal: '9' });
  t.throws(() => encodeFields([['env', 'A=\0']]), /NUL/);
});

t.test('a frame longer than the runner ever sends is an error', async (t) => {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(64 * 1024 * 1024, 0);
  t.throws(() => new FrameDecoder().push(head), /frame of/);
});

t.test('plain command lines start without a shell; anything else goes through sh', async (t) => {
  t.same(plainArgv('python main.py'), ['python', 'main.py']);
  t.same(plainArgv('  /bin/bash   run.sh '), ['/bin/bash', 'run.sh']);
  for (const c of ['echo $HOME', 'a && b', 'x > f', "python -c 'print(1)'", 'A=1 python main.py', 'ls *.py', '']) {
    t.equal(plainArgv(c), null, c);
  }
});

t.test('the zygote takes `python[3[.x]] script.py [args]` only', async (t) => {
  t.same(zygoteArgv('python main.py'), ['python', 'main.py']);
  t.same(zygoteArgv('python3.11 app/handler.py --fast'), ['python3.11', 'app/handler.py', '--fast']);
  t.same(zygoteArgv('/usr/local/bin/python3 main.py'), ['/usr/local/bin/python3', 'main.py']);
  for (const c of ['python -m module', 'python main.sh', '/bin/bash run.sh', 'pypy main.py', 'python main.py > log']) t.equal(zygoteArgv(c), null, c);
});

t.test('the frame letters have one home, runner/protocol.h: the agent and the zygote agree with it', async (t) => {
  const { readFile } = await import('node:fs/promises');
  const { FRAME, MAX_FRAME } = await import('../../src/container/runnerProtocol.js');
  const header = await readFile(new URL('../../runner/protocol.h', import.meta.url), 'utf8');
  const defined = Object.fromEntries([...header.matchAll(/^#define (FRAME_\w+|ZYGOTE_\w+) '(.)'/gm)].map((m) => [m[1]!, m[2]!]));
  const agentSide = Object.fromEntries(Object.entries(FRAME).map(([k, v]) => [`FRAME_${k}`, v]));
  t.same(agentSide, Object.fromEntries(Object.entries(defined).filter(([k]) => k.startsWith('FRAME_'))), 'every FRAME_ letter, in TypeScript');
  t.equal(new Set(Object.values(agentSide)).size, Object.keys(agentSide).length, 'no letter twice');
  const zygote = await readFile(new URL('../../runner/zygote.py', import.meta.url), 'utf8');
  const inZygote = Object.fromEntries([...zygote.matchAll(/^(FRAME_RUN|ZYGOTE_\w+) = "(.)"$/gm)].map((m) => [m[1]!, m[2]!]));
  t.same(inZygote, { FRAME_RUN: defined.FRAME_RUN, ...Object.fromEntries(Object.entries(defined).filter(([k]) => k.startsWith('ZYGOTE_'))) }, 'and the zygote\'s');
  t.equal(Number(/^#define FRAME_MAX \((\d+) \* 1024 \* 1024\)/m.exec(header)?.[1]) * 1024 * 1024, MAX_FRAME);
  // The handler mode's letters: the python and node handler runtimes speak them to handler.c.
  const handlerLetters = Object.fromEntries([...header.matchAll(/^#define (HANDLER_\w+) '(.)'/gm)].map((m) => [m[1]!, m[2]!]));
  t.equal(Object.keys(handlerLetters).length, 4, 'call, ready, value, error');
  for (const file of ['handler.py', 'handler.js']) {
    const text = await readFile(new URL(`../../runner/${file}`, import.meta.url), 'utf8');
    const found = Object.fromEntries([...text.matchAll(/^(?:const )?(HANDLER_\w+) = ["'](.)["'];?$/gm)].map((m) => [m[1]!, m[2]!]));
    t.same(found, handlerLetters, `and ${file}'s`);
    t.match(text, new RegExp(`FRAME_MAX = 4 \\* 1024 \\* 1024`), `${file} knows the longest frame`);
  }
});
