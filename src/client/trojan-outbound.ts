// The client's Trojan outbound, from a parsed trojan:// URI: a browser-like TLS connection
// (src/net/tls-client.ts) per TCP stream or UDP association, the Trojan header in front of the first
// bytes, and the first writes shaped into randomly split records (docs/tls-fingerprint.md).
// Certificate verification is on unless the URI says `allowInsecure=1`; `pcs=` pins the server's
// certificate by SHA-256 instead of a CA (for self-signed servers). It speaks what trojan-gfw and
// v2ray's trojan servers expect, and Pigeon's own Trojan inbound.
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Datagram } from '../crypto/ss-udp.js';
import { connectTcp, DialError, resolveServerHost } from '../net/dialer.js';
import {
  browserLikeTlsOptions,
  DEFAULT_SHAPING,
  ShapedStream,
  type ShapingOptions,
} from '../net/tls-client.js';
import { WireError } from '../wire/errors.js';
import type { Address } from '../wire/socks-address.js';
import {
  encodeTrojanRequest,
  encodeTrojanUdpFrame,
  trojanPasswordHash,
  TROJAN_CONNECT,
  TROJAN_UDP_ASSOCIATE,
  TrojanUdpReader,
  type TrojanUri,
} from '../wire/trojan.js';
import type { Outbound, UdpTunnel } from './outbound.js';

export interface TrojanOutboundOptions {
  connectTimeoutMs: number;
  /** How long a request waits for the application's first bytes before sending the header alone. */
  headerDelayMs: number;
  /** More certificates to trust (PEM) besides the system's CAs, e.g. a test CA. */
  ca?: string | Buffer;
  /** Record shaping of the first writes; false turns it off. */
  shaping?: ShapingOptions | false;
}

export const TROJAN_OUTBOUND_DEFAULTS: TrojanOutboundOptions = {
  connectTimeoutMs: 10_000,
  headerDelayMs: 100,
};

/** Datagrams queued while a UDP association's connection is being set up. */
const UDP_QUEUE = 64;
/** Frames are dropped rather than queued beyond this much unsent data. */
const UDP_MAX_BUFFERED = 1 << 20;

export class TrojanOutbound implements Outbound {
  private readonly hash: string;
  private session: Buffer | undefined;

  constructor(
    readonly server: TrojanUri,
    private readonly opts: TrojanOutboundOptions = TROJAN_OUTBOUND_DEFAULTS,
  ) {
    this.hash = trojanPasswordHash(server.password);
  }

  private serverIp(): Promise<string> {
    return resolveServerHost(this.server.host);
  }

  /** A verified TLS connection to the server; rejects with DialError. */
  private async connectTls(): Promise<TLSSocket> {
    const socket = await connectTcp(await this.serverIp(), this.server.port, this.opts.connectTimeoutMs);
    const u = this.server;
    const pinned = u.pinnedCertSha256;
    const base = browserLikeTlsOptions(u.sni ?? u.host, u.alpn);
    // Resume with the last ticket the server gave, once: browsers use a TLS 1.3 ticket only once, and
    // the ticket travels in clear, so reusing it would link connections.
    const session = this.session;
    this.session = undefined;
    const tls = tlsConnect({
      ...base,
      socket,
      host: u.sni ?? u.host, // the name verified against the certificate
      rejectUnauthorized: !u.allowInsecure && pinned.length === 0,
      ...(this.opts.ca ? { ca: this.opts.ca } : {}),
      ...(session ? { session } : {}),
    });
    // Keep tickets only from a server that passed verification (a ticket may arrive before that).
    let verified = false;
    let ticket: Buffer | undefined;
    tls.on('session', (s: Buffer) => {
      if (verified) this.session = s;
      else ticket = s;
    });
    return new Promise<TLSSocket>((resolve, reject) => {
      const fail = (e: DialError): void => {
        clearTimeout(timer);
        tls.destroy();
        socket.destroy();
        reject(e);
      };
      const timer = setTimeout(
        () =>
          fail(new DialError('timeout', `TLS handshake timed out after ${this.opts.connectTimeoutMs} ms`)),
        this.opts.connectTimeoutMs,
      );
      tls.once('error', (e: NodeJS.ErrnoException) => {
        this.session = undefined;
        fail(new DialError(e.code === 'ECONNRESET' ? 'refused' : 'other', `TLS: ${e.code ?? e.message}`));
      });
      tls.once('secureConnect', () => {
        // A resumed session proves the server holds a ticket from a connection that passed the pin.
        if (pinned.length && !tls.isSessionReused()) {
          const fp = tls.getPeerCertificate().fingerprint256?.replace(/:/g, '').toUpperCase();
          if (!fp || !pinned.includes(fp)) {
            this.session = undefined;
            return fail(
              new DialError('other', 'TLS: the server certificate does not match the pinned SHA-256'),
            );
          }
        }
        clearTimeout(timer);
        verified = true;
        if (ticket) this.session = ticket;
        tls.removeAllListeners('error');
        resolve(tls);
      });
    });
  }

  private shaping(): ShapingOptions | undefined {
    return this.opts.shaping === false ? undefined : (this.opts.shaping ?? DEFAULT_SHAPING);
  }

  async dialTcp(target: Address): Promise<Duplex> {
    const tls = await this.connectTls();
    return new ShapedStream(tls, {
      head: encodeTrojanRequest(this.hash, TROJAN_CONNECT, target),
      headDelayMs: this.opts.headerDelayMs,
      shaping: this.shaping(),
    });
  }

  /**
   * One Trojan connection carries the association; it is opened on the first datagram (whose
   * destination the header names, as trojan-gfw and v2ray do) and again after it dies.
   */
  openUdp(onReply: (d: Datagram) => void): UdpTunnel {
    let stream: ShapedStream | undefined;
    let queue: Datagram[] | undefined;
    let closed = false;

    const frame = (d: Datagram): Buffer | undefined => {
      try {
        return encodeTrojanUdpFrame(d.address, d.payload);
      } catch (e) {
        if (e instanceof WireError) return undefined; // too long for a frame: drop, as a network would
        throw e;
      }
    };
    const open = (first: Datagram): void => {
      queue = [first];
      this.connectTls().then(
        (tls) => {
          if (closed) {
            tls.destroy();
            return;
          }
          const s = new ShapedStream(tls, {
            head: encodeTrojanRequest(this.hash, TROJAN_UDP_ASSOCIATE, first.address),
            shaping: this.shaping(),
          });
          stream = s;
          const reader = new TrojanUdpReader();
          s.on('data', (chunk: Buffer) => {
            try {
              for (const f of reader.push(chunk))
                onReply({ address: f.address, payload: Buffer.from(f.payload) });
            } catch {
              s.destroy();
            }
          });
          s.on('error', () => s.destroy());
          s.once('end', () => s.destroy());
          s.once('close', () => {
            if (stream === s) stream = undefined;
          });
          const q = queue ?? [];
          queue = undefined;
          for (const d of q) send(d);
        },
        () => {
          queue = undefined; // the datagrams are lost; the next one tries again
        },
      );
    };
    const send = (d: Datagram): void => {
      const f = frame(d);
      if (!f || !stream || stream.writableLength > UDP_MAX_BUFFERED) return;
      stream.write(f);
    };
    return {
      send: (d) => {
        if (closed) return;
        if (queue) {
          if (queue.length < UDP_QUEUE) queue.push(d);
        } else if (stream && !stream.destroyed) send(d);
        else open(d);
      },
      close: () => {
        closed = true;
        queue = undefined;
        stream?.destroy();
        stream = undefined;
      },
    };
  }
}
