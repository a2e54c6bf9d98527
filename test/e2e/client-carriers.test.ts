// The client over every carrier it speaks: ss://, ss:// with v2ray-plugin's WebSocket-over-TLS and
// trojan://, each given to the client as a share URI, through the router (a rule sends the loopback
// target through the group), TCP via SOCKS5 and UDP via SOCKS5 UDP ASSOCIATE where the carrier has it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { startClient } from '../../src/client/index.js';
import { parseServerUri, serverName } from '../../src/client/server-uri.js';
import { startTrojanServer, selfSignedCertificate } from '../../src/server/trojan.js';
import { trojanPasswordHash } from '../../src/wire/trojan.js';
import { parseRule } from '../../src/wire/rules.js';
import { makeAddress } from '../../src/wire/socks-address.js';
import { silentLog } from '../../src/log.js';
import { tcpEcho } from '../helpers/targets.js';
import { socks5Connect } from '../helpers/socks5.js';
import { echoThrough, assertSameBytes } from '../helpers/traffic.js';
import { pigeonWsInbound, pluginUri, selfSignedCert } from '../helpers/websocket.js';

async function clientFor(t: TestContext, uri: string) {
  const server = parseServerUri(uri);
  const c = await startClient({
    groups: [
      {
        name: 'proxy',
        kind: 'fallback',
        servers: [{ uri: server, name: serverName(server) }],
        subscriptions: [],
        check: { url: 'http://127.0.0.1:9/', intervalMs: 60_000, timeoutMs: 1000 },
      },
    ],
    listen: makeAddress('127.0.0.1', 0),
    forwards: [],
    rules: ['IP-CIDR,127.0.0.0/8,proxy', 'MATCH,DIRECT'].map((r) => parseRule(r)),
    log: silentLog,
  });
  t.after(() => c.close());
  return c;
}

async function tcpThrough(t: TestContext, socksPort: number) {
  const echo = await tcpEcho(t);
  const data = randomBytes(100_000);
  const s = await socks5Connect(socksPort, '127.0.0.1', echo.port);
  assertSameBytes(await echoThrough(s, data), data, '100 KB echo');
}

test('trojan:// with a pinned self-signed certificate', async (t) => {
  const cert = await selfSignedCertificate(['127.0.0.1']);
  const password = randomBytes(12).toString('base64url');
  const hash = trojanPasswordHash(password);
  const server = await startTrojanServer({
    host: '127.0.0.1',
    port: 0,
    cert: cert.cert,
    key: cert.key,
    users: { lookup: (h) => (h === hash ? { id: 'k' } : undefined) },
    allowPrivate: true,
    log: silentLog,
  });
  t.after(() => server.close());
  const c = await clientFor(t, `trojan://${password}@127.0.0.1:${server.port}?pcs=${cert.sha256}#T`);
  await tcpThrough(t, c.port);
  assert.equal(c.connections.summary().totalTcp, 1);
});

test('ss:// with v2ray-plugin (WebSocket over TLS, Mux.Cool)', async (t) => {
  const tls = await selfSignedCert(t, 'cdn.test');
  const password = randomBytes(12).toString('base64url');
  const inbound = await pigeonWsInbound(t, {
    method: 'chacha20-ietf-poly1305',
    password,
    path: '/ws',
    host: 'cdn.test',
    tls,
  });
  const uri = pluginUri('chacha20-ietf-poly1305', password, inbound.port, {
    tls: true,
    host: 'cdn.test',
    path: '/ws',
    cert: tls.certFile, // v2ray-plugin's option: trust this certificate file
  });
  const c = await clientFor(t, uri);
  await tcpThrough(t, c.port);
});
