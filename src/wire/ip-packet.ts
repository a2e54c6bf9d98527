// IP packets as a TUN device carries them (no link header): IPv4 and IPv6 with TCP or UDP.
//  - parseIpPacket: versions, lengths and the transport header checked; fragments and unknown IPv6
//    extension headers are refused (WireError), other protocols (ICMP…) are returned without ports.
//  - rewriteEndpoints: new addresses and ports in place, with the IPv4 header checksum and the TCP/UDP
//    checksum updated incrementally (RFC 1624, eqn. 3), so no byte of the payload is read.
//  - buildUdpPacket, buildTcpReset: whole packets with their checksums.
// Pure: bytes in, objects or bytes out; no sockets, no timers.
import { isIPv4, isIPv6 } from 'node:net';
import { WireError } from './errors.js';
import { bytesToIpv6, ipv6ToBytes } from './socks-address.js';

export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

const IPV4_HEADER = 20;
const IPV6_HEADER = 40;
const UDP_HEADER = 8;
const TCP_HEADER = 20;
/** IPv6 extension headers that are skipped on the way to the transport header: hop-by-hop, routing, destination options. */
const SKIPPABLE_V6 = new Set([0, 43, 60]);
const V6_FRAGMENT = 44;
const MAX_EXTENSION_HEADERS = 8;

export interface IpPacket {
  readonly version: 4 | 6;
  /** The transport protocol (TCP 6, UDP 17, ICMP 1, ICMPv6 58, …). */
  readonly protocol: number;
  /** Offset of the transport header. */
  readonly l4: number;
  /** Length of the IP packet (the buffer may be longer: trailing bytes are ignored). */
  readonly length: number;
  /** TCP and UDP: the ports; 0 for other protocols. */
  readonly srcPort: number;
  readonly dstPort: number;
  /** TCP: the flags byte (FIN 0x01, SYN 0x02, RST 0x04, PSH 0x08, ACK 0x10); 0 otherwise. */
  readonly tcpFlags: number;
  /** Offset of the TCP or UDP payload; `length` for other protocols. */
  readonly payload: number;
  /** End of the TCP or UDP payload (UDP: by its own length field); `length` for other protocols. */
  readonly payloadEnd: number;
}

/** Where the addresses are: IPv4 12 and 16 (4 bytes), IPv6 8 and 24 (16 bytes). */
export function addressOffsets(version: 4 | 6): { src: number; dst: number; size: 4 | 16 } {
  return version === 4 ? { src: 12, dst: 16, size: 4 } : { src: 8, dst: 24, size: 16 };
}

