// The 30-day usage chart: server-rendered SVG bars (no script, no chart library) with a text
// alternative — a summary as the image's accessible name and a table of every day beside it.
import type { DailyUsage } from '../types.js';
import { html, type Html } from './html.js';
import { formatBytes } from './format.js';

const W = 360;
const H = 150;
const TOP = 16;
const BOTTOM = 20;

/** A bar chart of bytes per day, oldest day on the left; `id` makes its element ids unique. */
export function usageChart(days: readonly DailyUsage[], id: string): Html {
  const max = Math.max(0, ...days.map((d) => d.bytes));
  const total = days.reduce((a, d) => a + d.bytes, 0);
  const n = Math.max(1, days.length);
  const slot = W / n;
  const barW = Math.max(1, slot * 0.8);
  const plotH = H - TOP - BOTTOM;
  const first = days[0]?.day ?? '';
  const last = days[days.length - 1]?.day ?? '';
  const busiest = days.reduce<DailyUsage | undefined>((a, d) => (!a || d.bytes > a.bytes ? d : a), undefined);
  const summary =
    `Bytes relayed per day from ${first} to ${last} (UTC): ${formatBytes(total)} in all` +
    (busiest && busiest.bytes > 0 ? `, most on ${busiest.day} (${formatBytes(busiest.bytes)}).` : '.');
  const bars = days.map((d, i) => {
    const h = max > 0 ? Math.max(d.bytes > 0 ? 1 : 0, Math.round((d.bytes / max) * plotH)) : 0;
    const x = (i * slot + (slot - barW) / 2).toFixed(1);
    return html`<rect class="bar" x="${x}" y="${TOP + plotH - h}" width="${barW.toFixed(1)}" height="${h}"
      ><title>${d.day}: ${formatBytes(d.bytes)}</title></rect
    >`;
  });
  return html`<figure class="chart">
      <svg viewBox="0 0 ${W} ${H}" role="img" aria-labelledby="${id}-title ${id}-desc" focusable="false">
        <title id="${id}-title">Usage, last ${days.length} days</title>
        <desc id="${id}-desc">${summary}</desc>
        <line class="axis" x1="0" y1="${TOP + plotH + 0.5}" x2="${W}" y2="${TOP + plotH + 0.5}" />
        <text class="label" x="2" y="11">${max > 0 ? `max ${formatBytes(max)}/day` : 'no traffic'}</text>
        ${bars}
        <text class="label" x="2" y="${H - 5}">${first}</text>
        <text class="label" x="${W - 2}" y="${H - 5}" text-anchor="end">${last}</text>
      </svg>
      <figcaption>${summary}</figcaption>
    </figure>
    <details>
      <summary>Usage by day (table)</summary>
      <div class="scroll">
        <table>
          <thead>
            <tr>
              <th scope="col">Day (UTC)</th>
              <th scope="col">Transferred</th>
            </tr>
          </thead>
          <tbody>
            ${[...days].reverse().map(
              (d) =>
                html`<tr>
                  <td>${d.day}</td>
                  <td data-bytes="${d.bytes}">${formatBytes(d.bytes)}</td>
                </tr>`,
            )}
          </tbody>
        </table>
      </div>
    </details>`;
}
