// The router: an Outbound that picks, per TCP connection and per UDP destination, where traffic goes —
// a server group, direct, or nowhere — by the rule table, and records each flow in the connection table.
import type { Duplex } from 'node:stream';
import { DialError } from '../net/dialer.js';
import { formatAddress, type Address } from '../wire/socks-address.js';
import type { Datagram } from '../crypto/ss-udp.js';
import type { Target } from '../wire/rules.js';
import type { Log } from '../log.js';
import type { DialContext, Outbound, UdpTunnel } from './outbound.js';
import type { ConnectionInfo, ConnectionTable } from './connections.js';
import type { RouteDecision, RuleTable } from './rule-table.js';

/** A server group as the router sees it: an Outbound that can say which server it uses now. */
export interface RoutedGroup extends Outbound {
  current(): { name: string } | undefined;
}

export interface RouterOptions {
  table: RuleTable;
  groups: ReadonlyMap<string, RoutedGroup>;
  direct: Outbound;
  connections: ConnectionTable;
  /** The name the local DNS answered an IP for, so name rules apply to apps that dial by address. */
  nameOf?: (ip: string) => string | undefined;
  log: Log;
}

/** Decisions cached per UDP association and destination; a call's few peers fit many times over. */
const UDP_DECISION_CACHE = 1024;

export class Router implements Outbound {
  constructor(private readonly opts: RouterOptions) {}

  /** Which rule and target apply to a destination (also for `pigeon client`'s dry-run and tests). */
  decide(target: Address, network: 'tcp' | 'udp', inbound: string): RouteDecision & { domain?: string } {
    const domain = target.kind === 'domain' ? undefined : this.opts.nameOf?.(target.host);
    const d = this.opts.table.decide({
      host: target.host,
      kind: target.kind,
      port: target.port,
      network,
      inbound,
      domain,
    });
    return domain ? { ...d, domain } : d;
  }

  private outboundFor(t: Target): { outbound: Outbound; via: string } | undefined {
    if (t.kind === 'reject') return undefined;
    if (t.kind === 'direct') return { outbound: this.opts.direct, via: 'DIRECT' };
    const g = this.opts.groups.get(t.name);
    if (!g) return undefined; // the config loader checks group names; this is a safety net
    return { outbound: g, via: `${t.name}/${g.current()?.name ?? '-'}` };
  }

  /**
   * An Outbound that skips the rules and always uses one group (fixed forwards, DNS over HTTPS), still
   * recorded in the connection table with `label` as its rule.
   */
  fixed(group: string, label: string): Outbound {
    const decide = (): RouteDecision => ({ target: { kind: 'group', name: group }, rule: label });
    return {
      dialTcp: (target, ctx) => this.dialWith(target, ctx ?? {}, decide()),
      openUdp: (onReply, ctx) => this.udpWith(onReply, ctx ?? {}, decide),
    };
  }

  dialTcp(target: Address, ctx: DialContext = {}): Promise<Duplex> {
    return this.dialWith(target, ctx, this.decide(target, 'tcp', ctx.inbound ?? 'mixed'));
  }

  openUdp(onReply: (d: Datagram) => void, ctx: DialContext = {}): UdpTunnel {
    const inbound = ctx.inbound ?? 'mixed';
    return this.udpWith(onReply, ctx, (address) => this.decide(address, 'udp', inbound));
  }

  private async dialWith(
    target: Address,
    ctx: DialContext,
    d: RouteDecision & { domain?: string },
  ): Promise<Duplex> {
    const inbound = ctx.inbound ?? 'mixed';
    const out = this.outboundFor(d.target);
    if (!out) throw new DialError('forbidden', `rejected by rule ${d.rule}`);
    const stream = await out.outbound.dialTcp(target, { inbound });
    const conns = this.opts.connections;
    const info = conns.add({
      network: 'tcp',
      inbound,
      destination: formatAddress(target),
      domain: d.domain,
      rule: d.rule,
      // Asked again after the dial: a group that failed over during it names the server it moved to.
      via: this.outboundFor(d.target)?.via ?? out.via,
    });
    ctx.onData = (dir, n) => conns.count(info, dir, n);
    stream.once('close', () => conns.remove(info));
    return stream;
  }

  private udpWith(
    onReply: (d: Datagram) => void,
    ctx: DialContext,
    decide: (address: Address) => RouteDecision & { domain?: string },
  ): UdpTunnel {
    const inbound = ctx.inbound ?? 'mixed';
    const conns = this.opts.connections;
    const decisions = new Map<string, RouteDecision & { domain?: string }>();
    const routes = new Map<string, { tunnel: UdpTunnel; info: ConnectionInfo }>();
    let closed = false;

    const routeFor = (d: Datagram): { tunnel: UdpTunnel; info: ConnectionInfo } | undefined => {
      const key = formatAddress(d.address);
      let decision = decisions.get(key);
      if (!decision) {
        if (decisions.size >= UDP_DECISION_CACHE) decisions.clear();
        decision = decide(d.address);
        decisions.set(key, decision);
      }
      const t = decision.target;
      if (t.kind === 'reject') return undefined;
      const routeKey = t.kind === 'direct' ? 'DIRECT' : `group:${t.name}`;
      let route = routes.get(routeKey);
      if (!route) {
        const out = this.outboundFor(t);
        if (!out) return undefined;
        const info = conns.add({
          network: 'udp',
          inbound,
          destination: key,
          domain: decision.domain,
          rule: decision.rule,
          via: out.via,
        });
        const tunnel = out.outbound.openUdp(
          (reply) => {
            conns.count(info, 'down', reply.payload.length);
            onReply(reply);
          },
          { inbound },
        );
        route = { tunnel, info };
        routes.set(routeKey, route);
      }
      return route;
    };

    return {
      send: (d) => {
        if (closed) return;
        const route = routeFor(d);
        if (!route) return; // rejected: dropped, as a firewall would
        conns.count(route.info, 'up', d.payload.length);
        route.tunnel.send(d);
      },
      close: () => {
        if (closed) return;
        closed = true;
        for (const r of routes.values()) {
          r.tunnel.close();
          conns.remove(r.info);
        }
        routes.clear();
      },
    };
  }
}
