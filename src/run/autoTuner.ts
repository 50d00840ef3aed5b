/**
 * Right-sizing advice from a function's recent peaks. Pure: the history comes in, the
 * advice goes out; storing the history is MemoryHistory's job.
 */

export const MB = 1024 * 1024;

export interface TunerPolicy {
  /** Runs needed before a size is recommended. */
  minSamples: number;
  /** Percentile of recent peaks that the recommendation covers. */
  percentile: number;
  /** Multiplier on that percentile (the original used peak x 1.5). */
  headroom: number;
  /** Never recommend less than this. */
  floorMb: number;
  language: 'en' | 'ko';
}

export const DEFAULT_POLICY: TunerPolicy = { minSamples: 5, percentile: 95, headroom: 1.5, floorMb: 128, language: 'en' };

export type Band = 'over' | 'spare' | 'fit' | 'exceeds';

export interface Advice {
  band: Band | null;
  recommendedMemoryMb: number | null;
  savingPercent: number | null;
  tip: string;
  samples: number;
}

/** Nearest-rank percentile of a non-empty list. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) throw new Error('percentile of an empty list');
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** Rounds up to a step that grows with the size: 32 MB to 512, 64 to 2048, 256 beyond. */
export function roundUpMb(mb: number): number {
  const step = mb <= 512 ? 32 : mb <= 2048 ? 64 : 256;
  return Math.ceil(mb / step) * step;
}

/** The four bands of the original auto-tuner, by peak / allocated. */
export function bandOf(ratio: number): Band {
  if (ratio < 0.3) return 'over';
  if (ratio < 0.7) return 'spare';
  if (ratio <= 1.0) return 'fit';
  return 'exceeds';
}

export function advise(args: { peaksBytes: readonly number[]; allocatedMb: number; oomKilled?: boolean }, policy: TunerPolicy = DEFAULT_POLICY): Advice {
  const { peaksBytes, allocatedMb } = args;
  const t = TEXT[policy.language];
  const n = peaksBytes.length;
  if (args.oomKilled) {
    // The true need is unknown past the limit: double it, the usual first step.
    const rec = roundUpMb(Math.max(policy.floorMb, allocatedMb * 2));
    return { band: 'exceeds', recommendedMemoryMb: rec, savingPercent: null, tip: t.oom(allocatedMb, rec), samples: n };
  }
  if (n === 0) return { band: null, recommendedMemoryMb: null, savingPercent: null, tip: t.unknown, samples: 0 };
  const latestMb = peaksBytes[n - 1]! / MB;
  if (n < policy.minSamples) {
    const band = bandOf(latestMb / allocatedMb);
    return { band, recommendedMemoryMb: null, savingPercent: null, tip: t.tooFew(latestMb, allocatedMb, n, policy.minSamples), samples: n };
  }
  const pMb = percentile(peaksBytes, policy.percentile) / MB;
  const band = bandOf(pMb / allocatedMb);
  const rec = Math.max(policy.floorMb, roundUpMb(pMb * policy.headroom));
  // Rounded down: "about 62%" for 256 -> 96 MB, as the original put it, never an overstatement.
  const saving = rec < allocatedMb ? Math.floor(((allocatedMb - rec) / allocatedMb) * 100) : 0;
  const ctx = { pMb, allocatedMb, rec, saving, n, p: policy.percentile, floor: policy.floorMb };
  // Nothing smaller to recommend: the allocation is at (or under) the floor, or the
  // headroom over the peak already needs all of it.
  if ((band === 'over' || band === 'spare') && rec >= allocatedMb) {
    return { band, recommendedMemoryMb: allocatedMb, savingPercent: 0, tip: allocatedMb <= policy.floorMb ? t.atFloor(ctx) : t.fit(ctx), samples: n };
  }
  switch (band) {
    case 'over':
      return { band, recommendedMemoryMb: rec, savingPercent: saving, tip: t.over(ctx), samples: n };
    case 'spare':
      return { band, recommendedMemoryMb: rec, savingPercent: saving, tip: t.spare(ctx), samples: n };
    case 'fit':
      return { band, recommendedMemoryMb: allocatedMb, savingPercent: 0, tip: t.fit(ctx), samples: n };
    case 'exceeds':
      return { band, recommendedMemoryMb: rec, savingPercent: null, tip: t.exceeds(ctx), samples: n };
  }
}

