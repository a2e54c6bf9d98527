// Interop of the WebSocket carrier with real peers, TLS with a self-signed certificate, on loopback:
// (1) ss-local + Debian's ss-v2ray-plugin (client, default options: Mux.Cool on) → Pigeon's WebSocket
//     inbound → loopback echo, for each SIP004 method; and with `mux=0` over plain HTTP;
// (2) Pigeon's WebSocketOutbound → ss-server + ss-v2ray-plugin (`server;tls;…`) → echo, for each
//     method; and both sides with `mux=0`;
// (3) v2ray's own shadowsocks outbound over its ws+tls transport (dokodemo-door in front) → Pigeon's
//     inbound → echo; and Pigeon's outbound (`mux=0`) → v2ray's shadowsocks inbound over ws+tls.
// Plus UDP: v2ray-plugin carries none, so the outbound sends plain Shadowsocks UDP to the server's
// port, where ss-server (`-u`) takes it, as ss-local does.
// A missing peer program fails the test (requireBinary), in CI and locally alike.
//
// Mux.Cool ends a session in both directions at once (as libev does with a FIN), so the close case
// checked is the one that works everywhere: the target echoes and closes first, and every byte must
// arrive before the end of the stream.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { WebSocketOutbound } from '../../src/client/websocket-outbound.js';
import { parseSsUri } from '../../src/wire/sip002.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { randomPassword, SIP004_METHODS, v2ray, v2rayMethod, type Sip004Method } from '../helpers/peers.js';
import { freePort, retryOnAddressInUse } from '../helpers/ports.js';
import { socks5Connect } from '../helpers/socks5.js';
import { tcpEcho, udpEcho } from '../helpers/targets.js';
import { assertSameBytes, distinctPayloads, tcpConnect, udpEchoRoundTrips } from '../helpers/traffic.js';
import {
  echoDuplex,
  libevPluginLocal,
  libevPluginServer,
  pigeonWsInbound,
  pluginUri,
  selfSignedCert,
} from '../helpers/websocket.js';

const T = { timeout: 60_000 };
const HOST = 'cdn.pigeon.test';
const BIG = 200 * 1024;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Targets {
  echo: number;
  /** Echoes BIG bytes, then closes. */
  closing: number;
}

async function targets(t: TestContext): Promise<Targets> {
  return { echo: (await tcpEcho(t)).port, closing: (await tcpEcho(t, { closeAfter: BIG })).port };
}

/** A 200 KB echo, 4 parallel echoes, and a target that closes first, through `open(targetPort)`. */
async function tcpChecks(
  t: TestContext,
  open: (targetPort: number) => Promise<Duplex>,
  to?: Targets,
): Promise<void> {
  const { echo, closing } = to ?? (await targets(t));
  const data = randomBytes(BIG);
  assertSameBytes(await echoDuplex(await open(echo), data), data, '200 KB echo');

  const parallel = [0, 1, 2, 3].map(() => randomBytes(50_000));
  const results = await Promise.all(parallel.map(async (d) => echoDuplex(await open(echo), d)));
  results.forEach((r, i) => assertSameBytes(r, parallel[i]!, `parallel echo ${i}`));

  const got = await echoDuplex(await open(closing), data, { untilEnd: true });
  assertSameBytes(got, data, 'echo that closes first');
}

function outbound(method: string, password: string, port: number, opts: Record<string, string | true>) {
  return new WebSocketOutbound(parseSsUri(pluginUri(method, password, port, opts)), {
    connectTimeoutMs: 10_000,
    headerDelayMs: 50,
  });
}

for (const method of SIP004_METHODS) {
  describe(`v2ray-plugin ↔ pigeon, ${method}`, () => {
    test('ss-local + ss-v2ray-plugin (tls, default mux) → pigeon WebSocket inbound', T, async (t) => {
      const password = randomPassword();
      const cert = await selfSignedCert(t, HOST);
      const inbound = await pigeonWsInbound(t, { method, password, path: '/ws', host: HOST, tls: cert });
      const local = await libevPluginLocal(t, {
        method,
        password,
        serverPort: inbound.port,
        pluginOpts: `tls;host=${HOST};path=/ws;cert=${cert.certFile};loglevel=warning`,
      });
      await tcpChecks(t, (port) => socks5Connect(local.port, '127.0.0.1', port));
    });

    test('pigeon WebSocketOutbound (tls, default mux) → ss-server + ss-v2ray-plugin', T, async (t) => {
      const password = randomPassword();
      const cert = await selfSignedCert(t, HOST);
      const server = await libevPluginServer(t, {
        method,
        password,
        pluginOpts: `server;tls;host=${HOST};path=/ws;cert=${cert.certFile};key=${cert.keyFile}`,
      });
      const out = outbound(method, password, server.port, {
        tls: true,
        host: HOST,
        path: '/ws',
        cert: cert.certFile,
      });
      await tcpChecks(t, (port) => out.dialTcp(makeAddress('127.0.0.1', port)));
    });
  });
}

