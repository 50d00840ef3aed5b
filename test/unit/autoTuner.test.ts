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
