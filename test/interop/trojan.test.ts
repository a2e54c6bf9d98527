// Trojan interop with real peers, both ways, TCP and UDP:
// (a) Debian's trojan (trojan-gfw 1.16) as a SOCKS5 client → Pigeon's Trojan server → loopback targets;
// (b) Pigeon's Trojan outbound → trojan-gfw as a server → loopback targets;
// (c) v2ray 4's trojan outbound (dokodemo-door inbounds) → Pigeon's Trojan server;
// (d) Pigeon's Trojan outbound → v2ray 4's trojan inbound (freedom outbound).
// The peers trust the test certificate (trojan-gfw: ssl.cert; v2ray: allowInsecure), and so does
// Pigeon (the certificate as an extra CA, or its pinned SHA-256).
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { startTrojanServer } from '../../src/server/trojan.js';
import { TrojanOutbound } from '../../src/client/trojan-outbound.js';
import type { Datagram } from '../../src/crypto/ss-udp.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { parseTrojanUri, trojanPasswordHash } from '../../src/wire/trojan.js';
import { silentLog } from '../../src/log.js';
import { randomPassword } from '../helpers/peers.js';
import { httpTarget, tcpEcho, udpEcho } from '../helpers/targets.js';
import { socks5Connect, socks5UdpAssociate } from '../helpers/socks5.js';
import {
  assertSameBytes,
  distinctPayloads,
  echoThrough,
  tcpConnect,
  udpEchoRoundTrips,
  udpEchoVia,
  udpEchoViaSocks5,
} from '../helpers/traffic.js';
import {
  testCertificate,
  TEST_SNI,
  trojanGfwClient,
  trojanGfwServer,
  v2rayTrojanServer,
  v2rayTrojanTunnel,
} from '../helpers/trojan.js';

const T = { timeout: 60_000 };
const BIG = 200 * 1024;
const UDP_SIZES = [1, 64, 512, 1200, 1400];

async function pigeonTrojanServer(t: TestContext, password: string): Promise<number> {
  const { cert, key } = await testCertificate();
  const hash = trojanPasswordHash(password);
  const s = await startTrojanServer({
    host: '127.0.0.1',
    port: 0,
    cert,
    key,
    users: { lookup: (h) => (h === hash ? { id: 'interop' } : undefined) },
    allowPrivate: true,
    log: silentLog,
  });
  t.after(() => s.close());
  return s.port;
}

async function pigeonOutbound(port: number, password: string, how: 'ca' | 'pin'): Promise<TrojanOutbound> {
  const { cert, sha256 } = await testCertificate();
  const query = how === 'pin' ? `sni=${TEST_SNI}&pcs=${sha256}` : `sni=${TEST_SNI}`;
  return new TrojanOutbound(
    parseTrojanUri(`trojan://${encodeURIComponent(password)}@127.0.0.1:${port}?${query}`),
    {
      connectTimeoutMs: 10_000,
      headerDelayMs: 100,
      ...(how === 'ca' ? { ca: cert } : {}),
    },
  );
}

/** 200 KB echo, then half-close: the client's FIN crosses and every byte still comes back. */
async function tcpChecks(
  open: (port: number) => Promise<Socket>,
  port: number,
  halfClose = true,
): Promise<void> {
  const data = randomBytes(BIG);
  assertSameBytes(await echoThrough(await open(port), data), data, '200 KB echo');
  if (halfClose) {
    const half = await echoThrough(await open(port), data, { until: 'half-close' });
    assertSameBytes(half, data, 'echo after the client half-closed');
  }
}

