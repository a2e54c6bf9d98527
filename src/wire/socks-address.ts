// SOCKS5-style addresses (RFC 1928 §5), shared by SOCKS5, Shadowsocks and Trojan:
//   ATYP(1) | IPv4(4) / len(1)+domain / IPv6(16) | port(u16 BE)
import { isIPv4, isIPv6 } from 'node:net';
import { WireError } from './errors.js';

export const ATYP_IPV4 = 0x01;
export const ATYP_DOMAIN = 0x03;
export const ATYP_IPV6 = 0x04;

export type HostKind = 'ipv4' | 'ipv6' | 'domain';

export interface Address {
  readonly kind: HostKind;
  /** Dotted IPv4, canonical IPv6 without brackets, or a domain name. */
  readonly host: string;
  readonly port: number;
}

export interface Decoded<T> {
  readonly value: T;
  /** Bytes consumed from the input. */
  readonly length: number;
}

/** Builds an Address from a host string (IP literal or name), classifying it. */
export function makeAddress(host: string, port: number): Address {
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new WireError('bad-port', `port out of range: ${port}`);
  }
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIPv4(bare)) return { kind: 'ipv4', host: bare, port };
  if (isIPv6(bare)) return { kind: 'ipv6', host: bare, port };
  if (bare.length === 0 || bare.length > 255) {
    throw new WireError('bad-domain', `domain name must be 1..255 bytes, got ${bare.length}`);
  }
  return { kind: 'domain', host: bare, port };
}

/** "host:port", with IPv6 in brackets. */
export function formatAddress(a: Address): string {
  return a.kind === 'ipv6' ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Parses "host:port" or "[v6]:port"; throws WireError with a readable message. */
export function parseHostPort(text: string): Address {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(text) ?? /^([^:[\]]+):(\d{1,5})$/.exec(text);
  if (!m) throw new WireError('bad-host-port', `expected HOST:PORT (IPv6 as [ADDR]:PORT), got "${text}"`);
  const port = Number(m[2]);
  if (port > 65535) throw new WireError('bad-port', `port out of range in "${text}"`);
  const host = m[1]!;
  if (text.startsWith('[') && !isIPv6(host)) {
    throw new WireError('bad-host-port', `"${host}" in brackets is not an IPv6 address`);
  }
  return makeAddress(host, port);
}

export function encodedAddressLength(a: Address): number {
  switch (a.kind) {
    case 'ipv4':
      return 1 + 4 + 2;
    case 'ipv6':
      return 1 + 16 + 2;
    case 'domain':
      return 1 + 1 + Buffer.byteLength(a.host) + 2;
  }
}

/** Writes the address into `out` at `offset`; returns the offset after it. */
export function writeAddress(a: Address, out: Buffer, offset: number): number {
  let o = offset;
  switch (a.kind) {
    case 'ipv4': {
      out[o++] = ATYP_IPV4;
      const parts = a.host.split('.');
      for (let i = 0; i < 4; i++) out[o++] = Number(parts[i]);
      break;
    }
    case 'ipv6': {
      out[o++] = ATYP_IPV6;
      ipv6ToBytes(a.host).copy(out, o);
      o += 16;
      break;
    }
    case 'domain': {
      const len = Buffer.byteLength(a.host);
      if (len === 0 || len > 255) throw new WireError('bad-domain', `domain name must be 1..255 bytes`);
      out[o++] = ATYP_DOMAIN;
      out[o++] = len;
      o += out.write(a.host, o, 'utf8');
      break;
    }
  }
  out.writeUInt16BE(a.port, o);
  return o + 2;
}

export function encodeAddress(a: Address): Buffer {
  const out = Buffer.allocUnsafe(encodedAddressLength(a));
  writeAddress(a, out, 0);
  return out;
}

/**
 * Reads an address at `offset`. Returns null when more bytes are needed;
 * throws WireError for an unknown address type or an empty domain.
 */
export function readAddress(buf: Uint8Array, offset = 0): Decoded<Address> | null {
  if (buf.length <= offset) return null;
  const atyp = buf[offset]!;
  let need: number;
  switch (atyp) {
    case ATYP_IPV4:
      need = 1 + 4 + 2;
      break;
    case ATYP_IPV6:
      need = 1 + 16 + 2;
      break;
    case ATYP_DOMAIN: {
      if (buf.length < offset + 2) return null;
      const len = buf[offset + 1]!;
      if (len === 0) throw new WireError('bad-domain', 'empty domain name in address');
      need = 2 + len + 2;
      break;
    }
    default:
      throw new WireError('bad-atyp', `unknown address type 0x${atyp.toString(16).padStart(2, '0')}`);
  }
  if (buf.length < offset + need) return null;
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const port = b.readUInt16BE(offset + need - 2);
  let host: string;
  let kind: HostKind;
  if (atyp === ATYP_IPV4) {
    kind = 'ipv4';
    host = `${b[offset + 1]}.${b[offset + 2]}.${b[offset + 3]}.${b[offset + 4]}`;
  } else if (atyp === ATYP_IPV6) {
    kind = 'ipv6';
    host = bytesToIpv6(b.subarray(offset + 1, offset + 17));
  } else {
    const len = b[offset + 1]!;
    host = b.toString('latin1', offset + 2, offset + 2 + len);
    if (!/^[\x21-\x7e]+$/.test(host)) {
      throw new WireError('bad-domain', 'domain name contains control, space or non-ASCII bytes');
    }
    // A literal IP sent as a "domain" is still an IP: classify it so that policy sees it.
    kind = isIPv4(host) ? 'ipv4' : isIPv6(host) ? 'ipv6' : 'domain';
  }
  return { value: { kind, host, port }, length: need };
}

/** Like readAddress, but a short buffer is an error (for self-delimited datagrams). */
export function readAddressComplete(buf: Uint8Array, offset = 0): Decoded<Address> {
  const r = readAddress(buf, offset);
  if (!r) throw new WireError('truncated', 'truncated address');
  return r;
}

export function ipv6ToBytes(text: string): Buffer {
  const out = Buffer.alloc(16);
  let s = text;
  // Embedded IPv4 tail (::ffff:1.2.3.4)
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  let tail: number[] = [];
  if (v4) {
    const p = v4[1]!.split('.').map(Number);
    tail = [(p[0]! << 8) | p[1]!, (p[2]! << 8) | p[3]!];
    s = s.slice(0, -v4[1]!.length) + '0:0';
  }
  const halves = s.split('::');
  const head = halves[0] ? halves[0].split(':') : [];
  const rest = halves.length > 1 && halves[1] ? halves[1].split(':') : [];
  const groups = new Array<number>(8).fill(0);
  head.forEach((g, i) => (groups[i] = parseInt(g, 16)));
  rest.forEach((g, i) => (groups[8 - rest.length + i] = parseInt(g, 16)));
  if (tail.length) {
    groups[6] = tail[0]!;
    groups[7] = tail[1]!;
  }
  for (let i = 0; i < 8; i++) out.writeUInt16BE(groups[i]! & 0xffff, i * 2);
  return out;
}

/** RFC 5952 canonical text (longest zero run compressed). */
export function bytesToIpv6(b: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}
