// What the censor's tcpdump wrote: a pcap reader (Ethernet or Linux cooked framing; IPv4 and IPv6; TCP and
// UDP) and a TCP connection tracker that gives each connection's segments by direction, its first
// client data, its first client flight (all the client sent before the server's first byte) and its
// bursts (runs of payload in one direction). Pure: bytes in, objects out.

export interface Packet {
  /** Capture time, seconds. */
  time: number;
  ip?: { v6: boolean; src: string; dst: string; proto: number };
  tcp?: { srcPort: number; dstPort: number; seq: number; flags: number; payload: Buffer };
  udp?: { srcPort: number; dstPort: number; payload: Buffer };
}

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_ACK = 0x10;

const MAX_PACKETS = 2_000_000;

const ipv4 = (b: Buffer, o: number): string => [...b.subarray(o, o + 4)].join('.');
const ipv6 = (b: Buffer, o: number): string =>
  Array.from({ length: 8 }, (_, i) => b.readUInt16BE(o + i * 2).toString(16)).join(':');

/** The packets of a pcap file (link types 1 Ethernet, 113 Linux cooked, 101 raw IP). */
export function readPcap(file: Buffer): Packet[] {
  if (file.length < 24) throw new Error('not a pcap file: no header');
  const magicLe = file.readUInt32LE(0);
  const magicBe = file.readUInt32BE(0);
  const known = [0xa1b2c3d4, 0xa1b23c4d];
  if (!known.includes(magicLe) && !known.includes(magicBe))
    throw new Error(`not a pcap file (magic ${magicLe.toString(16)})`);
  const le = known.includes(magicLe);
  const nano = (le ? magicLe : magicBe) === 0xa1b23c4d;
  const u32 = (o: number): number => (le ? file.readUInt32LE(o) : file.readUInt32BE(o));
  const linkType = u32(20);
  const out: Packet[] = [];
  for (let o = 24; o + 16 <= file.length && out.length < MAX_PACKETS;) {
    const time = u32(o) + u32(o + 4) / (nano ? 1e9 : 1e6);
    const len = u32(o + 8);
    const frame = file.subarray(o + 16, Math.min(file.length, o + 16 + len));
    o += 16 + len;
    const p: Packet = { time };
    out.push(p);
    let l3 = -1;
    let ethertype = 0;
    if (linkType === 1 && frame.length >= 14) {
      l3 = 14;
      ethertype = frame.readUInt16BE(12);
    } else if (linkType === 113 && frame.length >= 16) {
      l3 = 16;
      ethertype = frame.readUInt16BE(14);
    } else if (linkType === 101 && frame.length >= 1) {
      l3 = 0;
      ethertype = frame[0]! >> 4 === 6 ? 0x86dd : 0x0800;
    }
    if (l3 < 0) continue;
    let l4 = -1;
    let end = frame.length;
    if (ethertype === 0x0800 && frame.length >= l3 + 20) {
      l4 = l3 + (frame[l3]! & 0x0f) * 4;
      end = Math.min(frame.length, l3 + frame.readUInt16BE(l3 + 2));
      p.ip = { v6: false, src: ipv4(frame, l3 + 12), dst: ipv4(frame, l3 + 16), proto: frame[l3 + 9]! };
    } else if (ethertype === 0x86dd && frame.length >= l3 + 40) {
      l4 = l3 + 40;
      end = Math.min(frame.length, l3 + 40 + frame.readUInt16BE(l3 + 4));
      p.ip = { v6: true, src: ipv6(frame, l3 + 8), dst: ipv6(frame, l3 + 24), proto: frame[l3 + 6]! };
    }
    if (p.ip?.proto === 6 && frame.length >= l4 + 20) {
      const dataOffset = (frame[l4 + 12]! >> 4) * 4;
      p.tcp = {
        srcPort: frame.readUInt16BE(l4),
        dstPort: frame.readUInt16BE(l4 + 2),
        seq: frame.readUInt32BE(l4 + 4),
        flags: frame[l4 + 13]!,
        payload: frame.subarray(Math.min(end, l4 + dataOffset), end),
      };
    } else if (p.ip?.proto === 17 && frame.length >= l4 + 8) {
      p.udp = {
        srcPort: frame.readUInt16BE(l4),
        dstPort: frame.readUInt16BE(l4 + 2),
        payload: frame.subarray(l4 + 8, end),
      };
    }
  }
  return out;
}

export interface Segment {
  fromClient: boolean;
  time: number;
  /** Sequence number relative to the sender's ISN (first payload byte is 1). */
  relSeq: number;
  flags: number;
  payload: Buffer;
}

export interface TcpConnection {
  client: { host: string; port: number };
  server: { host: string; port: number };
  /** Time of the client's SYN. */
  start: number;
  segments: Segment[];
}

