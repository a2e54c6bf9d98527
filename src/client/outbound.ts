// What the client's inbounds dial through: a Shadowsocks server, a server group, direct, or the router
// that chooses among them per destination.
import type { Duplex } from 'node:stream';
import type { Address } from '../wire/socks-address.js';
import type { Datagram } from '../crypto/ss-udp.js';

export interface UdpTunnel {
  send(d: Datagram): void;
  close(): void;
}

/** Who is asking, for the router's rules; the router fills in `onData` so the relay can count bytes. */
export interface DialContext {
  /** The inbound's name: `mixed`, `forward`, `dns`, `tun`, or a `--forward` spec's own name. */
  inbound?: string;
  /** Set by the router: pass to the relay so the connection table sees bytes as they flow. */
  onData?: (direction: 'up' | 'down', bytes: number) => void;
}

export interface Outbound {
  /** Opens a TCP stream to `target`; rejects with DialError when the path is not available. */
  dialTcp(target: Address, ctx?: DialContext): Promise<Duplex>;
  /** Opens a UDP association; replies arrive through `onReply` with their source address. */
  openUdp(onReply: (d: Datagram) => void, ctx?: DialContext): UdpTunnel;
}
