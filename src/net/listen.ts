// Promise wrappers for binding listeners, so that "address in use" becomes a rejected promise.
import type { Server, Socket } from 'node:net';
import type { Socket as UdpSocket } from 'node:dgram';
import type { Address } from '../wire/socks-address.js';

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
