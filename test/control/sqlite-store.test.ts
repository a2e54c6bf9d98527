// The SQLite key store: files and modes, keys, validation, settings, usage and its 30-day window,
// changes seen across connections, and schema migrations.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, StoreError, openStore, type StoreOptions } from '../../src/control/sqlite-store.js';
import { SS2022_METHODS, methodSpec } from '../../src/wire/shadowsocks-methods.js';
import type { NewKey } from '../../src/control/types.js';

const DAY = 86_400_000;

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A store closed when the test ends (closing twice is fine). */
function open(t: TestContext, dir: string, opts: StoreOptions = {}) {
  const s = openStore(dir, { flushIntervalMs: 0, ...opts });
  t.after(() => s.close());
  return s;
}

/** A raw connection to the store's file, closed when the test ends. */
function raw(t: TestContext, dir: string): Database.Database {
  const db = new Database(join(dir, 'pigeon.db'));
  t.after(() => db.close());
  return db;
}

test('openStore creates a 0700 directory and a 0600 WAL database', (t) => {
  const dir = join(tempDir(t), 'nested', 'data');
  open(t, dir).createKey({ method: 'aes-128-gcm', port: 1 });
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  assert.equal(statSync(join(dir, 'pigeon.db')).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'pigeon.db-wal')).mode & 0o777, 0o600);
  assert.equal(raw(t, dir).pragma('journal_mode', { simple: true }), 'wal');
});

