import t from 'tap';
import { waitUntil } from '../src/core/timeout.js';
import { SAMPLES } from '../src/local/samples.js';
import { ONE_PYTHON, startHarness } from './helpers/harness.js';
import { startFleetStandIns } from '../src/local/awsStandIns.js';

t.test('POST /drain: no new messages, the running one finishes, the agent stays up drained', async (t) => {
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=1,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1' } });
  await h.client.uploadZip('slow/v1.zip', SAMPLES.pythonSleep(2000));
  const base = `http://127.0.0.1:${h.agent.httpPort}`;
  const running = h.message('slow');
  await h.client.send(running);
  await waitUntil('running', () => h.agent.status().supervisor.running === 1, { timeoutMs: 30_000 });

  const res = await fetch(`${base}/drain`, { method: 'POST' });
  t.equal(res.status, 202);
  const d = (await res.json()) as { state: string; running: number };
  t.same({ state: d.state, running: d.running }, { state: 'draining', running: 1 });
  t.equal((await fetch(`${base}/drain`, { method: 'POST' })).status, 202, 'a second drain is the same drain');

  const after = h.message('slow');
  await h.client.send(after);
  const r = await h.client.waitForResult(running.requestId, 30_000);
  t.equal(r.status, 'SUCCESS', 'the running invocation finished');
  const status = await waitUntil('drained', async () => {
    const s = (await (await fetch(`${base}/status`)).json()) as { phase: string; drain: { state: string; stillRunning: number; finishedAt: string | null } };
    return s.drain?.state === 'drained' ? s : undefined;
  });
  t.equal(status.phase, 'drained');
  t.equal(status.drain.stillRunning, 0);
  t.ok(status.drain.finishedAt);
  t.same(await h.client.queueDepth(), { visible: 1, inflight: 0 }, 'the message sent during the drain waits in the queue for another worker');
  t.equal((await fetch(`${base}/health/ready`)).status, 503, 'a drained worker is not ready');
  t.equal((await fetch(`${base}/health/live`)).status, 200, 'but alive');

  // Another worker on the same queue takes it: nothing lost.
  const other = await startHarness(t, { stack: h.stack });
  const taken = await other.client.waitForResult(after.requestId, 60_000);
  t.equal(taken.status, 'SUCCESS');
  t.equal(taken.workerId, other.agentId);
});

/** The IMDS and Auto Scaling stand-ins an agent on an instance of the group would see. */
async function fleetEnv(t: Parameters<typeof startFleetStandIns>[0]) {
  const f = await startFleetStandIns(t, { 'autoscaling/target-lifecycle-state': 'InService' });
  return { ...f, env: { ...f.env, NANOGRID_LIFECYCLE_HEARTBEAT_S: '1' } };
}

interface DrainView {
  phase: string;
  drain: { state: string; trigger: string; givenBack: number; cutAtDeadline: number; deadline: string | null; finishedAt: string | null; lifecycle: { heartbeats: number; completedAt: string | null } | null } | null;
}

t.test('a termination lifecycle action seen through IMDSv2: drain with heartbeats, then CONTINUE', async (t) => {
  const f = await fleetEnv(t);
  const h = await startHarness(t, { env: { ...ONE_PYTHON, ...f.env } });
  const base = `http://127.0.0.1:${h.agent.httpPort}`;
  const view = async () => (await (await fetch(`${base}/status`)).json()) as DrainView;
  await h.client.uploadZip('slow/v1.zip', SAMPLES.pythonSleep(3000));
  const running = h.message('slow');
  const waiting = h.message('slow');
  await h.client.send(running);
  await waitUntil('running', () => h.agent.status().supervisor.running === 1, { timeoutMs: 30_000 });
  await h.client.send(waiting);
  await waitUntil('second held, waiting for the one container', () => h.agent.status().supervisor.inflight === 2, { timeoutMs: 30_000 });

  const t0 = Date.now();
  const timeline: string[] = [];
  const mark = (what: string) => timeline.push(`+${String(Date.now() - t0).padStart(5)} ms  ${what}`);
  f.imds.paths.set('autoscaling/target-lifecycle-state', 'Terminated');
  mark('IMDS: target-lifecycle-state = Terminated');
  await waitUntil('drain by lifecycle', async () => (await view()).drain?.trigger === 'lifecycle');
  mark('agent draining (trigger lifecycle)');
  // With slots free in other pools a long poll is in flight when the drain begins: it may
  // bring the given-back message once more, and that is given back again (counted twice).
  const back = await waitUntil('waiting one given back', async () => { const n = (await view()).drain?.givenBack ?? 0; return n >= 1 ? n : undefined; });
  t.ok(back <= 2, `given back ${back} time(s)`);
  mark('held message not started: given back to the queue');
  t.equal(h.agent.status().supervisor.running, 1, 'given back at once, while the run still goes on');
  const r = await h.client.waitForResult(running.requestId, 30_000);
  mark(`running invocation finished: ${r.status}`);
  t.equal(r.status, 'SUCCESS', 'the running invocation finished');
  const done = await waitUntil('lifecycle completed', async () => {
    const v = await view();
    return v.drain?.lifecycle?.completedAt ? v : undefined;
  });
  mark('CompleteLifecycleAction CONTINUE sent');
  const beats = f.asg.calls.filter((c) => c.action === 'RecordLifecycleActionHeartbeat');
  const complete = f.asg.calls.filter((c) => c.action === 'CompleteLifecycleAction');
  t.ok(beats.length >= 2, `heartbeats while the run went on (${beats.length})`);
  t.equal(complete.length, 1, 'completed once');
  t.same(
    [complete[0]!.params.AutoScalingGroupName, complete[0]!.params.LifecycleHookName, complete[0]!.params.InstanceId, complete[0]!.params.LifecycleActionResult],
    ['nanogrid-workers', 'nanogrid-drain', 'i-0fleet000000001', 'CONTINUE'],
  );
  t.ok(Date.parse(done.drain!.finishedAt!) <= complete[0]!.at, 'completed only once drained');
  t.ok(beats.every((b) => b.at <= complete[0]!.at), 'no heartbeat after completion');
  t.equal(done.phase, 'drained');
  t.same(await h.client.queueDepth(), { visible: 1, inflight: 0 }, 'the message not started waits for another worker');
  t.equal(f.imds.refused, 0, 'IMDSv2 only');
  t.comment(`drain timeline (lifecycle):\n${timeline.join('\n')}`);
});

