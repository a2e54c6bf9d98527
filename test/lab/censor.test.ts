// The lab censor's passive rules on synthetic captures (no root needed): a pcap written here, with
// connections whose bytes are known, read back by the lab's reader and judged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import dnsPacket from 'dns-packet';
import { analyseCapture, judgeTlsInTls, isBlocked } from '../../src/lab/censor.js';
import { bursts, firstClientFlight, readPcap, tcpConnections } from '../../src/lab/pcap.js';
import { parseClientHello } from '../../src/wire/tls-client-hello.js';

const CLIENT = '10.66.1.2';
const SERVER = { host: '10.66.2.2', port: 8388 };

// --- a tiny pcap writer -------------------------------------------------------------------------------

interface Frame {
  src: string;
  dst: string;
  proto: 6 | 17;
  sport: number;
  dport: number;
  seq?: number;
  flags?: number;
  payload: Buffer;
}

const ip4 = (s: string): number[] => s.split('.').map(Number);

function frame(f: Frame): Buffer {
  const l4 =
    f.proto === 6
      ? Buffer.concat([
          (() => {
            const h = Buffer.alloc(20);
            h.writeUInt16BE(f.sport, 0);
            h.writeUInt16BE(f.dport, 2);
            h.writeUInt32BE((f.seq ?? 0) >>> 0, 4);
            h[12] = 5 << 4;
            h[13] = f.flags ?? 0x18;
            return h;
          })(),
          f.payload,
        ])
      : Buffer.concat([
          Buffer.from([
            f.sport >> 8,
            f.sport & 255,
            f.dport >> 8,
            f.dport & 255,
            0,
            8 + f.payload.length,
            0,
            0,
          ]),
          f.payload,
        ]);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + l4.length, 2);
  ip[8] = 64;
  ip[9] = f.proto;
  Buffer.from(ip4(f.src)).copy(ip, 12);
  Buffer.from(ip4(f.dst)).copy(ip, 16);
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, ip, l4]);
}

function pcap(frames: Buffer[]): Buffer {
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(1, 20);
  const recs = frames.map((f, i) => {
    const r = Buffer.alloc(16);
    r.writeUInt32LE(1000, 0);
    r.writeUInt32LE(i, 4);
    r.writeUInt32LE(f.length, 8);
    r.writeUInt32LE(f.length, 12);
    return Buffer.concat([r, f]);
  });
  return Buffer.concat([head, ...recs]);
}

let nextPort = 40000;

/** A TCP connection: handshake, then each flight as segments of at most 1448 bytes. */
function connection(
  server: { host: string; port: number },
  flights: { fromClient: boolean; data: Buffer }[],
  o: { firstSegment?: number; retransmitFirst?: boolean } = {},
): Buffer[] {
  const sport = nextPort++;
  const isn = [1000, 5000];
  const seq = [isn[0]! + 1, isn[1]! + 1];
  const c2s = (payload: Buffer, flags = 0x18, s = seq[0]!): Frame => ({
    src: CLIENT,
    dst: server.host,
    proto: 6,
    sport,
    dport: server.port,
    seq: s,
    flags,
    payload,
  });
  const s2c = (payload: Buffer, flags = 0x18, s = seq[1]!): Frame => ({
    src: server.host,
    dst: CLIENT,
    proto: 6,
    sport: server.port,
    dport: sport,
    seq: s,
    flags,
    payload,
  });
  const out = [
    frame(c2s(Buffer.alloc(0), 0x02, isn[0])),
    frame(s2c(Buffer.alloc(0), 0x12, isn[1])),
    frame(c2s(Buffer.alloc(0), 0x10)),
  ];
  flights.forEach((f, fi) => {
    const d = f.fromClient ? 0 : 1;
    let rest = f.data;
    let first = fi === 0 && o.firstSegment !== undefined;
    while (rest.length) {
      const n = first ? o.firstSegment! : Math.min(1448, rest.length);
      const piece = rest.subarray(0, n);
      const fr = f.fromClient ? c2s(piece) : s2c(piece);
      out.push(frame(fr));
      if (first && o.retransmitFirst) out.push(frame(fr));
      first = false;
      seq[d] = seq[d]! + piece.length;
      rest = rest.subarray(n);
    }
  });
  return out;
}

const C = (n: number | Buffer) => ({ fromClient: true, data: typeof n === 'number' ? randomBytes(n) : n });
const S = (n: number | Buffer) => ({ fromClient: false, data: typeof n === 'number' ? randomBytes(n) : n });