test('keys round-trip every field, also after reopening', (t) => {
  const dir = tempDir(t);
  const store = openStore(dir, { now: () => 1_700_000_000_000 });
  const a = store.createKey({
    name: 'phone',
    method: 'aes-256-gcm',
    port: 8388,
    secret: 'hunter2',
    expiresAt: 1_800_000_000_000,
    dataLimit: { bytes: 5e9, window: 'rolling-30d' },
  });
  assert.deepEqual(
    { ...a, token: 'x' },
    {
      id: '1',
      name: 'phone',
      secret: 'hunter2',
      method: 'aes-256-gcm',
      port: 8388,
      token: 'x',
      createdAt: 1_700_000_000_000,
      expiresAt: 1_800_000_000_000,
      dataLimit: { bytes: 5e9, window: 'rolling-30d' },
      paused: false,
      lastSeen: null,
      prefix: null,
    },
  );
  assert.match(a.token, /^[A-Za-z0-9_-]{24}$/);
  const b = store.createKey({ method: 'chacha20-ietf-poly1305', port: 9000 });
  assert.deepEqual(
    { ...b, secret: '', token: '' },
    {
      id: '2',
      name: 'Key 2',
      secret: '',
      method: 'chacha20-ietf-poly1305',
      port: 9000,
      token: '',
      createdAt: 1_700_000_000_000,
      expiresAt: null,
      dataLimit: null,
      paused: false,
      lastSeen: null,
      prefix: null,
    },
  );
  assert.match(b.secret, /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(a.token, b.token);
  store.close();
  store.close(); // idempotent

  const again = open(t, dir);
  assert.deepEqual(again.listKeys(), [a, b]);
  assert.deepEqual(again.getKey('1'), a);
  assert.deepEqual(again.getKeyByToken(b.token), b);
  assert.equal(again.getKey('3'), undefined);
  assert.equal(again.getKeyByToken('nope'), undefined);
});

test('updateKey patches only the given fields; unknown ids give undefined', (t) => {
  const store = open(t, tempDir(t));
  const k = store.createKey({ method: 'aes-128-gcm', port: 1, dataLimit: { bytes: 1, window: 'total' } });
  const patches = [
    { name: 'renamed' },
    { paused: true },
    { expiresAt: 123 },
    { lastSeen: 456 },
    { dataLimit: { bytes: 0, window: 'rolling-30d' as const } },
    { dataLimit: null, expiresAt: null, paused: false },
    { prefix: 'GET /ab' },
    { prefix: null },
    {},
  ];
  let want = k;
  for (const patch of patches) {
    want = { ...want, ...patch };
    assert.deepEqual(store.updateKey(k.id, patch), want, JSON.stringify(patch));
    assert.deepEqual(store.getKey(k.id), want);
  }
  assert.equal(store.updateKey('404', { name: 'x' }), undefined);
  assert.equal(store.getKey('404'), undefined);
  // A disguise prefix must leave at least 8 bytes of the salt random (16-byte salt: at most 8).
  assert.throws(() => store.updateKey(k.id, { prefix: 'GET /abcd' }), StoreError);
  assert.throws(() => store.updateKey(k.id, { prefix: '' }), StoreError);
  assert.throws(() => store.createKey({ method: 'aes-128-gcm', port: 1, prefix: 'é✓' }), StoreError);
  assert.equal(store.createKey({ method: 'aes-256-gcm', port: 1, prefix: 'POST /abc' }).prefix, 'POST /abc');
});

test('two connections patching different fields of a key both stick', (t) => {
  const dir = tempDir(t);
  const server = open(t, dir);
  const cli = open(t, dir);
  const k = server.createKey({ method: 'aes-128-gcm', port: 1 });
  cli.updateKey(k.id, { name: 'from the CLI' });
  server.updateKey(k.id, { lastSeen: 5 });
  assert.deepEqual(cli.getKey(k.id), { ...k, name: 'from the CLI', lastSeen: 5 });
});

test('ids are never reused after delete, also across reopen', (t) => {
  const dir = tempDir(t);
  const store = openStore(dir, { flushIntervalMs: 0 });
  const ids = [1, 2, 3].map(() => store.createKey({ method: 'aes-128-gcm', port: 1 }).id);
  assert.deepEqual(ids, ['1', '2', '3']);
  assert.equal(store.deleteKey('3'), true);
  assert.equal(store.deleteKey('3'), false);
  assert.equal(store.deleteKey('404'), false);
  assert.equal(store.getKey('3'), undefined);
  assert.equal(store.createKey({ method: 'aes-128-gcm', port: 1 }).id, '4');
  store.deleteKey('4');
  store.close();
  const again = open(t, dir);
  assert.equal(again.createKey({ method: 'aes-128-gcm', port: 1 }).id, '5');
  // ordered by number, not text: "10" after "9"
  for (let i = 0; i < 6; i++) again.createKey({ method: 'aes-128-gcm', port: 1 });
  assert.deepEqual(
    again.listKeys().map((k) => k.id),
    ['1', '2', '5', '6', '7', '8', '9', '10', '11'],
  );
});

test('secrets: generated per edition; given SIP022 keys must be base64 of the right size', (t) => {
  const store = open(t, tempDir(t));
  for (const method of SS2022_METHODS) {
    const { keySize } = methodSpec(method);
    const k = store.createKey({ method, port: 1 });
    assert.equal(Buffer.from(k.secret, 'base64').length, keySize, method);
    assert.equal(Buffer.from(k.secret, 'base64').toString('base64'), k.secret, 'canonical base64');
    const given = Buffer.alloc(keySize, 7).toString('base64');
    assert.equal(store.createKey({ method, port: 1, secret: given }).secret, given);
    for (const bad of [
      'short',
      Buffer.alloc(keySize + 1).toString('base64'),
      Buffer.alloc(keySize - 1).toString('base64'),
      `${given.slice(0, 4)}!${given.slice(4)}`, // not base64 (Buffer.from would skip the "!")
      given.replace(/=+$/, '').replace(/^./, '-'), // base64url
      '',
    ]) {
      assert.throws(
        () => store.createKey({ method, port: 1, secret: bad }),
        (e: Error) => e instanceof StoreError && (bad === '' || e.message.includes(`${keySize} bytes`)),
        `${method} ${bad}`,
      );
    }
  }
  assert.equal(
    store.createKey({ method: 'aes-128-gcm', port: 1, secret: 'any password' }).secret,
    'any password',
  );
  assert.throws(() => store.createKey({ method: 'aes-128-gcm', port: 1, secret: '' }), StoreError);
});

test('invalid input is refused with a StoreError and changes nothing', (t) => {
  const store = open(t, tempDir(t));
  const ok: NewKey = { method: 'aes-128-gcm', port: 1 };
  const bad: [string, NewKey][] = [
    ['name', { ...ok, name: 'x'.repeat(101) }],
    ['port', { ...ok, port: 0 }],
    ['port', { ...ok, port: 65536 }],
    ['port', { ...ok, port: 1.5 }],
    ['data limit', { ...ok, dataLimit: { bytes: -1, window: 'total' } }],
    ['data limit', { ...ok, dataLimit: { bytes: 1.5, window: 'total' } }],
    ['data limit', { ...ok, dataLimit: { bytes: 2 ** 53, window: 'total' } }],
    ['window', { ...ok, dataLimit: { bytes: 1, window: 'weekly' as 'total' } }],
    ['expiresAt', { ...ok, expiresAt: Number.NaN }],
    ['expiresAt', { ...ok, expiresAt: 'tomorrow' as unknown as number }],
    ['method', { ...ok, method: 'rc4-md5' as 'aes-128-gcm' }],
  ];
  for (const [what, input] of bad) {
    assert.throws(
      () => store.createKey(input),
      (e: Error) => e instanceof StoreError && e.message.includes(what),
      JSON.stringify(input),
    );
  }
  assert.equal(store.createKey({ ...ok, name: 'x'.repeat(100) }).id, '1', 'refused keys take no id');
  assert.throws(() => store.updateKey('1', { name: 'y'.repeat(101) }), StoreError);
  assert.throws(() => store.updateKey('1', { dataLimit: { bytes: -5, window: 'total' } }), StoreError);
  assert.throws(() => store.updateKey('1', { lastSeen: Infinity }), StoreError);
  assert.equal(store.getKey('1')?.name, 'x'.repeat(100));
  assert.equal(store.getKey('1')?.dataLimit, null);
});

test('settings: defaults on first open, patches persist, serverId and createdAt stay', (t) => {
  const dir = tempDir(t);
  const s = openStore(dir, { now: () => 42, flushIntervalMs: 0 });
  const first = s.settings();
  assert.match(first.serverId, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.ok(
    Number.isInteger(first.portForNewKeys) &&
      first.portForNewKeys >= 20_000 &&
      first.portForNewKeys <= 59_999,
  );
  assert.deepEqual(first, {
    serverId: first.serverId,
    name: 'Pigeon',
    createdAt: 42,
    hostname: '',
    portForNewKeys: first.portForNewKeys,
    defaultMethod: 'chacha20-ietf-poly1305',
    defaultDataLimit: null,
    defaultDisguise: true,
    identityPsks: {},
  });
  const psk = Buffer.alloc(16, 1).toString('base64');
  const patched = s.updateSettings({
    hostname: 'h.example',
    name: 'Mine',
    portForNewKeys: 443,
    defaultMethod: '2022-blake3-aes-128-gcm',
    defaultDataLimit: { bytes: 7, window: 'rolling-30d' },
    identityPsks: { '2022-blake3-aes-128-gcm': psk },
  });
  const want = {
    ...first,
    hostname: 'h.example',
    name: 'Mine',
    portForNewKeys: 443,
    defaultMethod: '2022-blake3-aes-128-gcm' as const,
    defaultDataLimit: { bytes: 7, window: 'rolling-30d' as const },
    identityPsks: { '2022-blake3-aes-128-gcm': psk },
  };
  assert.deepEqual(patched, want);
  // undefined fields are left alone; serverId and createdAt cannot be patched
  const sneaky = { name: undefined, serverId: 'evil', createdAt: 1 } as Parameters<
    typeof s.updateSettings
  >[0];
  assert.deepEqual(s.updateSettings(sneaky), want);
  s.close();

  const again = open(t, dir);
  assert.deepEqual(again.settings(), want);
  assert.deepEqual(again.updateSettings({ defaultDataLimit: null }), { ...want, defaultDataLimit: null });
  for (const bad of [
    { portForNewKeys: 0 },
    { defaultMethod: 'rc4' as 'aes-128-gcm' },
    { defaultDataLimit: { bytes: -1, window: 'total' as const } },
    { identityPsks: { '2022-blake3-aes-256-gcm': psk } }, // 16 bytes for a 32-byte method
    { name: 'n'.repeat(101) },
  ]) {
    assert.throws(() => again.updateSettings(bad), StoreError, JSON.stringify(bad));
  }
  assert.deepEqual(again.settings(), { ...want, defaultDataLimit: null });
});

test('usage is buffered in memory, visible at once, and on disk after flush', (t) => {
  const dir = tempDir(t);
  const store = openStore(dir, { flushIntervalMs: 0 });
  const other = open(t, dir);
  const a = store.createKey({ method: 'aes-128-gcm', port: 1 });
  const b = store.createKey({ method: 'aes-128-gcm', port: 1 });
  store.addUsage(a.id, 100);
  store.addUsage(a.id, 20);
  store.addUsage(b.id, 3);
  store.addUsage(b.id, 0); // nothing
  store.addUsage(b.id, -9); // nothing
  assert.deepEqual(store.usage(a.id), { total: 120, last30d: 120 });
  assert.deepEqual(other.usage(a.id), { total: 0, last30d: 0 }, 'not on disk before flush');
  store.flush();
  assert.deepEqual(other.usage(a.id), { total: 120, last30d: 120 });
  assert.deepEqual(store.usage(a.id), { total: 120, last30d: 120 }, 'not counted twice');
  store.flush(); // nothing buffered: a no-op
  store.addUsage(b.id, 4);
  store.close(); // flushes
  store.addUsage(b.id, 1_000); // after close: ignored
  assert.deepEqual(
    other.usageAll(),
    new Map([
      [a.id, { total: 120, last30d: 120 }],
      [b.id, { total: 7, last30d: 7 }],
    ]),
  );
  assert.deepEqual(open(t, dir).usage(b.id), { total: 7, last30d: 7 });
});

test('the flush timer writes buffered usage by itself', async (t) => {
  const dir = tempDir(t);
  const store = open(t, dir, { flushIntervalMs: 20 });
  const k = store.createKey({ method: 'aes-128-gcm', port: 1 });
  store.addUsage(k.id, 9);
  const other = open(t, dir);
  const deadline = Date.now() + 5000;
  while (other.usage(k.id).total === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(other.usage(k.id), { total: 9, last30d: 9 });
});

test('last30d covers today and the 29 days before; older usage only counts in total', (t) => {
  const dir = tempDir(t);
  let now = Date.UTC(2026, 0, 31, 12);
  const store = openStore(dir, { now: () => now, flushIntervalMs: 0 });
  const k = store.createKey({ method: 'aes-128-gcm', port: 1 });
  const idle = store.createKey({ method: 'aes-128-gcm', port: 1 });
  store.addUsage(k.id, 1, now);
  store.addUsage(k.id, 10, Date.UTC(2026, 0, 2, 0, 0)); // 29 days ago, first ms of the day: inside
  store.addUsage(k.id, 100, Date.UTC(2026, 0, 1, 23, 59)); // 30 days ago: outside
  store.addUsage(k.id, 1000, now - 31 * DAY);
  store.addUsage(k.id, 10000, now - 400 * DAY);
  const want = { total: 11111, last30d: 11 };
  assert.deepEqual(store.usage(k.id), want, 'buffered');
  store.flush();
  assert.deepEqual(store.usage(k.id), want, 'stored');
  // days long gone were folded away on flush, but their bytes stay in the total
  const days = raw(t, dir)
    .prepare<[], { day: number }>('SELECT day FROM usage_daily ORDER BY day')
    .all()
    .map((r) => r.day);
  assert.ok(days.length <= 4 && !days.includes(Math.floor((now - 400 * DAY) / DAY)), `${days}`);
  store.close();

  const again = open(t, dir, { now: () => now });
  assert.deepEqual(again.usage(k.id), want, 'after reopen');
  assert.deepEqual(
    again.usageAll(),
    new Map([
      [k.id, want],
      [idle.id, { total: 0, last30d: 0 }],
    ]),
  );
  now += DAY; // the 29-days-ago usage leaves the window
  assert.deepEqual(again.usage(k.id), { total: 11111, last30d: 1 });
  assert.deepEqual(again.usage(k.id, now - DAY), want, 'an explicit now');
  again.addUsage(k.id, 5, now);
  assert.deepEqual(again.usageAll().get(k.id), { total: 11116, last30d: 6 }, 'stored + buffered');
  assert.deepEqual(again.usage('404'), { total: 0, last30d: 0 });
});

test("a deleted key's usage is dropped, whoever deleted it", (t) => {
  const dir = tempDir(t);
  const store = open(t, dir);
  const cli = open(t, dir);
  const a = store.createKey({ method: 'aes-128-gcm', port: 1 });
  const b = store.createKey({ method: 'aes-128-gcm', port: 1 });
  store.addUsage(a.id, 5);
  store.flush();
  store.addUsage(a.id, 6);
  store.addUsage(b.id, 7);
  assert.equal(store.deleteKey(a.id), true); // here: usage rows cascade, the buffer is dropped
  assert.equal(cli.deleteKey(b.id), true); // in another process: the flush skips it
  store.flush();
  const db = raw(t, dir);
  assert.equal(db.prepare('SELECT COUNT(*) FROM usage_daily').pluck().get(), 0);
  assert.deepEqual(store.usageAll(), new Map());
  const c = store.createKey({ method: 'aes-128-gcm', port: 1 });
  assert.deepEqual(store.usage(c.id), { total: 0, last30d: 0 });
});

test("changeCounter moves on this connection's changes and on other connections' commits", (t) => {
  const dir = tempDir(t);
  const server = open(t, dir);
  const cli = open(t, dir);
  const steps: [string, () => unknown][] = [
    ['cli create', () => cli.createKey({ method: 'aes-128-gcm', port: 1 })],
    ['cli update', () => cli.updateKey('1', { paused: true })],
    ['cli settings', () => cli.updateSettings({ hostname: 'x' })],
    ['cli delete', () => cli.deleteKey('1')],
    ['own create', () => server.createKey({ method: 'aes-128-gcm', port: 1 })],
    ['own update', () => server.updateKey('2', { lastSeen: 1 })],
    ['own settings', () => server.updateSettings({ name: 'n' })],
    ['own delete', () => server.deleteKey('2')],
  ];
  const seen = new Set<number>();
  for (const [what, change] of steps) {
    const before = server.changeCounter();
    seen.add(before);
    assert.equal(server.changeCounter(), before, `stable without changes (${what})`);
    change();
    assert.ok(!seen.has(server.changeCounter()), what);
  }
  assert.equal(server.getKey('1'), undefined);
  assert.equal(server.settings().hostname, 'x');
  // our own usage flushes are not changes to keys or settings
  const k = server.createKey({ method: 'aes-128-gcm', port: 1 });
  const before = server.changeCounter();
  server.addUsage(k.id, 1);
  server.flush();
  assert.equal(server.changeCounter(), before);
  assert.equal(server.deleteKey('404'), false);
  assert.equal(server.updateKey('404', { name: 'x' }), undefined);
  assert.equal(server.changeCounter(), before, 'no-op deletes and updates');
});

test('migrations: a version-1 database is upgraded with its keys; reopening is a no-op', (t) => {
  const dir = tempDir(t);
  const db = new Database(join(dir, 'pigeon.db'));
  db.transaction(() => {
    MIGRATIONS[0]!(db);
    db.pragma('user_version = 1');
  })();
  db.prepare(
    `INSERT INTO access_keys (id, name, secret, method, port, token, created_at, paused, bytes_total)
     VALUES ('7', 'old', 'pw', 'aes-128-gcm', 9, 'tok', 1, 0, 50)`,
  ).run();
  db.prepare('UPDATE key_sequence SET next = 8').run();
  db.close();
  assert.ok(MIGRATIONS.length >= 2);

  const s = openStore(dir, { flushIntervalMs: 0 });
  assert.deepEqual(s.getKey('7'), {
    id: '7',
    name: 'old',
    secret: 'pw',
    method: 'aes-128-gcm',
    port: 9,
    token: 'tok',
    createdAt: 1,
    expiresAt: null,
    dataLimit: null,
    paused: false,
    lastSeen: null,
    prefix: null,
  });
  assert.equal(s.usage('7').total, 50);
  assert.equal(s.settings().name, 'Pigeon', 'settings created for a database that had none');
  assert.equal(s.createKey({ method: 'aes-128-gcm', port: 9 }).id, '8');
  const serverId = s.settings().serverId;
  s.close();

  const schema = () => {
    const check = new Database(join(dir, 'pigeon.db'), { readonly: true });
    const r = {
      version: check.pragma('user_version', { simple: true }),
      sql: check.prepare('SELECT type, name, sql FROM sqlite_schema ORDER BY name').all(),
    };
    check.close();
    return r;
  };
  const migrated = schema();
  assert.equal(migrated.version, MIGRATIONS.length);
  assert.ok(JSON.stringify(migrated.sql).includes('usage_daily_day'), 'migration 2 ran');
  const reopened = openStore(dir, { flushIntervalMs: 0 });
  assert.equal(reopened.settings().serverId, serverId);
  assert.equal(reopened.listKeys().length, 2);
  reopened.close();
  assert.deepEqual(schema(), migrated);
});

test('a fresh database is built by the same migrations', (t) => {
  const dir = tempDir(t);
  open(t, dir).close();
  const byHand = new Database(':memory:');
  t.after(() => byHand.close());
  for (const m of MIGRATIONS) m(byHand);
  const tables = (db: Database.Database) =>
    db.prepare('SELECT name, sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name').all();
  const db = raw(t, dir);
  assert.deepEqual(tables(db), tables(byHand));
  assert.equal(db.pragma('user_version', { simple: true }), MIGRATIONS.length);
});

test('a database from a newer Pigeon is refused with a clear error and left as it was', (t) => {
  const dir = tempDir(t);
  openStore(dir).close();
  const db = new Database(join(dir, 'pigeon.db'));
  db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
  db.close();
  const openFiles = () =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(join('/proc/self/fd', fd)).startsWith(join(dir, 'pigeon.db'));
      } catch {
        return false; // closed meanwhile (the directory's own fd)
      }
    }).length;
  const before = existsSync('/proc/self/fd') ? openFiles() : 0;
  assert.throws(
    () => openStore(dir),
    (e: Error) =>
      e instanceof StoreError &&
      e.message ===
        `database schema version ${MIGRATIONS.length + 1} is newer than this Pigeon (${MIGRATIONS.length}); upgrade Pigeon`,
  );
  if (existsSync('/proc/self/fd')) assert.equal(openFiles(), before, 'the refused database was closed');
  // nothing was held or half-done: once the version is right again, the store opens
  const fix = new Database(join(dir, 'pigeon.db'), { timeout: 100 });
  fix.pragma(`user_version = ${MIGRATIONS.length}`);
  fix.close();
  open(t, dir).createKey({ method: 'aes-128-gcm', port: 1 });
});

