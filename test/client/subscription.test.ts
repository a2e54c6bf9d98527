// Subscriptions feeding a server group: fetched from a local HTTP(S) server, refreshed when the content
// changes, the last good list kept on failure, and fetched through the tunnel when the direct fetch is
// refused or answered by a block page. Pigeon servers run in-process; loopback only.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import type { DialContext, Outbound, UdpTunnel } from '../../src/client/outbound.js';
import { ServerGroup } from '../../src/client/server-group.js';
import { ShadowsocksOutbound } from '../../src/client/shadowsocks-outbound.js';
import { SubscriptionFeed } from '../../src/client/subscription.js';
import { loadOrCreateCertificate } from '../../src/control/tls.js';
import type { Datagram } from '../../src/crypto/ss-udp.js';
import { DialError, dialDirect } from '../../src/net/dialer.js';
import { silentLog } from '../../src/log.js';
import { startServer } from '../../src/server/index.js';
import { formatSsUri, type SsUri } from '../../src/wire/sip002.js';
import { makeAddress, type Address } from '../../src/wire/socks-address.js';
import { tcpEcho } from '../helpers/targets.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function eventually(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (cond()) return true;
    await sleep(20);
  }
  return cond();
}

const METHOD = 'chacha20-ietf-poly1305';

/** An in-process Pigeon server on 127.0.0.1 (loopback destinations allowed). */
async function pigeon(t: TestContext, password: string): Promise<SsUri> {
  const server = await startServer({
    listen: makeAddress('127.0.0.1', 0),
    method: METHOD,
    password,
    allowPrivate: true,
    log: silentLog,
  });
  t.after(() => server.close());
  return { method: METHOD, password, host: '127.0.0.1', port: server.port, params: {} };
}

interface Provider {
  port: number;
  url: string;
  /** What GET /sub answers now. */
  body: string;
  status: number;
  requests: number;
}

/** A subscription provider: GET /sub → `body` (other paths 404). HTTPS when given a certificate. */
async function provider(t: TestContext, tls?: { key: string; cert: string }): Promise<Provider> {
  const p: Provider = { port: 0, url: '', body: '', status: 200, requests: 0 };
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.url !== '/sub') {
      res.writeHead(404);
      res.end();
      return;
    }
    p.requests++;
    res.writeHead(p.status, { 'content-type': 'text/plain' });
    res.end(p.body);
  };
  const server = tls ? createHttpsServer(tls, handler) : createHttpServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  p.port = (server.address() as { port: number }).port;
  p.url = `${tls ? 'https' : 'http'}://127.0.0.1:${p.port}/sub`;
  return p;
}

const sip008 = (servers: Array<[string, SsUri]>): string =>
  JSON.stringify({
    version: 1,
    servers: servers.map(([remarks, u]) => ({
      remarks,
      server: u.host,
      server_port: u.port,
      password: u.password,
      method: u.method,
    })),
  });

/** Counts the dials that go through a member, by destination port. */
class Counting implements Outbound {
  readonly dials: number[] = [];
  constructor(private readonly inner: Outbound) {}
  dialTcp(target: Address, ctx?: DialContext): Promise<Duplex> {
    this.dials.push(target.port);
    return this.inner.dialTcp(target, ctx);
  }
  openUdp(onReply: (d: Datagram) => void, ctx?: DialContext): UdpTunnel {
    return this.inner.openUdp(onReply, ctx);
  }
}

function newGroup(t: TestContext): ServerGroup {
  // The health URL is never reached in these tests: the group is not started.
  const group = new ServerGroup('sub', 'fallback', {
    check: { url: 'http://127.0.0.1:9/generate_204', intervalMs: 60_000, timeoutMs: 1000 },
    log: silentLog,
  });
  t.after(() => group.close());
  return group;
}

const names = (g: ServerGroup): string[] => g.status().members.map((m) => m.name);

async function echoThrough(out: Outbound, port: number): Promise<string> {
  const s = await out.dialTcp(makeAddress('127.0.0.1', port));
  try {
    return await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('echo timed out')), 3000);
      s.once('data', (d: Buffer) => {
        clearTimeout(timer);
        resolve(d.toString());
      });
      s.once('error', reject);
      s.write('hi');
    });
  } finally {
    s.destroy();
  }
}

