// Pigeon's WebSocket inbound in-process: Pigeon's WebSocketOutbound through it to a loopback echo
// (plain HTTP and TLS, Mux.Cool and not), the ordinary 404/400 pages for everything else, malformed
// WebSocket frames, slowloris and per-address caps, and probe resistance inside the WebSocket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, createServer, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import { usesWebSocket, WebSocketOutbound } from '../../src/client/websocket-outbound.js';
import { DialError } from '../../src/net/dialer.js';
import { parseSsUri } from '../../src/wire/sip002.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { encodeMuxFrame } from '../../src/wire/mux-cool.js';
import { freePort } from '../helpers/ports.js';
import { tcpEcho } from '../helpers/targets.js';
import { assertSameBytes } from '../helpers/traffic.js';
import {
  echoDuplex,
  pigeonWsInbound,
  pluginUri,
  selfSignedCert,
  type TestCert,
} from '../helpers/websocket.js';

const METHOD = 'chacha20-ietf-poly1305';
const PASSWORD = 'websocket inbound test';
const HOST = 'cdn.pigeon.test';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function outbound(port: number, o: { tls?: TestCert; mux?: boolean; host?: string; path?: string } = {}) {
  const opts: Record<string, string | true> = { host: o.host ?? HOST, path: o.path ?? '/ws' };
  if (o.tls) {
    opts.tls = true;
    opts.cert = o.tls.certFile;
  }
  if (o.mux === false) opts.mux = '0';
  return new WebSocketOutbound(parseSsUri(pluginUri(METHOD, PASSWORD, port, opts)), {
    connectTimeoutMs: 5000,
    headerDelayMs: 20,
  });
}

for (const tls of [false, true]) {
  for (const mux of [true, false]) {
    test(`pigeon outbound → pigeon inbound, ${tls ? 'TLS' : 'plain HTTP'}, ${mux ? 'Mux.Cool' : 'no mux'}`, async (t) => {
      const cert = tls ? await selfSignedCert(t, HOST) : undefined;
      const inbound = await pigeonWsInbound(t, {
        method: METHOD,
        password: PASSWORD,
        path: '/ws',
        host: HOST,
        tls: cert,
      });
      const out = outbound(inbound.port, { tls: cert, mux });
      const target = await tcpEcho(t);
      const big = randomBytes(300_000);
      assertSameBytes(
        await echoDuplex(await out.dialTcp(makeAddress('127.0.0.1', target.port)), big),
        big,
        '300 KB echo',
      );

      const parallel = [0, 1, 2, 3].map(() => randomBytes(60_000));
      const results = await Promise.all(
        parallel.map(async (d) => echoDuplex(await out.dialTcp(makeAddress('127.0.0.1', target.port)), d)),
      );
      results.forEach((r, i) => assertSameBytes(r, parallel[i]!, `parallel echo ${i}`));

      // The target closes first: every byte arrives before the end of the stream.
      const closing = await tcpEcho(t, { closeAfter: 100_000 });
      const data = randomBytes(100_000);
      const got = await echoDuplex(await out.dialTcp(makeAddress('127.0.0.1', closing.port)), data, {
        untilEnd: true,
      });
      assertSameBytes(got, data, 'echo that closes first');
      assert.deepEqual(inbound.counts.authFailures, []);
    });
  }
}

test('without a configured host any Host header is accepted; with one, only it', async (t) => {
  const target = await tcpEcho(t);
  const open = await pigeonWsInbound(t, { method: METHOD, password: PASSWORD, path: '/' });
  const data = randomBytes(1000);
  const s = await outbound(open.port, { host: 'anything.example', path: '/' }).dialTcp(
    makeAddress('127.0.0.1', target.port),
  );
  assertSameBytes(await echoDuplex(s, data), data, 'echo');
  const strict = await pigeonWsInbound(t, { method: METHOD, password: PASSWORD, path: '/', host: HOST });
  await assert.rejects(
    outbound(strict.port, { host: 'other.example', path: '/' }).dialTcp(
      makeAddress('127.0.0.1', target.port),
    ),
    /HTTP 404/,
  );
});

