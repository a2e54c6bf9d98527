// The client's DNS resolver and listener against fake upstreams on loopback: a plain DNS server
// (UDP and TCP) for direct names and a DNS-over-HTTPS server for proxied names, both recording
// every name they are asked.
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { createServer, connect, type Socket } from 'node:net';
import { randomBytes, randomInt } from 'node:crypto';
import dnsPacket from 'dns-packet';
import type { DecodedPacket, Packet } from 'dns-packet';
import { DnsResolver, type DnsResolverOptions, type DnsRoute } from '../../src/client/dns-resolver.js';
import { startDnsServer, type DnsServerLimits } from '../../src/client/dns-server.js';
import { makeAddress, type Address } from '../../src/wire/socks-address.js';
import { silentLog } from '../../src/log.js';
import {
  directDial,
  makeCert,
  makeZone,
  startFakeDns,
  startFakeDoh,
  tcpExchange,
  type FakeDoh,
  type FakeServer,
  type TestCert,
} from '../e2e/dns-leak-scenario.js';

const RD = 0x0100;
const TC = 0x0200;
const rcodeOf = (p: DecodedPacket): number => (p.flags ?? 0) & 0xf;

let certPromise: Promise<TestCert> | undefined;
const cert = (): Promise<TestCert> => (certPromise ??= makeCert());

function route(name: string): DnsRoute {
  if (name.endsWith('.proxy.test')) return 'proxy';
  if (name.endsWith('.blocked.test')) return 'reject';
  return 'direct';
}

interface Rig {
  plain: FakeServer;
  doh: FakeDoh;
  resolver: DnsResolver;
  clock: { now: number };
  dohDials: Address[];
}

async function rig(t: TestContext, over: Partial<DnsResolverOptions> = {}): Promise<Rig> {
  const plain = await startFakeDns(makeZone('198.51.100', '2001:db8:5'));
  t.after(() => plain.close());
  const c = await cert();
  const doh = await startFakeDoh(makeZone('203.0.113', '2001:db8:d'), c);
  t.after(() => doh.close());
  const clock = { now: 1_700_000_000_000 };
  const dohDials: Address[] = [];
  const resolver = new DnsResolver({
    route,
    doh: {
      url: `https://127.0.0.1:${doh.port}/dns-query`,
      ca: c.cert,
      timeoutMs: 3000,
      dial: (target) => {
        dohDials.push(target);
        return directDial(target);
      },
    },
    directServers: [makeAddress('127.0.0.1', plain.port)],
    directTimeoutMs: 1500,
    now: () => clock.now,
    log: silentLog,
    ...over,
  });
  t.after(() => resolver.close());
  return { plain, doh, resolver, clock, dohDials };
}

function query(name: string, type: 'A' | 'AAAA' | 'TXT' = 'A', extra: Partial<Packet> = {}): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: randomInt(0, 0x10000),
    flags: RD,
    questions: [{ name, type, class: 'IN' }],
    ...extra,
  });
}

async function ask(r: DnsResolver, q: Buffer): Promise<DecodedPacket> {
  const out = await r.resolve(q);
  assert.ok(out, 'no answer');
  const p = dnsPacket.decode(out);
  assert.equal(p.id, q.readUInt16BE(0), 'answer ID differs from the query ID');
  assert.equal(p.type, 'response');
  return p;
}

const ips = (p: DecodedPacket): string[] =>
  (p.answers ?? []).flatMap((a) => (a.type === 'A' || a.type === 'AAAA' ? [a.data] : []));
const ttls = (p: DecodedPacket): number[] =>
  (p.answers ?? []).map((a) => (a.type === 'OPT' ? -1 : (a.ttl ?? 0)));
const names = (s: FakeServer): string[] => s.queries.map((q) => q.name);

async function listener(t: TestContext, r: DnsResolver, limits: DnsServerLimits = {}) {
  const dns = await startDnsServer(r, makeAddress('127.0.0.1', 0), silentLog, limits);
  t.after(() => dns.close());
  return dns;
}

