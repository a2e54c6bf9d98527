// TLS carrier helpers. `browserLikeTlsOptions` makes Node's ClientHello as close to Chrome's as
// OpenSSL allows (docs/tls-fingerprint.md has the resulting JA3/JA4 and what cannot be changed);
// `ShapedStream` wraps a TLS socket so that the first writes leave as coalesced, randomly split records,
// so an inner TLS handshake's message sizes do not show one-to-one as outer record sizes; it also
// prepends a protocol header (Trojan's) to the first write. Used by both halves.
import { constants, randomInt } from 'node:crypto';
import { isIP } from 'node:net';
import { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';

/** Chrome's cipher suites in Chrome's order (TLS 1.3, then 1.2), all of which OpenSSL 3 offers. */
export const CHROME_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
  'ECDHE-RSA-AES128-SHA',
  'ECDHE-RSA-AES256-SHA',
  'AES128-GCM-SHA256',
  'AES256-GCM-SHA384',
  'AES128-SHA',
  'AES256-SHA',
].join(':');

/** Chrome's signature algorithms, in Chrome's order. */
export const CHROME_SIGALGS = [
  'ecdsa_secp256r1_sha256',
  'rsa_pss_rsae_sha256',
  'rsa_pkcs1_sha256',
  'ecdsa_secp384r1_sha384',
  'rsa_pss_rsae_sha384',
  'rsa_pkcs1_sha384',
  'rsa_pss_rsae_sha512',
  'rsa_pkcs1_sha512',
].join(':');

/** Chrome's groups without GREASE and the post-quantum hybrid, which OpenSSL 3.0 lacks. */
export const CHROME_GROUPS = 'X25519:prime256v1:secp384r1';

export const BROWSER_ALPN = ['h2', 'http/1.1'];

/**
 * OpenSSL's SSL_OP_TLSEXT_PADDING (SSL_OP_BIT(4) in OpenSSL 1.1 and 3.x), which Node does not export:
 * a padding extension brings a ClientHello of 256..511 bytes to 512, as BoringSSL does.
 */
export const SSL_OP_TLSEXT_PADDING = 0x10;

/** tls.connect options; `requestOCSP` (status_request, as Chrome sends) is accepted but not in the types. */
export type BrowserLikeTlsOptions = ConnectionOptions & { requestOCSP?: boolean };

/**
 * TLS client options as browser-like as Node allows: Chrome's suites, sigalgs and group order, ALPN
 * h2 + http/1.1, OCSP status_request, session tickets, the padding extension, no encrypt_then_mac.
 * Certificate verification stays on (callers may override `rejectUnauthorized`). An IP `servername`
 * sends no SNI, as browsers do.
 */
export function browserLikeTlsOptions(
  servername: string | undefined,
  alpn = BROWSER_ALPN,
): BrowserLikeTlsOptions {
  const opts: BrowserLikeTlsOptions = {
    ciphers: CHROME_CIPHERS,
    sigalgs: CHROME_SIGALGS,
    ecdhCurve: CHROME_GROUPS,
    ALPNProtocols: alpn,
    minVersion: 'TLSv1.2',
    maxVersion: 'TLSv1.3',
    requestOCSP: true,
    secureOptions: SSL_OP_TLSEXT_PADDING | constants.SSL_OP_NO_ENCRYPT_THEN_MAC,
    rejectUnauthorized: true,
  };
  if (servername && !isIP(servername)) opts.servername = servername;
  return opts;
}

export interface ShapingOptions {
  /** How many flushes (coalesced bursts of writes) are split into several records. */
  flushes: number;
  /** Shaping ends after this many bytes, whichever comes first. */
  maxBytes: number;
  /** Random integer in [0, n): injectable for tests. */
  rand?: (n: number) => number;
}

export const DEFAULT_SHAPING: ShapingOptions = { flushes: 6, maxBytes: 64 * 1024 };

/** Pieces (record payload sizes) for one flush of `n` bytes whose first `head` bytes stay together. */
export function splitSizes(n: number, head: number, rand: (n: number) => number): number[] {
  const min = 24;
  const parts = n - head < 2 * min ? 1 : 2 + rand(2);
  const out: number[] = [];
  let left = n;
  for (let i = parts - 1; i > 0; i--) {
    // Leave room for the remaining pieces; the first piece keeps the header whole.
    const floor = out.length === 0 ? head + min : min;
    const ceil = left - i * min;
    if (ceil < floor) break;
    const size = floor + rand(ceil - floor + 1);
    out.push(size);
    left -= size;
  }
  out.push(left);
  return out;
}

