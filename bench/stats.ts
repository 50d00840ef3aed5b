export interface Summary {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Nearest-rank percentiles of a sample, in the sample's unit (ms here). */
export function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) return { n: 0, p50: NaN, p95: NaN, p99: NaN, mean: NaN, min: NaN, max: NaN };
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1]!;
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    n: s.length,
    p50: r(at(50)),
    p95: r(at(95)),
    p99: r(at(99)),
    mean: r(s.reduce((a, b) => a + b, 0) / s.length),
    min: r(s[0]!),
    max: r(s[s.length - 1]!),
  };
}

export const ratio = (a: number, b: number) => (b > 0 ? Math.round((a / b) * 10) / 10 : NaN);
