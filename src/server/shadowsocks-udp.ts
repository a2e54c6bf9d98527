// The server's Shadowsocks UDP relay for any number of keys on one port. SIP004: associations keyed
// by client address, key found by trial decryption; SIP022: keyed by client session ID, AES keys found
// by their SIP023 identity header, replies to the last address the session was seen from, and a
// sliding window rejects replayed packets.
import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import {
  UdpServerSession,
  open2022AesBody,
  openClientPacket,
  sealAeadPacket,
  type IncomingPacket,
} from '../crypto/ss-udp.js';
import { aesBlock } from '../crypto/kdf.js';
import { TAG_SIZE } from '../crypto/aead.js';
import { systemClock, type Clock } from '../crypto/ss-stream.js';
import { makeAddress } from '../wire/socks-address.js';
import { TYPE_CLIENT } from '../wire/shadowsocks-2022.js';
import { WireError } from '../wire/errors.js';
import { DialError, UdpResolver, type DialPolicy } from '../net/dialer.js';
import { FullConeSocket, IdleTable } from '../net/udp-nat.js';
import type { Log } from '../log.js';
import { withoutStackTraces, type KeyRing, type RingKey } from './key-ring.js';
import type { ServerEvents, UserSource } from './users.js';
import type { ConnectionRegistry } from './connections.js';

export interface UdpInboundOptions {
  ring: () => KeyRing;
  users: UserSource;
  events: ServerEvents;
  registry: ConnectionRegistry;
  policy: Pick<DialPolicy, 'allowPrivate'>;
  idleTimeoutMs: number;
  maxAssociations: number;
  log: Log;
  clock?: Clock;
}

interface Assoc {
  user: RingKey;
  clientIp: string;
  clientPort: number;
  session?: UdpServerSession;
  out: FullConeSocket;
  unregister: () => void;
}

export interface UdpInbound {
  socket: Socket;
  close(): void;
}

export function createUdpInbound(host: string, opts: UdpInboundOptions): UdpInbound {
  const socket = createSocket({ type: isIPv6(host) ? 'udp6' : 'udp4' });
  const resolver = new UdpResolver(opts.policy);
  const clock = opts.clock ?? systemClock;
  const table = new IdleTable<Assoc>(
    { idleTimeoutMs: opts.idleTimeoutMs, maxEntries: opts.maxAssociations },
    (a) => {
      a.out.close();
      a.unregister();
      opts.events.connectionClosed(a.user.id, 'udp');
    },
  );

  const newAssoc = (key: string, user: RingKey, p: IncomingPacket, ip: string, port: number): Assoc => {
    const a: Assoc = {
      user,
      clientIp: ip,
      clientPort: port,
      unregister: () => undefined,
      out: new FullConeSocket((payload, from) => {
        const d = { address: makeAddress(from.address, from.port), payload };
        const packet = a.session ? a.session.seal(d) : sealAeadPacket(user.key, d);
        opts.events.bytes(user.id, 'out', packet.length);
        opts.users.addUsage(user.id, packet.length);
        socket.send(packet, a.clientPort, a.clientIp);
      }),
    };
    if (p.sessionId) a.session = new UdpServerSession(user.key, p.sessionId, opts.clock);
    a.unregister = opts.registry.add(user.id, () => table.delete(key));
    opts.events.connectionOpened(user.id, 'udp');
    opts.users.touch(user.id, Date.now());
    return a;
  };

  /** Finds the key and opens the packet; undefined when nothing authenticates. */
  const identify = (
    msg: Buffer,
    clientIp: string,
    clientPort: number,
  ): { user: RingKey; p: IncomingPacket } | undefined => {
    const ring = opts.ring();
    // SIP022 AES keys of a multi-user port: separate header under the identity PSK, then the identity header.
    for (const g of ring.identityGroups()) {
      if (msg.length < 32 + TAG_SIZE) break;
      const header = aesBlock(g.ipsk, false, msg.subarray(0, 16));
      const known = table.touch(header.subarray(0, 8).toString('latin1'));
      let user = known?.user;
      if (!user) {
        const hash = aesBlock(g.ipsk, false, msg.subarray(16, 32));
        for (let i = 0; i < 16; i++) hash[i]! ^= header[i]!;
        user = ring.byIdentity(g, hash);
      }
      if (!user) continue;
      try {
        const o = open2022AesBody(user.key, header, msg.subarray(32), TYPE_CLIENT, clock());
        const p: IncomingPacket = {
          address: o.message.address,
          payload: o.message.payload,
          sessionKey: o.sessionId.toString('latin1'),
          sessionId: o.sessionId,
          packetId: o.packetId,
        };
        return { user, p };
      } catch {
        continue;
      }
    }
    // Keys without identity headers: the association's own key first, then the rest.
    const known = table.touch(`${clientIp}|${clientPort}`)?.user;
    return withoutStackTraces(() => {
      for (const user of ring.trialOrder(clientIp, known)) {
        try {
          const p = openClientPacket(user.key, msg, opts.clock);
          ring.remember(clientIp, user.id);
          return { user, p };
        } catch (e) {
          if (!(e instanceof WireError)) throw e;
        }
      }
      return undefined;
    });
  };

  socket.on('message', (msg, rinfo) => {
    const found = identify(msg, rinfo.address, rinfo.port);
    if (!found) {
      opts.events.authFailure('udp-unknown-key');
      return; // silence: never answer what does not authenticate
    }
    const { user, p } = found;
    if (!opts.users.isAllowed(user.id, Date.now())) {
      opts.events.authFailure('key-disabled');
      return;
    }
    const key = p.sessionKey ?? `${rinfo.address}|${rinfo.port}`;
    let a = table.touch(key);
    if (!a || a.user.id !== user.id) {
      if (a) table.delete(key);
      a = newAssoc(key, user, p, rinfo.address, rinfo.port);
      table.set(key, a);
    }
    if (a.session && !a.session.accept(p.packetId!)) {
      opts.events.authFailure('replay');
      return;
    }
    a.clientIp = rinfo.address; // SIP022 §3.2.4: reply to the last address seen
    a.clientPort = rinfo.port;
    opts.events.bytes(user.id, 'in', msg.length);
    opts.users.addUsage(user.id, msg.length);
    const out = a.out;
    const fail = (e: unknown): void => opts.events.connectionError(e instanceof DialError ? e.kind : 'other');
    let ip: string | undefined;
    try {
      ip = resolver.known(p.address); // IP literals and cached names: no promise per datagram
    } catch (e) {
      return fail(e);
    }
    if (ip !== undefined) out.send(p.payload, ip, p.address.port);
    else resolver.resolve(p.address).then((r) => out.send(p.payload, r, p.address.port), fail);
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
