// The Shadowsocks server: every access key's port gets a TCP listener and a UDP socket; keys on the
// same port share them. The key set is reloaded when the user source changes (within a second), and
// keys that stop being allowed lose their open connections.
import { join } from 'node:path';
import { openSaltJournal } from './salt-journal.js';
import { startWebSocketInbound } from './websocket-inbound.js';
import { Admission, DEFAULT_ADMISSION, type AdmissionLimits } from '../net/admission.js';
import { SaltPool } from '../crypto/replay.js';
import type { Clock } from '../crypto/ss-stream.js';
import { masterKey } from '../crypto/kdf.js';
import { methodSpec, type MethodName } from '../wire/shadowsocks-methods.js';
import { makeAddress, type Address } from '../wire/socks-address.js';
import { createLog, type Log } from '../log.js';
import { bindUdp, listenTcp, trackConnections } from '../net/listen.js';
import { createTcpInbound } from './shadowsocks-tcp.js';
import { createUdpInbound, type UdpInbound } from './shadowsocks-udp.js';
import { KeyRing } from './key-ring.js';
import { ConnectionRegistry } from './connections.js';
import { NO_EVENTS, type ServerEvents, type ServerKey, type UserSource } from './users.js';

export const SERVER_DEFAULTS = {
  connectTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  handshakeTimeoutMs: 60_000,
  udpTimeoutMs: 120_000,
  maxUdpAssociations: 4096,
  /** How often the key set and the keys' allowed state are re-checked. */
  enforceIntervalMs: 500,
  /** A process may hold 20,000 files here; a tunnelled connection holds two. */
  maxConnections: 9000,
} as const;

export interface MultiServerConfig {
  /** Address to bind every port on ("0.0.0.0", "::", "127.0.0.1"). */
  host: string;
  users: UserSource;
  events?: ServerEvents;
  allowPrivate?: boolean;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  handshakeTimeoutMs?: number;
  udpTimeoutMs?: number;
  enforceIntervalMs?: number;
  /** Where the replay filters are journalled, so replays are refused across a restart; none when unset. */
  replayDir?: string;
  /** Caps on connections that have not authenticated yet (per client address, in total). */
  admission?: AdmissionLimits;
  /** Open TCP connections per port at most (each tunnelled one holds two file descriptors). */
  maxConnections?: number;
  carrier?: TcpCarrier;
  log?: Log;
  clock?: Clock;
}

export interface RunningServer {
  /** The first port listened on (quick mode has exactly one). */
  port: number;
  /** Every port listened on now. */
  ports(): number[];
  /** Open TCP connections and UDP associations, per key or in all. */
  activeConnections(keyId?: string): number;
  close(): Promise<void>;
}

interface PortEntry {
  /** Stops accepting; resolves when the listener has closed. */
  closeTcp(): Promise<void>;
  udp: UdpInbound;
  ring: KeyRing;
  destroyAll(): void;
}

/**
 * How TCP arrives: plain Shadowsocks (the default), or inside WebSocket (v2ray-plugin's carrier, for
 * CDNs) on the same port number; UDP is plain Shadowsocks on that port either way, as with ss-server.
 */
export type TcpCarrier = {
  kind: 'websocket';
  path: string;
  host?: string;
  tls?: { cert: string; key: string };
};

