import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { WireError } from '../../src/wire/errors.js';
import {
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  TCP_ACK,
  TCP_FIN,
  TCP_PSH,
  TCP_RST,
  TCP_SYN,
  buildTcpReset,
  buildUdpPacket,
  bytesToIp,
  destinationIp,
  fillIpv4HeaderChecksum,
  fillTransportChecksum,
  ipToBytes,
  ipv4HeaderChecksumOk,
  onesComplementSum,
  parseIpPacket,
  rewriteEndpoints,
  sourceIp,
  transportChecksumOk,
  type IpPacket,
} from '../../src/wire/ip-packet.js';
import { wireCode } from '../helpers/wire-error.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** mulberry32: seeded, so every run tests the same inputs. */
function rng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

function randomBytes(r: (n: number) => number, n: number): Buffer {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = r(256);
  return b;
}

interface TcpSpec {
  src: string;
  dst: string;
  srcPort: number;
  dstPort: number;
  flags: number;
  seq?: number;
  ack?: number;
  options?: Buffer;
  payload?: Buffer;
}

/** A TCP segment built field by field (independently of the module's builders), checksums filled. */
function tcpPacket(s: TcpSpec): Buffer {
  const src = ipToBytes(s.src);
  const dst = ipToBytes(s.dst);
  const v6 = src.length === 16;
  const options = s.options ?? Buffer.alloc(0);
  const payload = s.payload ?? Buffer.alloc(0);
  const tcpLen = 20 + options.length + payload.length;
  const ipLen = v6 ? 40 : 20;
  const b = Buffer.alloc(ipLen + tcpLen);
  if (v6) {
    b.writeUInt32BE(0x60000000, 0);
    b.writeUInt16BE(tcpLen, 4);
    b[6] = IPPROTO_TCP;
    b[7] = 64;
    src.copy(b, 8);
    dst.copy(b, 24);
  } else {
    b[0] = 0x45;
    b.writeUInt16BE(ipLen + tcpLen, 2);
    b.writeUInt16BE(0x4000, 6);
    b[8] = 64;
    b[9] = IPPROTO_TCP;
    src.copy(b, 12);
    dst.copy(b, 16);
    fillIpv4HeaderChecksum(b);
  }
  b.writeUInt16BE(s.srcPort, ipLen);
  b.writeUInt16BE(s.dstPort, ipLen + 2);
  b.writeUInt32BE(s.seq ?? 1000, ipLen + 4);
  b.writeUInt32BE(s.ack ?? 0, ipLen + 8);
  b[ipLen + 12] = ((20 + options.length) / 4) << 4;
  b[ipLen + 13] = s.flags;
  b.writeUInt16BE(65535, ipLen + 14);
  options.copy(b, ipLen + 20);
  payload.copy(b, ipLen + 20 + options.length);
  fillTransportChecksum(b, parseIpPacket(b));
  return b;
}

/** The Internet checksum the slow way (RFC 1071), as the reference for the module's. */
function referenceChecksumOk(b: Buffer, p: IpPacket): boolean {
  const v6 = p.version === 6;
  const end = p.protocol === IPPROTO_UDP ? p.payloadEnd : p.length;
  const pseudo = Buffer.alloc(v6 ? 40 : 12);
  if (v6) {
    b.copy(pseudo, 0, 8, 40);
    pseudo.writeUInt32BE(end - p.l4, 32);
    pseudo[39] = p.protocol;
  } else {
    b.copy(pseudo, 0, 12, 20);
    pseudo[9] = p.protocol;
    pseudo.writeUInt16BE(end - p.l4, 10);
  }
  const all = Buffer.concat([pseudo, b.subarray(p.l4, end), Buffer.alloc((end - p.l4) % 2)]);
  let sum = 0;
  for (let i = 0; i < all.length; i += 2) sum += all.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum === 0xffff;
}

