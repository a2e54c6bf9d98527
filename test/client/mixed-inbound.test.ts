// The local proxy port on the wire: SOCKS5 and HTTP, good and bad requests, auth, UDP ASSOCIATE.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { createServer as createHttpServer } from 'node:http';
import { createMixedInbound, type Credentials } from '../../src/client/mixed-inbound.js';
import { DirectOutbound } from '../../src/client/direct-outbound.js';
import { listenTcp } from '../../src/net/listen.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { decodeUdpDatagram, encodeUdpDatagram } from '../../src/wire/socks5.js';
import { silentLog } from '../../src/log.js';
import { tcpEcho, udpEcho } from '../helpers/targets.js';

async function proxy(t: TestContext, auth?: Credentials, handshakeTimeoutMs = 5000): Promise<number> {
  const server = createMixedInbound({
    outbound: new DirectOutbound(2000),
    auth,
    handshakeTimeoutMs,
    idleTimeoutMs: 10_000,
    log: silentLog,
  });
  const port = await listenTcp(server, makeAddress('127.0.0.1', 0));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  return port;
}

/** A connection that collects what the proxy sends and reports how it ended. */
class Conn {
  readonly s: Socket;
  private buf = Buffer.alloc(0);
  ended: 'open' | 'fin' | 'rst' = 'open';
  private waiters: (() => void)[] = [];

