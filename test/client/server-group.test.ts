// Server groups: the choice per kind (fallback, url-test with tolerance, select), failover within the
// same dial (refused, slow), health checks (periodic, never overlapping, re-checks of down members),
// UDP tunnels that follow the current member, and failover between two real `pigeon server`
// processes when one is killed mid-use. Loopback only.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { DirectOutbound } from '../../src/client/direct-outbound.js';
import type { DialContext, Outbound, UdpTunnel } from '../../src/client/outbound.js';
import { ServerGroup, type GroupKind, type GroupMember } from '../../src/client/server-group.js';
import { ShadowsocksOutbound } from '../../src/client/shadowsocks-outbound.js';
import type { Datagram } from '../../src/crypto/ss-udp.js';
import { DialError } from '../../src/net/dialer.js';
import { silentLog } from '../../src/log.js';
import { parseSsUri } from '../../src/wire/sip002.js';
import { makeAddress, type Address } from '../../src/wire/socks-address.js';
import { pigeonServer } from '../helpers/pigeon.js';
import { tcpEcho, udpEcho } from '../helpers/targets.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 20 ms for at most `ms`; returns whether it became true. */
async function eventually(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (cond()) return true;
    await sleep(20);
  }
  return cond();
}

interface HealthTarget {
  url: string;
  port: number;
  requests(): number;
}