describe('parseIpPacket', () => {
  test('IPv4 TCP with options, and trailing bytes beyond the total length', () => {
    const b = tcpPacket({
      src: '172.19.0.1',
      dst: '91.108.4.1',
      srcPort: 40000,
      dstPort: 443,
      flags: TCP_SYN,
      options: hex('020405b4 01030307'),
    });
    const p = parseIpPacket(Buffer.concat([b, Buffer.from('trailing')]));
    assert.deepEqual(p, {
      version: 4,
      protocol: IPPROTO_TCP,
      l4: 20,
      length: b.length,
      srcPort: 40000,
      dstPort: 443,
      tcpFlags: TCP_SYN,
      payload: 48,
      payloadEnd: 48,
    });
    assert.equal(sourceIp(b, p), '172.19.0.1');
    assert.equal(destinationIp(b, p), '91.108.4.1');
    assert.ok(ipv4HeaderChecksumOk(b));
    assert.ok(transportChecksumOk(b, p));
    assert.ok(referenceChecksumOk(b, p));
  });

  test('IPv4 with header options (IHL 6)', () => {
    const inner = tcpPacket({ src: '10.0.0.1', dst: '10.0.0.2', srcPort: 1, dstPort: 2, flags: TCP_ACK });
    const b = Buffer.concat([inner.subarray(0, 20), Buffer.from([1, 1, 1, 0]), inner.subarray(20)]);
    b[0] = 0x46;
    b.writeUInt16BE(b.length, 2);
    fillIpv4HeaderChecksum(b, 24);
    const p = parseIpPacket(b);
    assert.equal(p.l4, 24);
    assert.equal(p.srcPort, 1);
    assert.ok(ipv4HeaderChecksumOk(b));
  });

  test('IPv6 UDP, and a hop-by-hop header skipped', () => {
    const u = buildUdpPacket(ipToBytes('fd00:19::1'), 5000, ipToBytes('2001:db8::53'), 53, Buffer.from('q'));
    const p = parseIpPacket(u);
    assert.equal(p.version, 6);
    assert.equal(p.protocol, IPPROTO_UDP);
    assert.equal(p.payloadEnd - p.payload, 1);
    assert.equal(sourceIp(u, p), 'fd00:19::1');
    assert.ok(transportChecksumOk(u, p));
    assert.ok(referenceChecksumOk(u, p));
    // Insert an 8-byte hop-by-hop header (next header UDP, length 0, PadN).
    const hbh = Buffer.from([IPPROTO_UDP, 0, 1, 4, 0, 0, 0, 0]);
    const withExt = Buffer.concat([u.subarray(0, 40), hbh, u.subarray(40)]);
    withExt[6] = 0;
    withExt.writeUInt16BE(u.length - 40 + 8, 4);
    const q = parseIpPacket(withExt);
    assert.equal(q.protocol, IPPROTO_UDP);
    assert.equal(q.l4, 48);
    assert.equal(q.dstPort, 53);
  });

  test('other protocols come back without ports', () => {
    const b = Buffer.alloc(28);
    b[0] = 0x45;
    b.writeUInt16BE(28, 2);
    b[9] = IPPROTO_ICMP;
    const p = parseIpPacket(b);
    assert.deepEqual(
      [p.protocol, p.srcPort, p.dstPort, p.payload, p.payloadEnd],
      [IPPROTO_ICMP, 0, 0, 28, 28],
    );
  });

  test('a known IPv4 header checksum (b861)', () => {
    const h = hex('4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7');
    assert.ok(ipv4HeaderChecksumOk(h));
    const copy = Buffer.from(h);
    fillIpv4HeaderChecksum(copy);
    assert.equal(copy.readUInt16BE(10), 0xb861);
    assert.equal(onesComplementSum(Buffer.from([0xff]), 0, 1), 0xff00);
  });

  test('every truncation of valid packets is a WireError', () => {
    const packets = [
      tcpPacket({
        src: '1.2.3.4',
        dst: '5.6.7.8',
        srcPort: 1,
        dstPort: 2,
        flags: 0,
        options: hex('01010101'),
      }),
      tcpPacket({
        src: '::1',
        dst: '2001:db8::2',
        srcPort: 1,
        dstPort: 2,
        flags: 0,
        payload: Buffer.from('x'),
      }),
      buildUdpPacket(ipToBytes('1.2.3.4'), 1, ipToBytes('5.6.7.8'), 2, Buffer.from('hello')),
      buildUdpPacket(ipToBytes('::1'), 1, ipToBytes('::2'), 2, Buffer.from('hello')),
    ];
    for (const b of packets) {
      for (let n = 0; n < b.length; n++) {
        assert.throws(() => parseIpPacket(b.subarray(0, n)), WireError, `length ${n} of ${b.length}`);
      }
      assert.doesNotThrow(() => parseIpPacket(b));
    }
  });

  test('malformed headers and fragments', () => {
    const tcp = tcpPacket({ src: '1.2.3.4', dst: '5.6.7.8', srcPort: 1, dstPort: 2, flags: 0 });
    const edit = (f: (b: Buffer) => void, from = tcp): Buffer => {
      const b = Buffer.from(from);
      f(b);
      return b;
    };
    assert.equal(
      wireCode(() => parseIpPacket(edit((b) => (b[0] = 0x55)))),
      'bad-version',
    );
    assert.equal(
      wireCode(() => parseIpPacket(edit((b) => (b[0] = 0x44)))),
      'bad-header',
    );
    assert.equal(
      wireCode(() => parseIpPacket(edit((b) => b.writeUInt16BE(19, 2)))),
      'bad-length',
    );
    assert.equal(
      wireCode(() => parseIpPacket(edit((b) => b.writeUInt16BE(0x2000, 6)))),
      'fragment',
    );
    assert.equal(
      wireCode(() => parseIpPacket(edit((b) => b.writeUInt16BE(0x0001, 6)))),
      'fragment',
    );
    assert.equal(
      wireCode(() => parseIpPacket(edit((b) => (b[32] = 0x40)))),
      'bad-header',
    );
    assert.equal(
      wireCode(() => parseIpPacket(edit((b) => (b[32] = 0x60)))),
      'truncated',
    );
    const udp = buildUdpPacket(ipToBytes('1.2.3.4'), 1, ipToBytes('5.6.7.8'), 2, Buffer.from('hi'));
    assert.equal(
      wireCode(() => parseIpPacket(edit((b) => b.writeUInt16BE(7, 24), udp))),
      'bad-length',
    );
    assert.equal(
      wireCode(() => parseIpPacket(edit((b) => b.writeUInt16BE(11, 24), udp))),
      'bad-length',
    );
    // A shorter UDP length than the IP payload is allowed: the payload ends where UDP says.
    const short = edit((b) => b.writeUInt16BE(9, 24), udp);
    assert.equal(parseIpPacket(short).payloadEnd, 29);
    const v6 = buildUdpPacket(ipToBytes('::1'), 1, ipToBytes('::2'), 2, Buffer.from('hi'));
    assert.equal(
      wireCode(() => parseIpPacket(edit((b) => (b[6] = 44), v6))),
      'fragment',
    );
    const loop = Buffer.concat([v6.subarray(0, 40), Buffer.alloc(80)]);
    loop.writeUInt16BE(80, 4);
    loop[6] = 0; // hop-by-hop headers all the way down: each says the next is hop-by-hop again
    assert.equal(
      wireCode(() => parseIpPacket(loop)),
      'bad-header',
    );
  });
});