t.test('a Spot notice: what can finish does, the rest is given back before the two minutes end', async (t) => {
  const f = await fleetEnv(t);
  const h = await startHarness(t, { env: { NANOGRID_PREWARM: 'python=2,cpp=0', NANOGRID_MAX_CONTAINERS: 'python=2,cpp=1', NANOGRID_SPOT_MARGIN_S: '2', ...f.env } });
  const base = `http://127.0.0.1:${h.agent.httpPort}`;
  const view = async () => (await (await fetch(`${base}/status`)).json()) as DrainView;
  await h.client.uploadZip('short/v1.zip', SAMPLES.pythonSleep(1000));
  await h.client.uploadZip('long/v1.zip', SAMPLES.pythonSleep(8000));
  const short = h.message('short');
  const long = h.message('long', { timeoutMs: 60_000 });
  await h.client.send(long);
  await h.client.send(short);
  await waitUntil('both running', () => h.agent.status().supervisor.running === 2, { timeoutMs: 30_000 });

  const t0 = Date.now();
  const timeline: string[] = [];
  const mark = (what: string) => timeline.push(`+${String(Date.now() - t0).padStart(5)} ms  ${what}`);
  // EC2 gives the time to the second; four seconds here stand for the two minutes.
  const time = new Date(Math.ceil((Date.now() + 4000) / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  f.imds.paths.set('spot/instance-action', JSON.stringify({ action: 'terminate', time }));
  mark(`IMDS: spot/instance-action terminate at ${time}`);
  await waitUntil('drain by spot', async () => (await view()).drain?.trigger === 'spot');
  mark('agent draining (trigger spot), deadline = notice time - 2 s margin');
  t.equal((await h.client.waitForResult(short.requestId, 30_000)).status, 'SUCCESS', 'the short run finished');
  mark('short run finished: SUCCESS');
  const drained = await waitUntil('drained', async () => {
    const v = await view();
    return v.drain?.state === 'drained' ? v : undefined;
  });
  mark(`drained: ${drained.drain!.cutAtDeadline} run cut at the deadline and given back`);
  t.ok(Date.now() < Date.parse(time), 'drained before the instance goes');
  t.equal(drained.drain!.cutAtDeadline, 1);
  t.equal(await h.client.readStored(long.requestId), undefined, 'no result for the cut run: it is not answered as failed');
  t.same(await h.client.queueDepth(), { visible: 1, inflight: 0 }, 'given back at once, not after its visibility timeout');
  await waitUntil('lifecycle completed', async () => (await view()).drain?.lifecycle?.completedAt != null);
  t.equal((await h.containers()).length, 0, 'the cut run\'s container was removed with the pools');

  // Another worker takes it: nothing lost; it ran to completion once.
  const other = await startHarness(t, { stack: h.stack });
  const r = await other.client.waitForResult(long.requestId, 60_000);
  mark(`another worker ran the given-back message: ${r.status}, attempt ${r.attempt}`);
  t.equal(r.status, 'SUCCESS');
  t.equal(r.workerId, other.agentId);
  t.comment(`drain timeline (Spot):\n${timeline.join('\n')}`);
});
