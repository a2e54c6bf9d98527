import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { blake3 } from '@noble/hashes/blake3.js';
import { StreamReader, StreamWriter, type StreamKey } from '../../src/crypto/ss-stream.js';
import { aeadSubkey, masterKey } from '../../src/crypto/kdf.js';
import { CounterAead } from '../../src/crypto/aead.js';
import { SaltPool } from '../../src/crypto/replay.js';
import { METHODS, methodSpec, type MethodName } from '../../src/wire/shadowsocks-methods.js';
import { encodeAddress, makeAddress } from '../../src/wire/socks-address.js';
import { wireCode } from '../helpers/wire-error.js';

const NOW = 1_700_000_000;
const clock = () => NOW;

function keyFor(m: MethodName): StreamKey {
  const spec = methodSpec(m);
  const pw = spec.edition === '2022' ? Buffer.alloc(spec.keySize, 0x42).toString('base64') : 'correct horse';
  return { spec, key: masterKey(spec, pw) };
}

/** Feeds `wire` to the reader in pieces of varying size; returns all plaintext. */
function feed(r: StreamReader, wire: Buffer, piece = 7): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < wire.length; i += piece) out.push(...r.push(wire.subarray(i, i + piece)));
  return Buffer.concat(out);
}

const codeOf = wireCode;

const target = makeAddress('example.com', 443);

for (const m of METHODS) {
  describe(m, () => {
    const k = keyFor(m);

    test('request stream round-trips target and data across chunk boundaries', () => {
      const w = new StreamWriter(k, { kind: 'request', target, clock });
      const data = randomBytes(200_000);
      const wire = Buffer.concat([w.write(data.subarray(0, 10)), w.write(data.subarray(10))]);
      const r = new StreamReader(k, { kind: 'request', saltPool: new SaltPool(), clock });
      const got = feed(r, wire, 1000);
      assert.deepEqual(r.target, target);
      assert.ok(got.equals(data));
      assert.equal(r.atBoundary, true);
      assert.equal(r.isAuthenticated, true);
    });

    test('response stream round-trips and (2022) checks the echoed request salt', () => {
      const reqSalt = randomBytes(k.spec.saltSize);
      const w = new StreamWriter(k, { kind: 'response', requestSalt: reqSalt, clock });
      const data = randomBytes(70_000);
      const wire = w.write(data);
      const r = new StreamReader(k, { kind: 'response', requestSalt: reqSalt, clock });
      assert.ok(feed(r, wire, 333).equals(data));
      if (k.spec.edition === '2022') {
        const other = new StreamReader(k, {
          kind: 'response',
          requestSalt: randomBytes(k.spec.saltSize),
          clock,
        });
        assert.equal(
          codeOf(() => other.push(wire)),
          'bad-salt',
        );
      }
    });

    test('a replayed request is rejected by the salt pool', () => {
      const w = new StreamWriter(k, { kind: 'request', target, clock });
      const wire = w.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
      const pool = new SaltPool();
      new StreamReader(k, { kind: 'request', saltPool: pool, clock }).push(wire);
      const again = new StreamReader(k, { kind: 'request', saltPool: pool, clock });
      assert.equal(
        codeOf(() => again.push(wire)),
        'replay',
      );
    });

    test('every single-byte corruption is rejected with a WireError', () => {
      const w = new StreamWriter(k, { kind: 'request', target, clock });
      const wire = Buffer.concat([w.write(Buffer.from('hello')), w.write(Buffer.from('world'))]);
      const salt = k.spec.saltSize;
      for (let i = 0; i < wire.length; i++) {
        const bad = Buffer.from(wire);
        bad[i] ^= 0x01;
        const r = new StreamReader(k, { kind: 'request', saltPool: new SaltPool(), clock });
        const code = codeOf(() => r.push(bad));
        assert.notEqual(code, 'no error', `flip at ${i} (salt ${i < salt}) was accepted`);
      }
    });

    test('a stream cut inside a chunk is not at a boundary', () => {
      const w = new StreamWriter(k, { kind: 'request', target, clock });
      const wire = w.write(Buffer.from('some data'));
      const r = new StreamReader(k, { kind: 'request', saltPool: new SaltPool(), clock });
      r.push(wire.subarray(0, wire.length - 1));
      assert.equal(r.atBoundary, false);
    });

    test('random bytes never authenticate', () => {
      for (let n = 0; n < 200; n++) {
        const r = new StreamReader(k, { kind: 'request', saltPool: new SaltPool(), clock });
        const junk = randomBytes(1 + ((n * 37) % 2000));
        const code = codeOf(() => r.push(junk));
        assert.ok(code === 'no error' || code === 'auth', code);
        assert.equal(r.isAuthenticated, false);
        assert.equal(r.target, undefined);
      }
    });
  });
}

