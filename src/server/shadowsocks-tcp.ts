// The server's Shadowsocks TCP inbound: authenticate the request stream, dial the target under the
// address policy, relay. Invalid input never gets an answer: the connection is read to the end and
// closed only when the client closes or the probe timeout fires, the same way whatever arrived.
import { createServer, type Server, type Socket } from 'node:net';
import { randomInt } from 'node:crypto';
import { StreamReader, StreamWriter, type Clock, type StreamKey } from '../crypto/ss-stream.js';
import type { SaltPool } from '../crypto/replay.js';
import { WireError } from '../wire/errors.js';
import { dialDirect, DialError, type DialPolicy } from '../net/dialer.js';
import { relay } from '../net/relay.js';
import { ShadowsocksStream } from '../net/shadowsocks-stream.js';
import type { Log } from '../log.js';

export interface TcpInboundOptions {
  key: StreamKey;
  saltPool: SaltPool;
  policy: DialPolicy;
  /** Base of the handshake/probe timeout; each connection adds up to 10% jitter. */
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  log: Log;
  clock?: Clock;
  /** Counters for observability; all optional. */
  onEvent?: (e: InboundEvent) => void;
}

export type InboundEvent =
  | { type: 'auth-failure'; reason: string }
  | { type: 'dial-error'; kind: DialError['kind'] }
  | { type: 'open' }
  | { type: 'close'; up: number; down: number };

export function createTcpInbound(opts: TcpInboundOptions): Server {
  const server = createServer({ allowHalfOpen: true, pauseOnConnect: false }, (s) => handle(s, opts));
  server.on('error', (e) => opts.log.error({ err: e.message }, 'tcp listener error'));
  return server;
}

function handle(socket: Socket, opts: TcpInboundOptions): void {
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  const reader = new StreamReader(opts.key, { kind: 'request', saltPool: opts.saltPool, clock: opts.clock });
  const early: Buffer[] = [];
  const jitter = randomInt(0, Math.max(1, Math.floor(opts.handshakeTimeoutMs / 10)));
  const timer = setTimeout(() => socket.destroy(), opts.handshakeTimeoutMs + jitter);
  let failed = false;

  // The peer half-closing before it has authenticated gets a plain FIN back, whatever it sent.
  const onEnd = (): void => {
    clearTimeout(timer);
    socket.end();
    socket.destroySoon?.();
  };
  const onData = (d: Buffer): void => {
    if (failed) return; // draining: read and discard
    try {
      early.push(...reader.push(d));
    } catch (e) {
      failed = true;
      const reason = e instanceof WireError ? e.code : 'error';
      opts.onEvent?.({ type: 'auth-failure', reason });
      opts.log.debug({ reason }, 'rejected connection');
      return;
    }
    if (reader.target) {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.pause();
      void connect(socket, reader, early, opts);
    }
  };
  socket.on('data', onData);
  socket.on('end', onEnd);
  socket.once('close', () => clearTimeout(timer));
}

async function connect(
  socket: Socket,
  reader: StreamReader,
  early: Buffer[],
  opts: TcpInboundOptions,
): Promise<void> {
  let remote: Socket;
  try {
    remote = await dialDirect(reader.target!, opts.policy);
  } catch (e) {
    const kind = e instanceof DialError ? e.kind : 'other';
    opts.onEvent?.({ type: 'dial-error', kind });
    opts.log.debug({ kind }, 'dial failed');
    socket.destroy();
    return;
  }
  if (socket.destroyed) {
    remote.destroy();
    return;
  }
  const writer = new StreamWriter(opts.key, {
    kind: 'response',
    requestSalt: reader.salt,
    clock: opts.clock,
  });
  // A reflected server stream must never be accepted as a request (SIP004 has no direction bit).
  if (opts.key.spec.edition === 'aead') opts.saltPool.add(writer.salt);
  const stream = new ShadowsocksStream(socket, reader, writer, early);
  opts.onEvent?.({ type: 'open' });
  const r = await relay(stream, remote, { idleTimeoutMs: opts.idleTimeoutMs });
  opts.onEvent?.({ type: 'close', up: r.up, down: r.down });
}
