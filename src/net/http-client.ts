// HTTP(S) requests over a stream that something else dials — a tunnel, a server group, direct — so
// DNS-over-HTTPS, health checks and subscription fetches can go through the tunnel. Node's own http
// client does the protocol; we only hand it the connection.
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { connect as tlsConnect } from 'node:tls';
import type { Duplex } from 'node:stream';
import { isIP } from 'node:net';
import { makeAddress, type Address } from '../wire/socks-address.js';

export type StreamDial = (target: Address) => Promise<Duplex>;

export interface HttpRequestOptions {
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: Buffer;
  /** Extra trusted CA certificates (PEM), for servers with a private CA. */
  ca?: string | Buffer;
  /** Whole request, connect to last byte. */
  timeoutMs: number;
  /** Responses larger than this are cut off with an error. */
  maxBytes?: number;
}

export interface HttpResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export class HttpClientError extends Error {
  override name = 'HttpClientError';
}

type AnyAgent = HttpAgent | HttpsAgent;

/** An http(s) Agent whose connections come from `dial` (TLS on top for https). */
function dialAgent(
  dial: StreamDial,
  secure: boolean,
  target: { host: string; port: number },
  o: { ca?: string | Buffer; keepAlive: boolean; isDone?: () => boolean },
): AnyAgent {
  const createConnection = (_o: unknown, cb: (err: Error | null, s?: Duplex) => void): undefined => {
    dial(makeAddress(target.host, target.port)).then(
      (stream) => {
        if (o.isDone?.()) return void stream.destroy();
        if (!secure) return cb(null, stream);
        const tls = tlsConnect({
          socket: stream as never,
          // `host` is what the certificate is checked against (an IP literal too); SNI carries names only.
          host: target.host,
          servername: isIP(target.host) ? undefined : target.host,
          ALPNProtocols: ['http/1.1'],
          ca: o.ca,
        });
        // Without a private CA the system's roots apply (tls.connect's default when ca is unset).
        cb(null, tls);
      },
      (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))),
    );
    return undefined;
  };
  const agentOpts = o.keepAlive
    ? { keepAlive: true, maxSockets: 4, maxFreeSockets: 2, timeout: 60_000 }
    : { keepAlive: false, maxSockets: 1 };
  const agent = secure ? new HttpsAgent(agentOpts) : new HttpAgent(agentOpts);
  (agent as unknown as { createConnection: typeof createConnection }).createConnection = createConnection;
  return agent;
}

/**
 * Kept-alive connections through `dial`, one agent per origin: for requests that repeat (DNS over
 * HTTPS through the tunnel), so each one does not pay a new tunnel connection and TLS handshake.
 */
export class HttpConnectionPool {
  private readonly agents = new Map<string, AnyAgent>();

  constructor(
    private readonly dial: StreamDial,
    private readonly ca?: string | Buffer,
  ) {}

  agentFor(secure: boolean, host: string, port: number): AnyAgent {
    const key = `${secure ? 's' : ''}${host}:${port}`;
    let a = this.agents.get(key);
    if (!a) {
      a = dialAgent(this.dial, secure, { host, port }, { ca: this.ca, keepAlive: true });
      this.agents.set(key, a);
    }
    return a;
  }

  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }
}

/**
 * One request over a stream that `dial` opens: a connection of its own (closed after), or one of
 * `opts.pool`'s kept-alive connections.
 */
export function httpRequestVia(
  dial: StreamDial,
  url: string,
  opts: HttpRequestOptions & { pool?: HttpConnectionPool },
): Promise<HttpResponse> {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return Promise.reject(new HttpClientError(`not a URL: ${url}`));
  }
  const secure = u.protocol === 'https:';
  if (!secure && u.protocol !== 'http:')
    return Promise.reject(new HttpClientError(`not an http(s) URL: ${url}`));
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const port = Number(u.port) || (secure ? 443 : 80);
  const maxBytes = opts.maxBytes ?? 4 * 1024 * 1024;

  return new Promise((resolve, reject) => {
    let done = false;
    const finish = (err: Error | undefined, res?: HttpResponse): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err) reject(err);
      else resolve(res as HttpResponse);
    };
    const agent =
      opts.pool?.agentFor(secure, host, port) ??
      dialAgent(dial, secure, { host, port }, { ca: opts.ca, keepAlive: false, isDone: () => done });
    const headers: Record<string, string> = {
      ...opts.headers,
      ...(opts.pool ? {} : { connection: 'close' }),
    };
    if (opts.body) headers['content-length'] = String(opts.body.length);
    const req = (secure ? httpsRequest : httpRequest)(
      { agent, method: opts.method ?? 'GET', host, port, path: `${u.pathname}${u.search}`, headers },
      (res) => {
        const parts: Buffer[] = [];
        let size = 0;
        res.on('data', (c: Buffer) => {
          size += c.length;
          if (size > maxBytes) {
            req.destroy();
            finish(new HttpClientError(`response from ${u.host} is larger than ${maxBytes} bytes`));
          } else parts.push(c);
        });
        res.on('end', () =>
          finish(undefined, {
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(parts),
          }),
        );
        res.on('error', (e) => finish(e));
      },
    );
    const timer = setTimeout(() => {
      req.destroy();
      finish(new HttpClientError(`request to ${u.host} timed out after ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    req.on('error', (e) => finish(e));
    req.end(opts.body);
  });
}
