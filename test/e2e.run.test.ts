import t from 'tap';
import { SAMPLES } from '../src/local/samples.js';
import { startHarness } from './helpers/harness.js';

t.test('invocations run end to end on Docker, fauxqs and Redis', async (t) => {
  const h = await startHarness(t);

  t.test('python hello: SUCCESS on the prewarm container', async (t) => {
    const r = await h.invoke('py-hello', SAMPLES.pythonHello);
    t.equal(r.status, 'SUCCESS');
    t.equal(r.reason, 'OK');
    t.equal(r.success, true);
    t.equal(r.exitCode, 0);
    t.equal(r.stdout, 'hello from python\n');
    t.equal(r.stderr, '');
    t.equal(r.startKind, 'prewarm');
    t.equal(r.runtime, 'python');
    t.ok(r.durationMillis > 0, 'durationMillis measured');
    t.ok(r.timings.acquireMs !== undefined && r.timings.execMs !== undefined, 'timings present');
  });

  t.test('the same function again is served warm', async (t) => {
    const r = await h.invoke('py-hello', undefined);
    t.equal(r.status, 'SUCCESS');
    t.equal(r.startKind, 'warm');
  });

  t.test('stdout and stderr are kept apart; a non-zero exit is FAILED with its code', async (t) => {
    // The stock container that replaces the one py-hello took must be ready, or py-fail
    // starts cold instead (and evicts py-hello at capacity).
    await h.quiet();
    const r = await h.invoke('py-fail', SAMPLES.pythonFail);
    t.equal(r.startKind, 'prewarm');
    t.equal(r.status, 'FAILED');
    t.equal(r.reason, 'NON_ZERO_EXIT');
    t.equal(r.exitCode, 3);
    t.equal(r.stdout, 'about to fail\n');
    t.equal(r.stderr, 'something went wrong\n');
  });

  t.test('a new function at capacity with no prewarm stock starts cold, evicting an idle container', async (t) => {
    // py-hello and py-fail hold both python slots (max 2): no room to replenish the stock.
    await h.quiet();
    const before = h.agent.status().pools.find((p) => p.runtime === 'python')!;
    t.same({ idleWarm: before.idleWarm, idlePrewarm: before.idlePrewarm }, { idleWarm: 2, idlePrewarm: 0 });
    const r = await h.invoke('py-third', SAMPLES.pythonHello);
    t.equal(r.status, 'SUCCESS');
    t.equal(r.startKind, 'cold');
    const again = await h.invoke('py-third', undefined);
    t.equal(again.startKind, 'warm', 'warm reuse after a cold start');
  });

  t.test('cpp: run.sh compiles with g++ and runs', async (t) => {
    const r = await h.invoke('cpp-hello', SAMPLES.cppHello, { runtime: 'c++' });
    t.equal(r.status, 'SUCCESS', r.stderr);
    t.equal(r.stdout, 'hello from c++\n');
    t.equal(r.runtime, 'cpp');
    t.equal(r.startKind, 'cold', 'cpp prewarm is 0 in this harness');
    const again = await h.invoke('cpp-hello', undefined, { runtime: 'cpp' });
    t.equal(again.startKind, 'warm');
  });

  t.test('legacy inline-code message runs as python', async (t) => {
    const requestId = 'legacy-job-1';
    await h.client.send({ job_id: requestId, function_id: 'legacy-fn', code: 'print(6 * 7)' });
    const r = await h.client.waitForResult(requestId);
    t.equal(r.status, 'SUCCESS');
    t.equal(r.stdout, '42\n');
    t.equal(r.functionId, 'legacy-fn');
  });

  t.test('a late subscriber reads the stored result and the job state', async (t) => {
    const r = await h.invoke('py-hello', undefined);
    h.client.forget(r.requestId);
    const stored = await h.client.readStored(r.requestId);
    t.same(stored, r, 'the result key holds the published result');
    const ttls = await h.client.ttls(r.requestId);
    t.ok(ttls.result > 86_000 && ttls.result <= 86_400, `result key has the 24 h TTL (${ttls.result})`);
    const job = await h.client.jobState(r.requestId);
    t.equal(job.state, 'SUCCESS');
    t.equal(job.status, 'SUCCESS');
    t.ok(ttls.job > 86_000, 'job state has the same TTL');
  });

  t.test('every answered message is deleted from the queue', async (t) => {
    // The result is published before its message is deleted.
    await h.quiet();
    const depth = await h.client.queueDepth();
    t.same(depth, { visible: 0, inflight: 0 });
    const s = h.agent.status();
    t.ok(s.supervisor.totals.deleted >= 8);
    t.equal(s.supervisor.inflight, 0);
  });
  t.test("an import-heavy function: Jinja2 (Debian's python3-jinja2) is in the python image", async (t) => {
    const r = await h.invoke('py-template', SAMPLES.pythonTemplate, { inputData: { title: 'A & B', items: ['<x>'] } });
    t.equal(r.status, 'SUCCESS', r.stderr);
    t.equal(r.stdout, '<h1>A &amp; B</h1><ul><li>&lt;x&gt;</li></ul>\n', 'rendered and escaped');
  });
});
