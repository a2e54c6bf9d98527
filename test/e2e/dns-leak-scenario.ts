// Fake DNS upstreams for the DNS tests, and (run as a script) the DNS leak scenario that
// test/e2e/dns-leak.test.ts runs inside a network namespace while tcpdump captures its loopback:
//
//   node:dns client ─UDP/TCP─▶ Pigeon DNS listener (127.0.0.1:LISTEN_PORT)
//        proxied name ─▶ DoH ─▶ TLS ─▶ ShadowsocksOutbound ══ Pigeon server ══▶ fake DoH server
//        direct name  ─▶ the "system resolver": a fake plain DNS on 127.0.0.1:53 (resolv.conf)
//
// The script prints one line `RESULT {json}` with what each side saw, and exits.
import { createSocket } from 'node:dgram';
import { createServer as createTcpServer, connect as tcpConnect, type Socket } from 'node:net';
import { createServer as createHttpsServer } from 'node:https';
import { Resolver, getServers } from 'node:dns';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, Question } from 'dns-packet';
import { generate } from 'selfsigned';
import type { Address } from '../../src/wire/socks-address.js';

// --- fakes (also used by test/client/dns.test.ts) ---------------------------------------------------

export interface SeenQuery {
  name: string;
  type: string;
  via: 'udp' | 'tcp' | 'doh';
  id: number;
  /** EDNS option codes the query carried. */
  options: number[];
  size: number;
}

export interface ZoneAnswer {
  rcode?: number;
  answers?: Answer[];
  authorities?: Answer[];
  /** Answer after this long. */
  delayMs?: number;
  /** Over UDP, answer with TC set and no records (the full answer only over TCP). */
  truncateUdp?: boolean;
  /** Do not answer at all. */
  drop?: boolean;
}

export function soa(name: string, ttl: number, minimum: number): Answer {
  return {
    type: 'SOA',
    name,
    ttl,
    class: 'IN',
    data: {
      mname: 'ns.example',
      rname: 'h.example',
      serial: 1,
      refresh: 1,
      retry: 1,
      expire: 1,
      minimum,
    },
  };
}

function hash(s: string): number {
  let h = 7;
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) % 250;
  return h + 1;
}

/**
 * The fakes' zone, by the first label of the name: `nx` NXDOMAIN (SOA TTL 3600, minimum 60),
 * `nxlong` NXDOMAIN (minimum 3600), `big` 30 A records and TC over UDP, `slow` 300 ms late,
 * `servfail`, `drop` (no answer), `ttl5` TTL 5; anything else one A (`v4prefix`.N) or AAAA, TTL 300.
 */
export function makeZone(v4prefix: string, v6prefix: string): (q: Question) => ZoneAnswer {
  return (q) => {
    const name = q.name.toLowerCase();
    const first = name.split('.')[0];
    const n = hash(name);
    const rr = (ttl: number, i = 0): Answer[] =>
      q.type === 'A'
        ? [{ type: 'A', name: q.name, ttl, class: 'IN', data: `${v4prefix}.${(n + i) % 254 || 254}` }]
        : q.type === 'AAAA'
          ? [{ type: 'AAAA', name: q.name, ttl, class: 'IN', data: `${v6prefix}::${(n + i).toString(16)}` }]
          : [];
    switch (first) {
      case 'nx':
        return { rcode: 3, authorities: [soa('example', 3600, 60)] };
      case 'nxlong':
        return { rcode: 3, authorities: [soa('example', 3600, 3600)] };
      case 'big':
        return { truncateUdp: true, answers: Array.from({ length: 30 }, (_, i) => rr(300, i)).flat() };
      case 'slow':
        return { delayMs: 300, answers: rr(300) };
      case 'servfail':
        return { rcode: 2 };
      case 'drop':
        return { drop: true };
      case 'ttl5':
        return { answers: rr(5) };
      default: {
        const answers = rr(300);
        return answers.length ? { answers } : { authorities: [soa('example', 300, 300)] };
      }
    }
  };
}

function seen(p: DecodedPacket, via: SeenQuery['via'], size: number): SeenQuery {
  const q = p.questions?.[0];
  const opt = p.additionals?.find((rr) => rr.type === 'OPT');
  return {
    name: (q?.name ?? '').toLowerCase(),
    type: q?.type ?? '',
    via,
    id: p.id ?? 0,
    options: opt && opt.type === 'OPT' ? opt.options.map((o) => Number(o.code)) : [],
    size,
  };
}

/** The encoded answer to `raw` (undefined: send nothing). */
async function answerQuery(
  zone: (q: Question) => ZoneAnswer,
  raw: Buffer,
  via: SeenQuery['via'],
  log: SeenQuery[],
): Promise<Buffer | undefined> {
  let p: DecodedPacket;
  try {
    p = dnsPacket.decode(raw);
  } catch {
    return undefined;
  }
  const q = p.questions?.[0];
  if (!q) return undefined;
  if (log.length < 100_000) log.push(seen(p, via, raw.length));
  const z = zone(q);
  if (z.drop) return undefined;
  if (z.delayMs) await new Promise((r) => setTimeout(r, z.delayMs));
  const tc = via === 'udp' && z.truncateUdp;
  return dnsPacket.encode({
    type: 'response',
    id: p.id,
    flags: 0x0100 | 0x0080 | (tc ? 0x0200 : 0) | (z.rcode ?? 0),
    questions: [q],
    answers: tc ? [] : (z.answers ?? []),
    authorities: tc ? [] : (z.authorities ?? []),
  });
}