describe('SIP004 specifics', () => {
  const k = keyFor('aes-256-gcm');
  test('a length chunk above 0x3FFF is rejected', () => {
    const salt = randomBytes(32);
    const aead = new CounterAead(k.spec.cipher, aeadSubkey(k.key, salt));
    const out = Buffer.alloc(32 + 18);
    salt.copy(out);
    aead.sealInto(Buffer.from([0x40, 0x00]), out, 32);
    const r = new StreamReader(k, { kind: 'response', clock });
    assert.equal(
      codeOf(() => r.push(out)),
      'bad-length',
    );
  });

  test('the reflected server stream is rejected once the server remembers its own salts', () => {
    const pool = new SaltPool();
    const w = new StreamWriter(k, { kind: 'response', clock });
    pool.add(w.salt);
    const wire = w.write(Buffer.concat([encodeAddress(target), Buffer.from('x')]));
    const r = new StreamReader(k, { kind: 'request', saltPool: pool, clock });
    assert.equal(
      codeOf(() => r.push(wire)),
      'replay',
    );
  });
});

describe('SIP022 specifics', () => {
  const k = keyFor('2022-blake3-aes-128-gcm');

  test('timestamps within ±30 s pass, beyond are rejected', () => {
    for (const [skew, want] of [
      [30, 'no error'],
      [-30, 'no error'],
      [31, 'bad-timestamp'],
      [-31, 'bad-timestamp'],
      [-3600, 'bad-timestamp'],
    ] as const) {
      const w = new StreamWriter(k, { kind: 'request', target, clock: () => NOW + skew });
      const r = new StreamReader(k, { kind: 'request', saltPool: new SaltPool(), clock });
      assert.equal(
        codeOf(() => r.push(w.write(Buffer.from('x')))),
        want,
        `skew ${skew}`,
      );
    }
  });

  test('short first packets are padded to varying lengths; the header alone still carries padding', () => {
    const lengths = new Set<number>();
    for (let i = 0; i < 40; i++) {
      lengths.add(new StreamWriter(k, { kind: 'request', target, clock }).write(Buffer.from('hi')).length);
    }
    assert.ok(lengths.size > 20, `only ${lengths.size} distinct first-packet lengths`);
    const bare = new StreamWriter(k, { kind: 'request', target, clock }).write(Buffer.alloc(0));
    const r = new StreamReader(k, { kind: 'request', saltPool: new SaltPool(), clock });
    assert.equal(r.push(bare).length, 0);
    assert.deepEqual(r.target, target);
    // fixed: salt 16 + 11 + 16; var: address + 2 + padding(>=1) + 16
    assert.ok(bare.length >= 16 + 27 + encodeAddress(target).length + 2 + 1 + 16);
  });

  test('a request with neither payload nor padding is rejected', () => {
    const w = new StreamWriter(k, { kind: 'request', target, clock, paddingLength: 0 });
    const r = new StreamReader(k, { kind: 'request', saltPool: new SaltPool(), clock });
    assert.equal(
      codeOf(() => r.push(w.write(Buffer.alloc(0)))),
      'bad-padding',
    );
  });

  test('a response stream fed to the server as a request is rejected by its type byte', () => {
    const w = new StreamWriter(k, { kind: 'response', requestSalt: randomBytes(16), clock });
    const wire = w.write(Buffer.alloc(100, 1));
    const r = new StreamReader(k, { kind: 'request', saltPool: new SaltPool(), clock });
    // The response header is longer than a request header, so the first 27-byte box fails to open.
    assert.notEqual(
      codeOf(() => r.push(wire)),
      'no error',
    );
  });

  test('test vector: request stream bytes are exactly as SIP022 lays them out', () => {
    const psk = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
    const spec = methodSpec('2022-blake3-aes-128-gcm');
    const key = { spec, key: psk };
    const salt = Buffer.from('00112233445566778899aabbccddeeff', 'hex');
    const ts = 0x65000000;
    const payload = Buffer.from('GET / HTTP/1.1\r\n');
    const w = new StreamWriter(key, {
      kind: 'request',
      target: makeAddress('1.2.3.4', 80),
      clock: () => ts,
      salt,
      paddingLength: 3,
    });
    const got = w.write(payload);

    // Worked out by hand from the spec:
    const subkey = Buffer.from(
      blake3(Buffer.concat([psk, salt]), {
        context: new TextEncoder().encode('shadowsocks 2022 session subkey'),
        dkLen: 16,
      }),
    );
    const nonce = (n: number) => {
      const b = Buffer.alloc(12);
      b[0] = n;
      return b;
    };
    const gcm = (n: number, plain: Buffer) => {
      const c = createCipheriv('aes-128-gcm', subkey, nonce(n));
      return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    };
    // variable header: ATYP 1, 1.2.3.4, port 80, padding length 3, 3 zero bytes, payload
    const varHeader = Buffer.concat([Buffer.from([1, 1, 2, 3, 4, 0, 80, 0, 3, 0, 0, 0]), payload]);
    const fixed = Buffer.alloc(11);
    fixed[0] = 0;
    fixed.writeBigUInt64BE(BigInt(ts), 1);
    fixed.writeUInt16BE(varHeader.length, 9);
    const want = Buffer.concat([salt, gcm(0, fixed), gcm(1, varHeader)]);
    assert.equal(got.toString('hex'), want.toString('hex'));
    assert.equal(fixed.toString('hex') + '|' + subkey.toString('hex').length, '000000000065000000001c|32');
  });

  test('test vector: response stream = salt ‖ seal(type 1, ts, request salt, len) ‖ seal(payload)', () => {
    const psk = Buffer.alloc(32, 0xab);
    const spec = methodSpec('2022-blake3-chacha20-poly1305');
    const salt = Buffer.alloc(32, 0x01);
    const reqSalt = Buffer.alloc(32, 0x02);
    const ts = 1_700_000_123;
    const w = new StreamWriter(
      { spec, key: psk },
      { kind: 'response', requestSalt: reqSalt, salt, clock: () => ts },
    );
    const got = w.write(Buffer.from('pong'));
    const subkey = Buffer.from(
      blake3(Buffer.concat([psk, salt]), {
        context: new TextEncoder().encode('shadowsocks 2022 session subkey'),
        dkLen: 32,
      }),
    );
    const seal = (n: number, plain: Buffer) => {
      const iv = Buffer.alloc(12);
      iv[0] = n;
      const c = createCipheriv('chacha20-poly1305', subkey, iv, { authTagLength: 16 });
      return Buffer.concat([c.update(plain), c.final(), c.getAuthTag()]);
    };
    const header = Buffer.alloc(1 + 8 + 32 + 2);
    header[0] = 1;
    header.writeBigUInt64BE(BigInt(ts), 1);
    reqSalt.copy(header, 9);
    header.writeUInt16BE(4, 41);
    assert.equal(
      got.toString('hex'),
      Buffer.concat([salt, seal(0, header), seal(1, Buffer.from('pong'))]).toString('hex'),
    );
  });
});
