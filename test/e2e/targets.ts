// Loopback targets for in-process end-to-end tests: a TCP echo that also reports half-close, and a UDP echo.
import { createServer, type Server } from 'node:net';
import { createSocket, type Socket } from 'node:dgram';
import type { TestContext } from 'node:test';

export interface TcpEcho {
  port: number;
  /** Number of connections accepted so far. */
  accepted: () => number;
}

/** Echoes everything; on the client's FIN it sends "<bye>" and closes its side. */
export async function tcpEcho(t: TestContext, host = '127.0.0.1'): Promise<TcpEcho> {
  let n = 0;
  const server: Server = createServer({ allowHalfOpen: true }, (s) => {
    n++;
    s.on('data', (d) => s.write(d));
    s.on('end', () => s.end('<bye>'));
    s.on('error', () => s.destroy());
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const a = server.address();
  return { port: typeof a === 'object' && a ? a.port : 0, accepted: () => n };
}

export async function udpEcho(t: TestContext, type: 'udp4' | 'udp6' = 'udp4'): Promise<number> {
  const s: Socket = createSocket(type);
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  await new Promise<void>((r) => s.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', r));
  t.after(() => s.close());
  return s.address().port;
}