/** A minimal ClientHello with an SNI, padded with a padding extension to `size` bytes on the wire. */
function clientHello(sni: string, size = 517): Buffer {
  const name = Buffer.from(sni);
  const sniExt = Buffer.concat([
    Buffer.from([0, 0]),
    u16(name.length + 5),
    u16(name.length + 3),
    Buffer.from([0]),
    u16(name.length),
    name,
  ]);
  const fixed = Buffer.concat([
    Buffer.from([3, 3]),
    randomBytes(32),
    Buffer.from([32]),
    randomBytes(32),
    u16(4),
    Buffer.from([0x13, 0x01, 0x13, 0x02]),
    Buffer.from([1, 0]),
  ]);
  const without = 5 + 4 + fixed.length + 2 + sniExt.length + 4;
  const pad = Math.max(0, size - without);
  const exts = Buffer.concat([sniExt, Buffer.from([0, 21]), u16(pad), Buffer.alloc(pad)]);
  const body = Buffer.concat([fixed, u16(exts.length), exts]);
  const hs = Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 255]), body]);
  return Buffer.concat([Buffer.from([0x16, 3, 1]), u16(hs.length), hs]);
}

function u16(n: number): Buffer {
  return Buffer.from([n >> 8, n & 255]);
}

const record = (type: number, n: number): Buffer =>
  Buffer.concat([Buffer.from([type, 3, 3]), u16(n), randomBytes(n)]);

// --- tests -------------------------------------------------------------------------------------------

test('the synthetic ClientHello parses (the helper is right)', () => {
  const h = clientHello('web.telegram.org');
  assert.equal(h.length, 517);
  assert.equal(parseClientHello(h)?.sni, 'web.telegram.org');
});

test('fully-encrypted: random first segments are flagged, disguised ones exempt; probe triggers counted', () => {
  const frames: Buffer[] = [];
  for (let i = 0; i < 20; i++) frames.push(...connection(SERVER, [C(300), S(200)]));
  for (let i = 0; i < 10; i++)
    frames.push(
      ...connection(SERVER, [C(Buffer.concat([Buffer.from('GET /ab'), randomBytes(400)])), S(50)], {
        firstSegment: 10,
      }),
    );
  // Traffic to other hosts is not judged.
  frames.push(...connection({ host: '10.66.3.3', port: 443 }, [C(300)]));
  const r = analyseCapture(pcap(frames), { client: CLIENT, server: SERVER });
  assert.equal(r.tunnelConnections, 30);
  assert.equal(r.fullyEncrypted.judged, 30);
  assert.ok(r.fullyEncrypted.flagged >= 16 && r.fullyEncrypted.flagged <= 20, `${r.fullyEncrypted.flagged}`);
  assert.ok(r.fullyEncrypted.exemptions.ex2 >= 10 && r.fullyEncrypted.exemptions.ex5 === 10);
  assert.equal(r.fullyEncrypted.probeTriggers, r.fullyEncrypted.flagged, 'every flagged 300-byte packet');
  assert.equal(r.fullyEncrypted.firstSegmentLengths.min, 10);
  assert.equal(r.fullyEncrypted.verdict, 'DETECTED');
  assert.equal(r.recordedFlights[0]!.length, 300);
});

test('the first flight is reassembled without retransmissions', () => {
  const data = randomBytes(3000);
  const frames = connection(SERVER, [C(data), S(10), C(99)], { firstSegment: 9, retransmitFirst: true });
  const [c] = tcpConnections(readPcap(pcap(frames)));
  assert.ok(c);
  assert.deepEqual(firstClientFlight(c), data);
  assert.deepEqual(
    bursts(c).map((b) => [b.fromClient, b.bytes, b.packets]),
    [
      [true, 3000, 4],
      [false, 10, 1],
      [true, 99, 1],
    ],
  );
});

test('DNS: a plaintext query for a blocked name is detected, others are listed', () => {
  const q = (name: string) =>
    frame({
      src: CLIENT,
      dst: '10.66.3.3',
      proto: 17,
      sport: 5555,
      dport: 53,
      payload: dnsPacket.encode({
        type: 'query',
        id: 1,
        flags: 256,
        questions: [{ name, type: 'A', class: 'IN' }],
      }),
    });
  const clean = analyseCapture(pcap([q('www.baidu.com')]), { client: CLIENT, server: SERVER });
  assert.equal(clean.dns.verdict, 'PASS');
  assert.deepEqual(clean.dns.names, ['www.baidu.com']);
  const leak = analyseCapture(pcap([q('www.baidu.com'), q('Web.Telegram.org')]), {
    client: CLIENT,
    server: SERVER,
  });
  assert.equal(leak.dns.verdict, 'DETECTED');
  assert.deepEqual(leak.dns.blocked, ['web.telegram.org']);
  assert.ok(isBlocked('t.me') && isBlocked('api.whatsapp.net') && !isBlocked('notwhatsapp.net'));
});