/** Sends raw bytes over TCP (or TLS) and returns everything until the server closes (bounded). */
function rawExchange(port: number, request: string | Buffer, o: { tls?: boolean; ms?: number } = {}) {
  return new Promise<{ text: string; closed: boolean }>((resolve) => {
    const s: Socket = o.tls
      ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false, servername: HOST })
      : connect({ port, host: '127.0.0.1' });
    let text = '';
    const timer = setTimeout(() => done(false), o.ms ?? 3000);
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ text, closed });
    };
    s.once(o.tls ? 'secureConnect' : 'connect', () => s.write(request));
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('close', () => done(true));
    s.on('error', () => undefined);
  });
}

const UPGRADE = (path: string, host = HOST, extra = '') =>
  `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`;

test('everything that is not a WebSocket upgrade on the path gets the same ordinary 404 page', async (t) => {
  const cert = await selfSignedCert(t, HOST);
  for (const tls of [false, true]) {
    const inbound = await pigeonWsInbound(t, {
      method: METHOD,
      password: PASSWORD,
      path: '/ws',
      host: HOST,
      tls: tls ? cert : undefined,
    });
    const requests = [
      `GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`,
      `GET /ws HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`,
      `GET /ws?x=1 HTTP/1.1\r\nHost: ${HOST}\r\nUser-Agent: curl/8.0\r\n\r\n`,
      `POST /ws HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 3\r\n\r\nabc`,
      UPGRADE('/other'),
      UPGRADE('/ws', 'wrong.example'),
      UPGRADE('/ws').replace('dGhlIHNhbXBsZSBub25jZQ==', 'short'),
      UPGRADE('/ws').replace('Version: 13', 'Version: 8'),
      UPGRADE('/ws').replace('GET', 'POST'),
    ];
    const pages = [];
    for (const r of requests) {
      const { text, closed } = await rawExchange(inbound.port, r, { tls });
      assert.ok(closed, `the connection stays open after ${JSON.stringify(r.split('\r\n')[0])}`);
      assert.match(text, /^HTTP\/1\.1 404 Not Found\r\n/, r);
      assert.match(text, /\r\nServer: nginx\r\n/i);
      assert.doesNotMatch(text, /keep-alive: |x-powered-by|sec-websocket/i);
      pages.push(text.slice(text.indexOf('\r\n\r\n')));
    }
    assert.equal(new Set(pages).size, 1, 'one and the same page');
    assert.match(pages[0]!, /<center><h1>404 Not Found<\/h1><\/center>/);
    const head = await rawExchange(inbound.port, `HEAD / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, { tls });
    assert.match(head.text, /^HTTP\/1\.1 404 Not Found\r\n/);
    assert.ok(head.text.endsWith('\r\n\r\n'), 'no body for HEAD');
    const junk = await rawExchange(inbound.port, 'HELLO THERE\r\n\r\n', { tls });
    assert.match(junk.text, /^HTTP\/1\.1 400 Bad Request\r\nServer: nginx\r\n/);
    assert.match(junk.text, /<h1>400 Bad Request<\/h1>/);
  }
});

/** A raw client WebSocket frame: FIN + opcode, masked unless `unmasked`, optional RSV bits. */
function frame(opcode: number, payload: Buffer, o: { unmasked?: boolean; rsv?: number } = {}): Buffer {
  const mask = o.unmasked ? undefined : randomBytes(4);
  const len = payload.length;
  const head = [0x80 | (o.rsv ?? 0) | opcode];
  if (len < 126) head.push((mask ? 0x80 : 0) | len);
  else head.push((mask ? 0x80 : 0) | 126, len >> 8, len & 0xff);
  const body = Buffer.from(payload);
  if (mask) for (let i = 0; i < body.length; i++) body[i]! ^= mask[i % 4]!;
  return Buffer.concat([Buffer.from(head), mask ?? Buffer.alloc(0), body]);
}

/** Upgrades a raw socket on /ws, then sends `bytes`; returns what came back after the 101 and whether it closed. */
function afterUpgrade(port: number, bytes: Buffer, ms = 3000) {
  return new Promise<{ status: string; rest: Buffer; closed: boolean }>((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let buf = Buffer.alloc(0);
    let upgraded = false;
    const timer = setTimeout(() => done(false), ms);
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      const end = buf.indexOf('\r\n\r\n');
      resolve({
        status: buf.subarray(0, buf.indexOf('\r\n')).toString(),
        rest: buf.subarray(end + 4),
        closed,
      });
    };
    s.on('connect', () => s.write(UPGRADE('/ws')));
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!upgraded && buf.includes('\r\n\r\n')) {
        upgraded = true;
        s.write(bytes);
      }
    });
    s.on('close', () => done(true));
    s.on('error', () => undefined);
  });
}

test('malformed WebSocket frames close that WebSocket (1002/1009) and nothing else', async (t) => {
  const inbound = await pigeonWsInbound(t, {
    method: METHOD,
    password: PASSWORD,
    path: '/ws',
    host: HOST,
    maxMessageBytes: 4096,
  });
  const cases: Array<[string, Buffer, number]> = [
    ['unmasked client frame', frame(2, randomBytes(10), { unmasked: true }), 1002],
    ['RSV1 without an extension', frame(2, randomBytes(10), { rsv: 0x40 }), 1002],
    ['unknown opcode', frame(3, randomBytes(10)), 1002],
    ['message over maxMessageBytes', frame(2, randomBytes(5000)), 1009],
    ['invalid UTF-8 in a text message', frame(1, Buffer.from([0xff, 0xfe])), 1007],
  ];
  for (const [what, bytes, code] of cases) {
    const r = await afterUpgrade(inbound.port, bytes);
    assert.equal(r.status, 'HTTP/1.1 101 Switching Protocols', what);
    assert.ok(r.closed, `${what}: still open`);
    // The server's close frame: 0x88, length, code.
    assert.equal(r.rest[0], 0x88, `${what}: no close frame`);
    assert.equal(r.rest.readUInt16BE(2), code, what);
  }
  assert.equal(inbound.counts.opened, 0);
  // The listener is still fine.
  const target = await tcpEcho(t);
  const data = randomBytes(500);
  assertSameBytes(
    await echoDuplex(await outbound(inbound.port).dialTcp(makeAddress('127.0.0.1', target.port)), data),
    data,
    'after',
  );
});

test('slowloris: connections that do not finish their upgrade in time are dropped (HTTP and TLS)', async (t) => {
  const cert = await selfSignedCert(t, HOST);
  for (const tls of [false, true]) {
    const inbound = await pigeonWsInbound(t, {
      method: METHOD,
      password: PASSWORD,
      path: '/ws',
      tls: tls ? cert : undefined,
      requestTimeoutMs: 400,
    });
    // Nothing at all (for TLS: not even a ClientHello).
    const start = Date.now();
    const silent = await new Promise<number>((resolve) => {
      const s = connect({ port: inbound.port, host: '127.0.0.1' });
      s.on('close', () => resolve(Date.now() - start));
      s.on('error', () => undefined);
      setTimeout(() => s.destroy(), 5000);
    });
    assert.ok(silent >= 350 && silent < 2500, `silent connection closed after ${silent} ms`);
    // A request head trickling in a byte at a time.
    const trickle = await new Promise<number>((resolve) => {
      const begin = Date.now();
      const s: Socket = tls
        ? tlsConnect({ port: inbound.port, host: '127.0.0.1', rejectUnauthorized: false })
        : connect({ port: inbound.port, host: '127.0.0.1' });
      const head = Buffer.from(UPGRADE('/ws'));
      let i = 0;
      const timer = setInterval(() => {
        if (i < head.length && !s.destroyed) s.write(head.subarray(i, ++i));
      }, 40);
      s.on('close', () => {
        clearInterval(timer);
        resolve(Date.now() - begin);
      });
      s.on('error', () => undefined);
      setTimeout(() => s.destroy(), 5000);
    });
    assert.ok(trickle < 2500, `trickling connection lasted ${trickle} ms`);
  }
});

test('per-address cap on connections that have not upgraded; an upgrade frees its slot', async (t) => {
  const inbound = await pigeonWsInbound(t, {
    method: METHOD,
    password: PASSWORD,
    path: '/ws',
    admission: { perAddress: 2, total: 100 },
    requestTimeoutMs: 5000,
  });
  const idle = async () => {
    const s = connect({ port: inbound.port, host: '127.0.0.1' });
    s.on('error', () => undefined);
    await new Promise((r) => s.once('connect', r));
    t.after(() => s.destroy());
    return s;
  };
  const closedSoon = (s: Socket) =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 1000);
      s.once('close', () => (clearTimeout(timer), resolve(true)));
    });
  const a = await idle();
  await idle();
  await sleep(50);
  assert.equal(await closedSoon(await idle()), true, 'a third pending connection is refused');
  a.destroy();
  await sleep(50);
  const b = await idle();
  assert.equal(await closedSoon(b), false, 'a slot is free again');
  b.destroy();
  await sleep(50);
  // Two upgraded WebSockets do not hold slots.
  const target = await tcpEcho(t);
  const out = outbound(inbound.port, { host: 'x' });
  const streams = [await out.dialTcp(makeAddress('127.0.0.1', target.port))];
  streams.push(await out.dialTcp(makeAddress('127.0.0.1', target.port)));
  for (const s of streams) s.on('error', () => undefined);
  await sleep(50);
  const c = await idle();
  assert.equal(await closedSoon(c), false, 'upgraded connections left the pending count');
  for (const s of streams) s.destroy();
});

/** A raw WebSocket to the inbound, sending `payload`: what came back and when (and how) it closed. */
function wsProbe(port: number, payload: Buffer, o: { closeAfterMs?: number; watchMs?: number } = {}) {
  return new Promise<{ bytesBack: number; code: number | undefined; afterMs: number }>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { Host: HOST } });
    let bytesBack = 0;
    let start = 0;
    const timer = setTimeout(() => finish(undefined), o.watchMs ?? 5000);
    const finish = (code: number | undefined) => {
      clearTimeout(timer);
      ws.terminate();
      resolve({ bytesBack, code, afterMs: Date.now() - start });
    };
    ws.on('open', () => {
      start = Date.now();
      ws.send(payload);
      if (o.closeAfterMs !== undefined) setTimeout(() => ws.close(1000), o.closeAfterMs);
    });
    ws.on('message', (d: Buffer) => (bytesBack += d.length));
    ws.on('close', (code: number) => finish(code));
    ws.on('error', reject);
  });
}

test('probe resistance inside the WebSocket: nothing back, closed only at the timeout, whatever the length', async (t) => {
  const TIMEOUT = 600;
  const inbound = await pigeonWsInbound(t, {
    method: METHOD,
    password: PASSWORD,
    path: '/ws',
    host: HOST,
    handshakeTimeoutMs: TIMEOUT,
  });
  for (const len of [3, 9, 50, 221, 700]) {
    const r = await wsProbe(inbound.port, randomBytes(len));
    assert.equal(r.bytesBack, 0, `${len} bytes: got an answer`);
    assert.equal(r.code, 1000, `${len} bytes`);
    assert.ok(
      r.afterMs >= TIMEOUT - 50 && r.afterMs < TIMEOUT * 1.1 + 500,
      `${len} bytes: closed after ${r.afterMs} ms`,
    );
  }
  // The prober closing first gets the ordinary close back at once.
  const early = await wsProbe(inbound.port, randomBytes(221), { closeAfterMs: 100 });
  assert.equal(early.bytesBack, 0);
  assert.ok(early.afterMs < TIMEOUT, `closed after ${early.afterMs} ms`);
  // Inside a Mux.Cool session: no data back; the session ends only at the timeout.
  const target = { network: 'tcp', address: { kind: 'ipv4', host: '127.0.0.1', port: 0 } } as const;
  const junk = encodeMuxFrame({ session: 1, status: 'new', target, data: randomBytes(221) });
  const r = await new Promise<{ frames: Buffer; afterMs: number }>((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${inbound.port}/ws`, { headers: { Host: HOST } });
    let start = 0;
    const timer = setTimeout(() => reject(new Error('no End within 5 s')), 5000);
    ws.on('open', () => {
      start = Date.now();
      ws.send(junk);
    });
    ws.on('message', (d: Buffer) => {
      clearTimeout(timer);
      ws.terminate();
      resolve({ frames: d, afterMs: Date.now() - start });
    });
    ws.on('error', reject);
  });
  assert.deepEqual(r.frames, encodeMuxFrame({ session: 1, status: 'end', error: true }));
  assert.ok(r.afterMs >= TIMEOUT - 50, `session ended after ${r.afterMs} ms`);
  // 50, 221, 700, the early close and the mux session; 3 and 9 bytes are too short to judge.
  assert.equal(inbound.counts.authFailures.length, 5);
  assert.equal(inbound.counts.opened, 0);
});

