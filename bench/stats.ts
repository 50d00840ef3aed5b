export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/**
 * A tail percentile is only reported where the sample can show it: p95 needs at least 20
 * samples and p99 at least 100 (below that, nearest rank gives the maximum and calls it
 * p99). Smaller samples report NaN there, printed as "-".
 */
export const MIN_N = { p95: 20, p99: 100 } as const;

/** Nearest-rank percentiles of a sample, in the sample's unit (ms here). */
export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) return { n: 0, p50: NaN, p95: NaN, p99: NaN, mean: NaN, min: NaN, max: NaN };
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!;
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    n: s.length,
    p50: r(at(50)),
    p95: s.length >= MIN_N.p95 ? r(at(95)) : NaN,
    p99: s.length >= MIN_N.p99 ? r(at(99)) : NaN,
    mean: r(s.reduce((a, b) => a + b, 0) / s.length),
    min: r(s[0]!),
    max: r(s[s.length - 1]!),
  };
}

export const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 10) / 10 : NaN);
