/**
 * The chaos suite: the agent on the real parts (its own process, real dockerd, real
 * redis-server, fauxqs over HTTP), under a steady stream of invocations whose functions
 * print their own request id, while one fault at a time is injected. Prints one table row
 * per scenario and exits 1 when any scenario loses a message, runs one twice beyond what
 * at-least-once allows, dead-letters one, or a hostile function is not contained.
 *
 *   npm run chaos              the full suite
 *   npm run chaos -- --quick   shorter outages and streams (CI)
 */
import { writeFile } from 'node:fs/promises';
import { sleep, waitUntil } from '../src/core/timeout.js';
import type { AgentProcess } from '../src/local/agentProcess.js';
import { startFleetStandIns } from '../src/local/awsStandIns.js';
import { freezeRedis, killDockerd, startDockerd } from './faults.js';
import { HOSTILE, HOSTILE_DETAIL, hostileScenario } from './hostile.js';
import { MALFORMED_SCENARIO } from './malformed.js';
import { SANDBOX_SCENARIOS } from './sandboxScenarios.js';
import { SCRATCH_SCENARIOS } from './scratchReuse.js';
import { QUICK, say, World, type Row, type Scenario } from './world.js';

const ONLY = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);



const streamCount = QUICK ? 30 : 100;
const collectMs = QUICK ? 120_000 : 240_000;

const SCENARIOS: Scenario[] = [
  {
    name: 'dockerd killed and restarted',
    async run(w) {
      const outageMs = QUICK ? 8000 : 30_000;
      await w.startAgent('chaos-docker');
      const stream = w.stream('echo', streamCount, QUICK ? 300 : 400);
      await sleep(1500);
      say(`killing dockerd for ${outageMs / 1000} s`);
      await killDockerd();
      await sleep(outageMs);
      await startDockerd();
      say('dockerd is back');
      await stream;
      const a = w.agents[0]!;
      const row = await w.row(this.name, w.ids, { timeoutMs: collectMs, note: `outage ${outageMs / 1000} s + restart; intake paused ${a.count('intake paused: the engine is unreachable')}x` });
      if (a.count('intake resumed') === 0) return { ...row, verdict: 'FAIL', note: `${row.note}; intake never resumed` };
      return row;
    },
  },
  {
    name: `Redis down ${QUICK ? 5 : 15} s`,
    async run(w) {
      await w.startAgent('chaos-redis');
      const stream = w.stream('echo', streamCount, 200);
      await sleep(1000);
      // Unreachable, not wiped: a crash of a Redis without persistence would also lose the
      // results it had already accepted, which is no fault of the agent's.
      const thaw = await freezeRedis(w.stack.redisUrl);
      await sleep(QUICK ? 5000 : 15_000);
      thaw();
      await stream;
      const kept = w.agents[0]!.count('result not delivered; kept for retry');
      return w.row(this.name, w.ids, { timeoutMs: collectMs, note: `${kept} results waited in the outbox` });
    },
  },
  {
    name: 'agent SIGTERMed with runs in flight',
    async run(w) {
      const { exit } = await replaceMidStream(w, 'chaos-term', 'SIGTERM');
      const row = await w.row(this.name, w.ids, { timeoutMs: collectMs, restarts: 1, note: `exit code ${exit.code}` });
      return exit.code === 0 ? row : { ...row, verdict: 'FAIL', note: `${row.note}: SIGTERM exit code ${exit.code}` };
    },
  },
  {
    name: 'agent SIGKILLed and restarted',
    async run(w) {
      const { first } = await replaceMidStream(w, 'chaos-kill', 'SIGKILL');
      // The runs the kill interrupted: received by the killed agent, never finished there.
      const received = new Set(first.lines.filter((l) => l.msg === 'invocation received').map((l) => l.requestId as string));
      for (const l of first.runs()) received.delete(l.requestId as string);
      return w.row(this.name, w.ids, { timeoutMs: collectMs, restarts: 1, allowedTwice: received.size, interrupted: received, note: `${received.size} in flight at the kill, run again (at-least-once)` });
    },
  },
  {
    name: 'Spot notice mid-stream',
    async run(w) {
      const { imds, asg, env } = await startFleetStandIns(w);
      const spot = await w.startAgent('chaos-spot', { ...env, NANOGRID_SPOT_MARGIN_S: '2' });
      // 1 s runs and 8 s runs: the notice leaves 5 s, so the long ones cannot finish.
      const stream = Promise.all([w.stream('slow-echo', QUICK ? 16 : 40, 250), w.stream('long-echo', 4, 500)]);
      await sleep(2000);
      const time = new Date(Math.ceil((Date.now() + 5000) / 1000) * 1000).toISOString().replace('.000Z', 'Z');
      imds.paths.set('spot/instance-action', JSON.stringify({ action: 'terminate', time }));
      // The replacement the group launches.
      await w.startAgent('chaos-spot-b');
      await stream;
      const drained = await waitUntil('the Spot agent drained', () => spot.lines.find((l) => l.msg === 'drained'), { timeoutMs: 30_000 }).catch(() => undefined);
      const cut = new Set(spot.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('given back before its run ended')).map((l) => l.requestId as string));
      const problems: string[] = [];
      if (!drained) problems.push('the Spot agent never drained');
      else if (Date.parse(String(drained.time ?? '')) > Date.parse(time)) problems.push('drained after the notice\'s time');
      // Completed once drained: after the 'drained' line, with its own tries and back-off.
      const completed = await waitUntil('CompleteLifecycleAction', () => asg.calls.some((c) => c.action === 'CompleteLifecycleAction'), { timeoutMs: 30_000 }).catch(() => false);
      if (!completed) problems.push('no CompleteLifecycleAction');
      return w.row(this.name, w.ids, { timeoutMs: collectMs, restarts: 1, allowedTwice: cut.size, interrupted: cut, extra: problems, note: `${cut.size} runs cut at the deadline and run again elsewhere; lifecycle completed` });
    },
  },
  {
    name: 'two agents on one queue',
    async run(w) {
      const [a, b] = await Promise.all([w.startAgent('chaos-two-a'), w.startAgent('chaos-two-b')]);
      await w.stream('echo', QUICK ? 40 : 150, 50);
      const row = await w.row(this.name, w.ids, { timeoutMs: collectMs });
      const split = `${a.runs().length} / ${b.runs().length} runs`;
      return { ...row, note: row.note || split };
    },
  },
  MALFORMED_SCENARIO,
  ...HOSTILE.map((h) => ({ name: `hostile: ${h.name}`, run: (w: World) => hostileScenario(w, h) })),
  ...SANDBOX_SCENARIOS,
  ...SCRATCH_SCENARIOS,
];