/** `GET /generate_204` → 204 on 127.0.0.1, as cp.cloudflare.com answers. */
async function healthTarget(t: TestContext): Promise<HealthTarget> {
  let requests = 0;
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    requests++;
    res.writeHead(req.url === '/generate_204' ? 204 : 404);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(
    () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  );
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/generate_204`, port, requests: () => requests };
}

type Mode = 'up' | 'refuse' | 'hang';

/** A member whose behaviour a test sets: up (direct to loopback, after `delayMs`), refusing, or hanging. */
class FakeServer implements Outbound {
  mode: Mode = 'up';
  delayMs = 0;
  /** UDP datagrams are dropped instead of delivered (a dead server, seen from UDP). */
  udpDead = false;
  /** How long a 'hang' dial takes to time out. */
  hangMs = 3000;
  readonly dials: Address[] = [];
  udpOpened = 0;
  udpClosed = 0;
  udpSent = 0;
  inFlight = 0;
  maxInFlight = 0;
  private readonly direct = new DirectOutbound(2000);

  async dialTcp(target: Address): Promise<Duplex> {
    this.dials.push(target);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.mode === 'refuse') throw new DialError('refused', 'connect failed: ECONNREFUSED');
      if (this.mode === 'hang') {
        await sleep(this.hangMs); // as a black-holed server: the connect times out
        throw new DialError('timeout', `connect timed out after ${this.hangMs} ms`);
      }
      if (this.delayMs) await sleep(this.delayMs);
      return await this.direct.dialTcp(target);
    } finally {
      this.inFlight--;
    }
  }

  dialsTo(port: number): number {
    return this.dials.filter((a) => a.port === port).length;
  }

  openUdp(onReply: (d: Datagram) => void): UdpTunnel {
    this.udpOpened++;
    const inner = this.direct.openUdp(onReply);
    return {
      send: (d) => {
        this.udpSent++;
        if (!this.udpDead) inner.send(d);
      },
      close: () => {
        this.udpClosed++;
        inner.close();
      },
    };
  }
}

function makeGroup(
  t: TestContext,
  kind: GroupKind,
  health: HealthTarget,
  n: number,
  o: { failoverDelayMs?: number; toleranceMs?: number; intervalMs?: number; timeoutMs?: number } = {},
): { group: ServerGroup; servers: FakeServer[] } {
  const group = new ServerGroup('g', kind, {
    check: { url: health.url, intervalMs: o.intervalMs ?? 60_000, timeoutMs: o.timeoutMs ?? 1000 },
    log: silentLog,
    ...(o.failoverDelayMs !== undefined ? { failoverDelayMs: o.failoverDelayMs } : {}),
    ...(o.toleranceMs !== undefined ? { toleranceMs: o.toleranceMs } : {}),
  });
  t.after(() => group.close());
  const servers = Array.from({ length: n }, () => new FakeServer());
  group.setMembers(servers.map((s, i) => ({ name: String.fromCharCode(65 + i), outbound: s })));
  return { group, servers };
}

/** Dials through `out` (or uses `s`), writes `text` and reads it back from the echo. */
async function echoOnce(
  out: Outbound,
  port: number,
  text = 'ping',
  timeoutMs = 2000,
  ctx?: DialContext,
): Promise<string> {
  const s = await out.dialTcp(makeAddress('127.0.0.1', port), ctx);
  try {
    return await new Promise<string>((resolve, reject) => {
      let got = '';
      const timer = setTimeout(() => reject(new Error(`echo timed out with "${got}"`)), timeoutMs);
      s.on('data', (d: Buffer) => {
        got += d.toString();
        if (got.length >= text.length) {
          clearTimeout(timer);
          resolve(got);
        }
      });
      s.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      s.write(text);
    });
  } finally {
    s.destroy();
  }
}

describe('choice per kind', () => {
  test('fallback: the first alive member, in order; back to it when it recovers', async (t) => {
    const health = await healthTarget(t);
    const { group, servers } = makeGroup(t, 'fallback', health, 3);
    const changes: Array<string | undefined> = [];
    group.onChange((c) => changes.push(c));
    assert.equal(group.current()?.name, 'A'); // before any check, members count as alive

    servers[0]!.mode = 'refuse';
    servers[1]!.mode = 'refuse';
    await group.checkNow();
    assert.equal(group.current()?.name, 'C');
    assert.equal(changes.at(-1), 'C');
    changes.length = 0;
    const st = group.status();
    assert.deepEqual(
      st.members.map((m) => [m.name, m.alive]),
      [
        ['A', false],
        ['B', false],
        ['C', true],
      ],
    );
    assert.match(st.members[0]!.lastError!, /ECONNREFUSED/);
    assert.equal(typeof st.members[2]!.latencyMs, 'number');
    assert.equal(typeof st.members[2]!.lastCheck, 'number');

    servers[1]!.mode = 'up';
    await group.checkNow();
    assert.equal(group.current()?.name, 'B');
    servers[0]!.mode = 'up';
    await group.checkNow();
    assert.equal(group.current()?.name, 'A');
    assert.deepEqual(changes, ['B', 'A']); // one change per round, no flapping within a round
    await group.checkNow();
    assert.deepEqual(changes, ['B', 'A']);
    const st2 = group.status();
    assert.deepEqual([st2.name, st2.kind, st2.current], ['g', 'fallback', 'A']);
  });

  test('url-test: the lowest latency, kept within the tolerance, switched beyond it', async (t) => {
    const health = await healthTarget(t);
    const { group, servers } = makeGroup(t, 'url-test', health, 3, { toleranceMs: 150 });
    const [a, b, c] = servers as [FakeServer, FakeServer, FakeServer];
    a.delayMs = 400;
    b.delayMs = 0;
    c.delayMs = 200;
    await group.checkNow();
    assert.equal(group.current()?.name, 'B');
    const lat = Object.fromEntries(group.status().members.map((m) => [m.name, m.latencyMs!]));
    assert.ok(lat.A! >= 400 && lat.C! >= 200 && lat.B! < 200, JSON.stringify(lat));

    // C is now faster than B, but by less than the tolerance: no flapping.
    b.delayMs = 60;
    c.delayMs = 0;
    await group.checkNow();
    assert.equal(group.current()?.name, 'B');

    // B gets much slower: the fastest (C) takes over.
    b.delayMs = 500;
    await group.checkNow();
    assert.equal(group.current()?.name, 'C');

    // C dies: the next fastest alive member, not a dead one.
    c.mode = 'refuse';
    await group.checkNow();
    assert.equal(group.current()?.name, 'A');
  });

  test('select: the first by default, the choice when made, and never an automatic switch', async (t) => {
    const health = await healthTarget(t);
    const echo = await tcpEcho(t);
    const { group, servers } = makeGroup(t, 'select', health, 2);
    assert.equal(group.current()?.name, 'A');
    servers[0]!.mode = 'refuse';
    await group.checkNow();
    assert.equal(group.current()?.name, 'A'); // health is shown, but the user's choice stays
    assert.equal(group.status().members[0]!.alive, false);
    await assert.rejects(
      echoOnce(group, echo.port),
      (e: unknown) => e instanceof DialError && e.kind === 'refused',
    );
    assert.equal(servers[1]!.dialsTo(echo.port), 0);

    group.select('B');
    assert.equal(group.current()?.name, 'B');
    assert.equal(await echoOnce(group, echo.port), 'ping');
    assert.throws(() => group.select('Z'), /no server named "Z" \(it has: A, B\)/);

    const fallback = makeGroup(t, 'fallback', health, 1).group;
    assert.throws(() => fallback.select('A'), /fallback group and chooses by itself/);
  });

  test('setMembers keeps the state of members with the same name; names are made unique', async (t) => {
    const health = await healthTarget(t);
    const { group, servers } = makeGroup(t, 'select', health, 2);
    servers[0]!.mode = 'refuse';
    await group.checkNow();
    group.select('B');
    const extra = new FakeServer();
    group.setMembers([
      { name: 'A', outbound: servers[0]! },
      { name: 'B', outbound: servers[1]! },
      { name: 'B', outbound: extra },
    ]);
    assert.deepEqual(
      group.status().members.map((m) => [m.name, m.alive]),
      [
        ['A', false],
        ['B', true],
        ['B (2)', true],
      ],
    );
    assert.equal(group.current()?.name, 'B');
    group.setMembers([{ name: 'C', outbound: extra }]); // the chosen one is gone: the first
    assert.equal(group.current()?.name, 'C');
  });

  test('sources: a subscription replaces only its own members', async (t) => {
    const health = await healthTarget(t);
    const { group, servers } = makeGroup(t, 'fallback', health, 1);
    const s1 = new FakeServer();
    const s2 = new FakeServer();
    group.setSourceMembers('sub', [{ name: 'S1', outbound: s1 }]);
    assert.deepEqual(
      group.status().members.map((m) => m.name),
      ['A', 'S1'],
    );
    group.setSourceMembers('sub', [
      { name: 'S2', outbound: s2 },
      { name: 'A', outbound: s1 },
    ]);
    assert.deepEqual(
      group.status().members.map((m) => m.name),
      ['A', 'S2', 'A (2)'],
    );
    assert.equal(group.current()?.outbound, servers[0]);
  });
});

describe('failover within a dial', () => {
  test('a refused dial marks the member down at once and the same dial succeeds on the next', async (t) => {
    const health = await healthTarget(t);
    const echo = await tcpEcho(t);
    const { group, servers } = makeGroup(t, 'fallback', health, 3);
    const changes: Array<string | undefined> = [];
    group.onChange((c) => changes.push(c));
    servers[0]!.mode = 'refuse';
    const started = Date.now();
    assert.equal(await echoOnce(group, echo.port), 'ping');
    assert.ok(Date.now() - started < 1000);
    assert.equal(servers[0]!.dialsTo(echo.port), 1);
    assert.equal(servers[1]!.dialsTo(echo.port), 1);
    assert.equal(group.current()?.name, 'B');
    assert.deepEqual(changes, ['B']);
    assert.equal(group.status().members[0]!.alive, false);
    // ...and it was re-checked in the background (the health check also went to A).
    assert.ok(await eventually(() => servers[0]!.dialsTo(health.port) >= 1, 2000));
    // The next connection goes straight to B.
    assert.equal(await echoOnce(group, echo.port), 'ping');
    assert.equal(servers[0]!.dialsTo(echo.port), 1);
  });

  test('a member slower than failoverDelayMs races the next one, and is checked (and marked down)', async (t) => {
    const health = await healthTarget(t);
    const echo = await tcpEcho(t);
    const { group, servers } = makeGroup(t, 'fallback', health, 2, { failoverDelayMs: 300, timeoutMs: 500 });
    servers[0]!.mode = 'hang';
    const started = Date.now();
    assert.equal(await echoOnce(group, echo.port), 'ping');
    const took = Date.now() - started;
    assert.ok(took >= 250 && took < 1500, `took ${took} ms`);
    assert.equal(servers[1]!.dialsTo(echo.port), 1);
    // The hanging member's health check times out after 500 ms: down well within 5 s.
    assert.ok(await eventually(() => group.current()?.name === 'B', 3000));
    assert.match(group.status().members[0]!.lastError!, /timed out/);
  });

  test('when every member fails, one DialError names them all', async (t) => {
    const health = await healthTarget(t);
    const { group, servers } = makeGroup(t, 'fallback', health, 2);
    for (const s of servers) s.mode = 'refuse';
    await assert.rejects(
      group.dialTcp(makeAddress('127.0.0.1', 9)),
      (e: unknown) =>
        e instanceof DialError &&
        e.kind === 'refused' &&
        /no server of group "g" could connect \(A: .*ECONNREFUSED; B: .*ECONNREFUSED\)/.test(e.message),
    );
    const empty = new ServerGroup('empty', 'fallback', {
      check: { url: health.url, intervalMs: 1000, timeoutMs: 100 },
      log: silentLog,
    });
    await assert.rejects(empty.dialTcp(makeAddress('127.0.0.1', 9)), /has no servers/);
    empty.close();
    await assert.rejects(empty.dialTcp(makeAddress('127.0.0.1', 9)), /is closed/);
  });
});

describe('health checks', () => {
  test('periodic rounds never overlap, and a down member is re-checked until it is back', async (t) => {
    const health = await healthTarget(t);
    const { group, servers } = makeGroup(t, 'fallback', health, 2, { intervalMs: 100, timeoutMs: 400 });
    servers[0]!.mode = 'hang'; // each check of A takes ~390 ms, much longer than the interval
    servers[0]!.hangMs = 390;
    group.start();
    assert.ok(await eventually(() => group.status().members[0]!.lastCheck !== undefined, 3000));
    await sleep(1000);
    assert.equal(servers[0]!.maxInFlight, 1, 'two checks of one member at once');
    assert.equal(servers[1]!.maxInFlight, 1, 'two checks of one member at once');
    const rounds = servers[1]!.dialsTo(health.port);
    assert.ok(rounds >= 2 && rounds <= 5, `B checked ${rounds} times in ~1.4 s with 400 ms rounds`);
    assert.equal(group.current()?.name, 'B');
    servers[0]!.mode = 'up';
    assert.ok(await eventually(() => group.current()?.name === 'A', 3000));
    group.close();
    const after = health.requests();
    await sleep(300);
    assert.equal(health.requests(), after, 'checks after close()');
  });

  test('a health check that answers an error status marks the member down', async (t) => {
    const health = await healthTarget(t);
    const group = new ServerGroup('g', 'fallback', {
      check: { url: `http://127.0.0.1:${health.port}/other`, intervalMs: 60_000, timeoutMs: 1000 },
      log: silentLog,
    });
    t.after(() => group.close());
    group.setMembers([{ name: 'A', outbound: new FakeServer() }]);
    await group.checkNow();
    assert.deepEqual(group.status().members[0]!.alive, false);
    assert.match(group.status().members[0]!.lastError!, /HTTP 404/);
  });
});

