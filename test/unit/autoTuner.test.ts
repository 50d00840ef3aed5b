import t from 'tap';
import { advise, bandOf, DEFAULT_POLICY, MB, percentile, roundUpMb } from '../../src/run/autoTuner.js';

const runs = (mb: number, n = 10) => Array.from({ length: n }, () => mb * MB);

t.test("the original's worked example: 256 MB allocated, 64 MB used", async (t) => {
  // With the original's floor (none below 64 MB): about 96 MB, about 62% saved.
  const original = advise({ peaksBytes: runs(64), allocatedMb: 256 }, { ...DEFAULT_POLICY, floorMb: 64 });
  t.equal(original.band, 'over', '64/256 = 0.25: far too much memory');
  t.equal(original.recommendedMemoryMb, 96);
  t.equal(original.savingPercent, 62);
  t.match(original.tip, 'Reduce to about 96 MB, saving about 62%');
  // With this agent's floor of 128 MB the advice never goes below it.
  const floored = advise({ peaksBytes: runs(64), allocatedMb: 256 });
  t.equal(floored.recommendedMemoryMb, 128);
  t.equal(floored.savingPercent, 50);
});

t.test('at the smallest size it recommends, the tip says to keep it', async (t) => {
  // 8 of 9 published functions: a few MB used of the 128 MB the original gives by default.
  const small = advise({ peaksBytes: runs(3), allocatedMb: 128 });
  t.equal(small.band, 'over', 'the band still says how little is used');
  t.equal(small.recommendedMemoryMb, 128);
  t.equal(small.savingPercent, 0);
  t.equal(small.tip, 'Small for its allocation: p95 peak 3.0 MB of 128 MB over 10 runs, but 128 MB is the smallest size recommended. Keep the setting.');
  t.notMatch(small.tip, /Reduce|saving/);
  const under = advise({ peaksBytes: runs(3), allocatedMb: 64 });
  t.equal(under.recommendedMemoryMb, 64, 'under the floor already: never told to grow');
  t.match(under.tip, 'Keep the setting');
  const ko = advise({ peaksBytes: runs(3), allocatedMb: 128 }, { ...DEFAULT_POLICY, language: 'ko' });
  t.match(ko.tip, '128MB이므로 현재 설정을 유지하세요');
  // Room by the ratio, but the 1.5x headroom needs the whole allocation: keep it too.
  const headroom = advise({ peaksBytes: runs(175), allocatedMb: 256 });
  t.equal(headroom.band, 'spare');
  t.equal(headroom.recommendedMemoryMb, 256);
  t.match(headroom.tip, /^Appropriate: .* Keep the setting\.$/);
  const above = advise({ peaksBytes: runs(60), allocatedMb: 160 });
  t.equal(above.recommendedMemoryMb, 128, 'above the floor the advice goes down to it');
  t.match(above.tip, 'Could go down to 128 MB (about 20% less)');
});

t.test('the four bands', async (t) => {
  t.equal(bandOf(0.1), 'over');
  t.equal(bandOf(0.5), 'spare');
  t.equal(bandOf(0.85), 'fit');
  t.equal(bandOf(1.2), 'exceeds');
  const over = advise({ peaksBytes: runs(20), allocatedMb: 1024 });
  t.equal(over.band, 'over');
  t.equal(over.recommendedMemoryMb, 128);
  t.match(over.tip, 'Reduce to about 128 MB, saving about 87%');
  const spare = advise({ peaksBytes: runs(400), allocatedMb: 1024 });
  t.equal(spare.band, 'spare');
  t.equal(spare.recommendedMemoryMb, 640);
  t.match(spare.tip, 'Could go down to 640 MB');
  const fit = advise({ peaksBytes: runs(200), allocatedMb: 256 });
  t.equal(fit.band, 'fit');
  t.equal(fit.recommendedMemoryMb, 256);
  t.match(fit.tip, 'Keep the setting');
  const exceeds = advise({ peaksBytes: runs(300), allocatedMb: 256 });
  t.equal(exceeds.band, 'exceeds');
  t.equal(exceeds.recommendedMemoryMb, 480, 'p95 300 MB x 1.5 = 450, rounded up to 480');
  t.match(exceeds.tip, 'Increase memory to about 480 MB');
});

t.test('a high percentile, not the mean: one spike in twenty counts', async (t) => {
  const peaks = [...runs(50, 19), 200 * MB];
  t.equal(percentile(peaks, 95) / MB, 50, 'p95 of 20 runs is the 19th');
  const withSpikes = [...runs(50, 18), 200 * MB, 200 * MB];
  t.equal(percentile(withSpikes, 95) / MB, 200);
  t.equal(advise({ peaksBytes: withSpikes, allocatedMb: 512 }).recommendedMemoryMb, 320);
});

t.test('too few runs: says so, no number', async (t) => {
  const a = advise({ peaksBytes: runs(64, 3), allocatedMb: 256 });
  t.equal(a.recommendedMemoryMb, null);
  t.match(a.tip, '3 of 5 runs measured');
  t.equal(advise({ peaksBytes: [], allocatedMb: 256 }).band, null);
});

t.test('OOM: double the limit', async (t) => {
  const a = advise({ peaksBytes: [], allocatedMb: 256, oomKilled: true });
  t.equal(a.recommendedMemoryMb, 512);
  t.equal(a.band, 'exceeds');
});

t.test('Korean tips, as the original users read them', async (t) => {
  const ko = { ...DEFAULT_POLICY, language: 'ko' as const };
  t.match(advise({ peaksBytes: runs(20), allocatedMb: 1024 }, ko).tip, '약 128MB로 줄이면 약 87% 절감됩니다');
  t.match(advise({ peaksBytes: runs(64, 2), allocatedMb: 256 }, ko).tip, '실행 횟수가 부족합니다');
  t.match(advise({ peaksBytes: [], allocatedMb: 64, oomKilled: true }, ko).tip, '메모리를 늘리세요');
});

t.test('rounding steps', async (t) => {
  t.equal(roundUpMb(1), 32);
  t.equal(roundUpMb(96), 96);
  t.equal(roundUpMb(97), 128);
  t.equal(roundUpMb(600), 640);
  t.equal(roundUpMb(2100), 2304);
  t.throws(() => percentile([], 95));
});
