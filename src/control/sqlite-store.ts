// The embedded key store: SQLite (better-sqlite3) in WAL mode, with versioned migrations. Keys and
// settings are written at once (a kill -9 loses none); usage is counted in memory on the hot path and
// written every couple of seconds and on close, so a crash loses at most that much usage.
// A CLI process and the server process may use the same file at once: writes that read first take
// the write lock up front (BEGIN IMMEDIATE), and changeCounter() notices the other's commits.
import Database from 'better-sqlite3';
import { chmodSync, closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes, randomUUID } from 'node:crypto';
import { randomServicePort } from '../net/listen.js';
import { isMethodName, type MethodName } from '../wire/shadowsocks-methods.js';
import type {
  AccessKey,
  DailyUsage,
  DataLimit,
  KeyPatch,
  KeyStore,
  KeyUsage,
  NewKey,
  ServerSettings,
} from './types.js';
import {
  StoreError,
  checkLimit,
  checkName,
  checkPort,
  checkPrefix,
  checkSecret,
  checkSettingsPatch,
  checkTime,
  newSecret,
} from './key-rules.js';

export { StoreError };

type Db = Database.Database;

/**
 * Schema history, oldest first. Step i takes a database at user_version i to i + 1; openStore runs
 * each missing step once, in its own transaction, and bumps PRAGMA user_version with it.
 */
export const MIGRATIONS: ReadonlyArray<(db: Db) => void> = [
  // 1: settings (one JSON row), keys with their all-time usage, usage per UTC day, the id sequence.
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
  // 2: usage rows by day across all keys (pruning days that left the 30-day window, on every flush).
  (db) => db.exec('CREATE INDEX usage_daily_day ON usage_daily(day);'),
  // 3: each key's first-packet disguise prefix (null: none; keys from before stay undisguised).
  (db) => db.exec('ALTER TABLE access_keys ADD COLUMN prefix TEXT;'),
];

const DAY_MS = 86_400_000;
/** Days since the epoch, UTC. */
const dayOf = (ms: number) => Math.floor(ms / DAY_MS);
/** Daily rows older than this many days are dropped on flush (their bytes stay in the totals). */
const KEEP_DAYS = 31;

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
  prefix: string | null;
}

/** The one place a row becomes an AccessKey. */
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
    prefix: r.prefix ?? null,
  };
}

/** Options of openStore. */
export interface StoreOptions {
  /** How often buffered usage is written; default 2000 ms. 0 = only on flush() and close(). */
  flushIntervalMs?: number;
  /** The clock (ms since the epoch); tests move it to place usage on other days. */
  now?: () => number;
  /** Called when a periodic flush fails (the usage stays buffered); default: a process warning. */
  onFlushError?: (err: Error) => void;
}

/** Opens (creating if needed) the store in `dir`: `dir` mode 0700, `dir/pigeon.db` mode 0600. */
export function openStore(dir: string, opts: StoreOptions = {}): SqliteKeyStore {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'pigeon.db');
  try {
    // Create the file ourselves so that it (and SQLite's -wal and -shm, which copy its mode) is 0600.
    closeSync(openSync(file, 'wx', 0o600));
    chmodSync(file, 0o600); // whatever the umask
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return new SqliteKeyStore(file, opts);
}

/** The KeyStore over one SQLite file; one instance is one connection. */
const SLEEP = new Int32Array(new SharedArrayBuffer(4));

/** Runs f again while SQLite says SQLITE_BUSY, for at most 10 s (the store is opened synchronously). */
function retryWhileBusy<T>(f: () => T): T {
  const deadline = Date.now() + 10_000;
  for (let attempt = 1; ; attempt++) {
    try {
      return f();
    } catch (e) {
      const busy = (e as { code?: unknown }).code === 'SQLITE_BUSY';
      if (!busy || attempt >= 200 || Date.now() > deadline) throw e;
      Atomics.wait(SLEEP, 0, 0, 5 + Math.floor(Math.random() * 45));
    }
  }
}

