// The native AEAD addon (native/aead.c) against the node:crypto path: the same bytes for every
// cipher, chunk size and nonce, the same refusals. Outside CI a missing build skips these tests
// (Pigeon then runs on the JavaScript path); in CI the addon must have been built by `npm ci`.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createCipheriv, hkdfSync, randomBytes, randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  CounterAead,
  LENGTH_CHUNK_SIZE,
  OPEN_AUTH,
  OPEN_OK,
  OPEN_TOO_LONG,
  OPEN_ZERO,
  TAG_SIZE,
  chunksWireSize,
  jsOpen,
  jsSealInto,
} from '../../src/crypto/aead.js';
import { jsAeadSubkey } from '../../src/crypto/kdf.js';
import { randomSalt } from '../../src/crypto/random.js';
import { loadNativeAead, type NativeAeadBinding } from '../../src/crypto/native.js';
import type { CipherName } from '../../src/wire/shadowsocks-methods.js';

const CIPHERS: { cipher: CipherName; keySize: number }[] = [
  { cipher: 'aes-128-gcm', keySize: 16 },
  { cipher: 'aes-256-gcm', keySize: 32 },
  { cipher: 'chacha20-poly1305', keySize: 32 },
];
const MAX_PAYLOADS = [0x3fff, 0xffff]; // SIP004, SIP022
const inCI = !!process.env.CI && !/^(0|false)$/i.test(process.env.CI);
const loaded = loadNativeAead();

/** The binding, or a skip (outside CI) / failure (in CI) when it was not built. */
function native(t: TestContext): NativeAeadBinding | undefined {
  if (loaded.binding) return loaded.binding;
  const why = `the native AEAD addon is not built (${loaded.error?.message.split('\n')[0]}); run \`npm install\``;
  if (inCI) throw new Error(`${why}; in CI it must build`);
  t.skip(why);
  return undefined;
}

const both = (b: NativeAeadBinding): (NativeAeadBinding | null)[] => [b, null];

const pair = (b: NativeAeadBinding, cipher: CipherName, key: Buffer, nonce?: Buffer) => ({
  n: new CounterAead(cipher, key, { binding: b, nonce }),
  js: new CounterAead(cipher, key, { binding: null, nonce }),
});

/** Random data cut into random write sizes, sealed as Shadowsocks chunks. */
function sealAll(aead: CounterAead, data: Buffer, writes: number[], max: number): Buffer {
  const out = Buffer.alloc(writes.reduce((s, n) => s + chunksWireSize(n, max), 0));
  let o = 0;
  let p = 0;
  for (const n of writes) {
    o = aead.sealChunks(data, p, p + n, max, out, o);
    p += n;
  }
  assert.equal(o, out.length);
  return out;
}

function randomWrites(total: number, max: number): number[] {
  const writes: number[] = [];
  for (let left = total; left > 0;) {
    const n = Math.min(left, randomInt(1, Math.random() < 0.3 ? 64 : max * 3));
    writes.push(n);
    left -= n;
  }
  return writes;
}

/** Opens wire fed in random pieces, like socket reads; returns plaintext and the final code. */
function openAll(
  aead: CounterAead,
  wire: Buffer,
  max: number,
  inPlace: boolean,
): { plain: Buffer; code: number } {
  const st = new Int32Array(3);
  const parts: Buffer[] = [];
  let pending = 0;
  let carry = Buffer.alloc(0);
  for (let i = 0; i < wire.length;) {
    const n = Math.min(wire.length - i, randomInt(1, 70_000));
    const data = Buffer.concat([carry, wire.subarray(i, i + n)]);
    i += n;
    const out = inPlace ? data : Buffer.alloc(data.length);
    const code = aead.openChunks(data, 0, data.length, max, pending, out, 0, st);
    if (code !== OPEN_OK) return { plain: Buffer.concat(parts), code };
    parts.push(Buffer.from(out.subarray(0, st[1])));
    carry = Buffer.from(data.subarray(st[0]));
    pending = st[2]!;
  }
  assert.equal(carry.length, 0, 'no bytes left over');
  assert.equal(pending, 0);
  return { plain: Buffer.concat(parts), code: OPEN_OK };
}

