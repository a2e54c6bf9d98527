// Shadowsocks TCP stream sessions (SIP004 AEAD and SIP022), one class per direction, shared by the
// server inbound and the client outbound. Pure state machines over bytes: no sockets, no timers.
import { randomInt } from 'node:crypto';
import { randomSalt } from './random.js';
import { WireError } from '../wire/errors.js';
import { ByteQueue } from '../wire/byte-queue.js';
import { encodedAddressLength, readAddress, writeAddress, type Address } from '../wire/socks-address.js';
import type { MethodSpec } from '../wire/shadowsocks-methods.js';
import {
  MAX_PADDING,
  REQUEST_FIXED_HEADER_SIZE,
  checkTimestamp,
  decodeRequestFixedHeader,
  decodeRequestVarHeader,
  decodeResponseFixedHeader,
  encodeRequestFixedHeader,
  encodeRequestVarHeader,
  encodeResponseFixedHeader,
  responseFixedHeaderSize,
} from '../wire/shadowsocks-2022.js';
import {
  AuthError,
  CounterAead,
  LENGTH_CHUNK_SIZE,
  OPEN_AUTH,
  OPEN_TOO_LONG,
  TAG_SIZE,
  chunksWireSize,
} from './aead.js';
import { aesBlock, identityKeys, identitySubkey, masterKey, pskHash, sessionSubkey } from './kdf.js';
import type { SaltPool } from './replay.js';

/** Unix seconds; injectable so tests can move time. */
export type Clock = () => number;
export const systemClock: Clock = () => Math.floor(Date.now() / 1000);

/** The largest SOCKS address (domain of 255 bytes). */
const MAX_ADDRESS = 1 + 1 + 255 + 2;
/** 2022 clients pad first packets whose payload is shorter than this. */
const PAD_BELOW = MAX_PADDING;

export interface StreamKey {
  readonly spec: MethodSpec;
  /** Master key (SIP004) or PSK (SIP022; the user's PSK when identity PSKs are used). */
  readonly key: Buffer;
  /** SIP023: identity PSKs, outermost first (clients of a multi-user 2022 server). */
  readonly identity?: readonly Buffer[];
}

/** The key of a method and password ("iPSK:uPSK" for SIP023 multi-user 2022 keys). */
export function streamKey(spec: MethodSpec, password: string): StreamKey {
  const identity = identityKeys(spec, password);
  return identity.length
    ? { spec, key: masterKey(spec, password), identity }
    : { spec, key: masterKey(spec, password) };
}

/** SIP023 identity headers for a request stream: one 16-byte block per identity PSK. */
function identityHeaders(k: StreamKey, salt: Buffer): Buffer {
  const ids = k.identity ?? [];
  if (!ids.length) return Buffer.alloc(0);
  return Buffer.concat(
    ids.map((ipsk, i) => aesBlock(identitySubkey(ipsk, salt), true, pskHash(ids[i + 1] ?? k.key))),
  );
}

// ---------------------------------------------------------------------------------------------
// Writer: plaintext in, wire bytes out.

export interface WriterOptions {
  /** request: client→server (carries the target); response: server→client. */
  kind: 'request' | 'response';
  /** Request streams: where the server should connect. */
  target?: Address;
  /** 2022 response streams: the salt of the request being answered. */
  requestSalt?: Buffer;
  clock?: Clock;
  /** Fixed salt, for test vectors only. */
  salt?: Buffer;
  /**
   * Outline's "prefix": the salt begins with these bytes (the rest stays random), so that the first
   * packet starts like another protocol. Servers need no change: the prefix is part of the salt.
   */
  saltPrefix?: Buffer;
  /** Fixed 2022 padding length, for test vectors only. */
  paddingLength?: number;
}

export class StreamWriter {
  readonly salt: Buffer;
  private readonly aead: CounterAead;
  private started = false;

