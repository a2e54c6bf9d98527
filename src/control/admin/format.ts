// What the admin page reads from forms and shows to people: sizes, dates, durations, key status.
// The same units as `pigeon key add --limit` (10GB = 10 × 10⁹ bytes; GiB for powers of two).
import type { AccessKey, DataLimit, KeyUsage, ServerSettings } from '../types.js';
import { formatBytes, parseByteSize } from '../text-input.js';

/** A form's input that the host should correct; the message says how. */
export class FormError extends Error {
  override name = 'FormError';
}

/** "10GB", "500 MiB", "1.5tb", "1000000" → bytes. */
export function parseSize(text: string, field: string): number {
  const r = parseByteSize(text);
  if ('error' in r) {
    throw new FormError(
      r.error === 'format'
        ? `${field}: expected a size like 20GB or 500MB, not “${text}”`
        : `${field}: “${text}” is too large`,
    );
  }
  return r.bytes;
}

export { formatBytes };

/** A size as the limit field shows it back: whole GB or MB when exact, else bytes. */
export function sizeInput(n: number): string {
  for (const [u, f] of [
    ['TB', 1e12],
    ['GB', 1e9],
    ['MB', 1e6],
    ['KB', 1e3],
  ] as const) {
    if (n >= f && n % f === 0) return `${n / f}${u}`;
  }
  return String(n);
}

/** YYYY-MM-DD (a date input's value) → 00:00 UTC of that day, as `pigeon key add --expires` reads it. */
export function parseDate(text: string, field: string): number {
  const m = /^\s*(\d{4})-(\d{2})-(\d{2})\s*$/.exec(text);
  const t = m ? Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : NaN;
  if (!m || Number.isNaN(t) || new Date(t).toISOString().slice(0, 10) !== text.trim())
    throw new FormError(`${field}: expected a date like 2027-01-31, not “${text}”`);
  return t;
}

/** ms → "2027-01-31 14:05 UTC" ("never" for null). */
export function formatTime(ms: number | null): string {
  if (ms === null) return 'never';
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/** ms → YYYY-MM-DD (UTC), a date input's value. */
export function dateInput(ms: number | null): string {
  return ms === null ? '' : new Date(ms).toISOString().slice(0, 10);
}

/** 93784000 → "1 d 2 h 3 min". */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86_400);
  const h = Math.floor((s % 86_400) / 3600);
  const min = Math.floor((s % 3600) / 60);
  if (d > 0) return `${d} d ${h} h ${min} min`;
  if (h > 0) return `${h} h ${min} min`;
  if (min > 0) return `${min} min`;
  return `${s} s`;
}

export type KeyStatus = 'active' | 'paused' | 'expired' | 'over limit';

/** The limit that applies to a key: its own, else the server's default. */
export function effectiveLimit(k: AccessKey, s: ServerSettings): DataLimit | null {
  return k.dataLimit ?? s.defaultDataLimit;
}

/** Bytes counted against a limit of this window. */
export function usedIn(limit: DataLimit | null, u: KeyUsage): number {
  return limit?.window === 'total' ? u.total : u.last30d;
}

/** Why a key does or does not work now (the server's own rules: src/control/user-source.ts). */
export function keyStatus(k: AccessKey, s: ServerSettings, u: KeyUsage, now: number): KeyStatus {
  if (k.paused) return 'paused';
  if (k.expiresAt !== null && k.expiresAt <= now) return 'expired';
  const limit = effectiveLimit(k, s);
  if (limit && usedIn(limit, u) >= limit.bytes) return 'over limit';
  return 'active';
}

/** "20 GB per 30 days" / "5 GB in total". */
export function describeLimit(l: DataLimit): string {
  return `${formatBytes(l.bytes)} ${l.window === 'total' ? 'in total' : 'per 30 days'}`;
}