test('the addon loads (in CI it must) and uses the OpenSSL of this Node', (t) => {
  const b = native(t);
  if (!b) return;
  assert.match(b.opensslRuntime, new RegExp(`^OpenSSL ${process.versions.openssl.replace(/\./g, '\\.')}\\b`));
});

const EVP_ONLY = process.env.PIGEON_NATIVE_EVP_ONLY === '1';

test('chacha20-poly1305 takes the fast path (ChaCha20_ctr32 + Poly1305, RFC 8439 self-test passed) unless PIGEON_NATIVE_EVP_ONLY=1', (t) => {
  const b = native(t);
  if (!b) return;
  assert.equal(b.fastChaCha, !EVP_ONLY);
});

// Every test in this file again, with the addon's chacha20-poly1305 on OpenSSL's EVP interface, so
// that both C paths are held to node:crypto's bytes (the AES ciphers always use EVP).
test('the whole file passes on the EVP chacha20-poly1305 path too', (t) => {
  if (!native(t) || EVP_ONLY) return;
  const file = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=dot', file], {
    env: { ...process.env, PIGEON_NATIVE_EVP_ONLY: '1' },
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`.slice(-3000));
});

test('PIGEON_NO_NATIVE=1 selects the JavaScript path', (t) => {
  if (!native(t)) return;
  const src = fileURLToPath(new URL('../../src/crypto/aead.ts', import.meta.url));
  const code = `import(${JSON.stringify(src)}).then((m) => { const a = new m.CounterAead('aes-128-gcm', Buffer.alloc(16)); console.log(a.native ? 'native' : 'js'); })`;
  const run = (env: NodeJS.ProcessEnv) =>
    spawnSync(process.execPath, ['--import', 'tsx', '-e', code], {
      env: { ...process.env, ...env },
      encoding: 'utf8',
    }).stdout.trim();
  assert.equal(run({ PIGEON_NO_NATIVE: '1' }), 'js');
  assert.equal(run({ PIGEON_NO_NATIVE: '' }), 'native');
});

for (const { cipher, keySize } of CIPHERS) {
  describe(cipher, () => {
    test('single seal and open: identical bytes, and equal to node:crypto with the counter nonce', (t) => {
      const b = native(t);
      if (!b) return;
      const key = randomBytes(keySize);
      const { n, js } = pair(b, cipher, key);
      const opener = pair(b, cipher, key);
      for (let i = 0; i < 50; i++) {
        const plain = randomBytes(i === 0 ? 0 : randomInt(1, 3000));
        const a = Buffer.alloc(plain.length + TAG_SIZE + 5);
        const c = Buffer.alloc(plain.length + TAG_SIZE + 5);
        assert.equal(n.sealInto(plain, a, 5), a.length);
        assert.equal(js.sealInto(plain, c, 5), c.length);
        assert.ok(a.equals(c), `seal ${i}`);
        const nonce = Buffer.alloc(12);
        nonce.writeUInt32LE(i, 0);
        const ref = createCipheriv(cipher, key, nonce, { authTagLength: TAG_SIZE } as never);
        const refWire = Buffer.concat([
          ref.update(plain),
          ref.final(),
          (ref as unknown as { getAuthTag(): Buffer }).getAuthTag(),
        ]);
        assert.ok(a.subarray(5).equals(refWire), `node:crypto ${i}`);
        assert.ok(opener.n.open(a.subarray(5)).equals(plain));
        assert.ok(opener.js.open(c.subarray(5)).equals(plain));
      }
    });

    test('nonce wrap-around: both carry through all 12 bytes the same way', (t) => {
      const b = native(t);
      if (!b) return;
      const key = randomBytes(keySize);
      for (const start of [
        'ffffffffffffffffffffffff',
        'fffe00000000000000000000',
        'ffffffff00ffffffffffffff',
      ]) {
        const nonce = Buffer.from(start, 'hex');
        const { n, js } = pair(b, cipher, key, nonce);
        const plain = randomBytes(100);
        const expected = Buffer.from(nonce);
        for (let i = 0; i < 4; i++) {
          const a = Buffer.alloc(116);
          const c = Buffer.alloc(116);
          n.sealInto(plain, a, 0);
          js.sealInto(plain, c, 0);
          assert.ok(a.equals(c), `${start} op ${i}`);
          const ref = createCipheriv(cipher, key, expected, { authTagLength: TAG_SIZE } as never);
          const refWire = Buffer.concat([
            ref.update(plain),
            ref.final(),
            (ref as unknown as { getAuthTag(): Buffer }).getAuthTag(),
          ]);
          assert.ok(a.equals(refWire), `${start} op ${i} vs node:crypto`);
          for (let k = 0; k < 12; k++) {
            expected[k] = (expected[k]! + 1) & 0xff;
            if (expected[k] !== 0) break;
          }
        }
      }
    });

    for (const max of MAX_PAYLOADS) {
      test(`chunks of at most ${max}: random sizes seal to identical bytes and open the same on both`, (t) => {
        const b = native(t);
        if (!b) return;
        for (let round = 0; round < 4; round++) {
          const key = randomBytes(keySize);
          const data = randomBytes(randomInt(1, 400_000));
          const writes = randomWrites(data.length, max);
          const w = pair(b, cipher, key);
          const wire = sealAll(w.n, data, writes, max);
          assert.ok(wire.equals(sealAll(w.js, data, writes, max)), 'sealed bytes differ');
          for (const inPlace of [false, true]) {
            const r = pair(b, cipher, key);
            const viaNative = openAll(r.n, Buffer.from(wire), max, inPlace);
            const viaJs = openAll(r.js, Buffer.from(wire), max, inPlace);
            assert.equal(viaNative.code, OPEN_OK);
            assert.equal(viaJs.code, OPEN_OK);
            assert.ok(viaNative.plain.equals(data), `native open (in place: ${inPlace})`);
            assert.ok(viaJs.plain.equals(data), `js open (in place: ${inPlace})`);
          }
        }
      });
    }

    test('a chunk split in two pieces opens in place at every split point', (t) => {
      const b = native(t);
      if (!b) return;
      const bindings = both(b);
      const key = randomBytes(keySize);
      const plain = randomBytes(300);
      const sealer = new CounterAead(cipher, key, { binding: null });
      const sealed = Buffer.alloc(plain.length + TAG_SIZE);
      sealer.sealInto(plain, sealed, 0);
      for (let cut = 1; cut < sealed.length; cut++) {
        for (const binding of bindings) {
          const r = new CounterAead(cipher, key, { binding });
          const a = Buffer.from(sealed.subarray(0, cut));
          const bb = Buffer.concat([sealed.subarray(cut), Buffer.from('trailing')]);
          assert.equal(r.openPair(a, bb, sealed.length - cut), plain.length, `cut ${cut}`);
          const inA = Math.min(cut, plain.length);
          const got = Buffer.concat([a.subarray(0, inA), bb.subarray(0, plain.length - inA)]);
          assert.ok(got.equals(plain), `cut ${cut} (${binding ? 'native' : 'js'})`);
          assert.equal(bb.subarray(sealed.length - cut).toString(), 'trailing');
        }
      }
    });

    test('tampered input is refused by both, wherever the bit flips', (t) => {
      const b = native(t);
      if (!b) return;
      const bindings = both(b);
      const key = randomBytes(keySize);
      const data = randomBytes(40_000);
      const wire = sealAll(new CounterAead(cipher, key, { binding: null }), data, [data.length], 0x3fff);
      for (const at of [0, 17, 18, 100, 18 + 0x3fff + 15, wire.length - 1, randomInt(wire.length)]) {
        const bad = Buffer.from(wire);
        bad[at]! ^= 0x04;
        for (const binding of bindings) {
          const r = new CounterAead(cipher, key, { binding });
          const st = new Int32Array(3);
          assert.equal(
            r.openChunks(bad, 0, bad.length, 0x3fff, 0, Buffer.alloc(bad.length), 0, st),
            OPEN_AUTH,
            `flip at ${at} (${binding ? 'native' : 'js'})`,
          );
        }
      }
      const sealed = Buffer.alloc(10 + TAG_SIZE);
      new CounterAead(cipher, key, { binding: null }).sealInto(Buffer.alloc(10, 7), sealed, 0);
      sealed[20]! ^= 1;
      for (const binding of bindings) {
        assert.throws(() => new CounterAead(cipher, key, { binding }).open(sealed), { name: 'AuthError' });
        const a = Buffer.from(sealed.subarray(0, 9));
        assert.equal(
          new CounterAead(cipher, key, { binding }).openPair(a, Buffer.from(sealed.subarray(9)), 17),
          OPEN_AUTH,
        );
        assert.equal(
          new CounterAead(cipher, key, { binding }).openPair(Buffer.alloc(3), Buffer.alloc(4), 4),
          OPEN_AUTH,
        );
      }
    });

    test('oversized and zero-length chunks get the same codes from both', (t) => {
      const b = native(t);
      if (!b) return;
      const bindings = both(b);
      const key = randomBytes(keySize);
      for (const [len, code] of [
        [0x4000, OPEN_TOO_LONG],
        [0, OPEN_ZERO],
      ] as const) {
        const wire = Buffer.alloc(LENGTH_CHUNK_SIZE);
        const lenPlain = Buffer.alloc(2);
        lenPlain.writeUInt16BE(len);
        new CounterAead(cipher, key, { binding: null }).sealInto(lenPlain, wire, 0);
        for (const binding of bindings) {
          const st = new Int32Array(3);
          const r = new CounterAead(cipher, key, { binding });
          assert.equal(r.openChunks(wire, 0, wire.length, 0x3fff, 0, Buffer.alloc(64), 0, st), code);
          assert.equal(st[2], len);
        }
      }
    });
  });
}

test('the addon checks its bounds instead of writing past a buffer', (t) => {
  const b = native(t);
  if (!b) return;
  const seal = b.create(1, Buffer.alloc(32), true);
  const open = b.create(1, Buffer.alloc(32), false);
  assert.throws(() => b.seal(seal, Buffer.alloc(10), Buffer.alloc(25), 0), RangeError);
  assert.throws(() => b.seal(seal, Buffer.alloc(10), Buffer.alloc(40), 20), RangeError);
  assert.throws(() => b.seal(seal, Buffer.alloc(10), Buffer.alloc(40), -1), RangeError);
  assert.throws(() => b.sealChunks(seal, Buffer.alloc(10), 0, 11, 100, Buffer.alloc(100), 0), RangeError);
  assert.throws(() => b.sealChunks(seal, Buffer.alloc(100), 0, 100, 100, Buffer.alloc(100), 0), RangeError);
  assert.throws(() => b.open(open, Buffer.alloc(40), Buffer.alloc(10), 0), RangeError);
  assert.throws(
    () => b.openChunks(open, Buffer.alloc(10), 5, 4, 100, 0, Buffer.alloc(10), 0, new Int32Array(3)),
    RangeError,
  );
  assert.throws(
    () => b.openChunks(open, Buffer.alloc(10), 0, 10, 100, 0, Buffer.alloc(10), 0, new Int32Array(2)),
    TypeError,
  );
  assert.throws(() => b.openPair(open, Buffer.alloc(10), Buffer.alloc(10), 11), RangeError);
  assert.throws(() => b.create(9, Buffer.alloc(32), true), RangeError);
  assert.throws(() => b.create(0, Buffer.alloc(32), true), RangeError);
  assert.throws(() => b.seal(open, Buffer.alloc(1), Buffer.alloc(40), 0), /not a sealing context/);
  assert.throws(() => b.seal({} as never, Buffer.alloc(1), Buffer.alloc(40), 0), TypeError);
});

describe('one-shot operations (UDP packets) and the SIP004 subkey', () => {
  const IDS: Record<CipherName, number> = { 'aes-128-gcm': 0, 'aes-256-gcm': 1, 'chacha20-poly1305': 2 };
  for (const { cipher, keySize } of CIPHERS) {
    test(`${cipher}: packetSeal/packetOpen give node:crypto's bytes, refuse what was tampered with`, (t) => {
      const b = native(t);
      if (!b) return;
      for (let i = 0; i < 200; i++) {
        const key = randomBytes(keySize);
        const nonce = i % 2 ? Buffer.alloc(12) : randomBytes(12);
        const plain = randomBytes(i < 70 ? i : randomInt(0, 2000));
        const want = Buffer.alloc(plain.length + TAG_SIZE + 3);
        const got = Buffer.alloc(plain.length + TAG_SIZE + 3);
        assert.equal(jsSealInto(cipher, key, nonce, plain, want, 3), want.length);
        assert.equal(b.packetSeal(IDS[cipher], key, nonce, plain, got, 3), got.length);
        assert.ok(got.equals(want), `seal ${i} (${plain.length} bytes)`);
        const sealed = got.subarray(3);
        const out = Buffer.alloc(plain.length);
        assert.equal(b.packetOpen(IDS[cipher], key, nonce, sealed, out, 0), plain.length);
        assert.ok(out.equals(plain));
        assert.ok(jsOpen(cipher, key, nonce, sealed).equals(plain));
        const bad = Buffer.from(sealed);
        bad[randomInt(bad.length)]! ^= 1 << randomInt(8);
        assert.equal(b.packetOpen(IDS[cipher], key, nonce, bad, out, 0), OPEN_AUTH);
        assert.throws(() => jsOpen(cipher, key, nonce, bad));
      }
      assert.throws(
        () =>
          b.packetSeal(
            IDS[cipher],
            Buffer.alloc(keySize + 1),
            Buffer.alloc(12),
            Buffer.alloc(1),
            Buffer.alloc(40),
            0,
          ),
        RangeError,
      );
      assert.throws(
        () =>
          b.packetSeal(
            IDS[cipher],
            Buffer.alloc(keySize),
            Buffer.alloc(11),
            Buffer.alloc(1),
            Buffer.alloc(40),
            0,
          ),
        RangeError,
      );
      assert.throws(
        () =>
          b.packetSeal(
            IDS[cipher],
            Buffer.alloc(keySize),
            Buffer.alloc(12),
            Buffer.alloc(30),
            Buffer.alloc(40),
            0,
          ),
        RangeError,
      );
      assert.equal(
        b.packetOpen(
          IDS[cipher],
          Buffer.alloc(keySize),
          Buffer.alloc(12),
          Buffer.alloc(15),
          Buffer.alloc(40),
          0,
        ),
        OPEN_AUTH,
      );
    });
  }

  test('subkey is HKDF-SHA1(key, salt, "ss-subkey"), as node:crypto and the JavaScript path compute it', (t) => {
    const b = native(t);
    if (!b) return;
    assert.equal(b.hasSubkey, true, "OpenSSL's SHA1_* were found and passed RFC 5869 A.4");
    for (let i = 0; i < 300; i++) {
      const key = randomBytes([16, 32][i % 2]!);
      const salt = randomBytes(i % 3 === 0 ? key.length : randomInt(0, 100));
      const out = Buffer.alloc(key.length);
      assert.equal(b.subkey(key, salt, out), key.length);
      const want = Buffer.from(hkdfSync('sha1', key, salt, 'ss-subkey', key.length));
      assert.ok(out.equals(want), `subkey ${i}`);
      assert.ok(jsAeadSubkey(key, salt).equals(want));
    }
    // Salts longer than SHA-1's 64-byte block (HMAC hashes such keys first), outputs of several blocks.
    const key = randomBytes(32);
    const salt = randomBytes(150);
    const long = Buffer.alloc(100);
    assert.equal(b.subkey(key, salt, long), 100);
    assert.ok(long.equals(Buffer.from(hkdfSync('sha1', key, salt, 'ss-subkey', 100))));
    assert.throws(() => b.subkey(Buffer.alloc(32), Buffer.alloc(32), Buffer.alloc(0)), RangeError);
  });
});

test('randomSalt hands out fresh bytes: never the same salt twice, across pool refills', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const n = [8, 16, 24, 32][i % 4]!;
    const s = randomSalt(n);
    assert.equal(s.length, n);
    const hex = s.toString('hex');
    assert.ok(!seen.has(hex), 'a salt came out twice');
    seen.add(hex);
  }
  assert.throws(() => randomSalt(4097), RangeError);
});
