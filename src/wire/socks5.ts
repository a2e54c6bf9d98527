// SOCKS5 (RFC 1928) with username/password authentication (RFC 1929), as pure codecs.
// Parsers take everything received so far and return null while a message is incomplete.
import { WireError } from './errors.js';
import {
  encodedAddressLength,
  makeAddress,
  readAddress,
  readAddressComplete,
  writeAddress,
  type Address,
  type Decoded,
} from './socks-address.js';

export const SOCKS_VERSION = 5;
export const METHOD_NO_AUTH = 0;
export const METHOD_USER_PASS = 2;
export const METHOD_NONE_ACCEPTABLE = 0xff;
/** RFC 1929 subnegotiation version. */
export const USER_PASS_VERSION = 1;

/** Reply codes (RFC 1928 §6). */
export const REP = {
  succeeded: 0,
  generalFailure: 1,
  notAllowed: 2,
  networkUnreachable: 3,
  hostUnreachable: 4,
  connectionRefused: 5,
  ttlExpired: 6,
  commandNotSupported: 7,
  addressTypeNotSupported: 8,
} as const;

export type SocksCommand = 'connect' | 'bind' | 'udp-associate';

const COMMANDS: Record<number, SocksCommand> = { 1: 'connect', 2: 'bind', 3: 'udp-associate' };

const hex = (b: number): string => `0x${b.toString(16).padStart(2, '0')}`;

function checkVersion(buf: Uint8Array, what: string): void {
  if (buf.length > 0 && buf[0] !== SOCKS_VERSION) {
    throw new WireError('bad-version', `${what}: expected SOCKS version 5, got ${hex(buf[0]!)}`);
  }
}

function checkByte(value: number, what: string): void {
  if (!Number.isInteger(value) || value < 0 || value > 255) {
    throw new WireError('bad-value', `${what} must be a byte (0..255), got ${value}`);
  }
}

/** Client greeting: VER(5) NMETHODS METHODS... Returns null until complete. */
export function parseGreeting(buf: Uint8Array): Decoded<{ methods: number[] }> | null {
  checkVersion(buf, 'SOCKS5 greeting');
  if (buf.length < 2) return null;
  const n = buf[1]!;
  if (n === 0) throw new WireError('no-methods', 'SOCKS5 greeting offers no authentication methods');
  if (buf.length < 2 + n) return null;
  return { value: { methods: Array.from(buf.subarray(2, 2 + n)) }, length: 2 + n };
}

/** Server's method selection: VER(5) METHOD. */
export function encodeMethodSelection(method: number): Buffer {
  checkByte(method, 'SOCKS5 method');
  return Buffer.from([SOCKS_VERSION, method]);
}

/**
 * RFC 1929 request: VER(1) ULEN UNAME PLEN PASSWD, decoded as UTF-8. Zero-length fields are accepted
 * (RFC 1929 asks for 1..255, but some clients send an empty password).
 */
export function parseUserPassAuth(buf: Uint8Array): Decoded<{ username: string; password: string }> | null {
  if (buf.length > 0 && buf[0] !== USER_PASS_VERSION) {
    throw new WireError(
      'bad-version',
      `SOCKS5 username/password auth: expected version 1, got ${hex(buf[0]!)}`,
    );
  }
  if (buf.length < 2) return null;
  const ulen = buf[1]!;
  if (buf.length < 3 + ulen) return null;
  const plen = buf[2 + ulen]!;
  const length = 3 + ulen + plen;
  if (buf.length < length) return null;
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const username = b.toString('utf8', 2, 2 + ulen);
  const password = b.toString('utf8', 3 + ulen, length);
  return { value: { username, password }, length };
}

/** RFC 1929 reply: VER(1) STATUS (0 = success). */
export function encodeAuthReply(ok: boolean): Buffer {
  return Buffer.from([USER_PASS_VERSION, ok ? 0 : 1]);
}

/**
 * Request: VER(5) CMD RSV ATYP DST.ADDR DST.PORT. Returns null until complete.
 * A non-zero RSV byte is accepted (it carries no meaning, and being strict only breaks odd clients).
 * Throws WireError 'bad-command' (reply REP.commandNotSupported) or 'bad-atyp'
 * (reply REP.addressTypeNotSupported); 'bad-version' and 'bad-domain' otherwise.
 */
export function parseRequest(buf: Uint8Array): Decoded<{ command: SocksCommand; address: Address }> | null {
  checkVersion(buf, 'SOCKS5 request');
  if (buf.length < 2) return null;
  const command = COMMANDS[buf[1]!];
  if (!command) throw new WireError('bad-command', `unknown SOCKS5 command ${hex(buf[1]!)}`);
  if (buf.length < 4) return null;
  const a = readAddress(buf, 3);
  if (!a) return null;
  return { value: { command, address: a.value }, length: 3 + a.length };
}

/** Reply: VER(5) REP RSV(0) BND.ADDR BND.PORT; the bound address defaults to 0.0.0.0:0. */
export function encodeReply(rep: number, bound: Address = makeAddress('0.0.0.0', 0)): Buffer {
  checkByte(rep, 'SOCKS5 reply code');
  const out = Buffer.allocUnsafe(3 + encodedAddressLength(bound));
  out[0] = SOCKS_VERSION;
  out[1] = rep;
  out[2] = 0;
  writeAddress(bound, out, 3);
  return out;
}

/** Bytes before the payload in a SOCKS5 UDP datagram to `address`: RSV(2) FRAG(1) + address. */
export function udpDatagramHeaderLength(address: Address): number {
  return 3 + encodedAddressLength(address);
}

/**
 * UDP request header (RFC 1928 §7): RSV(2) FRAG ATYP DST.ADDR DST.PORT DATA. A datagram is complete by
 * definition, so a short one throws WireError('truncated'). RSV is not checked. `payload` is a view into `buf`.
 */
export function decodeUdpDatagram(buf: Uint8Array): { frag: number; address: Address; payload: Buffer } {
  if (buf.length < 4) throw new WireError('truncated', `SOCKS5 UDP datagram too short (${buf.length} bytes)`);
  const a = readAddressComplete(buf, 3);
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  return { frag: buf[2]!, address: a.value, payload: b.subarray(3 + a.length) };
}

/** Builds a SOCKS5 UDP datagram (FRAG 0) carrying `payload` from/to `address`. */
export function encodeUdpDatagram(address: Address, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(udpDatagramHeaderLength(address) + payload.length);
  out[0] = out[1] = out[2] = 0;
  out.set(payload, writeAddress(address, out, 3));
  return out;
}
