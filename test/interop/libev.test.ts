// Interop with shadowsocks-libev (Debian package shadowsocks-libev), for each SIP004 method:
// (a) ss-local / ss-tunnel → pigeon server → loopback targets, and
// (b) pigeon client → ss-server → loopback targets; TCP and UDP, random passwords.
//
// libev tears down both directions as soon as either side sends FIN, so a client that half-closes
// cannot get its echo back through libev at all (even libev to libev). The close case tested here
// is the other one: the target echoes everything and closes first; every byte must arrive before
// the end of the stream. (Client-first half-close is covered in v2ray.test.ts and test/e2e.)
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { tcpEcho, udpEcho } from '../helpers/targets.js';
import { libevLocal, libevServer, libevTunnel, randomPassword, SIP004_METHODS } from '../helpers/peers.js';
import { forward, peerUri, pigeonClient, pigeonServer } from '../helpers/pigeon.js';
import { freePort } from '../helpers/ports.js';
import { socks5Connect, socks5UdpAssociate } from '../helpers/socks5.js';
import {
  assertSameBytes,
  distinctPayloads,
  echoThrough,
  tcpConnect,
  udpEchoVia,
  udpEchoViaSocks5,
} from '../helpers/traffic.js';

const T = { timeout: 60_000 };
const BIG = 200 * 1024;
const UDP_SIZES = [1, 64, 512, 1200, 1400];

/** TCP checks through `open(targetPort)`: a 200 KB echo, 4 parallel echoes, and a target that closes first. */
async function tcpChecks(t: TestContext, open: (targetPort: number) => Promise<Socket>) {
  const echo = await tcpEcho(t);
  const data = randomBytes(BIG);
  assertSameBytes(await echoThrough(await open(echo.port), data), data, '200 KB echo');

  const parallel = [0, 1, 2, 3].map(() => randomBytes(50_000));
  const results = await Promise.all(parallel.map(async (d) => echoThrough(await open(echo.port), d)));
  results.forEach((r, i) => assertSameBytes(r, parallel[i]!, `parallel echo ${i}`));

  const closing = await tcpEcho(t, { closeAfter: BIG });
  const got = await echoThrough(await open(closing.port), data, { until: 'peer-close' });
  assertSameBytes(got, data, 'echo that closes first');
}

for (const method of SIP004_METHODS) {
  describe(`shadowsocks-libev ↔ pigeon, ${method}`, () => {
    test('ss-local → pigeon server: TCP via SOCKS5 CONNECT', T, async (t) => {
      const password = randomPassword();
      const server = await pigeonServer(t, { method, password });
      const local = await libevLocal(t, { method, password, serverPort: server.port });
      await tcpChecks(t, (port) => socks5Connect(local.port, '127.0.0.1', port));
    });

    test('ss-local -u → pigeon server: UDP via SOCKS5 UDP ASSOCIATE', T, async (t) => {
      const password = randomPassword();
      const uecho = await udpEcho(t);
      const server = await pigeonServer(t, { method, password });
      const local = await libevLocal(t, { method, password, serverPort: server.port, udp: true });
      const assoc = await socks5UdpAssociate(local.port);
      try {
        const payloads = distinctPayloads(UDP_SIZES);
        assert.deepEqual(await udpEchoViaSocks5(assoc, '127.0.0.1', uecho, payloads), payloads);
      } finally {
        await assoc.close(); // before the proxy is stopped
      }
    });

    test('ss-tunnel → pigeon server: TCP and UDP', T, async (t) => {
      const password = randomPassword();
      const echo = await tcpEcho(t);
      const uecho = await udpEcho(t);
      const server = await pigeonServer(t, { method, password });
      const tcpTunnel = await libevTunnel(t, {
        method,
        password,
        serverPort: server.port,
        targetPort: echo.port,
      });
      const data = randomBytes(BIG);
      assertSameBytes(
        await echoThrough(await tcpConnect(tcpTunnel.port), data),
        data,
        'TCP through ss-tunnel',
      );
      const udpTunnel = await libevTunnel(t, {
        method,
        password,
        serverPort: server.port,
        targetPort: uecho,
      });
      const payloads = distinctPayloads(UDP_SIZES);
      assert.deepEqual(await udpEchoVia(udpTunnel.port, payloads), payloads);
    });

    test('pigeon client → ss-server: TCP via SOCKS5 CONNECT', T, async (t) => {
      const password = randomPassword();
      const server = await libevServer(t, { method, password });
      const client = await pigeonClient(t, { uri: peerUri(method, password, server.port) });
      await tcpChecks(t, (port) => socks5Connect(client.port, '127.0.0.1', port));
    });

    test('pigeon client → ss-server: UDP via SOCKS5 UDP ASSOCIATE', T, async (t) => {
      const password = randomPassword();
      const uecho = await udpEcho(t);
      const server = await libevServer(t, { method, password });
      const client = await pigeonClient(t, { uri: peerUri(method, password, server.port) });
      const assoc = await socks5UdpAssociate(client.port);
      try {
        const payloads = distinctPayloads(UDP_SIZES);
        assert.deepEqual(await udpEchoViaSocks5(assoc, '127.0.0.1', uecho, payloads), payloads);
      } finally {
        await assoc.close(); // before the proxy is stopped
      }
    });

    test('pigeon client → ss-server: --forward TCP and UDP', T, async (t) => {
      const password = randomPassword();
      const echo = await tcpEcho(t);
      const uecho = await udpEcho(t);
      const server = await libevServer(t, { method, password });
      const [tcpLocal, udpLocal] = [await freePort('both'), await freePort('both')];
      await pigeonClient(t, {
        uri: peerUri(method, password, server.port),
        forwards: [forward(tcpLocal, echo.port), forward(udpLocal, uecho)],
      });
      const data = randomBytes(BIG);
      assertSameBytes(await echoThrough(await tcpConnect(tcpLocal), data), data, 'TCP through --forward');
      const payloads = distinctPayloads(UDP_SIZES);
      assert.deepEqual(await udpEchoVia(udpLocal, payloads), payloads);
    });
  });
}
