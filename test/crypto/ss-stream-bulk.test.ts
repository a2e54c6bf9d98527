// The stream sessions' fast paths: batched sealing (write, writev, writeInto), readers opening in
// bulk (in place when they own the input, on a copy otherwise) across every read split, and the same
// wire bytes whether the native addon or node:crypto does the sealing (PIGEON_NO_NATIVE=1 in a child).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { StreamReader, StreamWriter, type StreamKey } from '../../src/crypto/ss-stream.js';
import { masterKey } from '../../src/crypto/kdf.js';
import { loadNativeAead } from '../../src/crypto/native.js';
import { SaltPool } from '../../src/crypto/replay.js';
import { METHODS, methodSpec, type MethodName } from '../../src/wire/shadowsocks-methods.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { wireCode } from '../helpers/wire-error.js';

const NOW = 1_700_000_000;
const clock = () => NOW;
const target = makeAddress('example.com', 443);

function keyFor(m: MethodName): StreamKey {
  const spec = methodSpec(m);
  const pw = spec.edition === '2022' ? Buffer.alloc(spec.keySize, 0x42).toString('base64') : 'correct horse';
  return { spec, key: masterKey(spec, pw) };
}

/** Feeds wire in random pieces; `owned` pieces are fresh copies the reader may overwrite. */
function feed(r: StreamReader, wire: Buffer, owned: boolean, maxPiece = 70_000): Buffer {
  const out: Buffer[] = [];
  for (let i = 0; i < wire.length;) {
    const n = Math.min(wire.length - i, randomInt(1, Math.random() < 0.2 ? 40 : maxPiece));
    const piece = owned ? Buffer.from(wire.subarray(i, i + n)) : wire.subarray(i, i + n);
    for (const p of r.push(piece, owned)) out.push(Buffer.from(p)); // copy: later reads may reuse owned memory
    i += n;
  }
  return Buffer.concat(out);
}

function writeAll(w: StreamWriter, data: Buffer): Buffer {
  const wires: Buffer[] = [];
  let p = 0;
  while (p < data.length) {
    const mode = randomInt(3);
    if (mode === 0 || !w.hasStarted) {
      const n = Math.min(data.length - p, randomInt(1, 100_000));
      wires.push(w.write(data.subarray(p, p + n)));
      p += n;
    } else if (mode === 1) {
      const list: Buffer[] = [];
      for (let k = randomInt(1, 5); k > 0 && p < data.length; k--) {
        const n = Math.min(data.length - p, randomInt(1, 30_000));
        list.push(data.subarray(p, p + n));
        p += n;
      }
      wires.push(w.writev(list));
    } else {
      const n = Math.min(data.length - p, randomInt(1, 100_000));
      const out = Buffer.alloc(w.sealedSize(n) + 3);
      assert.equal(w.writeInto(data.subarray(p, p + n), out, 3), out.length);
      wires.push(out.subarray(3));
      p += n;
    }
  }
  return Buffer.concat(wires);
}

