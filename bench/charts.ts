// Hand-written SVG: no charting dependency, and the files open in any browser.
import type { Summary } from './stats.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const COLORS: Record<string, string> = { floor: '#7f7f7f', baseline: '#9467bd', cold: '#d62728', prewarm: '#ff7f0e', warm: '#2ca02c' };

export interface LatencyRow {
  label: string;
  group: keyof typeof COLORS | string;
  summary: Summary;
}

/**
 * One row per cell: a bar from p50 to p95 with a whisker to p99 and a tick at p50, on a
 * log-scale millisecond axis so floors (ms) and cold starts (s) share one picture.
 */
export function latencyChart(title: string, rows: LatencyRow[]): string {
  // Room for the longest label (about 6.5 px a character at 12 px) and the p50 text.
  const left = Math.max(200, Math.ceil(Math.max(...rows.map((r) => `${r.label} (n=${r.summary.n})`.length)) * 6.5) + 20);
  const width = left + 760;
  const rowH = 22;
  const top = 50;
  const height = top + rows.length * rowH + 76;
  const values = rows.flatMap((r) => [r.summary.min, r.summary.max]).filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values, 1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values, 10))));
  const x = (v: number) => left + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (width - left - 110);
  const parts: string[] = [];
  parts.push(`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`);
  for (let d = lo; d <= hi; d *= 10) {
    parts.push(`<line x1="${x(d)}" y1="${top - 8}" x2="${x(d)}" y2="${height - 66}" stroke="#ddd"/>`);
    parts.push(`<text x="${x(d)}" y="${height - 50}" text-anchor="middle" font-size="11">${d >= 1000 ? `${d / 1000} s` : `${d} ms`}</text>`);
  }
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const c = COLORS[r.group] ?? '#1f77b4';
    const s = r.summary;
    parts.push(`<text x="${left - 8}" y="${y + 14}" text-anchor="end" font-size="12">${esc(r.label)} (n=${s.n})</text>`);
    if (!Number.isFinite(s.p50)) return;
    // Too few samples for a p99 (or a p95): the line ends at the maximum, the box is left out.
    const end = Number.isFinite(s.p99) ? s.p99 : s.max;
    parts.push(`<line x1="${x(s.min)}" y1="${y + 10}" x2="${x(end)}" y2="${y + 10}" stroke="${c}" stroke-width="1.5"${Number.isFinite(s.p99) ? '' : ' stroke-dasharray="3 2"'}/>`);
    if (Number.isFinite(s.p95)) parts.push(`<rect x="${x(s.p50)}" y="${y + 3}" width="${Math.max(2, x(s.p95) - x(s.p50))}" height="14" fill="${c}" fill-opacity="0.45" stroke="${c}"/>`);
    parts.push(`<line x1="${x(s.p50)}" y1="${y + 1}" x2="${x(s.p50)}" y2="${y + 19}" stroke="${c}" stroke-width="3"/>`);
    parts.push(`<text x="${x(end) + 6}" y="${y + 14}" font-size="11" fill="#333">${s.p50.toFixed(1)} ms</text>`);
  });
  parts.push(`<text x="${left}" y="${height - 28}" font-size="11" fill="#555">thick tick: p50 · box: p50 to p95 (n >= 20) · line: min to p99 (n >= 100; dashed: to the max) · log scale</text>`);
  parts.push(`<text x="${left}" y="${height - 12}" font-size="11" fill="#555">grey: floors · purple: the original system's paths · red: cold · orange: prewarm · green: warm</text>`);
  return svg(width, height, parts);
}

export interface CurvePoint {
  label: string;
  x: number;
  y: number;
  note: string;
}

/** Throughput (y) against the fraction of cold starts (x), one point per workload. */
export function coldCurveChart(title: string, points: CurvePoint[]): string {
  const width = 800;
  const height = 480;
  const l = 70;
  const b = 60;
  const t = 50;
  const r = 190;
  const ymax = Math.max(1, ...points.map((p) => p.y)) * 1.15;
  const X = (v: number) => l + v * (width - l - r);
  const Y = (v: number) => height - b - (v / ymax) * (height - b - t);
  const parts: string[] = [`<text x="${width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">${esc(title)}</text>`];
  for (let i = 0; i <= 10; i += 2) {
    const v = i / 10;
    parts.push(`<line x1="${X(v)}" y1="${t}" x2="${X(v)}" y2="${height - b}" stroke="#eee"/>`);
    parts.push(`<text x="${X(v)}" y="${height - b + 18}" text-anchor="middle" font-size="11">${Math.round(v * 100)}%</text>`);
  }
  for (let i = 0; i <= 5; i++) {
    const v = (ymax / 5) * i;
    parts.push(`<line x1="${l}" y1="${Y(v)}" x2="${width - r}" y2="${Y(v)}" stroke="#eee"/>`);
    parts.push(`<text x="${l - 8}" y="${Y(v) + 4}" text-anchor="end" font-size="11">${v.toFixed(1)}</text>`);
  }
  parts.push(`<text x="${width / 2}" y="${height - 16}" text-anchor="middle" font-size="12">fraction of cold starts</text>`);
  parts.push(`<text x="18" y="${height / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 18 ${height / 2})">invocations per second</text>`);
  const sorted = [...points].sort((a, b2) => a.x - b2.x);
  parts.push(`<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="${sorted.map((p) => `${X(p.x)},${Y(p.y)}`).join(' ')}"/>`);
  for (const p of sorted) {
    parts.push(`<circle cx="${X(p.x)}" cy="${Y(p.y)}" r="5" fill="#1f77b4"/>`);
    parts.push(`<text x="${X(p.x) + 8}" y="${Y(p.y) - 8}" font-size="11">${esc(p.label)}</text>`);
    parts.push(`<text x="${X(p.x) + 8}" y="${Y(p.y) + 6}" font-size="10" fill="#555">${esc(p.note)}</text>`);
  }
  return svg(width, height, parts);
}

function svg(w: number, h: number, parts: string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif">\n<rect width="100%" height="100%" fill="white"/>\n${parts.join('\n')}\n</svg>\n`;
}
