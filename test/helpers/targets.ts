// Loopback targets that the proxies under test connect to: TCP echo, UDP echo and a tiny HTTP server.
// Each listens on 127.0.0.1 and is closed (with its connections) when the test ends.
import { createServer, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import type { TestContext } from 'node:test';

export interface TcpEchoTarget {
  port: number;
  /** Connections accepted so far. */
  accepted(): number;
}

/**
 * Echoes every byte back. When the client half-closes (FIN), the echo finishes writing what it
 * has and then closes its side too, so a client that half-closes must still get every byte back.
 * With `closeAfter`, the echo itself closes (FIN) right after echoing that many bytes: the target
 * closes first, and the client must still get every byte before the end of the stream.
 */
export async function tcpEcho(
  t: TestContext,
  opts: { closeAfter?: number; host?: string; bye?: string } = {},
): Promise<TcpEchoTarget> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer({ allowHalfOpen: true }, (s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    const limit = opts.closeAfter;
    const bye = opts.bye;
    if (bye !== undefined) {
      // After the client's FIN: one last message, then our FIN (shows the FIN crossed the tunnel).
      s.on('data', (d: Buffer) => {
        if (!s.write(d)) s.pause();
      });
      s.on('drain', () => s.resume());
      s.on('end', () => s.end(bye));
      return;
    }
    if (limit === undefined) {
      s.pipe(s); // pipe() ends the writable side after the readable side ends
      return;
    }
    let echoed = 0;
    s.on('data', (d: Buffer) => {
      if (echoed >= limit) return;
      const part = d.subarray(0, limit - echoed);
      echoed += part.length;
      if (echoed >= limit) s.end(part);
      else if (!s.write(part)) s.pause();
    });
    s.on('drain', () => s.resume());
    s.on('end', () => s.end());
  });
  await new Promise<void>((resolve) => server.listen(0, opts.host ?? '127.0.0.1', resolve));
  t.after(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  const a = server.address();
  if (typeof a !== 'object' || !a) throw new Error('tcpEcho: no address');
  return { port: a.port, accepted: () => accepted };
}

/** Echoes each datagram back to its sender. Returns the port. */
export async function udpEcho(t: TestContext): Promise<number> {
  const s = createSocket('udp4');
  s.on('message', (msg, from) => s.send(msg, from.port, from.address));
  s.on('error', () => undefined);
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  t.after(() => new Promise<void>((resolve) => s.close(() => resolve())));
  return s.address().port;
}

export interface HttpTarget {
  port: number;
  /** The exact body of `GET /hello`. */
  helloBody: string;
  /** Request heads seen so far (method, url, host header), for assertions on how proxies forward. */
  requests: { method: string; url: string; host: string | undefined }[];
}

/**
 * `GET /hello` → a known body; `POST /echo` → the request body, byte for byte; anything else → 404.
 * Listens on 127.0.0.1 and, when the machine has IPv6 loopback, on [::1] with the same port, so that
 * "localhost" reaches it whichever address a resolver picks.
 */
export async function httpTarget(t: TestContext): Promise<HttpTarget> {
  const helloBody = `hello from the pigeon test target ${Math.random().toString(36).slice(2)}\n`;
  const requests: HttpTarget['requests'] = [];
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host });
    if (req.method === 'GET' && req.url === '/hello') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(helloBody) });
      res.end(helloBody);
      return;
    }
    if (req.method === 'POST' && req.url === '/echo') {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
        res.end(body);
      });
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' });
    res.end('not found\n');
  };
  const servers: HttpServer[] = [];
  t.after(() =>
    Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
          }),
      ),
    ),
  );
  const v4 = createHttpServer(handler);
  servers.push(v4);
  await new Promise<void>((resolve) => v4.listen(0, '127.0.0.1', resolve));
  const a = v4.address();
  if (typeof a !== 'object' || !a) throw new Error('httpTarget: no address');
  const v6 = createHttpServer(handler);
  const v6ok = await new Promise<boolean>((resolve) => {
    v6.once('error', () => resolve(false));
    v6.listen(a.port, '::1', () => resolve(true));
  });
  if (v6ok) servers.push(v6);
  return { port: a.port, helloBody, requests };
}
