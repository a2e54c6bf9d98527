// The client's local proxy port: SOCKS5 (CONNECT, UDP ASSOCIATE; no-auth or username/password) and
// HTTP proxy (CONNECT and absolute-URI requests) on one TCP port, told apart by the first byte.
import { createServer, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Duplex } from 'node:stream';
import { timingSafeEqual } from 'node:crypto';
import { WireError } from '../wire/errors.js';
import { makeAddress, type Address } from '../wire/socks-address.js';
import {
  METHOD_NO_AUTH,
  METHOD_NONE_ACCEPTABLE,
  METHOD_USER_PASS,
  REP,
  decodeUdpDatagram,
  encodeAuthReply,
  encodeMethodSelection,
  encodeReply,
  encodeUdpDatagram,
  parseGreeting,
  parseRequest,
  parseUserPassAuth,
} from '../wire/socks5.js';
import {
  CONNECT_ESTABLISHED,
  buildForwardHead,
  encodeSimpleResponse,
  parseProxyRequestHead,
  type HttpProxyRequest,
} from '../wire/http-proxy.js';
import { DialError } from '../net/dialer.js';
import { relay } from '../net/relay.js';
import type { Log } from '../log.js';
import type { DialContext, Outbound } from './outbound.js';

export interface Credentials {
  username: string;
  password: string;
}

export interface MixedInboundOptions {
  outbound: Outbound;
  /** When set, SOCKS5 and HTTP clients must present these credentials. */
  auth?: Credentials;
  handshakeTimeoutMs: number;
  idleTimeoutMs: number;
  log: Log;
}

const MAX_HANDSHAKE = 32 * 1024;

export function createMixedInbound(opts: MixedInboundOptions): Server {
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => socket.destroy());
    const timer = setTimeout(() => socket.destroy(), opts.handshakeTimeoutMs);
    const session = new HandshakeSession(socket, opts, () => clearTimeout(timer));
    socket.on('data', session.onData);
    socket.once('end', session.onEnd);
    socket.once('close', () => clearTimeout(timer));
  });
  server.on('error', (e) => opts.log.error({ err: e.message }, 'proxy listener error'));
  return server;
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function credentialsMatch(want: Credentials | undefined, got: Credentials | undefined): boolean {
  if (!want) return true;
  return !!got && sameSecret(want.username, got.username) && sameSecret(want.password, got.password);
}

function replyCodeFor(e: unknown): number {
  if (!(e instanceof DialError)) return REP.generalFailure;
  switch (e.kind) {
    case 'refused':
      return REP.connectionRefused;
    case 'unreachable':
      return REP.networkUnreachable;
    case 'dns':
    case 'timeout':
      return REP.hostUnreachable;
    case 'forbidden':
      return REP.notAllowed;
    default:
      return REP.generalFailure;
  }
}

type Phase = 'detect' | 'greeting' | 'userpass' | 'request' | 'http' | 'done';

/** One connection's handshake, before it becomes a relay (or a UDP association). */
class HandshakeSession {
  private phase: Phase = 'detect';
  private buf: Buffer = Buffer.alloc(0);

  constructor(
    private readonly socket: Socket,
    private readonly opts: MixedInboundOptions,
    private readonly finished: () => void,
  ) {}

  readonly onData = (d: Buffer): void => {
    if (this.phase === 'done') return;
    // Handshakes are a few hundred bytes: plain concatenation is fine off the hot path.
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    try {
      this.advance();
    } catch (e) {
      if (e instanceof WireError) this.onWireError(e);
      else throw e;
    }
    // Only an unfinished handshake is limited: a request body may follow its head in the same read.
    if ((this.phase as Phase) !== 'done' && this.buf.length > MAX_HANDSHAKE) this.fail();
  };

  /** The client closed before finishing the handshake: close our side too. */
  readonly onEnd = (): void => {
    if (this.phase === 'done') return;
    this.fail(true);
  };

  private detach(): void {
    this.socket.removeListener('data', this.onData);
    this.socket.removeListener('end', this.onEnd);
  }

  private consume(n: number): void {
    this.buf = this.buf.subarray(n);
  }

  /** Bytes that arrived after the handshake: the first payload. */
  private leftover(): Buffer | undefined {
    return this.buf.length ? this.buf : undefined;
  }

  private advance(): void {
    for (;;) {
      switch (this.phase) {
        case 'detect':
          if (this.buf.length === 0) return;
          this.phase = this.buf[0] === 5 ? 'greeting' : 'http';
          continue;
        case 'greeting': {
          const g = parseGreeting(this.buf);
          if (!g) return;
          this.consume(g.length);
          const m = g.value.methods;
          let method = METHOD_NONE_ACCEPTABLE;
          if (this.opts.auth) {
            if (m.includes(METHOD_USER_PASS)) method = METHOD_USER_PASS;
          } else if (m.includes(METHOD_NO_AUTH)) method = METHOD_NO_AUTH;
          else if (m.includes(METHOD_USER_PASS)) method = METHOD_USER_PASS; // any credentials will do
          this.socket.write(encodeMethodSelection(method));
          if (method === METHOD_NONE_ACCEPTABLE) return this.fail(true);
          this.phase = method === METHOD_USER_PASS ? 'userpass' : 'request';
          continue;
        }
        case 'userpass': {
          const a = parseUserPassAuth(this.buf);
          if (!a) return;
          this.consume(a.length);
          const ok = credentialsMatch(this.opts.auth, a.value);
          this.socket.write(encodeAuthReply(ok));
          if (!ok) return this.fail(true);
          this.phase = 'request';
          continue;
        }
        case 'request': {
          const r = parseRequest(this.buf);
          if (!r) return;
          this.consume(r.length);
          this.phase = 'done';
          this.detach();
          this.socket.pause();
          const rest = this.leftover();
          if (r.value.command === 'connect') void this.socksConnect(r.value.address, rest);
          else if (r.value.command === 'udp-associate') this.socksUdp();
          else {
            this.socket.end(encodeReply(REP.commandNotSupported));
            this.finished();
          }
          return;
        }
        case 'http': {
          const h = parseProxyRequestHead(this.buf);
          if (!h) return;
          this.consume(h.length);
          this.phase = 'done';
          this.detach();
          this.socket.pause();
          const rest = this.leftover();
          void this.http(h.value, rest);
          return;
        }
        case 'done':
          return;
      }
    }
  }