export class SqliteKeyStore implements KeyStore {
  private readonly db: Db;
  private readonly now: () => number;
  /** Usage not yet written: key → day → bytes. */
  private readonly pending = new Map<string, Map<number, number>>();
  private readonly timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** changeCounter(): bumped by our own changes and whenever data_version shows another's commit. */
  private changes = 0;
  private lastDataVersion: number;
  private readonly q;

  constructor(file: string, opts: StoreOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.db = new Database(file);
    try {
      this.db.pragma('busy_timeout = 5000');
      // Switching a fresh file to WAL needs an exclusive lock, and SQLite answers SQLITE_BUSY at once,
      // without waiting in its busy handler, when that could deadlock with another process opening
      // the same fresh store (seen in CI with four at once). Retried, bounded in time.
      retryWhileBusy(() => this.db.pragma('journal_mode = WAL'));
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      retryWhileBusy(() => this.migrate());
      this.q = this.prepare();
      this.initSettings();
      this.lastDataVersion = this.q.dataVersion.get()!;
    } catch (err) {
      this.db.close();
      throw err;
    }
    const every = opts.flushIntervalMs ?? 2000;
    if (every > 0) {
      const onError = opts.onFlushError ?? ((e: Error) => process.emitWarning(e, 'PigeonStoreWarning'));
      this.timer = setInterval(() => {
        try {
          this.flush();
        } catch (err) {
          onError(err as Error);
        }
      }, every);
      this.timer.unref();
    }
  }

  private migrate(): void {
    const version = () => this.db.pragma('user_version', { simple: true }) as number;
    const check = (v: number) => {
      if (v > MIGRATIONS.length)
        throw new StoreError(
          `database schema version ${v} is newer than this Pigeon (${MIGRATIONS.length}); upgrade Pigeon`,
        );
    };
    check(version());
    while (version() < MIGRATIONS.length) {
      // Another process may be migrating the same file: decide again under the write lock.
      this.db
        .transaction(() => {
          const v = version();
          check(v);
          if (v === MIGRATIONS.length) return;
          MIGRATIONS[v]!(this.db);
          this.db.pragma(`user_version = ${v + 1}`);
        })
        .immediate();
    }
  }