  constructor(
    private readonly k: StreamKey,
    private readonly opts: WriterOptions,
  ) {
    this.salt = opts.salt ?? randomSalt(k.spec.saltSize);
    if (opts.saltPrefix && !opts.salt)
      opts.saltPrefix.copy(this.salt, 0, 0, Math.min(opts.saltPrefix.length, this.salt.length));
    this.aead = new CounterAead(k.spec.cipher, sessionSubkey(k.spec, k.key, this.salt));
    if (opts.kind === 'request' && !opts.target) throw new Error('a request stream needs a target');
    if (opts.kind === 'response' && k.spec.edition === '2022' && !opts.requestSalt) {
      throw new Error('a 2022 response stream needs the request salt');
    }
  }

  get hasStarted(): boolean {
    return this.started;
  }

  /**
   * Encrypts `data` into wire bytes. The first call also emits the salt and headers, all in one buffer
   * (SIP022 §3.1.4: salt and header chunks go out in one write). `data` may be empty on a request
   * stream to send the header alone; on other streams empty data yields an empty buffer.
   */
  write(data: Buffer): Buffer {
    if (!this.started) {
      this.started = true;
      return this.k.spec.edition === '2022' ? this.first2022(data) : this.firstAead(data);
    }
    return this.chunks(data, 0, Buffer.alloc(0));
  }

  /** Once started (the first write() sent the headers): the wire size of `n` more bytes. */
  sealedSize(n: number): number {
    return chunksWireSize(n, this.k.spec.maxPayload);
  }

  /** Once started: the wire size of every buffer in `list`, sealed one after another. */
  sealedSizeOf(list: readonly Uint8Array[]): number {
    let size = 0;
    for (const d of list) size += this.sealedSize(d.length);
    return size;
  }

  /**
   * Once started: seals `data` into `out` at `offset` (sealedSize(data.length) bytes), so callers can
   * reuse their buffers; returns the offset after the last chunk.
   */
  writeInto(data: Uint8Array, out: Buffer, offset: number): number {
    if (!this.started) throw new Error('writeInto before the first write');
    return this.aead.sealChunks(data, 0, data.length, this.k.spec.maxPayload, out, offset);
  }

  /** Once started: writeInto() for every buffer in `list`, one after another (sealedSizeOf(list) bytes). */
  writevInto(list: readonly Uint8Array[], out: Buffer, offset: number): number {
    for (const d of list) offset = this.writeInto(d, out, offset);
    return offset;
  }

  /** write() for several buffers at once, sealed into one output buffer (one socket write). */
  writev(list: readonly Buffer[]): Buffer {
    if (list.length === 1) return this.write(list[0]!);
    if (!this.started) return Buffer.concat(list.map((d) => this.write(d))); // once per stream at most
    const out = Buffer.allocUnsafe(this.sealedSizeOf(list));
    return out.subarray(0, this.writevInto(list, out, 0));
  }

  private nowS(): number {
    return (this.opts.clock ?? systemClock)();
  }

  private firstAead(data: Buffer): Buffer {
    if (this.opts.kind === 'response') return this.chunks(data, 0, this.salt);
    // SIP004 request: the target address leads the plaintext, in the first chunk with as much data as fits.
    const target = this.opts.target!;
    const alen = encodedAddressLength(target);
    const firstData = Math.min(data.length, this.k.spec.maxPayload - alen);
    const plain = Buffer.allocUnsafe(alen + firstData);
    writeAddress(target, plain, 0);
    data.copy(plain, alen, 0, firstData);
    const rest = data.length - firstData;
    // plain fits in one chunk, so sealedSize() is its chunk's size.
    const out = Buffer.allocUnsafe(this.salt.length + this.sealedSize(plain.length) + this.sealedSize(rest));
    this.salt.copy(out, 0);
    let o = this.sealChunks(plain, 0, out, this.salt.length);
    o = this.sealChunks(data, firstData, out, o);
    return out.subarray(0, o);
  }

