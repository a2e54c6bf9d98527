// The TCP translation table, on synthetic segments (no device, no root).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TcpNat } from '../../src/tun/tcp-nat.js';
import {
  IPPROTO_TCP,
  TCP_ACK,
  TCP_FIN,
  TCP_RST,
  TCP_SYN,
  destinationIp,
  fillIpv4HeaderChecksum,
  fillTransportChecksum,
  ipToBytes,
  ipv4HeaderChecksumOk,
  parseIpPacket,
  sourceIp,
  transportChecksumOk,
} from '../../src/wire/ip-packet.js';

const LOCAL4 = '172.19.0.1';
const PEER4 = '172.19.0.2';
const LOCAL6 = 'fd00:19::1';
const PEER6 = 'fd00:19::2';
const LISTEN = 34567;

function segment(src: string, sp: number, dst: string, dp: number, flags: number, payload = ''): Buffer {
  const s = ipToBytes(src);
  const d = ipToBytes(dst);
  const v6 = s.length === 16;
  const ip = v6 ? 40 : 20;
  const b = Buffer.alloc(ip + 20 + payload.length);
  if (v6) {
    b.writeUInt32BE(0x60000000, 0);
    b.writeUInt16BE(20 + payload.length, 4);
    b[6] = IPPROTO_TCP;
    b[7] = 64;
    s.copy(b, 8);
    d.copy(b, 24);
  } else {
    b[0] = 0x45;
    b.writeUInt16BE(b.length, 2);
    b[8] = 64;
    b[9] = IPPROTO_TCP;
    s.copy(b, 12);
    d.copy(b, 16);
    fillIpv4HeaderChecksum(b);
  }
  b.writeUInt16BE(sp, ip);
  b.writeUInt16BE(dp, ip + 2);
  b[ip + 12] = 0x50;
  b[ip + 13] = flags;
  Buffer.from(payload).copy(b, ip + 20);
  fillTransportChecksum(b, parseIpPacket(b));
  return b;
}

function endpoints(b: Buffer): string {
  const p = parseIpPacket(b);
  assert.ok(transportChecksumOk(b, p), 'TCP checksum');
  if (p.version === 4) assert.ok(ipv4HeaderChecksumOk(b), 'IPv4 header checksum');
  const fmt = (ip: string, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);
  return `${fmt(sourceIp(b, p), p.srcPort)} > ${fmt(destinationIp(b, p), p.dstPort)}`;
}

function makeNat(now = { t: 0 }, extra: Partial<ConstructorParameters<typeof TcpNat>[0]> = {}): TcpNat {
  const nat = new TcpNat({
    v4: { local: ipToBytes(LOCAL4), peer: ipToBytes(PEER4) },
    v6: { local: ipToBytes(LOCAL6), peer: ipToBytes(PEER6) },
    now: () => now.t,
    ...extra,
  });
  nat.setListenerPort(4, LISTEN);
  nat.setListenerPort(6, LISTEN + 1);
  return nat;
}

