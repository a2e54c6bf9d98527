// Many keys on one port: each key's clients get through (TCP and UDP), usage lands on the right key,
// and keys that are paused, deleted or over their limit stop working.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { startMultiServer } from '../../src/server/index.js';
import type { ServerKey, UserSource } from '../../src/server/users.js';
import { ShadowsocksOutbound } from '../../src/client/shadowsocks-outbound.js';
import { methodSpec, type MethodName } from '../../src/wire/shadowsocks-methods.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { silentLog } from '../../src/log.js';
import { tcpEcho, udpEcho } from '../helpers/targets.js';

class TestUsers implements UserSource {
  keysList: ServerKey[] = [];
  identity: Partial<Record<MethodName, string>> = {};
  paused = new Set<string>();
  limits = new Map<string, number>();
  used = new Map<string, number>();
  private v = 0;
  keys() {
    return this.keysList;
  }
  identityPsk(m: MethodName) {
    return this.identity[m];
  }
  isAllowed(id: string) {
    if (!this.keysList.some((k) => k.id === id) || this.paused.has(id)) return false;
    const limit = this.limits.get(id);
    return limit === undefined || (this.used.get(id) ?? 0) < limit;
  }
  addUsage(id: string, n: number) {
    this.used.set(id, (this.used.get(id) ?? 0) + n);
  }
  touch() {}
  version() {
    return this.v;
  }
  changed() {
    this.v++;
  }
}

function secret(m: MethodName) {
  const spec = methodSpec(m);
  return spec.edition === '2022'
    ? randomBytes(spec.keySize).toString('base64')
    : randomBytes(10).toString('hex');
}

async function setup(t: TestContext, methods: MethodName[]) {
  const users = new TestUsers();
  for (const m of ['2022-blake3-aes-128-gcm', '2022-blake3-aes-256-gcm'] as const)
    users.identity[m] = secret(m);
  users.keysList = methods.map((m, i) => ({ id: String(i + 1), method: m, secret: secret(m), port: 0 }));
  const server = await startMultiServer({
    host: '127.0.0.1',
    users,
    allowPrivate: true,
    log: silentLog,
    enforceIntervalMs: 200,
  });
  t.after(() => server.close());
  const client = (k: ServerKey) => {
    const ipsk = users.identity[k.method];
    const password =
      ipsk && methodSpec(k.method).cipher !== 'chacha20-poly1305' ? `${ipsk}:${k.secret}` : k.secret;
    return new ShadowsocksOutbound({
      method: k.method,
      password,
      host: '127.0.0.1',
      port: server.port,
      params: {},
    });
  };
  return { users, server, client };
}

