// The native AEAD addon (native/aead.c), when `npm install` managed to build it. Loaded from the
// build folder next to src/ and dist/; PIGEON_NO_NATIVE=1 makes Pigeon ignore it (the JavaScript
// path then does the same work with one createCipheriv per chunk).
import { createRequire } from 'node:module';

/** An OpenSSL cipher context keyed once for one direction of one stream (opaque). */
export type NativeContext = object & { readonly __nativeAeadContext: unique symbol };

export interface NativeAeadBinding {
  /** cipher: 0 aes-128-gcm, 1 aes-256-gcm, 2 chacha20-poly1305; nonce: the starting counter (12 bytes). */
  create(cipher: number, key: Uint8Array, encrypt: boolean, nonce?: Uint8Array): NativeContext;
  /** Seals plain into out at offset (ciphertext ‖ tag); returns the offset after the tag. */
  seal(ctx: NativeContext, plain: Uint8Array, out: Uint8Array, offset: number): number;
  /** Opens ciphertext ‖ tag into out at offset; returns the plaintext length, or -1 if it does not authenticate. */
  open(ctx: NativeContext, sealed: Uint8Array, out: Uint8Array, offset: number): number;
  /** Seals data[from..to) as length+payload chunk pairs of at most max bytes; returns the offset reached. */
  sealChunks(
    ctx: NativeContext,
    data: Uint8Array,
    from: number,
    to: number,
    max: number,
    out: Uint8Array,
    offset: number,
  ): number;
  /**
   * Opens every whole chunk in wire[from..to) into out; state receives [input offset reached, output
   * offset reached, pending payload length]. Returns 0, or -1 auth, -2 too long, -3 zero length.
   */
  openChunks(
    ctx: NativeContext,
    wire: Uint8Array,
    from: number,
    to: number,
    max: number,
    pending: number,
    out: Uint8Array,
    offset: number,
    state: Int32Array,
  ): number;
  /**
   * Opens one sealed chunk that arrived in two pieces (a ‖ b[0..bLength)) in place: the plaintext is
   * left in a, then b. Returns its length, or -1 if it does not authenticate.
   */
  openPair(ctx: NativeContext, a: Uint8Array, b: Uint8Array, bLength: number): number;
  /** One-shot seal with this key and nonce (a cached context re-keyed); returns the offset after the tag. */
  packetSeal(
    cipher: number,
    key: Uint8Array,
    nonce: Uint8Array,
    plain: Uint8Array,
    out: Uint8Array,
    offset: number,
  ): number;
  /** One-shot open; returns the plaintext length, or -1 if it does not authenticate. */
  packetOpen(
    cipher: number,
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    out: Uint8Array,
    offset: number,
  ): number;
  /** SIP004's HKDF-SHA1(key, salt, "ss-subkey") into out (all of it); only when hasSubkey. */
  subkey(key: Uint8Array, salt: Uint8Array, out: Uint8Array): number;
  /** OpenSSL's SHA1_* functions were found and passed RFC 5869's HKDF-SHA1 test case. */
  readonly hasSubkey: boolean;
  /** chacha20-poly1305 runs on OpenSSL's ChaCha20_ctr32 and Poly1305 directly (see native/aead.c), not EVP. */
  readonly fastChaCha: boolean;
  readonly opensslHeaders: string;
  readonly opensslRuntime: string;
}

const require = createRequire(import.meta.url);
// src/crypto/ and dist/crypto/ are both two levels below the project root.
const ADDON = '../../native/build/Release/pigeon_aead.node';

let loaded: { binding?: NativeAeadBinding; error?: Error } | undefined;

/** The addon, whatever PIGEON_NO_NATIVE says (tests compare it with the JavaScript path). */
export function loadNativeAead(): { binding?: NativeAeadBinding; error?: Error } {
  if (!loaded) {
    try {
      loaded = { binding: require(ADDON) as NativeAeadBinding };
    } catch (e) {
      loaded = { error: e as Error };
    }
  }
  return loaded;
}

/** The addon Pigeon uses: undefined when it was not built or PIGEON_NO_NATIVE=1. */
export const nativeAead: NativeAeadBinding | undefined =
  process.env.PIGEON_NO_NATIVE === '1' ? undefined : loadNativeAead().binding;
