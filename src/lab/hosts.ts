// The programs the lab runs inside its namespaces (`node hosts.js ROLE CONFIG.json`); each prints
// `READY` when it serves, or `RESULT {json}` when it has done its job:
//   dest     the destination host: HTTP (80) and HTTPS (443, also DNS over HTTPS at /dns-query) for the
//            site abroad, a plain DNS resolver (53) for the home network; prints `ACCEPT <peer>` per TCP
//            connection, so the lab sees whether a replayed probe ever reached it
//   traffic  the client host's apps: DNS queries to Pigeon's DNS listener, HTTP and HTTPS requests
//            through Pigeon's SOCKS5 port, and one direct HTTPS request (the SNI control)
//   baseline an ordinary HTTPS web server (node:https, its own self-signed certificate, a static page):
//            the reference a TLS server with a cover site is compared with under probing
//   probe    the censor's active prober against the server (and the baseline, for TLS servers)
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createTcpServer, connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import dnsPacket from 'dns-packet';
import { probeAgainstBaseline, probeServer } from './prober.js';

export interface DestConfig {
  abroad: string;
  home: string;
  certFile: string;
  keyFile: string;
}

export interface TrafficConfig {
  socksPort: number;
  dnsPort: number;
  abroad: string;
  home: string;
  caFile: string;
  /** HTTP requests through the tunnel (one connection each). */
  connections: number;
  /** HTTPS requests through the tunnel (one connection each). */
  httpsConnections: number;
  /** A blocked name: asked of Pigeon's DNS listener, and the SNI of the HTTPS requests. */
  blockedName: string;
  /** A name that goes direct: Pigeon asks the home resolver in plaintext (the DNS control). */
  homeName: string;
}

export interface TrafficResult {
  http: { ok: number; failed: number; bytes: number };
  https: { ok: number; failed: number };
  dns: { blocked: string[]; home: string[] };
  directHttps: boolean;
  errors: string[];
}

export interface ProbeConfig {
  host: string;
  port: number;
  waitMs: number;
  finWaitMs: number;
  /** Recorded first flights, base64. */
  recorded: string[];
  /** A TLS server: compare with this ordinary HTTPS server probe by probe (prober.ts). */
  baseline?: { host: string; port: number };
  /** With `baseline`: what each recorded flight is (the baseline's replays are flights of the same kind). */
  recordedTls?: { flights: 1 | 2; psk: boolean }[];
}

export interface BaselineConfig {
  host: string;
  port: number;
  certFile: string;
  keyFile: string;
}

const MAX_BODY = 4 * 1024 * 1024;
/** OpenSSL's SSL_OP_TLSEXT_PADDING (not among Node's crypto.constants). */
const SSL_OP_TLSEXT_PADDING = 0x10;

function site(req: IncomingMessage, res: ServerResponse): void {
  const m = /^\/bytes\/(\d+)$/.exec(req.url ?? '');
  let received = 0;
  req.on('data', (c: Buffer) => (received += c.length));
  req.on('end', () => {
    if (m) {
      const n = Math.min(Number(m[1]), MAX_BODY);
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
      res.end(randomBytes(n));
    } else if (req.method === 'POST' && req.url === '/upload') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`${received}\n`);
    } else res.writeHead(404).end();
  });
}

function dnsAnswer(query: Buffer, address: string): Buffer | undefined {
  let p;
  try {
    p = dnsPacket.decode(query);
  } catch {
    return undefined;
  }
  const q = p.questions?.[0];
  if (!q) return undefined;
  return dnsPacket.encode({
    type: 'response',
    id: p.id,
    flags: 0x8180,
    questions: [q],
    answers: q.type === 'A' ? [{ type: 'A', name: q.name, ttl: 60, class: 'IN', data: address }] : [],
  });
}

