// The store as the server sees it: allowed or not, decided from memory, refreshed on changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/control/sqlite-store.js';
import { StoreUserSource } from '../../src/control/user-source.js';

test('paused, expired, over-limit (own or default) and deleted keys are not allowed; changes are picked up', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-us-'));
  const store = openStore(dir);
  const other = openStore(dir); // another process, as the CLI would be
  t.after(() => {
    store.close();
    other.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const now = Date.now();
  const a = store.createKey({ method: 'aes-128-gcm', port: 1 });
  const b = store.createKey({ method: 'aes-128-gcm', port: 1, dataLimit: { bytes: 1000, window: 'total' } });
  const c = store.createKey({ method: 'aes-128-gcm', port: 1, expiresAt: now + 60_000 });
  const users = new StoreUserSource(store);
  assert.deepEqual(
    users.keys().map((k) => k.id),
    [a.id, b.id, c.id],
  );
  assert.equal(users.isAllowed(a.id, now), true);
  assert.equal(users.isAllowed(c.id, now), true);
  assert.equal(users.isAllowed(c.id, now + 60_000), false, 'expired');
  users.addUsage(b.id, 999);
  assert.equal(users.isAllowed(b.id, now), true);
  users.addUsage(b.id, 1);
  assert.equal(users.isAllowed(b.id, now), false, 'over its limit');
  const v0 = users.version();
  other.updateKey(a.id, { paused: true });
  const v1 = users.version();
  assert.notEqual(v1, v0);
  assert.equal(users.isAllowed(a.id, now), false, 'paused by another process');
  other.updateSettings({ defaultDataLimit: { bytes: 10, window: 'rolling-30d' } });
  users.version();
  users.addUsage(c.id, 10);
  assert.equal(users.isAllowed(c.id, now), false, 'over the server-wide default limit');
  other.deleteKey(c.id);
  users.version();
  assert.equal(users.isAllowed(c.id, now), false, 'deleted');
  assert.equal(users.isAllowed('nope', now), false);
  // last-seen writes do not count as a change the server must reload for
  const v2 = users.version();
  users.touch(b.id, now);
  assert.equal(users.version(), v2);
  assert.equal(store.getKey(b.id)?.lastSeen, now);
});