export interface FakeServer {
  port: number;
  queries: SeenQuery[];
  close(): Promise<void>;
}

/** A plain DNS server on UDP and TCP (same port) that answers from `zone` and records every query. */
export async function startFakeDns(
  zone: (q: Question) => ZoneAnswer,
  host = '127.0.0.1',
  port = 0,
): Promise<FakeServer> {
  const queries: SeenQuery[] = [];
  const conns = new Set<Socket>();
  const tcp = createTcpServer((s) => {
    conns.add(s);
    s.on('close', () => conns.delete(s));
    s.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const msg = buf.subarray(2, 2 + buf.readUInt16BE(0));
        buf = buf.subarray(2 + msg.length);
        void answerQuery(zone, Buffer.from(msg), 'tcp', queries).then((out) => {
          if (out && !s.destroyed) s.write(Buffer.concat([u16(out.length), out]));
        });
      }
    });
  });
  // With port 0, the UDP port may be taken for TCP: try a few.
  for (let attempt = 0; ; attempt++) {
    const udp = createSocket(host.includes(':') ? 'udp6' : 'udp4');
    try {
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(port, host, () => resolve());
      });
      const bound = udp.address().port;
      await new Promise<void>((resolve, reject) => {
        tcp.once('error', reject);
        tcp.listen(bound, host, () => {
          tcp.off('error', reject);
          resolve();
        });
      });
      udp.on('message', (msg, rinfo) => {
        void answerQuery(zone, msg, 'udp', queries).then((out) => {
          if (out) udp.send(out, rinfo.port, rinfo.address, () => undefined);
        });
      });
      return {
        port: bound,
        queries,
        close: async () => {
          for (const c of conns) c.destroy();
          await Promise.all([
            new Promise<void>((r) => tcp.close(() => r())),
            new Promise<void>((r) => udp.close(() => r())),
          ]);
        },
      };
    } catch (e) {
      udp.close();
      if (port !== 0 || attempt >= 20) throw e;
    }
  }
}

export interface TestCert {
  key: string;
  cert: string;
}

/**
 * A self-signed certificate for 127.0.0.1 and ::1 (pass `cert` as the DoH `ca`). Also for the DNS name
 * `localhost` unless `ipOnly`: src/net/http-client.ts checks a TLS peer reached by IP address against
 * "localhost" (tls.connect gets neither `host` nor `servername`), so an IP-only certificate fails there.
 */
export async function makeCert(ipOnly = false): Promise<TestCert> {
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    extensions: [
      {
        name: 'subjectAltName',
        altNames: [
          { type: 7, ip: '127.0.0.1' },
          { type: 7, ip: '::1' },
          ...(ipOnly ? [] : [{ type: 2 as const, value: 'localhost' }]),
        ],
      },
    ],
  });
  return { key: pems.private, cert: pems.cert };
}

export interface FakeDoh extends FakeServer {
  /** Method and content-type of every request. */
  requests: { method: string; contentType: string; accept: string }[];
}