  constructor(port: number) {
    this.s = connect({ port, host: '127.0.0.1', allowHalfOpen: false });
    this.s.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    this.s.on('end', () => {
      this.ended = 'fin';
      this.wake();
    });
    this.s.on('error', () => {
      this.ended = 'rst';
      this.wake();
    });
    this.s.on('close', () => this.wake());
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits for n bytes (or the end), then takes them. */
  async take(n: number, timeoutMs = 5000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < n && this.ended === 'open' && Date.now() < deadline) {
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  async closed(timeoutMs = 5000): Promise<'fin' | 'rst' | 'open'> {
    const deadline = Date.now() + timeoutMs;
    while (this.ended === 'open' && !this.s.destroyed && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    return this.s.destroyed && this.ended === 'open' ? 'fin' : this.ended;
  }

  write(b: Buffer | string): void {
    this.s.write(b);
  }

  destroy(): void {
    this.s.destroy();
  }
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const connectReq = (port: number) =>
  Buffer.concat([hex('05 01 00 01 7f000001'), Buffer.from([port >> 8, port & 255])]);

describe('SOCKS5', () => {
  test('no-auth CONNECT to an IPv4 address relays both ways', async (t) => {
    const echo = await tcpEcho(t);
    const c = new Conn(await proxy(t));
    t.after(() => c.destroy());
    c.write(hex('05 01 00'));
    assert.deepEqual(await c.take(2), hex('05 00'));
    c.write(connectReq(echo.port));
    const rep = await c.take(10);
    assert.equal(rep[1], 0x00, 'succeeded');
    c.write('ping');
    assert.equal((await c.take(4)).toString(), 'ping');
  });

  test('CONNECT by domain name, with the first payload in the same packet as the request', async (t) => {
    const echo = await tcpEcho(t);
    const c = new Conn(await proxy(t));
    t.after(() => c.destroy());
    const name = Buffer.from('localhost');
    c.write(
      Buffer.concat([
        hex('05 01 00'),
        hex('05 01 00 03'),
        Buffer.from([name.length]),
        name,
        Buffer.from([echo.port >> 8, echo.port & 255]),
        Buffer.from('early'),
      ]),
    );
    assert.deepEqual(await c.take(2), hex('05 00'));
    assert.equal((await c.take(10))[1], 0);
    assert.equal((await c.take(5)).toString(), 'early');
  });

  test('username/password: right credentials pass, wrong ones get status 1 and a close', async (t) => {
    const echo = await tcpEcho(t);
    const port = await proxy(t, { username: 'alice', password: 's3cret' });
    const auth = (u: string, p: string) =>
      Buffer.concat([Buffer.from([1, u.length]), Buffer.from(u), Buffer.from([p.length]), Buffer.from(p)]);

    const ok = new Conn(port);
    t.after(() => ok.destroy());
    ok.write(hex('05 02 00 02'));
    assert.deepEqual(await ok.take(2), hex('05 02'), 'server picks username/password');
    ok.write(auth('alice', 's3cret'));
    assert.deepEqual(await ok.take(2), hex('01 00'));
    ok.write(connectReq(echo.port));
    assert.equal((await ok.take(10))[1], 0);

    const bad = new Conn(port);
    bad.write(hex('05 01 02'));
    assert.deepEqual(await bad.take(2), hex('05 02'));
    bad.write(auth('alice', 'wrong'));
    assert.deepEqual(await bad.take(2), hex('01 01'));
    assert.notEqual(await bad.closed(), 'open');

    const none = new Conn(port);
    none.write(hex('05 01 00'));
    assert.deepEqual(await none.take(2), hex('05 ff'), 'no acceptable method');
    assert.notEqual(await none.closed(), 'open');
  });

  test('BIND and unknown commands get REP 7, unknown address types REP 8', async (t) => {
    const port = await proxy(t);
    for (const [req, rep] of [
      [hex('05 02 00 01 7f000001 0050'), 7],
      [hex('05 09 00 01 7f000001 0050'), 7],
      [hex('05 01 00 07 7f000001 0050'), 8],
    ] as const) {
      const c = new Conn(port);
      c.write(hex('05 01 00'));
      await c.take(2);
      c.write(req);
      const r = await c.take(10);
      assert.equal(r[0], 5);
      assert.equal(r[1], rep);
      assert.notEqual(await c.closed(), 'open');
    }
  });

  test('a refused destination gets REP 5', async (t) => {
    const echo = await tcpEcho(t);
    const port = await proxy(t);
    const c = new Conn(port);
    c.write(hex('05 01 00'));
    await c.take(2);
    // Port 1 on loopback: nothing listens there.
    c.write(connectReq(1));
    const r = await c.take(10);
    assert.equal(r[1], 5);
    assert.ok(echo.port > 0);
  });

  test('malformed greetings and oversize or silent handshakes are closed', async (t) => {
    const port = await proxy(t, undefined, 500);
    const zero = new Conn(port);
    zero.write(hex('05 00')); // no methods
    assert.notEqual(await zero.closed(), 'open');
    const flood = new Conn(port);
    flood.write(Buffer.alloc(40_000, 0x41)); // an HTTP head that never ends
    assert.notEqual(await flood.closed(), 'open');
    const silent = new Conn(port);
    assert.notEqual(await silent.closed(2000), 'open', 'handshake timeout');
  });

  test('UDP ASSOCIATE relays datagrams, drops fragments, and ends with the TCP connection', async (t) => {
    const echoPort = await udpEcho(t);
    const c = new Conn(await proxy(t));
    c.write(hex('05 01 00'));
    await c.take(2);
    c.write(hex('05 03 00 01 00000000 0000'));
    const rep = await c.take(10);
    assert.equal(rep[1], 0);
    assert.equal(rep[3], 1);
    const relayPort = rep.readUInt16BE(8);
    const u = createSocket('udp4');
    t.after(() => u.close());
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', r));
    const replies: Buffer[] = [];
    u.on('message', (m) => replies.push(m));
    const target = makeAddress('127.0.0.1', echoPort);
    u.send(encodeUdpDatagram(target, Buffer.from('call audio')), relayPort, '127.0.0.1');
    const frag = encodeUdpDatagram(target, Buffer.from('fragment'));
    frag[2] = 1;
    u.send(frag, relayPort, '127.0.0.1');
    const deadline = Date.now() + 3000;
    while (replies.length < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(replies.length, 1, 'exactly one reply (the fragment was dropped)');
    const d = decodeUdpDatagram(replies[0]!);
    assert.equal(d.payload.toString(), 'call audio');
    assert.deepEqual(d.address, target);
    c.destroy();
    await new Promise((r) => setTimeout(r, 200));
    u.send(encodeUdpDatagram(target, Buffer.from('after close')), relayPort, '127.0.0.1');
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(replies.length, 1, 'association outlived its TCP connection');
  });
});

describe('HTTP proxy', () => {
  async function origin(t: TestContext) {
    const seen: { url?: string; headers?: Record<string, string | string[] | undefined> } = {};
    const srv = createHttpServer((req, res) => {
      seen.url = req.url;
      seen.headers = req.headers;
      res.end('hello from origin');
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => srv.close(() => r())));
    return { port: (srv.address() as { port: number }).port, seen };
  }

  test('absolute-URI GET is forwarded in origin form without proxy headers', async (t) => {
    const o = await origin(t);
    const c = new Conn(await proxy(t));
    c.write(
      `GET http://127.0.0.1:${o.port}/path?q=1 HTTP/1.1\r\nHost: 127.0.0.1:${o.port}\r\nProxy-Connection: keep-alive\r\n\r\n`,
    );
    const res = (await c.take(10_000, 3000)).toString();
    assert.match(res, /^HTTP\/1\.1 200/);
    assert.match(res, /hello from origin$/);
    assert.equal(o.seen.url, '/path?q=1');
    assert.equal(o.seen.headers!['proxy-connection'], undefined);
  });

  test('CONNECT answers 200 and then relays raw bytes', async (t) => {
    const echo = await tcpEcho(t);
    const c = new Conn(await proxy(t));
    c.write(`CONNECT 127.0.0.1:${echo.port} HTTP/1.1\r\nHost: 127.0.0.1:${echo.port}\r\n\r\n`);
    assert.equal((await c.take(39)).toString(), 'HTTP/1.1 200 Connection Established\r\n\r\n');
    c.write('raw');
    assert.equal((await c.take(3)).toString(), 'raw');
    c.destroy();
  });

  test('malformed requests get 400, missing credentials 407, unreachable origins 502', async (t) => {
    const port = await proxy(t);
    const bad = new Conn(port);
    bad.write('GARBAGE\r\n\r\n');
    assert.match((await bad.take(12)).toString(), /^HTTP\/1\.1 400/);

    const relative = new Conn(port);
    relative.write('GET /x HTTP/1.1\r\nHost: a\r\n\r\n');
    assert.match((await relative.take(12)).toString(), /^HTTP\/1\.1 400/);

    const down = new Conn(port);
    down.write('CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n');
    assert.match((await down.take(12)).toString(), /^HTTP\/1\.1 502/);

    const authPort = await proxy(t, { username: 'u', password: 'p' });
    const noAuth = new Conn(authPort);
    noAuth.write('CONNECT 127.0.0.1:1 HTTP/1.1\r\n\r\n');
    const r = (await noAuth.take(200, 2000)).toString();
    assert.match(r, /^HTTP\/1\.1 407/);
    assert.match(r, /Proxy-Authenticate: Basic/i);
  });
});
