// `pigeon key …`: manage access keys in a local store (--data DIR) or on a remote server (--api URL).
import { parseByteSize, formatBytes } from '../control/text-input.js';
import { InvalidArgumentError } from 'commander';
import type { MethodName } from '../wire/shadowsocks-methods.js';
import { openStore } from '../control/sqlite-store.js';
import { defaultDataDir } from '../control/paths.js';
import { accessUri } from '../control/share.js';
import { createAccessKey } from '../control/keys.js';
import { publicHostGuess } from '../net/public-host.js';
import type { AccessKey, DataLimit, KeyStore, KeyUsage, LimitWindow } from '../control/types.js';
import { apiRequest, type ApiTarget } from './api-client.js';

export interface KeyView {
  id: string;
  name: string;
  method: MethodName;
  accessUrl: string;
  paused: boolean;
  expiresAt: number | null;
  dataLimit: DataLimit | null;
  usage: KeyUsage;
  lastSeen: number | null;
}

export interface NewKeyOptions {
  method?: MethodName;
  limit?: DataLimit;
  expiresAt?: number;
  /** First-packet disguise; the server's default when absent. */
  disguise?: boolean;
}

export interface KeyBackend {
  add(name: string, o: NewKeyOptions): Promise<KeyView>;
  list(): Promise<KeyView[]>;
  get(id: string): Promise<KeyView>;
  setPaused(id: string, paused: boolean): Promise<void>;
  remove(id: string): Promise<void>;
  close(): void;
}

export class NotFound extends Error {}

export class LocalKeys implements KeyBackend {
  private readonly store: KeyStore;
  constructor(dir = defaultDataDir()) {
    this.store = openStore(dir);
    // Keys made before the server's first start still need a host in their URIs.
    if (!this.store.settings().hostname) this.store.updateSettings({ hostname: publicHostGuess('0.0.0.0') });
  }
  private view(k: AccessKey): KeyView {
    const s = this.store.settings();
    return {
      id: k.id,
      name: k.name,
      method: k.method,
      accessUrl: accessUri(k, s),
      paused: k.paused,
      expiresAt: k.expiresAt,
      dataLimit: k.dataLimit ?? s.defaultDataLimit,
      usage: this.store.usage(k.id),
      lastSeen: k.lastSeen,
    };
  }
  private must(id: string): AccessKey {
    const k = this.store.getKey(id);
    if (!k) throw new NotFound(`access key ${id} not found`);
    return k;
  }
  async add(name: string, o: NewKeyOptions): Promise<KeyView> {
    return this.view(
      createAccessKey(this.store, {
        name,
        method: o.method,
        dataLimit: o.limit ?? null,
        expiresAt: o.expiresAt ?? null,
        disguise: o.disguise,
      }),
    );
  }
  async list(): Promise<KeyView[]> {
    return this.store.listKeys().map((k) => this.view(k));
  }
  async get(id: string): Promise<KeyView> {
    return this.view(this.must(id));
  }
  async setPaused(id: string, paused: boolean): Promise<void> {
    this.must(id);
    this.store.updateKey(id, { paused });
  }
  async remove(id: string): Promise<void> {
    if (!this.store.deleteKey(id)) throw new NotFound(`access key ${id} not found`);
  }
  close(): void {
    this.store.close();
  }
}

interface ApiKey {
  id: string;
  name: string;
  method: MethodName;
  accessUrl: string;
  paused: boolean;
  expiresAt?: number | null;
  dataLimit?: { bytes: number };
  dataLimitWindow?: LimitWindow;
  usage: KeyUsage;
  lastSeen?: number | null;
}