function udpAsk(port: number, q: Buffer, timeoutMs = 3000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    const timer = setTimeout(() => {
      s.close();
      reject(new Error(`no UDP answer within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('message', (m) => {
      if (m.length >= 2 && m.readUInt16BE(0) !== q.readUInt16BE(0)) return;
      clearTimeout(timer);
      s.close();
      resolve(m);
    });
    s.send(q, port, '127.0.0.1');
  });
}

describe('routing', () => {
  test('proxied names go to DoH only, direct names to plain DNS only, rejected names nowhere', async (t) => {
    const { plain, doh, resolver, dohDials } = await rig(t);

    const p = await ask(resolver, query('Web.Proxy.Test'));
    assert.equal(rcodeOf(p), 0);
    assert.match(ips(p)[0] ?? '', /^203\.0\.113\./, 'the proxied answer did not come from DoH');
    assert.equal(p.questions?.[0]?.name, 'Web.Proxy.Test', 'question not echoed as sent');

    const d = await ask(resolver, query('www.direct.test'));
    assert.match(ips(d)[0] ?? '', /^198\.51\.100\./);

    const x = await ask(resolver, query('ads.blocked.test'));
    assert.equal(rcodeOf(x), 3, 'rejected names are NXDOMAIN');
    assert.equal(x.authorities?.[0]?.type, 'SOA', 'NXDOMAIN carries an SOA for negative caching');

    assert.deepEqual(names(doh), ['web.proxy.test']);
    assert.deepEqual(names(plain), ['www.direct.test']);
    assert.equal(dohDials.length, 1);
    assert.deepEqual(dohDials[0], makeAddress('127.0.0.1', doh.port));
  });

  test('DoH is an RFC 8484 POST with ID 0, padded, and no client EDNS options go upstream', async (t) => {
    const { plain, doh, resolver } = await rig(t);
    const ecs = {
      additionals: [
        {
          type: 'OPT' as const,
          name: '.',
          udpPayloadSize: 4096,
          extendedRcode: 0,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [{ code: 8 as const, ip: '192.0.2.0', sourcePrefixLength: 24, family: 1 }],
        },
      ],
    };
    const p = await ask(resolver, query('a.proxy.test', 'A', ecs));
    assert.equal(rcodeOf(p), 0);
    assert.ok(
      p.additionals?.some((rr) => rr.type === 'OPT'),
      'EDNS query, EDNS answer',
    );
    await ask(resolver, query('a.direct.test', 'A', ecs));
    assert.deepEqual(doh.requests, [
      { method: 'POST', contentType: 'application/dns-message', accept: 'application/dns-message' },
    ]);
    const dq = doh.queries[0]!;
    assert.equal(dq.id, 0);
    assert.equal(dq.size % 128, 0, `DoH query of ${dq.size} bytes is not padded to 128`);
    assert.deepEqual(dq.options, [12], 'only the padding option goes to DoH');
    assert.deepEqual(plain.queries[0]!.options, [], 'the client subnet went to the direct upstream');
  });

  test('lookup() resolves with the same routing; rejected names fail', async (t) => {
    const { plain, doh, resolver } = await rig(t);
    const got = await resolver.lookup('api.proxy.test');
    assert.equal(got.length, 2);
    assert.ok(got.some((a) => a.startsWith('203.0.113.')) && got.some((a) => a.includes(':')));
    assert.deepEqual(await resolver.lookup('192.0.2.1'), ['192.0.2.1']);
    await assert.rejects(resolver.lookup('x.blocked.test'), /no such name/);
    assert.deepEqual(names(plain), []);
    assert.deepEqual(names(doh).sort(), ['api.proxy.test', 'api.proxy.test']);
  });
});

describe('cache', () => {
  test('TTLs count down in the cache; expiry asks again; a new ID each time', async (t) => {
    const { plain, resolver, clock } = await rig(t);
    const first = await ask(resolver, query('www.direct.test'));
    assert.deepEqual(ttls(first), [300]);
    clock.now += 100_000;
    const second = await ask(resolver, query('WWW.direct.test.'));
    assert.deepEqual(ttls(second), [200]);
    assert.deepEqual(ips(second), ips(first));
    assert.equal(plain.queries.length, 1, 'served from the cache');
    clock.now += 199_000;
    assert.deepEqual(ttls(await ask(resolver, query('www.direct.test'))), [1]);
    clock.now += 1_000;
    assert.deepEqual(ttls(await ask(resolver, query('www.direct.test'))), [300]);
    assert.equal(plain.queries.length, 2, 'an expired entry must be asked again');
    // Other types and routes are separate entries.
    await ask(resolver, query('www.direct.test', 'AAAA'));
    assert.equal(plain.queries.length, 3);
  });

  test('negative answers are cached by the SOA minimum, capped at 300 s', async (t) => {
    const { plain, resolver, clock } = await rig(t);
    const nx = await ask(resolver, query('nx.direct.test'));
    assert.equal(rcodeOf(nx), 3);
    clock.now += 59_000;
    assert.equal(rcodeOf(await ask(resolver, query('nx.direct.test'))), 3);
    assert.equal(plain.queries.length, 1);
    clock.now += 1_000;
    await ask(resolver, query('nx.direct.test'));
    assert.equal(plain.queries.length, 2, 'min(SOA TTL, minimum) = 60 s');

    await ask(resolver, query('nxlong.direct.test'));
    clock.now += 299_000;
    await ask(resolver, query('nxlong.direct.test'));
    assert.equal(plain.queries.length, 3);
    clock.now += 1_000;
    await ask(resolver, query('nxlong.direct.test'));
    assert.equal(plain.queries.length, 4, 'negative caching is capped at 300 s');

    // SERVFAIL is passed on as SERVFAIL and not cached.
    assert.equal(rcodeOf(await ask(resolver, query('servfail.direct.test'))), 2);
    assert.equal(rcodeOf(await ask(resolver, query('servfail.direct.test'))), 2);
    // The only server said SERVFAIL: asking it again at once would not help.
    assert.equal(names(plain).filter((n) => n === 'servfail.direct.test').length, 2);
  });

  test('the cache is bounded (least recently used goes first)', async (t) => {
    const { plain, resolver } = await rig(t, { maxCacheEntries: 2 });
    await ask(resolver, query('a.direct.test'));
    await ask(resolver, query('b.direct.test'));
    await ask(resolver, query('a.direct.test')); // a is now the most recent
    await ask(resolver, query('c.direct.test')); // evicts b
    await ask(resolver, query('a.direct.test'));
    assert.equal(plain.queries.length, 3);
    await ask(resolver, query('b.direct.test'));
    assert.equal(plain.queries.length, 4);
  });

  test('identical concurrent queries share one upstream request', async (t) => {
    const { plain, doh, resolver } = await rig(t);
    for (const name of ['slow.direct.test', 'slow.proxy.test']) {
      const qs = Array.from({ length: 10 }, () => query(name));
      const answers = await Promise.all(qs.map((q) => ask(resolver, q)));
      assert.equal(new Set(answers.map((a) => ips(a)[0])).size, 1);
    }
    assert.deepEqual(names(plain), ['slow.direct.test']);
    assert.deepEqual(names(doh), ['slow.proxy.test']);
  });

  test('the number of upstream queries in flight is bounded', async (t) => {
    const { resolver } = await rig(t, { maxInFlight: 1 });
    const slow = ask(resolver, query('slow.direct.test'));
    const started = Date.now();
    const busy = await ask(resolver, query('other.direct.test'));
    assert.equal(rcodeOf(busy), 2);
    assert.ok(Date.now() - started < 200, 'SERVFAIL at once when too many queries are in flight');
    assert.equal(rcodeOf(await slow), 0);
  });
});

describe('reverse map', () => {
  test('IPs from proxied answers map to their name until the TTL ends', async (t) => {
    const { resolver, clock } = await rig(t);
    const v4 = ips(await ask(resolver, query('chat.proxy.test')))[0]!;
    const v6 = ips(await ask(resolver, query('chat.proxy.test', 'AAAA')))[0]!;
    const direct = ips(await ask(resolver, query('chat.direct.test')))[0]!;
    assert.equal(resolver.domainOf(v4), 'chat.proxy.test');
    assert.equal(resolver.domainOf(`::ffff:${v4}`), 'chat.proxy.test');
    assert.equal(resolver.domainOf(v6), 'chat.proxy.test');
    assert.equal(resolver.domainOf(v6.replace('::', ':0:0:0:0:')), 'chat.proxy.test', 'any IPv6 spelling');
    assert.equal(resolver.domainOf(direct), undefined, 'direct answers are not mapped');
    assert.equal(resolver.domainOf('not an ip'), undefined);
    clock.now += 299_000;
    assert.equal(resolver.domainOf(v4), 'chat.proxy.test');
    clock.now += 1_000;
    assert.equal(resolver.domainOf(v4), undefined);
  });

  test('the reverse map is bounded', async (t) => {
    const { resolver } = await rig(t, { maxReverseEntries: 2 });
    const a = ips(await ask(resolver, query('a.proxy.test')))[0]!;
    await ask(resolver, query('b.proxy.test'));
    await ask(resolver, query('c.proxy.test'));
    assert.equal(resolver.domainOf(a), undefined);
  });
});

describe('listener', () => {
  test('UDP answers too big for the client are truncated with TC; the resolver itself retries over TCP', async (t) => {
    const { plain, resolver } = await rig(t);
    const full = await ask(resolver, query('big.direct.test'));
    assert.equal(ips(full).length, 30, 'the resolver got the full answer over TCP');
    assert.deepEqual(
      plain.queries.map((q) => q.via),
      ['udp', 'tcp'],
    );
    const dns = await listener(t, resolver);
    const plainUdp = await udpAsk(dns.port, query('big.direct.test'));
    const p = dnsPacket.decode(plainUdp);
    assert.ok(plainUdp.length <= 512, `${plainUdp.length} bytes over UDP to a client without EDNS`);
    assert.ok((p.flags ?? 0) & TC, 'TC is set');
    assert.equal(p.answers?.length, 0);
    assert.equal(p.questions?.[0]?.name, 'big.direct.test');
    const edns = {
      additionals: [
        {
          type: 'OPT' as const,
          name: '.',
          udpPayloadSize: 1232,
          extendedRcode: 0,
          ednsVersion: 0,
          flags: 0,
          flag_do: false,
          options: [],
        },
      ],
    };
    const big = await udpAsk(dns.port, query('big.direct.test', 'A', edns));
    assert.ok(big.length > 512 && big.length <= 1232);
    assert.equal(ips(dnsPacket.decode(big)).length, 30, 'an EDNS client takes the whole answer');
    const [overTcp] = await tcpExchange(dns.port, [query('big.direct.test')], 1);
    assert.equal(ips(overTcp!).length, 30);
    assert.equal(plain.queries.length, 2, 'all from the cache');
  });

  test('TCP: two queries in one write on one connection, both answered', async (t) => {
    const { resolver } = await rig(t);
    const dns = await listener(t, resolver);
    const q1 = query('one.direct.test');
    const q2 = query('two.proxy.test', 'AAAA');
    const got = await tcpExchange(dns.port, [q1, q2], 2);
    const byId = new Map(got.map((p) => [p.id, p]));
    assert.match(ips(byId.get(q1.readUInt16BE(0))!)[0] ?? '', /^198\.51\.100\./);
    assert.match(ips(byId.get(q2.readUInt16BE(0))!)[0] ?? '', /^2001:db8:d:/);
  });

  test('TCP: idle connections are closed; the number of connections is capped', async (t) => {
    const { resolver } = await rig(t);
    const dns = await listener(t, resolver, { tcpIdleTimeoutMs: 200, maxTcpConnections: 2 });
    const open = (): Promise<{ s: Socket; closed: Promise<number> }> =>
      new Promise((resolve, reject) => {
        const s = connect({ port: dns.port, host: '127.0.0.1' });
        const at = Date.now();
        const closed = new Promise<number>((r) => s.on('close', () => r(Date.now() - at)));
        s.on('error', () => undefined);
        s.once('connect', () => resolve({ s, closed }));
        s.once('error', reject);
      });
    const a = await open();
    const b = await open();
    const c = await open();
    assert.ok((await c.closed) < 150, 'the third connection is refused at once');
    const idle = await a.closed;
    assert.ok(idle >= 150 && idle < 2000, `idle connection closed after ${idle} ms`);
    await b.closed;
  });

  test('garbage gets FORMERR or nothing, never a crash', async (t) => {
    const { resolver } = await rig(t);
    assert.equal(await resolver.resolve(Buffer.from('short')), undefined, 'no header, no answer');
    const junk = Buffer.concat([
      Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]),
      randomBytes(5),
    ]);
    const p = await ask(resolver, junk);
    assert.equal(rcodeOf(p), 1);
    // A response sent to us is not answered (no reflection loops).
    const resp = query('x.direct.test');
    resp[2]! |= 0x80;
    assert.equal(await resolver.resolve(resp), undefined);
    // Two questions: FORMERR. Opcode 2 (STATUS): NOTIMP.
    const two = dnsPacket.encode({
      type: 'query',
      id: 7,
      questions: [
        { name: 'a.direct.test', type: 'A' },
        { name: 'b.direct.test', type: 'A' },
      ],
    });
    assert.equal(rcodeOf(await ask(resolver, two)), 1);
    const status = query('a.direct.test');
    status[2] = (status[2]! & 0x87) | (2 << 3);
    assert.equal(rcodeOf(await ask(resolver, status)), 4);
  });

  test('2000 random and mutated packets (UDP and TCP) do not crash it; it answers afterwards', async (t) => {
    const { resolver } = await rig(t, { directTimeoutMs: 300 });
    const dns = await listener(t, resolver);
    const seeds = [
      query('www.direct.test'),
      query('web.proxy.test', 'AAAA'),
      query('a.blocked.test', 'TXT'),
      query('nx.direct.test', 'A', {
        additionals: [
          {
            type: 'OPT',
            name: '.',
            udpPayloadSize: 4096,
            extendedRcode: 0,
            ednsVersion: 0,
            flags: 0x8000,
            flag_do: true,
            options: [],
          },
        ],
      }),
    ];
    const mutate = (): Buffer => {
      const r = randomInt(0, 10);
      if (r === 0) return randomBytes(randomInt(0, 600));
      const b = Buffer.from(seeds[randomInt(0, seeds.length)]!);
      if (r === 1) return b.subarray(0, randomInt(0, b.length));
      if (r === 2) return Buffer.concat([b, randomBytes(randomInt(1, 100))]);
      for (let i = randomInt(1, 6); i > 0; i--) b[randomInt(0, b.length)] = randomInt(0, 256);
      return b;
    };
    const deadline = Date.now() + 20_000;
    const udp = createSocket('udp4');
    udp.on('message', () => undefined);
    await new Promise<void>((r) => udp.bind(0, '127.0.0.1', () => r()));
    for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
      udp.send(mutate(), dns.port, '127.0.0.1');
      if (i % 50 === 49) await new Promise((r) => setTimeout(r, 5));
    }
    udp.close();
    // TCP: 50 connections × 20 frames, some with lying lengths; the listener may hang up on them.
    for (let c = 0; c < 50 && Date.now() < deadline; c++) {
      await new Promise<void>((resolve) => {
        const s = connect({ port: dns.port, host: '127.0.0.1' });
        const timer = setTimeout(() => s.destroy(), 300);
        s.on('error', () => undefined);
        s.on('close', () => {
          clearTimeout(timer);
          resolve();
        });
        s.on('data', () => undefined);
        s.once('connect', () => {
          const frames: Buffer[] = [];
          for (let i = 0; i < 20; i++) {
            const m = mutate();
            const len = Buffer.alloc(2);
            len.writeUInt16BE(randomInt(0, 8) === 0 ? randomInt(0, 0x10000) : m.length);
            frames.push(len, m);
          }
          s.end(Buffer.concat(frames));
        });
      });
    }
    for (let i = 0; i < 1000 && Date.now() < deadline; i++) {
      await resolver.resolve(mutate()); // the resolver alone: never throws
    }
    assert.ok(Date.now() < deadline, 'fuzzing took too long');
    const after = dnsPacket.decode(await udpAsk(dns.port, query('after.direct.test')));
    assert.match(ips(after)[0] ?? '', /^198\.51\.100\./);
    const [overTcp] = await tcpExchange(dns.port, [query('after.proxy.test')], 1);
    assert.match(ips(overTcp!)[0] ?? '', /^203\.0\.113\./);
  });
});

describe('upstream failures', () => {
  test('a direct upstream that never answers: SERVFAIL within the timeout, then the next server', async (t) => {
    const hole = createSocket('udp4');
    let heard = 0;
    hole.on('message', () => heard++);
    await new Promise<void>((r) => hole.bind(0, '127.0.0.1', () => r()));
    t.after(() => hole.close());
    const { resolver } = await rig(t, {
      directServers: [makeAddress('127.0.0.1', hole.address().port)],
      directTimeoutMs: 600,
    });
    const started = Date.now();
    const p = await ask(resolver, query('www.direct.test'));
    const took = Date.now() - started;
    assert.equal(rcodeOf(p), 2);
    assert.ok(took >= 550 && took < 1500, `SERVFAIL after ${took} ms`);
    assert.equal(heard, 2, 'asked twice (one retry)');

    // A dead server first, a live one second: the answer comes from the second.
    const plain = await startFakeDns(makeZone('198.51.100', '2001:db8:5'));
    t.after(() => plain.close());
    const { resolver: r2 } = await rig(t, {
      directServers: [makeAddress('127.0.0.1', hole.address().port), makeAddress('127.0.0.1', plain.port)],
      directTimeoutMs: 2000,
    });
    assert.equal(rcodeOf(await ask(r2, query('next.direct.test'))), 0);
    assert.deepEqual(names(plain), ['next.direct.test']);
  });

  test('a closed direct port or a DoH that cannot be reached: SERVFAIL quickly', async (t) => {
    const gone = createSocket('udp4');
    await new Promise<void>((r) => gone.bind(0, '127.0.0.1', () => r()));
    const port = gone.address().port;
    await new Promise<void>((r) => gone.close(() => r()));
    const { resolver } = await rig(t, {
      directServers: [makeAddress('127.0.0.1', port)],
      doh: { url: 'https://127.0.0.1:1/dns-query', dial: () => Promise.reject(new Error('tunnel down')) },
    });
    const started = Date.now();
    assert.equal(rcodeOf(await ask(resolver, query('www.direct.test'))), 2);
    assert.equal(rcodeOf(await ask(resolver, query('www.proxy.test'))), 2);
    assert.ok(Date.now() - started < 1000);
  });

  test('a DoH server that accepts and never answers: SERVFAIL after the DoH timeout', async (t) => {
    const sockets = new Set<Socket>();
    const silent = createServer((s) => {
      sockets.add(s);
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    t.after(() => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => silent.close(() => r()));
    });
    const port = (silent.address() as { port: number }).port;
    const { resolver } = await rig(t, {
      doh: { url: `https://127.0.0.1:${port}/dns-query`, dial: directDial, timeoutMs: 500 },
    });
    const started = Date.now();
    assert.equal(rcodeOf(await ask(resolver, query('www.proxy.test'))), 2);
    const took = Date.now() - started;
    assert.ok(took >= 450 && took < 1500, `SERVFAIL after ${took} ms`);
  });

  test('close() ends pending queries with SERVFAIL', async (t) => {
    const hole = createSocket('udp4');
    await new Promise<void>((r) => hole.bind(0, '127.0.0.1', () => r()));
    t.after(() => hole.close());
    const { resolver } = await rig(t, {
      directServers: [makeAddress('127.0.0.1', hole.address().port)],
      directTimeoutMs: 5000,
    });
    const pending = ask(resolver, query('www.direct.test'));
    await new Promise((r) => setTimeout(r, 50));
    const started = Date.now();
    resolver.close();
    assert.equal(rcodeOf(await pending), 2);
    assert.ok(Date.now() - started < 200);
  });
});

test('DoH to an IP address verifies that IP against the certificate', async (t) => {
  const c = await makeCert(true);
  const doh = await startFakeDoh(makeZone('203.0.113', '2001:db8:d'), c);
  t.after(() => doh.close());
  const { resolver } = await rig(t, {
    doh: { url: `https://127.0.0.1:${doh.port}/dns-query`, ca: c.cert, dial: directDial },
  });
  assert.equal(rcodeOf(await ask(resolver, query('www.proxy.test'))), 0);
});
