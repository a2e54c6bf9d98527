// Trojan (trojan-gfw docs/protocol.md), the codec both halves share. After a real TLS handshake the
// client sends one request header, then payload:
//   hex(SHA224(password)) (56 bytes) | CRLF | CMD (1) | SOCKS5 address | CRLF | payload
// CMD 1 is CONNECT; CMD 3 is UDP ASSOCIATE, after which both directions carry UDP frames:
//   SOCKS5 address | u16 length | CRLF | payload
// Also the `trojan://PASSWORD@HOST:PORT?sni=…&allowInsecure=1#TAG` share URI, as v2rayN, Clash,
// Shadowrocket and sing-box read it. Bytes in, objects out: no sockets, no timers.
import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { WireError } from './errors.js';
import { encodedAddressLength, readAddress, writeAddress, type Address } from './socks-address.js';

export const TROJAN_CONNECT = 0x01;
export const TROJAN_UDP_ASSOCIATE = 0x03;
export type TrojanCommand = typeof TROJAN_CONNECT | typeof TROJAN_UDP_ASSOCIATE;

/** Length of the hex password hash that opens every request. */
export const TROJAN_HASH_LENGTH = 56;
/** The longest request header: hash, CRLF, CMD, a 255-byte domain address, CRLF. */
export const TROJAN_MAX_HEADER = TROJAN_HASH_LENGTH + 2 + 1 + (1 + 1 + 255 + 2) + 2;
/** The largest UDP payload a frame can carry (u16 length). */
export const TROJAN_MAX_UDP_PAYLOAD = 0xffff;

const CR = 0x0d;
const LF = 0x0a;

/** Lowercase hex SHA-224 of the UTF-8 password: what the client sends and the server looks up. */
export function trojanPasswordHash(password: string): string {
  return createHash('sha224').update(password, 'utf8').digest('hex');
}

const isLowerHex = (c: number): boolean => (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66);

export interface TrojanRequest {
  /** The 56 lowercase hex characters, as sent. */
  hash: string;
  command: TrojanCommand;
  address: Address;
  /** Header bytes, including both CRLFs: the payload starts here. */
  length: number;
}

export type TrojanParse =
  { kind: 'need-more' } | { kind: 'request'; request: TrojanRequest } | { kind: 'invalid'; reason: string };

const NEED_MORE: TrojanParse = { kind: 'need-more' };
const invalid = (reason: string): TrojanParse => ({ kind: 'invalid', reason });

/**
 * Parses a request header from the first bytes of a connection. `need-more` only while every byte so
 * far could still begin a valid header, so junk (an HTTP request, random bytes) is `invalid` at once.
 * Never throws.
 */
export function parseTrojanRequest(buf: Uint8Array): TrojanParse {
  const hashEnd = Math.min(buf.length, TROJAN_HASH_LENGTH);
  for (let i = 0; i < hashEnd; i++) if (!isLowerHex(buf[i]!)) return invalid('bad-hash');
  let o = TROJAN_HASH_LENGTH;
  for (const expected of [CR, LF]) {
    if (buf.length <= o) return NEED_MORE;
    if (buf[o] !== expected) return invalid('bad-crlf');
    o++;
  }
  if (buf.length <= o) return NEED_MORE;
  const command = buf[o]!;
  if (command !== TROJAN_CONNECT && command !== TROJAN_UDP_ASSOCIATE) return invalid('bad-command');
  o++;
  let decoded;
  try {
    decoded = readAddress(buf, o);
  } catch (e) {
    return invalid(e instanceof WireError ? e.code : 'bad-address');
  }
  if (!decoded) return NEED_MORE;
  o += decoded.length;
  for (const expected of [CR, LF]) {
    if (buf.length <= o) return NEED_MORE;
    if (buf[o] !== expected) return invalid('bad-crlf');
    o++;
  }
  const hash = Buffer.from(buf.buffer, buf.byteOffset, TROJAN_HASH_LENGTH).toString('latin1');
  return { kind: 'request', request: { hash, command, address: decoded.value, length: o } };
}

/** The request header, optionally followed by the first payload bytes (one write, one TLS record). */
export function encodeTrojanRequest(
  hash: string,
  command: TrojanCommand,
  address: Address,
  payload: Uint8Array = Buffer.alloc(0),
): Buffer {
  if (hash.length !== TROJAN_HASH_LENGTH || ![...Buffer.from(hash, 'latin1')].every(isLowerHex))
    throw new WireError('bad-hash', 'a Trojan hash is 56 lowercase hex characters');
  const headerLength = TROJAN_HASH_LENGTH + 2 + 1 + encodedAddressLength(address) + 2;
  const out = Buffer.allocUnsafe(headerLength + payload.length);
  out.write(hash, 0, 'latin1');
  let o = TROJAN_HASH_LENGTH;
  out[o++] = CR;
  out[o++] = LF;
  out[o++] = command;
  o = writeAddress(address, out, o);
  out[o++] = CR;
  out[o++] = LF;
  out.set(payload, o);
  return out;
}