function echoOnce(s: Duplex, data: Buffer, timeoutMs = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let n = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no echo (got ${n} bytes)`));
    }, timeoutMs);
    s.on('data', (d: Buffer) => {
      got.push(d);
      n += d.length;
      if (n >= data.length) {
        clearTimeout(timer);
        resolve(Buffer.concat(got));
      }
    });
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(timer);
      if (n < data.length) reject(new Error(`closed after ${n} bytes`));
    });
    s.write(data);
  });
}

const ALL: MethodName[] = [
  'aes-128-gcm',
  'aes-256-gcm',
  'chacha20-ietf-poly1305',
  'aes-128-gcm',
  '2022-blake3-aes-128-gcm',
  '2022-blake3-aes-128-gcm',
  '2022-blake3-aes-256-gcm',
  '2022-blake3-chacha20-poly1305',
];

describe('many keys on one port', () => {
  test('every key gets through by TCP and UDP, and usage is counted on that key only', async (t) => {
    const echo = await tcpEcho(t);
    const uport = await udpEcho(t);
    const { users, client } = await setup(t, ALL);
    for (const k of users.keysList) {
      const before = new Map(users.used);
      const s = await client(k).dialTcp(makeAddress('127.0.0.1', echo.port));
      const data = randomBytes(3000);
      assert.ok((await echoOnce(s, data)).equals(data), `key ${k.id} (${k.method})`);
      s.destroy();
      const udp = client(k);
      const reply = await new Promise<Buffer>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no UDP reply for key ${k.id} (${k.method})`)), 3000);
        const tun = udp.openUdp((d) => {
          clearTimeout(timer);
          tun.close();
          resolve(d.payload);
        });
        tun.send({ address: makeAddress('127.0.0.1', uport), payload: Buffer.from(`udp-${k.id}`) });
      });
      assert.equal(reply.toString(), `udp-${k.id}`);
      for (const other of users.keysList) {
        const grew = (users.used.get(other.id) ?? 0) > (before.get(other.id) ?? 0);
        assert.equal(grew, other.id === k.id, `usage of key ${other.id} while using key ${k.id}`);
      }
    }
  });

  test('a paused key is refused for new connections and loses open ones; resuming restores it', async (t) => {
    const echo = await tcpEcho(t);
    const { users, client, server } = await setup(t, ['chacha20-ietf-poly1305', '2022-blake3-aes-128-gcm']);
    for (const k of users.keysList) {
      const open = await client(k).dialTcp(makeAddress('127.0.0.1', echo.port));
      await echoOnce(open, Buffer.from('before'));
      assert.equal(server.activeConnections(k.id), 1);
      users.paused.add(k.id);
      // The server closes its side: the client sees the end of the stream.
      const start = Date.now();
      await new Promise<void>((r) => {
        if (open.readableEnded || open.destroyed) r();
        open.once('end', () => r());
        open.once('close', () => r());
      });
      const took = Date.now() - start;
      assert.ok(took < 10_000, `open connection closed after ${took} ms`);
      assert.equal(server.activeConnections(k.id), 0);
      open.destroy();
      const fresh = await client(k).dialTcp(makeAddress('127.0.0.1', echo.port));
      await assert.rejects(echoOnce(fresh, Buffer.from('x'), 1500));
      fresh.destroy();
      users.paused.delete(k.id);
      const again = await client(k).dialTcp(makeAddress('127.0.0.1', echo.port));
      assert.equal((await echoOnce(again, Buffer.from('after'))).toString(), 'after');
      again.destroy();
    }
  });

  test('a data limit cuts the connection within one chunk of being reached', async (t) => {
    const echo = await tcpEcho(t);
    const { users, client } = await setup(t, ['aes-256-gcm']);
    const k = users.keysList[0]!;
    users.limits.set(k.id, 100_000);
    const s = await client(k).dialTcp(makeAddress('127.0.0.1', echo.port));
    let received = 0;
    s.on('data', (d: Buffer) => (received += d.length));
    s.on('error', () => undefined);
    const closed = new Promise<void>((r) => s.once('close', () => r()));
    for (let i = 0; i < 100 && !s.destroyed; i++) {
      s.write(randomBytes(16 * 1024));
      await new Promise((r) => setTimeout(r, 5));
    }
    await closed;
    const used = users.used.get(k.id) ?? 0;
    // Both directions count; one chunk is at most 64 KB of socket read.
    assert.ok(used >= 100_000, `cut before the limit: ${used}`);
    assert.ok(used < 100_000 + 2 * 65_536, `cut too late: ${used} bytes counted`);
    assert.ok(received < 150_000);
  });

  test('a deleted key stops working, and a key added later works without a restart', async (t) => {
    const echo = await tcpEcho(t);
    const { users, client } = await setup(t, ['aes-128-gcm', 'aes-128-gcm']);
    const [a, b] = users.keysList as [ServerKey, ServerKey];
    users.keysList = [b];
    users.changed();
    await new Promise((r) => setTimeout(r, 600));
    const s = await client(a).dialTcp(makeAddress('127.0.0.1', echo.port));
    await assert.rejects(echoOnce(s, Buffer.from('x'), 1500));
    s.destroy();
    const c: ServerKey = {
      id: '3',
      method: '2022-blake3-aes-256-gcm',
      secret: secret('2022-blake3-aes-256-gcm'),
      port: 0,
    };
    users.keysList = [b, c];
    users.changed();
    await new Promise((r) => setTimeout(r, 600));
    const s2 = await client(c).dialTcp(makeAddress('127.0.0.1', echo.port));
    assert.equal((await echoOnce(s2, Buffer.from('new key'))).toString(), 'new key');
    s2.destroy();
  });
});