async function dest(cfg: DestConfig): Promise<void> {
  const key = readFileSync(cfg.keyFile, 'utf8');
  const cert = readFileSync(cfg.certFile, 'utf8');
  const accepted = (s: Socket): void => console.log(`ACCEPT ${s.remoteAddress ?? '?'}`);
  const http = createHttpServer({ keepAlive: false }, site);
  http.on('connection', accepted);
  const https = createHttpsServer({ key, cert }, (req, res) => {
    if (req.url !== '/dns-query') return site(req, res);
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const out = dnsAnswer(Buffer.concat(parts), cfg.abroad);
      if (!out) return void res.writeHead(400).end();
      res
        .writeHead(200, { 'content-type': 'application/dns-message', 'content-length': out.length })
        .end(out);
    });
  });
  https.on('connection', accepted);
  const udp = createSocket('udp4');
  udp.on('message', (msg, from) => {
    const out = dnsAnswer(msg, cfg.home);
    if (out) udp.send(out, from.port, from.address);
  });
  const tcpDns = createTcpServer((s) => {
    s.on('error', () => undefined);
    let buf = Buffer.alloc(0);
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c]).subarray(0, 65_536 + 2);
      while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        const out = dnsAnswer(buf.subarray(2, 2 + buf.readUInt16BE(0)), cfg.home);
        buf = buf.subarray(2 + buf.readUInt16BE(0));
        if (out) s.write(Buffer.concat([Buffer.from([out.length >> 8, out.length & 0xff]), out]));
      }
    });
  });
  const listen = (
    srv: {
      listen: (port: number, host: string, cb: () => void) => unknown;
      once: (e: 'error', cb: (e: Error) => void) => unknown;
    },
    port: number,
    host: string,
  ) =>
    new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(port, host, () => resolve());
    });
  await listen(http, 80, '0.0.0.0');
  await listen(https, 443, '0.0.0.0');
  await listen(tcpDns, 53, cfg.home);
  await new Promise<void>((resolve, reject) => {
    udp.once('error', reject);
    udp.bind(53, cfg.home, () => resolve());
  });
  console.log('READY');
}

// --- baseline ---------------------------------------------------------------------------------------

const BASELINE_PAGE =
  '<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>Welcome</title></head>\n' +
  '<body><h1>Welcome</h1><p>This site is under construction.</p></body>\n</html>\n';

/** An ordinary HTTPS site, as Node serves one: defaults everywhere, one static page, 404 elsewhere. */
async function baseline(cfg: BaselineConfig): Promise<void> {
  const server = createHttpsServer(
    { key: readFileSync(cfg.keyFile, 'utf8'), cert: readFileSync(cfg.certFile, 'utf8') },
    (req, res) => {
      if (req.url !== '/')
        return void res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found\n');
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(BASELINE_PAGE);
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.port, cfg.host, () => resolve());
  });
  console.log('READY');
}