export interface TrojanUdpFrame {
  /** Destination (client → server) or source (server → client) of the datagram. */
  address: Address;
  payload: Buffer;
  /** Bytes the frame took from the stream. */
  length: number;
}

/**
 * Reads one UDP frame at `offset`: null when more bytes are needed; throws WireError when the bytes
 * cannot be a frame (the stream is then unusable). The payload is a view into `buf`.
 */
export function readTrojanUdpFrame(buf: Buffer, offset = 0): TrojanUdpFrame | null {
  const a = readAddress(buf, offset);
  if (!a) return null;
  let o = offset + a.length;
  if (buf.length < o + 4) return null;
  const n = buf.readUInt16BE(o);
  if (buf[o + 2] !== CR || buf[o + 3] !== LF) throw new WireError('bad-crlf', 'UDP frame without CRLF');
  o += 4;
  if (buf.length < o + n) return null;
  return { address: a.value, payload: buf.subarray(o, o + n), length: o + n - offset };
}

export function encodeTrojanUdpFrame(address: Address, payload: Uint8Array): Buffer {
  if (payload.length > TROJAN_MAX_UDP_PAYLOAD)
    throw new WireError('too-long', `UDP payload of ${payload.length} bytes exceeds 65535`);
  const out = Buffer.allocUnsafe(encodedAddressLength(address) + 4 + payload.length);
  let o = writeAddress(address, out, 0);
  o = out.writeUInt16BE(payload.length, o);
  out[o++] = CR;
  out[o++] = LF;
  out.set(payload, o);
  return out;
}

/** Splits a byte stream of UDP frames into frames, keeping a partial frame for the next push. */
export class TrojanUdpReader {
  private rest: Buffer = Buffer.alloc(0);

  /** Frames completed by `chunk`; throws WireError on a malformed frame. */
  push(chunk: Buffer): TrojanUdpFrame[] {
    const buf = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    const out: TrojanUdpFrame[] = [];
    let o = 0;
    for (;;) {
      const f = readTrojanUdpFrame(buf, o);
      if (!f) break;
      out.push(f);
      o += f.length;
    }
    // Keep the tail as a copy, so the caller's chunk (and earlier payloads) are not pinned.
    this.rest = o === buf.length ? Buffer.alloc(0) : Buffer.from(buf.subarray(o));
    return out;
  }

  /** Bytes of an incomplete frame held back. */
  get pending(): number {
    return this.rest.length;
  }
}

// ---------------------------------------------------------------------------------------------------
// trojan:// URIs

export interface TrojanUri {
  /** The plain password (percent-decoded). */
  password: string;
  /** IP literal (IPv6 without brackets) or host name. */
  host: string;
  port: number;
  /** TLS server name: `sni`, or the legacy `peer`; unset means the host (or none for an IP). */
  sni?: string;
  /** Skip certificate verification (`allowInsecure=1`, also `insecure=1`). */
  allowInsecure: boolean;
  /** SHA-256 fingerprints (uppercase hex, no colons) the server certificate must match (`pcs`). */
  pinnedCertSha256: string[];
  /** ALPN protocols to offer (`alpn=h2,http/1.1`); unset means Pigeon's browser-like default. */
  alpn?: string[];
  tag?: string;
  /** Other query parameters (e.g. `fp`, `type=tcp`), percent-decoded, kept so that they round-trip. */
  params: Record<string, string>;
}

const badUri = (what: string, code = 'bad-uri'): WireError =>
  new WireError(code, `invalid trojan:// URI: ${what}`);

const HOSTNAME = /^[A-Za-z0-9._-]{1,253}$/;
const KNOWN = new Set(['sni', 'peer', 'allowInsecure', 'insecure', 'pcs', 'alpn', 'security', 'type']);

function pctDecode(s: string, what: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw badUri(`malformed percent-encoding in the ${what}`);
  }
}

function pctEncode(s: string, what: string): string {
  try {
    return encodeURIComponent(s);
  } catch {
    throw badUri(`the ${what} is not valid Unicode text`);
  }
}

const truthy = (v: string | undefined): boolean => v === '1' || v === 'true';

function checkHost(host: string, bracketed: boolean): void {
  if (bracketed || host.includes(':')) {
    if (!isIPv6(host)) throw badUri(`"${host}" is not an IPv6 address`, 'bad-host');
  } else if (!isIPv4(host) && !HOSTNAME.test(host)) {
    throw badUri(`"${host}" is not a valid host name`, 'bad-host');
  }
}

function parseFingerprints(v: string): string[] {
  return v
    .split(',')
    .filter((s) => s.trim())
    .map((s) => {
      const hex = s.trim().replace(/:/g, '').toUpperCase();
      if (!/^[0-9A-F]{64}$/.test(hex)) throw badUri('pcs must be SHA-256 fingerprints (64 hex digits)');
      return hex;
    });
}