interface Pending {
  chunks: Buffer[];
  bytes: number;
  callbacks: Array<(e?: Error | null) => void>;
}

/**
 * A duplex over a (TLS) socket. Reads pass through. Writes during the shaping phase are coalesced per
 * event-loop turn and each burst leaves as 2–3 records of random sizes (one SSL_write each); afterwards
 * writes pass straight to the socket. An optional header goes in front of the first write, within the
 * first record, or alone after `headDelayMs` if the application has not written by then.
 */
export class ShapedStream extends Duplex {
  private head: Buffer | undefined;
  private headTimer: NodeJS.Timeout | undefined;
  private pending: Pending = { chunks: [], bytes: 0, callbacks: [] };
  private flushing = false;
  private scheduled = false;
  private flushes = 0;
  private shapedBytes = 0;
  private finalCb: ((e?: Error | null) => void) | undefined;
  private readonly rand: (n: number) => number;
  private readonly onData = (d: Buffer): void => {
    if (!this.push(d)) this.socket.pause();
  };

  constructor(
    readonly socket: Duplex,
    private readonly opts: {
      head?: Buffer;
      headDelayMs?: number;
      initial?: Buffer;
      shaping?: ShapingOptions;
    } = {},
  ) {
    super({ allowHalfOpen: true });
    this.rand = opts.shaping?.rand ?? ((n) => randomInt(n));
    this.head = opts.head;
    if (opts.initial?.length) this.push(opts.initial);
    socket.on('data', this.onData);
    const onEnd = (): void => {
      this.push(null);
    };
    if (socket.readableEnded) onEnd();
    else socket.once('end', onEnd);
    socket.once('error', (e) => this.destroy(e));
    socket.once('close', () => {
      if (!this.destroyed && !(this.readableEnded && this.writableFinished)) this.destroy();
    });
    if (this.head && opts.headDelayMs !== undefined) {
      this.headTimer = setTimeout(() => this.schedule(), opts.headDelayMs);
    }
    socket.resume();
  }

  private get shaping(): boolean {
    const s = this.opts.shaping;
    return s !== undefined && this.flushes < s.flushes && this.shapedBytes < s.maxBytes;
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (!this.head && !this.flushing && !this.scheduled && !this.shaping) {
      if (this.socket.write(chunk)) cb();
      else this.socket.once('drain', () => cb());
      return;
    }
    this.pending.chunks.push(chunk);
    this.pending.bytes += chunk.length;
    // Accept small bursts at once so that the next writes of this turn join them; hold big ones.
    if (this.pending.bytes < 64 * 1024) cb();
    else this.pending.callbacks.push(cb);
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.destroyed || this.socket.destroyed) return;
    const p = this.pending;
    if (p.chunks.length === 0 && !this.head) return this.afterFlush();
    clearTimeout(this.headTimer);
    this.pending = { chunks: [], bytes: 0, callbacks: [] };
    const headLength = this.head?.length ?? 0;
    const data = Buffer.concat(this.head ? [this.head, ...p.chunks] : p.chunks);
    this.head = undefined;
    const sizes = this.shaping ? splitSizes(data.length, headLength, this.rand) : [data.length];
    if (this.opts.shaping) {
      this.flushes++;
      this.shapedBytes += data.length;
    }
    this.flushing = true;
    let offset = 0;
    const next = (i: number): void => {
      if (i === sizes.length) {
        this.flushing = false;
        for (const cb of p.callbacks) cb();
        this.afterFlush();
        return;
      }
      const piece = data.subarray(offset, offset + sizes[i]!);
      offset += sizes[i]!;
      // One write per piece, each after the previous one completed: separate SSL_write calls and so
      // separate records (writes queued together would be merged into one by writev).
      this.socket.write(piece, (err) => {
        if (err) {
          this.flushing = false;
          return;
        }
        next(i + 1);
      });
    };
    next(0);
  }

  private afterFlush(): void {
    if (this.pending.chunks.length) return this.schedule();
    if (this.finalCb) {
      const cb = this.finalCb;
      this.finalCb = undefined;
      this.socket.end(() => cb());
    }
  }

  override _final(cb: (e?: Error | null) => void): void {
    if (this.head || this.flushing || this.scheduled || this.pending.chunks.length) {
      this.finalCb = cb;
      this.schedule();
      return;
    }
    this.socket.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    clearTimeout(this.headTimer);
    this.socket.removeListener('data', this.onData);
    this.socket.destroy();
    cb(err);
  }
}