describe('rewriteEndpoints', () => {
  test('random TCP and UDP packets, both families: checksums stay right and match a fresh build', () => {
    const r = rng(7);
    const addr = (v6: boolean): string =>
      v6 ? bytesToIp(randomBytes(r, 16)) : `${r(256)}.${r(256)}.${r(256)}.${r(256)}`;
    for (let i = 0; i < 3000; i++) {
      const v6 = r(2) === 1;
      const udp = r(2) === 1;
      const payload = randomBytes(r, r(80));
      const [a, b, c, d] = [addr(v6), addr(v6), addr(v6), addr(v6)];
      const [p1, p2, p3, p4] = [r(65536), r(65536), r(65536), r(65536)];
      const make = (src: string, sp: number, dst: string, dp: number): Buffer =>
        udp
          ? buildUdpPacket(ipToBytes(src), sp, ipToBytes(dst), dp, payload)
          : tcpPacket({
              src,
              dst,
              srcPort: sp,
              dstPort: dp,
              flags: TCP_ACK | TCP_PSH,
              seq: 77,
              ack: 99,
              payload,
            });
      const pkt = make(a, p1, b, p2);
      const p = parseIpPacket(pkt);
      rewriteEndpoints(pkt, p, ipToBytes(c), p3, ipToBytes(d), p4);
      const q = parseIpPacket(pkt);
      assert.deepEqual([sourceIp(pkt, q), q.srcPort, destinationIp(pkt, q), q.dstPort], [c, p3, d, p4]);
      assert.ok(transportChecksumOk(pkt, q), `transport checksum after rewrite (${i})`);
      assert.ok(referenceChecksumOk(pkt, q), `reference checksum after rewrite (${i})`);
      if (!v6) assert.ok(ipv4HeaderChecksumOk(pkt), `IPv4 header checksum after rewrite (${i})`);
      const fresh = make(c, p3, d, p4);
      const at = q.l4 + (udp ? 6 : 16);
      const same = (x: number, y: number): boolean =>
        x === y || (x === 0 ? y === 0xffff : x === 0xffff && y === 0);
      assert.ok(
        same(pkt.readUInt16BE(at), fresh.readUInt16BE(at)),
        `checksum differs from a fresh build (${i})`,
      );
      pkt.writeUInt16BE(fresh.readUInt16BE(at), at);
      assert.deepEqual(pkt, fresh);
    }
  });

  test('an IPv4 UDP packet without a checksum keeps none', () => {
    const pkt = buildUdpPacket(ipToBytes('10.0.0.1'), 1, ipToBytes('10.0.0.2'), 2, Buffer.from('x'));
    pkt.writeUInt16BE(0, 26);
    const p = parseIpPacket(pkt);
    rewriteEndpoints(pkt, p, ipToBytes('1.1.1.1'), 3, ipToBytes('2.2.2.2'), 4);
    assert.equal(pkt.readUInt16BE(26), 0);
    assert.ok(ipv4HeaderChecksumOk(pkt));
  });

  test('refuses addresses of the other family and protocols without ports', () => {
    const pkt = buildUdpPacket(ipToBytes('10.0.0.1'), 1, ipToBytes('10.0.0.2'), 2, Buffer.alloc(0));
    const p = parseIpPacket(pkt);
    assert.equal(
      wireCode(() => rewriteEndpoints(pkt, p, ipToBytes('::1'), 1, ipToBytes('::2'), 2)),
      'bad-address',
    );
    assert.equal(
      wireCode(() =>
        rewriteEndpoints(
          pkt,
          { ...p, protocol: IPPROTO_ICMP },
          ipToBytes('1.1.1.1'),
          1,
          ipToBytes('1.1.1.2'),
          2,
        ),
      ),
      'bad-protocol',
    );
  });
});

