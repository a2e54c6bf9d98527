// The client's Shadowsocks outbound: TCP streams and UDP associations through one server.
import { createSocket } from 'node:dgram';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { StreamReader, StreamWriter, streamKey, type StreamKey } from '../crypto/ss-stream.js';
import { UdpClientSession, type Datagram } from '../crypto/ss-udp.js';
import { connectTcp, resolveServerHost } from '../net/dialer.js';
import { splitFirstWrite } from '../net/first-segment.js';
import { ShadowsocksStream } from '../net/shadowsocks-stream.js';
import { methodSpec } from '../wire/shadowsocks-methods.js';
import { WireError } from '../wire/errors.js';
import type { SsUri } from '../wire/sip002.js';
import type { Address } from '../wire/socks-address.js';
import type { Outbound, UdpTunnel } from './outbound.js';

export interface ShadowsocksOutboundOptions {
  connectTimeoutMs: number;
  /** How long a request waits for the application's first bytes before sending the header alone. */
  headerDelayMs: number;
}

export class ShadowsocksOutbound implements Outbound {
  private readonly key: StreamKey;
  private readonly saltPrefix: Buffer | undefined;

  constructor(
    readonly server: SsUri,
    private readonly opts: ShadowsocksOutboundOptions = { connectTimeoutMs: 10_000, headerDelayMs: 100 },
  ) {
    const spec = methodSpec(server.method);
    this.key = streamKey(spec, server.password);
    this.saltPrefix = saltPrefixOf(server, spec.saltSize);
  }

  private serverIp(): Promise<string> {
    return resolveServerHost(this.server.host);
  }

  async dialTcp(target: Address): Promise<Duplex> {
    const socket = await connectTcp(await this.serverIp(), this.server.port, this.opts.connectTimeoutMs);
    // A disguised key: the first segment carries the prefix and little else (src/wire/first-packet.ts).
    if (this.saltPrefix) splitFirstWrite(socket, this.saltPrefix.length);
    const writer = new StreamWriter(this.key, { kind: 'request', target, saltPrefix: this.saltPrefix });
    const reader = new StreamReader(this.key, { kind: 'response', requestSalt: writer.salt });
    const stream = new ShadowsocksStream(socket, reader, writer);
    stream.sendHeaderAfter(this.opts.headerDelayMs);
    return stream;
  }

  openUdp(onReply: (d: Datagram) => void): UdpTunnel {
    const session = new UdpClientSession(this.key);
    let ip: string | undefined;
    let queue: Datagram[] | undefined = [];
    let closed = false;
    const sock = createSocket(isIP(this.server.host) === 6 ? 'udp6' : 'udp4');
    sock.on('error', () => undefined);
    sock.on('message', (msg, rinfo) => {
      if (rinfo.port !== this.server.port) return; // only the server speaks on this socket
      let d: Datagram;
      try {
        d = session.open(msg);
      } catch {
        return; // forged, replayed or corrupt: drop
      }
      onReply(d);
    });
    // The socket is connected to the server: a send then needs no address (Node would otherwise run a
    // lookup and a nextTick per datagram) and the kernel keeps the route; only the server can answer.
    const send = (d: Datagram): void => {
      if (!closed) sock.send(session.seal(d));
    };
    this.serverIp().then(
      (resolved) => {
        if (closed) return;
        sock.connect(this.server.port, resolved, () => {
          ip = resolved;
          const q = queue ?? [];
          queue = undefined;
          for (const d of q) send(d);
        });
      },
      () => {
        queue = undefined;
      },
    );
    return {
      send: (d) => {
        if (queue) {
          if (queue.length < 64) queue.push(d);
        } else if (ip) send(d);
      },
      close: () => {
        if (closed) return;
        closed = true;
        sock.close();
      },
    };
  }
}

/**
 * Outline's `prefix` URI parameter: bytes (each char a code point 0–255, as Outline encodes them) that
 * replace the start of the TCP salt. Longer prefixes than the salt leave no randomness and are refused.
 */
export function saltPrefixOf(server: SsUri, saltSize: number): Buffer | undefined {
  const text = server.params.prefix;
  if (!text) return undefined;
  if ([...text].some((c) => c.charCodeAt(0) > 255))
    throw new WireError(
      'bad-prefix',
      'invalid ss:// URI: the prefix parameter must be bytes (code points 0-255)',
    );
  const bytes = Buffer.from(text, 'latin1');
  if (bytes.length > saltSize - 4) {
    throw new WireError(
      'bad-prefix',
      `invalid ss:// URI: the prefix parameter is ${bytes.length} bytes; at most ${saltSize - 4} leave the salt random enough`,
    );
  }
  return bytes;
}
