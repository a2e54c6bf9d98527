// SIP022 plaintext headers (shadowsocks-org docs/doc/sip022.md). Encryption is the crypto layer's job;
// these functions only lay out and check the bytes inside the AEAD boxes.
import { WireError } from './errors.js';
import { encodedAddressLength, readAddressComplete, writeAddress, type Address } from './socks-address.js';

export const TYPE_CLIENT = 0;
export const TYPE_SERVER = 1;
export const MAX_PADDING = 900;
/** Messages whose timestamp is further than this from our clock are replays. */
export const MAX_TIME_DIFF_S = 30;
export const REQUEST_FIXED_HEADER_SIZE = 1 + 8 + 2;

export function responseFixedHeaderSize(saltSize: number): number {
  return 1 + 8 + saltSize + 2;
}

export function checkTimestamp(ts: number, nowS: number): void {
  if (Math.abs(ts - nowS) > MAX_TIME_DIFF_S) {
    throw new WireError(
      'bad-timestamp',
      `timestamp ${ts} is ${ts - nowS} s from now (limit ±${MAX_TIME_DIFF_S} s)`,
    );
  }
}

function readU64(buf: Buffer, offset: number): number {
  return Number(buf.readBigUInt64BE(offset));
}

// ---- TCP request stream ----

export function encodeRequestFixedHeader(timestamp: number, varHeaderLength: number): Buffer {
  const b = Buffer.allocUnsafe(REQUEST_FIXED_HEADER_SIZE);
  b[0] = TYPE_CLIENT;
  b.writeBigUInt64BE(BigInt(timestamp), 1);
  b.writeUInt16BE(varHeaderLength, 9);
  return b;
}

export function decodeRequestFixedHeader(b: Buffer): { timestamp: number; length: number } {
  if (b.length !== REQUEST_FIXED_HEADER_SIZE) throw new WireError('truncated', 'bad request header size');
  if (b[0] !== TYPE_CLIENT)
    throw new WireError('bad-type', `request header type ${b[0]} is not a client stream`);
  const length = b.readUInt16BE(9);
  if (length === 0) throw new WireError('bad-length', 'empty variable-length header');
  return { timestamp: readU64(b, 1), length };
}

export function encodeRequestVarHeader(address: Address, paddingLength: number, payload: Uint8Array): Buffer {
  const alen = encodedAddressLength(address);
  const b = Buffer.allocUnsafe(alen + 2 + paddingLength + payload.length);
  let o = writeAddress(address, b, 0);
  o = b.writeUInt16BE(paddingLength, o);
  b.fill(0, o, o + paddingLength); // padding content is unspecified; it is encrypted anyway
  o += paddingLength;
  b.set(payload, o);
  return b;
}

export function decodeRequestVarHeader(b: Buffer): { address: Address; payload: Buffer } {
  const { value: address, length } = readAddressComplete(b, 0);
  if (b.length < length + 2) throw new WireError('truncated', 'variable header ends before padding length');
  const padLen = b.readUInt16BE(length);
  if (padLen > MAX_PADDING) throw new WireError('bad-padding', `padding ${padLen} exceeds ${MAX_PADDING}`);
  const start = length + 2 + padLen;
  if (start > b.length) throw new WireError('bad-padding', 'padding extends beyond the header chunk');
  const payload = b.subarray(start);
  if (payload.length === 0 && padLen === 0) {
    throw new WireError('bad-padding', 'request header has neither payload nor padding');
  }
  return { address, payload };
}

// ---- TCP response stream ----

export function encodeResponseFixedHeader(
  timestamp: number,
  requestSalt: Uint8Array,
  length: number,
): Buffer {
  const b = Buffer.allocUnsafe(responseFixedHeaderSize(requestSalt.length));
  b[0] = TYPE_SERVER;
  b.writeBigUInt64BE(BigInt(timestamp), 1);
  b.set(requestSalt, 9);
  b.writeUInt16BE(length, 9 + requestSalt.length);
  return b;
}

export function decodeResponseFixedHeader(
  b: Buffer,
  saltSize: number,
): { timestamp: number; requestSalt: Buffer; length: number } {
  if (b.length !== responseFixedHeaderSize(saltSize))
    throw new WireError('truncated', 'bad response header size');
  if (b[0] !== TYPE_SERVER)
    throw new WireError('bad-type', `response header type ${b[0]} is not a server stream`);
  const length = b.readUInt16BE(9 + saltSize);
  if (length === 0) throw new WireError('bad-length', 'empty first response chunk');
  return { timestamp: readU64(b, 1), requestSalt: b.subarray(9, 9 + saltSize), length };
}

// ---- UDP main headers (after the separate header, or after session/packet ID for chacha) ----

export interface UdpMessage {
  type: typeof TYPE_CLIENT | typeof TYPE_SERVER;
  timestamp: number;
  /** Server messages only: the client session this answers. */
  clientSessionId?: Buffer;
  address: Address;
  payload: Buffer;
}

export function udpMessageLength(m: UdpMessage, paddingLength: number): number {
  return (
    1 +
    8 +
    (m.type === TYPE_SERVER ? 8 : 0) +
    2 +
    paddingLength +
    encodedAddressLength(m.address) +
    m.payload.length
  );
}

/** Writes the message at `offset` of `out`; returns the offset after it. */
export function writeUdpMessage(m: UdpMessage, paddingLength: number, out: Buffer, offset: number): number {
  let o = offset;
  out[o++] = m.type;
  o = out.writeBigUInt64BE(BigInt(m.timestamp), o);
  if (m.type === TYPE_SERVER) {
    if (!m.clientSessionId || m.clientSessionId.length !== 8)
      throw new WireError('bad-session', 'server message needs an 8-byte client session ID');
    m.clientSessionId.copy(out, o);
    o += 8;
  }
  o = out.writeUInt16BE(paddingLength, o);
  out.fill(0, o, o + paddingLength);
  o += paddingLength;
  o = writeAddress(m.address, out, o);
  out.set(m.payload, o);
  return o + m.payload.length;
}

export function readUdpMessage(b: Buffer, expectType: typeof TYPE_CLIENT | typeof TYPE_SERVER): UdpMessage {
  const fixed = 1 + 8 + (expectType === TYPE_SERVER ? 8 : 0) + 2;
  if (b.length < fixed) throw new WireError('truncated', 'UDP message shorter than its header');
  if (b[0] !== expectType)
    throw new WireError('bad-type', `UDP message type ${b[0]}, expected ${expectType}`);
  const timestamp = readU64(b, 1);
  let o = 9;
  let clientSessionId: Buffer | undefined;
  if (expectType === TYPE_SERVER) {
    clientSessionId = b.subarray(o, o + 8);
    o += 8;
  }
  const padLen = b.readUInt16BE(o);
  o += 2;
  if (padLen > MAX_PADDING || o + padLen > b.length)
    throw new WireError('bad-padding', 'UDP padding out of bounds');
  o += padLen;
  const { value: address, length } = readAddressComplete(b, o);
  const payload = b.subarray(o + length);
  return clientSessionId
    ? { type: expectType, timestamp, clientSessionId, address, payload }
    : { type: expectType, timestamp, address, payload };
}