describe('TcpNat', () => {
  test('an app SYN goes to the listener from the peer; the reply goes back as if from the remote', () => {
    const nat = makeNat();
    const syn = segment(LOCAL4, 50000, '91.108.4.10', 443, TCP_SYN);
    assert.equal(nat.translate(syn, parseIpPacket(syn)), 'write');
    assert.equal(endpoints(syn), `${PEER4}:10000 > ${LOCAL4}:${LISTEN}`);
    const flow = nat.accept(10000, 4)!;
    assert.deepEqual([flow.srcPort, flow.dstPort, flow.dst.join('.')], [50000, 443, '91.108.4.10']);

    const synAck = segment(LOCAL4, LISTEN, PEER4, 10000, TCP_SYN | TCP_ACK);
    assert.equal(nat.translate(synAck, parseIpPacket(synAck)), 'write');
    assert.equal(endpoints(synAck), `91.108.4.10:443 > ${LOCAL4}:50000`);

    const data = segment(LOCAL4, 50000, '91.108.4.10', 443, TCP_ACK, 'hello');
    assert.equal(nat.translate(data, parseIpPacket(data)), 'write');
    assert.equal(endpoints(data), `${PEER4}:10000 > ${LOCAL4}:${LISTEN}`);
    assert.equal(nat.size, 1);
  });

  test('IPv6 flows, and apps from other hosts (a router) keep their own addresses on the way back', () => {
    const nat = makeNat();
    const syn = segment('2001:db8::5', 4000, '2001:db8:1::1', 80, TCP_SYN);
    assert.equal(nat.translate(syn, parseIpPacket(syn)), 'write');
    assert.equal(endpoints(syn), `[${PEER6}]:10000 > [${LOCAL6}]:${LISTEN + 1}`);
    assert.equal(nat.accept(10000, 4), undefined, 'a port of the other family');
    assert.ok(nat.accept(10000, 6));
    const back = segment(LOCAL6, LISTEN + 1, PEER6, 10000, TCP_ACK, 'x');
    assert.equal(nat.translate(back, parseIpPacket(back)), 'write');
    assert.equal(endpoints(back), '[2001:db8:1::1]:80 > [2001:db8::5]:4000');
    const lan = segment('192.168.1.20', 1234, '1.1.1.1', 443, TCP_SYN);
    assert.equal(nat.translate(lan, parseIpPacket(lan)), 'write');
    const reply = segment(LOCAL4, LISTEN, PEER4, 10001, TCP_SYN | TCP_ACK);
    nat.translate(reply, parseIpPacket(reply));
    assert.equal(endpoints(reply), '1.1.1.1:443 > 192.168.1.20:1234');
  });

  test('segments of unknown flows: RST for the app, dropped from the listener; RSTs never answered', () => {
    const nat = makeNat();
    const stray = segment(LOCAL4, 50000, '8.8.8.8', 443, TCP_ACK, 'old');
    assert.equal(nat.translate(stray, parseIpPacket(stray)), 'reset');
    const rst = segment(LOCAL4, 50000, '8.8.8.8', 443, TCP_RST);
    assert.equal(nat.translate(rst, parseIpPacket(rst)), 'drop');
    const fromListener = segment(LOCAL4, LISTEN, PEER4, 12345, TCP_ACK);
    assert.equal(nat.translate(fromListener, parseIpPacket(fromListener)), 'drop');
    const notListener = segment(LOCAL4, 999, PEER4, 10000, TCP_ACK);
    assert.equal(nat.translate(notListener, parseIpPacket(notListener)), 'drop');
    const noListener = new TcpNat({ v4: { local: ipToBytes(LOCAL4), peer: ipToBytes(PEER4) } });
    const syn = segment(LOCAL4, 1, '8.8.8.8', 2, TCP_SYN);
    assert.equal(noListener.translate(syn, parseIpPacket(syn)), 'drop');
  });

  test('a retransmitted SYN keeps its port; after close a new SYN on the same 4-tuple gets a new one', () => {
    const now = { t: 0 };
    const nat = makeNat(now);
    const syn = (): Buffer => segment(LOCAL4, 50000, '1.2.3.4', 80, TCP_SYN);
    let s = syn();
    nat.translate(s, parseIpPacket(s));
    s = syn();
    nat.translate(s, parseIpPacket(s));
    assert.equal(parseIpPacket(s).srcPort, 10000);
    nat.accept(10000, 4);
    nat.release(10000);
    assert.equal(nat.accept(10000, 4), undefined, 'a closed flow is not accepted again');
    const fin = segment(LOCAL4, 50000, '1.2.3.4', 80, TCP_FIN | TCP_ACK);
    assert.equal(
      nat.translate(fin, parseIpPacket(fin)),
      'write',
      'last segments still pass while it lingers',
    );
    s = syn();
    nat.translate(s, parseIpPacket(s));
    assert.equal(parseIpPacket(s).srcPort, 10001);
  });

  test('sweep: unaccepted flows after 30 s, closed ones after their linger time', () => {
    const now = { t: 0 };
    const nat = makeNat(now);
    const a = segment(LOCAL4, 1, '1.2.3.4', 80, TCP_SYN);
    const b = segment(LOCAL4, 2, '1.2.3.4', 80, TCP_SYN);
    const c = segment(LOCAL4, 3, '1.2.3.4', 80, TCP_SYN);
    for (const s of [a, b, c]) nat.translate(s, parseIpPacket(s));
    nat.accept(10001, 4);
    nat.accept(10002, 4);
    now.t = 5_000;
    nat.release(10002);
    now.t = 15_000;
    nat.sweep();
    assert.equal(nat.size, 2, 'the closed flow went after 10 s');
    now.t = 30_000;
    nat.sweep();
    assert.equal(nat.size, 1, 'the never-accepted flow went after 30 s; the open one stays');
    assert.ok(nat.accept(10001, 4));
  });

  test('ports are used round robin; when all are taken the oldest closed flow gives its port up', () => {
    const now = { t: 0 };
    const nat = makeNat(now, { firstPort: 20000, lastPort: 20002 });
    const open = (sp: number): number | undefined => {
      const s = segment(LOCAL4, sp, '1.2.3.4', 80, TCP_SYN);
      return nat.translate(s, parseIpPacket(s)) === 'write' ? parseIpPacket(s).srcPort : undefined;
    };
    assert.deepEqual([open(1), open(2), open(3)], [20000, 20001, 20002]);
    assert.equal(open(4), undefined, 'no port free, none closed: refused');
    nat.accept(20001, 4);
    now.t = 1;
    nat.release(20001);
    assert.equal(open(5), 20001);
    const stale = segment(LOCAL4, 2, '1.2.3.4', 80, TCP_ACK);
    assert.equal(nat.translate(stale, parseIpPacket(stale)), 'reset', 'the evicted flow is gone');
  });

  test('a million segments of one flow: every checksum right, bounded time', () => {
    const nat = makeNat();
    const syn = segment(LOCAL4, 50000, '91.108.4.10', 443, TCP_SYN);
    nat.translate(syn, parseIpPacket(syn));
    const seg = segment(LOCAL4, 50000, '91.108.4.10', 443, TCP_ACK, 'x'.repeat(1400));
    const back = segment(LOCAL4, LISTEN, PEER4, 10000, TCP_ACK, 'y'.repeat(1400));
    const t0 = process.hrtime.bigint();
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const s = Buffer.from(i % 2 ? seg : back);
      assert.equal(nat.translate(s, parseIpPacket(s)), 'write');
      if (i % 10_007 === 0) endpoints(s);
    }
    const perPacketNs = Number(process.hrtime.bigint() - t0) / n;
    assert.ok(perPacketNs < 50_000, `translation took ${perPacketNs} ns a segment`);
  });
});