describe('SubscriptionFeed', () => {
  test('fetched at start, refreshed when the content changes, the last good list kept on failure', async (t) => {
    const [s1, s2, echo] = await Promise.all([pigeon(t, 'one'), pigeon(t, 'two'), tcpEcho(t)]);
    const p = await provider(t);
    p.body = sip008([['First', s1]]);
    const group = newGroup(t);
    const made: SsUri[] = [];
    const feed = new SubscriptionFeed({
      url: p.url,
      intervalMs: 200,
      group,
      log: silentLog,
      timeoutMs: 2000,
      makeOutbound: (u) => (made.push(u), new ShadowsocksOutbound(u)),
    });
    t.after(() => feed.close());
    await feed.start();
    assert.equal(feed.lastPath, 'direct');
    assert.deepEqual(names(group), ['First']);
    assert.equal(await echoThrough(group, echo.port), 'hi');

    // The provider adds a server, as a base64 list this time (two with the same name).
    const lines = [`${formatSsUri({ ...s1, tag: 'First' })}`, formatSsUri({ ...s2, tag: 'First' })];
    p.body = Buffer.from(lines.join('\n')).toString('base64');
    assert.ok(await eventually(() => names(group).length === 2, 3000), 'no refresh');
    assert.deepEqual(names(group), ['First', 'First (2)']);
    assert.equal(made.length, 2, 'the unchanged server got a new outbound');
    const requests = p.requests;

    // A broken answer (a block page, then an error status) keeps the last good list.
    p.body = '<html><body>This site is blocked</body></html>';
    await assert.rejects(feed.refresh(), /direct: invalid subscription: got an HTML/);
    p.status = 503;
    await assert.rejects(feed.refresh(), /direct: HTTP 503/);
    assert.deepEqual(names(group), ['First', 'First (2)']);
    assert.ok(await eventually(() => p.requests > requests + 2, 3000), 'refreshes stopped after failures');

    // Fixed again: the server list follows.
    p.status = 200;
    p.body = sip008([['Second', s2]]);
    assert.ok(await eventually(() => names(group).join() === 'Second', 3000));
    assert.equal(await echoThrough(group, echo.port), 'hi');
    feed.close();
    const after = p.requests;
    await sleep(500);
    assert.equal(p.requests, after, 'fetched after close()');
  });

  test('when the direct fetch is refused, it goes through the group', async (t) => {
    const s1 = await pigeon(t, 'static');
    const s2 = await pigeon(t, 'from-sub');
    const p = await provider(t);
    p.body = sip008([['Sub server', s2]]);
    const group = newGroup(t);
    const staticMember = new Counting(new ShadowsocksOutbound(s1));
    group.setMembers([{ name: 'Static', outbound: staticMember }]);
    let directTries = 0;
    const feed = new SubscriptionFeed({
      url: p.url,
      intervalMs: 60_000,
      group,
      log: silentLog,
      timeoutMs: 2000,
      makeOutbound: (u) => new ShadowsocksOutbound(u),
      directDial: () => {
        directTries++;
        return Promise.reject(new DialError('refused', 'connect failed: ECONNREFUSED'));
      },
    });
    t.after(() => feed.close());
    await feed.start();
    assert.equal(directTries, 1);
    assert.equal(feed.lastPath, 'tunnel');
    assert.deepEqual(staticMember.dials, [p.port], 'the fetch did not go through the group');
    assert.equal(p.requests, 1);
    assert.deepEqual(names(group), ['Static', 'Sub server']); // the static member stays
  });

  test('a block page on the direct path is not taken for the subscription: fetched through the group', async (t) => {
    const s1 = await pigeon(t, 'static');
    const p = await provider(t);
    p.body = sip008([['Real', s1]]);
    const censor = await provider(t); // what the direct path reaches instead: a block page
    censor.body = '<html>blocked</html>';
    const group = newGroup(t);
    const member = new Counting(new ShadowsocksOutbound(s1));
    group.setMembers([{ name: 'Static', outbound: member }]);
    const feed = new SubscriptionFeed({
      url: p.url,
      intervalMs: 60_000,
      group,
      log: silentLog,
      timeoutMs: 2000,
      makeOutbound: (u) => new ShadowsocksOutbound(u),
      directDial: () =>
        dialDirect(makeAddress('127.0.0.1', censor.port), {
          allowPrivate: true,
          connectTimeoutMs: 1000,
        }),
    });
    t.after(() => feed.close());
    await feed.start();
    assert.equal(censor.requests, 1);
    assert.equal(feed.lastPath, 'tunnel');
    assert.deepEqual(names(group), ['Static', 'Real']);
  });

  test('the first fetch failing both ways rejects start() with both reasons, and it retries', async (t) => {
    const group = newGroup(t);
    const p = await provider(t);
    p.status = 404;
    const feed = new SubscriptionFeed({
      url: p.url,
      intervalMs: 60_000,
      retryMs: 200,
      group,
      log: silentLog,
      timeoutMs: 1000,
      makeOutbound: (u) => new ShadowsocksOutbound(u),
    });
    t.after(() => feed.close());
    await assert.rejects(
      feed.start(),
      /direct: HTTP 404 from 127\.0\.0\.1:\d+; through the tunnel: .*has no servers/,
    );
    assert.deepEqual(names(group), []);
    const s1 = await pigeon(t, 'late');
    p.status = 200;
    p.body = sip008([['Late', s1]]);
    assert.ok(await eventually(() => names(group).length === 1, 3000), 'no retry after a failed start');
  });

  test('servers that need a SIP003 plugin are skipped; only such servers is an error', async (t) => {
    const p = await provider(t);
    const group = newGroup(t);
    const doc = (plugin: boolean, extra = false) =>
      JSON.stringify({
        servers: [
          {
            remarks: 'obfs',
            server: '127.0.0.1',
            server_port: 1,
            password: 'x',
            method: METHOD,
            ...(plugin ? { plugin: 'obfs-local', plugin_opts: 'obfs=http' } : {}),
          },
          ...(extra
            ? [{ remarks: 'plain', server: '127.0.0.1', server_port: 2, password: 'x', method: METHOD }]
            : []),
        ],
      });
    p.body = doc(true);
    const feed = new SubscriptionFeed({
      url: p.url,
      intervalMs: 60_000,
      group,
      log: silentLog,
      timeoutMs: 1000,
      makeOutbound: (u) => new ShadowsocksOutbound(u),
    });
    t.after(() => feed.close());
    await assert.rejects(feed.start(), /1 need a SIP003 plugin, which Pigeon does not run/);
    p.body = doc(true, true);
    await feed.refresh();
    assert.deepEqual(names(group), ['plain']);
  });

  test("ssconf:// (Outline's dynamic key): https with the server's own certificate, named by the fragment", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'pigeon-sub-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    // A host name, not 127.0.0.1: httpRequestVia checks an IP literal's certificate against "localhost"
    // (it passes no `host` to tls.connect), so an IP-only certificate fails there today.
    const cert = await loadOrCreateCertificate(dir, 'localhost');
    const p = await provider(t, cert);
    const s1 = await pigeon(t, 'outline');
    p.body = JSON.stringify({
      server: s1.host,
      server_port: s1.port,
      password: s1.password,
      method: s1.method,
    });
    const group = newGroup(t);
    const ssconf = `ssconf://localhost:${p.port}/sub#My%20Outline%20server`;
    const untrusted = new SubscriptionFeed({
      url: ssconf,
      intervalMs: 60_000,
      group,
      log: silentLog,
      timeoutMs: 2000,
      makeOutbound: (u) => new ShadowsocksOutbound(u),
    });
    t.after(() => untrusted.close());
    await assert.rejects(untrusted.start(), /self[- ]signed|certificate/i);
    untrusted.close();

    const feed = new SubscriptionFeed({
      url: ssconf,
      intervalMs: 60_000,
      group,
      log: silentLog,
      ca: cert.cert,
      timeoutMs: 2000,
      makeOutbound: (u) => new ShadowsocksOutbound(u),
    });
    t.after(() => feed.close());
    await feed.start();
    assert.deepEqual(names(group), ['My Outline server']);
  });

  test('a URL that is not http(s) or ssconf is refused at once', (t) => {
    const group = newGroup(t);
    assert.throws(
      () =>
        new SubscriptionFeed({
          url: 'ftp://example.com/sub',
          intervalMs: 1000,
          group,
          log: silentLog,
          makeOutbound: (u) => new ShadowsocksOutbound(u),
        }),
      /must start with https:\/\/, http:\/\/ or ssconf:\/\//,
    );
  });
});
