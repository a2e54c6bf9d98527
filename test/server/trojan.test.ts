// Pigeon's Trojan inbound, in process, with Pigeon's Trojan outbound and with hand-made TLS clients:
// CONNECT and UDP ASSOCIATE; everything that is not valid Trojan (a wrong password, random bytes of
// the probe lengths, a browser's HTTP/1.1 or HTTP/2 request, plain HTTP, a bad ClientHello) gets
// exactly what the cover website alone would answer and never reaches a destination; the reverse-
// proxy cover; the dial policy, per-key events and registry; and the abuse limits (deadlines, caps,
// a 500-connection flood against a server in a child process whose descriptors are counted).
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as http2Connect } from 'node:http2';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import {
  startTrojanServer,
  type RunningTrojanServer,
  type TrojanServerConfig,
} from '../../src/server/trojan.js';
import { createCoverSite } from '../../src/server/cover-site.js';
import { TrojanOutbound } from '../../src/client/trojan-outbound.js';
import { ConnectionRegistry } from '../../src/server/connections.js';
import type { ServerEvents } from '../../src/server/users.js';
import { DialError } from '../../src/net/dialer.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import {
  encodeTrojanRequest,
  parseTrojanUri,
  TROJAN_CONNECT,
  trojanPasswordHash,
} from '../../src/wire/trojan.js';
import { silentLog } from '../../src/log.js';
import { httpTarget, tcpEcho, udpEcho } from '../helpers/targets.js';
import { assertSameBytes, distinctPayloads, echoThrough, udpEchoRoundTrips } from '../helpers/traffic.js';
import { startProcess, waitForLine } from '../helpers/processes.js';
import { testCertificate, TEST_SNI } from '../helpers/trojan.js';
import type { Datagram } from '../../src/crypto/ss-udp.js';

const PASSWORD = 'correct horse battery staple';
const T = { timeout: 30_000 };

async function server(
  t: TestContext,
  extra: Partial<TrojanServerConfig> = {},
): Promise<RunningTrojanServer & { cert: string; sha256: string }> {
  const { cert, key, sha256 } = await testCertificate();
  const hash = trojanPasswordHash(PASSWORD);
  const s = await startTrojanServer({
    host: '127.0.0.1',
    port: 0,
    cert,
    key,
    users: { lookup: (h) => (h === hash ? { id: 'key-1' } : undefined) },
    allowPrivate: true,
    log: silentLog,
    ...extra,
  });
  t.after(() => s.close());
  return Object.assign(s, { cert, sha256 });
}

const outbound = (port: number, query = `sni=${TEST_SNI}&allowInsecure=1`, password = PASSWORD) =>
  new TrojanOutbound(parseTrojanUri(`trojan://${encodeURIComponent(password)}@127.0.0.1:${port}?${query}`), {
    connectTimeoutMs: 5000,
    headerDelayMs: 50,
  });

interface Reaction {
  /** Everything the server sent, with Date headers blanked. */
  text: string;
  how: 'fin' | 'rst' | 'open';
}

/** Opens TLS to 127.0.0.1:port, sends `data` (as one write), and records the answer for `waitMs`. */
async function reaction(
  port: number,
  data: Buffer | undefined,
  o: { alpn?: string[]; servername?: string; waitMs?: number } = {},
): Promise<Reaction & { alpn: string | false }> {
  const s = tlsConnect({
    host: '127.0.0.1',
    port,
    servername: o.servername,
    rejectUnauthorized: false,
    ALPNProtocols: o.alpn ?? ['http/1.1'],
  });
  await new Promise<void>((r, j) => s.once('secureConnect', r).once('error', j));
  const alpn = s.alpnProtocol ?? false;
  return { ...(await collect(s, data, o.waitMs ?? 1500)), alpn };
}

