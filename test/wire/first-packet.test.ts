// The censor's fully-encrypted-traffic rule, and Pigeon's disguise against it: with a prefix, every
// first segment is exempt (by more than one rule); without, random first packets are flagged.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import {
  disguisePrefix,
  firstSegmentLength,
  judgeFirstPacket,
  MIN_RANDOM_SALT_BYTES,
  popcount,
} from '../../src/wire/first-packet.js';

describe('the censor rule (Wu et al. 2023)', () => {
  const cases: [string, Buffer, boolean, string][] = [
    [
      'a TLS ClientHello start',
      Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), randomBytes(300)]),
      true,
      'ex5',
    ],
    [
      'an HTTP request line',
      Buffer.concat([Buffer.from('POST /api HTTP/1.1\r\n'), randomBytes(5)]),
      true,
      'ex2',
    ],
    [
      'six printable bytes, then random',
      Buffer.concat([Buffer.from('abcdef'), randomBytes(500)]),
      true,
      'ex2',
    ],
    ['all zero bytes (popcount 0)', Buffer.alloc(200), true, 'ex1'],
    ['all 0xff (popcount 8)', Buffer.alloc(200, 0xff), true, 'ex1'],
    [
      '21 printable bytes in the middle',
      Buffer.concat([Buffer.from([0x80]), Buffer.from('x'.repeat(21)), Buffer.from([0x81])]),
      true,
      'ex4',
    ],
  ];
  for (const [what, bytes, exempt, rule] of cases) {
    test(what, () => {
      const v = judgeFirstPacket(bytes);
      assert.equal(v.exempt, exempt);
      assert.ok(v.rules[rule as keyof typeof v.rules], `${rule} holds: ${JSON.stringify(v)}`);
    });
  }

  test('random first packets of 50–1000 bytes are flagged almost always (plain AEAD Shadowsocks)', () => {
    let flagged = 0;
    for (let i = 0; i < 2000; i++) if (!judgeFirstPacket(randomBytes(randomInt(50, 1000))).exempt) flagged++;
    assert.ok(flagged > 2000 * 0.9, `${flagged} of 2000 flagged`);
  });

  test('popcount', () => {
    assert.equal(popcount(Buffer.from([0, 1, 3, 0xff])), 11);
  });
});

describe('disguise prefixes', () => {
  test('6–8 printable bytes shaped like an HTTP request line, leaving the salt random enough', () => {
    for (const saltSize of [16, 32]) {
      for (let i = 0; i < 500; i++) {
        const p = disguisePrefix(randomBytes(16), saltSize);
        assert.match(p, /^(GET|POST|HEAD) \/[A-Za-z0-9]*$/);
        assert.ok(p.length >= 6 && p.length <= 8 && saltSize - p.length >= MIN_RANDOM_SALT_BYTES, p);
        assert.ok(judgeFirstPacket(Buffer.concat([Buffer.from(p), randomBytes(600)])).rules.ex2);
      }
    }
  });

  test('the same seed gives the same prefix (quick mode prints the same URI after a restart)', () => {
    const seed = randomBytes(32);
    assert.equal(disguisePrefix(seed, 32), disguisePrefix(seed, 32));
  });
});

describe('the first segment of a disguised connection', () => {
  test('100% exempt by at least two rules, short, of varying length, popcount-shaped where possible', (t) => {
    const lengths = new Set<number>();
    let lowPopcount = 0;
    const N = 10_000;
    for (let i = 0; i < N; i++) {
      const saltSize = i % 2 ? 32 : 16;
      const prefix = Buffer.from(disguisePrefix(randomBytes(8), saltSize), 'latin1');
      // salt (prefix + random) ‖ sealed length ‖ sealed header and payload
      const wire = Buffer.concat([
        prefix,
        randomBytes(saltSize - prefix.length),
        randomBytes(randomInt(40, 1500)),
      ]);
      const len = firstSegmentLength(wire, prefix.length, (n) => randomInt(n));
      assert.ok(len >= prefix.length && len < 2 * prefix.length, `length ${len} for prefix ${prefix.length}`);
      const v = judgeFirstPacket(wire.subarray(0, len));
      const held = Object.values(v.rules).filter(Boolean).length;
      assert.ok(v.exempt && held >= 2, JSON.stringify(v));
      if (v.rules.ex1) lowPopcount++;
      lengths.add(len);
    }
    t.diagnostic(
      `exempt 100%; also by popcount ${(lowPopcount / N) * 100}%; lengths ${[...lengths].sort().join(',')}`,
    );
    assert.ok(lengths.size >= 6, `first-segment lengths vary: ${[...lengths].sort().join(', ')}`);
    assert.ok(lowPopcount > N * 0.9, `${lowPopcount} of ${N} also pass by popcount`);
  });

  test('writes too short to cut go out whole', () => {
    const wire = Buffer.from('GET /ab');
    assert.equal(
      firstSegmentLength(wire, 7, () => 0),
      wire.length,
    );
    assert.equal(
      firstSegmentLength(randomBytes(100), 0, () => 0),
      100,
    );
  });
});
