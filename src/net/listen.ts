// Promise wrappers for binding listeners, so that "address in use" becomes a rejected promise.
import type { Server, Socket } from 'node:net';
import type { Socket as UdpSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Address } from '../wire/socks-address.js';

/**
 * A random port for a service chosen on first start (new keys, the management API): from 20000 up
 * to just below the kernel's ephemeral range (Linux: 32768–60999), where the system never assigns
 * outgoing connections, so that the port cannot be taken by one of them on a later start.
 */
export function randomServicePort(): number {
  let top = 32_767;
  try {
    const lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    if (Number.isInteger(lo) && lo > 21_000) top = lo - 1;
  } catch {
    // not Linux: the IANA dynamic range starts at 49152, so 20000–32767 is outside it too
  }
  return randomInt(20_000, top + 1);
}

/** Listens and resolves with the bound port (useful with port 0). */
export function listenTcp(server: Server, at: Address): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: at.host, port: at.port }, () => {
      server.removeListener('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : at.port);
    });
  });
}

export function bindUdp(socket: UdpSocket, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.once('error', reject);
    socket.bind({ address: host, port }, () => {
      socket.removeListener('error', reject);
      resolve();
    });
  });
}

/** Remembers a listener's open connections so that shutdown can close them instead of waiting. */
export function trackConnections(server: Server): { destroyAll(): void } {
  const open = new Set<Socket>();
  server.on('connection', (s) => {
    open.add(s);
    s.once('close', () => open.delete(s));
  });
  return {
    destroyAll: () => {
      for (const s of open) s.destroy();
    },
  };
}
