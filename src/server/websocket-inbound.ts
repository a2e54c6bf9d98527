// The server's WebSocket inbound, for a server behind a CDN that proxies WebSockets: an HTTP or HTTPS
// listener that upgrades `GET <path>` (and, when configured, only for one Host) to a WebSocket and
// serves the Shadowsocks stream inside it, as shadowsocks' v2ray-plugin (`server;[tls;]host=…;path=…`)
// and v2ray's ws transport do. What is inside is found from its first bytes:
// - Mux.Cool (v2ray-plugin's clients by default, `mux=1`): every session is one Shadowsocks connection;
// - anything else (v2ray-plugin with `mux=0`, v2ray's shadowsocks outbound over ws, Pigeon's
//   WebSocketOutbound with `mux=0`): the whole WebSocket is one Shadowsocks connection.
// Either way each connection goes to the same handler as the TCP inbound (shadowsocks-tcp.ts), with
// its probe resistance. Every other request, malformed ones included, gets a small nginx-like 404
// (or 400) page. Connections that have not upgraded yet are capped per client address and in all,
// and dropped after `requestTimeoutMs` (slowloris, TLS handshakes that never finish).
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { Admission, DEFAULT_ADMISSION, type AdmissionLimits } from '../net/admission.js';
import { listenTcp } from '../net/listen.js';
import { MuxCarrier } from '../net/mux-cool-stream.js';
import { WebSocketStream } from '../net/websocket-stream.js';
import { sniffMuxCool } from '../wire/mux-cool.js';
import type { Address } from '../wire/socks-address.js';
import {
  handleShadowsocksConnection,
  type ConnectionRemote,
  type TcpInboundOptions,
} from './shadowsocks-tcp.js';

export interface WebSocketInboundConfig {
  listen: Address;
  /** The URL path that upgrades (v2ray-plugin's `path`; its default is "/"). The query is ignored. */
  path: string;
  /** When set, the Host header must name it (v2ray-plugin's `host`); any port in the header is ignored. */
  host?: string;
  /** PEM certificate (chain) and key: serve HTTPS. Without them plain HTTP, for a CDN that ends TLS. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** The Shadowsocks side: key ring, users, events, registry, replay filters, dial policy, timeouts, log. */
  shadowsocks: TcpInboundOptions;
  /**
   * Take the client's address from this request header (`cf-connecting-ip`, `x-forwarded-for`: the
   * first entry) instead of the TCP peer, which behind a CDN is an edge. Only when every request
   * comes through a proxy that sets it: anyone reaching the port directly can write any value.
   */
  clientAddressHeader?: string;
  /** Caps on connections that have not upgraded yet; behind a CDN raise perAddress (edges are few). */
  admission?: AdmissionLimits;
  /** Time from accepting a connection to a finished upgrade (TLS handshake and request head); 10 s. */
  requestTimeoutMs?: number;
  /** The largest WebSocket message accepted (default 1 MiB); larger ones close the WebSocket (1009). */
  maxMessageBytes?: number;
  /** Ping every so often (default 30 s): CDNs close WebSockets that stay quiet for about 100 s. */
  pingIntervalMs?: number;
  /** Mux.Cool sessions open at once on one WebSocket (default 128). */
  maxSessionsPerConnection?: number;
}

export interface WebSocketInbound {
  port: number;
  close(): Promise<void>;
}

const NGINX_PAGE = (code: string): string =>
  `<html>\r\n<head><title>${code}</title></head>\r\n<body>\r\n<center><h1>${code}</h1></center>\r\n` +
  `<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n`;

/** A whole HTTP/1.1 error response, the way nginx words it. */
function errorResponse(code: '404 Not Found' | '400 Bad Request', head = false): string {
  const body = NGINX_PAGE(code);
  return (
    `HTTP/1.1 ${code}\r\nServer: nginx\r\nDate: ${new Date().toUTCString()}\r\n` +
    `Content-Type: text/html\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n` +
    (head ? '' : body)
  );
}

