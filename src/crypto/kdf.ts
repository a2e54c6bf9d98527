// Key derivation for both Shadowsocks editions.
import { createCipheriv, createDecipheriv, createHash, createHmac } from 'node:crypto';
import { blake3 } from '@noble/hashes/blake3.js';
import type { MethodSpec } from '../wire/shadowsocks-methods.js';
import { nativeAead } from './native.js';

/** OpenSSL's EVP_BytesToKey with MD5 and no salt, as SIP004 uses to turn a password into a key. */
export function evpBytesToKey(password: string, keySize: number): Buffer {
  const pass = Buffer.from(password, 'utf8');
  const parts: Buffer[] = [];
  let prev = Buffer.alloc(0);
  let have = 0;
  while (have < keySize) {
    prev = createHash('md5').update(prev).update(pass).digest();
    parts.push(prev);
    have += prev.length;
  }
  return Buffer.concat(parts).subarray(0, keySize);
}

const SS_SUBKEY_INFO = Buffer.from('ss-subkey');
const SS2022_SUBKEY_CONTEXT = new TextEncoder().encode('shadowsocks 2022 session subkey');
const SS2022_IDENTITY_CONTEXT = new TextEncoder().encode('shadowsocks 2022 identity subkey');

/**
 * SIP004 session subkey: HKDF-SHA1(key, salt, "ss-subkey") (RFC 5869), written out with two or three
 * HMACs because `hkdfSync` costs nearly twice as much per call, and a multi-key server derives one
 * subkey per key it tries. Checked against `hkdfSync` in the tests.
 */
export function aeadSubkey(key: Buffer, salt: Uint8Array): Buffer {
  if (!nativeSubkey) return jsAeadSubkey(key, salt);
  const out = Buffer.allocUnsafe(key.length);
  nativeSubkey.subkey(key, salt, out);
  return out;
}

/** The addon's HKDF-SHA1 (about 1 µs against 14 µs here), when it loaded and found OpenSSL's SHA-1. */
const nativeSubkey = nativeAead?.hasSubkey ? nativeAead : undefined;

/** aeadSubkey in JavaScript (the fallback, and the reference the addon is tested against). */
export function jsAeadSubkey(key: Buffer, salt: Uint8Array): Buffer {
  const prk = createHmac('sha1', salt).update(key).digest();
  const blocks: Buffer[] = [];
  let prev = Buffer.alloc(0);
  for (let i = 1, have = 0; have < key.length; i++) {
    prev = createHmac('sha1', prk).update(prev).update(SS_SUBKEY_INFO).update(Buffer.of(i)).digest();
    blocks.push(prev);
    have += prev.length;
  }
  return Buffer.concat(blocks).subarray(0, key.length);
}

/** SIP022 session subkey: BLAKE3 derive_key("shadowsocks 2022 session subkey", psk ‖ salt). */
export function ss2022Subkey(psk: Buffer, salt: Uint8Array): Buffer {
  const material = Buffer.allocUnsafe(psk.length + salt.length);
  psk.copy(material, 0);
  material.set(salt, psk.length);
  const out = blake3(material, { context: SS2022_SUBKEY_CONTEXT, dkLen: psk.length });
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** SIP023 TCP identity subkey: BLAKE3 derive_key("shadowsocks 2022 identity subkey", iPSK ‖ salt). */
export function identitySubkey(ipsk: Buffer, salt: Uint8Array): Buffer {
  const out = blake3(Buffer.concat([ipsk, salt]), { context: SS2022_IDENTITY_CONTEXT, dkLen: ipsk.length });
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
}

/** SIP023 PSK hash: the first 16 bytes of BLAKE3(psk), what an identity header carries. */
export function pskHash(psk: Buffer): Buffer {
  return Buffer.from(blake3(psk).subarray(0, 16));
}

/** AES-ECB on one 16-byte block (SIP022 UDP separate headers, SIP023 identity headers). */
export function aesBlock(key: Buffer, encrypt: boolean, block: Uint8Array): Buffer {
  const name = key.length === 16 ? 'aes-128-ecb' : 'aes-256-ecb';
  const c = encrypt ? createCipheriv(name, key, null) : createDecipheriv(name, key, null);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(block), c.final()]);
}

export function sessionSubkey(spec: MethodSpec, key: Buffer, salt: Uint8Array): Buffer {
  return spec.edition === 'aead' ? aeadSubkey(key, salt) : ss2022Subkey(key, salt);
}

export class KeyError extends Error {
  override name = 'KeyError';
}

/**
 * The master key of a method: SIP004 derives it from the password; SIP022 takes a base64 PSK of exactly
 * the key size. For 2022 multi-user passwords "iPSK:uPSK" the last PSK is this user's key.
 */
export function masterKey(spec: MethodSpec, password: string): Buffer {
  if (spec.edition === 'aead') {
    if (password.length === 0) throw new KeyError('the password must not be empty');
    return evpBytesToKey(password, spec.keySize);
  }
  const psks = password.split(':');
  const keys = psks.map((p) => decodePsk(spec, p));
  return keys[keys.length - 1]!;
}

/**
 * SIP023: the identity PSKs before the user's own in "iPSK1:…:uPSK" (empty for a plain key). Only the
 * AES methods define identity headers.
 */
export function identityKeys(spec: MethodSpec, password: string): Buffer[] {
  if (spec.edition !== '2022') return [];
  const psks = password.split(':');
  if (psks.length > 1 && spec.cipher === 'chacha20-poly1305') {
    throw new KeyError(
      `${spec.name} has no identity headers; multi-user "iPSK:uPSK" keys need an AES method`,
    );
  }
  return psks.slice(0, -1).map((p) => decodePsk(spec, p));
}

export function decodePsk(spec: MethodSpec, text: string): Buffer {
  const trimmed = text.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) {
    throw new KeyError(
      `${spec.name} needs a base64 key of ${spec.keySize} bytes (e.g. from \`openssl rand -base64 ${spec.keySize}\`)`,
    );
  }
  const key = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (key.length !== spec.keySize) {
    throw new KeyError(
      `${spec.name} needs a base64 key of ${spec.keySize} bytes, this one has ${key.length} (generate one with \`openssl rand -base64 ${spec.keySize}\`)`,
    );
  }
  return key;
}
