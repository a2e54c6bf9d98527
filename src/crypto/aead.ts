// AEAD primitives with Shadowsocks' 12-byte little-endian counter nonce, in two interchangeable
// implementations: the native addon (native/aead.c: one OpenSSL context per stream direction, keyed
// once) when it was built, and node:crypto (one createCipheriv per operation) otherwise. Both produce
// the same bytes; test/crypto/aead-native.test.ts holds them to it.
import { createCipheriv, createDecipheriv, type CipherGCM, type DecipherGCM } from 'node:crypto';
import type { CipherName } from '../wire/shadowsocks-methods.js';
import { nativeAead, type NativeAeadBinding, type NativeContext } from './native.js';

export const TAG_SIZE = 16;
/** A sealed length chunk: 2-byte big-endian length ‖ tag. */
export const LENGTH_CHUNK_SIZE = 2 + TAG_SIZE;

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

const CIPHER_IDS: Record<CipherName, number> = { 'aes-128-gcm': 0, 'aes-256-gcm': 1, 'chacha20-poly1305': 2 };

/**
 * One-shot AEAD (a key or nonce used once: UDP packets, headers): the addon when it loaded (a cached
 * OpenSSL context re-keyed per call), node:crypto otherwise. Encrypts `plain` into `out` at `offset`
 * as ciphertext ‖ tag; returns the offset after the tag.
 */
export function sealInto(
  cipher: CipherName,
  key: Buffer,
  nonce: Uint8Array,
  plain: Uint8Array,
  out: Buffer,
  offset: number,
): number {
  return nativeAead
    ? nativeAead.packetSeal(CIPHER_IDS[cipher], key, nonce, plain, out, offset)
    : jsSealInto(cipher, key, nonce, plain, out, offset);
}