test('SNI: a blocked name on the tunnel is detected; direct hellos are the control', () => {
  const frames = [
    ...connection(SERVER, [C(clientHello('cdn.example.com')), S(100)]),
    ...connection({ host: '10.66.3.3', port: 443 }, [C(clientHello('signal.org')), S(100)]),
  ];
  const r = analyseCapture(pcap(frames), { client: CLIENT, server: SERVER });
  assert.equal(r.sni.verdict, 'PASS');
  assert.deepEqual(r.sni.tunnelNames, ['cdn.example.com']);
  assert.deepEqual(r.sni.otherBlocked, ['signal.org']);
  const bad = analyseCapture(pcap(connection(SERVER, [C(clientHello('telegram.org'))])), {
    client: CLIENT,
    server: SERVER,
  });
  assert.equal(bad.sni.verdict, 'DETECTED');
  assert.deepEqual(bad.sni.tunnelBlocked, ['telegram.org']);
});

test('TLS in TLS: an encapsulated handshake is flagged, with or without an outer TLS layer', () => {
  const judge = (frames: Buffer[]) => judgeTlsInTls(tcpConnections(readPcap(pcap(frames)))[0]!);
  // A Shadowsocks tunnel carrying a TLS handshake, and one carrying plain HTTP.
  const ss = judge(connection(SERVER, [C(590), S(800), C(231), S(3800)]));
  assert.deepEqual(ss.bursts, [590, 800, 231, 3800]);
  assert.ok(ss.flagged && !ss.outerTls);
  assert.equal(judge(connection(SERVER, [C(160), S(20_000)])).flagged, false);
  assert.equal(judge(connection(SERVER, [C(1300), S(800), C(231), S(3800)])).flagged, false, 'padded away');
  // An outer TLS 1.3 layer (Trojan-like): its own handshake is peeled off, records count less 22 bytes.
  const outer = judge(
    connection(SERVER, [
      C(clientHello('cdn.example.com')),
      S(Buffer.concat([record(0x16, 90), record(0x14, 1), record(0x17, 2500)])),
      C(Buffer.concat([record(0x14, 1), record(0x17, 53), record(0x17, 607 + 17)])),
      S(record(0x17, 800 + 17)),
      C(record(0x17, 231 + 17)),
      S(Buffer.concat([record(0x17, 2000 + 17), record(0x17, 1800 + 17)])),
    ]),
  );
  assert.ok(outer.outerTls);
  assert.deepEqual(outer.bursts, [607, 800, 231, 3800]);
  assert.ok(outer.flagged);
  // The same outer layer carrying plain HTTP is not.
  const plain = judge(
    connection(SERVER, [
      C(clientHello('cdn.example.com')),
      S(Buffer.concat([record(0x16, 90), record(0x14, 1), record(0x17, 2500)])),
      C(Buffer.concat([record(0x14, 1), record(0x17, 53), record(0x17, 150)])),
      S(record(0x17, 20_000)),
    ]),
  );
  assert.equal(plain.flagged, false);
});

test('TLS in TLS under an outer TLS 1.3 layer: session tickets and a lone Finished are peeled off too', () => {
  const judge = (frames: Buffer[]) => judgeTlsInTls(tcpConnections(readPcap(pcap(frames)))[0]!);
  const outerHello = C(clientHello('cdn.example.com'));
  const outerServer = S(Buffer.concat([record(0x16, 90), record(0x14, 1), record(0x17, 2500)]));
  // Inner ClientHello and Trojan header in two shaped records (two packets), then the inner handshake.
  const inner = [
    C(record(0x17, 300 + 17)),
    C(record(0x17, 285 + 17)),
    S(record(0x17, 733 + 17)),
    C(record(0x17, 197 + 17)),
    S(record(0x17, 3757 + 17)),
  ];
  // A full handshake: the client's Finished alone, then the server's two NewSessionTickets (as Node
  // sends them) before the client has sent any data.
  const full = judge(
    connection(SERVER, [
      outerHello,
      outerServer,
      C(Buffer.concat([record(0x14, 1), record(0x17, 53)])),
      S(Buffer.concat([record(0x17, 265), record(0x17, 265)])),
      ...inner,
    ]),
  );
  assert.deepEqual(full.bursts, [585, 733, 197, 3757]);
  assert.ok(full.flagged, 'the tickets are not the inner server flight');
  // A resumed one: the Finished in the same burst as the data, in a packet of its own that does not count.
  const resumed = judge(
    connection(SERVER, [
      outerHello,
      S(Buffer.concat([record(0x16, 90), record(0x14, 1), record(0x17, 32), record(0x17, 53)])),
      C(Buffer.concat([record(0x14, 1), record(0x17, 53)])),
      ...inner,
    ]),
  );
  assert.deepEqual(resumed.bursts, [585, 733, 197, 3757]);
  assert.ok(resumed.flagged);
});