/**
 * Parses `trojan://PASSWORD@HOST[:PORT][/][?QUERY][#TAG]` (port 443 when omitted). Query: `sni` (or
 * `peer`), `allowInsecure`/`insecure` = 1|true, `pcs` (pinned SHA-256 fingerprints, comma-separated),
 * `alpn` (comma-separated), `security` (tls or empty) and `type` (tcp or empty); other transports
 * (ws, grpc, reality) are refused with a readable message. Throws WireError (never showing the password).
 */
export function parseTrojanUri(text: string): TrojanUri {
  let rest = text.trim();
  if (!/^trojan:\/\//i.test(rest)) throw badUri('it must start with "trojan://"');
  rest = rest.slice('trojan://'.length);
  let tag: string | undefined;
  const hash = rest.indexOf('#');
  if (hash >= 0) {
    tag = pctDecode(rest.slice(hash + 1), 'tag (after "#")') || undefined;
    rest = rest.slice(0, hash);
  }
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  rest = rest.replace(/\/$/, '');
  const at = rest.lastIndexOf('@');
  if (at < 0) throw badUri('missing "PASSWORD@" before the host');
  const password = pctDecode(rest.slice(0, at), 'password');
  if (!password) throw badUri('missing password');
  const hostPort = rest.slice(at + 1);
  const m = /^\[([^\]]*)\](?::(\d{1,5}))?$/.exec(hostPort) ?? /^([^:[\]/]*)(?::(\d{1,5}))?$/.exec(hostPort);
  if (!m || !m[1]) throw badUri('expected "host[:port]" (IPv6 as [addr]:port) after "@"', 'bad-host');
  const host = m[1];
  checkHost(host, hostPort.startsWith('['));
  const port = m[2] === undefined ? 443 : Number(m[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535)
    throw badUri(`port must be 1..65535, got ${port}`, 'bad-port');

  const all = new Map<string, string>();
  for (const part of query.split('&')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    const key = pctDecode(eq < 0 ? part : part.slice(0, eq), 'query');
    const value = eq < 0 ? '' : pctDecode(part.slice(eq + 1).replace(/\+/g, ' '), 'query');
    if (!key) throw badUri('a query parameter has no name');
    if (all.has(key)) throw badUri(`query parameter "${key}" appears twice`);
    all.set(key, value);
  }
  const security = all.get('security');
  if (security !== undefined && security !== '' && security !== 'tls')
    throw badUri(
      `security "${security}" is not supported (Pigeon speaks Trojan over plain TLS)`,
      'unsupported',
    );
  const type = all.get('type');
  if (type !== undefined && type !== '' && type !== 'tcp' && type !== 'original')
    throw badUri(`transport type "${type}" is not supported (only tcp)`, 'unsupported');

  const u: TrojanUri = { password, host, port, allowInsecure: false, pinnedCertSha256: [], params: {} };
  const sni = all.get('sni') || all.get('peer');
  if (sni) {
    if (!HOSTNAME.test(sni) && !isIPv4(sni) && !isIPv6(sni)) throw badUri(`sni "${sni}" is not a host name`);
    u.sni = sni;
  }
  u.allowInsecure = truthy(all.get('allowInsecure')) || truthy(all.get('insecure'));
  u.pinnedCertSha256 = parseFingerprints(all.get('pcs') ?? '');
  const alpn = all.get('alpn');
  if (alpn) u.alpn = alpn.split(',').filter((s) => s);
  if (tag !== undefined) u.tag = tag;
  const params: Array<[string, string]> = [];
  for (const [k, v] of all) if (!KNOWN.has(k) || k === 'type' || k === 'security') params.push([k, v]);
  u.params = Object.fromEntries(params);
  return u;
}

/** Formats a URI that parseTrojanUri reads back to the same object (given a non-empty tag or none). */
export function formatTrojanUri(u: TrojanUri): string {
  if (!u.password) throw badUri('missing password');
  checkHost(u.host, false);
  if (!Number.isInteger(u.port) || u.port < 1 || u.port > 65535)
    throw badUri(`port must be 1..65535, got ${u.port}`, 'bad-port');
  const query: string[] = [];
  if (u.sni) query.push(`sni=${pctEncode(u.sni, 'sni')}`);
  if (u.allowInsecure) query.push('allowInsecure=1');
  if (u.pinnedCertSha256.length)
    query.push(`pcs=${parseFingerprints(u.pinnedCertSha256.join(',')).join(',')}`);
  if (u.alpn?.length) query.push(`alpn=${pctEncode(u.alpn.join(','), 'alpn')}`);
  for (const [k, v] of Object.entries(u.params)) {
    if (!k || (KNOWN.has(k) && k !== 'type' && k !== 'security'))
      throw badUri(`query parameter name "${k}" is not allowed in params`);
    query.push(`${pctEncode(k, 'query')}=${pctEncode(v, 'query')}`);
  }
  const host = u.host.includes(':') ? `[${u.host}]` : u.host;
  const tail = (query.length ? `?${query.join('&')}` : '') + (u.tag ? `#${pctEncode(u.tag, 'tag')}` : '');
  return `trojan://${pctEncode(u.password, 'password')}@${host}:${u.port}${tail}`;
}
