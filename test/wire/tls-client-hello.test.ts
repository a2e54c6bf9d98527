// The ClientHello parser on real hellos (Node's TLS client, captured on loopback), on hellos split over
// records and segments, and on garbage: the censor's view must never throw.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { randomBytes } from 'node:crypto';
import {
  looksLikeTlsRecord,
  parseClientHello,
  splitTlsRecords,
  TLS_HANDSHAKE,
} from '../../src/wire/tls-client-hello.js';

/** The first bytes a Node TLS client sends (its ClientHello), read by a plain TCP server on loopback. */
async function realHello(opts: { servername?: string; ALPNProtocols?: string[] }): Promise<Buffer> {
  const got: Buffer[] = [];
  let peer: Socket | undefined;
  const server = createServer((s) => {
    peer = s;
    s.on('data', (d: Buffer) => got.push(d));
    s.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as { port: number }).port;
  const client = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...opts });
  client.on('error', () => undefined);
  try {
    for (let i = 0; i < 100; i++) {
      const all = Buffer.concat(got);
      const rec = splitTlsRecords(all);
      if (rec.length && rec[0]!.complete) return all;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error('no ClientHello within 2 s');
  } finally {
    client.destroy();
    peer?.destroy();
    server.close();
  }
}

test('finds the SNI and ALPN of a real ClientHello', async () => {
  const raw = await realHello({ servername: 'Web.Telegram.org', ALPNProtocols: ['h2', 'http/1.1'] });
  assert.ok(looksLikeTlsRecord(raw));
  const hello = parseClientHello(raw);
  assert.ok(hello, 'parsed');
  assert.equal(hello.sni, 'web.telegram.org');
  assert.deepEqual(hello.alpn, ['h2', 'http/1.1']);
  assert.equal(hello.helloVersion, 0x0303);
  assert.ok(hello.cipherSuites > 3);
  assert.ok(hello.extensions.includes(0) && hello.extensions.includes(16));
  assert.equal(hello.length, splitTlsRecords(raw)[0]!.length);
});

test('a hello without server_name has no SNI', async () => {
  const raw = await realHello({});
  const hello = parseClientHello(raw);
  assert.ok(hello);
  assert.equal(hello.sni, undefined);
  assert.ok(!hello.extensions.includes(0));
});

test('a hello split over two records is joined; one cut short is not parsed', async () => {
  const raw = await realHello({ servername: 'signal.org' });
  const rec = splitTlsRecords(raw)[0]!;
  const body = raw.subarray(5, 5 + rec.length);
  const cut = 40;
  const header = (n: number) => Buffer.from([TLS_HANDSHAKE, 0x03, 0x01, n >> 8, n & 0xff]);
  const split = Buffer.concat([
    header(cut),
    body.subarray(0, cut),
    header(body.length - cut),
    body.subarray(cut),
  ]);
  assert.equal(parseClientHello(split)?.sni, 'signal.org');
  for (const n of [0, 3, 5, 6, 44, raw.length - 1]) {
    assert.equal(parseClientHello(raw.subarray(0, n)), undefined, `first ${n} bytes`);
  }
});

test('records are split; non-TLS input gives no records and no hello', () => {
  const a = Buffer.from([0x16, 0x03, 0x01, 0x00, 0x02, 0xaa, 0xbb, 0x17, 0x03, 0x03, 0x00, 0x05, 1, 2]);
  const recs = splitTlsRecords(a);
  assert.deepEqual(
    recs.map((r) => [r.type, r.length, r.complete]),
    [
      [0x16, 2, true],
      [0x17, 5, false],
    ],
  );
  assert.equal(parseClientHello(a), undefined);
  assert.deepEqual(splitTlsRecords(Buffer.from('GET / HTTP/1.1\r\n')), []);
  assert.equal(looksLikeTlsRecord(Buffer.from([0x16, 0x03])), false);
});

test('random and mutated input never throws', async () => {
  const raw = await realHello({ servername: 'whatsapp.com' });
  for (let i = 0; i < 3000; i++) {
    const b = i % 2 ? randomBytes(i % 600) : Buffer.from(raw);
    if (i % 2 === 0)
      for (let k = 0; k < 1 + (i % 5); k++) b[(i * 7919 + k * 104729) % b.length] ^= 1 << (k % 8);
    if (i % 3 === 0 && b.length > 5) b[0] = 0x16;
    parseClientHello(b);
    splitTlsRecords(b);
  }
});