async function outboundUdp(t: TestContext, out: TrojanOutbound, echoPort: number): Promise<void> {
  const replies: Datagram[] = [];
  const tunnel = out.openUdp((d) => replies.push(d));
  t.after(() => tunnel.close());
  const target = makeAddress('127.0.0.1', echoPort);
  const payloads = distinctPayloads(UDP_SIZES);
  const got = await udpEchoRoundTrips(
    (p) => tunnel.send({ address: target, payload: p }),
    async (ms) => {
      for (let i = 0; i < ms / 10 && replies.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
      const d = replies.shift();
      if (!d) throw new Error('timeout');
      assert.deepEqual(d.address, target, 'the reply names the echo as its source');
      return d.payload;
    },
    payloads,
  );
  assert.deepEqual(got, payloads);
}

describe('trojan-gfw ↔ pigeon', () => {
  test('trojan-gfw client (SOCKS5) → pigeon Trojan server: TCP', T, async (t) => {
    const password = randomPassword();
    const echo = await tcpEcho(t);
    const server = await pigeonTrojanServer(t, password);
    const client = await trojanGfwClient(t, { password, serverPort: server });
    const open = (port: number) => socks5Connect(client.port, '127.0.0.1', port);
    // trojan-gfw ends the whole session when its SOCKS5 client half-closes: no half-close check.
    await tcpChecks(open, echo.port, false);
    const closing = await tcpEcho(t, { closeAfter: BIG });
    const data = randomBytes(BIG);
    assertSameBytes(
      await echoThrough(await open(closing.port), data, { until: 'peer-close' }),
      data,
      'target closes first',
    );
  });

  test('trojan-gfw client (SOCKS5 UDP ASSOCIATE) → pigeon Trojan server: UDP', T, async (t) => {
    const password = randomPassword();
    const uecho = await udpEcho(t);
    const server = await pigeonTrojanServer(t, password);
    const client = await trojanGfwClient(t, { password, serverPort: server });
    const assoc = await socks5UdpAssociate(client.port);
    try {
      const payloads = distinctPayloads(UDP_SIZES);
      assert.deepEqual(await udpEchoViaSocks5(assoc, '127.0.0.1', uecho, payloads), payloads);
    } finally {
      await assoc.close();
    }
  });

  test('trojan-gfw client with a wrong password gets nowhere', T, async (t) => {
    const echo = await tcpEcho(t);
    const server = await pigeonTrojanServer(t, randomPassword());
    const client = await trojanGfwClient(t, { password: 'not the password', serverPort: server });
    const s = await socks5Connect(client.port, '127.0.0.1', echo.port).catch(() => undefined);
    if (s) await echoThrough(s, Buffer.from('hello'), { timeoutMs: 2000 }).catch(() => undefined);
    assert.equal(echo.accepted(), 0);
  });

  test('pigeon Trojan outbound → trojan-gfw server: TCP and UDP', T, async (t) => {
    const password = randomPassword();
    const echo = await tcpEcho(t);
    const uecho = await udpEcho(t);
    const fallback = await httpTarget(t);
    const server = await trojanGfwServer(t, { password, fallbackPort: fallback.port });
    const out = await pigeonOutbound(server.port, password, 'ca');
    // trojan-gfw ends the whole session when the client's stream ends: no half-close check.
    await tcpChecks(
      async (port) => (await out.dialTcp(makeAddress('127.0.0.1', port))) as unknown as Socket,
      echo.port,
      false,
    );
    await outboundUdp(t, out, uecho);
    assert.equal(fallback.requests.length, 0, 'trojan-gfw accepted every request as Trojan');
  });
});

describe('v2ray ↔ pigeon', () => {
  test('v2ray trojan outbound (dokodemo-door) → pigeon Trojan server: TCP and UDP', T, async (t) => {
    const password = randomPassword();
    const echo = await tcpEcho(t);
    const uecho = await udpEcho(t);
    const server = await pigeonTrojanServer(t, password);
    const v2 = await v2rayTrojanTunnel(t, {
      password,
      serverPort: server,
      tcpTarget: echo.port,
      udpTarget: uecho,
    });
    // v2ray closes a connection ~2 s after its uplink ends instead of passing the FIN on: no half-close check.
    await tcpChecks(() => tcpConnect(v2.tcpPort), echo.port, false);
    const payloads = distinctPayloads(UDP_SIZES);
    assert.deepEqual(await udpEchoVia(v2.udpPort, payloads), payloads);
  });

  test('pigeon Trojan outbound → v2ray trojan inbound: TCP and UDP', T, async (t) => {
    const password = randomPassword();
    const echo = await tcpEcho(t);
    const uecho = await udpEcho(t);
    const server = await v2rayTrojanServer(t, { password });
    const out = await pigeonOutbound(server.port, password, 'pin');
    await tcpChecks(
      async (port) => (await out.dialTcp(makeAddress('127.0.0.1', port))) as unknown as Socket,
      echo.port,
      false,
    );
    await outboundUdp(t, out, uecho);
  });
});
