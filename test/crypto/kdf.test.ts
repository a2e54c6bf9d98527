import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { blake3 } from '@noble/hashes/blake3.js';
import {
  aeadSubkey,
  decodePsk,
  evpBytesToKey,
  masterKey,
  ss2022Subkey,
  KeyError,
} from '../../src/crypto/kdf.js';
import { methodSpec } from '../../src/wire/shadowsocks-methods.js';

test('EVP_BytesToKey: first block is MD5(password), next is MD5(prev ‖ password)', () => {
  assert.equal(evpBytesToKey('password', 16).toString('hex'), '5f4dcc3b5aa765d61d8327deb882cf99');
  const k32 = evpBytesToKey('password', 32);
  const second = createHash('md5')
    .update(Buffer.from('5f4dcc3b5aa765d61d8327deb882cf99', 'hex'))
    .update('password')
    .digest('hex');
  assert.equal(k32.toString('hex'), '5f4dcc3b5aa765d61d8327deb882cf99' + second);
});

test('BLAKE3 derive_key matches the official test vectors (input i mod 251)', () => {
  const ctx = new TextEncoder().encode('BLAKE3 2019-12-27 16:29:52 test vectors context');
  const input = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 251);
  const hex = (n: number) => Buffer.from(blake3(input(n), { context: ctx, dkLen: 32 })).toString('hex');
  assert.equal(hex(0), '2cc39783c223154fea8dfb7c1b1660f2ac2dcbd1c1de8277b0b0dd39b7e50d7d');
  assert.equal(hex(1), 'b3e2e340a117a499c6cf2398a19ee0d29cca2bb7404c73063382693bf66cb06c');
  assert.equal(hex(1024), '7356cd7720d5b66b6d0697eb3177d9f8d73a4a5c5e968896eb6a689684302706');
});

test('2022 subkey is derive_key("shadowsocks 2022 session subkey", psk ‖ salt) of the key size', () => {
  const psk = Buffer.alloc(16, 1);
  const salt = Buffer.alloc(16, 2);
  const want = blake3(Buffer.concat([psk, salt]), {
    context: new TextEncoder().encode('shadowsocks 2022 session subkey'),
    dkLen: 16,
  });
  assert.deepEqual(ss2022Subkey(psk, salt), Buffer.from(want));
  assert.equal(ss2022Subkey(Buffer.alloc(32, 1), Buffer.alloc(32, 2)).length, 32);
});

test('SIP004 subkey equals node:crypto HKDF-SHA1 with info "ss-subkey" for both key sizes', () => {
  for (const size of [16, 32]) {
    for (let i = 0; i < 20; i++) {
      const key = randomBytes(size);
      const salt = randomBytes(size);
      assert.deepEqual(aeadSubkey(key, salt), Buffer.from(hkdfSync('sha1', key, salt, 'ss-subkey', size)));
    }
  }
});

test('SIP004 subkey depends on the salt', () => {
  const key = evpBytesToKey('pw', 32);
  const a = aeadSubkey(key, Buffer.alloc(32, 1));
  const b = aeadSubkey(key, Buffer.alloc(32, 2));
  assert.equal(a.length, 32);
  assert.notDeepEqual(a, b);
});

test('2022 PSKs must be base64 of exactly the key size, with a helpful message', () => {
  const spec = methodSpec('2022-blake3-aes-128-gcm');
  assert.equal(decodePsk(spec, Buffer.alloc(16, 7).toString('base64')).length, 16);
  assert.throws(
    () => decodePsk(spec, Buffer.alloc(32).toString('base64')),
    /needs a base64 key of 16 bytes, this one has 32/,
  );
  assert.throws(() => decodePsk(spec, 'not base64!'), KeyError);
  // multi-user form: the last PSK is the user's
  const u = Buffer.alloc(16, 9);
  assert.deepEqual(masterKey(spec, `${Buffer.alloc(16, 1).toString('base64')}:${u.toString('base64')}`), u);
});

test('SIP004 refuses an empty password', () => {
  assert.throws(() => masterKey(methodSpec('aes-128-gcm'), ''), KeyError);
});