describe('UDP through a group', () => {
  function collector(): { got: string[]; onReply: (d: Datagram) => void } {
    const got: string[] = [];
    return { got, onReply: (d) => got.push(d.payload.toString()) };
  }

  test('a tunnel moves to the new current member on its next datagram', async (t) => {
    const health = await healthTarget(t);
    const echo = await tcpEcho(t);
    const udp = await udpEcho(t);
    const { group, servers } = makeGroup(t, 'fallback', health, 2);
    const { got, onReply } = collector();
    const tunnel = group.openUdp(onReply);
    const to = makeAddress('127.0.0.1', udp);
    tunnel.send({ address: to, payload: Buffer.from('one') });
    assert.ok(await eventually(() => got.includes('one'), 2000));
    assert.equal(servers[0]!.udpOpened, 1);

    servers[0]!.mode = 'refuse';
    assert.equal(await echoOnce(group, echo.port), 'ping'); // a TCP dial finds A down
    tunnel.send({ address: to, payload: Buffer.from('two') });
    assert.ok(await eventually(() => got.includes('two'), 2000));
    assert.equal(servers[1]!.udpOpened, 1);
    assert.equal(servers[0]!.udpClosed, 1);
    tunnel.close();
    assert.equal(servers[1]!.udpClosed, 1);
  });

  test('datagrams without replies for 2 s make the member be re-checked, and UDP fails over', async (t) => {
    const health = await healthTarget(t);
    const udp = await udpEcho(t);
    const { group, servers } = makeGroup(t, 'fallback', health, 2);
    const { got, onReply } = collector();
    const tunnel = group.openUdp(onReply);
    t.after(() => tunnel.close());
    const to = makeAddress('127.0.0.1', udp);
    // A dies; only UDP is in use, so nothing else notices.
    servers[0]!.mode = 'refuse';
    servers[0]!.udpDead = true;
    const started = Date.now();
    for (let i = 0; i < 50 && !got.length && Date.now() - started < 5000; i++) {
      tunnel.send({ address: to, payload: Buffer.from(`n${i}`) });
      await sleep(200);
    }
    assert.ok(got.length > 0, 'no reply within 5 s');
    assert.ok(Date.now() - started < 5000);
    assert.equal(group.current()?.name, 'B');
    assert.ok(servers[0]!.dialsTo(health.port) >= 1);
  });
});

