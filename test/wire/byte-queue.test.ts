import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ByteQueue } from '../../src/wire/byte-queue.js';

test('reads exact lengths across chunk boundaries, in order', () => {
  const q = new ByteQueue();
  const all = Buffer.from(Array.from({ length: 1000 }, (_, i) => i & 0xff));
  for (let i = 0; i < all.length; i += 13) q.push(all.subarray(i, i + 13));
  assert.equal(q.length, 1000);
  const parts: Buffer[] = [];
  for (const n of [1, 12, 13, 14, 100, 500, 360]) parts.push(q.read(n));
  assert.equal(q.length, 0);
  assert.ok(Buffer.concat(parts).equals(all));
});

test('a read inside one chunk does not copy', () => {
  const q = new ByteQueue();
  const chunk = Buffer.alloc(10, 1);
  q.push(chunk);
  const r = q.read(4);
  assert.equal(r.buffer, chunk.buffer);
});

test('over-reading is a programming error, and empty pushes are ignored', () => {
  const q = new ByteQueue();
  q.push(Buffer.alloc(0));
  q.push(Buffer.alloc(3));
  assert.throws(() => q.read(4), RangeError);
  assert.equal(q.readAll().length, 3);
});