  private prepare() {
    const db = this.db;
    return {
      all: db.prepare<[], KeyRow>('SELECT * FROM access_keys ORDER BY CAST(id AS INTEGER)'),
      byId: db.prepare<[string], KeyRow>('SELECT * FROM access_keys WHERE id = ?'),
      byToken: db.prepare<[string], KeyRow>('SELECT * FROM access_keys WHERE token = ?'),
      nextId: db.prepare<[], { id: number }>(
        'UPDATE key_sequence SET next = next + 1 RETURNING next - 1 AS id',
      ),
      insert: db.prepare<[Omit<KeyRow, 'paused' | 'last_seen'>]>(
        `INSERT INTO access_keys (id, name, secret, method, port, token, created_at, expires_at, limit_bytes, limit_window, prefix)
         VALUES (@id, @name, @secret, @method, @port, @token, @created_at, @expires_at, @limit_bytes, @limit_window, @prefix)`,
      ),
      // Only the patched columns are written, so concurrent patches of different fields both stick.
      update: db.prepare<[Record<string, string | number | null>]>(
        `UPDATE access_keys SET
           name = iif(@set_name, @name, name),
           expires_at = iif(@set_expires, @expires_at, expires_at),
           limit_bytes = iif(@set_limit, @limit_bytes, limit_bytes),
           limit_window = iif(@set_limit, @limit_window, limit_window),
           paused = iif(@set_paused, @paused, paused),
           last_seen = iif(@set_seen, @last_seen, last_seen),
           prefix = iif(@set_prefix, @prefix, prefix)
         WHERE id = @id`,
      ),
      del: db.prepare<[string]>('DELETE FROM access_keys WHERE id = ?'),
      addDaily: db.prepare<[{ key: string; day: number; bytes: number }]>(
        `INSERT INTO usage_daily (key_id, day, bytes)
         SELECT @key, @day, @bytes WHERE EXISTS (SELECT 1 FROM access_keys WHERE id = @key)
         ON CONFLICT (key_id, day) DO UPDATE SET bytes = bytes + excluded.bytes`,
      ),
      addTotal: db.prepare<[{ key: string; bytes: number }]>(
        'UPDATE access_keys SET bytes_total = bytes_total + @bytes WHERE id = @key',
      ),
      prune: db.prepare<[number]>('DELETE FROM usage_daily WHERE day < ?'),
      daily: db.prepare<[string, number], { day: number; bytes: number }>(
        'SELECT day, bytes FROM usage_daily WHERE key_id = ? AND day >= ?',
      ),
      usage: db.prepare<[number, string], KeyUsage>(
        `SELECT k.bytes_total AS total,
           COALESCE((SELECT SUM(bytes) FROM usage_daily WHERE key_id = k.id AND day >= ?), 0) AS last30d
         FROM access_keys k WHERE k.id = ?`,
      ),
      usageAll: db.prepare<[number], KeyUsage & { id: string }>(
        `SELECT k.id, k.bytes_total AS total, COALESCE(SUM(u.bytes), 0) AS last30d
         FROM access_keys k LEFT JOIN usage_daily u ON u.key_id = k.id AND u.day >= ? GROUP BY k.id`,
      ),
      getSetting: db.prepare<[string], string>('SELECT value FROM settings WHERE name = ?').pluck(),
      initSetting: db.prepare<[string, string]>(
        'INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING',
      ),
      setSetting: db.prepare<[string, string]>('UPDATE settings SET value = ? WHERE name = ?'),
      dataVersion: db.prepare<[], number>('PRAGMA data_version').pluck(),
    };
  }

  private initSettings(): void {
    const s: ServerSettings = {
      serverId: randomUUID(),
      name: 'Pigeon',
      createdAt: this.now(),
      hostname: '',
      portForNewKeys: randomServicePort(),
      defaultMethod: 'chacha20-ietf-poly1305',
      defaultDataLimit: null,
      defaultDisguise: true,
      identityPsks: {},
    };
    this.q.initSetting.run('settings', JSON.stringify(s)); // a no-op if another process was first
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
    checkPort(input.port);
    if (input.name !== undefined) checkName(input.name);
    checkLimit(input.dataLimit);
    checkTime('expiresAt', input.expiresAt);
    const secret = input.secret ?? newSecret(input.method);
    checkSecret(input.method, secret);
    checkPrefix(input.prefix, input.method);
    const id = this.db
      .transaction(() => {
        const id = String(this.q.nextId.get()!.id);
        this.q.insert.run({
          id,
          name: input.name ?? `Key ${id}`,
          secret,
          method: input.method,
          port: input.port,
          token: randomBytes(18).toString('base64url'),
          created_at: this.now(),
          expires_at: input.expiresAt ?? null,
          limit_bytes: input.dataLimit?.bytes ?? null,
          limit_window: input.dataLimit?.window ?? null,
          prefix: input.prefix ?? null,
        });
        return id;
      })
      .immediate();
    this.changes++;
    return this.getKey(id)!;
  }

