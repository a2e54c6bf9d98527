// Pigeon's TLS ClientHello, read off a loopback socket before any TLS library sees it, parsed by the
// small parser below, and fingerprinted as JA3 and JA4: the values must stay what
// docs/tls-fingerprint.md says. Also the record shaping of the first writes (ShapedStream).
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, connect as tcpConnect, type Socket } from 'node:net';
import {
  connect as tlsConnect,
  createServer as createTlsServer,
  type ConnectionOptions,
  type TLSSocket,
} from 'node:tls';
import { browserLikeTlsOptions, ShapedStream, splitSizes } from '../../src/net/tls-client.js';
import { TrojanOutbound } from '../../src/client/trojan-outbound.js';
import { parseTrojanUri } from '../../src/wire/trojan.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { testCertificate } from '../helpers/trojan.js';

/** The values docs/tls-fingerprint.md records (Node 20, its bundled OpenSSL 3.0). */
const EXPECTED = {
  pigeonJa3:
    '771,4865-4866-4867-49195-49199-49196-49200-52393-52392-49171-49172-156-157-47-53-255,' +
    '0-11-10-35-5-16-23-13-43-45-51-21,29-23-24,0-1-2',
  pigeonJa3Md5: 'f1101ab9dbf9ff2c8cd548c10ca3ddab',
  pigeonJa4: 't13d1612h2_1711a4c0508c_d8929e3a3a62',
  /** Without SNI (the server named by an IP address, as browsers do then). */
  pigeonNoSniJa3Md5: '448230e1fafc5a8942f7d90105a464bc',
  /** Node's defaults with an SNI, as censor-model.md §3 names it. */
  nodeDefaultJa3Md5: '0cce74b0d9b7f8528fb2181588d23793',
};

const GREASE = (v: number): boolean => (v & 0x0f0f) === 0x0a0a && v >> 8 === (v & 0xff);

interface ClientHello {
  recordLength: number;
  version: number;
  ciphers: number[];
  extensions: number[];
  groups: number[];
  pointFormats: number[];
  sigalgs: number[];
  alpn: string[];
  supportedVersions: number[];
  sni: string | undefined;
}

/** Parses the ClientHello in the first TLS record; throws on anything unexpected. */
function parseClientHello(rec: Buffer): ClientHello {
  assert.equal(rec[0], 0x16, 'a handshake record');
  const recordLength = rec.readUInt16BE(3);
  const b = rec.subarray(5, 5 + recordLength);
  assert.equal(b[0], 0x01, 'a ClientHello');
  let o = 4;
  const version = b.readUInt16BE(o);
  o += 2 + 32;
  o += 1 + b[o]!; // session id
  const cl = b.readUInt16BE(o);
  o += 2;
  const ciphers: number[] = [];
  for (let i = 0; i < cl; i += 2) ciphers.push(b.readUInt16BE(o + i));
  o += cl;
  o += 1 + b[o]!; // compression methods
  const end = o + 2 + b.readUInt16BE(o);
  o += 2;
  const h: ClientHello = {
    recordLength,
    version,
    ciphers,
    extensions: [],
    groups: [],
    pointFormats: [],
    sigalgs: [],
    alpn: [],
    supportedVersions: [],
    sni: undefined,
  };
  const u16s = (d: Buffer, from: number): number[] => {
    const out: number[] = [];
    for (let i = from; i + 1 < d.length; i += 2) out.push(d.readUInt16BE(i));
    return out;
  };
  while (o < end) {
    const type = b.readUInt16BE(o);
    const d = b.subarray(o + 4, o + 4 + b.readUInt16BE(o + 2));
    h.extensions.push(type);
    if (type === 0) h.sni = d.subarray(5).toString('latin1');
    if (type === 10) h.groups = u16s(d, 2);
    if (type === 11) h.pointFormats = [...d.subarray(1)];
    if (type === 13) h.sigalgs = u16s(d, 2);
    if (type === 43) h.supportedVersions = u16s(d, 1);
    if (type === 16)
      for (let i = 2; i < d.length; i += 1 + d[i]!) h.alpn.push(d.subarray(i + 1, i + 1 + d[i]!).toString());
    o += 4 + d.length;
  }
  return h;
}

/** JA3: md5 of "version,ciphers,extensions,groups,pointformats", GREASE removed. */
function ja3(h: ClientHello): { text: string; md5: string } {
  const list = (xs: number[]): string => xs.filter((x) => !GREASE(x)).join('-');
  const text = [
    h.version,
    list(h.ciphers),
    list(h.extensions),
    list(h.groups),
    h.pointFormats.join('-'),
  ].join(',');
  return { text, md5: createHash('md5').update(text).digest('hex') };
}

