// A fixed port forward through the tunnel (like ss-tunnel): TCP connections and UDP datagrams that
// arrive on LHOST:LPORT go to DHOST:DPORT on the far side.
import { createServer, isIPv6, type Server } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import type { Address } from '../wire/socks-address.js';
import { relay } from '../net/relay.js';
import { IdleTable } from '../net/udp-nat.js';
import type { Log } from '../log.js';
import type { DialContext, Outbound, UdpTunnel } from './outbound.js';

export interface ForwardSpec {
  listen: Address;
  target: Address;
}

export interface ForwardOptions {
  outbound: Outbound;
  idleTimeoutMs: number;
  udpTimeoutMs: number;
  log: Log;
}

export function createTcpForward(spec: ForwardSpec, opts: ForwardOptions): Server {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    socket.pause();
    const ctx: DialContext = { inbound: 'forward' };
    opts.outbound.dialTcp(spec.target, ctx).then(
      (remote) => {
        if (socket.destroyed) return void remote.destroy();
        socket.resume();
        void relay(socket, remote, { idleTimeoutMs: opts.idleTimeoutMs, onData: ctx.onData });
      },
      () => socket.destroy(),
    );
  });
  server.on('error', (e) => opts.log.error({ err: e.message }, 'forward listener error'));
  return server;
}

export interface UdpForward {
  socket: UdpSocket;
  close(): void;
}

/** One tunnel association per local source address, expiring when idle. */
export function createUdpForward(spec: ForwardSpec, opts: ForwardOptions): UdpForward {
  const socket = createSocket(isIPv6(spec.listen.host) ? 'udp6' : 'udp4');
  const table = new IdleTable<UdpTunnel>({ idleTimeoutMs: opts.udpTimeoutMs, maxEntries: 4096 }, (t) =>
    t.close(),
  );
  socket.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}|${rinfo.port}`;
    let t = table.touch(key);
    if (!t) {
      t = opts.outbound.openUdp(
        (d) => {
          table.touch(key);
          socket.send(d.payload, rinfo.port, rinfo.address);
        },
        { inbound: 'forward' },
      );
      table.set(key, t);
    }
    t.send({ address: spec.target, payload: msg });
  });
  socket.on('error', (e) => opts.log.error({ err: e.message }, 'forward udp error'));
  return {
    socket,
    close: () => {
      table.close();
      socket.close();
    },
  };
}