interface Ctx {
  pMb: number;
  allocatedMb: number;
  rec: number;
  saving: number;
  n: number;
  p: number;
  floor: number;
}

const f = (mb: number) => (mb >= 10 ? Math.round(mb).toString() : mb.toFixed(1));

const TEXT = {
  en: {
    unknown: 'Peak memory could not be measured for this run; no recommendation.',
    oom: (alloc: number, rec: number) => `Killed for exceeding its ${alloc} MB limit: increase memory, for example to ${rec} MB.`,
    tooFew: (latest: number, alloc: number, n: number, min: number) =>
      `This run peaked at ${f(latest)} MB of ${alloc} MB (${Math.round((latest / alloc) * 100)}%). ${n} of ${min} runs measured: not enough to recommend a size yet.`,
    over: (c: Ctx) =>
      `Far more memory than needed: p${c.p} peak ${f(c.pMb)} MB of ${c.allocatedMb} MB over ${c.n} runs. Reduce to about ${c.rec} MB, saving about ${c.saving}%.`,
    spare: (c: Ctx) => `Room to spare: p${c.p} peak ${f(c.pMb)} MB of ${c.allocatedMb} MB over ${c.n} runs. Could go down to ${c.rec} MB (about ${c.saving}% less).`,
    fit: (c: Ctx) => `Appropriate: p${c.p} peak ${f(c.pMb)} MB of ${c.allocatedMb} MB over ${c.n} runs. Keep the setting.`,
    atFloor: (c: Ctx) =>
      `Small for its allocation: p${c.p} peak ${f(c.pMb)} MB of ${c.allocatedMb} MB over ${c.n} runs, but ${c.floor} MB is the smallest size recommended. Keep the setting.`,
    exceeds: (c: Ctx) => `Exceeds the allocation: p${c.p} peak ${f(c.pMb)} MB of ${c.allocatedMb} MB over ${c.n} runs. Increase memory to about ${c.rec} MB.`,
  },
  ko: {
    unknown: '이번 실행의 최대 메모리를 측정하지 못해 권장값이 없습니다.',
    oom: (alloc: number, rec: number) => `${alloc}MB 제한을 초과하여 강제 종료되었습니다. 메모리를 늘리세요 (예: ${rec}MB).`,
    tooFew: (latest: number, alloc: number, n: number, min: number) =>
      `이번 실행 최대 메모리 ${f(latest)}MB / 할당 ${alloc}MB (${Math.round((latest / alloc) * 100)}%). 측정 ${n}/${min}회: 아직 권장값을 내기에는 실행 횟수가 부족합니다.`,
    over: (c: Ctx) =>
      `메모리가 과도하게 할당되었습니다: ${c.n}회 실행 p${c.p} 최대 ${f(c.pMb)}MB / 할당 ${c.allocatedMb}MB. 약 ${c.rec}MB로 줄이면 약 ${c.saving}% 절감됩니다.`,
    spare: (c: Ctx) => `여유가 있습니다: ${c.n}회 실행 p${c.p} 최대 ${f(c.pMb)}MB / 할당 ${c.allocatedMb}MB. ${c.rec}MB까지 줄일 수 있습니다 (약 ${c.saving}% 절감).`,
    fit: (c: Ctx) => `적절합니다: ${c.n}회 실행 p${c.p} 최대 ${f(c.pMb)}MB / 할당 ${c.allocatedMb}MB. 현재 설정을 유지하세요.`,
    atFloor: (c: Ctx) =>
      `할당에 비해 적게 사용합니다: ${c.n}회 실행 p${c.p} 최대 ${f(c.pMb)}MB / 할당 ${c.allocatedMb}MB. 다만 권장하는 최소 크기가 ${c.floor}MB이므로 현재 설정을 유지하세요.`,
    exceeds: (c: Ctx) => `할당량을 초과했습니다: ${c.n}회 실행 p${c.p} 최대 ${f(c.pMb)}MB / 할당 ${c.allocatedMb}MB. 메모리를 약 ${c.rec}MB로 늘리세요.`,
  },
};