function collect(s: Socket | TLSSocket, data: Buffer | undefined, waitMs: number): Promise<Reaction> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let how: Reaction['how'] = 'open';
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('end', () => {
      how = 'fin';
      setTimeout(done, 10);
    });
    s.on('error', () => (how = 'rst'));
    const done = (): void => {
      clearTimeout(timer);
      s.destroy();
      const text = Buffer.concat(chunks)
        .toString('latin1')
        .replace(/^Date: .*$/gim, 'Date: -');
      resolve({ text, how });
    };
    const timer = setTimeout(done, waitMs);
    s.once('close', () => setTimeout(done, 10));
    if (data) s.write(data);
  });
}

/** A reference: the cover website alone behind the same certificate and ALPN, as nginx would be. */
async function coverOnly(t: TestContext): Promise<number> {
  const { cert, key } = await testCertificate();
  const cover = createCoverSite();
  const srv = createTlsServer({ cert, key, ALPNProtocols: ['h2', 'http/1.1'] }, (s) =>
    cover.handle(s, Buffer.alloc(0)),
  );
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.after(() => {
    cover.close();
    srv.close();
  });
  return (srv.address() as { port: number }).port;
}

describe('relaying', () => {
  test('CONNECT: 200 KB echo; half-close; the target closing first', T, async (t) => {
    const s = await server(t);
    const echo = await tcpEcho(t);
    const out = outbound(s.port);
    const data = randomBytes(200 * 1024);
    const open = async (port: number) =>
      (await out.dialTcp(makeAddress('127.0.0.1', port))) as unknown as Socket;
    assertSameBytes(await echoThrough(await open(echo.port), data), data, 'echo');
    assertSameBytes(
      await echoThrough(await open(echo.port), data, { until: 'half-close' }),
      data,
      'half-close',
    );
    const closing = await tcpEcho(t, { closeAfter: 1000 });
    const got = await echoThrough(await open(closing.port), data.subarray(0, 1000), { until: 'peer-close' });
    assertSameBytes(got, data.subarray(0, 1000), 'target closes first');
  });

  test('CONNECT to a name; a server-first destination gets the header after headerDelayMs', T, async (t) => {
    const s = await server(t);
    const echo = await tcpEcho(t, { bye: 'bye\n' });
    const d = (await outbound(s.port).dialTcp(makeAddress('localhost', echo.port))) as unknown as Socket;
    // Nothing written: the header leaves alone; the FIN then crosses and the target says goodbye.
    await new Promise((r) => setTimeout(r, 200));
    const got = await echoThrough(d, Buffer.alloc(0), { until: 'half-close' });
    assert.equal(got.toString(), 'bye\n');
  });

  test('UDP ASSOCIATE: datagrams of 1–1400 bytes echo back with their source address', T, async (t) => {
    const s = await server(t);
    const port = await udpEcho(t);
    const replies: Datagram[] = [];
    const tunnel = outbound(s.port).openUdp((d) => replies.push(d));
    t.after(() => tunnel.close());
    const target = makeAddress('127.0.0.1', port);
    const payloads = distinctPayloads([1, 64, 512, 1200, 1400]);
    const got = await udpEchoRoundTrips(
      (p) => tunnel.send({ address: target, payload: p }),
      async (ms) => {
        for (let i = 0; i < ms / 10 && replies.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
        const d = replies.shift();
        if (!d) throw new Error('timeout');
        assert.deepEqual(d.address, target);
        return d.payload;
      },
      payloads,
    );
    assert.deepEqual(got, payloads);
    assert.equal(s.stats().relaying, 1, 'one association, one connection');
  });

  test('events per key; the registry closes a key; a disabled key goes to the cover', T, async (t) => {
    const seen: string[] = [];
    let bytesIn = 0;
    let bytesOut = 0;
    const events: ServerEvents = {
      bytes: (_id, dir, n) => (dir === 'in' ? (bytesIn += n) : (bytesOut += n)),
      connectionOpened: (id, p) => seen.push(`open ${id} ${p}`),
      connectionClosed: (id, p) => seen.push(`close ${id} ${p}`),
      authFailure: (r) => seen.push(`fail ${r}`),
      connectionError: (k) => seen.push(`error ${k}`),
    };
    const registry = new ConnectionRegistry();
    let allowed = true;
    const hash = trojanPasswordHash(PASSWORD);
    const s = await server(t, {
      events,
      registry,
      users: { lookup: (h) => (h === hash ? { id: 'key-1' } : undefined), isAllowed: () => allowed },
    });
    const echo = await tcpEcho(t);
    const d = (await outbound(s.port).dialTcp(makeAddress('127.0.0.1', echo.port))) as unknown as Socket;
    const data = randomBytes(5000);
    const first = new Promise<void>((r) => d.once('data', () => r()));
    d.write(data);
    await first;
    assert.equal(registry.count('key-1'), 1);
    const ended = new Promise((r) => d.once('end', r));
    d.resume();
    registry.enforce(() => false);
    await ended; // the server closed its side
    d.destroy();
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seen, ['open key-1 tcp', 'close key-1 tcp']);
    assert.equal(bytesIn, 5000);
    assert.ok(bytesOut > 0 && bytesOut <= 5000);
    allowed = false;
    const r = await reaction(
      s.port,
      encodeTrojanRequest(hash, TROJAN_CONNECT, makeAddress('127.0.0.1', echo.port), Buffer.from('x')),
    );
    assert.match(r.text, /^HTTP\/1\.1 400 Bad Request/);
    assert.equal(echo.accepted(), 1, 'the disabled key reached nothing');
    assert.ok(seen.includes('fail key-disabled'));
  });

  test('private destinations are refused without allowPrivate', T, async (t) => {
    const errors: string[] = [];
    const s = await server(t, {
      allowPrivate: false,
      events: {
        bytes: () => undefined,
        connectionOpened: () => undefined,
        connectionClosed: () => undefined,
        authFailure: () => undefined,
        connectionError: (k) => errors.push(k),
      },
    });
    const echo = await tcpEcho(t);
    for (const host of ['127.0.0.1', 'localhost', '::ffff:127.0.0.1']) {
      const d = (await outbound(s.port).dialTcp(makeAddress(host, echo.port))) as unknown as Socket;
      const r = await collect(d, Buffer.from('hello'), 3000);
      assert.equal(r.text, '', `${host}: nothing comes back`);
    }
    assert.equal(echo.accepted(), 0);
    assert.deepEqual(errors, ['forbidden', 'forbidden', 'forbidden']);
  });
});

