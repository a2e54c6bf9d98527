import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SaltPool, SlidingWindow } from '../../src/crypto/replay.js';

test('salt pool rejects a repeat and remembers salts for at least the TTL', () => {
  let now = 0;
  const pool = new SaltPool(60_000, 1000, () => now);
  const s = Buffer.from('0123456789abcdef');
  assert.equal(pool.add(s), true);
  assert.equal(pool.add(s), false);
  now = 59_999;
  assert.equal(pool.has(s), true);
  now = 61_000; // rotated once: still in the previous generation
  assert.equal(pool.has(s), true);
  now = 122_000; // rotated twice: forgotten
  assert.equal(pool.has(s), false);
});

test('salt pool memory is bounded by capacity', () => {
  const pool = new SaltPool(3_600_000, 100);
  for (let i = 0; i < 10_000; i++) pool.add(Buffer.from(String(i).padStart(16, '0')));
  assert.ok(pool.size <= 200, `size ${pool.size}`);
  // the most recent ones are still remembered
  assert.equal(pool.has(Buffer.from('9999'.padStart(16, '0'))), true);
});

test('sliding window: new IDs pass once, duplicates and too-old IDs fail, reordering within the window passes', () => {
  const w = new SlidingWindow(64n);
  const take = (id: bigint) => {
    const ok = w.check(id);
    if (ok) w.accept(id);
    return ok;
  };
  assert.equal(take(0n), true);
  assert.equal(take(0n), false);
  assert.equal(take(5n), true);
  assert.equal(take(3n), true); // late but in window
  assert.equal(take(3n), false);
  assert.equal(take(1000n), true);
  assert.equal(take(1000n - 63n), true);
  assert.equal(take(1000n - 64n), false); // outside the window
  assert.equal(take(5n), false);
  assert.equal(take(999n), true);
  assert.equal(take(999n), false);
});