describe('v2ray-plugin with mux=0, over plain HTTP', () => {
  const method: Sip004Method = 'aes-256-gcm';

  test('ss-local + ss-v2ray-plugin (mux=0) → pigeon WebSocket inbound', T, async (t) => {
    const password = randomPassword();
    const inbound = await pigeonWsInbound(t, { method, password, path: '/plain' });
    const local = await libevPluginLocal(t, {
      method,
      password,
      serverPort: inbound.port,
      pluginOpts: `host=${HOST};path=/plain;mux=0`,
    });
    await tcpChecks(t, (port) => socks5Connect(local.port, '127.0.0.1', port));
  });

  test('pigeon WebSocketOutbound (mux=0) → ss-server + ss-v2ray-plugin (mux=0)', T, async (t) => {
    const password = randomPassword();
    const server = await libevPluginServer(t, {
      method,
      password,
      pluginOpts: `server;host=${HOST};path=/plain;mux=0`,
    });
    const out = outbound(method, password, server.port, { host: HOST, path: '/plain', mux: '0' });
    await tcpChecks(t, (port) => out.dialTcp(makeAddress('127.0.0.1', port)));
  });
});

test('UDP beside the plugin: openUdp sends plain Shadowsocks UDP to the port of ss-server', T, async (t) => {
  const method: Sip004Method = 'aes-128-gcm';
  const password = randomPassword();
  const uecho = await udpEcho(t);
  const server = await libevPluginServer(t, {
    method,
    password,
    pluginOpts: `server;host=${HOST};path=/ws`,
    udp: true,
  });
  const out = outbound(method, password, server.port, { host: HOST, path: '/ws' });
  const queue: Buffer[] = [];
  const tunnel = out.openUdp((d) => queue.push(d.payload));
  t.after(() => tunnel.close());
  const receive = async (ms: number): Promise<Buffer> => {
    const deadline = Date.now() + ms;
    for (let i = 0; i < 1000 && queue.length === 0 && Date.now() < deadline; i++) await sleep(5);
    const d = queue.shift();
    if (!d) throw new Error('timeout');
    return d;
  };
  const payloads = distinctPayloads([1, 64, 512, 1400]);
  const to = makeAddress('127.0.0.1', uecho);
  assert.deepEqual(
    await udpEchoRoundTrips((payload) => tunnel.send({ address: to, payload }), receive, payloads),
    payloads,
  );
});

describe("v2ray's ws transport ↔ pigeon", () => {
  const method: Sip004Method = 'chacha20-ietf-poly1305';

  test('v2ray shadowsocks outbound over ws+tls → pigeon WebSocket inbound', T, async (t) => {
    const password = randomPassword();
    const cert = await selfSignedCert(t, HOST);
    const inbound = await pigeonWsInbound(t, { method, password, path: '/v2', host: HOST, tls: cert });
    const to = await targets(t);
    const doors = await retryOnAddressInUse(async () => {
      const ports = [await freePort('tcp'), await freePort('tcp')];
      const door = (port: number, target: number) => ({
        listen: '127.0.0.1',
        port,
        protocol: 'dokodemo-door',
        settings: { address: '127.0.0.1', port: target, network: 'tcp' },
      });
      const server = { address: '127.0.0.1', port: inbound.port, method: v2rayMethod(method), password };
      await v2ray(
        t,
        {
          inbounds: [door(ports[0]!, to.echo), door(ports[1]!, to.closing)],
          outbounds: [
            {
              protocol: 'shadowsocks',
              settings: { servers: [server] },
              streamSettings: {
                network: 'ws',
                security: 'tls',
                wsSettings: { path: '/v2', headers: { Host: HOST } },
                tlsSettings: { allowInsecure: true, serverName: HOST },
              },
            },
          ],
        },
        { tcp: ports },
      );
      return ports;
    });
    // Each dokodemo-door leads to one target.
    await tcpChecks(t, (target) => tcpConnect(target === to.echo ? doors[0]! : doors[1]!), to);
  });

  test('pigeon WebSocketOutbound (mux=0) → v2ray shadowsocks inbound over ws+tls', T, async (t) => {
    const password = randomPassword();
    const cert = await selfSignedCert(t, HOST);
    const port = await retryOnAddressInUse(async () => {
      const p = await freePort('tcp');
      await v2ray(
        t,
        {
          inbounds: [
            {
              listen: '127.0.0.1',
              port: p,
              protocol: 'shadowsocks',
              settings: { method: v2rayMethod(method), password, network: 'tcp' },
              streamSettings: {
                network: 'ws',
                security: 'tls',
                wsSettings: { path: '/v2' },
                tlsSettings: { certificates: [{ certificateFile: cert.certFile, keyFile: cert.keyFile }] },
              },
            },
          ],
          outbounds: [{ protocol: 'freedom' }],
        },
        { tcp: [p] },
      );
      return p;
    });
    const out = outbound(method, password, port, {
      tls: true,
      host: HOST,
      path: '/v2',
      mux: '0',
      cert: cert.certFile,
    });
    await tcpChecks(t, (target) => out.dialTcp(makeAddress('127.0.0.1', target)));
  });
});