/** JA4 (FoxIO): t + version + d/i + cipher count + extension count + ALPN ends, then two hashes. */
function ja4(h: ClientHello): string {
  const hex = (x: number): string => x.toString(16).padStart(4, '0');
  const sha12 = (s: string): string => createHash('sha256').update(s).digest('hex').slice(0, 12);
  const ciphers = h.ciphers.filter((x) => !GREASE(x));
  const exts = h.extensions.filter((x) => !GREASE(x));
  const top = Math.max(...h.supportedVersions.filter((x) => !GREASE(x)), h.version);
  const version = { 0x0304: '13', 0x0303: '12', 0x0302: '11', 0x0301: '10' }[top] ?? '00';
  const alpn = h.alpn[0] ? `${h.alpn[0][0]}${h.alpn[0].at(-1)}` : '00';
  const two = (n: number): string => String(Math.min(n, 99)).padStart(2, '0');
  const a = `t${version}${h.sni !== undefined ? 'd' : 'i'}${two(ciphers.length)}${two(exts.length)}${alpn}`;
  const b = sha12(ciphers.map(hex).sort().join(','));
  const sortedExts = exts
    .filter((x) => x !== 0 && x !== 16)
    .map(hex)
    .sort()
    .join(',');
  const c = sha12(h.sigalgs.length ? `${sortedExts}_${h.sigalgs.map(hex).join(',')}` : sortedExts);
  return `${a}_${b}_${c}`;
}

