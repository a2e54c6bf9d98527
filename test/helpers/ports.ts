// Free loopback ports for child processes that need a port number up front.
import { createServer } from 'node:net';
import { createSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';

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

/**
 * Ports to pick from: outside the kernel's ephemeral range, so that no outgoing connection of a
 * concurrently running test can take a port between freePort() and the child's bind (binding port
 * 0 would pick from inside that range). Falls back to port 0 where the range cannot be read.
 */
const PICK_RANGE: [number, number] | undefined = (() => {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')
      .trim()
      .split(/\s+/)
      .map(Number);
    if (lo! - 1 - 10_000 >= 2_000) return [10_000, lo! - 1];
    if (65_535 - (hi! + 1) >= 2_000) return [hi! + 1, 65_535];
  } catch {
    // not Linux: port 0
  }
  return undefined;
})();

const candidate = (): number => (PICK_RANGE ? randomInt(PICK_RANGE[0], PICK_RANGE[1] + 1) : 0);

/** A loopback port that is free right now for TCP, UDP, or both (bind it, read it, close). */
export async function freePort(proto: 'tcp' | 'udp' | 'both' = 'both'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const want = candidate();
    const port = proto === 'udp' ? await bindUdp(want) : await bindTcp(want);
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
