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

/** One request, one connection (no keep-alive): the stream comes from `dial`. */
export function httpRequestVia(
  dial: StreamDial,
  url: string,
  opts: HttpRequestOptions,
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
    const createConnection = (_o: unknown, cb: (err: Error | null, s?: Duplex) => void): undefined => {
      dial(makeAddress(host, port)).then(
        (stream) => {
          if (done) return void stream.destroy();
          if (!secure) return cb(null, stream);
          const tls = tlsConnect({
            socket: stream as never,
            // `host` is what the certificate is checked against (an IP literal too); SNI carries names only.
            host,
            servername: isIP(host) ? undefined : host,
            ALPNProtocols: ['http/1.1'],
            ca: opts.ca,
          });
          // Without a private CA the system's roots apply (tls.connect's default when ca is unset).
          cb(null, tls);
        },
        (e: unknown) => cb(e instanceof Error ? e : new Error(String(e))),
      );
      return undefined;
    };
    const agentOpts = { keepAlive: false, maxSockets: 1 };
    const agent = secure ? new HttpsAgent(agentOpts) : new HttpAgent(agentOpts);
    (agent as unknown as { createConnection: typeof createConnection }).createConnection = createConnection;
    const headers: Record<string, string> = { ...opts.headers, connection: 'close' };
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