describe('buildUdpPacket and buildTcpReset', () => {
  test('UDP: fields, checksum, and a payload too big for IPv4', () => {
    const b = buildUdpPacket(ipToBytes('8.8.8.8'), 53, ipToBytes('172.19.0.1'), 40000, Buffer.from('answer'));
    const p = parseIpPacket(b);
    assert.equal(b.length, 20 + 8 + 6);
    assert.deepEqual(
      [sourceIp(b, p), p.srcPort, destinationIp(b, p), p.dstPort],
      ['8.8.8.8', 53, '172.19.0.1', 40000],
    );
    assert.ok(ipv4HeaderChecksumOk(b));
    assert.ok(referenceChecksumOk(b, p));
    assert.equal(
      wireCode(() => buildUdpPacket(ipToBytes('1.1.1.1'), 1, ipToBytes('2.2.2.2'), 2, Buffer.alloc(65_508))),
      'too-big',
    );
    assert.doesNotThrow(() =>
      buildUdpPacket(ipToBytes('1.1.1.1'), 1, ipToBytes('2.2.2.2'), 2, Buffer.alloc(65_507)),
    );
    assert.equal(
      wireCode(() => buildUdpPacket(ipToBytes('1.1.1.1'), 1, ipToBytes('::2'), 2, Buffer.alloc(1))),
      'bad-address',
    );
  });

  test('RST for a segment with ACK: SEQ = its ACK', () => {
    const seg = tcpPacket({
      src: '172.19.0.1',
      dst: '1.2.3.4',
      srcPort: 5555,
      dstPort: 80,
      flags: TCP_ACK,
      seq: 10,
      ack: 0xfffffff0,
    });
    const rst = buildTcpReset(seg, parseIpPacket(seg))!;
    const p = parseIpPacket(rst);
    assert.deepEqual(
      [sourceIp(rst, p), p.srcPort, destinationIp(rst, p), p.dstPort],
      ['1.2.3.4', 80, '172.19.0.1', 5555],
    );
    assert.equal(p.tcpFlags, TCP_RST);
    assert.equal(rst.readUInt32BE(p.l4 + 4), 0xfffffff0);
    assert.ok(referenceChecksumOk(rst, p));
    assert.ok(ipv4HeaderChecksumOk(rst));
  });

  test('RST for a SYN (and FIN with data) without ACK: ACK = SEQ + length, wrapping', () => {
    const syn = tcpPacket({
      src: '::1',
      dst: '2001:db8::1',
      srcPort: 1,
      dstPort: 2,
      flags: TCP_SYN,
      seq: 0xffffffff,
    });
    const rst = buildTcpReset(syn, parseIpPacket(syn))!;
    const p = parseIpPacket(rst);
    assert.equal(p.tcpFlags, TCP_RST | TCP_ACK);
    assert.equal(rst.readUInt32BE(p.l4 + 8), 0);
    assert.ok(referenceChecksumOk(rst, p));
    const fin = tcpPacket({
      src: '1.1.1.1',
      dst: '2.2.2.2',
      srcPort: 1,
      dstPort: 2,
      flags: TCP_FIN,
      seq: 100,
      payload: Buffer.from('abc'),
    });
    const r2 = buildTcpReset(fin, parseIpPacket(fin))!;
    assert.equal(r2.readUInt32BE(20 + 8), 104);
    const reset = tcpPacket({ src: '1.1.1.1', dst: '2.2.2.2', srcPort: 1, dstPort: 2, flags: TCP_RST });
    assert.equal(buildTcpReset(reset, parseIpPacket(reset)), undefined);
  });

  test('address text round trips', () => {
    for (const ip of ['0.0.0.0', '255.255.255.255', '::', '::1', 'fd00:19::2', '2001:db8:0:1:2:3:4:5']) {
      assert.equal(bytesToIp(ipToBytes(ip)), ip);
    }
    assert.equal(
      wireCode(() => ipToBytes('example.com')),
      'bad-address',
    );
    assert.equal(
      wireCode(() => bytesToIp(Buffer.alloc(5))),
      'bad-address',
    );
  });
});