for (const m of METHODS) {
  describe(m, () => {
    const k = keyFor(m);

    test('request and response streams round-trip through bulk opening, owned or not', () => {
      for (const owned of [true, false]) {
        const data = randomBytes(randomInt(200_000, 600_000));
        const w = new StreamWriter(k, { kind: 'request', target, clock });
        const wire = writeAll(w, data);
        const copy = Buffer.from(wire);
        const r = new StreamReader(k, { kind: 'request', saltPool: new SaltPool(), clock });
        assert.ok(feed(r, wire, owned).equals(data), `request, owned: ${owned}`);
        assert.deepEqual(r.target, target);
        assert.equal(r.atBoundary, true);
        assert.equal(r.pending, 0);
        assert.ok(wire.equals(copy), 'input the reader does not own is left alone');

        const reqSalt = randomBytes(k.spec.saltSize);
        const rw = new StreamWriter(k, { kind: 'response', requestSalt: reqSalt, clock });
        const rwire = writeAll(rw, data);
        const rr = new StreamReader(k, { kind: 'response', requestSalt: reqSalt, clock });
        assert.ok(feed(rr, rwire, owned).equals(data), `response, owned: ${owned}`);
        assert.equal(rr.atBoundary, true);
      }
    });

    test('a stream cut inside a chunk is not at a boundary; a flipped bit is refused in bulk mode', () => {
      const data = randomBytes(100_000);
      const w = new StreamWriter(k, { kind: 'request', target, clock });
      const wire = Buffer.concat([w.write(data.subarray(0, 10)), w.write(data.subarray(10))]);
      const r = new StreamReader(k, { kind: 'request', saltPool: new SaltPool(), clock });
      feed(r, wire.subarray(0, wire.length - 5), true);
      assert.equal(r.atBoundary, false);
      assert.ok(r.pending > 0);
      for (const at of [wire.length - 20, wire.length - 40_000, wire.length - 16_420]) {
        const bad = Buffer.from(wire);
        bad[at]! ^= 0x80;
        const r2 = new StreamReader(k, { kind: 'request', saltPool: new SaltPool(), clock });
        assert.equal(
          wireCode(() => feed(r2, bad, true, 20_000)),
          'auth',
          `flip at ${at}`,
        );
      }
    });
  });
}

describe('native and JavaScript sealing give the same wire bytes for every method', () => {
  // A deterministic stream (fixed salt, clock, padding, data and write sizes) sealed here and in a
  // child with PIGEON_NO_NATIVE=1; equal digests mean equal bytes.
  const digestScript = (src: string) => `
    const { StreamWriter } = await import(${JSON.stringify(src + '/crypto/ss-stream.ts')});
    const { masterKey } = await import(${JSON.stringify(src + '/crypto/kdf.ts')});
    const { METHODS, methodSpec } = await import(${JSON.stringify(src + '/wire/shadowsocks-methods.ts')});
    const { makeAddress } = await import(${JSON.stringify(src + '/wire/socks-address.ts')});
    const { createHash } = await import('node:crypto');
    const data = Buffer.alloc(300000);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7919) >>> 3;
    const out = {};
    for (const m of METHODS) {
      const spec = methodSpec(m);
      const pw = spec.edition === '2022' ? Buffer.alloc(spec.keySize, 0x42).toString('base64') : 'correct horse';
      const w = new StreamWriter({ spec, key: masterKey(spec, pw) }, {
        kind: 'request', target: makeAddress('example.com', 443), clock: () => ${NOW},
        salt: Buffer.alloc(spec.saltSize, 9), paddingLength: 5,
      });
      const h = createHash('sha256');
      let p = 0;
      for (const n of [1, 100, 16383, 16384, 65536, 70000, 5]) { h.update(w.write(data.subarray(p, p + n))); p += n; }
      h.update(w.writev([data.subarray(p, p + 1000), data.subarray(p + 1000, p + 50000)]));
      out[m] = h.digest('hex');
    }
    console.log(JSON.stringify(out));`;

  test('digests match', () => {
    const src = fileURLToPath(new URL('../../src', import.meta.url));
    const run = (noNative: string) => {
      const r = spawnSync(
        process.execPath,
        ['--import', 'tsx', '--input-type=module', '-e', digestScript(src)],
        {
          env: { ...process.env, PIGEON_NO_NATIVE: noNative },
          encoding: 'utf8',
        },
      );
      assert.equal(r.status, 0, r.stderr);
      return JSON.parse(r.stdout) as Record<string, string>;
    };
    const js = run('1');
    const native = run('');
    assert.deepEqual(Object.keys(js), [...METHODS]);
    if (loadNativeAead().binding) assert.deepEqual(native, js);
    // Sanity: the digests are of real, distinct streams.
    assert.equal(new Set(Object.values(js)).size, METHODS.length);
    assert.notEqual(js[METHODS[0]], createHash('sha256').digest('hex'));
  });
});
