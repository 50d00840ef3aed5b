import { randomBytes } from 'node:crypto';
import { sleep } from '../src/core/timeout.js';
import { signMessage } from '../src/intake/messageAuth.js';
import { freezeRedis } from './faults.js';
import { QUICK, type Scenario } from './world.js';

/**
 * The sandbox's rows that need more than one hostile function in a stream: what crosses
 * containers, what a Redis outage piles up, and what message senders can do to each other.
 */

const HOG = `
import ctypes, os, signal, threading, time
libc = ctypes.CDLL(None, use_errno=True)
fds = []
while libc.inotify_init() >= 0:
    fds.append(1)
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
queued = 0
try:
    while queued < 100000:
        signal.pthread_kill(threading.get_ident(), signal.SIGRTMIN)
        queued += 1
except OSError:
    pass
print('inotify=%d queued=%d uid=%d' % (len(fds), queued, os.getuid()), flush=True)
time.sleep(5)
`;
const NEIGHBOUR = `
import ctypes, os, signal, threading
libc = ctypes.CDLL(None, use_errno=True)
ok = libc.inotify_init() >= 0
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGRTMIN])
try:
    signal.pthread_kill(threading.get_ident(), signal.SIGRTMIN)
    sig = True
except OSError:
    sig = False
print('inotify=%s signal=%s uid=%d' % (ok, sig, os.getuid()))
`;

const bigOut = (kb: number) => `import os\nprint(os.environ["NANOGRID_REQUEST_ID"])\nprint("p" * ${kb * 1024})\n`;

async function status(port: number): Promise<{ results: { outbox: number; outboxBytes: number } }> {
  return (await (await fetch(`http://127.0.0.1:${port}/status`)).json()) as { results: { outbox: number; outboxBytes: number } };
}

