// The TLS ClientHello as a censor reads it off the wire (RFC 8446 §4.1.2, RFC 6066 §3 server_name,
// RFC 7301 ALPN): enough to find the SNI that SNI blocking matches (../shared/censor-model.md §3), and a
// splitter for TLS records, which the lab's TLS-in-TLS heuristic uses to peel an outer TLS layer.
// Pure: bytes in, objects out; malformed or truncated input gives undefined, never an exception.

export interface ClientHello {
  /** Version in the record header (0x0301 for most clients). */
  recordVersion: number;
  /** legacy_version in the hello (0x0303 for TLS 1.2 and 1.3). */
  helloVersion: number;
  /** The server_name extension's host_name, lower case; undefined when the extension is absent. */
  sni?: string;
  /** ALPN protocol names, in order; empty when the extension is absent. */
  alpn: string[];
  /** Extension types in wire order. */
  extensions: number[];
  cipherSuites: number;
  /** Bytes of the handshake message (4-byte header included). */
  length: number;
}

export interface TlsRecord {
  type: number;
  version: number;
  /** Offset of the record header in the input. */
  offset: number;
  /** Length of the record's fragment (header excluded). */
  length: number;
  /** False when the input ends inside the record. */
  complete: boolean;
}

export const TLS_HANDSHAKE = 0x16;
export const TLS_CHANGE_CIPHER_SPEC = 0x14;
export const TLS_ALERT = 0x15;
export const TLS_APPLICATION_DATA = 0x17;

const EXT_SERVER_NAME = 0;
const EXT_ALPN = 16;

/** True when `buf` starts like a TLS record (content type 20..23, version 3.x with x ≤ 4). */
export function looksLikeTlsRecord(buf: Uint8Array): boolean {
  return buf.length >= 3 && buf[0]! >= 0x14 && buf[0]! <= 0x17 && buf[1] === 0x03 && buf[2]! <= 0x04;
}

/** The TLS records at the start of `buf`, up to `max`; stops at the first thing that is not a record. */
export function splitTlsRecords(buf: Uint8Array, max = 10_000): TlsRecord[] {
  const out: TlsRecord[] = [];
  let o = 0;
  while (o + 5 <= buf.length && out.length < max) {
    if (!looksLikeTlsRecord(buf.subarray(o))) break;
    const length = (buf[o + 3]! << 8) | buf[o + 4]!;
    if (length > 18_432) break; // 2^14 + 2048: larger is not TLS
    const complete = o + 5 + length <= buf.length;
    out.push({ type: buf[o]!, version: (buf[o + 1]! << 8) | buf[o + 2]!, offset: o, length, complete });
    o += 5 + length;
  }
  return out;
}

class Reader {
  constructor(
    private readonly b: Uint8Array,
    public o = 0,
    private readonly end = b.length,
  ) {}
  left(): number {
    return this.end - this.o;
  }
  u8(): number {
    if (this.o + 1 > this.end) throw RangeError('short');
    return this.b[this.o++]!;
  }
  u16(): number {
    return (this.u8() << 8) | this.u8();
  }
  u24(): number {
    return (this.u8() << 16) | this.u16();
  }
  bytes(n: number): Uint8Array {
    if (n < 0 || this.o + n > this.end) throw RangeError('short');
    const s = this.b.subarray(this.o, this.o + n);
    this.o += n;
    return s;
  }
  /** A reader over the next `n` bytes; this one skips them. */
  sub(n: number): Reader {
    if (n < 0 || this.o + n > this.end) throw RangeError('short');
    const r = new Reader(this.b, this.o, this.o + n);
    this.o += n;
    return r;
  }
}

const ascii = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');

/**
 * The ClientHello at the start of `stream` (a client's first bytes on a TCP connection: one or more
 * handshake records). Returns undefined when the stream does not start with a complete, well-formed
 * ClientHello.
 */
export function parseClientHello(stream: Uint8Array): ClientHello | undefined {
  const records = splitTlsRecords(stream, 64);
  if (!records.length || records[0]!.type !== TLS_HANDSHAKE) return undefined;
  // The handshake message may span records: join the fragments of the leading handshake records.
  const parts: Uint8Array[] = [];
  for (const r of records) {
    if (r.type !== TLS_HANDSHAKE) break;
    parts.push(stream.subarray(r.offset + 5, r.offset + 5 + r.length));
    if (!r.complete) break;
  }
  const hs = Buffer.concat(parts);
  try {
    const r = new Reader(hs);
    if (r.u8() !== 1) return undefined; // client_hello
    const bodyLength = r.u24();
    const body = r.sub(bodyLength);
    const helloVersion = body.u16();
    body.bytes(32); // random
    body.bytes(body.u8()); // legacy_session_id
    const suites = body.u16();
    if (suites % 2) return undefined;
    body.bytes(suites);
    body.bytes(body.u8()); // legacy_compression_methods
    const hello: ClientHello = {
      recordVersion: records[0]!.version,
      helloVersion,
      alpn: [],
      extensions: [],
      cipherSuites: suites / 2,
      length: 4 + bodyLength,
    };
    if (body.left() === 0) return hello; // no extensions (SSL 3.0 style)
    const exts = body.sub(body.u16());
    while (exts.left() > 0 && hello.extensions.length < 1000) {
      const type = exts.u16();
      const data = exts.sub(exts.u16());
      hello.extensions.push(type);
      if (type === EXT_SERVER_NAME && data.left() > 0) {
        const list = data.sub(data.u16());
        while (list.left() > 0) {
          const nameType = list.u8();
          const name = list.bytes(list.u16());
          if (nameType === 0 && hello.sni === undefined) hello.sni = ascii(name).toLowerCase();
        }
      } else if (type === EXT_ALPN && data.left() > 0) {
        const list = data.sub(data.u16());
        while (list.left() > 0 && hello.alpn.length < 100) hello.alpn.push(ascii(list.bytes(list.u8())));
      }
    }
    return hello;
  } catch {
    return undefined;
  }
}
