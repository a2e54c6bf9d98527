// The server's Shadowsocks TCP inbound for any number of keys on one port: identify the key from
// the first bytes, authenticate the request stream, dial the target under the address policy, relay
// with per-key accounting. Invalid input never gets an answer: the connection is read to the end and
// closed only when the client closes or the probe timeout fires, the same way whatever arrived.
// `handleShadowsocksConnection` serves one connection from any Duplex (a TCP socket here, a
// WebSocket or a mux session in websocket-inbound.ts); `createTcpInbound` is the plain TCP listener.
import { createServer, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { randomInt } from 'node:crypto';
import { StreamReader, StreamWriter, type Clock } from '../crypto/ss-stream.js';
import type { SaltPool } from '../crypto/replay.js';
import { WireError } from '../wire/errors.js';
import { dialDirect, DialError, type DialPolicy } from '../net/dialer.js';
import { relay } from '../net/relay.js';
import { ShadowsocksStream } from '../net/shadowsocks-stream.js';
import { Admission } from '../net/admission.js';
import type { Log } from '../log.js';
import type { KeyRing, RingKey } from './key-ring.js';
import type { ServerEvents, UserSource } from './users.js';
import type { ConnectionRegistry } from './connections.js';

export interface TcpInboundOptions {
  ring: () => KeyRing;
  users: UserSource;
  events: ServerEvents;
  registry: ConnectionRegistry;
  /** Replay filters per edition: 60 s for SIP022 as the spec says, longer for SIP004. */
  saltPools: Record<'aead' | '2022', SaltPool>;
  policy: DialPolicy;
  /** Base of the handshake/probe timeout; each connection adds up to 10% jitter. */
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  log: Log;
  clock?: Clock;
}

/** Bytes a client may send before its key is known (the largest first header is far smaller). */
const MAX_UNIDENTIFIED = 1024;

/**
 * The plain TCP listener. Connections that have not authenticated yet count against `admission`
 * (per client address and in total); one over a cap is closed at once, so a flood of half-open or
 * junk connections cannot hold every file descriptor while it waits out the probe timeout.
 */
export function createTcpInbound(opts: TcpInboundOptions, admission = new Admission()): Server {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const address = s.remoteAddress ?? '';
    const release = admission.admit(address);
    if (!release) {
      s.destroy();
      return;
    }
    s.once('close', release);
    s.setNoDelay(true);
    handleShadowsocksConnection(s, { address, port: s.remotePort ?? 0, proven: release }, opts);
  });
  server.on('error', (e) => opts.log.error({ err: e.message }, 'tcp listener error'));
  return server;
}

/** Where a connection comes from; only the address is used (to try that client's last key first). */
export interface ConnectionRemote {
  address: string;
  port: number;
  /** Called once the request header has authenticated (the connection is no longer unproven). */
  proven?: () => void;
}

/**
 * Serves one Shadowsocks connection arriving on `socket`: any Duplex that allows half-open and
 * closes like a socket (`destroy()` the abrupt close, `end()` the FIN). Its data starts flowing when
 * this function adds its 'data' listener, or, if the caller paused it (to `unshift` bytes it had
 * already read), when the caller resumes it right after this call.
 */
export function handleShadowsocksConnection(
  socket: Duplex,
  remote: ConnectionRemote,
  opts: TcpInboundOptions,
): void {
  socket.on('error', () => socket.destroy());
  const clientIp = remote.address;
  const jitter = randomInt(0, Math.max(1, Math.floor(opts.handshakeTimeoutMs / 10)));
  const timer = setTimeout(() => socket.destroy(), opts.handshakeTimeoutMs + jitter);
  let pending: Buffer = Buffer.alloc(0);
  let user: RingKey | undefined;
  let reader: StreamReader | undefined;
  const early: Buffer[] = [];
  let failed = false;

  const fail = (reason: string): void => {
    failed = true;
    pending = Buffer.alloc(0);
    opts.events.authFailure(reason);
    opts.log.debug({ reason }, 'rejected connection');
  };
  // The peer half-closing before it has authenticated gets a plain FIN back, whatever it sent.
  const onEnd = (): void => {
    clearTimeout(timer);
    socket.end();
  };
  const onData = (d: Buffer): void => {
    if (failed) return; // draining: read and discard until the timeout or the peer's FIN
    try {
      if (!user) {
        pending = pending.length ? Buffer.concat([pending, d]) : d;
        const m = opts.ring().matchTcp(pending, clientIp);
        if (m.kind === 'need-more') {
          if (pending.length > MAX_UNIDENTIFIED) fail('unknown-key');
          return;
        }
        if (m.kind === 'none') return fail('unknown-key');
        if (!opts.users.isAllowed(m.user.id, Date.now())) return fail('key-disabled');
        user = m.user;
        reader = new StreamReader(user.key, {
          kind: 'request',
          saltPool: opts.saltPools[user.key.spec.edition],
          clock: opts.clock,
        });
        const salt = user.key.spec.saltSize;
        d = m.skip ? Buffer.concat([pending.subarray(0, salt), pending.subarray(salt + m.skip)]) : pending;
        pending = Buffer.alloc(0);
      }
      early.push(...reader!.push(d));
    } catch (e) {
      return fail(e instanceof WireError ? e.code : 'error');
    }
    if (reader!.target) {
      remote.proven?.();
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.pause();
      void connect(socket, user!, reader!, early, opts);
    }
  };
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.once('close', () => clearTimeout(timer));
}

async function connect(
  socket: Duplex,
  user: RingKey,
  reader: StreamReader,
  early: Buffer[],
  opts: TcpInboundOptions,
): Promise<void> {
  const id = user.id;
  opts.users.touch(id, Date.now());
  let remote: Socket;
  try {
    remote = await dialDirect(reader.target!, opts.policy);
  } catch (e) {
    const kind = e instanceof DialError ? e.kind : 'other';
    opts.events.connectionError(kind);
    opts.log.debug({ kind }, 'dial failed');
    socket.destroy();
    return;
  }
  if (socket.destroyed) {
    remote.destroy();
    return;
  }
  const writer = new StreamWriter(user.key, {
    kind: 'response',
    requestSalt: reader.salt,
    clock: opts.clock,
  });
  // A reflected server stream must never be accepted as a request (SIP004 has no direction bit).
  if (user.key.spec.edition === 'aead') opts.saltPools.aead.add(writer.salt);
  // ShadowsocksStream is typed for a net.Socket but uses only Duplex members of it.
  const stream = new ShadowsocksStream(socket as Socket, reader, writer, early);
  const unregister = opts.registry.add(id, () => stream.destroy());
  opts.events.connectionOpened(id, 'tcp');
  await relay(stream, remote, {
    idleTimeoutMs: opts.idleTimeoutMs,
    onData: (dir, n) => {
      opts.events.bytes(id, dir === 'up' ? 'in' : 'out', n);
      opts.users.addUsage(id, n);
      // Data limits bite within one chunk.
      if (!opts.users.isAllowed(id, Date.now())) stream.destroy();
    },
  });
  unregister();
  opts.events.connectionClosed(id, 'tcp');
}
