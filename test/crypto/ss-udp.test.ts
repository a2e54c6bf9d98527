import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import { blake3 } from '@noble/hashes/blake3.js';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';
import {
  UdpClientSession,
  UdpServerSession,
  openClientPacket,
  sealAeadPacket,
} from '../../src/crypto/ss-udp.js';
import { masterKey } from '../../src/crypto/kdf.js';
import { METHODS, methodSpec, type MethodName } from '../../src/wire/shadowsocks-methods.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { wireCode } from '../helpers/wire-error.js';

const NOW = 1_700_000_000;
const clock = () => NOW;

function keyFor(m: MethodName) {
  const spec = methodSpec(m);
  const pw = spec.edition === '2022' ? Buffer.alloc(spec.keySize, 0x17).toString('base64') : 'udp secret';
  return { spec, key: masterKey(spec, pw) };
}

const code = wireCode;

const dns = makeAddress('8.8.8.8', 53);

for (const m of METHODS) {
  describe(`${m} UDP`, () => {
    const k = keyFor(m);
    test('client → server → client round trip', () => {
      const client = new UdpClientSession(k, clock);
      const payload = randomBytes(1200);
      const p = openClientPacket(k, client.seal({ address: dns, payload }), clock);
      assert.deepEqual(p.address, dns);
      assert.ok(p.payload.equals(payload));
      const reply = { address: dns, payload: Buffer.from('answer') };
      let packet: Buffer;
      if (k.spec.edition === '2022') {
        const s = new UdpServerSession(k, p.sessionId!, clock);
        assert.equal(s.accept(p.packetId!), true);
        assert.equal(s.accept(p.packetId!), false, 'a replayed packet ID is refused');
        packet = s.seal(reply);
      } else {
        packet = sealAeadPacket(k, reply);
      }
      const back = client.open(packet);
      assert.deepEqual(back.address, dns);
      assert.equal(back.payload.toString(), 'answer');
      if (k.spec.edition === '2022')
        assert.equal(
          code(() => client.open(packet)),
          'replay',
        );
    });

    test('corrupt, truncated and random packets are rejected with WireError', () => {
      const client = new UdpClientSession(k, clock);
      const good = client.seal({ address: dns, payload: Buffer.from('x') });
      for (let i = 0; i < good.length; i++) {
        const bad = Buffer.from(good);
        bad[i] ^= 0x80;
        assert.notEqual(
          code(() => openClientPacket(k, bad, clock)),
          'no error',
          `flip at ${i}`,
        );
      }
      for (let n = 0; n < good.length; n++) {
        assert.notEqual(
          code(() => openClientPacket(k, good.subarray(0, n), clock)),
          'no error',
        );
      }
      for (let n = 0; n < 100; n++) {
        assert.notEqual(
          code(() => openClientPacket(k, randomBytes(n * 7), clock)),
          'no error',
        );
      }
    });
  });
}

describe('SIP022 UDP', () => {
  test('packet IDs count up within a session and session IDs differ between sessions', () => {
    const k = keyFor('2022-blake3-aes-256-gcm');
    const c = new UdpClientSession(k, clock);
    const ids = [0, 1, 2].map(() =>
      openClientPacket(k, c.seal({ address: dns, payload: Buffer.from('a') }), clock),
    );
    assert.deepEqual(
      ids.map((p) => p.packetId),
      [0n, 1n, 2n],
    );
    assert.ok(ids.every((p) => p.sessionId!.equals(ids[0]!.sessionId!)));
    const other = openClientPacket(
      k,
      new UdpClientSession(k, clock).seal({ address: dns, payload: Buffer.from('a') }),
      clock,
    );
    assert.ok(!other.sessionId!.equals(ids[0]!.sessionId!));
  });

  test('stale timestamps are rejected', () => {
    const k = keyFor('2022-blake3-aes-128-gcm');
    const c = new UdpClientSession(k, () => NOW - 31);
    assert.equal(
      code(() => openClientPacket(k, c.seal({ address: dns, payload: Buffer.from('a') }), clock)),
      'bad-timestamp',
    );
  });

  test('a reply for another client session is refused', () => {
    const k = keyFor('2022-blake3-aes-128-gcm');
    const a = new UdpClientSession(k, clock);
    const b = new UdpClientSession(k, clock);
    const pa = openClientPacket(k, a.seal({ address: dns, payload: Buffer.from('a') }), clock);
    const reply = new UdpServerSession(k, pa.sessionId!, clock).seal({
      address: dns,
      payload: Buffer.from('r'),
    });
    assert.equal(
      code(() => b.open(reply)),
      'bad-session',
    );
    assert.equal(a.open(reply).payload.toString(), 'r');
  });

  test('test vector (AES): a packet laid out by hand from the spec is understood', () => {
    const psk = Buffer.from('000102030405060708090a0b0c0d0e0f', 'hex');
    const k = { spec: methodSpec('2022-blake3-aes-128-gcm'), key: psk };
    const sessionId = Buffer.from('1122334455667788', 'hex');
    const header = Buffer.concat([sessionId, Buffer.from('0000000000000005', 'hex')]);
    const body = Buffer.alloc(1 + 8 + 2 + 2 + 7 + 5);
    body[0] = 0; // client packet
    body.writeBigUInt64BE(BigInt(NOW), 1);
    body.writeUInt16BE(2, 9); // padding length
    Buffer.from([1, 8, 8, 8, 8, 0, 53]).copy(body, 13);
    Buffer.from('query').copy(body, 20);
    const subkey = Buffer.from(
      blake3(Buffer.concat([psk, sessionId]), {
        context: new TextEncoder().encode('shadowsocks 2022 session subkey'),
        dkLen: 16,
      }),
    );
    const ecb = createCipheriv('aes-128-ecb', psk, null).setAutoPadding(false);
    const encHeader = Buffer.concat([ecb.update(header), ecb.final()]);
    const gcm = createCipheriv('aes-128-gcm', subkey, header.subarray(4, 16));
    const packet = Buffer.concat([encHeader, gcm.update(body), gcm.final(), gcm.getAuthTag()]);
    const p = openClientPacket(k, packet, clock);
    assert.equal(p.packetId, 5n);
    assert.ok(p.sessionId!.equals(sessionId));
    assert.deepEqual(p.address, dns);
    assert.equal(p.payload.toString(), 'query');
  });

  test('test vector (chacha): XChaCha20-Poly1305 with the PSK over session ‖ packet ID ‖ message', () => {
    const psk = Buffer.alloc(32, 0x5a);
    const k = { spec: methodSpec('2022-blake3-chacha20-poly1305'), key: psk };
    const nonce = Buffer.alloc(24, 0x33);
    const plain = Buffer.alloc(8 + 8 + 1 + 8 + 2 + 7 + 4);
    Buffer.from('a1a2a3a4a5a6a7a8', 'hex').copy(plain, 0);
    plain.writeBigUInt64BE(9n, 8);
    plain[16] = 0;
    plain.writeBigUInt64BE(BigInt(NOW), 17);
    plain.writeUInt16BE(0, 25);
    Buffer.from([1, 8, 8, 8, 8, 0, 53]).copy(plain, 27);
    Buffer.from('ping').copy(plain, 34);
    const packet = Buffer.concat([nonce, xchacha20poly1305(psk, nonce).encrypt(plain)]);
    const p = openClientPacket(k, packet, clock);
    assert.equal(p.packetId, 9n);
    assert.equal(p.sessionId!.toString('hex'), 'a1a2a3a4a5a6a7a8');
    assert.equal(p.payload.toString(), 'ping');
  });
});