/** A DNS-over-HTTPS server (RFC 8484 POST) on HTTPS that answers from `zone`. */
export async function startFakeDoh(
  zone: (q: Question) => ZoneAnswer,
  cert: TestCert,
  host = '127.0.0.1',
): Promise<FakeDoh> {
  const queries: SeenQuery[] = [];
  const requests: FakeDoh['requests'] = [];
  const server = createHttpsServer({ key: cert.key, cert: cert.cert }, (req, res) => {
    requests.push({
      method: req.method ?? '',
      contentType: String(req.headers['content-type'] ?? ''),
      accept: String(req.headers.accept ?? ''),
    });
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/dns-query') {
        res.writeHead(405).end();
        return;
      }
      void answerQuery(zone, Buffer.concat(parts), 'doh', queries).then((out) => {
        if (!out) {
          res.writeHead(400).end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/dns-message', 'content-length': out.length });
        res.end(out);
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve());
  });
  const a = server.address();
  return {
    port: typeof a === 'object' && a ? a.port : 0,
    queries,
    requests,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** Direct TCP dial (what the tunnel would do), for DoH in tests. */
export function directDial(target: Address): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: target.host, port: target.port });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

export function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

/** Sends DNS messages on one TCP connection (one write) and collects `expect` answers. */
export function tcpExchange(
  port: number,
  queries: Buffer[],
  expect: number,
  timeoutMs = 5000,
  host = '127.0.0.1',
) {
  return new Promise<DecodedPacket[]>((resolve, reject) => {
    const s = tcpConnect({ host, port });
    const got: DecodedPacket[] = [];
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`TCP DNS: ${got.length}/${expect} answers within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        got.push(dnsPacket.decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        buf = buf.subarray(2 + buf.readUInt16BE(0));
      }
      if (got.length >= expect) {
        clearTimeout(timer);
        s.destroy();
        resolve(got);
      }
    });
    s.write(Buffer.concat(queries.flatMap((q) => [u16(q.length), q])));
  });
}

// --- the leak scenario ------------------------------------------------------------------------------

export const PROXIED_NAME = 'web.telegram.org';
export const DIRECT_NAME = 'www.baidu.com';
/** What the fake DoH server answers (and the fake system DNS does not). */
export const DOH_V4 = '203.0.113';
export const SYSTEM_V4 = '198.51.100';

export interface ScenarioResult {
  systemServers: string[];
  udp: { proxied: string[]; direct: string[] };
  tcp: { proxied: string[]; direct: string[] };
  systemDnsSaw: string[];
  dohSaw: string[];
  tunnelDials: number;
}

async function scenario(listenPort: number): Promise<ScenarioResult> {
  // Imported here so that importing the fakes does not load the server and client.
  const { startServer } = await import('../../src/server/index.js');
  const { startClient } = await import('../../src/client/index.js');
  const { makeAddress } = await import('../../src/wire/socks-address.js');
  const { silentLog } = await import('../../src/log.js');

  const cleanup: (() => Promise<void> | void)[] = [];
  try {
    const systemServers = getServers();
    // The "system resolver" from /etc/netns/NS/resolv.conf: it must only ever hear direct names.
    const system = await startFakeDns(makeZone(SYSTEM_V4, '2001:db8:5'), '127.0.0.1', 53);
    cleanup.push(() => system.close());
    const cert = await makeCert();
    const doh = await startFakeDoh(makeZone(DOH_V4, '2001:db8:d'), cert);
    cleanup.push(() => doh.close());

    const method = 'chacha20-ietf-poly1305';
    const password = randomBytes(16).toString('hex');
    const server = await startServer({
      listen: makeAddress('127.0.0.1', 0),
      method,
      password,
      allowPrivate: true, // the DoH server is on loopback
      log: silentLog,
    });
    cleanup.push(() => server.close());
    // The whole client, on its defaults: the messaging preset decides which names are tunnelled
    // (web.telegram.org) and which go direct (www.baidu.com) to the system's resolver.
    const client = await startClient({
      server: { method, password, host: '127.0.0.1', port: server.port, params: {} },
      listen: makeAddress('127.0.0.1', 0),
      forwards: [],
      dns: {
        listen: makeAddress('127.0.0.1', listenPort),
        doh: `https://127.0.0.1:${doh.port}/dns-query`,
        ca: cert.cert,
      },
      log: silentLog,
    });
    cleanup.push(() => client.close());
    const dns = client.dns!;
    const stub = new Resolver({ timeout: 5000, tries: 1 });
    stub.setServers([`127.0.0.1:${dns.port}`]);
    const resolve4 = (name: string): Promise<string[]> =>
      new Promise((resolve, reject) => stub.resolve4(name, (e, a) => (e ? reject(e) : resolve(a))));
    const udp = { proxied: await resolve4(PROXIED_NAME), direct: await resolve4(DIRECT_NAME) };

    const aaaa = (name: string, id: number): Buffer =>
      dnsPacket.encode({
        type: 'query',
        id,
        flags: 0x0100,
        questions: [{ name, type: 'AAAA', class: 'IN' }],
      });
    const answers = await tcpExchange(dns.port, [aaaa(PROXIED_NAME, 1), aaaa(DIRECT_NAME, 2)], 2, 15_000);
    const ips = (id: number): string[] =>
      (answers.find((p) => p.id === id)?.answers ?? []).flatMap((a) => (a.type === 'AAAA' ? [a.data] : []));
    const tcp = { proxied: ips(1), direct: ips(2) };

    return {
      systemServers,
      udp,
      tcp,
      systemDnsSaw: system.queries.map((q) => q.name),
      dohSaw: doh.queries.map((q) => q.name),
      tunnelDials: client.connections.summary().totalTcp,
    };
  } finally {
    for (const c of cleanup.reverse()) await Promise.resolve(c()).catch(() => undefined);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const port = Number(process.argv[2] ?? 5300);
  const watchdog = setTimeout(() => {
    console.log(`RESULT ${JSON.stringify({ error: 'scenario timed out after 45 s' })}`);
    process.exit(2);
  }, 45_000);
  scenario(port).then(
    (r) => {
      clearTimeout(watchdog);
      console.log(`RESULT ${JSON.stringify(r)}`);
      process.exit(0);
    },
    (e: unknown) => {
      clearTimeout(watchdog);
      console.log(`RESULT ${JSON.stringify({ error: (e as Error).stack ?? String(e) })}`);
      process.exit(1);
    },
  );
}
