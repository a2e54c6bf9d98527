// What people type for the control plane — data sizes and host names — read the same way by the CLI,
// the management API and the admin page, and sizes shown back the same way.
import { isIP } from 'node:net';

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** "10GB", "500 MiB", "1.5tb", "1000000" → bytes (10GB = 10 × 10⁹; GiB for powers of two). */
export function parseByteSize(text: string): { bytes: number } | { error: 'format' | 'too-large' } {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$/i.exec(text);
  if (!m) return { error: 'format' };
  const n = Math.round(Number(m[1]) * UNITS[(m[2] ?? 'b').toLowerCase()]!);
  return Number.isSafeInteger(n) ? { bytes: n } : { error: 'too-large' };
}

/** A size for people: 1.50 GB, 734 MB, 12 B. */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['KB', 'MB', 'GB', 'TB', 'PB'];
  let v = n;
  let i = -1;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

const DNS_NAME =
  /^(?=.{1,253}$)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

/** A host name (RFC 1123 labels) or an IP address; IPv6 may come in brackets. Undefined if neither. */
export function normalizeHostname(text: string): string | undefined {
  const h = text.trim();
  const bare = h.replace(/^\[(.*)\]$/, '$1');
  if (isIP(bare)) return bare;
  if (bare === h && DNS_NAME.test(h) && !/^[0-9.]+$/.test(h)) return h.replace(/\.$/, '');
  return undefined;
}