/** A loopback TCP server that reads the first TLS record of each connection and closes it. */
async function helloCatcher(t: TestContext): Promise<{ port: number; next(): Promise<Buffer> }> {
  const waiting: Array<(b: Buffer) => void> = [];
  const server = createServer((s) => {
    let buf = Buffer.alloc(0);
    s.on('error', () => undefined);
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
        s.destroy();
        waiting.shift()?.(buf.subarray(0, 5 + buf.readUInt16BE(3)));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  return { port, next: () => new Promise((r) => waiting.push(r)) };
}

async function helloOf(t: TestContext, opts: ConnectionOptions): Promise<ClientHello> {
  const catcher = await helloCatcher(t);
  const got = catcher.next();
  const c = tlsConnect({ host: '127.0.0.1', port: catcher.port, ...opts });
  c.on('error', () => undefined);
  const rec = await got;
  c.destroy();
  return parseClientHello(rec);
}

describe('ClientHello fingerprint', () => {
  test("the JA4 function reproduces FoxIO's published Chrome example", () => {
    const chrome: ClientHello = {
      recordLength: 0,
      version: 0x0303,
      ciphers: [
        0x0a0a, 4865, 4866, 4867, 49195, 49199, 49196, 49200, 52393, 52392, 49171, 49172, 156, 157, 47, 53,
      ],
      extensions: [0x1a1a, 0, 23, 65281, 10, 11, 35, 16, 5, 13, 18, 51, 45, 43, 27, 17513, 21],
      groups: [],
      pointFormats: [],
      sigalgs: [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601],
      alpn: ['h2', 'http/1.1'],
      supportedVersions: [0x2a2a, 0x0304, 0x0303],
      sni: 'example.com',
    };
    assert.equal(ja4(chrome), 't13d1516h2_8daaf6152771_e5627efa2ab1');
  });

  test('browserLikeTlsOptions: JA3 and JA4 as documented', async (t) => {
    const h = await helloOf(t, browserLikeTlsOptions('www.example.com'));
    t.diagnostic(`JA3 ${ja3(h).text} = ${ja3(h).md5}; JA4 ${ja4(h)}; record ${h.recordLength} bytes`);
    assert.equal(ja3(h).text, EXPECTED.pigeonJa3);
    assert.equal(ja3(h).md5, EXPECTED.pigeonJa3Md5);
    assert.equal(ja4(h), EXPECTED.pigeonJa4);
    assert.equal(h.sni, 'www.example.com');
    assert.deepEqual(h.alpn, ['h2', 'http/1.1']);
    assert.equal(
      h.recordLength,
      512,
      'the padding extension brings the hello to 512 bytes, as BoringSSL does',
    );
    // Chrome's sigalgs, in Chrome's order
    assert.deepEqual(h.sigalgs, [0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601]);
  });

  test('an IP server name sends no SNI', async (t) => {
    const h = await helloOf(t, browserLikeTlsOptions('192.0.2.1'));
    assert.equal(h.sni, undefined);
    assert.equal(ja3(h).md5, EXPECTED.pigeonNoSniJa3Md5);
  });

  test("Node's default differs, and is the censor model's fingerprint", async (t) => {
    const h = await helloOf(t, { servername: 'www.example.com' });
    t.diagnostic(`Node default JA3 ${ja3(h).md5}, JA4 ${ja4(h)}`);
    assert.equal(ja3(h).md5, EXPECTED.nodeDefaultJa3Md5);
    assert.notEqual(ja3(h).md5, EXPECTED.pigeonJa3Md5);
  });

  test('the Trojan outbound sends exactly this ClientHello', async (t) => {
    const catcher = await helloCatcher(t);
    const got = catcher.next();
    const out = new TrojanOutbound(
      parseTrojanUri(`trojan://pw@127.0.0.1:${catcher.port}?sni=www.example.com`),
    );
    const dial = out.dialTcp(makeAddress('example.com', 443)).catch(() => undefined);
    const h = parseClientHello(await got);
    await dial;
    assert.equal(ja3(h).md5, EXPECTED.pigeonJa3Md5);
    assert.equal(ja4(h), EXPECTED.pigeonJa4);
  });
});

// ---------------------------------------------------------------------------------------------------

describe('record shaping', () => {
  test('splitSizes: 2–3 pieces, none under 24 bytes, the header whole in the first', () => {
    let seed = 1;
    const rand = (n: number): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) % n;
    for (let n = 0; n < 3000; n += 7) {
      for (const head of [0, 68, 120]) {
        if (head > n) continue;
        const sizes = splitSizes(n, head, rand);
        assert.equal(
          sizes.reduce((a, b) => a + b, 0),
          n,
        );
        if (n - head < 48) assert.equal(sizes.length, 1);
        else {
          assert.ok(sizes.length >= 2 && sizes.length <= 3, `${sizes}`);
          assert.ok(sizes.every((s) => s >= 24));
          assert.ok(sizes[0]! >= head + 24);
        }
      }
    }
  });

  /**
   * A TLS echo server behind a TCP relay that logs the application-data record sizes client → server;
   * `connected` resolves once the handshake's own records (TLS 1.3's encrypted Finished) are past.
   */
  async function observedEcho(t: TestContext): Promise<{ connected: Promise<TLSSocket>; records: number[] }> {
    const { cert, key } = await testCertificate();
    const echo = createTlsServer({ cert, key }, (s) => {
      s.on('error', () => s.destroy());
      s.pipe(s);
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const records: number[] = [];
    const sockets = new Set<Socket>();
    const relayServer = createServer((c) => {
      const u = tcpConnect((echo.address() as { port: number }).port, '127.0.0.1');
      sockets.add(c).add(u);
      let buf = Buffer.alloc(0);
      c.on('data', (d: Buffer) => {
        u.write(d);
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
          if (buf[0] === 0x17) records.push(buf.readUInt16BE(3));
          buf = buf.subarray(5 + buf.readUInt16BE(3));
        }
      });
      u.pipe(c);
      c.on('error', () => u.destroy());
      u.on('error', () => c.destroy());
    });
    await new Promise<void>((r) => relayServer.listen(0, '127.0.0.1', r));
    t.after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => relayServer.close(() => r()));
      await new Promise<void>((r) => echo.close(() => r()));
    });
    const port = (relayServer.address() as { port: number }).port;
    const connected = (async () => {
      const tls = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false });
      await new Promise<void>((r, j) => tls.once('secureConnect', r).once('error', j));
      for (let i = 0; i < 50 && records.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      records.length = 0;
      return tls;
    })();
    return { connected, records };
  }

  test('the first bursts leave as several records; later writes pass through; bytes arrive intact', async (t) => {
    const { connected, records } = await observedEcho(t);
    const tls = await connected;
    const head = Buffer.alloc(70, 0x68);
    const s = new ShapedStream(tls, { head, shaping: { flushes: 2, maxBytes: 1 << 20 } });
    const sent: Buffer[] = [];
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    const write = (b: Buffer): void => {
      sent.push(b);
      s.write(b);
    };
    // Burst 1: three writes in one turn (an inner ClientHello arriving in pieces) → one flush, split.
    write(Buffer.alloc(300, 1));
    write(Buffer.alloc(200, 2));
    write(Buffer.alloc(17, 3));
    const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await wait(100);
    const afterFirst = records.length;
    write(Buffer.alloc(900, 4)); // burst 2: split
    await wait(100);
    const afterSecond = records.length;
    write(Buffer.alloc(900, 5)); // shaping over: one record
    await wait(100);
    const total = Buffer.concat([head, ...sent]);
    for (let i = 0; i < 100 && Buffer.concat(got).length < total.length; i++) await wait(20);
    s.destroy();
    const overhead = 17; // TLS 1.3 AEAD tag and content type
    t.diagnostic(`record payload sizes: ${records.map((r) => r - overhead).join(', ')}`);
    assert.ok(afterFirst >= 2 && afterFirst <= 3, `first burst: ${afterFirst} records`);
    assert.equal(
      records.slice(0, afterFirst).reduce((a, r) => a + r - overhead, 0),
      70 + 517,
      'the header and the three writes, coalesced',
    );
    assert.ok(records[0]! - overhead >= 70 + 24, 'the header rides whole in the first record');
    assert.ok(afterSecond - afterFirst >= 2, 'second burst split too');
    assert.equal(records.length - afterSecond, 1, 'after the shaping phase a write is one record');
    assert.deepEqual(Buffer.concat(got), total, 'the echo got every byte in order');
  });

  test('a silent application: the header leaves alone after headDelayMs, in one record', async (t) => {
    const { connected, records } = await observedEcho(t);
    const tls = await connected;
    const s = new ShapedStream(tls, {
      head: Buffer.alloc(68, 1),
      headDelayMs: 30,
      shaping: { flushes: 4, maxBytes: 1 << 16 },
    });
    const got: Buffer[] = [];
    s.on('data', (d: Buffer) => got.push(d));
    for (let i = 0; i < 100 && Buffer.concat(got).length < 68; i++)
      await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(records, [68 + 17]);
    s.destroy();
  });
});
