// AEAD primitives with Shadowsocks' 12-byte little-endian counter nonce.
import { createCipheriv, createDecipheriv, type CipherGCM, type DecipherGCM } from 'node:crypto';
import type { CipherName } from '../wire/shadowsocks-methods.js';

export const TAG_SIZE = 16;

/** Thrown when a ciphertext does not authenticate. */
export class AuthError extends Error {
  override name = 'AuthError';
}

// Both AEADs expose the same setAuthTag/getAuthTag surface; the overloads differ only by name.
function newCipher(cipher: CipherName, key: Buffer, nonce: Uint8Array): CipherGCM {
  return cipher === 'chacha20-poly1305'
    ? (createCipheriv(cipher, key, nonce, { authTagLength: TAG_SIZE }) as unknown as CipherGCM)
    : createCipheriv(cipher, key, nonce, { authTagLength: TAG_SIZE });
}

function newDecipher(cipher: CipherName, key: Buffer, nonce: Uint8Array): DecipherGCM {
  return cipher === 'chacha20-poly1305'
    ? (createDecipheriv(cipher, key, nonce, { authTagLength: TAG_SIZE }) as unknown as DecipherGCM)
    : createDecipheriv(cipher, key, nonce, { authTagLength: TAG_SIZE });
}

/** Encrypts `plain` into `out` at `offset` as ciphertext ‖ tag; returns the offset after the tag. */
export function sealInto(
  cipher: CipherName,
  key: Buffer,
  nonce: Uint8Array,
  plain: Uint8Array,
  out: Buffer,
  offset: number,
): number {
  const c = newCipher(cipher, key, nonce);
  const ct = c.update(plain);
  ct.copy(out, offset);
  let o = offset + ct.length;
  const fin = c.final();
  if (fin.length) {
    fin.copy(out, o);
    o += fin.length;
  }
  c.getAuthTag().copy(out, o);
  return o + TAG_SIZE;
}

export function seal(cipher: CipherName, key: Buffer, nonce: Uint8Array, plain: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(plain.length + TAG_SIZE);
  sealInto(cipher, key, nonce, plain, out, 0);
  return out;
}

/** Decrypts ciphertext ‖ tag; throws AuthError when it does not authenticate. */
export function open(cipher: CipherName, key: Buffer, nonce: Uint8Array, sealed: Uint8Array): Buffer {
  if (sealed.length < TAG_SIZE) throw new AuthError('ciphertext shorter than its tag');
  const body = sealed.subarray(0, sealed.length - TAG_SIZE);
  const tag = sealed.subarray(sealed.length - TAG_SIZE);
  const d = newDecipher(cipher, key, nonce);
  d.setAuthTag(tag);
  const plain = d.update(body);
  try {
    d.final();
  } catch {
    throw new AuthError('authentication failed');
  }
  return plain;
}

/** One direction of a Shadowsocks stream: a subkey and a nonce counter bumped after every operation. */
export class CounterAead {
  private readonly nonce = Buffer.alloc(12);

  constructor(
    private readonly cipher: CipherName,
    private readonly key: Buffer,
  ) {}

  sealInto(plain: Uint8Array, out: Buffer, offset: number): number {
    const end = sealInto(this.cipher, this.key, this.nonce, plain, out, offset);
    this.bump();
    return end;
  }

  open(sealed: Uint8Array): Buffer {
    const plain = open(this.cipher, this.key, this.nonce, sealed);
    this.bump();
    return plain;
  }

  private bump(): void {
    for (let i = 0; i < 12; i++) {
      this.nonce[i] = (this.nonce[i]! + 1) & 0xff;
      if (this.nonce[i] !== 0) break;
    }
  }
}