describe('the outbound verifies the server', () => {
  test('a pinned certificate passes; a wrong pin, or no CA, fails with DialError', T, async (t) => {
    const s = await server(t);
    const echo = await tcpEcho(t);
    const target = makeAddress('127.0.0.1', echo.port);
    const pinnedOut = outbound(s.port, `sni=${TEST_SNI}&pcs=${s.sha256}`);
    for (let i = 0; i < 3; i++) {
      // the second and third resume the TLS session: the pin is still checked
      const d = (await pinnedOut.dialTcp(target)) as unknown as Socket;
      assertSameBytes(await echoThrough(d, Buffer.from('pinned')), Buffer.from('pinned'), 'pinned echo');
    }
    const withCa = new TrojanOutbound(parseTrojanUri(`trojan://x@127.0.0.1:${s.port}?sni=${TEST_SNI}`), {
      connectTimeoutMs: 5000,
      headerDelayMs: 50,
      ca: s.cert,
    });
    (await withCa.dialTcp(target)).destroy();
    await assert.rejects(
      outbound(s.port, `sni=${TEST_SNI}&pcs=${'00'.repeat(32)}`).dialTcp(target),
      DialError,
    );
    await assert.rejects(outbound(s.port, `sni=${TEST_SNI}`).dialTcp(target), DialError);
    await assert.rejects(outbound(s.port, 'sni=wrong.example').dialTcp(target), DialError);
    await withCa.dialTcp(target).then((d) => d.destroy());
  });
});

