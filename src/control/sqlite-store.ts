// The embedded key store: SQLite (better-sqlite3) in WAL mode, with versioned migrations. Keys and
// settings are written at once (a kill -9 loses none); usage is counted in memory on the hot path and
// written every couple of seconds and on close, so a crash loses at most that much usage.
import Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, randomInt, randomUUID } from 'node:crypto';
import { methodSpec, isMethodName, type MethodName } from '../wire/shadowsocks-methods.js';
import type { AccessKey, DataLimit, KeyPatch, KeyStore, KeyUsage, NewKey, ServerSettings } from './types.js';

export class StoreError extends Error {
  override name = 'StoreError';
}

type Db = Database.Database;

/** Schema history. Each step runs once, in its own transaction, and bumps PRAGMA user_version. */
export const MIGRATIONS: ReadonlyArray<(db: Db) => void> = [
  (db) =>
    db.exec(`
      CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE access_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        secret TEXT NOT NULL,
        method TEXT NOT NULL,
        port INTEGER NOT NULL,
        token TEXT NOT NULL UNIQUE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        limit_bytes INTEGER,
        limit_window TEXT,
        paused INTEGER NOT NULL DEFAULT 0,
        last_seen INTEGER,
        bytes_total INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE usage_daily (
        key_id TEXT NOT NULL REFERENCES access_keys(id) ON DELETE CASCADE,
        day INTEGER NOT NULL,
        bytes INTEGER NOT NULL,
        PRIMARY KEY (key_id, day)
      );
      CREATE TABLE key_sequence (next INTEGER NOT NULL);
      INSERT INTO key_sequence (next) VALUES (1);
    `),
  // 2: usage queries by day across all keys (the 30-day window and pruning).
  (db) => db.exec('CREATE INDEX usage_daily_day ON usage_daily(day);'),
];

const DAY_MS = 86_400_000;
const dayOf = (ms: number) => Math.floor(ms / DAY_MS);

interface KeyRow {
  id: string;
  name: string;
  secret: string;
  method: string;
  port: number;
  token: string;
  created_at: number;
  expires_at: number | null;
  limit_bytes: number | null;
  limit_window: string | null;
  paused: number;
  last_seen: number | null;
}

function toKey(r: KeyRow): AccessKey {
  const dataLimit: DataLimit | null =
    r.limit_bytes !== null && (r.limit_window === 'rolling-30d' || r.limit_window === 'total')
      ? { bytes: r.limit_bytes, window: r.limit_window }
      : null;
  return {
    id: r.id,
    name: r.name,
    secret: r.secret,
    method: r.method as MethodName,
    port: r.port,
    token: r.token,
    createdAt: r.created_at,
    expiresAt: r.expires_at,
    dataLimit,
    paused: r.paused !== 0,
    lastSeen: r.last_seen,
  };
}

function checkLimit(l: DataLimit | null | undefined): void {
  if (!l) return;
  if (!Number.isSafeInteger(l.bytes) || l.bytes < 0)
    throw new StoreError('data limit must be a whole number of bytes ≥ 0');
  if (l.window !== 'rolling-30d' && l.window !== 'total')
    throw new StoreError('data limit window must be rolling-30d or total');
}

function checkName(name: string): void {
  if (name.length > 100) throw new StoreError('key name must be at most 100 characters');
}

export interface StoreOptions {
  flushIntervalMs?: number;
  now?: () => number;
}

export function openStore(dir: string, opts: StoreOptions = {}): SqliteKeyStore {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return new SqliteKeyStore(join(dir, 'pigeon.db'), opts);
}

export class SqliteKeyStore implements KeyStore {
  private readonly db: Db;
  private readonly now: () => number;
  private readonly pending = new Map<string, Map<number, number>>(); // key → day → bytes
  private readonly timer: NodeJS.Timeout;
  private local = 0;
  private closed = false;
  private readonly q;