  private first2022(data: Buffer): Buffer {
    const ts = this.nowS();
    const max = this.k.spec.maxPayload;
    if (this.opts.kind === 'request') {
      const target = this.opts.target!;
      const alen = encodedAddressLength(target);
      const firstData = Math.min(data.length, max - alen - 2 - MAX_PADDING);
      const padding = this.opts.paddingLength ?? (firstData < PAD_BELOW ? randomInt(1, MAX_PADDING + 1) : 0);
      const varHeader = encodeRequestVarHeader(target, padding, data.subarray(0, firstData));
      const fixed = encodeRequestFixedHeader(ts, varHeader.length);
      const rest = data.length - firstData;
      const eih = identityHeaders(this.k, this.salt);
      const out = Buffer.allocUnsafe(
        this.salt.length +
          eih.length +
          fixed.length +
          TAG_SIZE +
          varHeader.length +
          TAG_SIZE +
          this.sealedSize(rest),
      );
      this.salt.copy(out, 0);
      eih.copy(out, this.salt.length);
      let o = this.aead.sealInto(fixed, out, this.salt.length + eih.length);
      o = this.aead.sealInto(varHeader, out, o);
      o = this.sealChunks(data, firstData, out, o);
      return out.subarray(0, o);
    }
    if (data.length === 0) {
      this.started = false; // the response header always travels with payload
      return Buffer.alloc(0);
    }
    const firstData = Math.min(data.length, max);
    const fixed = encodeResponseFixedHeader(ts, this.opts.requestSalt!, firstData);
    const rest = data.length - firstData;
    const out = Buffer.allocUnsafe(
      this.salt.length + fixed.length + TAG_SIZE + firstData + TAG_SIZE + this.sealedSize(rest),
    );
    this.salt.copy(out, 0);
    let o = this.aead.sealInto(fixed, out, this.salt.length);
    o = this.aead.sealInto(data.subarray(0, firstData), out, o);
    o = this.sealChunks(data, firstData, out, o);
    return out.subarray(0, o);
  }

  private chunks(data: Buffer, from: number, prefix: Buffer): Buffer {
    const out = Buffer.allocUnsafe(prefix.length + this.sealedSize(data.length - from));
    prefix.copy(out, 0);
    const o = this.sealChunks(data, from, out, prefix.length);
    return out.subarray(0, o);
  }

  /** Seals data[from..] as length+payload chunk pairs into out at o (one native call for all of them). */
  private sealChunks(data: Buffer, from: number, out: Buffer, o: number): number {
    return this.aead.sealChunks(data, from, data.length, this.k.spec.maxPayload, out, o);
  }
}

// ---------------------------------------------------------------------------------------------
// Reader: wire bytes in, plaintext out.

export interface ReaderOptions {
  /** request: the server reading a client's stream; response: the client reading the server's. */
  kind: 'request' | 'response';
  /** Server side: rejects replayed salts and remembers accepted ones. */
  saltPool?: SaltPool;
  /** 2022 client side: the salt our request went out with; the response must echo it. */
  requestSalt?: Buffer;
  clock?: Clock;
}

type Stage = 'salt' | 'fixed' | 'var' | 'length' | 'payload';

/** openChunks' out-parameters; readers run synchronously, so one array serves them all. */
const OPEN_STATE = new Int32Array(3);

/**
 * Decodes one direction. `push` returns the plaintext that became available and throws WireError on
 * anything invalid (codes: 'auth', 'replay', 'bad-timestamp', 'bad-type', 'bad-salt', 'bad-length',
 * 'bad-padding', 'bad-atyp', 'bad-domain'). After a throw the reader is dead.
 */
export class StreamReader {
  /** Request streams: the target, once the header has been read. */
  target: Address | undefined;
  salt: Buffer | undefined;
  private aead: CounterAead | undefined;
  private readonly q = new ByteQueue();
  private stage: Stage = 'salt';
  private need: number;
  private authenticated = false;
  private addressBuf: Buffer | undefined; // SIP004 request: plaintext gathered until the address is whole
  /** Past the headers: only length/payload chunks remain, opened in batches (openBulk). */
  private bulk = false;
  /** Bulk mode: the bytes of an incomplete chunk (owned; opened in place once whole). */
  private tail: Buffer | undefined;