// --- traffic ----------------------------------------------------------------------------------------

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: timed out`)), ms))),
  ]);
}

/** Reads exactly n bytes from a socket. */
function readN(s: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      if (buf.length >= n) {
        cleanup();
        if (buf.length > n) s.unshift(buf.subarray(n));
        resolve(buf.subarray(0, n));
      }
    };
    const onEnd = (): void => {
      cleanup();
      reject(new Error('closed during the SOCKS5 handshake'));
    };
    const cleanup = (): void => {
      s.off('data', onData);
      s.off('end', onEnd);
      s.off('error', reject);
    };
    s.on('data', onData);
    s.once('end', onEnd);
    s.once('error', reject);
  });
}

/** A TCP connection to ip:port through a SOCKS5 proxy on 127.0.0.1 (no auth, CONNECT, IPv4). */
async function socksConnect(socksPort: number, ip: string, port: number): Promise<Socket> {
  const s = connect({ host: '127.0.0.1', port: socksPort });
  s.on('error', () => undefined);
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  s.write(Buffer.from([5, 1, 0]));
  const hello = await readN(s, 2);
  if (hello[0] !== 5 || hello[1] !== 0) throw new Error('SOCKS5: no-auth refused');
  const req = Buffer.from([5, 1, 0, 1, ...ip.split('.').map(Number), port >> 8, port & 0xff]);
  s.write(req);
  const rep = await readN(s, 10);
  if (rep[1] !== 0) throw new Error(`SOCKS5: CONNECT refused (reply ${rep[1]})`);
  s.pause();
  return s;
}

/** One HTTP/1.1 request with Connection: close over `s`; resolves with the status and body size. */
function httpOver(
  s: NodeJS.ReadWriteStream & { destroy(): void },
  method: string,
  path: string,
  host: string,
  body?: Buffer,
): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    let raw = Buffer.alloc(0);
    let total = 0;
    s.on('data', (c: Buffer) => {
      total += c.length;
      if (raw.length < 4096) raw = Buffer.concat([raw, c]);
    });
    s.on('end', () => {
      const head = raw.toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0);
      const headerEnd = head.indexOf('\r\n\r\n');
      s.destroy();
      resolve({ status, bytes: headerEnd < 0 ? 0 : total - headerEnd - 4 });
    });
    s.on('error', reject);
    const headers = [
      `${method} ${path} HTTP/1.1`,
      `Host: ${host}`,
      'User-Agent: pigeon-lab',
      'Connection: close',
      ...(body ? [`Content-Length: ${body.length}`, 'Content-Type: application/octet-stream'] : []),
    ];
    s.write(`${headers.join('\r\n')}\r\n\r\n`);
    if (body) s.write(body);
    s.resume();
  });
}

function dnsQuery(port: number, name: string): Promise<string[]> {
  const sock = createSocket('udp4');
  const id = randomBytes(2).readUInt16BE(0);
  const q = dnsPacket.encode({
    type: 'query',
    id,
    flags: 0x0100,
    questions: [{ name, type: 'A', class: 'IN' }],
  });
  return withTimeout(
    new Promise<string[]>((resolve, reject) => {
      sock.on('error', reject);
      sock.on('message', (m) => {
        try {
          const p = dnsPacket.decode(m);
          if (p.id !== id) return;
          resolve((p.answers ?? []).flatMap((a) => (a.type === 'A' ? [a.data] : [])));
        } catch (e) {
          reject(e as Error);
        }
      });
      // One retry: the first query may race the tunnel's first connection.
      sock.send(q, port, '127.0.0.1');
      setTimeout(() => sock.send(q, port, '127.0.0.1'), 3000).unref();
    }),
    8000,
    `DNS ${name}`,
  ).finally(() => sock.close());
}

const HTTP_SIZES = [200, 1500, 6000, 20_000, 70_000, 300, 9000, 150_000];

async function traffic(cfg: TrafficConfig): Promise<TrafficResult> {
  const ca = readFileSync(cfg.caFile, 'utf8');
  const result: TrafficResult = {
    http: { ok: 0, failed: 0, bytes: 0 },
    https: { ok: 0, failed: 0 },
    dns: { blocked: [], home: [] },
    directHttps: false,
    errors: [],
  };
  const fail = (what: string, e: unknown): void => {
    if (result.errors.length < 10) result.errors.push(`${what}: ${(e as Error).message}`);
  };
  // DNS through Pigeon's listener: the blocked name by DoH through the tunnel, the home name in plaintext.
  result.dns.blocked = await dnsQuery(cfg.dnsPort, cfg.blockedName).catch((e) => (fail('DNS', e), []));
  result.dns.home = await dnsQuery(cfg.dnsPort, cfg.homeName).catch((e) => (fail('DNS', e), []));

  const jobs: (() => Promise<void>)[] = [];
  for (let i = 0; i < cfg.connections; i++) {
    jobs.push(async () => {
      try {
        const s = await socksConnect(cfg.socksPort, cfg.abroad, 80);
        const upload = i % 3 === 2 ? randomBytes(200 + ((i * 7919) % 6000)) : undefined;
        const r = await withTimeout(
          upload
            ? httpOver(s, 'POST', '/upload', cfg.abroad, upload)
            : httpOver(s, 'GET', `/bytes/${HTTP_SIZES[i % HTTP_SIZES.length]}`, cfg.abroad),
          15_000,
          'HTTP',
        );
        if (r.status !== 200) throw new Error(`HTTP status ${r.status}`);
        result.http.ok++;
        result.http.bytes += r.bytes;
      } catch (e) {
        result.http.failed++;
        fail('HTTP', e);
      }
    });
  }
  for (let i = 0; i < cfg.httpsConnections; i++) {
    jobs.push(async () => {
      try {
        const raw = await socksConnect(cfg.socksPort, cfg.abroad, 443);
        // A browser-sized ClientHello: OpenSSL's padding extension (SSL_OP_TLSEXT_PADDING) makes it 517
        // bytes, as curl's and browsers' are (Node's own is about 380).
        const s = tlsConnect({
          socket: raw,
          servername: cfg.blockedName,
          ca,
          ALPNProtocols: ['http/1.1'],
          secureOptions: SSL_OP_TLSEXT_PADDING,
        });
        await withTimeout(
          new Promise<void>((resolve, reject) => {
            s.once('secureConnect', resolve);
            s.once('error', reject);
          }),
          10_000,
          'TLS',
        );
        const r = await withTimeout(httpOver(s, 'GET', '/bytes/3000', cfg.blockedName), 15_000, 'HTTPS');
        if (r.status !== 200) throw new Error(`HTTPS status ${r.status}`);
        result.https.ok++;
      } catch (e) {
        result.https.failed++;
        fail('HTTPS', e);
      }
    });
  }
  // Four at a time: the connections overlap, as an app's do.
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < jobs.length) await jobs[next++]!();
    }),
  );
  // The SNI control: the same blocked name, directly to the home site (the censor must see this one).
  try {
    const s = tlsConnect({ host: cfg.home, port: 443, servername: cfg.blockedName, ca });
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        s.once('secureConnect', resolve);
        s.once('error', reject);
      }),
      10_000,
      'direct TLS',
    );
    s.destroy();
    result.directHttps = true;
  } catch (e) {
    fail('direct HTTPS', e);
  }
  return result;
}

// --- entry ------------------------------------------------------------------------------------------

async function main(role: string, configFile: string): Promise<void> {
  const cfg: unknown = JSON.parse(readFileSync(configFile, 'utf8'));
  // Never outlive the lab: exit when the parent is gone (a killed lab leaves no servers behind).
  const parent = process.ppid;
  setInterval(() => process.ppid !== parent && process.exit(4), 1000).unref();
  if (role === 'dest') {
    await dest(cfg as DestConfig); // serves until the lab stops it
    return;
  }
  if (role === 'baseline') {
    await baseline(cfg as BaselineConfig); // serves until the lab stops it
    return;
  }
  const watchdog = setTimeout(() => {
    console.log(`RESULT ${JSON.stringify({ error: `${role} timed out` })}`);
    process.exit(3);
  }, 120_000);
  watchdog.unref();
  if (role === 'traffic') {
    const r = await traffic(cfg as TrafficConfig);
    console.log(`RESULT ${JSON.stringify(r)}`);
    process.exit(0);
  }
  if (role === 'probe') {
    const c = cfg as ProbeConfig;
    const recorded = c.recorded.map((b) => Buffer.from(b, 'base64'));
    const o = { host: c.host, port: c.port, waitMs: c.waitMs, finWaitMs: c.finWaitMs };
    const r = c.baseline
      ? await probeAgainstBaseline({
          ...o,
          baseline: c.baseline,
          recorded: recorded.map((bytes, i) => ({
            bytes,
            ...(c.recordedTls?.[i] ?? { flights: 1, psk: false }),
          })),
        })
      : await probeServer({ ...o, recorded });
    console.log(`RESULT ${JSON.stringify(r)}`);
    process.exit(0);
  }
  throw new Error(`unknown role ${role}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main(process.argv[2] ?? '', process.argv[3] ?? '').catch((e: unknown) => {
    console.log(`RESULT ${JSON.stringify({ error: (e as Error).stack ?? String(e) })}`);
    process.exit(1);
  });
}
