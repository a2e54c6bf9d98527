// Control runs of the interop harness with third-party peers only (no pigeon): ss-local and
// ss-tunnel against ss-server, v2ray against ss-server, ss-local against v2ray. When these pass and
// libev.test.ts or v2ray.test.ts fail, the fault is pigeon's, not the harness's or the peer's.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { tcpEcho, udpEcho } from '../helpers/targets.js';
import {
  libevLocal,
  libevServer,
  libevTunnel,
  randomPassword,
  SIP004_METHODS,
  v2rayServer,
  v2rayTunnel,
} from '../helpers/peers.js';
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

for (const method of SIP004_METHODS) {
  describe(`control: peers only, ${method}`, () => {
    test('ss-local → ss-server: TCP, target closing first, UDP ASSOCIATE', T, async (t) => {
      const password = randomPassword();
      const echo = await tcpEcho(t);
      const closing = await tcpEcho(t, { closeAfter: BIG });
      const uecho = await udpEcho(t);
      const server = await libevServer(t, { method, password });
      const local = await libevLocal(t, { method, password, serverPort: server.port, udp: true });
      const data = randomBytes(BIG);
      assertSameBytes(
        await echoThrough(await socks5Connect(local.port, '127.0.0.1', echo.port), data),
        data,
        'echo',
      );
      const open = await socks5Connect(local.port, '127.0.0.1', closing.port);
      assertSameBytes(await echoThrough(open, data, { until: 'peer-close' }), data, 'target closes first');
      const assoc = await socks5UdpAssociate(local.port);
      try {
        const payloads = distinctPayloads([1, 500, 1400]);
        assert.deepEqual(await udpEchoViaSocks5(assoc, '127.0.0.1', uecho, payloads), payloads);
      } finally {
        await assoc.close();
      }
    });

    test('ss-tunnel → ss-server: UDP', T, async (t) => {
      const password = randomPassword();
      const uecho = await udpEcho(t);
      const server = await libevServer(t, { method, password });
      const tunnel = await libevTunnel(t, { method, password, serverPort: server.port, targetPort: uecho });
      const payloads = distinctPayloads([1, 500, 1400]);
      assert.deepEqual(await udpEchoVia(tunnel.port, payloads), payloads);
    });

    test('v2ray → ss-server: TCP, half-close, UDP', T, async (t) => {
      const password = randomPassword();
      const echo = await tcpEcho(t);
      const uecho = await udpEcho(t);
      const server = await libevServer(t, { method, password });
      const v2 = await v2rayTunnel(t, {
        method,
        password,
        serverPort: server.port,
        tcpTarget: echo.port,
        udpTarget: uecho,
      });
      const data = randomBytes(BIG);
      assertSameBytes(await echoThrough(await tcpConnect(v2.tcpPort), data), data, 'echo');
      const half = await echoThrough(await tcpConnect(v2.tcpPort), data, { until: 'half-close' });
      assertSameBytes(half, data, 'echo after the client half-closed');
      const payloads = distinctPayloads([1, 500, 1400]);
      assert.deepEqual(await udpEchoVia(v2.udpPort, payloads), payloads);
    });

    test('ss-local → v2ray server: TCP and UDP ASSOCIATE', T, async (t) => {
      const password = randomPassword();
      const echo = await tcpEcho(t);
      const uecho = await udpEcho(t);
      const server = await v2rayServer(t, { method, password });
      const local = await libevLocal(t, { method, password, serverPort: server.port, udp: true });
      const data = randomBytes(BIG);
      assertSameBytes(
        await echoThrough(await socks5Connect(local.port, '127.0.0.1', echo.port), data),
        data,
        'echo',
      );
      const assoc = await socks5UdpAssociate(local.port);
      try {
        const payloads = distinctPayloads([1, 500, 1400]);
        assert.deepEqual(await udpEchoViaSocks5(assoc, '127.0.0.1', uecho, payloads), payloads);
      } finally {
        await assoc.close();
      }
    });
  });
}