  constructor(
    private readonly k: StreamKey,
    private readonly opts: ReaderOptions,
  ) {
    this.need = k.spec.saltSize;
  }

  /** True once a chunk authenticated: the peer holds the key. */
  get isAuthenticated(): boolean {
    return this.authenticated;
  }

  /** True when the stream may end here (no partial chunk buffered). */
  get atBoundary(): boolean {
    return (
      this.q.length === 0 && !this.tail && (this.stage === 'length' || (this.stage === 'salt' && !this.salt))
    );
  }

  /** Bytes buffered but not yet decoded. */
  get pending(): number {
    return this.q.length + (this.tail?.length ?? 0);
  }

  /**
   * Decodes `data`. Once past the salt, headers and (SIP004 requests) the target address, chunks are
   * opened in batches: with `owned` (the caller hands `data` over and never reads it again, as with a
   * socket's read buffers) in place, the plaintext replacing the wire bytes at the front of `data`,
   * so a read costs no allocation and no copy; otherwise `data` is copied first. A call then returns
   * at most two buffers: the end of a chunk begun by an earlier read, and the chunks this one
   * completed.
   */
  push(data: Buffer, owned = false): Buffer[] {
    const out: Buffer[] = [];
    if (!this.bulk) {
      this.q.push(data);
      while (this.q.length >= this.need) {
        this.step(out);
        if (this.bulkReady()) {
          this.bulk = true;
          break;
        }
      }
      if (!this.bulk || this.q.length === 0) return out;
      data = Buffer.from(this.q.readAll()); // once per stream
      owned = true;
    }
    this.openBulk(owned ? data : Buffer.from(data), out);
    return out;
  }

  private bulkReady(): boolean {
    if (!this.authenticated) return false;
    if (this.opts.kind === 'request' && this.k.spec.edition === 'aead' && !this.target) return false;
    return this.stage === 'length' || (this.stage === 'payload' && this.need > TAG_SIZE);
  }

  /** Bulk mode: opens, in place in `data` (owned), every chunk that `tail` + `data` complete. */
  private openBulk(data: Buffer, out: Buffer[]): void {
    let pos = 0;
    let o = 0; // plaintext so far at the front of data
    const tail = this.tail;
    if (tail) {
      const missing = this.need - tail.length;
      if (data.length < missing) {
        this.tail = Buffer.concat([tail, data]); // small reads only: tail + data < one chunk
        return;
      }
      if (this.stage === 'length') {
        this.gotLength(this.open(Buffer.concat([tail, data.subarray(0, missing)])));
      } else {
        // The chunk straddles two reads: open it where it lies, no copy.
        const n = this.aead!.openPair(tail, data, missing);
        if (n < 0) throw new WireError('auth', 'chunk failed authentication');
        const inTail = Math.min(n, tail.length);
        if (inTail) out.push(tail.subarray(0, inTail));
        o = n - inTail;
        this.stage = 'length';
        this.need = LENGTH_CHUNK_SIZE;
      }
      this.tail = undefined;
      pos = missing;
    }
    const st = OPEN_STATE;
    const max = this.k.spec.maxPayload;
    const pending = this.stage === 'payload' ? this.need - TAG_SIZE : 0;
    const code = this.aead!.openChunks(data, pos, data.length, max, pending, data, o, st);
    if (code === OPEN_AUTH) throw new WireError('auth', 'chunk failed authentication');
    if (code === OPEN_TOO_LONG) throw new WireError('bad-length', `chunk of ${st[2]} bytes exceeds ${max}`);
    if (code < 0) throw new WireError('bad-length', 'zero-length chunk');
    if (st[2]) {
      this.stage = 'payload';
      this.need = st[2] + TAG_SIZE;
    } else {
      this.stage = 'length';
      this.need = LENGTH_CHUNK_SIZE;
    }
    if (st[1]) out.push(data.subarray(0, st[1]));
    if (st[0]! < data.length) this.tail = data.subarray(st[0]);
  }