function notFound(req: IncomingMessage, res: ServerResponse): void {
  const body = NGINX_PAGE('404 Not Found');
  res.writeHead(404, {
    Server: 'nginx',
    'Content-Type': 'text/html',
    'Content-Length': Buffer.byteLength(body),
    Connection: 'close',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

const WS_KEY = /^[A-Za-z0-9+/]{22}==$/;

/** Whether `req` is a well-formed WebSocket upgrade for this inbound. */
function acceptable(req: IncomingMessage, cfg: WebSocketInboundConfig): boolean {
  const h = req.headers;
  if (req.method !== 'GET' || (h.upgrade ?? '').toLowerCase() !== 'websocket') return false;
  if (!WS_KEY.test(h['sec-websocket-key'] ?? '') || h['sec-websocket-version'] !== '13') return false;
  const url = req.url ?? '';
  const q = url.indexOf('?');
  if ((q < 0 ? url : url.slice(0, q)) !== cfg.path) return false;
  if (cfg.host === undefined) return true;
  const host = (h.host ?? '')
    .replace(/:\d+$/, '')
    .replace(/^\[(.*)\]$/, '$1')
    .toLowerCase();
  return host === cfg.host.toLowerCase();
}

function clientAddress(req: IncomingMessage, header: string | undefined): string {
  if (header) {
    const v = req.headers[header.toLowerCase()];
    const first = (Array.isArray(v) ? v[0] : v)?.split(',')[0]?.trim();
    if (first) return first;
  }
  return req.socket.remoteAddress ?? '';
}

const key = (s: { remoteAddress?: string; remotePort?: number }): string =>
  `${s.remoteAddress ?? ''}|${s.remotePort ?? 0}`;

export async function startWebSocketInbound(cfg: WebSocketInboundConfig): Promise<WebSocketInbound> {
  if (!cfg.path.startsWith('/')) throw new Error(`the WebSocket path must start with "/", got "${cfg.path}"`);
  const log = cfg.shadowsocks.log;
  const requestTimeoutMs = cfg.requestTimeoutMs ?? 10_000;
  const admission = new Admission(cfg.admission ?? DEFAULT_ADMISSION);
  const serverOpts = {
    requestTimeout: requestTimeoutMs,
    headersTimeout: requestTimeoutMs,
    connectionsCheckingInterval: Math.min(1000, requestTimeoutMs),
    keepAliveTimeout: 5000,
    maxHeaderSize: 8192,
  };
  const server: Server = cfg.tls
    ? createHttpsServer({
        ...serverOpts,
        cert: cfg.tls.cert,
        key: cfg.tls.key,
        minVersion: 'TLSv1.2',
        ALPNProtocols: ['http/1.1'],
        handshakeTimeout: requestTimeoutMs,
      })
    : createHttpServer(serverOpts);
  const wss = new WebSocketServer({
    noServer: true,
    clientTracking: false,
    perMessageDeflate: false,
    maxPayload: cfg.maxMessageBytes ?? 1024 * 1024,
  });
  const sockets = new Set<Socket>();
  /** Connections not upgraded yet, by TCP peer address and port: end their admission accounting. */
  const unproven = new Map<string, () => void>();

  server.on('connection', (socket: Socket) => {
    const release = admission.admit(socket.remoteAddress ?? '');
    if (!release) {
      socket.destroy();
      return;
    }
    const k = key(socket);
    sockets.add(socket);
    unproven.set(k, release);
    const timer = setTimeout(() => {
      if (unproven.has(k)) socket.destroy();
    }, requestTimeoutMs);
    timer.unref();
    socket.once('close', () => {
      clearTimeout(timer);
      sockets.delete(socket);
      if (unproven.get(k) === release) unproven.delete(k);
      release();
    });
  });

  server.on('request', notFound);

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    if (!acceptable(req, cfg)) {
      socket.end(errorResponse('404 Not Found', req.method === 'HEAD'));
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      const k = key(req.socket);
      unproven.get(k)?.();
      unproven.delete(k);
      const remote = {
        address: clientAddress(req, cfg.clientAddressHeader),
        port: req.socket.remotePort ?? 0,
      };
      serveWebSocket(new WebSocketStream(ws, { pingIntervalMs: cfg.pingIntervalMs ?? 30_000 }), remote, cfg);
    });
  });

  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const timedOut = err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'ERR_HTTP_HEADERS_TIMEOUT';
    if (timedOut || !socket.writable) socket.destroy();
    else socket.end(errorResponse('400 Bad Request'));
  });
  server.on('tlsClientError', (_e: Error, s: Duplex) => s.destroy());
  server.on('error', (e: Error) => log.error({ err: e.message }, 'websocket listener error'));

  const port = await listenTcp(server, cfg.listen);
  log.info({ port, tls: !!cfg.tls }, 'websocket inbound listening');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
        wss.close();
      }),
  };
}

/** One upgraded WebSocket: sniff its first bytes, then serve it as Mux.Cool sessions or as one stream. */
function serveWebSocket(
  stream: WebSocketStream,
  remote: ConnectionRemote,
  cfg: WebSocketInboundConfig,
): void {
  const ss = cfg.shadowsocks;
  let seen: Buffer = Buffer.alloc(0);
  // The same timeout, jitter included, as the Shadowsocks handler's for what it judges.
  const jitter = randomInt(0, Math.max(1, Math.floor(ss.handshakeTimeoutMs / 10)));
  const timer = setTimeout(() => stream.destroy(), ss.handshakeTimeoutMs + jitter);
  const onError = (): void => {
    stream.destroy();
  };
  const done = (): void => {
    clearTimeout(timer);
    stream.removeListener('data', onData);
    stream.removeListener('end', onEnd);
    stream.removeListener('error', onError);
  };
  // Too short to be anything before the client closed: a FIN back, as the TCP inbound answers.
  const onEnd = (): void => {
    done();
    stream.on('error', () => undefined);
    stream.end();
  };
  const onData = (d: Buffer): void => {
    seen = seen.length ? Buffer.concat([seen, d]) : d;
    const kind = sniffMuxCool(seen);
    if (kind === 'need-more') return;
    done();
    stream.pause();
    stream.unshift(seen);
    if (kind === 'plain') {
      handleShadowsocksConnection(stream, remote, ss);
      stream.resume();
      return;
    }
    stream.on('error', () => undefined); // reported to the sessions through 'close'
    new MuxCarrier(stream, {
      role: 'server',
      maxSessions: cfg.maxSessionsPerConnection ?? 128,
      idleTimeoutMs: ss.handshakeTimeoutMs,
      onSession: (session) => handleShadowsocksConnection(session, remote, ss),
    });
  };
  stream.on('data', onData);
  stream.on('end', onEnd);
  stream.on('error', onError);
}