  private onWireError(e: WireError): void {
    const phase = this.phase;
    this.phase = 'done';
    if (phase === 'request') {
      const rep =
        e.code === 'bad-command'
          ? REP.commandNotSupported
          : e.code === 'bad-atyp'
            ? REP.addressTypeNotSupported
            : REP.generalFailure;
      this.socket.end(encodeReply(rep));
    } else if (phase === 'http') {
      this.socket.end(encodeSimpleResponse(400, 'Bad Request'));
    } else {
      this.socket.destroy();
    }
    this.finished();
  }

  private fail(graceful = false): void {
    this.phase = 'done';
    if (graceful) this.socket.end();
    else this.socket.destroy();
    this.finished();
  }

  /** Set by the outbound at dial time: the router's byte meter for this connection. */
  private readonly ctx: DialContext = { inbound: 'mixed' };

  private async dial(target: Address): Promise<Duplex> {
    return this.opts.outbound.dialTcp(target, this.ctx);
  }

  private async socksConnect(target: Address, rest: Buffer | undefined): Promise<void> {
    let remote: Duplex;
    try {
      remote = await this.dial(target);
    } catch (e) {
      if (!this.socket.destroyed) this.socket.end(encodeReply(replyCodeFor(e)));
      this.finished();
      return;
    }
    this.finished();
    if (this.socket.destroyed) return void remote.destroy();
    this.socket.write(encodeReply(REP.succeeded, this.boundAddress()));
    this.startRelay(remote, rest);
  }

  private boundAddress(): Address {
    const a = this.socket.address();
    return 'address' in a && a.address ? makeAddress(a.address, a.port) : makeAddress('0.0.0.0', 0);
  }

  private startRelay(remote: Duplex, rest: Buffer | undefined): void {
    if (rest?.length) remote.write(rest);
    this.socket.resume();
    void relay(this.socket, remote, { idleTimeoutMs: this.opts.idleTimeoutMs, onData: this.ctx.onData });
  }

  private async http(req: HttpProxyRequest, rest: Buffer | undefined): Promise<void> {
    if (!credentialsMatch(this.opts.auth, req.proxyAuthorization)) {
      this.socket.end(
        encodeSimpleResponse(407, 'Proxy Authentication Required', [
          ['Proxy-Authenticate', 'Basic realm="pigeon"'],
        ]),
      );
      return this.finished();
    }
    let remote: Duplex;
    try {
      remote = await this.dial(req.target);
    } catch (e) {
      const timeout = e instanceof DialError && e.kind === 'timeout';
      if (!this.socket.destroyed) {
        this.socket.end(
          timeout ? encodeSimpleResponse(504, 'Gateway Timeout') : encodeSimpleResponse(502, 'Bad Gateway'),
        );
      }
      return this.finished();
    }
    this.finished();
    if (this.socket.destroyed) return void remote.destroy();
    if (req.isConnect) {
      this.socket.write(CONNECT_ESTABLISHED);
      this.startRelay(remote, rest);
    } else {
      const head = buildForwardHead(req);
      this.startRelay(remote, rest?.length ? Buffer.concat([head, rest]) : head);
    }
  }

  /** SOCKS5 UDP ASSOCIATE: a UDP port for this client, alive as long as the TCP connection. */
  private socksUdp(): void {
    const local = this.socket.localAddress ?? '127.0.0.1';
    const clientIp = this.socket.remoteAddress;
    const udp: UdpSocket = createSocket(isIPv6(local) ? 'udp6' : 'udp4');
    let app: { ip: string; port: number } | undefined;
    const tunnel = this.opts.outbound.openUdp(
      (d) => {
        if (app) udp.send(encodeUdpDatagram(d.address, d.payload), app.port, app.ip);
      },
      { inbound: 'mixed' },
    );
    udp.on('message', (msg, rinfo) => {
      if (rinfo.address !== clientIp) return; // only the client that asked may use this port
      let dg;
      try {
        dg = decodeUdpDatagram(msg);
      } catch {
        return;
      }
      if (dg.frag !== 0) return; // fragmentation is optional (RFC 1928 §7); drop, as most servers do
      app = { ip: rinfo.address, port: rinfo.port };
      tunnel.send({ address: dg.address, payload: dg.payload });
    });
    udp.on('error', () => undefined);
    const cleanup = (): void => {
      tunnel.close();
      try {
        udp.close();
      } catch {
        /* already closed */
      }
    };
    udp.bind({ address: local, port: 0 }, () => {
      const port = udp.address().port;
      this.finished();
      if (this.socket.destroyed) return cleanup();
      this.socket.write(encodeReply(REP.succeeded, makeAddress(local, port)));
      // The association ends when the TCP connection does; data on it is ignored.
      this.socket.on('data', () => undefined);
      this.socket.resume();
      this.socket.once('close', cleanup);
      this.socket.once('end', () => this.socket.end());
    });
  }
}
