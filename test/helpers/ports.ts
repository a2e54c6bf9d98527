// Free loopback ports for child processes that need a port number up front.
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';

function bindTcp(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(null));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const a = srv.address();
      const got = typeof a === 'object' && a ? a.port : null;
      srv.close(() => resolve(got));
    });
  });
}

function bindUdp(port: number): Promise<number | null> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => {
      s.close();
      resolve(null);
    });
    s.bind({ port, address: '127.0.0.1', exclusive: true }, () => {
      const got = s.address().port;
      s.close(() => resolve(got));
    });
  });
}

/** A loopback port that is free right now for TCP, UDP, or both (bind port 0, read it, close). */
export async function freePort(proto: 'tcp' | 'udp' | 'both' = 'both'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = proto === 'udp' ? await bindUdp(0) : await bindTcp(0);
    if (port === null) continue;
    if (proto !== 'both' || (await bindUdp(port)) === port) return port;
  }
  throw new Error(`no free loopback ${proto} port found after 50 attempts`);
}

/** Several distinct free ports. */
export async function freePorts(n: number, proto: 'tcp' | 'udp' | 'both' = 'both'): Promise<number[]> {
  const out = new Set<number>();
  for (let i = 0; i < n * 10 && out.size < n; i++) out.add(await freePort(proto));
  if (out.size < n) throw new Error(`could not find ${n} distinct free ports`);
  return [...out];
}

/**
 * Runs `start` (which picks its ports with freePort) again, up to `attempts` times in all, when it
 * failed because a port was taken between freePort() and the child's bind.
 */
export async function retryOnAddressInUse<T>(start: () => Promise<T>, attempts = 3): Promise<T> {
  for (let i = 1; ; i++) {
    try {
      return await start();
    } catch (e) {
      if (i >= attempts || !/address already in use|EADDRINUSE/i.test((e as Error).message)) throw e;
    }
  }
}
