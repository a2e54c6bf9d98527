// What the client's inbounds dial through: a Shadowsocks server today, a router over groups later.
import type { Duplex } from 'node:stream';
import type { Address } from '../wire/socks-address.js';
import type { Datagram } from '../crypto/ss-udp.js';

export interface UdpTunnel {
  send(d: Datagram): void;
  close(): void;
}

export interface Outbound {
  /** Opens a TCP stream to `target`; rejects with DialError when the path is not available. */
  dialTcp(target: Address): Promise<Duplex>;
  /** Opens a UDP association; replies arrive through `onReply` with their source address. */
  openUdp(onReply: (d: Datagram) => void): UdpTunnel;
}