export async function startMultiServer(cfg: MultiServerConfig): Promise<RunningServer> {
  const log = cfg.log ?? createLog();
  const events = cfg.events ?? NO_EVENTS;
  const users = cfg.users;
  const registry = new ConnectionRegistry();
  const policy = {
    allowPrivate: cfg.allowPrivate ?? false,
    connectTimeoutMs: cfg.connectTimeoutMs ?? SERVER_DEFAULTS.connectTimeoutMs,
  };
  // SIP022 requires 60 s of salts; SIP004 has no timestamps, so those are kept for an hour. Both capped.
  const saltPools = { aead: new SaltPool(3_600_000, 500_000), '2022': new SaltPool(60_000, 1_000_000) };
  const journals = cfg.replayDir
    ? (['aead', '2022'] as const).map((k) =>
        openSaltJournal(join(cfg.replayDir!, `salts-${k}.bin`), saltPools[k], log),
      )
    : [];
  const restored = journals.reduce((n, j) => n + j.restored, 0);
  if (restored) log.info({ salts: restored }, 'replay filter restored from the journal');
  const ports = new Map<number, PortEntry>();
  const admission = new Admission(cfg.admission ?? DEFAULT_ADMISSION);
  const identityPsk = (m: MethodName) => users.identityPsk(m);

  const ringFor = (keys: ServerKey[]) => new KeyRing(keys, identityPsk);

  async function open(port: number, keys: ServerKey[]): Promise<number> {
    const entry = { ring: ringFor(keys) } as PortEntry;
    const common = { ring: () => entry.ring, users, events, registry, log, clock: cfg.clock };
    const ssOptions = {
      ...common,
      saltPools,
      policy,
      handshakeTimeoutMs: cfg.handshakeTimeoutMs ?? SERVER_DEFAULTS.handshakeTimeoutMs,
      idleTimeoutMs: cfg.idleTimeoutMs ?? SERVER_DEFAULTS.idleTimeoutMs,
    };
    let bound: number;
    let closeTcp: () => Promise<void>;
    let destroyAll: () => void;
    if (cfg.carrier?.kind === 'websocket') {
      const ws = await startWebSocketInbound({
        listen: makeAddress(cfg.host, port),
        path: cfg.carrier.path,
        host: cfg.carrier.host,
        tls: cfg.carrier.tls,
        shadowsocks: ssOptions,
      });
      bound = ws.port;
      closeTcp = () => ws.close();
      destroyAll = () => undefined; // ws.close() ends every connection
    } else {
      const tcp = createTcpInbound(ssOptions, admission);
      tcp.maxConnections = cfg.maxConnections ?? SERVER_DEFAULTS.maxConnections;
      const tracked = trackConnections(tcp);
      bound = await listenTcp(tcp, makeAddress(cfg.host, port));
      closeTcp = () => new Promise<void>((r) => tcp.close(() => r()));
      destroyAll = tracked.destroyAll;
    }
    const udp = createUdpInbound(cfg.host, {
      ...common,
      policy,
      idleTimeoutMs: cfg.udpTimeoutMs ?? SERVER_DEFAULTS.udpTimeoutMs,
      maxAssociations: SERVER_DEFAULTS.maxUdpAssociations,
    });
    try {
      await bindUdp(udp.socket, cfg.host, bound);
    } catch (e) {
      void closeTcp();
      throw e;
    }
    let closing: Promise<void> | undefined;
    Object.assign(entry, { closeTcp: () => (closing ??= closeTcp()), udp, destroyAll });
    ports.set(bound, entry);
    log.info({ port: bound, keys: keys.length }, 'listening');
    return bound;
  }

  function shut(port: number, e: PortEntry): void {
    ports.delete(port);
    e.udp.close();
    void e.closeTcp();
    e.destroyAll();
  }

  const byPort = (keys: ServerKey[]) => {
    const m = new Map<number, ServerKey[]>();
    for (const k of keys) m.set(k.port, [...(m.get(k.port) ?? []), k]);
    return m;
  };

  // Initial listeners. Port 0 (tests, quick mode) binds an ephemeral port for those keys.
  const initial = byPort(users.keys());
  let first = 0;
  let zeroPort: number | undefined;
  try {
    for (const [port, keys] of initial) {
      const bound = await open(port, keys);
      if (port === 0) zeroPort = bound;
      first ||= bound;
    }
  } catch (e) {
    for (const [p, entry] of ports) shut(p, entry);
    for (const j of journals) j.close();
    throw e;
  }

  let version = users.version();
  let reloading = false;
  const reload = async (): Promise<void> => {
    const groups = byPort(users.keys());
    if (zeroPort !== undefined && groups.has(0)) {
      groups.set(zeroPort, groups.get(0)!);
      groups.delete(0);
    }
    for (const [port, keys] of groups) {
      const e = ports.get(port);
      if (e) e.ring = ringFor(keys);
      else {
        try {
          await open(port, keys);
        } catch (err) {
          log.error({ port, err: (err as Error).message }, 'cannot listen on a key port');
        }
      }
    }
    for (const [port, e] of ports) if (!groups.has(port)) shut(port, e);
  };
  const timer = setInterval(() => {
    const v = users.version();
    if (v !== version && !reloading) {
      version = v;
      reloading = true;
      void reload().finally(() => (reloading = false));
    }
    const now = Date.now();
    registry.enforce((id) => users.isAllowed(id, now));
  }, cfg.enforceIntervalMs ?? SERVER_DEFAULTS.enforceIntervalMs);
  timer.unref();

  return {
    port: first,
    ports: () => [...ports.keys()],
    activeConnections: (id) => registry.count(id),
    close: async () => {
      clearInterval(timer);
      for (const j of journals) j.close();
      registry.closeAll();
      const closing = [...ports.values()].map((e) => e.closeTcp());
      for (const [p, e] of ports) shut(p, e);
      await Promise.all(closing);
    },
  };
}

/** A fixed set of keys that are always allowed: quick mode and tests. */
export class StaticUsers implements UserSource {
  constructor(
    private readonly list: ServerKey[],
    private readonly identity: Partial<Record<MethodName, string>> = {},
  ) {}
  keys(): ServerKey[] {
    return this.list;
  }
  identityPsk(m: MethodName): string | undefined {
    return this.identity[m];
  }
  isAllowed(id: string): boolean {
    return this.list.some((k) => k.id === id);
  }
  addUsage(): void {}
  touch(): void {}
  version(): number {
    return 0;
  }
}

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
  events?: ServerEvents;
  replayDir?: string;
  admission?: AdmissionLimits;
  carrier?: TcpCarrier;
}

/** Quick mode: one key on one port. */
export async function startServer(cfg: ServerConfig): Promise<RunningServer> {
  masterKey(methodSpec(cfg.method), cfg.password); // validate early, with a clear KeyError
  const parts = cfg.password.split(':');
  const identity = parts.length > 1 ? { [cfg.method]: parts[0]! } : {};
  const users = new StaticUsers(
    [{ id: 'default', method: cfg.method, secret: parts[parts.length - 1]!, port: cfg.listen.port }],
    identity,
  );
  return startMultiServer({ ...cfg, host: cfg.listen.host, users });
}