/** Parses the IP and transport headers of one packet. Throws WireError when it is malformed or a fragment. */
export function parseIpPacket(b: Uint8Array): IpPacket {
  if (b.length < 1) throw new WireError('truncated', 'empty packet');
  const version = b[0]! >> 4;
  let protocol: number;
  let l4: number;
  let length: number;
  if (version === 4) {
    if (b.length < IPV4_HEADER) throw new WireError('truncated', 'IPv4 header truncated');
    const ihl = (b[0]! & 0x0f) * 4;
    length = (b[2]! << 8) | b[3]!;
    if (ihl < IPV4_HEADER) throw new WireError('bad-header', `IPv4 header length ${ihl} < 20`);
    if (length < ihl) throw new WireError('bad-length', `IPv4 total length ${length} < header ${ihl}`);
    if (length > b.length) throw new WireError('truncated', `IPv4 packet of ${length} bytes in ${b.length}`);
    const frag = (b[6]! << 8) | b[7]!;
    if (frag & 0x3fff) throw new WireError('fragment', 'IPv4 fragment');
    protocol = b[9]!;
    l4 = ihl;
  } else if (version === 6) {
    if (b.length < IPV6_HEADER) throw new WireError('truncated', 'IPv6 header truncated');
    length = IPV6_HEADER + ((b[4]! << 8) | b[5]!);
    if (length > b.length) throw new WireError('truncated', `IPv6 packet of ${length} bytes in ${b.length}`);
    protocol = b[6]!;
    l4 = IPV6_HEADER;
    for (let i = 0; SKIPPABLE_V6.has(protocol) || protocol === V6_FRAGMENT; i++) {
      if (protocol === V6_FRAGMENT) throw new WireError('fragment', 'IPv6 fragment');
      if (i >= MAX_EXTENSION_HEADERS) throw new WireError('bad-header', 'too many IPv6 extension headers');
      if (l4 + 8 > length) throw new WireError('truncated', 'IPv6 extension header truncated');
      const next = b[l4]!;
      l4 += (b[l4 + 1]! + 1) * 8;
      if (l4 > length) throw new WireError('truncated', 'IPv6 extension header truncated');
      protocol = next;
    }
  } else {
    throw new WireError('bad-version', `IP version ${version}`);
  }
  if (protocol === IPPROTO_TCP) {
    if (l4 + TCP_HEADER > length) throw new WireError('truncated', 'TCP header truncated');
    const dataOffset = (b[l4 + 12]! >> 4) * 4;
    if (dataOffset < TCP_HEADER) throw new WireError('bad-header', `TCP data offset ${dataOffset} < 20`);
    if (l4 + dataOffset > length) throw new WireError('truncated', 'TCP options truncated');
    return {
      version,
      protocol,
      l4,
      length,
      srcPort: (b[l4]! << 8) | b[l4 + 1]!,
      dstPort: (b[l4 + 2]! << 8) | b[l4 + 3]!,
      tcpFlags: b[l4 + 13]!,
      payload: l4 + dataOffset,
      payloadEnd: length,
    };
  }
  if (protocol === IPPROTO_UDP) {
    if (l4 + UDP_HEADER > length) throw new WireError('truncated', 'UDP header truncated');
    const udpLength = (b[l4 + 4]! << 8) | b[l4 + 5]!;
    if (udpLength < UDP_HEADER || l4 + udpLength > length) {
      throw new WireError('bad-length', `UDP length ${udpLength} does not fit the packet`);
    }
    return {
      version,
      protocol,
      l4,
      length,
      srcPort: (b[l4]! << 8) | b[l4 + 1]!,
      dstPort: (b[l4 + 2]! << 8) | b[l4 + 3]!,
      tcpFlags: 0,
      payload: l4 + UDP_HEADER,
      payloadEnd: l4 + udpLength,
    };
  }
  return {
    version,
    protocol,
    l4,
    length,
    srcPort: 0,
    dstPort: 0,
    tcpFlags: 0,
    payload: length,
    payloadEnd: length,
  };
}

/** An IP address as 4 or 16 bytes. Throws WireError for anything else. */
export function ipToBytes(ip: string): Buffer {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (isIPv6(ip)) return ipv6ToBytes(ip);
  throw new WireError('bad-address', `not an IP address: "${ip}"`);
}

/** 4 or 16 bytes as dotted IPv4 or canonical IPv6 text. */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length === 16) return bytesToIpv6(b);
  throw new WireError('bad-address', `an IP address has 4 or 16 bytes, not ${b.length}`);
}

export function sourceIp(b: Uint8Array, p: IpPacket): string {
  const o = addressOffsets(p.version);
  return bytesToIp(b.subarray(o.src, o.src + o.size));
}

export function destinationIp(b: Uint8Array, p: IpPacket): string {
  const o = addressOffsets(p.version);
  return bytesToIp(b.subarray(o.dst, o.dst + o.size));
}

/** The one's-complement sum of 16-bit big-endian words over [start, end), folded to 16 bits (not complemented). */
export function onesComplementSum(b: Uint8Array, start: number, end: number, initial = 0): number {
  let sum = initial;
  let i = start;
  for (; i + 1 < end; i += 2) sum += (b[i]! << 8) | b[i + 1]!;
  if (i < end) sum += b[i]! << 8;
  return fold(sum);
}

