// The client: a mixed SOCKS5/HTTP proxy port and any fixed forwards, all through one outbound.
import type { Server } from 'node:net';
import type { SsUri } from '../wire/sip002.js';
import type { Address } from '../wire/socks-address.js';
import { bindUdp, listenTcp, trackConnections } from '../net/listen.js';
import { createLog, type Log } from '../log.js';
import { createMixedInbound, type Credentials } from './mixed-inbound.js';
import { createTcpForward, createUdpForward, type ForwardSpec, type UdpForward } from './forward-inbound.js';
import { ShadowsocksOutbound } from './shadowsocks-outbound.js';

export interface ClientConfig {
  server: SsUri;
  listen: Address;
  forwards: ForwardSpec[];
  auth?: Credentials;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  udpTimeoutMs?: number;
  log?: Log;
}

export interface RunningClient {
  port: number;
  forwardPorts: number[];
  close(): Promise<void>;
}

export async function startClient(cfg: ClientConfig): Promise<RunningClient> {
  const log = cfg.log ?? createLog();
  const outbound = new ShadowsocksOutbound(cfg.server, {
    connectTimeoutMs: cfg.connectTimeoutMs ?? 10_000,
    headerDelayMs: 100,
  });
  const idleTimeoutMs = cfg.idleTimeoutMs ?? 300_000;
  const udpTimeoutMs = cfg.udpTimeoutMs ?? 120_000;
  const servers: Server[] = [];
  const udps: UdpForward[] = [];
  const tracked: { destroyAll(): void }[] = [];
  const closeAll = async (): Promise<void> => {
    for (const u of udps) u.close();
    const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const t of tracked) t.destroyAll();
    await closed;
  };
  try {
    const mixed = createMixedInbound({
      outbound,
      auth: cfg.auth,
      handshakeTimeoutMs: 30_000,
      idleTimeoutMs,
      log,
    });
    servers.push(mixed);
    tracked.push(trackConnections(mixed));
    const port = await listenTcp(mixed, cfg.listen);
    const forwardPorts: number[] = [];
    for (const f of cfg.forwards) {
      const fopts = { outbound, idleTimeoutMs, udpTimeoutMs, log };
      const tcp = createTcpForward(f, fopts);
      servers.push(tcp);
      tracked.push(trackConnections(tcp));
      const fport = await listenTcp(tcp, f.listen);
      const udp = createUdpForward(f, fopts);
      udps.push(udp);
      await bindUdp(udp.socket, f.listen.host, fport);
      forwardPorts.push(fport);
    }
    return { port, forwardPorts, close: closeAll };
  } catch (e) {
    await closeAll();
    throw e;
  }
}
