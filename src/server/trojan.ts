// The server's Trojan inbound (trojan-gfw docs/protocol.md): a TLS listener that looks like an ordinary
// HTTPS site. The first decrypted record decides, as in trojan-gfw: a valid header with a known password
// hash is relayed (CONNECT to a TCP destination, UDP ASSOCIATE through a full-cone UDP socket) under the
// same private-address guard and dial policy as the Shadowsocks inbound; anything else — a wrong hash,
// junk, a browser's request, a probe — is handed with the bytes already read to the cover website.
// Abuse limits: unauthenticated connections (handshaking, waiting for their first record, or at the
// cover) are capped per source address and in total (the oldest is closed to make room), the handshake
// and the first record each have a deadline, and malformed ClientHellos are dropped.
import { createServer as createTcpServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { generate } from 'selfsigned';
import {
  encodeTrojanUdpFrame,
  parseTrojanRequest,
  TROJAN_CONNECT,
  TrojanUdpReader,
  type TrojanRequest,
} from '../wire/trojan.js';
import { makeAddress } from '../wire/socks-address.js';
import { WireError } from '../wire/errors.js';
import { dialDirect, DialError, UdpResolver, type DialPolicy } from '../net/dialer.js';
import { relay } from '../net/relay.js';
import { listenTcp } from '../net/listen.js';
import { FullConeSocket } from '../net/udp-nat.js';
import { DEFAULT_SHAPING, ShapedStream, type ShapingOptions } from '../net/tls-client.js';
import { silentLog, type Log } from '../log.js';
import { createCoverSite, type CoverOptions, type CoverSite } from './cover-site.js';
import { NO_EVENTS, type ServerEvents } from './users.js';
import type { ConnectionRegistry } from './connections.js';

/** Who may use the inbound: one Trojan password (its SHA-224 hex, see trojanPasswordHash) per key. */
export interface TrojanUsers {
  lookup(hashHex: string): { id: string } | undefined;
  /** Checked on every relayed chunk, so a paused or exhausted key stops within one chunk. */
  isAllowed?(id: string, now: number): boolean;
  /** Bytes relayed for a key (both directions count). */
  addUsage?(id: string, bytes: number): void;
  /** Marks the key as seen (called on every new connection). */
  touch?(id: string, now: number): void;
}

export interface TrojanServerConfig {
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** PEM certificate chain and private key. */
  cert: string | Buffer;
  key: string | Buffer;
  users: TrojanUsers;
  /** The cover website: the built-in static site by default. */
  cover?: CoverOptions | CoverSite;
  events?: ServerEvents;
  /** Relays are registered here per key, so that `registry.enforce` closes a disabled key's connections. */
  registry?: ConnectionRegistry;
  allowPrivate?: boolean;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  udpTimeoutMs?: number;
  /** From TCP accept to the end of the TLS handshake. */
  handshakeTimeoutMs?: number;
  /** From the end of the handshake to the first record (which must hold the whole Trojan header). */
  firstDataTimeoutMs?: number;
  maxUnauthenticatedPerAddress?: number;
  maxUnauthenticated?: number;
  /** ALPN offered, like a web server: h2 and http/1.1 by default. */
  alpn?: string[];
  /** Record shaping of the first downstream writes (docs/tls-fingerprint.md); false turns it off. */
  shaping?: ShapingOptions | false;
  log?: Log;
}

export const TROJAN_DEFAULTS = {
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  udpTimeoutMs: 120_000,
  handshakeTimeoutMs: 10_000,
  firstDataTimeoutMs: 15_000,
  maxUnauthenticatedPerAddress: 64,
  maxUnauthenticated: 2048,
  alpn: ['h2', 'http/1.1'],
} as const;

export interface TrojanServerStats {
  /** Connections not (yet) authenticated: handshaking, awaiting their first record, or at the cover. */
  unauthenticated: number;
  cover: number;
  /** Authenticated relays (TCP streams and UDP associations). */
  relaying: number;
}

export interface RunningTrojanServer {
  port: number;
  stats(): TrojanServerStats;
  close(): Promise<void>;
}

interface Pending {
  raw: Socket;
  addr: string;
  key: string;
  timer: NodeJS.Timeout;
  atCover: boolean;
}

const HTTP_METHOD = /^(?:GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH|CONNECT|TRACE|PRI) /;

/** nginx's answer to plain HTTP on an HTTPS port. */
function plainHttpResponse(): string {
  const body =
    '<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>\r\n<body>\r\n' +
    '<center><h1>400 Bad Request</h1></center>\r\n<center>The plain HTTP request was sent to HTTPS port</center>\r\n' +
    '<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n';
  return (
    `HTTP/1.1 400 Bad Request\r\nServer: nginx\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Content-Type: text/html\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`
  );
}

const plainIp = (ip: string | undefined): string => (ip ?? '').replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
const endpoint = (s: { remoteAddress?: string; remotePort?: number }): string =>
  `${plainIp(s.remoteAddress)}|${s.remotePort ?? 0}`;

export async function startTrojanServer(cfg: TrojanServerConfig): Promise<RunningTrojanServer> {
  const log = cfg.log ?? silentLog;
  const events = cfg.events ?? NO_EVENTS;
  const users = cfg.users;
  const policy: DialPolicy = {
    allowPrivate: cfg.allowPrivate ?? false,
    connectTimeoutMs: cfg.connectTimeoutMs ?? TROJAN_DEFAULTS.connectTimeoutMs,
  };
  const idleTimeoutMs = cfg.idleTimeoutMs ?? TROJAN_DEFAULTS.idleTimeoutMs;
  const udpTimeoutMs = cfg.udpTimeoutMs ?? TROJAN_DEFAULTS.udpTimeoutMs;
  const handshakeTimeoutMs = cfg.handshakeTimeoutMs ?? TROJAN_DEFAULTS.handshakeTimeoutMs;
  const firstDataTimeoutMs = cfg.firstDataTimeoutMs ?? TROJAN_DEFAULTS.firstDataTimeoutMs;
  const perAddress = cfg.maxUnauthenticatedPerAddress ?? TROJAN_DEFAULTS.maxUnauthenticatedPerAddress;
  const total = cfg.maxUnauthenticated ?? TROJAN_DEFAULTS.maxUnauthenticated;
  const shaping = cfg.shaping === false ? undefined : (cfg.shaping ?? DEFAULT_SHAPING);
  const ownCover = !cfg.cover || !('handle' in cfg.cover);
  const cover: CoverSite =
    cfg.cover && 'handle' in cfg.cover ? cfg.cover : createCoverSite(cfg.cover ?? { kind: 'static' });
  const resolver = new UdpResolver(policy);

  // Unauthenticated connections: in accept order (oldest first), per source address, and by endpoint
  // so that the TLS socket finds its raw socket's entry.
  const pending = new Map<Socket, Pending>();
  const byAddr = new Map<string, Set<Pending>>();
  const byEndpoint = new Map<string, Pending>();
  const relays = new Set<() => void>();

  const release = (p: Pending): void => {
    if (!pending.delete(p.raw)) return;
    clearTimeout(p.timer);
    const set = byAddr.get(p.addr);
    set?.delete(p);
    if (set?.size === 0) byAddr.delete(p.addr);
    if (byEndpoint.get(p.key) === p) byEndpoint.delete(p.key);
  };

  const evict = (p: Pending | undefined): void => {
    if (!p) return;
    release(p);
    p.raw.destroy();
  };

  const admit = (raw: Socket): Pending => {
    const addr = plainIp(raw.remoteAddress);
    const set = byAddr.get(addr);
    if (set && set.size >= perAddress) evict(set.values().next().value);
    if (pending.size >= total) evict(pending.values().next().value);
    const p: Pending = {
      raw,
      addr,
      key: endpoint(raw),
      atCover: false,
      timer: setTimeout(() => {
        release(p);
        raw.destroy();
      }, handshakeTimeoutMs),
    };
    pending.set(raw, p);
    if (set && byAddr.has(addr)) set.add(p);
    else byAddr.set(addr, new Set([p]));
    byEndpoint.set(p.key, p);
    raw.once('close', () => release(p));
    return p;
  };

  const tlsServer = createTlsServer({
    cert: cfg.cert,
    key: cfg.key,
    ALPNProtocols: cfg.alpn ?? [...TROJAN_DEFAULTS.alpn],
    handshakeTimeout: handshakeTimeoutMs,
  });
  tlsServer.on('tlsClientError', (_err, s: TLSSocket) => s.destroy());
  tlsServer.on('secureConnection', (s: TLSSocket) => onSecure(s));

  const toCover = (s: TLSSocket, p: Pending | undefined, head: Buffer, reason: string): void => {
    events.authFailure(reason);
    log.debug({ reason }, 'trojan: to the cover site');
    if (p) {
      clearTimeout(p.timer);
      p.atCover = true;
    }
    cover.handle(s, head);
  };

  function onSecure(s: TLSSocket): void {
    s.on('error', () => s.destroy());
    const p = byEndpoint.get(endpoint(s));
    if (!p) {
      s.destroy(); // evicted or closed while handshaking
      return;
    }
    clearTimeout(p.timer);
    // Half-open again once TLS is up, so a relayed client's FIN reaches the destination.
    p.raw.allowHalfOpen = true;
    s.allowHalfOpen = true;
    // Like nginx's client_header_timeout: a connection that says nothing is closed without a word.
    p.timer = setTimeout(() => {
      release(p);
      s.destroy();
    }, firstDataTimeoutMs);
    const onEnd = (): void => {
      release(p);
      s.end();
    };
    s.once('end', onEnd);
    s.once('data', (first: Buffer) => {
      s.pause();
      s.removeListener('end', onEnd);
      const r = parseTrojanRequest(first);
      if (r.kind !== 'request') return toCover(s, p, first, r.kind === 'invalid' ? r.reason : 'short-header');
      const user = users.lookup(r.request.hash);
      if (!user) return toCover(s, p, first, 'unknown-key');
      if (users.isAllowed && !users.isAllowed(user.id, Date.now()))
        return toCover(s, p, first, 'key-disabled');
      release(p);
      users.touch?.(user.id, Date.now());
      const rest = first.subarray(r.request.length);
      if (r.request.command === TROJAN_CONNECT) void connect(s, user.id, r.request, rest);
      else associate(s, user.id, rest);
    });
  }

  const account = (id: string, dir: 'in' | 'out', n: number, stop: () => void): void => {
    events.bytes(id, dir, n);
    users.addUsage?.(id, n);
    if (users.isAllowed && !users.isAllowed(id, Date.now())) stop();
  };

  const track = (id: string, close: () => void): (() => void) => {
    relays.add(close);
    const unregister = cfg.registry?.add(id, close);
    return () => {
      relays.delete(close);
      unregister?.();
    };
  };

  async function connect(s: TLSSocket, id: string, req: TrojanRequest, rest: Buffer): Promise<void> {
    let remote: Socket;
    try {
      remote = await dialDirect(req.address, policy);
    } catch (e) {
      const kind = e instanceof DialError ? e.kind : 'other';
      events.connectionError(kind);
      log.debug({ kind }, 'trojan: dial failed');
      s.destroy();
      return;
    }
    if (s.destroyed) {
      remote.destroy();
      return;
    }
    const stream = new ShapedStream(s, { initial: rest, shaping });
    const untrack = track(id, () => stream.destroy());
    events.connectionOpened(id, 'tcp');
    await relay(stream, remote, {
      idleTimeoutMs,
      onData: (dir, n) => account(id, dir === 'up' ? 'in' : 'out', n, () => stream.destroy()),
    });
    untrack();
    events.connectionClosed(id, 'tcp');
  }

  function associate(s: TLSSocket, id: string, rest: Buffer): void {
    const stream = new ShapedStream(s, { shaping });
    const reader = new TrojanUdpReader();
    let idle: NodeJS.Timeout | undefined;
    let closed = false;
    let untrack = (): void => undefined;
    const close = (): void => {
      if (closed) return;
      closed = true;
      clearTimeout(idle);
      out.close();
      stream.destroy();
      untrack();
      events.connectionClosed(id, 'udp');
    };
    const touch = (): void => {
      clearTimeout(idle);
      idle = setTimeout(close, udpTimeoutMs);
    };
    const out = new FullConeSocket((payload, from) => {
      if (closed || stream.writableLength > 1 << 20) return; // a stalled client loses datagrams, not memory
      const frame = encodeTrojanUdpFrame(makeAddress(from.address, from.port), payload);
      account(id, 'out', frame.length, close);
      touch();
      stream.write(frame);
    });
    untrack = track(id, close);
    events.connectionOpened(id, 'udp');
    const onChunk = (chunk: Buffer): void => {
      let frames;
      try {
        frames = reader.push(chunk);
      } catch (e) {
        log.debug({ err: e instanceof WireError ? e.code : 'error' }, 'trojan: bad UDP frame');
        return close();
      }
      if (frames.length) touch();
      account(id, 'in', chunk.length, close);
      for (const f of frames) {
        const payload = Buffer.from(f.payload);
        resolver.resolve(f.address).then(
          (ip) => out.send(payload, ip, f.address.port),
          (e: unknown) => events.connectionError(e instanceof DialError ? e.kind : 'other'),
        );
      }
    };
    stream.on('data', onChunk);
    stream.on('end', close);
    stream.on('error', close);
    stream.on('close', close);
    touch();
    if (rest.length) onChunk(rest);
  }

  // Half-open (the TLS socket inherits it), so a relayed client's FIN reaches the destination while
  // replies still flow back.
  const tcp: Server = createTcpServer({ allowHalfOpen: true }, (raw) => {
    raw.on('error', () => raw.destroy());
    raw.once('end', () => raw.end()); // a FIN before any byte (TLS takes the socket over after one)
    raw.setNoDelay(true);
    const p = admit(raw);
    // Peek at the first bytes: plain HTTP gets nginx's "plain HTTP request was sent to HTTPS port";
    // anything else goes to TLS (which drops what is not a ClientHello).
    raw.once('data', (d: Buffer) => {
      raw.pause();
      if (HTTP_METHOD.test(d.subarray(0, 8).toString('latin1'))) {
        release(p);
        raw.end(plainHttpResponse());
        setTimeout(() => raw.destroy(), 1000).unref();
        return;
      }
      raw.unshift(d);
      // Until the handshake is done a client's FIN ends the connection, as in any web server.
      raw.allowHalfOpen = false;
      if (!raw.destroyed) tlsServer.emit('connection', raw);
    });
  });
  tcp.on('error', (e) => log.error({ err: e.message }, 'trojan listener error'));
  const port = await listenTcp(tcp, makeAddress(cfg.host, cfg.port));
  log.info({ port }, 'trojan: listening');

  return {
    port,
    stats: () => ({
      unauthenticated: pending.size,
      cover: [...pending.values()].filter((p) => p.atCover).length,
      relaying: relays.size,
    }),
    close: async () => {
      const closed = new Promise<void>((r) => tcp.close(() => r()));
      for (const p of [...pending.values()]) evict(p);
      for (const close of [...relays]) close();
      if (ownCover) cover.close();
      await closed;
    },
  };
}

export interface SelfSignedCertificate {
  cert: string;
  key: string;
  /** Uppercase hex SHA-256 of the certificate, as a `pcs=` URI parameter pins it. */
  sha256: string;
}

/**
 * A self-signed EC P-256 certificate for `names` (DNS names and/or IP addresses; the first is the CN),
 * valid ten years from an hour ago. For servers without a CA-issued certificate: clients then need
 * `allowInsecure=1` or the `pcs=` fingerprint.
 */
export async function selfSignedCertificate(names: string[]): Promise<SelfSignedCertificate> {
  if (names.length === 0) throw new Error('a certificate needs at least one name');
  const notBeforeDate = new Date(Date.now() - 3_600_000);
  const pems = await generate([{ name: 'commonName', value: names[0]! }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 3652 * 86_400_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: names.map((n) => (isIP(n) ? { type: 7 as const, ip: n } : { type: 2 as const, value: n })),
      },
    ],
  });
  const sha256 = new X509Certificate(pems.cert).fingerprint256.replace(/:/g, '').toUpperCase();
  return { cert: pems.cert, key: pems.private, sha256 };
}