test('processes creating the same fresh store at once agree on it', { timeout: 30_000 }, async (t) => {
  const dir = tempDir(t);
  const script = join(import.meta.dirname, 'fixtures', 'open-store.ts');
  const startAt = Date.now() + 2000;
  const runs = await Promise.all(
    [1, 2, 3, 4].map(() =>
      promisify(execFile)(process.execPath, ['--import', 'tsx', script, dir, String(startAt)], {
        timeout: 20_000,
      }),
    ),
  );
  const ids = runs.map((r) => r.stdout.trim());
  assert.equal(new Set(ids).size, 1, `one server id: ${ids.join(' ')}`);
  const store = open(t, dir);
  assert.equal(store.settings().serverId, ids[0]);
  assert.deepEqual(
    store
      .listKeys()
      .map((k) => k.id)
      .sort(),
    ['1', '2', '3', '4'],
  );
});

test('daily usage: one entry per UTC day of the window, buffered bytes included, zero where idle', (t) => {
  const DAY = 86_400_000;
  let now = Date.UTC(2026, 10, 29, 12);
  const store = open(t, tempDir(t), { now: () => now });
  const k = store.createKey({ method: 'aes-128-gcm', port: 1 });
  store.addUsage(k.id, 100, now - 2 * DAY);
  store.addUsage(k.id, 5, now - 40 * DAY); // outside the window
  store.flush();
  store.addUsage(k.id, 7, now); // still buffered
  const days = store.dailyUsage(k.id, 30);
  assert.equal(days.length, 30);
  assert.deepEqual(days.at(-1), { day: '2026-11-29', bytes: 7 });
  assert.deepEqual(days.at(-3), { day: '2026-11-27', bytes: 100 });
  assert.equal(days[0]!.day, '2026-10-31');
  assert.equal(
    days.reduce((a, d) => a + d.bytes, 0),
    107,
  );
  now += DAY;
  assert.deepEqual(store.dailyUsage(k.id, 2), [
    { day: '2026-11-29', bytes: 7 },
    { day: '2026-11-30', bytes: 0 },
  ]);
  assert.deepEqual(store.dailyUsage('404', 1), [{ day: '2026-11-30', bytes: 0 }]);
});