/**
 * Under a stream of 1 s functions, signals the agent with runs in flight, starts a new
 * one with the same id, and waits for the stream to be sent.
 */
async function replaceMidStream(w: World, agentId: string, signal: NodeJS.Signals): Promise<{ first: AgentProcess; exit: { code: number | null } }> {
  const first = await w.startAgent(agentId);
  const stream = w.stream('slow-echo', QUICK ? 16 : 40, 250);
  await sleep(2500);
  first.signal(signal);
  const exit = await first.exited;
  await w.startAgent(agentId);
  await stream;
  return { first, exit };
}

function table(rows: Row[]): string {
  const head = ['scenario', 'sent', 'results', 'missing', 'ran twice', 'dead-lettered', 'agent restarts', 'verdict', 'note'];
  const lines = [`| ${head.join(' | ')} |`, `|${head.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${[r.scenario, r.sent, r.results, r.missing, r.ranTwice, r.deadLettered, r.restarts, r.verdict, r.note].join(' | ')} |`);
  return lines.join('\n');
}

function hostileTable(): string {
  const lines = ['| hostile function | result | limit that contained it | next invocation |', '|---|---|---|---|'];
  for (const d of HOSTILE_DETAIL) lines.push(`| ${d.name} | ${d.status} | ${d.limit} | ${d.next} |`);
  return lines.join('\n');
}

async function main(): Promise<void> {
  const started = Date.now();
  const rows: Row[] = [];
  const scenarios = SCENARIOS.filter((s) => !ONLY || s.name.includes(ONLY));
  let hostileWorld: World | undefined;
  try {
    for (const s of scenarios) {
      say(`scenario: ${s.name}`);
      const t0 = Date.now();
      const shared = s.name.startsWith('hostile:');
      // The hostile functions share one agent: "the next invocation on that worker".
      const w = shared ? (hostileWorld ??= await World.create()) : await World.create();
      let row: Row;
      try {
        row = await s.run(w);
      } catch (err) {
        row = { scenario: s.name, sent: w.ids.length, results: 0, missing: w.ids.length, ranTwice: 0, deadLettered: 0, restarts: 0, verdict: 'FAIL', note: `crashed: ${String(err)}` };
      } finally {
        if (!shared) await w.close();
      }
      rows.push(row);
      say(`${row.verdict} ${s.name} (${Math.round((Date.now() - t0) / 1000)} s): ${row.note}`);
    }
  } finally {
    await hostileWorld?.close();
  }
  const text = [
    `## Chaos suite (${QUICK ? 'quick' : 'full'}), ${new Date().toISOString()}, ${Math.round((Date.now() - started) / 1000)} s`,
    '',
    table(rows),
    '',
    hostileTable(),
    '',
  ].join('\n');
  process.stdout.write(`${text}\n`);
  const out = process.env.CHAOS_REPORT;
  if (out) await writeFile(out, text);
  const failed = rows.filter((r) => r.verdict === 'FAIL').length;
  process.stdout.write(failed ? `chaos: ${failed} of ${rows.length} scenarios FAILED\n` : `chaos: all ${rows.length} scenarios passed\n`);
  process.exitCode = failed ? 1 : 0;
}

await main();