/** node:crypto's one-shot seal (the JavaScript path; also what the tests hold the addon to). */
export function jsSealInto(
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

/** Decrypts ciphertext ‖ tag (one-shot, like sealInto); throws AuthError when it does not authenticate. */
export function open(cipher: CipherName, key: Buffer, nonce: Uint8Array, sealed: Uint8Array): Buffer {
  if (!nativeAead) return jsOpen(cipher, key, nonce, sealed);
  if (sealed.length < TAG_SIZE) throw new AuthError('ciphertext shorter than its tag');
  const out = Buffer.allocUnsafe(sealed.length - TAG_SIZE);
  if (nativeAead.packetOpen(CIPHER_IDS[cipher], key, nonce, sealed, out, 0) < 0) {
    throw new AuthError('authentication failed');
  }
  return out;
}

/** node:crypto's one-shot open. */
export function jsOpen(cipher: CipherName, key: Buffer, nonce: Uint8Array, sealed: Uint8Array): Buffer {
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

// ---------------------------------------------------------------------------------------------
// Counter-nonce AEAD for one direction of a stream.

/** Results of openChunks: a non-negative code is success. */
export const OPEN_OK = 0;
export const OPEN_AUTH = -1;
export const OPEN_TOO_LONG = -2;
export const OPEN_ZERO = -3;

/** What both implementations provide. Every operation bumps the nonce once. */
interface CounterImpl {
  sealInto(plain: Uint8Array, out: Buffer, offset: number): number;
  /** Opens into out at offset; returns the plaintext length or -1 when it does not authenticate. */
  openInto(sealed: Uint8Array, out: Buffer, offset: number): number;
  sealChunks(data: Uint8Array, from: number, to: number, max: number, out: Buffer, offset: number): number;
  openChunks(
    wire: Uint8Array,
    from: number,
    to: number,
    max: number,
    pending: number,
    out: Buffer,
    offset: number,
    state: Int32Array,
  ): number;
  /** Opens a ‖ b[0..bLength) in place; returns the plaintext length or -1. */
  openPair(a: Buffer, b: Buffer, bLength: number): number;
}

class JsCounter implements CounterImpl {
  private readonly nonce = Buffer.alloc(12);
  private readonly lenBuf = Buffer.allocUnsafe(2);

  constructor(
    private readonly cipher: CipherName,
    private readonly key: Buffer,
    nonce?: Uint8Array,
  ) {
    if (nonce) this.nonce.set(nonce);
  }

  sealInto(plain: Uint8Array, out: Buffer, offset: number): number {
    const end = jsSealInto(this.cipher, this.key, this.nonce, plain, out, offset);
    this.bump();
    return end;
  }

  openInto(sealed: Uint8Array, out: Buffer, offset: number): number {
    let plain: Buffer;
    try {
      plain = jsOpen(this.cipher, this.key, this.nonce, sealed);
    } catch (e) {
      if (e instanceof AuthError) return -1;
      throw e;
    }
    this.bump();
    plain.copy(out, offset);
    return plain.length;
  }

  sealChunks(data: Uint8Array, from: number, to: number, max: number, out: Buffer, o: number): number {
    for (let p = from; p < to; p += max) {
      const n = Math.min(max, to - p);
      this.lenBuf.writeUInt16BE(n, 0);
      o = this.sealInto(this.lenBuf, out, o);
      o = this.sealInto(data.subarray(p, p + n), out, o);
    }
    return o;
  }

  openChunks(
    wire: Uint8Array,
    from: number,
    to: number,
    max: number,
    pending: number,
    out: Buffer,
    o: number,
    state: Int32Array,
  ): number {
    let p = from;
    let code = OPEN_OK;
    const len = this.lenBuf;
    for (;;) {
      if (pending === 0) {
        if (to - p < LENGTH_CHUNK_SIZE) break;
        if (this.openInto(wire.subarray(p, p + LENGTH_CHUNK_SIZE), len, 0) < 0) {
          code = OPEN_AUTH;
          break;
        }
        p += LENGTH_CHUNK_SIZE;
        pending = len.readUInt16BE(0);
        if (pending > max) {
          code = OPEN_TOO_LONG;
          break;
        }
        if (pending === 0) {
          code = OPEN_ZERO;
          break;
        }
      }
      if (to - p < pending + TAG_SIZE) break;
      if (this.openInto(wire.subarray(p, p + pending + TAG_SIZE), out, o) < 0) {
        code = OPEN_AUTH;
        break;
      }
      p += pending + TAG_SIZE;
      o += pending;
      pending = 0;
    }
    state[0] = p;
    state[1] = o;
    state[2] = pending;
    return code;
  }

  openPair(a: Buffer, b: Buffer, bLength: number): number {
    const total = a.length + bLength;
    if (total < TAG_SIZE) return -1;
    const plen = total - TAG_SIZE;
    const tag = Buffer.allocUnsafe(TAG_SIZE);
    for (let i = 0; i < TAG_SIZE; i++) {
      const k = plen + i;
      tag[i] = k < a.length ? a[k]! : b[k - a.length]!;
    }
    const inA = Math.min(plen, a.length);
    const d = newDecipher(this.cipher, this.key, this.nonce);
    d.setAuthTag(tag);
    const pa = d.update(a.subarray(0, inA));
    const pb = d.update(b.subarray(0, plen - inA));
    try {
      d.final();
    } catch {
      return -1;
    }
    // GCM and ChaCha20 are stream modes: update() returns as many bytes as it was given.
    pa.copy(a, 0);
    pb.copy(b, 0);
    this.bump();
    return plen;
  }

  private bump(): void {
    for (let i = 0; i < 12; i++) {
      this.nonce[i] = (this.nonce[i]! + 1) & 0xff;
      if (this.nonce[i] !== 0) break;
    }
  }
}

/** One OpenSSL context, made on first use for the direction of that use (a stream direction seals or opens, never both). */
class NativeCounter implements CounterImpl {
  private ctx: NativeContext | undefined;
  private encrypt: boolean | undefined;

  constructor(
    private readonly n: NativeAeadBinding,
    private readonly cipher: CipherName,
    private key: Buffer | undefined,
    private readonly nonce?: Uint8Array,
  ) {}

  private context(encrypt: boolean): NativeContext {
    if (this.encrypt === encrypt) return this.ctx!;
    if (this.encrypt !== undefined) throw new Error('a counter AEAD seals or opens, not both');
    this.ctx = this.n.create(CIPHER_IDS[this.cipher], this.key!, encrypt, this.nonce);
    this.encrypt = encrypt;
    this.key = undefined;
    return this.ctx;
  }

  sealInto(plain: Uint8Array, out: Buffer, offset: number): number {
    return this.n.seal(this.context(true), plain, out, offset);
  }

  openInto(sealed: Uint8Array, out: Buffer, offset: number): number {
    return this.n.open(this.context(false), sealed, out, offset);
  }

  sealChunks(data: Uint8Array, from: number, to: number, max: number, out: Buffer, offset: number): number {
    return this.n.sealChunks(this.context(true), data, from, to, max, out, offset);
  }

  openChunks(
    wire: Uint8Array,
    from: number,
    to: number,
    max: number,
    pending: number,
    out: Buffer,
    offset: number,
    state: Int32Array,
  ): number {
    return this.n.openChunks(this.context(false), wire, from, to, max, pending, out, offset, state);
  }

  openPair(a: Buffer, b: Buffer, bLength: number): number {
    return this.n.openPair(this.context(false), a, b, bLength);
  }
}

export interface CounterAeadOptions {
  /** The starting nonce (tests: wrap-around); default all zero. */
  nonce?: Uint8Array;
  /** Force an implementation; default native when the addon loaded and PIGEON_NO_NATIVE is unset. */
  binding?: NativeAeadBinding | null;
}

/** One direction of a Shadowsocks stream: a subkey and a nonce counter bumped after every operation. */
export class CounterAead {
  private readonly impl: CounterImpl;
  /** True when the native addon does the work. */
  readonly native: boolean;

  constructor(cipher: CipherName, key: Buffer, opts: CounterAeadOptions = {}) {
    const n = opts.binding === undefined ? nativeAead : (opts.binding ?? undefined);
    this.native = n !== undefined;
    this.impl = n ? new NativeCounter(n, cipher, key, opts.nonce) : new JsCounter(cipher, key, opts.nonce);
  }

  sealInto(plain: Uint8Array, out: Buffer, offset: number): number {
    return this.impl.sealInto(plain, out, offset);
  }

  /** Decrypts ciphertext ‖ tag into a new buffer; throws AuthError when it does not authenticate. */
  open(sealed: Uint8Array): Buffer {
    if (sealed.length < TAG_SIZE) throw new AuthError('ciphertext shorter than its tag');
    const out = Buffer.allocUnsafe(sealed.length - TAG_SIZE);
    if (this.impl.openInto(sealed, out, 0) < 0) throw new AuthError('authentication failed');
    return out;
  }

  /** Decrypts ciphertext ‖ tag into out at offset; returns the plaintext length; throws AuthError. */
  openInto(sealed: Uint8Array, out: Buffer, offset: number): number {
    if (sealed.length < TAG_SIZE) throw new AuthError('ciphertext shorter than its tag');
    const n = this.impl.openInto(sealed, out, offset);
    if (n < 0) throw new AuthError('authentication failed');
    return n;
  }

  /**
   * Seals data[from..to) as Shadowsocks chunks (sealed 2-byte length, then sealed payload of at most
   * `max` bytes) into out at offset; returns the offset after the last chunk.
   */
  sealChunks(data: Uint8Array, from: number, to: number, max: number, out: Buffer, offset: number): number {
    return this.impl.sealChunks(data, from, to, max, out, offset);
  }

  /**
   * Opens every whole chunk in wire[from..to) into out at offset. `pending` is the payload length of
   * a length chunk already opened (0: a length chunk comes next). Sets state to [input offset
   * reached, output offset reached, pending length] and returns OPEN_OK or a negative OPEN_* code.
   * `out` may be `wire` itself with offset <= from: the plaintext then replaces the wire bytes,
   * contiguous from offset on (the caller must own `wire`).
   */
  openChunks(
    wire: Uint8Array,
    from: number,
    to: number,
    max: number,
    pending: number,
    out: Buffer,
    offset: number,
    state: Int32Array,
  ): number {
    return this.impl.openChunks(wire, from, to, max, pending, out, offset, state);
  }

  /**
   * Opens in place one sealed chunk that arrived in two pieces, a ‖ b[0..bLength) (the caller owns
   * both): its plaintext is left in a, then b. Returns the plaintext length, or -1 (OPEN_AUTH) if
   * it does not authenticate.
   */
  openPair(a: Buffer, b: Buffer, bLength: number): number {
    return this.impl.openPair(a, b, bLength);
  }
}

/** Sealed size of n payload bytes cut into chunks of at most max. */
export function chunksWireSize(n: number, max: number): number {
  const full = Math.floor(n / max);
  const tail = n % max;
  return full * (LENGTH_CHUNK_SIZE + max + TAG_SIZE) + (tail ? LENGTH_CHUNK_SIZE + tail + TAG_SIZE : 0);
}