describe('the cover website', () => {
  test(
    'what is not valid Trojan gets exactly what the cover alone answers, and reaches nothing',
    T,
    async (t) => {
      const echo = await tcpEcho(t);
      const s = await server(t);
      const ref = await coverOnly(t);
      const wrongHash = trojanPasswordHash('wrong password');
      const req = (hash: string) =>
        encodeTrojanRequest(hash, TROJAN_CONNECT, makeAddress('127.0.0.1', echo.port));
      const inputs: Array<[string, Buffer]> = [
        ['a wrong password', Buffer.concat([req(wrongHash), Buffer.from('GET / HTTP/1.1\r\n\r\n')])],
        ['a valid hash with a bad command', Buffer.from(`${trojanPasswordHash(PASSWORD)}\r\n\x05`)],
        ['a truncated valid header', req(trojanPasswordHash(PASSWORD)).subarray(0, 60)],
        [
          'an HTTP request',
          Buffer.from(`GET / HTTP/1.1\r\nHost: ${TEST_SNI}\r\nUser-Agent: Mozilla/5.0\r\n\r\n`),
        ],
        ['an HTTP request for a missing page', Buffer.from(`GET /wp-login.php HTTP/1.1\r\nHost: x\r\n\r\n`)],
        ['a POST', Buffer.from(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc`)],
      ];
      for (const n of [1, 8, 12, 16, 22, 33, 41, 49, 56, 57, 58, 221, 500]) {
        inputs.push([`${n} random bytes`, randomBytes(n)]);
      }
      inputs.push(['56 hex digits then junk', Buffer.from('a'.repeat(56) + 'xyz')]);
      const results = await Promise.all(
        inputs.map(([, data]) =>
          Promise.all([reaction(s.port, data, { waitMs: 800 }), reaction(ref, data, { waitMs: 800 })]),
        ),
      );
      results.forEach(([got, want], i) => {
        const name = inputs[i]![0];
        assert.equal(got.text, want.text, `${name}: same answer as the cover alone`);
        assert.equal(got.how, want.how, `${name}: same close`);
      });
      assert.equal(echo.accepted(), 0, 'no destination was contacted');
    },
  );

  test('a browser: pages, 404, favicon, HEAD, conditional GET, nginx-like headers', T, async (t) => {
    const s = await server(t);
    const get = (path: string, headers = '', method = 'GET') =>
      reaction(
        s.port,
        Buffer.from(`${method} ${path} HTTP/1.1\r\nHost: ${TEST_SNI}\r\n${headers}Connection: close\r\n\r\n`),
        {
          servername: TEST_SNI,
        },
      );
    const index = await get('/');
    assert.match(
      index.text,
      /^HTTP\/1\.1 200 OK\r\nServer: nginx\r\nDate: -\r\nContent-Type: text\/html\r\n/,
    );
    assert.match(
      index.text,
      /Content-Length: \d+\r\nLast-Modified: .* GMT\r\nConnection: close\r\nETag: "[0-9a-f]+-[0-9a-f]+"\r\n/,
    );
    assert.match(index.text, /<!DOCTYPE html>[\s\S]*<\/html>\n$/);
    assert.equal(index.how, 'fin');
    const body = index.text.slice(index.text.indexOf('\r\n\r\n') + 4);
    assert.equal(Number(/Content-Length: (\d+)/.exec(index.text)![1]), Buffer.byteLength(body, 'latin1'));
    assert.match((await get('/about.html')).text, /^HTTP\/1\.1 200 OK[\s\S]*<h1>About<\/h1>/);
    assert.match((await get('/nope')).text, /^HTTP\/1\.1 404 Not Found[\s\S]*Page not found/);
    const ico = await get('/favicon.ico');
    assert.match(ico.text, /Content-Type: image\/x-icon/);
    const head = await get('/', '', 'HEAD');
    assert.ok(head.text.endsWith('\r\n\r\n'), 'HEAD: no body');
    const etag = /ETag: (".*")/.exec(index.text)![1]!;
    assert.match((await get('/', `If-None-Match: ${etag}\r\n`)).text, /^HTTP\/1\.1 304 Not Modified/);
    assert.match(
      (await get('/', '', 'DELETE')).text,
      /^HTTP\/1\.1 405 Not Allowed[\s\S]*<center>nginx<\/center>/,
    );
  });

  test('HTTP/2 when the browser negotiates it', T, async (t) => {
    const s = await server(t);
    const session = http2Connect(`https://127.0.0.1:${s.port}`, {
      rejectUnauthorized: false,
      servername: TEST_SNI,
    });
    t.after(() => session.close());
    const fetch = (path: string) =>
      new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
        const r = session.request({ ':path': path });
        let body = '';
        let headers: Record<string, unknown> = {};
        r.on('response', (h) => (headers = h));
        r.on('data', (d: Buffer) => (body += d.toString()));
        r.on('end', () => resolve({ status: Number(headers[':status']), headers, body }));
        r.on('error', reject);
        r.end();
      });
    const index = await fetch('/');
    assert.equal(index.status, 200);
    assert.equal(index.headers.server, 'nginx');
    assert.match(index.body, /<!DOCTYPE html>/);
    assert.equal((await fetch('/missing')).status, 404);
    assert.equal((await fetch('/style.css')).headers['content-type'], 'text/css');
  });

  test(
    'ALPN: h2 and http/1.1 offered like a web server; no ALPN and no SNI still get the site',
    T,
    async (t) => {
      const s = await server(t);
      const http = Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      assert.equal((await reaction(s.port, undefined, { alpn: ['h2', 'http/1.1'], waitMs: 50 })).alpn, 'h2');
      const noAlpn = await reaction(s.port, http, { alpn: [] });
      assert.equal(noAlpn.alpn, false);
      assert.match(noAlpn.text, /^HTTP\/1\.1 200 OK/);
      const noSni = await reaction(s.port, http, { servername: '' });
      assert.match(noSni.text, /^HTTP\/1\.1 200 OK/);
    },
  );

  test('plain HTTP on the TLS port gets nginx’s answer to that', T, async (t) => {
    const s = await server(t);
    const sock = tcpConnect(s.port, '127.0.0.1');
    await new Promise((r) => sock.once('connect', r));
    const r = await collect(sock, Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), 2000);
    assert.match(r.text, /^HTTP\/1\.1 400 Bad Request\r\nServer: nginx\r\n/);
    assert.match(r.text, /The plain HTTP request was sent to HTTPS port/);
    assert.equal(r.how, 'fin');
  });

  test('reverse-proxy cover: requests go to the configured URL, HTTP/1.1 and HTTP/2', T, async (t) => {
    const target = await httpTarget(t);
    const s = await server(t, { cover: { kind: 'proxy', url: `http://127.0.0.1:${target.port}/` } });
    const r = await reaction(
      s.port,
      Buffer.from(`GET /hello HTTP/1.1\r\nHost: ${TEST_SNI}\r\nConnection: close\r\n\r\n`),
    );
    assert.match(r.text, /^HTTP\/1\.1 200 OK/);
    assert.ok(r.text.endsWith(target.helloBody));
    assert.deepEqual(target.requests.at(-1), {
      method: 'GET',
      url: '/hello',
      host: `127.0.0.1:${target.port}`,
    });
    const post = await reaction(
      s.port,
      Buffer.from(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nabcde`),
    );
    assert.ok(post.text.endsWith('\r\n\r\nabcde'), post.text);
    const session = http2Connect(`https://127.0.0.1:${s.port}`, {
      rejectUnauthorized: false,
      servername: TEST_SNI,
    });
    t.after(() => session.close());
    const body = await new Promise<string>((resolve, reject) => {
      const q = session.request({ ':path': '/hello' });
      let b = '';
      q.on('data', (d: Buffer) => (b += d.toString()));
      q.on('end', () => resolve(b));
      q.on('error', reject);
      q.end();
    });
    assert.equal(body, target.helloBody);
    // An upstream that is down: nginx's 502 page.
    const down = await server(t, { cover: { kind: 'proxy', url: 'http://127.0.0.1:1/' } });
    const bad = await reaction(
      down.port,
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
    );
    assert.match(bad.text, /^HTTP\/1\.1 502 Bad Gateway[\s\S]*<center>nginx<\/center>/);
  });
});