  updateKey(id: string, patch: KeyPatch): AccessKey | undefined {
    if (patch.name !== undefined) checkName(patch.name);
    checkLimit(patch.dataLimit);
    checkTime('expiresAt', patch.expiresAt);
    checkTime('lastSeen', patch.lastSeen);
    if (patch.paused !== undefined && typeof patch.paused !== 'boolean')
      throw new StoreError('paused must be true or false');
    if (patch.prefix !== undefined) {
      const key = this.getKey(id);
      if (!key) return undefined;
      checkPrefix(patch.prefix, key.method);
    }
    const set = (v: unknown) => (v === undefined ? 0 : 1);
    const { changes } = this.q.update.run({
      id,
      set_name: set(patch.name),
      name: patch.name ?? null,
      set_expires: set(patch.expiresAt),
      expires_at: patch.expiresAt ?? null,
      set_limit: set(patch.dataLimit),
      limit_bytes: patch.dataLimit?.bytes ?? null,
      limit_window: patch.dataLimit?.window ?? null,
      set_paused: set(patch.paused),
      paused: patch.paused ? 1 : 0,
      set_seen: set(patch.lastSeen),
      last_seen: patch.lastSeen ?? null,
      set_prefix: set(patch.prefix),
      prefix: patch.prefix ?? null,
    });
    if (changes === 0) return undefined;
    this.changes++;
    return this.getKey(id);
  }

  deleteKey(id: string): boolean {
    const n = this.q.del.run(id).changes;
    this.pending.delete(id);
    if (n > 0) this.changes++;
    return n > 0;
  }

  addUsage(id: string, bytes: number, at = this.now()): void {
    if (!(bytes > 0) || this.closed) return;
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

  dailyUsage(id: string, days = 30, now = this.now()): DailyUsage[] {
    const today = dayOf(now);
    const from = today - Math.max(1, Math.min(days, KEEP_DAYS)) + 1;
    const byDay = new Map<number, number>();
    for (const r of this.q.daily.all(id, from)) byDay.set(r.day, r.bytes);
    for (const [d, b] of this.pending.get(id) ?? []) if (d >= from) byDay.set(d, (byDay.get(d) ?? 0) + b);
    const out: DailyUsage[] = [];
    for (let d = from; d <= today; d++) {
      out.push({ day: new Date(d * DAY_MS).toISOString().slice(0, 10), bytes: byDay.get(d) ?? 0 });
    }
    return out;
  }

  settings(): ServerSettings {
    // Settings written before a field existed get its default.
    const stored = JSON.parse(this.q.getSetting.get('settings')!) as Partial<ServerSettings>;
    return { ...stored, defaultDisguise: stored.defaultDisguise ?? true } as ServerSettings;
  }

  updateSettings(patch: Partial<Omit<ServerSettings, 'serverId' | 'createdAt'>>): ServerSettings {
    checkSettingsPatch(patch);
    const next = this.db
      .transaction(() => {
        const s: ServerSettings = this.settings();
        const mutable = s as unknown as Record<string, unknown>;
        for (const [k, v] of Object.entries(patch)) {
          if (v !== undefined && k !== 'serverId' && k !== 'createdAt') mutable[k] = v;
        }
        this.q.setSetting.run(JSON.stringify(s), 'settings');
        return s;
      })
      .immediate();
    this.changes++;
    return next;
  }

  changeCounter(): number {
    const dv = this.q.dataVersion.get()!;
    if (dv !== this.lastDataVersion) {
      this.lastDataVersion = dv;
      this.changes++;
    }
    return this.changes;
  }

  flush(): void {
    if (this.closed || this.pending.size === 0) return;
    const oldest = dayOf(this.now()) - KEEP_DAYS;
    this.db.transaction(() => {
      for (const [key, days] of this.pending) {
        let sum = 0;
        for (const [day, bytes] of days) {
          this.q.addDaily.run({ key, day, bytes });
          sum += bytes;
        }
        this.q.addTotal.run({ key, bytes: sum }); // no row (deleted meanwhile): nothing happens
      }
      this.q.prune.run(oldest); // the totals keep the old days; daily rows serve the 30-day window
    })();
    this.pending.clear(); // only once committed: a failed flush is retried with the next one
  }

  close(): void {
    if (this.closed) return;
    if (this.timer) clearInterval(this.timer);
    try {
      this.flush();
    } finally {
      this.closed = true;
      this.db.close();
    }
  }
}
