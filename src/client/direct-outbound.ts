// Connections that leave the client machine directly, without a tunnel (the router's "direct").
import type { Duplex } from 'node:stream';
import { dialDirect, UdpResolver } from '../net/dialer.js';
import { FullConeSocket } from '../net/udp-nat.js';
import { makeAddress, type Address } from '../wire/socks-address.js';
import type { Datagram } from '../crypto/ss-udp.js';
import type { Outbound, UdpTunnel } from './outbound.js';

export class DirectOutbound implements Outbound {
  // On the user's own machine, reaching the LAN directly is the point, so private addresses are allowed.
  private readonly policy = { allowPrivate: true, connectTimeoutMs: 10_000 };

  constructor(connectTimeoutMs = 10_000) {
    this.policy.connectTimeoutMs = connectTimeoutMs;
  }

  dialTcp(target: Address): Promise<Duplex> {
    return dialDirect(target, this.policy);
  }

  openUdp(onReply: (d: Datagram) => void): UdpTunnel {
    const resolver = new UdpResolver(this.policy);
    const sock = new FullConeSocket((payload, from) =>
      onReply({ address: makeAddress(from.address, from.port), payload }),
    );
    return {
      send: (d) => {
        resolver.resolve(d.address).then(
          (ip) => sock.send(d.payload, ip, d.address.port),
          () => undefined,
        );
      },
      close: () => sock.close(),
    };
  }
}
