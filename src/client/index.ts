// The client: a mixed SOCKS5/HTTP proxy port, fixed forwards, a local DNS listener and a control API,
// all behind one router that sends each flow to a server group, direct, or nowhere.
import { randomBytes } from 'node:crypto';
import type { Server } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { SsUri } from '../wire/sip002.js';
import { makeAddress, type Address } from '../wire/socks-address.js';
import { parseRule, type Rule } from '../wire/rules.js';
import { bindUdp, listenTcp, trackConnections } from '../net/listen.js';
import { createLog, type Log } from '../log.js';
import { createMixedInbound, type Credentials } from './mixed-inbound.js';
import { createTcpForward, createUdpForward, type ForwardSpec, type UdpForward } from './forward-inbound.js';
import { makeOutbound as makeServerOutbound, type ServerUri } from './server-uri.js';
import { DirectOutbound } from './direct-outbound.js';
import { ServerGroup, type GroupKind, type HealthCheck } from './server-group.js';
import { SubscriptionFeed } from './subscription.js';
import { DEFAULT_DOH_URL, DnsResolver, type DnsRoute } from './dns-resolver.js';
import { startDnsServer, type RunningDns } from './dns-server.js';
import { RuleTable, type RuleList } from './rule-table.js';
import { builtinList, countryRanges, presetRules, readListFile } from './presets.js';
import { RuleList as List } from './rule-table.js';
import { Router } from './router.js';
import { ConnectionTable } from './connections.js';
import { createControlApi } from './control-api.js';
import { startTunInbound, type RunningTun, type TunOptions } from './tun-inbound.js';
import type { DialContext, Outbound, UdpTunnel } from './outbound.js';

export interface GroupConfig {
  name: string;
  kind: GroupKind;
  servers: { uri: ServerUri; name: string }[];
  subscriptions: { url: string; intervalMs: number }[];
  check: HealthCheck;
}

export interface DnsConfig {
  /** Where the local DNS listener (UDP and TCP) listens; none when unset. */
  listen?: Address;
  /** When the listener is the default rather than asked for, failing to bind it is only a warning. */
  optional?: boolean;
  doh: string;
  ca?: string;
  /** Plain DNS servers for direct names; the system's when unset. */
  direct?: Address[];
}

export interface ClientConfig {
  /** Shorthand for one group named "proxy" holding this server. */
  server?: SsUri;
  groups?: GroupConfig[];
  listen: Address;
  forwards: ForwardSpec[];
  auth?: Credentials;
  /** The full rule list, ending in MATCH; default: the messaging preset for the first group. */
  rules?: Rule[];
  /** User rule lists by name (RULE-SET), as list file paths. */
  ruleSets?: Record<string, string>;
  /** Country code → list file of its ranges, overriding the shipped ones. */
  geoip?: Record<string, string>;
  dns?: DnsConfig;
  /** The local control API; none when unset. A random token is made when none is given. */
  control?: { listen: Address; token?: string };
  /** Full-VPN mode (Linux, root): a TUN device routed through the router (docs/tun.md). */
  tun?: TunOptions;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  udpTimeoutMs?: number;
  /** Health checks of the shorthand `server` group. */
  check?: HealthCheck;
  log?: Log;
}

export interface RunningClient {
  port: number;
  forwardPorts: number[];
  dns?: { port: number };
  control?: { url: string; token: string };
  tun?: RunningTun;
  router: Router;
  groups: ReadonlyMap<string, ServerGroup>;
  connections: ConnectionTable;
  close(): Promise<void>;
}

export class ClientConfigError extends Error {
  override name = 'ClientConfigError';
}