  constructor(file: string, opts: StoreOptions = {}) {
    const fresh = !existsSync(file);
    this.db = new Database(file);
    if (fresh) chmodSync(file, 0o600);
    this.now = opts.now ?? Date.now;
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.pragma('busy_timeout = 5000');
    this.migrate();
    this.q = {
      all: this.db.prepare<[], KeyRow>('SELECT * FROM access_keys ORDER BY CAST(id AS INTEGER)'),
      byId: this.db.prepare<[string], KeyRow>('SELECT * FROM access_keys WHERE id = ?'),
      byToken: this.db.prepare<[string], KeyRow>('SELECT * FROM access_keys WHERE token = ?'),
      nextId: this.db.prepare('UPDATE key_sequence SET next = next + 1 RETURNING next - 1 AS id'),
      insert: this.db.prepare(
        `INSERT INTO access_keys (id, name, secret, method, port, token, created_at, expires_at, limit_bytes, limit_window, paused)
         VALUES (@id, @name, @secret, @method, @port, @token, @created_at, @expires_at, @limit_bytes, @limit_window, 0)`,
      ),
      update: this.db.prepare(
        `UPDATE access_keys SET name = @name, expires_at = @expires_at, limit_bytes = @limit_bytes,
         limit_window = @limit_window, paused = @paused, last_seen = @last_seen WHERE id = @id`,
      ),
      del: this.db.prepare<[string]>('DELETE FROM access_keys WHERE id = ?'),
      addDaily: this.db.prepare(
        `INSERT INTO usage_daily (key_id, day, bytes) SELECT @key, @day, @bytes WHERE EXISTS (SELECT 1 FROM access_keys WHERE id = @key)
         ON CONFLICT (key_id, day) DO UPDATE SET bytes = bytes + excluded.bytes`,
      ),
      addTotal: this.db.prepare('UPDATE access_keys SET bytes_total = bytes_total + @bytes WHERE id = @key'),
      prune: this.db.prepare<[number]>('DELETE FROM usage_daily WHERE day < ?'),
      usage: this.db.prepare<[number, string], { total: number; last30d: number }>(
        `SELECT k.bytes_total AS total, COALESCE((SELECT SUM(bytes) FROM usage_daily WHERE key_id = k.id AND day >= ?), 0) AS last30d
         FROM access_keys k WHERE k.id = ?`,
      ),
      usageAll: this.db.prepare<[number], { id: string; total: number; last30d: number }>(
        `SELECT k.id, k.bytes_total AS total, COALESCE(SUM(u.bytes), 0) AS last30d
         FROM access_keys k LEFT JOIN usage_daily u ON u.key_id = k.id AND u.day >= ? GROUP BY k.id`,
      ),
      getSetting: this.db.prepare<[string], { value: string }>('SELECT value FROM settings WHERE name = ?'),
      setSetting: this.db.prepare(
        'INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value',
      ),
    };
    this.initSettings();
    this.timer = setInterval(() => this.flush(), opts.flushIntervalMs ?? 2000);
    this.timer.unref();
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > MIGRATIONS.length) {
      throw new StoreError(
        `database schema version ${version} is newer than this Pigeon (${MIGRATIONS.length}); upgrade Pigeon`,
      );
    }
    for (let v = version; v < MIGRATIONS.length; v++) {
      this.db.transaction(() => {
        MIGRATIONS[v]!(this.db);
        this.db.pragma(`user_version = ${v + 1}`);
      })();
    }
  }

  private initSettings(): void {
    if (this.q.getSetting.get('settings')) return;
    const s: ServerSettings = {
      serverId: randomUUID(),
      name: 'Pigeon',
      createdAt: this.now(),
      hostname: '',
      portForNewKeys: randomInt(20_000, 60_000),
      defaultMethod: 'chacha20-ietf-poly1305',
      defaultDataLimit: null,
      identityPsks: {},
    };
    this.q.setSetting.run('settings', JSON.stringify(s));
  }

  listKeys(): AccessKey[] {
    return this.q.all.all().map(toKey);
  }

  getKey(id: string): AccessKey | undefined {
    const r = this.q.byId.get(id);
    return r && toKey(r);
  }

  getKeyByToken(token: string): AccessKey | undefined {
    const r = this.q.byToken.get(token);
    return r && toKey(r);
  }

  createKey(input: NewKey): AccessKey {
    if (!isMethodName(input.method)) throw new StoreError(`unknown method ${String(input.method)}`);
    const spec = methodSpec(input.method);
    if (!Number.isInteger(input.port) || input.port < 1 || input.port > 65535)
      throw new StoreError('port must be 1..65535');
    checkLimit(input.dataLimit);
    let secret = input.secret;
    if (secret === undefined) {
      secret =
        spec.edition === '2022'
          ? randomBytes(spec.keySize).toString('base64')
          : randomBytes(16).toString('base64url');
    } else if (spec.edition === '2022' && Buffer.from(secret, 'base64').length !== spec.keySize) {
      throw new StoreError(`${spec.name} needs a base64 key of ${spec.keySize} bytes`);
    } else if (secret.length === 0) {
      throw new StoreError('the password must not be empty');
    }
    const id = this.db.transaction(() => {
      const { id } = this.q.nextId.get() as { id: number };
      const name = input.name ?? `Key ${id}`;
      checkName(name);
      this.q.insert.run({
        id: String(id),
        name,
        secret,
        method: input.method,
        port: input.port,
        token: randomBytes(18).toString('base64url'),
        created_at: this.now(),
        expires_at: input.expiresAt ?? null,
        limit_bytes: input.dataLimit?.bytes ?? null,
        limit_window: input.dataLimit?.window ?? null,
      });
      return String(id);
    })();
    this.local++;
    return this.getKey(id)!;
  }

  updateKey(id: string, patch: KeyPatch): AccessKey | undefined {
    const k = this.getKey(id);
    if (!k) return undefined;
    if (patch.name !== undefined) checkName(patch.name);
    checkLimit(patch.dataLimit);
    const next = { ...k, ...patch };
    this.q.update.run({
      id,
      name: next.name,
      expires_at: next.expiresAt,
      limit_bytes: next.dataLimit?.bytes ?? null,
      limit_window: next.dataLimit?.window ?? null,
      paused: next.paused ? 1 : 0,
      last_seen: next.lastSeen,
    });
    this.local++;
    return this.getKey(id);
  }

  deleteKey(id: string): boolean {
    const n = this.q.del.run(id).changes;
    this.pending.delete(id);
    if (n) this.local++;
    return n > 0;
  }

  addUsage(id: string, bytes: number, at = this.now()): void {
    let days = this.pending.get(id);
    if (!days) this.pending.set(id, (days = new Map()));
    const d = dayOf(at);
    days.set(d, (days.get(d) ?? 0) + bytes);
  }

  private pendingUsage(id: string, fromDay: number): KeyUsage {
    let total = 0;
    let last30d = 0;
    for (const [day, b] of this.pending.get(id) ?? []) {
      total += b;
      if (day >= fromDay) last30d += b;
    }
    return { total, last30d };
  }

  usage(id: string, now = this.now()): KeyUsage {
    const from = dayOf(now) - 29;
    const stored = this.q.usage.get(from, id) ?? { total: 0, last30d: 0 };
    const p = this.pendingUsage(id, from);
    return { total: stored.total + p.total, last30d: stored.last30d + p.last30d };
  }

  usageAll(now = this.now()): Map<string, KeyUsage> {
    const from = dayOf(now) - 29;
    const out = new Map<string, KeyUsage>();
    for (const r of this.q.usageAll.all(from)) {
      const p = this.pendingUsage(r.id, from);
      out.set(r.id, { total: r.total + p.total, last30d: r.last30d + p.last30d });
    }
    return out;
  }

  settings(): ServerSettings {
    return JSON.parse(this.q.getSetting.get('settings')!.value) as ServerSettings;
  }

  updateSettings(patch: Partial<Omit<ServerSettings, 'serverId' | 'createdAt'>>): ServerSettings {
    if (
      patch.portForNewKeys !== undefined &&
      (!Number.isInteger(patch.portForNewKeys) || patch.portForNewKeys < 1 || patch.portForNewKeys > 65535)
    ) {
      throw new StoreError('port must be 1..65535');
    }
    if (patch.defaultMethod !== undefined && !isMethodName(patch.defaultMethod))
      throw new StoreError('unknown method');
    checkLimit(patch.defaultDataLimit);
    const next = this.db.transaction(() => {
      const s = { ...this.settings(), ...patch };
      this.q.setSetting.run('settings', JSON.stringify(s));
      return s;
    })();
    this.local++;
    return next;
  }

  changeCounter(): number {
    const dataVersion = this.db.pragma('data_version', { simple: true }) as number;
    return dataVersion * 1_000_000 + this.local;
  }

  flush(): void {
    if (this.closed || this.pending.size === 0) return;
    const batch = [...this.pending];
    this.pending.clear();
    const oldest = dayOf(this.now()) - 31;
    this.db.transaction(() => {
      for (const [key, days] of batch) {
        let sum = 0;
        for (const [day, bytes] of days) {
          this.q.addDaily.run({ key, day, bytes });
          sum += bytes;
        }
        this.q.addTotal.run({ key, bytes: sum });
      }
      this.q.prune.run(oldest); // totals keep the old days; the daily rows serve the 30-day window
    })();
  }

  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    clearInterval(this.timer);
    this.db.close();
  }
}