  /** A length chunk opened: checks it and waits for its payload. */
  private gotLength(plain: Buffer): void {
    const len = plain.readUInt16BE(0);
    const max = this.k.spec.maxPayload;
    if (len > max) throw new WireError('bad-length', `chunk of ${len} bytes exceeds ${max}`);
    if (len === 0) throw new WireError('bad-length', 'zero-length chunk');
    this.stage = 'payload';
    this.need = len + TAG_SIZE;
  }

  private open(sealed: Buffer): Buffer {
    try {
      return this.aead!.open(sealed);
    } catch (e) {
      if (e instanceof AuthError) throw new WireError('auth', 'chunk failed authentication');
      throw e;
    }
  }

  private step(out: Buffer[]): void {
    const spec = this.k.spec;
    switch (this.stage) {
      case 'salt': {
        this.salt = Buffer.from(this.q.read(this.need)); // copy: the salt outlives the read buffer
        this.aead = new CounterAead(spec.cipher, sessionSubkey(spec, this.k.key, this.salt));
        if (spec.edition === '2022') {
          this.stage = 'fixed';
          this.need =
            (this.opts.kind === 'request'
              ? REQUEST_FIXED_HEADER_SIZE
              : responseFixedHeaderSize(spec.saltSize)) + TAG_SIZE;
        } else {
          this.stage = 'length';
          this.need = LENGTH_CHUNK_SIZE;
        }
        return;
      }
      case 'fixed': {
        const plain = this.open(this.q.read(this.need));
        this.authenticated = true;
        const nowS = (this.opts.clock ?? systemClock)();
        if (this.opts.kind === 'request') {
          const h = decodeRequestFixedHeader(plain);
          checkTimestamp(h.timestamp, nowS);
          this.rememberSalt();
          this.stage = 'var';
          this.need = h.length + TAG_SIZE;
        } else {
          const h = decodeResponseFixedHeader(plain, spec.saltSize);
          checkTimestamp(h.timestamp, nowS);
          if (!this.opts.requestSalt || !h.requestSalt.equals(this.opts.requestSalt)) {
            throw new WireError('bad-salt', 'response does not echo our request salt');
          }
          this.stage = 'payload';
          this.need = h.length + TAG_SIZE;
        }
        return;
      }
      case 'var': {
        const { address, payload } = decodeRequestVarHeader(this.open(this.q.read(this.need)));
        this.target = address;
        if (payload.length) out.push(payload);
        this.stage = 'length';
        this.need = LENGTH_CHUNK_SIZE;
        return;
      }
      case 'length': {
        const plain = this.open(this.q.read(this.need));
        if (!this.authenticated) {
          this.authenticated = true;
          if (spec.edition === 'aead') this.rememberSalt();
        }
        this.gotLength(plain);
        return;
      }
      case 'payload': {
        const plain = this.open(this.q.read(this.need));
        this.stage = 'length';
        this.need = LENGTH_CHUNK_SIZE;
        if (this.opts.kind === 'request' && spec.edition === 'aead' && !this.target) {
          this.takeAddress(plain, out);
        } else {
          out.push(plain);
        }
        return;
      }
    }
  }

  /** SIP004 requests: the plaintext begins with the target address, possibly spread over chunks. */
  private takeAddress(plain: Buffer, out: Buffer[]): void {
    const buf = this.addressBuf ? Buffer.concat([this.addressBuf, plain]) : plain;
    const r = readAddress(buf, 0);
    if (!r) {
      if (buf.length >= MAX_ADDRESS) throw new WireError('bad-domain', 'address header too long');
      this.addressBuf = Buffer.from(buf);
      return;
    }
    this.addressBuf = undefined;
    this.target = r.value;
    if (buf.length > r.length) out.push(buf.subarray(r.length));
  }

  private rememberSalt(): void {
    const pool = this.opts.saltPool;
    if (pool && !pool.add(this.salt!)) throw new WireError('replay', 'salt seen before (replay)');
  }
}
