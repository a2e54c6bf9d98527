// A single-key Shadowsocks server: TCP and UDP on one port.
import { masterKey } from '../crypto/kdf.js';
import { SaltPool } from '../crypto/replay.js';
import type { Clock } from '../crypto/ss-stream.js';
import { methodSpec, type MethodName } from '../wire/shadowsocks-methods.js';
import type { Address } from '../wire/socks-address.js';
import { createLog, type Log } from '../log.js';
import { bindUdp, listenTcp, trackConnections } from '../net/listen.js';
import { createTcpInbound, type InboundEvent } from './shadowsocks-tcp.js';
import { createUdpInbound, type UdpInbound } from './shadowsocks-udp.js';

export interface ServerConfig {
  listen: Address;
  method: MethodName;
  /** SIP004 password, or the SIP022 base64 PSK. */
  password: string;
  allowPrivate?: boolean;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  udpTimeoutMs?: number;
  log?: Log;
  clock?: Clock;
  onEvent?: (e: InboundEvent) => void;
}

export interface RunningServer {
  /** The TCP and UDP port actually bound (useful with port 0). */
  port: number;
  close(): Promise<void>;
}

export const SERVER_DEFAULTS = {
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  handshakeTimeoutMs: 60_000,
  udpTimeoutMs: 120_000,
  maxUdpAssociations: 4096,
} as const;

export async function startServer(cfg: ServerConfig): Promise<RunningServer> {
  const spec = methodSpec(cfg.method);
  const key = { spec, key: masterKey(spec, cfg.password) };
  const log = cfg.log ?? createLog();
  const policy = {
    allowPrivate: cfg.allowPrivate ?? false,
    connectTimeoutMs: cfg.connectTimeoutMs ?? SERVER_DEFAULTS.connectTimeoutMs,
  };
  // SIP022 requires 60 s of salts; SIP004 has no timestamps, so keep them as long as memory allows.
  const saltPool =
    spec.edition === '2022' ? new SaltPool(60_000, 1_000_000) : new SaltPool(3_600_000, 500_000);
  const common = { key, log, clock: cfg.clock, onEvent: cfg.onEvent };
  const tcp = createTcpInbound({
    ...common,
    saltPool,
    policy,
    handshakeTimeoutMs: cfg.handshakeTimeoutMs ?? SERVER_DEFAULTS.handshakeTimeoutMs,
    idleTimeoutMs: cfg.idleTimeoutMs ?? SERVER_DEFAULTS.idleTimeoutMs,
  });
  const connections = trackConnections(tcp);
  const port = await listenTcp(tcp, cfg.listen);
  let udp: UdpInbound;
  try {
    udp = createUdpInbound(cfg.listen.host, {
      ...common,
      policy,
      idleTimeoutMs: cfg.udpTimeoutMs ?? SERVER_DEFAULTS.udpTimeoutMs,
      maxAssociations: SERVER_DEFAULTS.maxUdpAssociations,
    });
    await bindUdp(udp.socket, cfg.listen.host, port);
  } catch (e) {
    tcp.close();
    throw e;
  }
  log.info({ method: cfg.method, port }, 'shadowsocks server listening');
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        udp.close();
        tcp.close(() => resolve());
        connections.destroyAll();
      }),
  };
}
