import t from 'tap';
import { MIN_N, summarize } from '../../bench/stats.js';
import { latencyChart } from '../../bench/charts.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

t.test('tail percentiles only where the sample can show them', async (t) => {
  const small = summarize(range(19));
  t.equal(small.p50, 10);
  t.ok(Number.isNaN(small.p95) && Number.isNaN(small.p99), 'n=19: no p95, no p99 (nearest rank would give the maximum)');
  const mid = summarize(range(MIN_N.p95));
  t.equal(mid.p95, 19);
  t.ok(Number.isNaN(mid.p99), 'n=20: p95, still no p99');
  const big = summarize(range(MIN_N.p99));
  t.same([big.p50, big.p95, big.p99, big.min, big.max, big.mean], [50, 95, 99, 1, 100, 50.5]);
  t.equal(summarize([]).n, 0);
});

t.test('a chart row with too few samples draws to its maximum, dashed, and no p95 box', async (t) => {
  const svg = latencyChart('t', [
    { label: 'few', group: 'warm', summary: summarize(range(5)) },
    { label: 'many', group: 'warm', summary: summarize(range(200)) },
  ]);
  t.notMatch(svg, /NaN/);
  t.equal((svg.match(/stroke-dasharray/g) ?? []).length, 1);
  t.equal((svg.match(/<rect [^>]*fill-opacity="0.45"/g) ?? []).length, 1, 'one p95 box: the row with 200 samples');
});
