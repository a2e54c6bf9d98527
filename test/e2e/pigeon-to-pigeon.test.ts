// Pigeon client → Pigeon server → loopback targets, in one process, for every method: TCP with
// backpressure and half-close, UDP, IPv6 and domain-name destinations, and the server's policy.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { startServer } from '../../src/server/index.js';
import { startClient } from '../../src/client/index.js';
import { METHODS, methodSpec, type MethodName } from '../../src/wire/shadowsocks-methods.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { silentLog } from '../../src/log.js';
import { tcpEcho, udpEcho } from '../helpers/targets.js';

function secret(m: MethodName): string {
  const spec = methodSpec(m);
  return spec.edition === '2022'
    ? randomBytes(spec.keySize).toString('base64')
    : randomBytes(12).toString('hex');
}

async function tunnel(
  t: TestContext,
  m: MethodName,
  target: { host: string; port: number },
  opts: { allowPrivate?: boolean } = {},
) {
  const password = secret(m);
  const server = await startServer({
    listen: makeAddress('127.0.0.1', 0),
    method: m,
    password,
    allowPrivate: opts.allowPrivate ?? true,
    log: silentLog,
  });
  t.after(() => server.close());
  const client = await startClient({
    server: { method: m, password, host: '127.0.0.1', port: server.port, params: {} },
    listen: makeAddress('127.0.0.1', 0),
    forwards: [{ listen: makeAddress('127.0.0.1', 0), target: makeAddress(target.host, target.port) }],
    log: silentLog,
  });
  t.after(() => client.close());
  return { fwd: client.forwardPorts[0]!, socks: client.port };
}

/** Sends `data`, half-closes, and collects everything until the far side closes. */
function exchange(port: number, data: Buffer, timeoutMs = 15_000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`timed out with ${Buffer.concat(got).length} bytes`));
    }, timeoutMs);
    s.on('data', (d) => got.push(d));
    s.on('end', () => {
      clearTimeout(timer);
      s.end();
      resolve(Buffer.concat(got));
    });
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.end(data);
  });
}

function udpRoundTrip(port: number, payloads: Buffer[], timeoutMs = 5000): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      s.close();
      reject(new Error(`UDP: ${got.length}/${payloads.length} replies`));
    }, timeoutMs);
    s.on('message', (m) => {
      got.push(m);
      if (got.length === payloads.length) {
        clearTimeout(timer);
        s.close();
        resolve(got);
      }
    });
    s.bind(0, '127.0.0.1', () => {
      for (const p of payloads) s.send(p, port, '127.0.0.1');
    });
  });
}

for (const m of METHODS) {
  describe(m, () => {
    test('TCP: 2 MB each way, then the FIN crosses and the reply after it arrives', async (t) => {
      const echo = await tcpEcho(t, { bye: '<bye>' });
      const { fwd } = await tunnel(t, m, { host: '127.0.0.1', port: echo.port });
      const data = randomBytes(2 * 1024 * 1024);
      const got = await exchange(fwd, data);
      assert.equal(got.length, data.length + 5);
      assert.ok(got.subarray(0, data.length).equals(data), 'echoed bytes differ');
      assert.equal(got.subarray(data.length).toString(), '<bye>');
    });

    test('UDP: datagrams of several sizes come back intact', async (t) => {
      const port = await udpEcho(t);
      const { fwd } = await tunnel(t, m, { host: '127.0.0.1', port });
      const payloads = [1, 100, 1200, 1400].map((n) => randomBytes(n));
      const got = await udpRoundTrip(fwd, payloads);
      const key = (b: Buffer) => b.toString('hex');
      assert.deepEqual(got.map(key).sort(), payloads.map(key).sort());
    });
  });
}

describe('destinations', () => {
  test('IPv6 literal destination', async (t) => {
    const echo = await tcpEcho(t, { host: '::1', bye: '<bye>' });
    const { fwd } = await tunnel(t, '2022-blake3-aes-128-gcm', { host: '::1', port: echo.port });
    assert.equal((await exchange(fwd, Buffer.from('six'))).toString(), 'six<bye>');
  });

  test('domain-name destination is resolved by the server', async (t) => {
    const echo = await tcpEcho(t, { bye: '<bye>' });
    const { fwd } = await tunnel(t, 'aes-128-gcm', { host: 'localhost', port: echo.port });
    assert.equal((await exchange(fwd, Buffer.from('name'))).toString(), 'name<bye>');
  });

  test('without --allow-private the server refuses loopback, by IP and by name', async (t) => {
    const echo = await tcpEcho(t, { bye: '<bye>' });
    for (const host of ['127.0.0.1', 'localhost']) {
      const { fwd } = await tunnel(
        t,
        'chacha20-ietf-poly1305',
        { host, port: echo.port },
        { allowPrivate: false },
      );
      const got = await exchange(fwd, Buffer.from('hello')).catch(() => Buffer.alloc(0));
      assert.equal(got.length, 0);
    }
    assert.equal(echo.accepted(), 0, 'the target was dialled');
  });

  test('UDP to a private address is dropped without --allow-private', async (t) => {
    const port = await udpEcho(t);
    const { fwd } = await tunnel(
      t,
      '2022-blake3-aes-256-gcm',
      { host: '127.0.0.1', port },
      { allowPrivate: false },
    );
    await assert.rejects(udpRoundTrip(fwd, [Buffer.from('x')], 1500), /0\/1 replies/);
  });
});
