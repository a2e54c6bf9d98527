// Interop with v2ray 4 (Debian package v2ray), for each SIP004 method:
// (a) v2ray as a Shadowsocks client (dokodemo-door inbounds) → pigeon server → loopback targets, and
// (b) pigeon client → v2ray as a Shadowsocks server (freedom outbound) → loopback targets.
//
// v2ray does not pass a client's FIN on to the target: it closes the connection ~2 s after the
// uplink ended (its "uplinkOnly" policy), so the half-close checks take about 2 s each.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { tcpEcho, udpEcho } from '../helpers/targets.js';
import { randomPassword, SIP004_METHODS, v2rayMethod, v2rayServer, v2rayTunnel } from '../helpers/peers.js';
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

/** 200 KB echo; client half-closes and still gets every byte; the target closes first. */
async function tcpChecks(t: TestContext, open: (targetPort: number) => Promise<Socket>, echoPort?: number) {
  const port = echoPort ?? (await tcpEcho(t)).port;
  const data = randomBytes(BIG);
  assertSameBytes(await echoThrough(await open(port), data), data, '200 KB echo');
  const half = await echoThrough(await open(port), data, { until: 'half-close' });
  assertSameBytes(half, data, 'echo after the client half-closed');
  return data;
}

for (const method of SIP004_METHODS) {
  describe(`v2ray ↔ pigeon, ${method} (v2ray: ${v2rayMethod(method)})`, () => {
    test('v2ray (dokodemo-door) → pigeon server: TCP and UDP', T, async (t) => {
      const password = randomPassword();
      const echo = await tcpEcho(t);
      const uecho = await udpEcho(t);
      const server = await pigeonServer(t, { method, password });
      const v2 = await v2rayTunnel(t, {
        method,
        password,
        serverPort: server.port,
        tcpTarget: echo.port,
        udpTarget: uecho,
      });
      await tcpChecks(t, () => tcpConnect(v2.tcpPort), echo.port);
      const payloads = distinctPayloads(UDP_SIZES);
      assert.deepEqual(await udpEchoVia(v2.udpPort, payloads), payloads);
    });

    test('v2ray (dokodemo-door) → pigeon server: the target closes first', T, async (t) => {
      const password = randomPassword();
      const closing = await tcpEcho(t, { closeAfter: BIG });
      const uecho = await udpEcho(t);
      const server = await pigeonServer(t, { method, password });
      const v2 = await v2rayTunnel(t, {
        method,
        password,
        serverPort: server.port,
        tcpTarget: closing.port,
        udpTarget: uecho,
      });
      const data = randomBytes(BIG);
      assertSameBytes(
        await echoThrough(await tcpConnect(v2.tcpPort), data, { until: 'peer-close' }),
        data,
        'echo',
      );
    });

    test('pigeon client → v2ray server: TCP via SOCKS5 CONNECT', T, async (t) => {
      const password = randomPassword();
      const server = await v2rayServer(t, { method, password });
      const client = await pigeonClient(t, { uri: peerUri(method, password, server.port) });
      const open = (port: number) => socks5Connect(client.port, '127.0.0.1', port);
      const data = await tcpChecks(t, open);
      const closing = await tcpEcho(t, { closeAfter: BIG });
      assertSameBytes(
        await echoThrough(await open(closing.port), data, { until: 'peer-close' }),
        data,
        'target closes first',
      );
    });

    test('pigeon client → v2ray server: UDP via SOCKS5 UDP ASSOCIATE', T, async (t) => {
      const password = randomPassword();
      const uecho = await udpEcho(t);
      const server = await v2rayServer(t, { method, password });
      const client = await pigeonClient(t, { uri: peerUri(method, password, server.port) });
      const assoc = await socks5UdpAssociate(client.port);
      try {
        const payloads = distinctPayloads(UDP_SIZES);
        assert.deepEqual(await udpEchoViaSocks5(assoc, '127.0.0.1', uecho, payloads), payloads);
      } finally {
        await assoc.close(); // before the proxy is stopped
      }
    });

    test('pigeon client → v2ray server: --forward TCP and UDP', T, async (t) => {
      const password = randomPassword();
      const echo = await tcpEcho(t);
      const uecho = await udpEcho(t);
      const server = await v2rayServer(t, { method, password });
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
