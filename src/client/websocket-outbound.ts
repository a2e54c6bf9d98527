// The client's WebSocket outbound: Shadowsocks through a server reached over WebSocket (optionally
// inside TLS), for `ss://…?plugin=v2ray-plugin;tls;host=…;path=…` keys. It speaks what shadowsocks'
// v2ray-plugin client puts on the wire, so it works with a v2ray-plugin server (ss-server
// `--plugin v2ray-plugin --plugin-opts server;…`), with Pigeon's WebSocket inbound, and through CDNs:
// - `GET <path>` upgraded with `Host: <host>` (TLS server name <host> with `tls`), one binary message
//   per write;
// - Mux.Cool inside the WebSocket unless `mux=0`, as v2ray-plugin does by default (and its server
//   then requires): one WebSocket per TCP connection, carrying one session;
// - `cert=FILE` / `certRaw=BASE64` name a certificate to trust besides the system's CAs.
// UDP: v2ray-plugin does not carry UDP, and ss-local sends UDP straight to the server's address and
// port; openUdp does the same (plain Shadowsocks UDP). Behind a CDN that address is the CDN's, and UDP
// does not get through.
import { readFileSync } from 'node:fs';
import { isIP, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { rootCertificates, type ConnectionOptions } from 'node:tls';
import { WebSocket, type ClientOptions } from 'ws';
import { StreamReader, StreamWriter, streamKey, type StreamKey } from '../crypto/ss-stream.js';
import type { Datagram } from '../crypto/ss-udp.js';
import { classifyDialError, DialError } from '../net/dialer.js';
import { MuxCarrier } from '../net/mux-cool-stream.js';
import { ShadowsocksStream } from '../net/shadowsocks-stream.js';
import { WebSocketStream } from '../net/websocket-stream.js';
import { WireError } from '../wire/errors.js';
import { methodSpec } from '../wire/shadowsocks-methods.js';
import type { SsUri } from '../wire/sip002.js';
import { isV2rayPlugin, parseV2rayPluginOptions, type V2rayPluginOptions } from '../wire/sip003.js';
import type { Address } from '../wire/socks-address.js';
import type { Outbound, UdpTunnel } from './outbound.js';
import { ShadowsocksOutbound, type ShadowsocksOutboundOptions } from './shadowsocks-outbound.js';

export interface WebSocketOutboundOptions extends ShadowsocksOutboundOptions {
  /** More certificates to trust (PEM), e.g. a test CA; the plugin's `cert`/`certRaw` are added too. */
  ca?: string;
  /** The largest WebSocket message accepted from the server (default 1 MiB). */
  maxMessageBytes?: number;
  /** Ping the server this often (default 30 s; 0: never), so that CDNs keep quiet connections. */
  pingIntervalMs?: number;
}

/** What v2ray-plugin's client names as the Mux.Cool target (its dokodemo-door's address, port 0). */
const PLUGIN_MUX_TARGET = { network: 'tcp', address: { kind: 'ipv4', host: '127.0.0.1', port: 0 } } as const;

/** Whether an ss:// URI needs this outbound rather than the plain Shadowsocks one. */
export function usesWebSocket(server: SsUri): boolean {
  return server.plugin !== undefined && isV2rayPlugin(server.plugin.name);
}

export class WebSocketOutbound implements Outbound {
  readonly plugin: V2rayPluginOptions;
  private readonly key: StreamKey;
  private readonly ca: string[] | undefined;
  private readonly udp: ShadowsocksOutbound;

  constructor(
    readonly server: SsUri,
    private readonly opts: WebSocketOutboundOptions = { connectTimeoutMs: 10_000, headerDelayMs: 100 },
  ) {
    if (!server.plugin || !isV2rayPlugin(server.plugin.name))
      throw new WireError('bad-plugin', 'this server key has no v2ray-plugin plugin parameter');
    this.plugin = parseV2rayPluginOptions(server.plugin.options);
    this.key = streamKey(methodSpec(server.method), server.password);
    const ca: string[] = [];
    if (opts.ca) ca.push(opts.ca);
    if (this.plugin.certPem) ca.push(this.plugin.certPem);
    if (this.plugin.certFile) {
      try {
        ca.push(readFileSync(this.plugin.certFile, 'utf8'));
      } catch (e) {
        throw new WireError(
          'bad-plugin',
          `invalid plugin options: cannot read the certificate file ${this.plugin.certFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`,
        );
      }
    }
    // Node replaces its CA list with `ca`: keep the system's too, as v2ray does.
    if (ca.length) ca.unshift(...rootCertificates);
    this.ca = ca.length ? ca : undefined;
    this.udp = new ShadowsocksOutbound({ ...server, plugin: undefined }, opts);
  }

  /** Opens the WebSocket (and its TLS); rejects with DialError. */
  private connect(): Promise<WebSocket> {
    const { host, port } = this.server;
    const p = this.plugin;
    const url = `${p.tls ? 'wss' : 'ws'}://${host.includes(':') ? `[${host}]` : host}:${port}${p.path}`;
    const options: ClientOptions & Pick<ConnectionOptions, 'servername' | 'ALPNProtocols'> = {
      // What v2ray's ws transport sends: Host, no Origin, no extensions, Go's user agent.
      headers: { Host: p.host, 'User-Agent': 'Go-http-client/1.1' },
      perMessageDeflate: false,
      followRedirects: false,
      handshakeTimeout: this.opts.connectTimeoutMs,
      maxPayload: this.opts.maxMessageBytes ?? 1024 * 1024,
    };
    if (p.tls) {
      options.servername = isIP(p.host) ? '' : p.host;
      options.ALPNProtocols = ['http/1.1'];
      if (this.ca) options.ca = this.ca;
    }
    return new Promise((resolve, reject) => {
      let ws: WebSocket;
      try {
        ws = new WebSocket(url, options);
      } catch (e) {
        reject(new DialError('other', `cannot open ${url}: ${(e as Error).message}`));
        return;
      }
      const timer = setTimeout(
        () => fail(new DialError('timeout', 'WebSocket handshake timed out')),
        this.opts.connectTimeoutMs,
      );
      const onResponse = (_req: unknown, res: { statusCode?: number }): void =>
        fail(new DialError('other', `the server answered HTTP ${res.statusCode} instead of a WebSocket`));
      const onError = (e: Error): void =>
        fail(new DialError(classifyDialError(e), `WebSocket: ${e.message}`));
      const onOpen = (): void => {
        settle();
        resolve(ws);
      };
      const settle = (): void => {
        clearTimeout(timer);
        ws.removeListener('unexpected-response', onResponse);
        ws.removeListener('error', onError);
        ws.removeListener('open', onOpen);
      };
      const fail = (e: DialError): void => {
        settle();
        ws.on('error', () => undefined);
        ws.terminate();
        reject(e);
      };
      ws.once('unexpected-response', onResponse);
      ws.once('error', onError);
      ws.once('open', onOpen);
    });
  }

  async dialTcp(target: Address): Promise<Duplex> {
    const ws = await this.connect();
    const carrier = new WebSocketStream(ws, { pingIntervalMs: this.opts.pingIntervalMs ?? 30_000 });
    let transport: Duplex = carrier;
    if (this.plugin.mux) {
      carrier.on('error', () => undefined); // reported to the session through 'close'
      transport = new MuxCarrier(carrier, { role: 'client' }).open(PLUGIN_MUX_TARGET);
    }
    const writer = new StreamWriter(this.key, { kind: 'request', target });
    const reader = new StreamReader(this.key, { kind: 'response', requestSalt: writer.salt });
    // ShadowsocksStream is typed for a net.Socket but uses only Duplex members of it.
    const stream = new ShadowsocksStream(transport as Socket, reader, writer);
    stream.sendHeaderAfter(this.opts.headerDelayMs);
    return stream;
  }

  /** Plain Shadowsocks UDP to the server's address and port, as ss-local does beside a plugin. */
  openUdp(onReply: (d: Datagram) => void): UdpTunnel {
    return this.udp.openUdp(onReply);
  }
}