/** The rule table over shipped and user lists; a missing list or country is a ClientConfigError. */
export function buildRuleTable(
  rules: readonly Rule[],
  ruleSets: Record<string, string> = {},
  geoip: Record<string, string> = {},
): RuleTable {
  const userLists = new Map<string, RuleList>();
  try {
    return new RuleTable(rules, {
      list: (name) => {
        if (name in ruleSets) {
          let l = userLists.get(name);
          if (!l) {
            l = new List(readListFile(ruleSets[name]!));
            userLists.set(name, l);
          }
          return l;
        }
        return builtinList(name);
      },
      country: (cc) => countryRanges(cc, geoip),
    });
  } catch (e) {
    throw new ClientConfigError((e as Error).message);
  }
}

const DEFAULT_CHECK: HealthCheck = {
  url: 'http://cp.cloudflare.com/generate_204',
  intervalMs: 30_000,
  timeoutMs: 5_000,
};

export async function startClient(cfg: ClientConfig): Promise<RunningClient> {
  const log = cfg.log ?? createLog();
  const connectTimeoutMs = cfg.connectTimeoutMs ?? 10_000;
  const makeOutbound = (uri: ServerUri): Outbound => makeServerOutbound(uri, connectTimeoutMs);

  const groupConfigs: GroupConfig[] = [...(cfg.groups ?? [])];
  if (cfg.server) {
    groupConfigs.unshift({
      name: 'proxy',
      kind: 'fallback',
      servers: [{ uri: cfg.server, name: cfg.server.tag || `${cfg.server.host}:${cfg.server.port}` }],
      subscriptions: [],
      check: cfg.check ?? DEFAULT_CHECK,
    });
  }
  if (!groupConfigs.length) throw new ClientConfigError('no server group: give a server or a group');
  const mainGroup = groupConfigs[0]!.name;
  const rules = cfg.rules ?? presetRules('messaging', mainGroup).map((r) => parseRule(r));
  const table = buildRuleTable(rules, cfg.ruleSets, cfg.geoip);

  const groups = new Map<string, ServerGroup>();
  const feeds: SubscriptionFeed[] = [];
  const servers: Server[] = [];
  const udps: UdpForward[] = [];
  const tracked: { destroyAll(): void }[] = [];
  let dns: RunningDns | undefined;
  let resolver: DnsResolver | undefined;
  let control: FastifyInstance | undefined;
  let tun: RunningTun | undefined;

  const closeAll = async (): Promise<void> => {
    await tun?.close(); // first: the system's routes lead into it
    for (const f of feeds) f.close();
    for (const g of groups.values()) g.close();
    for (const u of udps) u.close();
    const closed = Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    for (const t of tracked) t.destroyAll();
    await Promise.all([closed, dns?.close(), control?.close()]);
    resolver?.close();
  };

  try {
    for (const gc of groupConfigs) {
      const g = new ServerGroup(gc.name, gc.kind, { check: gc.check, log });
      g.setSourceMembers(
        'static',
        gc.servers.map((s) => ({ name: s.name, outbound: makeOutbound(s.uri) })),
      );
      groups.set(gc.name, g);
    }
    const direct = new DirectOutbound(connectTimeoutMs);
    const connections = new ConnectionTable();
    const router = new Router({
      table,
      groups,
      direct,
      connections,
      nameOf: (ip) => resolver?.domainOf(ip),
      log,
    });
    for (const gc of groupConfigs) {
      for (const sub of gc.subscriptions) {
        const feed = new SubscriptionFeed({
          url: sub.url,
          intervalMs: sub.intervalMs,
          group: groups.get(gc.name)!,
          log,
          makeOutbound,
        });
        feeds.push(feed);
      }
    }
    // Periodic health checks only where there is a choice to make: one fixed server has nothing to
    // fail over to, and each check is a connection the censor can see (failed dials still re-check).
    for (const gc of groupConfigs) {
      if (gc.servers.length > 1 || gc.subscriptions.length) groups.get(gc.name)!.start();
    }
    // The first fetch of each subscription, side by side; a failure leaves the group's other servers.
    await Promise.all(feeds.map((f) => f.start().catch(() => undefined)));

    const idleTimeoutMs = cfg.idleTimeoutMs ?? 300_000;
    const udpTimeoutMs = cfg.udpTimeoutMs ?? 120_000;
    const mixed = createMixedInbound({
      outbound: router,
      auth: cfg.auth,
      handshakeTimeoutMs: 30_000,
      idleTimeoutMs,
      log,
    });
    servers.push(mixed);
    tracked.push(trackConnections(mixed));
    const port = await listenTcp(mixed, cfg.listen);

    // A forward is a fixed tunnel (like ss-tunnel): it always goes through the main group.
    const forwardOut = router.fixed(mainGroup, 'FORWARD');
    const forwardPorts: number[] = [];
    for (const f of cfg.forwards) {
      const fopts = { outbound: forwardOut, idleTimeoutMs, udpTimeoutMs, log };
      const tcp = createTcpForward(f, fopts);
      servers.push(tcp);
      tracked.push(trackConnections(tcp));
      const fport = await listenTcp(tcp, f.listen);
      const udp = createUdpForward(f, fopts);
      udps.push(udp);
      await bindUdp(udp.socket, f.listen.host, fport);
      forwardPorts.push(fport);
    }

    // TUN mode answers port 53 itself, so it needs the resolver even without a DNS listener.
    if (cfg.dns?.listen || cfg.tun) {
      const dnsCfg: DnsConfig = cfg.dns ?? { doh: DEFAULT_DOH_URL };
      // DoH for tunnelled names goes through the main group, whatever the rules say about the DoH
      // server's own address (under the messaging preset 1.1.1.1 would otherwise be direct).
      const dohOut = router.fixed(mainGroup, 'DNS');
      resolver = new DnsResolver({
        route: (name): DnsRoute => {
          let d;
          try {
            d = router.decide(makeAddress(name, 443), 'udp', 'dns');
          } catch {
            return 'direct';
          }
          return d.target.kind === 'reject' ? 'reject' : d.target.kind === 'direct' ? 'direct' : 'proxy';
        },
        doh: { url: dnsCfg.doh, dial: (t) => dohOut.dialTcp(t, { inbound: 'dns' }), ca: dnsCfg.ca },
        directServers: dnsCfg.direct,
        log,
      });
      try {
        if (dnsCfg.listen) dns = await startDnsServer(resolver, dnsCfg.listen, log);
      } catch (e) {
        if (!dnsCfg.optional) throw e;
        log.warn(
          { err: (e as Error).message },
          `local DNS listener not started on ${dnsCfg.listen!.host}:${dnsCfg.listen!.port}`,
        );
      }
    }

    let controlInfo: RunningClient['control'];
    if (cfg.control) {
      const token = cfg.control.token ?? randomBytes(18).toString('base64url');
      control = await createControlApi({
        token,
        connections,
        router,
        groups,
        info: () => ({
          listen: `${cfg.listen.host}:${port}`,
          dns: dns ? `${cfg.dns!.listen!.host}:${dns.port}` : null,
          rules: table.rules.length,
        }),
      });
      await control.listen({ host: cfg.control.listen.host, port: cfg.control.listen.port });
      const addr = control.server.address();
      const cport = typeof addr === 'object' && addr ? addr.port : cfg.control.listen.port;
      const host =
        cfg.control.listen.kind === 'ipv6' ? `[${cfg.control.listen.host}]` : cfg.control.listen.host;
      controlInfo = { url: `http://${host}:${cport}`, token };
    }

    if (cfg.tun) {
      tun = await startTunInbound({
        ...cfg.tun,
        router,
        resolver: resolver!,
        rules,
        ruleSets: cfg.ruleSets,
        geoip: cfg.geoip,
        serverNames: groupConfigs.flatMap((g) => g.servers.map((s) => s.uri.host)),
        idleTimeoutMs,
        udpTimeoutMs,
        log,
      });
    }

    return {
      port,
      forwardPorts,
      dns: dns ? { port: dns.port } : undefined,
      control: controlInfo,
      tun,
      router,
      groups,
      connections,
      close: closeAll,
    };
  } catch (e) {
    await closeAll();
    throw e;
  }
}

export type { DialContext, UdpTunnel };