// ---- two real `pigeon server` processes; one is killed (SIGKILL) mid-use

class Counting implements Outbound {
  tcpOk = 0;
  udpOpened = 0;
  constructor(
    private readonly inner: Outbound,
    private readonly port: number,
  ) {}
  async dialTcp(target: Address, ctx?: DialContext): Promise<Duplex> {
    const s = await this.inner.dialTcp(target, ctx);
    if (target.port === this.port) this.tcpOk++;
    return s;
  }
  openUdp(onReply: (d: Datagram) => void, ctx?: DialContext): UdpTunnel {
    this.udpOpened++;
    return this.inner.openUdp(onReply, ctx);
  }
}

test('failover between two pigeon servers when the one in use is killed', { timeout: 90_000 }, async (t) => {
  const [health, echo, udp] = await Promise.all([healthTarget(t), tcpEcho(t), udpEcho(t)]);
  const method = 'chacha20-ietf-poly1305';
  const password = 'failover-test-password';
  const [a, b] = await Promise.all([
    pigeonServer(t, { method, password }),
    pigeonServer(t, { method, password }),
  ]);
  const opts = { connectTimeoutMs: 2000, headerDelayMs: 50 };
  const viaA = new Counting(new ShadowsocksOutbound(parseSsUri(a.uri), opts), echo.port);
  const viaB = new Counting(new ShadowsocksOutbound(parseSsUri(b.uri), opts), echo.port);
  const group = new ServerGroup('pigeons', 'fallback', {
    check: { url: health.url, intervalMs: 60_000, timeoutMs: 2000 },
    log: silentLog,
    failoverDelayMs: 1000,
  });
  t.after(() => group.close());
  const members: GroupMember[] = [
    { name: 'A', outbound: viaA },
    { name: 'B', outbound: viaB },
  ];
  group.setMembers(members);
  group.start();
  await group.checkNow();
  assert.deepEqual(
    group.status().members.map((m) => [m.name, m.alive]),
    [
      ['A', true],
      ['B', true],
    ],
  );
  assert.equal(group.current()?.name, 'A');

  // A long-lived transfer through A: 1 KB every 20 ms, echoed back.
  const long = await group.dialTcp(makeAddress('127.0.0.1', echo.port));
  let echoed = 0;
  let longEnded: string | undefined;
  long.on('data', (d: Buffer) => (echoed += d.length));
  long.on('error', (e) => (longEnded ??= `error: ${e.message}`));
  long.on('close', () => (longEnded ??= 'closed'));
  const pump = setInterval(() => {
    if (!long.destroyed) long.write(Buffer.alloc(1024, 0x61));
  }, 20);
  t.after(() => {
    clearInterval(pump);
    long.destroy();
  });
  assert.ok(await eventually(() => echoed >= 20 * 1024, 5000), `only ${echoed} bytes echoed through A`);
  assert.equal(viaA.tcpOk, 1);

  // A UDP association through the group, working through A.
  const replies: string[] = [];
  const tunnel = group.openUdp((d) => replies.push(d.payload.toString()));
  t.after(() => tunnel.close());
  const to = makeAddress('127.0.0.1', udp);
  for (let i = 0; i < 25 && !replies.includes('before'); i++) {
    tunnel.send({ address: to, payload: Buffer.from('before') });
    await sleep(200);
  }
  assert.ok(replies.includes('before'), 'no UDP reply through A');
  assert.equal(viaA.udpOpened, 1);
  assert.equal(viaB.udpOpened, 0);

  // Kill A (no goodbye: SIGKILL).
  a.proc.child.kill('SIGKILL');
  const killedAt = Date.now();
  await a.proc.exited;

  // The transfer through A breaks (the app sees it and reconnects)...
  assert.ok(await eventually(() => longEnded !== undefined, 5000), 'the stream through A did not end');
  clearInterval(pump);

  // ...and a new connection through the group succeeds through B within 5 s of the kill.
  const aBefore = viaA.tcpOk;
  let ok = false;
  for (let i = 0; i < 50 && !ok && Date.now() - killedAt < 5000; i++) {
    try {
      ok = (await echoOnce(group, echo.port, 'after the kill')) === 'after the kill';
    } catch {
      await sleep(100);
    }
  }
  const tcpAfter = Date.now() - killedAt;
  assert.ok(ok, 'no TCP connection through the group within 5 s of the kill');
  assert.ok(tcpAfter < 5000, `TCP failover took ${tcpAfter} ms`);
  assert.equal(viaA.tcpOk, aBefore, 'a connection still went to the killed server');
  assert.ok(viaB.tcpOk >= 1, 'no connection went through B');
  assert.equal(group.current()?.name, 'B');
  assert.equal(group.status().members[0]!.alive, false);

  // UDP through the same tunnel reaches the echo target again, now through B.
  for (let i = 0; i < 25 && !replies.includes('after') && Date.now() - killedAt < 5000; i++) {
    tunnel.send({ address: to, payload: Buffer.from('after') });
    await sleep(200);
  }
  const udpAfter = Date.now() - killedAt;
  assert.ok(replies.includes('after'), `no UDP reply through B within 5 s of the kill`);
  assert.equal(viaB.udpOpened, 1);
  t.diagnostic(`failover after the kill: TCP ${tcpAfter} ms, UDP ${udpAfter} ms`);

  // A comes back on the same port: re-checks find it and fallback returns to it.
  await pigeonServer(t, { method, password, port: a.port });
  const restartedAt = Date.now();
  assert.ok(await eventually(() => group.current()?.name === 'A', 20_000), 'A was not used again');
  t.diagnostic(`A back in use ${Date.now() - restartedAt} ms after its restart`);
  assert.equal(await echoOnce(group, echo.port, 'A again'), 'A again');
  assert.equal(viaA.tcpOk, aBefore + 1);
});