function fold(sum: number): number {
  // Each fold at least halves the excess; the sums here stay far below 2^53.
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

function pseudoHeaderSum(b: Uint8Array, p: IpPacket): number {
  const o = addressOffsets(p.version);
  const transportLength = p.protocol === IPPROTO_UDP ? p.payloadEnd - p.l4 : p.length - p.l4;
  let sum = onesComplementSum(b, o.src, o.src + o.size);
  sum = onesComplementSum(b, o.dst, o.dst + o.size, sum);
  return fold(sum + p.protocol + transportLength);
}

function checksumOffset(p: IpPacket): number {
  if (p.protocol === IPPROTO_TCP) return p.l4 + 16;
  if (p.protocol === IPPROTO_UDP) return p.l4 + 6;
  throw new WireError('bad-protocol', `no transport checksum for protocol ${p.protocol}`);
}

function transportEnd(p: IpPacket): number {
  return p.protocol === IPPROTO_UDP ? p.payloadEnd : p.length;
}

/** Computes and stores the TCP or UDP checksum (a zero UDP result is sent as 0xffff, RFC 768). */
export function fillTransportChecksum(b: Buffer, p: IpPacket): void {
  const at = checksumOffset(p);
  b.writeUInt16BE(0, at);
  let c = ~onesComplementSum(b, p.l4, transportEnd(p), pseudoHeaderSum(b, p)) & 0xffff;
  if (c === 0 && p.protocol === IPPROTO_UDP) c = 0xffff;
  b.writeUInt16BE(c, at);
}

/** True when the TCP or UDP checksum is right (an IPv4 UDP checksum of 0 means "none" and passes). */
export function transportChecksumOk(b: Uint8Array, p: IpPacket): boolean {
  const at = checksumOffset(p);
  if (p.protocol === IPPROTO_UDP && p.version === 4 && b[at] === 0 && b[at + 1] === 0) return true;
  return onesComplementSum(b, p.l4, transportEnd(p), pseudoHeaderSum(b, p)) === 0xffff;
}

export function fillIpv4HeaderChecksum(b: Buffer, headerLength = IPV4_HEADER): void {
  b.writeUInt16BE(0, 10);
  b.writeUInt16BE(~onesComplementSum(b, 0, headerLength) & 0xffff, 10);
}

export function ipv4HeaderChecksumOk(b: Uint8Array): boolean {
  return onesComplementSum(b, 0, (b[0]! & 0x0f) * 4) === 0xffff;
}

/** Σ(~old + new) over 16-bit words of two equal-length byte ranges (RFC 1624's m and m'). */
function wordDelta(b: Uint8Array, at: number, to: Uint8Array, sum: number): number {
  for (let i = 0; i < to.length; i += 2) {
    sum += (~((b[at + i]! << 8) | b[at + i + 1]!) & 0xffff) + ((to[i]! << 8) | to[i + 1]!);
  }
  return sum;
}

function adjust(b: Uint8Array, at: number, delta: number): void {
  const old = (b[at]! << 8) | b[at + 1]!;
  const c = ~fold((~old & 0xffff) + fold(delta)) & 0xffff;
  b[at] = c >> 8;
  b[at + 1] = c & 0xff;
}

/**
 * Rewrites the source and destination (addresses and ports) of a TCP or UDP packet in place. The new
 * addresses must be of the packet's family. Checksums are updated incrementally; an IPv4 UDP packet
 * without a checksum keeps none.
 */
export function rewriteEndpoints(
  b: Uint8Array,
  p: IpPacket,
  src: Uint8Array,
  srcPort: number,
  dst: Uint8Array,
  dstPort: number,
): void {
  const o = addressOffsets(p.version);
  if (src.length !== o.size || dst.length !== o.size) {
    throw new WireError('bad-address', `IPv${p.version} addresses have ${o.size} bytes`);
  }
  if (p.protocol !== IPPROTO_TCP && p.protocol !== IPPROTO_UDP) {
    throw new WireError('bad-protocol', `cannot rewrite ports of protocol ${p.protocol}`);
  }
  const addrDelta = wordDelta(b, o.dst, dst, wordDelta(b, o.src, src, 0));
  const ports = Buffer.of(srcPort >> 8, srcPort & 0xff, dstPort >> 8, dstPort & 0xff);
  const l4Delta = wordDelta(b, p.l4, ports, addrDelta);
  const at = checksumOffset(p);
  const noUdpChecksum = p.protocol === IPPROTO_UDP && p.version === 4 && b[at] === 0 && b[at + 1] === 0;
  if (p.version === 4) adjust(b, 10, addrDelta);
  if (!noUdpChecksum) {
    adjust(b, at, l4Delta);
    if (p.protocol === IPPROTO_UDP && b[at] === 0 && b[at + 1] === 0) b[at] = b[at + 1] = 0xff;
  }
  for (let i = 0; i < o.size; i++) {
    b[o.src + i] = src[i]!;
    b[o.dst + i] = dst[i]!;
  }
  b[p.l4] = srcPort >> 8;
  b[p.l4 + 1] = srcPort & 0xff;
  b[p.l4 + 2] = dstPort >> 8;
  b[p.l4 + 3] = dstPort & 0xff;
}

function writeIpHeader(
  out: Buffer,
  src: Uint8Array,
  dst: Uint8Array,
  protocol: number,
  l4Length: number,
): number {
  if (src.length === 4 && dst.length === 4) {
    out[0] = 0x45;
    out[1] = 0;
    out.writeUInt16BE(IPV4_HEADER + l4Length, 2);
    out.writeUInt16BE(0, 4); // identification: unused, DF is set
    out.writeUInt16BE(0x4000, 6);
    out[8] = 64;
    out[9] = protocol;
    out.set(src, 12);
    out.set(dst, 16);
    fillIpv4HeaderChecksum(out);
    return IPV4_HEADER;
  }
  if (src.length === 16 && dst.length === 16) {
    out.writeUInt32BE(0x60000000, 0);
    out.writeUInt16BE(l4Length, 4);
    out[6] = protocol;
    out[7] = 64;
    out.set(src, 8);
    out.set(dst, 24);
    return IPV6_HEADER;
  }
  throw new WireError('bad-address', 'source and destination must both be IPv4 (4 bytes) or IPv6 (16 bytes)');
}

/** A UDP packet from src:srcPort to dst:dstPort (IPv4 or IPv6 by the address length), checksums filled. */
export function buildUdpPacket(
  src: Uint8Array,
  srcPort: number,
  dst: Uint8Array,
  dstPort: number,
  payload: Uint8Array,
): Buffer {
  const header = src.length === 16 ? IPV6_HEADER : IPV4_HEADER;
  const udpLength = UDP_HEADER + payload.length;
  if (udpLength > 0xffff || header + udpLength > (src.length === 16 ? 0xffff + IPV6_HEADER : 0xffff)) {
    throw new WireError('too-big', `a UDP payload of ${payload.length} bytes does not fit an IP packet`);
  }
  const out = Buffer.alloc(header + udpLength);
  const l4 = writeIpHeader(out, src, dst, IPPROTO_UDP, udpLength);
  out.writeUInt16BE(srcPort, l4);
  out.writeUInt16BE(dstPort, l4 + 2);
  out.writeUInt16BE(udpLength, l4 + 4);
  out.set(payload, l4 + UDP_HEADER);
  fillTransportChecksum(out, parseIpPacket(out));
  return out;
}

/**
 * The RST that answers a TCP segment (RFC 9293 §3.10.7.1): from its destination to its source, with
 * SEQ = its ACK when it had one, else ACK = its SEQ + its length. Undefined for a segment that is
 * itself a RST (never answered).
 */
export function buildTcpReset(b: Uint8Array, p: IpPacket): Buffer | undefined {
  if (p.protocol !== IPPROTO_TCP) throw new WireError('bad-protocol', 'not a TCP segment');
  if (p.tcpFlags & TCP_RST) return undefined;
  const o = addressOffsets(p.version);
  const src = b.subarray(o.dst, o.dst + o.size);
  const dst = b.subarray(o.src, o.src + o.size);
  const out = Buffer.alloc((p.version === 4 ? IPV4_HEADER : IPV6_HEADER) + TCP_HEADER);
  const l4 = writeIpHeader(out, src, dst, IPPROTO_TCP, TCP_HEADER);
  out.writeUInt16BE(p.dstPort, l4);
  out.writeUInt16BE(p.srcPort, l4 + 2);
  const view = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  if (p.tcpFlags & TCP_ACK) {
    out.writeUInt32BE(view.readUInt32BE(p.l4 + 8), l4 + 4);
    out[l4 + 13] = TCP_RST;
  } else {
    const segLength =
      p.payloadEnd - p.payload + (p.tcpFlags & TCP_SYN ? 1 : 0) + (p.tcpFlags & TCP_FIN ? 1 : 0);
    out.writeUInt32BE((view.readUInt32BE(p.l4 + 4) + segLength) >>> 0, l4 + 8);
    out[l4 + 13] = TCP_RST | TCP_ACK;
  }
  out[l4 + 12] = (TCP_HEADER / 4) << 4;
  fillTransportChecksum(out, parseIpPacket(out));
  return out;
}
