// The SQLite key store: keys, settings, usage windows, migrations, changes seen across processes,
// and what survives a kill -9.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { MIGRATIONS, StoreError, openStore } from '../../src/control/sqlite-store.js';

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('keys round-trip every field; ids are never reused; tokens find keys', (t) => {
  const store = openStore(tempDir(t));
  t.after(() => store.close());
  const a = store.createKey({
    name: 'a',
    method: 'aes-128-gcm',
    port: 1000,
    dataLimit: { bytes: 5, window: 'total' },
    expiresAt: 123,
  });
  assert.equal(a.id, '1');
  assert.deepEqual(store.getKey('1'), a);
  assert.deepEqual(store.getKeyByToken(a.token), a);
  assert.equal(a.secret.length > 10, true);
  const b = store.createKey({ method: '2022-blake3-aes-256-gcm', port: 1000 });
  assert.equal(b.name, 'Key 2');
  assert.equal(Buffer.from(b.secret, 'base64').length, 32);
  assert.equal(store.deleteKey('2'), true);
  assert.equal(store.deleteKey('2'), false);
  assert.equal(store.createKey({ method: 'aes-128-gcm', port: 1 }).id, '3');
  const u = store.updateKey('1', {
    name: 'renamed',
    paused: true,
    dataLimit: null,
    expiresAt: null,
    lastSeen: 99,
  });
  assert.deepEqual(
    { ...u, token: '' },
    { ...a, token: '', name: 'renamed', paused: true, dataLimit: null, expiresAt: null, lastSeen: 99 },
  );
  assert.equal(store.updateKey('404', { name: 'x' }), undefined);
  assert.throws(
    () => store.createKey({ method: '2022-blake3-aes-128-gcm', port: 1, secret: 'short' }),
    StoreError,
  );
  assert.throws(() => store.createKey({ method: 'aes-128-gcm', port: 0 }), StoreError);
  assert.throws(() => store.createKey({ method: 'aes-128-gcm', port: 1, name: 'x'.repeat(101) }), StoreError);
  assert.throws(
    () => store.createKey({ method: 'aes-128-gcm', port: 1, dataLimit: { bytes: -1, window: 'total' } }),
    StoreError,
  );
});

test('usage: buffered until flushed, persisted after, with a rolling 30-day window', (t) => {
  const dir = tempDir(t);
  let now = Date.UTC(2026, 0, 31);
  const store = openStore(dir, { now: () => now });
  const k = store.createKey({ method: 'aes-128-gcm', port: 1 });
  store.addUsage(k.id, 100, now - 40 * 86_400_000); // outside the window
  store.addUsage(k.id, 10, now - 29 * 86_400_000); // inside (29 days ago)
  store.addUsage(k.id, 1, now);
  assert.deepEqual(store.usage(k.id), { total: 111, last30d: 11 });
  store.flush();
  assert.deepEqual(store.usage(k.id), { total: 111, last30d: 11 });
  store.close();
  const again = openStore(dir, { now: () => now });
  t.after(() => again.close());
  assert.deepEqual(again.usage(k.id), { total: 111, last30d: 11 });
  now += 86_400_000; // a day later the 29-days-ago usage leaves the window
  assert.deepEqual(again.usage(k.id), { total: 111, last30d: 1 });
  assert.deepEqual([...again.usageAll()], [[k.id, { total: 111, last30d: 1 }]]);
  // usage of a deleted key is dropped, not an error
  again.addUsage(k.id, 5);
  again.deleteKey(k.id);
  again.flush();
});

test('settings: defaults on first open, patches persist', (t) => {
  const dir = tempDir(t);
  const s = openStore(dir);
  const first = s.settings();
  assert.equal(first.name, 'Pigeon');
  assert.equal(first.defaultMethod, 'chacha20-ietf-poly1305');
  assert.ok(first.portForNewKeys >= 20_000 && first.portForNewKeys < 60_000);
  s.updateSettings({ hostname: 'h.example', defaultDataLimit: { bytes: 7, window: 'rolling-30d' } });
  s.close();
  const again = openStore(dir);
  t.after(() => again.close());
  assert.equal(again.settings().hostname, 'h.example');
  assert.equal(again.settings().serverId, first.serverId);
  assert.throws(() => again.updateSettings({ portForNewKeys: 0 }), StoreError);
});

test('changes made by another connection (another process) are visible in changeCounter', (t) => {
  const dir = tempDir(t);
  const server = openStore(dir);
  const cli = openStore(dir);
  t.after(() => (server.close(), cli.close()));
  const before = server.changeCounter();
  const k = cli.createKey({ method: 'aes-128-gcm', port: 1 });
  assert.notEqual(server.changeCounter(), before);
  assert.equal(server.getKey(k.id)?.id, k.id);
  const mid = server.changeCounter();
  cli.updateKey(k.id, { paused: true });
  assert.notEqual(server.changeCounter(), mid);
});

test('migrations: a version-1 database is upgraded with its keys; a newer one is refused', (t) => {
  const dir = tempDir(t);
  const db = new Database(join(dir, 'pigeon.db'));
  MIGRATIONS[0]!(db);
  db.pragma('user_version = 1');
  db.prepare(
    `INSERT INTO access_keys (id, name, secret, method, port, token, created_at, paused) VALUES ('7', 'old', 'pw', 'aes-128-gcm', 9, 'tok', 1, 0)`,
  ).run();
  db.prepare('UPDATE key_sequence SET next = 8').run();
  db.close();
  const s = openStore(dir);
  assert.equal(s.getKey('7')?.name, 'old');
  assert.equal(s.createKey({ method: 'aes-128-gcm', port: 9 }).id, '8');
  s.close();
  const check = new Database(join(dir, 'pigeon.db'));
  assert.equal(check.pragma('user_version', { simple: true }), MIGRATIONS.length);
  check.pragma(`user_version = ${MIGRATIONS.length + 1}`);
  check.close();
  assert.throws(() => openStore(dir), /newer than this Pigeon/);
});

test('kill -9: no key is lost, and at most ~1 s of usage', async (t) => {
  const dir = tempDir(t);
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'fixtures/store-writer.ts'), dir],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  t.after(() => child.kill('SIGKILL'));
  let keys = 0;
  const reports: { added: number; at: number }[] = [];
  child.stdout.setEncoding('utf8');
  let buf = '';
  child.stdout.on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (line.startsWith('key ')) keys++;
      const m = /^added (\d+) at (\d+)$/.exec(line);
      if (m) reports.push({ added: Number(m[1]), at: Number(m[2]) });
    }
  });
  const deadline = Date.now() + 20_000;
  while ((reports.length === 0 || Date.now() - reports[0]!.at < 1500) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  const last = reports[reports.length - 1]!;
  const store = openStore(dir);
  t.after(() => store.close());
  assert.equal(keys, 50);
  assert.equal(store.listKeys().length, 50, 'keys were lost');
  const saved = store.usage('1').total;
  assert.ok(saved <= last.added, `more usage than was added: ${saved} > ${last.added}`);
  const aSecondBefore = reports.filter((r) => r.at <= last.at - 1000).pop()?.added ?? 0;
  assert.ok(
    saved >= aSecondBefore,
    `lost more than a second of usage: saved ${saved}, had ${aSecondBefore} a second before the kill`,
  );
});
