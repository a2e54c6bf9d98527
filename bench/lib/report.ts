// Figures, medians, ratios to shadowsocks-libev, target verdicts, and the Markdown table and PNG chart.
import { Resvg } from '@resvg/resvg-js';
import { BASELINES, LABEL, type SystemName } from './systems.js';

export type Kind = 'throughput' | 'parallel' | 'latency' | 'cps' | 'memory' | 'udp' | 'cpu';
export const KINDS: Kind[] = ['throughput', 'parallel', 'latency', 'cps', 'memory', 'udp', 'cpu'];

export interface Figure {
  id: string;
  kind: Kind;
  title: string;
  unit: string;
  better: 'higher' | 'lower';
  /** Pigeon's target as a ratio to libev (issue 6), or null where the issue sets none. */
  libevTarget: number | null;
  decimals: number;
  /** The cipher each system ran. */
  ciphers: Partial<Record<SystemName, string>>;
  samples: Partial<Record<SystemName, number[]>>;
  /** Raw per-sample details (iperf3 summaries, UDP steps, RSS readings…). */
  details: Partial<Record<SystemName, unknown[]>>;
  errors: { system: SystemName; round: number; error: string }[];
}

export function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (p in 0..100). */
export function percentile(xs: number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export interface Verdict {
  pigeon: number | null;
  libev: number | null;
  v2ray: number | null;
  direct: number | null;
  ratioLibev: number | null;
  ratioV2ray: number | null;
  libevMet: boolean | null;
  v2rayMet: boolean | null;
}

export function verdict(f: Figure): Verdict {
  const med = (s: SystemName): number | null => median(f.samples[s] ?? []);
  const pigeon = med('pigeon');
  const libev = med('libev');
  const v2ray = med('v2ray');
  const ratio = (a: number | null, b: number | null): number | null =>
    a === null || b === null || b === 0 ? null : a / b;
  const ratioLibev = ratio(pigeon, libev);
  const ratioV2ray = ratio(pigeon, v2ray);
  const hi = f.better === 'higher';
  return {
    pigeon,
    libev,
    v2ray,
    direct: med('direct'),
    ratioLibev,
    ratioV2ray,
    libevMet:
      f.libevTarget === null || ratioLibev === null
        ? null
        : hi
          ? ratioLibev >= f.libevTarget
          : ratioLibev <= f.libevTarget,
    v2rayMet: pigeon === null || v2ray === null ? null : hi ? pigeon > v2ray : pigeon < v2ray,
  };
}

function fmt(x: number | null, d: number): string {
  return x === null ? 'no data' : x.toFixed(d);
}
function fmtRatio(x: number | null): string {
  return x === null ? 'no data' : `${x.toFixed(2)}×`;
}
function targetText(f: Figure): string {
  if (f.libevTarget === null) return 'none vs libev';
  return `${f.better === 'higher' ? '≥' : '≤'} ${f.libevTarget.toFixed(2)}× libev`;
}
function met(x: boolean | null): string {
  return x === null ? 'no data' : x ? 'met' : '**MISSED**';
}

export interface Meta {
  command: string;
  date: string;
  mode: string;
  rounds: number;
  roundsDone: number;
  order: string;
  machine: Record<string, string>;
  settings: Record<string, string>;
  durationS: number;
  notes: string[];
}

export function markdown(meta: Meta, figures: Figure[]): string {
  const L: string[] = [];
  L.push('# Pigeon vs shadowsocks-libev vs v2ray', '');
  L.push(
    'Same machine, same run, same cipher, loopback only; rounds interleaved (every figure measures each system',
    'in turn, the starting system rotating per round); each figure is the median over rounds. Ratio = Pigeon ÷',
    'libev (for v2ray rows, v2ray ÷ libev). Targets (issue 6): throughput and connections/s ≥ 1.00× libev,',
    'latency and memory per idle connection ≤ 1.00× libev, and ahead of v2ray on every figure. A target not',
    'met says **MISSED**.',
    '',
  );
  L.push(`- Command: \`${meta.command}\``);
  L.push(`- Date: ${meta.date}; duration ${meta.durationS.toFixed(0)} s; mode: ${meta.mode}`);
  L.push(`- Rounds: ${meta.roundsDone} of ${meta.rounds} planned; order: ${meta.order}`);
  L.push(
    `- Machine: ${Object.entries(meta.machine)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}`,
  );
  L.push(
    `- Settings: ${Object.entries(meta.settings)
      .map(([k, v]) => `${k} ${v}`)
      .join('; ')}`,
  );
  for (const n of meta.notes) L.push(`- ${n}`);
  L.push('', '## Summary', '');
  L.push(
    '| figure | unit | Pigeon | libev | v2ray | Pigeon ÷ libev | target | vs libev | Pigeon ÷ v2ray | ahead of v2ray |',
  );
  L.push('|---|---|---:|---:|---:|---:|---|---|---:|---|');
  for (const f of figures) {
    const v = verdict(f);
    const d = f.decimals;
    L.push(
      `| ${f.title} | ${f.unit} | ${fmt(v.pigeon, d)} | ${fmt(v.libev, d)} | ${fmt(v.v2ray, d)} | ${fmtRatio(v.ratioLibev)} | ${targetText(f)} | ${f.libevTarget === null ? '—' : met(v.libevMet)} | ${fmtRatio(v.ratioV2ray)} | ${met(v.v2rayMet)} |`,
    );
  }
  L.push('', '![ratios to libev](bench.png)', '', '## Figures', '');
  for (const f of figures) {
    const v = verdict(f);
    const d = f.decimals;
    L.push(`### ${f.title} (${f.unit}, ${f.better} is better)`, '');
    L.push('| system | cipher | median | ratio to libev | target | met? | samples (per round) |');
    L.push('|---|---|---:|---:|---|---|---|');
    const systems: SystemName[] = ['pigeon', 'libev', 'v2ray', 'direct', 'node-relay'];
    for (const s of systems) {
      const xs = f.samples[s];
      if (!xs && BASELINES.includes(s)) continue;
      const m = median(xs ?? []);
      const r = m === null || v.libev === null || v.libev === 0 ? null : m / v.libev;
      let target = '';
      let ok = '';
      if (s === 'pigeon') {
        target = targetText(f);
        ok = f.libevTarget === null ? '—' : met(v.libevMet);
      } else if (s === 'v2ray') {
        target = `Pigeon ahead (Pigeon ÷ v2ray ${fmtRatio(v.ratioV2ray)})`;
        ok = met(v.v2rayMet);
      } else if (s === 'direct') {
        target = 'baseline: the harness without a tunnel';
      } else if (s === 'node-relay') {
        target = 'baseline: the floor of a Node.js design (no encryption)';
      }
      const samples = (xs ?? []).map((x) => x.toFixed(d)).join(', ') || '—';
      L.push(
        `| ${LABEL[s]} | ${f.ciphers[s] ?? '-'} | ${fmt(m, d)} | ${fmtRatio(r)} | ${target} | ${ok} | ${samples} |`,
      );
    }
    if (f.errors.length) {
      L.push('', `Failed samples (${f.errors.length}):`);
      for (const e of f.errors.slice(0, 10))
        L.push(`- round ${e.round}, ${LABEL[e.system]}: ${e.error.split('\n')[0]!.slice(0, 200)}`);
    }
    L.push('');
  }
  return L.join('\n');
}

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** Horizontal bars of Pigeon ÷ libev and v2ray ÷ libev per figure, log2 scale, diverging from 1. */
export function chartSvg(meta: Meta, figures: Figure[]): string {
  const W = 1060;
  const left = 480;
  const right = W - 40;
  const top = 70;
  const rowH = 44;
  const H = top + figures.length * rowH + 60;
  const LO = -4;
  const HI = 4;
  const x = (r: number): number => {
    const l = Math.min(HI, Math.max(LO, Math.log2(r)));
    return left + ((l - LO) / (HI - LO)) * (right - left);
  };
  const o: string[] = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">`);
  o.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  o.push(`<g font-family="DejaVu Sans, Liberation Sans, Arial, sans-serif" font-size="13" fill="#222">`);
  o.push(
    `<text x="20" y="26" font-size="17" font-weight="bold">Ratio to shadowsocks-libev (= 1, log scale): Pigeon and v2ray</text>`,
  );
  o.push(
    `<text x="20" y="48" font-size="12" fill="#555">${esc(`${meta.date} · ${meta.roundsDone} round(s) · medians · ${meta.mode}`)} · green: Pigeon meets its target, red: misses it</text>`,
  );
  for (let t = LO; t <= HI; t++) {
    const gx = left + ((t - LO) / (HI - LO)) * (right - left);
    o.push(
      `<line x1="${gx}" y1="${top - 8}" x2="${gx}" y2="${H - 45}" stroke="${t === 0 ? '#000' : '#ddd'}" stroke-width="${t === 0 ? 1.5 : 1}"/>`,
    );
    const label = t >= 0 ? `${2 ** t}×` : `1/${2 ** -t}×`;
    o.push(`<text x="${gx}" y="${H - 28}" text-anchor="middle" fill="#555">${label}</text>`);
  }
  figures.forEach((f, i) => {
    const v = verdict(f);
    const y = top + i * rowH;
    const arrow = f.better === 'higher' ? '↑ better' : '↓ better';
    o.push(`<text x="${left - 10}" y="${y + 17}" text-anchor="end">${esc(f.title)}</text>`);
    o.push(
      `<text x="${left - 10}" y="${y + 32}" text-anchor="end" font-size="11" fill="#777">${arrow}</text>`,
    );
    const bar = (r: number | null, yy: number, color: string, name: string): void => {
      if (r === null || !(r > 0)) {
        const why = r === null ? 'no data' : 'n/a (not positive)';
        o.push(`<text x="${x(1) + 6}" y="${yy + 11}" font-size="11" fill="#999">${name}: ${why}</text>`);
        return;
      }
      const a = Math.min(x(1), x(r));
      const b = Math.max(x(1), x(r));
      o.push(`<rect x="${a}" y="${yy}" width="${Math.max(1, b - a)}" height="14" fill="${color}"/>`);
      const label = `${name} ${r.toFixed(2)}×${r < 2 ** LO || r > 2 ** HI ? ' (off scale)' : ''}`;
      const width = label.length * 6.5;
      // The value goes past the bar's end, or on the other side of the 1× line when that would not fit.
      const outside = r >= 1 ? b + 5 + width < W - 5 : a - 5 - width > left;
      const toRight = r >= 1 ? outside : !outside;
      const tx = toRight ? b + 5 : a - 5;
      const anchor = toRight ? 'start' : 'end';
      o.push(`<text x="${tx}" y="${yy + 11}" font-size="11" text-anchor="${anchor}">${esc(label)}</text>`);
    };
    const ok = f.libevTarget === null ? v.v2rayMet : v.libevMet === true && v.v2rayMet === true;
    bar(v.ratioLibev, y + 4, ok === null ? '#4a78b5' : ok ? '#2e9e4f' : '#d0413a', 'Pigeon');
    const v2 = v.v2ray === null || v.libev === null || v.libev === 0 ? null : v.v2ray / v.libev;
    bar(v2, y + 21, '#a8a8a8', 'v2ray');
  });
  o.push('</g></svg>');
  return o.join('\n');
}

export function chartPng(svg: string): Buffer {
  const r = new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } });
  return r.render().asPng();
}