describe('fuzz', () => {
  test('random bytes and mutated packets: a packet or a WireError, offsets in bounds, rewrites keep checksums', () => {
    const r = rng(1234);
    const seeds = [
      tcpPacket({
        src: '1.2.3.4',
        dst: '5.6.7.8',
        srcPort: 1,
        dstPort: 2,
        flags: TCP_SYN,
        options: hex('020405b4'),
      }),
      tcpPacket({
        src: 'fd00::1',
        dst: 'fd00::2',
        srcPort: 3,
        dstPort: 4,
        flags: TCP_ACK,
        payload: Buffer.from('data'),
      }),
      buildUdpPacket(ipToBytes('10.0.0.1'), 5, ipToBytes('10.0.0.2'), 6, Buffer.from('payload')),
      buildUdpPacket(ipToBytes('fd00::1'), 7, ipToBytes('fd00::2'), 8, Buffer.from('payload')),
    ];
    const interesting = [0, 0x40, 0x45, 0x46, 0x4f, 0x60, 0xff, 6, 17, 44, 0, 43, 60];
    let parsed = 0;
    for (let i = 0; i < 20_000; i++) {
      let b: Buffer;
      if (i % 4 === 0) b = randomBytes(r, r(80));
      else {
        b = Buffer.from(seeds[r(seeds.length)]!);
        for (let k = 1 + r(3); k > 0; k--) {
          const at = r(b.length);
          if (r(3) === 0) b = b.subarray(0, r(b.length + 1));
          else if (r(2) === 0) b[at] = interesting[r(interesting.length)]!;
          else b[at] = b[at]! ^ (1 << r(8));
        }
      }
      let p: IpPacket;
      try {
        p = parseIpPacket(b);
      } catch (e) {
        assert.ok(e instanceof WireError, `not a WireError: ${String(e)}`);
        continue;
      }
      parsed++;
      assert.ok(
        p.l4 <= p.payload && p.payload <= p.payloadEnd && p.payloadEnd <= p.length && p.length <= b.length,
      );
      if (p.protocol === IPPROTO_TCP || p.protocol === IPPROTO_UDP) {
        const before = transportChecksumOk(b, p);
        const size = p.version === 4 ? 4 : 16;
        rewriteEndpoints(b, p, randomBytes(r, size), r(65536), randomBytes(r, size), r(65536));
        if (before)
          assert.ok(transportChecksumOk(b, parseIpPacket(b)), `checksum broken by a rewrite (${i})`);
      }
    }
    assert.ok(parsed > 1000, `too few inputs parsed (${parsed}) to say much`);
  });
});
