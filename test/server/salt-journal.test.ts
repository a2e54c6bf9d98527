// The replay journal: salts survive a restart, expired ones are dropped, a torn tail is ignored, and
// the file is compacted instead of growing without bound.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { SaltPool } from '../../src/crypto/replay.js';
import { openSaltJournal } from '../../src/server/salt-journal.js';
import { silentLog } from '../../src/log.js';

test('salts come back after a restart; expired ones and a torn tail do not', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-journal-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'salts.bin');
  let now = 1_800_000_000_000;
  const clock = () => now;
  const a = new SaltPool(60_000, 1000, clock);
  const j1 = openSaltJournal(file, a, silentLog);
  const old = randomBytes(32);
  assert.ok(a.add(old));
  now += 50_000;
  const recent = randomBytes(16);
  assert.ok(a.add(recent));
  j1.close();
  appendFileSync(file, Buffer.from([32, 1, 2, 3])); // a crash mid-record

  now += 20_000; // `old` is now 70 s old: past the 60 s TTL
  const b = new SaltPool(60_000, 1000, clock);
  const j2 = openSaltJournal(file, b, silentLog);
  t.after(() => j2.close());
  assert.equal(j2.restored, 1);
  assert.ok(b.has(recent), 'a recent salt survives the restart');
  assert.ok(!b.has(old), 'an expired salt is dropped');
  assert.equal(b.add(recent), false, 'a replay of it is refused');
});

test('the journal is compacted: its size follows what the pool holds', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pigeon-journal-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'salts.bin');
  let now = 1_800_000_000_000;
  const pool = new SaltPool(1000, 100_000, () => now);
  let j = openSaltJournal(file, pool, silentLog);
  for (let round = 0; round < 6; round++) {
    for (let i = 0; i < 20_000; i++) pool.add(randomBytes(32));
    now += 1500; // everything before has expired by the next round
    j.close(); // flushes (and compacts when due)
    j = openSaltJournal(file, pool, silentLog);
  }
  j.close();
  // Six rounds of 20,000 salts of 37 bytes would be 4.4 MB uncompacted.
  assert.ok(statSync(file).size < 2 * 20_000 * 37 + 1024, `journal is ${statSync(file).size} bytes`);
});
