// UDP ASSOCIATE through the client's router with a real SOCKS5 client (v2ray's socks outbound): each
// destination follows its rule — one through the tunnel, one direct — within one association, and the
// connection table shows both. Killing the server stops the tunnelled one only, which proves the path.
// Then full-cone behaviour on both paths: a reply from another port of the peer (as STUN servers do)
// comes back through the association with its real source.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { startClient, type RunningClient } from '../../src/client/index.js';
import { parseRule } from '../../src/wire/rules.js';
import { parseSsUri } from '../../src/wire/sip002.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { silentLog } from '../../src/log.js';
import { udpEcho } from '../helpers/targets.js';
import { randomPassword, v2ray } from '../helpers/peers.js';
import { pigeonServer } from '../helpers/pigeon.js';
import { freePort, retryOnAddressInUse } from '../helpers/ports.js';
import { socks5UdpAssociate } from '../helpers/socks5.js';
import { distinctPayloads, udpEchoVia } from '../helpers/traffic.js';

const T = { timeout: 90_000 };

async function client(t: TestContext, uri: string, rules: string[]): Promise<RunningClient> {
  const c = await startClient({
    server: parseSsUri(uri),
    listen: makeAddress('127.0.0.1', 0),
    forwards: [],
    rules: rules.map((r) => parseRule(r)),
    udpTimeoutMs: 30_000,
    log: silentLog,
  });
  t.after(() => c.close());
  return c;
}

test('v2ray as a SOCKS5 UDP client: per-destination routing inside one association', T, async (t) => {
  const server = await pigeonServer(t, { method: 'chacha20-ietf-poly1305', password: randomPassword() });
  const tunnelled = await udpEcho(t);
  const direct = await udpEcho(t);
  const c = await client(t, server.uri, [`DST-PORT,${tunnelled},proxy`, 'MATCH,DIRECT']);

  // v2ray: two UDP dokodemo-door inbounds, one socks outbound (UDP ASSOCIATE) to the pigeon client.
  const ports = await retryOnAddressInUse(async () => {
    const a = await freePort('udp');
    const b = await freePort('udp');
    const door = (listen: number, target: number) => ({
      listen: '127.0.0.1',
      port: listen,
      protocol: 'dokodemo-door',
      settings: { address: '127.0.0.1', port: target, network: 'udp' },
    });
    await v2ray(
      t,
      {
        inbounds: [door(a, tunnelled), door(b, direct)],
        outbounds: [{ protocol: 'socks', settings: { servers: [{ address: '127.0.0.1', port: c.port }] } }],
      },
      { udp: [a, b] },
    );
    return { a, b };
  });

  const payloads = distinctPayloads([1, 100, 1200, 1400]);
  assert.deepEqual(await udpEchoVia(ports.a, payloads), payloads, 'tunnelled destination echoes');
  assert.deepEqual(await udpEchoVia(ports.b, payloads), payloads, 'direct destination echoes');

  const udp = c.connections.list().filter((x) => x.network === 'udp');
  const viaTunnel = udp.find((x) => x.destination === `127.0.0.1:${tunnelled}`);
  const viaDirect = udp.find((x) => x.destination === `127.0.0.1:${direct}`);
  assert.ok(viaTunnel && viaDirect, `both routes listed: ${JSON.stringify(udp)}`);
  assert.equal(viaTunnel.rule, `DST-PORT,${tunnelled},proxy`);
  assert.match(viaTunnel.via, /^proxy\//);
  assert.equal(viaDirect.via, 'DIRECT');
  assert.equal(viaDirect.rule, 'MATCH,DIRECT');
  for (const x of [viaTunnel, viaDirect])
    assert.ok(x.up >= 2701 && x.down >= 2701, `bytes counted: ${JSON.stringify(x)}`);

  // Without the server, the tunnelled destination goes silent; the direct one does not notice.
  await server.proc.stop();
  await assert.rejects(udpEchoVia(ports.a, distinctPayloads([10])), /not echoed/);
  assert.deepEqual(await udpEchoVia(ports.b, payloads), payloads);
});

/** A peer that answers from a second port, as a STUN server's "change port" does. */
async function otherPortResponder(t: TestContext): Promise<{ port: number; replyPort: number }> {
  const inSock = createSocket('udp4');
  const outSock = createSocket('udp4');
  for (const s of [inSock, outSock]) s.on('error', () => undefined);
  await new Promise<void>((r) => inSock.bind(0, '127.0.0.1', r));
  await new Promise<void>((r) => outSock.bind(0, '127.0.0.1', r));
  inSock.on('message', (msg, from) => outSock.send(msg, from.port, from.address));
  t.after(() => {
    inSock.close();
    outSock.close();
  });
  return { port: inSock.address().port, replyPort: outSock.address().port };
}

test(
  'full cone on both paths: replies from any port of the peer reach the app with their source',
  T,
  async (t) => {
    const server = await pigeonServer(t, { method: 'aes-256-gcm', password: randomPassword() });
    const viaTunnel = await otherPortResponder(t);
    const viaDirect = await otherPortResponder(t);
    const c = await client(t, server.uri, [`DST-PORT,${viaTunnel.port},proxy`, 'MATCH,DIRECT']);
    const assoc = await socks5UdpAssociate(c.port);
    t.after(() => assoc.close());
    for (const peer of [viaTunnel, viaDirect]) {
      let got;
      for (let attempt = 0; attempt < 4 && !got; attempt++) {
        assoc.send('127.0.0.1', peer.port, Buffer.from('binding request'));
        got = await assoc.receive(2000).catch(() => undefined);
      }
      assert.ok(got, `a reply from the other port of ${peer.port}`);
      assert.deepEqual(got.address, { host: '127.0.0.1', port: peer.replyPort });
      assert.equal(got.payload.toString(), 'binding request');
    }
    const routes = c.connections.list().map((x) => [x.destination, x.via.split('/')[0]]);
    assert.deepEqual(
      routes.sort(),
      [
        [`127.0.0.1:${viaDirect.port}`, 'DIRECT'],
        [`127.0.0.1:${viaTunnel.port}`, 'proxy'],
      ].sort(),
    );
  },
);
