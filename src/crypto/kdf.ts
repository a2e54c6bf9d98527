// Key derivation for both Shadowsocks editions.
import { createHash, hkdfSync } from 'node:crypto';
import { blake3 } from '@noble/hashes/blake3.js';
import type { MethodSpec } from '../wire/shadowsocks-methods.js';

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

/** SIP004 session subkey: HKDF-SHA1(key, salt, "ss-subkey"). */
export function aeadSubkey(key: Buffer, salt: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha1', key, salt, SS_SUBKEY_INFO, key.length));
}

/** SIP022 session subkey: BLAKE3 derive_key("shadowsocks 2022 session subkey", psk ‖ salt). */
export function ss2022Subkey(psk: Buffer, salt: Uint8Array): Buffer {
  const material = Buffer.allocUnsafe(psk.length + salt.length);
  psk.copy(material, 0);
  material.set(salt, psk.length);
  const out = blake3(material, { context: SS2022_SUBKEY_CONTEXT, dkLen: psk.length });
  return Buffer.from(out.buffer, out.byteOffset, out.byteLength);
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