test('outbound: refused, 404, untrusted certificate and silent servers are DialErrors; bad keys throw', async (t) => {
  const target = makeAddress('127.0.0.1', 9);
  const kind = (e: unknown) => (e instanceof DialError ? e.kind : `not a DialError: ${String(e)}`);
  // Nothing listening.
  const free = await freePort('tcp');
  await assert.rejects(outbound(free).dialTcp(target), (e) => kind(e) === 'refused');
  // An HTTP server that is not this WebSocket path.
  const inbound = await pigeonWsInbound(t, { method: METHOD, password: PASSWORD, path: '/ws' });
  await assert.rejects(outbound(inbound.port, { path: '/elsewhere' }).dialTcp(target), (e) => {
    return kind(e) === 'other' && /HTTP 404/.test((e as Error).message);
  });
  // TLS with a certificate nobody vouches for.
  const cert = await selfSignedCert(t, HOST);
  const tlsInbound = await pigeonWsInbound(t, { method: METHOD, password: PASSWORD, path: '/ws', tls: cert });
  const untrusted = new WebSocketOutbound(
    parseSsUri(pluginUri(METHOD, PASSWORD, tlsInbound.port, { tls: true, host: HOST, path: '/ws' })),
    { connectTimeoutMs: 3000, headerDelayMs: 20 },
  );
  await assert.rejects(untrusted.dialTcp(target), (e) => kind(e) === 'other');
  // A server that accepts TCP and never answers.
  const mute = createServer(() => undefined);
  await new Promise<void>((r) => mute.listen(0, '127.0.0.1', r));
  t.after(() => {
    mute.close();
  });
  const port = (mute.address() as { port: number }).port;
  const slow = new WebSocketOutbound(parseSsUri(pluginUri(METHOD, PASSWORD, port, { host: HOST })), {
    connectTimeoutMs: 300,
    headerDelayMs: 20,
  });
  const start = Date.now();
  await assert.rejects(slow.dialTcp(target), (e) => kind(e) === 'timeout');
  assert.ok(Date.now() - start < 2000);
  // Keys the outbound cannot use.
  const plainUri = `ss://${Buffer.from(`${METHOD}:${PASSWORD}`).toString('base64url')}@127.0.0.1:1`;
  assert.throws(() => new WebSocketOutbound(parseSsUri(plainUri)), /no v2ray-plugin/);
  assert.throws(
    () =>
      new WebSocketOutbound(
        parseSsUri(pluginUri(METHOD, PASSWORD, 1, { tls: true, cert: '/nonexistent.pem' })),
      ),
    /cannot read the certificate file/,
  );
  assert.throws(
    () => new WebSocketOutbound(parseSsUri(pluginUri(METHOD, PASSWORD, 1, { mode: 'quic' }))),
    /quic/,
  );
  assert.equal(usesWebSocket(parseSsUri(pluginUri(METHOD, PASSWORD, 1, {}))), true);
  assert.equal(usesWebSocket(parseSsUri(plainUri)), false);
});
