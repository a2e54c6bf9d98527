// The server's Shadowsocks UDP relay. SIP004: associations keyed by client address; SIP022: keyed by
// client session ID, replies go to the last address the session was seen from, and a sliding window
// rejects replayed packets.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { UdpServerSession, openClientPacket, sealAeadPacket, type IncomingPacket } from '../crypto/ss-udp.js';
import type { Clock, StreamKey } from '../crypto/ss-stream.js';
import { makeAddress } from '../wire/socks-address.js';
import { WireError } from '../wire/errors.js';
import { DialError, UdpResolver, type DialPolicy } from '../net/dialer.js';
import { FullConeSocket, IdleTable } from '../net/udp-nat.js';
import type { Log } from '../log.js';
import type { InboundEvent } from './shadowsocks-tcp.js';

export interface UdpInboundOptions {
  key: StreamKey;
  policy: Pick<DialPolicy, 'allowPrivate'>;
  idleTimeoutMs: number;
  maxAssociations: number;
  log: Log;
  clock?: Clock;
  onEvent?: (e: InboundEvent) => void;
}

interface Assoc {
  clientIp: string;
  clientPort: number;
  session?: UdpServerSession;
  out: FullConeSocket;
}

export interface UdpInbound {
  socket: Socket;
  close(): void;
}

export function createUdpInbound(host: string, opts: UdpInboundOptions): UdpInbound {
  const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
  const resolver = new UdpResolver(opts.policy);
  const k = opts.key;
  const table = new IdleTable<Assoc>(
    { idleTimeoutMs: opts.idleTimeoutMs, maxEntries: opts.maxAssociations },
    (a) => a.out.close(),
  );

  const newAssoc = (p: IncomingPacket, ip: string, port: number): Assoc => {
    const a: Assoc = {
      clientIp: ip,
      clientPort: port,
      out: new FullConeSocket((payload, from) => {
        const d = { address: makeAddress(from.address, from.port), payload };
        socket.send(a.session ? a.session.seal(d) : sealAeadPacket(k, d), a.clientPort, a.clientIp);
      }),
    };
    if (p.sessionId) a.session = new UdpServerSession(k, p.sessionId, opts.clock);
    return a;
  };

  socket.on('message', (msg, rinfo) => {
    let p: IncomingPacket;
    try {
      p = openClientPacket(k, msg, opts.clock);
    } catch (e) {
      opts.onEvent?.({ type: 'auth-failure', reason: e instanceof WireError ? e.code : 'error' });
      return; // silence: never answer what does not authenticate
    }
    const key = p.sessionKey ?? `${rinfo.address}|${rinfo.port}`;
    let a = table.touch(key);
    if (!a) {
      a = newAssoc(p, rinfo.address, rinfo.port);
      table.set(key, a);
    }
    if (a.session && !a.session.accept(p.packetId!)) {
      opts.onEvent?.({ type: 'auth-failure', reason: 'replay' });
      return;
    }
    a.clientIp = rinfo.address; // SIP022 §3.2.4: reply to the last address seen
    a.clientPort = rinfo.port;
    const out = a.out;
    resolver.resolve(p.address).then(
      (ip) => out.send(p.payload, ip, p.address.port),
      (e) => opts.onEvent?.({ type: 'dial-error', kind: e instanceof DialError ? e.kind : 'other' }),
    );
  });
  socket.on('error', (e) => opts.log.error({ err: e.message }, 'udp socket error'));
  return {
    socket,
    close: () => {
      table.close();
      socket.close();
    },
  };
}