export class RemoteKeys implements KeyBackend {
  constructor(private readonly target: ApiTarget) {}
  private view(k: ApiKey): KeyView {
    return {
      id: k.id,
      name: k.name,
      method: k.method,
      accessUrl: k.accessUrl,
      paused: k.paused,
      expiresAt: k.expiresAt ?? null,
      dataLimit: k.dataLimit
        ? { bytes: k.dataLimit.bytes, window: k.dataLimitWindow ?? 'rolling-30d' }
        : null,
      usage: k.usage,
      lastSeen: k.lastSeen ?? null,
    };
  }
  private async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    try {
      return await apiRequest<T>(this.target, method, path, body);
    } catch (e) {
      if ((e as { status?: number }).status === 404) throw new NotFound((e as Error).message);
      throw e;
    }
  }
  async add(name: string, o: NewKeyOptions): Promise<KeyView> {
    const k = await this.call<ApiKey>('POST', '/access-keys', {
      name,
      ...(o.method ? { method: o.method } : {}),
      ...(o.expiresAt ? { expiresAt: o.expiresAt } : {}),
      ...(o.disguise !== undefined ? { disguise: o.disguise } : {}),
    });
    if (o.limit) {
      await this.call('PUT', `/access-keys/${k.id}/data-limit`, {
        limit: { bytes: o.limit.bytes, window: o.limit.window },
      });
    }
    return this.get(k.id);
  }
  async list(): Promise<KeyView[]> {
    return (await this.call<{ accessKeys: ApiKey[] }>('GET', '/access-keys')).accessKeys.map((k) =>
      this.view(k),
    );
  }
  async get(id: string): Promise<KeyView> {
    return this.view(await this.call<ApiKey>('GET', `/access-keys/${encodeURIComponent(id)}`));
  }
  async setPaused(id: string, paused: boolean): Promise<void> {
    await this.call('PUT', `/access-keys/${encodeURIComponent(id)}/paused`, { paused });
  }
  async remove(id: string): Promise<void> {
    await this.call('DELETE', `/access-keys/${encodeURIComponent(id)}`);
  }
  close(): void {}
}

// ---- parsing and formatting ----

/** "10GB", "500 MiB", "1.5tb", "1000000" → bytes. */
export function parseBytes(text: string): number {
  const r = parseByteSize(text);
  if ('error' in r) {
    throw new InvalidArgumentError(
      r.error === 'format'
        ? `expected a size like 10GB or 500MiB, got "${text}"`
        : `size too large: "${text}"`,
    );
  }
  return r.bytes;
}

/** "30d", "12h", "2w" from now, or an ISO date → ms since epoch. */
export function parseExpiry(text: string, now = Date.now()): number {
  const m = /^\s*(\d+)\s*([hdw])\s*$/i.exec(text);
  if (m) {
    const unit = { h: 3_600_000, d: 86_400_000, w: 604_800_000 }[m[2]!.toLowerCase() as 'h' | 'd' | 'w'];
    return now + Number(m[1]) * unit;
  }
  const t = Date.parse(text);
  if (Number.isNaN(t))
    throw new InvalidArgumentError(
      `expected a duration like 30d, 12h, 2w or a date like 2027-01-31, got "${text}"`,
    );
  if (t <= now) throw new InvalidArgumentError(`the expiry "${text}" is in the past`);
  return t;
}

export { formatBytes };

export function status(k: KeyView, now = Date.now()): string {
  if (k.paused) return 'paused';
  if (k.expiresAt !== null && k.expiresAt <= now) return 'expired';
  if (k.dataLimit) {
    const used = k.dataLimit.window === 'total' ? k.usage.total : k.usage.last30d;
    if (used >= k.dataLimit.bytes) return 'over limit';
  }
  return 'active';
}

function date(ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
}

export function keyTable(keys: KeyView[], now = Date.now()): string {
  const rows = [
    ['ID', 'NAME', 'METHOD', 'STATUS', 'USED (30d)', 'LIMIT', 'EXPIRES', 'LAST SEEN'],
    ...keys.map((k) => [
      k.id,
      k.name,
      k.method,
      status(k, now),
      formatBytes(k.usage.last30d),
      k.dataLimit
        ? `${formatBytes(k.dataLimit.bytes)}${k.dataLimit.window === 'total' ? ' total' : '/30d'}`
        : '-',
      date(k.expiresAt),
      date(k.lastSeen),
    ]),
  ];
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return (
    rows
      .map((r) =>
        r
          .map((cell, c) => cell.padEnd(widths[c]!))
          .join('  ')
          .trimEnd(),
      )
      .join('\n') + '\n'
  );
}