export const SANDBOX_SCENARIOS: Scenario[] = [
  {
    name: 'per-uid limits across containers',
    async run(w) {
      await w.startAgent('chaos-uid', { NANOGRID_PREWARM: 'python=2,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1' });
      await w.client.uploadZip('uid-hog/v1.zip', { 'main.py': HOG });
      await w.client.uploadZip('uid-neighbour/v1.zip', { 'main.py': NEIGHBOUR });
      const hog = w.message('uid-hog', { timeoutMs: 20_000 });
      await w.client.send(hog);
      await sleep(2500);
      const n = w.message('uid-neighbour');
      await w.client.send(n);
      const [a, b] = await Promise.all([w.client.waitForResult(hog.requestId, 60_000), w.client.waitForResult(n.requestId, 60_000)]);
      const problems: string[] = [];
      const took = /inotify=(\d+) queued=(\d+) uid=(\d+)/.exec(a.stdout);
      const got = /inotify=(\w+) signal=(\w+) uid=(\d+)/.exec(b.stdout);
      if (!took || Number(took[1]) < 128 || Number(took[2]) < 1024) problems.push(`the hog did not exhaust its uid: ${a.stdout.trim() || a.stderr.slice(0, 100)}`);
      if (!got || got[1] !== 'True' || got[2] !== 'True') problems.push(`the neighbour was starved: ${b.stdout.trim() || b.stderr.slice(0, 100)}`);
      if (took && got && took[3] === got[3]) problems.push('both ran as one uid');
      return w.row(this.name, [hog.requestId, n.requestId], { timeoutMs: 30_000, extra: problems, note: `hog ${took?.[1]} inotify, ${took?.[2]} signals as uid ${took?.[3]}; neighbour (uid ${got?.[3]}) got both` });
    },
  },
  {
    name: 'the outbox under a Redis outage with large results',
    async run(w) {
      const limitMb = 2;
      const a = await w.startAgent('chaos-outbox', { NANOGRID_OUTBOX_MAX_MB: String(limitMb) });
      const port = await a.started();
      await w.client.uploadZip('bigout/v1.zip', { 'main.py': bigOut(600) });
      const thaw = await freezeRedis(w.stack.redisUrl);
      let peak = 0;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          peak = Math.max(peak, (await status(port).catch(() => ({ results: { outboxBytes: 0 } }))).results.outboxBytes);
          await sleep(200);
        }
      })();
      // A steady stream through the whole outage: the outbox fills, and intake must stop
      // taking more (what is not taken waits in the queue) instead of piling them up.
      const ids: string[] = [];
      for (let i = 0; i < (QUICK ? 40 : 100); i++) {
        const m = w.message('bigout');
        ids.push(m.requestId);
        await w.client.send(m);
        await sleep(250);
      }
      thaw();
      const found = await w.collect(ids, 120_000);
      sampling = false;
      await sampler;
      const problems: string[] = [];
      const wrong = [...found.values()].filter((r) => r.stdout.split('\n')[0] !== r.requestId);
      if (wrong.length) problems.push(`${wrong.length} results not their own`);
      const paused = a.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('intake paused: the outbox'));
      if (!paused) problems.push('intake never paused for the full outbox');
      // The bound: the limit, plus what the runs under way may add once it is reached (its
      // capacity of 5 slots, each result here under 1 MiB).
      const bound = (limitMb + 5) * 1024 * 1024;
      if (peak > bound) problems.push(`the outbox held ${peak} bytes, past ${bound}`);
      return w.row(this.name, ids, { timeoutMs: 60_000, extra: problems, note: `peak outbox ${(peak / 1048576).toFixed(1)} MB (limit ${limitMb} MB); intake paused while full; every result delivered after the outage` });
    },
  },
  {
    name: 'forged and foreign messages',
    async run(w) {
      const secret = randomBytes(32);
      const key = { id: 'chaos', secret };
      const a = await w.startAgent('chaos-auth', { NANOGRID_MESSAGE_KEYS: `chaos:${secret.toString('base64')}` });
      await w.client.uploadZip('intruder/v1.zip', { 'main.py': 'print("intruder")\n' });
      const sign = (m: Record<string, unknown>) => signMessage(m, key, { lifetimeMs: 600_000 });
      const legit: string[] = [];
      const victims: string[] = [];
      const n = QUICK ? 12 : 40;
      for (let i = 0; i < n; i++) {
        const m = w.message('echo');
        legit.push(m.requestId);
        await w.client.send(sign(m));
        // Beside it, what a hostile sender tries: unsigned, altered, signed with a secret of
        // its own under the right key id, expired.
        const v = w.message('echo');
        victims.push(v.requestId);
        const forms = [v, { ...sign(v), functionId: 'intruder' }, signMessage(v, { id: 'chaos', secret: randomBytes(32) }, { lifetimeMs: 600_000 }), signMessage(v, key, { now: Date.now() - 7_200_000, lifetimeMs: 60_000 })];
        await w.client.send(forms[i % forms.length]!);
        await sleep(200);
      }
      const row = await w.row(this.name, legit, { timeoutMs: 60_000 });
      // Then, signed (a sender with the key may still be another tenant): another function
      // under each answered request id.
      const answeredAt = new Map([...(await w.collect(legit, 1000))].map(([id, r]) => [id, r.finishedAt]));
      for (const id of legit) await w.client.send(sign(w.message('intruder', { requestId: id, s3Key: 'intruder/v1.zip' })));
      await sleep(QUICK ? 4000 : 8000);
      const problems: string[] = [];
      for (const id of victims) if (await w.client.readStored(id).catch(() => undefined)) problems.push(`something was stored under ${id}`);
      for (const [id, at] of answeredAt) {
        const now = await w.client.readStored(id).catch(() => undefined);
        if (!now || now.finishedAt !== at || now.stdout.trim() !== id) problems.push(`the result of ${id} was replaced`);
      }
      const intruderRan = a.runs((l) => l.functionId === 'intruder').length;
      if (intruderRan) problems.push(`the intruder ran ${intruderRan} times`);
      const refused = a.lines.filter((l) => typeof l.reason === 'string' && /^MESSAGE_|^FOREIGN_REQUEST_ID$/.test(l.reason)).length;
      if (refused < 2 * n) problems.push(`only ${refused} of ${2 * n} refusals logged`);
      return {
        ...row,
        sent: row.sent + victims.length + legit.length,
        verdict: problems.length || row.verdict === 'FAIL' ? 'FAIL' : 'PASS',
        note: [row.note, ...problems, `${victims.length} unsigned/forged/expired and ${legit.length} foreign messages refused unanswered; nothing stored under their ids; every legitimate result stands`].filter(Boolean).join('; '),
      };
    },
  },
];