const MAX_SEGMENTS_PER_CONNECTION = 100_000;

/**
 * The TCP connections whose SYN is in the capture, in the order of their SYNs. A 4-tuple used again
 * after a new SYN (with another ISN) starts a new connection.
 */
export function tcpConnections(packets: Packet[]): TcpConnection[] {
  const conns: TcpConnection[] = [];
  const byKey = new Map<string, { c: TcpConnection; isn: [number, number | undefined] }>();
  const key = (a: string, ap: number, b: string, bp: number): string => `${a}|${ap}|${b}|${bp}`;
  for (const p of packets) {
    if (!p.ip || !p.tcp) continue;
    const t = p.tcp;
    const fwd = key(p.ip.src, t.srcPort, p.ip.dst, t.dstPort);
    const rev = key(p.ip.dst, t.dstPort, p.ip.src, t.srcPort);
    if (t.flags & TCP_SYN && !(t.flags & TCP_ACK)) {
      const known = byKey.get(fwd);
      if (known && known.isn[0] === t.seq) continue; // a retransmitted SYN
      const c: TcpConnection = {
        client: { host: p.ip.src, port: t.srcPort },
        server: { host: p.ip.dst, port: t.dstPort },
        start: p.time,
        segments: [],
      };
      conns.push(c);
      byKey.set(fwd, { c, isn: [t.seq, undefined] });
      continue;
    }
    const asClient = byKey.get(fwd);
    const asServer = asClient ? undefined : byKey.get(rev);
    const entry = asClient ?? asServer;
    if (!entry) continue;
    const fromClient = entry === asClient;
    if (!fromClient && t.flags & TCP_SYN) {
      entry.isn[1] = t.seq;
      continue;
    }
    const isn = fromClient ? entry.isn[0] : entry.isn[1];
    if (isn === undefined) continue;
    if (entry.c.segments.length >= MAX_SEGMENTS_PER_CONNECTION) continue;
    entry.c.segments.push({
      fromClient,
      time: p.time,
      relSeq: (t.seq - isn + 2 ** 32) % 2 ** 32,
      flags: t.flags,
      payload: t.payload,
    });
  }
  return conns;
}

/** The payload of the connection's first client segment that carries data (what the censor judges). */
export function firstClientSegment(c: TcpConnection): Buffer | undefined {
  return c.segments.find((s) => s.fromClient && s.payload.length > 0)?.payload;
}

/**
 * Everything the client sent before the server's first payload byte, in sequence order with
 * retransmissions removed, at most `max` bytes: the "first packet" a prober records and replays.
 */
export function firstClientFlight(c: TcpConnection, max = 65_536): Buffer {
  const firstServer = c.segments.findIndex((s) => !s.fromClient && s.payload.length > 0);
  const segs = (firstServer < 0 ? c.segments : c.segments.slice(0, firstServer)).filter(
    (s) => s.fromClient && s.payload.length > 0,
  );
  return reassemble(segs, max);
}

function reassemble(segs: Segment[], max: number): Buffer {
  const sorted = [...segs].sort((a, b) => a.relSeq - b.relSeq);
  const parts: Buffer[] = [];
  let next = 1;
  let size = 0;
  for (const s of sorted) {
    const end = s.relSeq + s.payload.length;
    if (end <= next) continue; // retransmitted
    if (s.relSeq > next) break; // a gap: stop at what is contiguous
    const piece = s.payload.subarray(next - s.relSeq);
    parts.push(piece);
    size += piece.length;
    next = end;
    if (size >= max) break;
  }
  return Buffer.concat(parts).subarray(0, max);
}

export interface Burst {
  fromClient: boolean;
  bytes: number;
  packets: number;
  /** The burst's bytes, reassembled (at most 64 KiB kept). */
  data: Buffer;
}

/**
 * The connection's payload as bursts (flights): consecutive payload segments in one direction, in capture
 * order, retransmissions skipped; at most `max` bursts.
 */
export function bursts(c: TcpConnection, max = 16): Burst[] {
  const out: Burst[] = [];
  const next = [1, 1];
  for (const s of c.segments) {
    if (s.payload.length === 0) continue;
    const d = s.fromClient ? 0 : 1;
    const end = s.relSeq + s.payload.length;
    if (end <= next[d]!) continue;
    const fresh = s.payload.subarray(Math.max(0, next[d]! - s.relSeq));
    next[d] = end;
    const last = out[out.length - 1];
    if (last && last.fromClient === s.fromClient) {
      last.bytes += fresh.length;
      last.packets++;
      if (last.data.length < 65_536) last.data = Buffer.concat([last.data, fresh]);
    } else {
      if (out.length >= max) break;
      out.push({ fromClient: s.fromClient, bytes: fresh.length, packets: 1, data: Buffer.from(fresh) });
    }
  }
  return out;
}