describe('abuse limits', () => {
  test('malformed ClientHellos are dropped; the server carries on', T, async (t) => {
    const s = await server(t, { handshakeTimeoutMs: 1000 });
    const hellos = [
      Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0xff, 0x03]),
      Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x40, 0x00]), randomBytes(300)]),
      Buffer.concat([
        Buffer.from([0x16, 0x03, 0x03, 0x00, 0x40, 0x01, 0x00, 0x00, 0x3c, 0x03, 0x03]),
        randomBytes(64),
      ]),
      randomBytes(200),
      Buffer.from([0x80, 0x2e, 0x01, 0x00, 0x02]), // SSLv2-style hello
    ];
    for (const h of hellos) {
      const sock = tcpConnect(s.port, '127.0.0.1');
      await new Promise((r) => sock.once('connect', r));
      const r = await collect(sock, h, 3000);
      assert.notEqual(r.how, 'open', 'closed, at the latest by the handshake deadline');
      assert.ok(!r.text.includes('HTTP/'), 'no HTTP answer to a bad ClientHello');
    }
    const echo = await tcpEcho(t);
    const d = (await outbound(s.port).dialTcp(makeAddress('127.0.0.1', echo.port))) as unknown as Socket;
    assertSameBytes(await echoThrough(d, Buffer.from('still here')), Buffer.from('still here'), 'echo');
    for (let i = 0; i < 50 && s.stats().unauthenticated > 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(s.stats().unauthenticated, 0);
  });

  test('deadlines: a silent TCP connection and a silent TLS connection are closed', T, async (t) => {
    const s = await server(t, { handshakeTimeoutMs: 300, firstDataTimeoutMs: 300 });
    const sock = tcpConnect(s.port, '127.0.0.1');
    const started = Date.now();
    const r1 = await collect(sock, undefined, 3000);
    assert.notEqual(r1.how, 'open');
    assert.ok(Date.now() - started < 2000);
    const r2 = await reaction(s.port, undefined, { waitMs: 3000 });
    assert.equal(r2.text, '');
    assert.notEqual(r2.how, 'open');
  });

  test('caps per address and in total: the oldest unauthenticated connections make room', T, async (t) => {
    const s = await server(t, {
      maxUnauthenticatedPerAddress: 10,
      maxUnauthenticated: 15,
      handshakeTimeoutMs: 20_000,
    });
    const socks: Socket[] = [];
    t.after(() => socks.forEach((x) => x.destroy()));
    const closed = new Set<Socket>();
    const open = async (localAddress: string) => {
      const x = tcpConnect({ port: s.port, host: '127.0.0.1', localAddress });
      x.on('error', () => undefined);
      x.once('close', () => closed.add(x));
      x.resume();
      socks.push(x);
      await new Promise((r) => x.once('connect', r));
    };
    const settle = async (ok: () => boolean) => {
      for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 20));
    };
    for (let i = 0; i < 25; i++) await open('127.0.0.1');
    await settle(() => closed.size === 15 && s.stats().unauthenticated === 10);
    assert.equal(s.stats().unauthenticated, 10, 'per-address cap');
    assert.ok(
      socks.slice(0, 15).every((x) => closed.has(x)),
      'the oldest were closed',
    );
    for (let i = 0; i < 25; i++) await open(`127.0.0.${2 + (i % 5)}`);
    await settle(() => closed.size === 35);
    assert.equal(s.stats().unauthenticated, 15, 'total cap');
    assert.ok(
      socks.slice(0, 35).every((x) => closed.has(x)),
      'the oldest were closed',
    );
    const echo = await tcpEcho(t);
    const d = (await outbound(s.port).dialTcp(makeAddress('127.0.0.1', echo.port))) as unknown as Socket;
    assertSameBytes(await echoThrough(d, Buffer.from('through')), Buffer.from('through'), 'a good client');
  });

  test(
    '500 half-open, slow and junk connections: the server’s descriptors stay bounded',
    { timeout: 60_000 },
    async (t) => {
      const echo = await tcpEcho(t);
      const { cert, key } = await testCertificate();
      const code = `
      import { startTrojanServer } from ${JSON.stringify(new URL('../../src/server/trojan.ts', import.meta.url).href)};
      import { trojanPasswordHash } from ${JSON.stringify(new URL('../../src/wire/trojan.ts', import.meta.url).href)};
      const hash = trojanPasswordHash(process.env.PW);
      const s = await startTrojanServer({
        host: '127.0.0.1', port: 0, cert: process.env.CERT, key: process.env.KEY, allowPrivate: true,
        users: { lookup: (h) => (h === hash ? { id: 'k' } : undefined) },
        maxUnauthenticatedPerAddress: 30, maxUnauthenticated: 80, handshakeTimeoutMs: 30000, firstDataTimeoutMs: 30000,
      });
      console.log('PORT ' + s.port);
      setInterval(() => console.log('STATS ' + JSON.stringify(s.stats())), 500);
    `;
      const proc = startProcess(t, process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
        name: 'trojan-server',
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        env: { ...process.env, PW: PASSWORD, CERT: cert, KEY: key },
      });
      const port = Number((await waitForLine(proc, /^PORT \d+/, 20_000)).slice(5));
      const pid = proc.child.pid!;
      const fds = () => readdirSync(`/proc/${pid}/fd`).length;
      const baseline = fds();
      const socks: Socket[] = [];
      t.after(() => socks.forEach((x) => x.destroy()));
      const kinds = ['silent', 'slow-hello', 'junk-hello', 'tls-silent'] as const;
      for (let i = 0; i < 500; i++) {
        const kind = kinds[i % kinds.length]!;
        const localAddress = `127.0.0.${1 + (i % 5)}`;
        const x = tcpConnect({ port, host: '127.0.0.1', localAddress });
        x.on('error', () => undefined);
        socks.push(x);
        if (kind === 'tls-silent') {
          const tls = tlsConnect({ socket: x, rejectUnauthorized: false });
          tls.on('error', () => undefined);
          socks.push(tls);
        }
        if (kind === 'slow-hello') x.once('connect', () => x.write(Buffer.from([0x16, 0x03, 0x01])));
        if (kind === 'junk-hello')
          x.once('connect', () =>
            x.write(Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00]), randomBytes(40)])),
          );
        if (i % 50 === 49) await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 1500));
      const during = fds();
      t.diagnostic(`server descriptors: ${baseline} before, ${during} with 500 hostile connections open`);
      assert.ok(during <= baseline + 80 + 10, `descriptors bounded: ${during} (baseline ${baseline})`);
      // A good client still gets through while the flood holds its connections.
      const d = (await outbound(port).dialTcp(makeAddress('127.0.0.1', echo.port))) as unknown as Socket;
      assertSameBytes(
        await echoThrough(d, Buffer.from('good client')),
        Buffer.from('good client'),
        'good client',
      );
      assert.equal(proc.exit, null, 'the server is alive');
    },
  );
});
