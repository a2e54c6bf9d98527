// Full-VPN mode on Linux: a TUN device whose packets become flows through the same router as the
// proxy inbounds (docs/tun.md).
//  - TCP: the kernel's own stack terminates it. Segments are translated (src/tun/tcp-nat.ts) to a
//    listener on the TUN's address; each accepted connection is dialled through the router to where
//    the app wanted to go, and relayed.
//  - UDP: in userspace, one router association per app socket (source address and port), so replies
//    from any remote reach the app (full cone, as calls need); idle associations expire.
//  - DNS: UDP and TCP to port 53, whatever the address, are answered by Pigeon: tunnelled names by
//    its resolver (DNS over HTTPS through the tunnel; real addresses, remembered per name so that name
//    rules apply to apps that dial addresses), direct names by the server the app asked. No plaintext
//    query for a tunnelled name leaves the machine.
//  - The system side (src/tun/system.ts): routes and policy rules, the nftables kill switch, all
//    removed on close, on process exit, and — after a crash — on the next start.
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import {
  IPPROTO_TCP,
  IPPROTO_UDP,
  addressOffsets,
  buildTcpReset,
  buildUdpPacket,
  bytesToIp,
  ipToBytes,
  parseIpPacket,
  type IpPacket,
} from '../wire/ip-packet.js';
import { makeAddress, type Address } from '../wire/socks-address.js';
import type { Rule, Target } from '../wire/rules.js';
import { relay } from '../net/relay.js';
import { IdleTable } from '../net/udp-nat.js';
import { openTun, type TunDevice } from '../tun/device.js';
import { TcpNat } from '../tun/tcp-nat.js';
import { forwardTcp, forwardUdp } from '../tun/dns-forward.js';
import { BYPASS_UID, stampOwnSockets, type SocketStamp } from '../tun/bypass.js';
import {
  HostRoutes,
  SystemError,
  cleanupLeftovers,
  configureDevice,
  installKillSwitch,
  installRoutes,
  lanRanges,
  removeKillSwitch,
  removeRoutes,
  requireTools,
  type Family,
} from '../tun/system.js';
import type { Log } from '../log.js';
import type { Datagram } from '../crypto/ss-udp.js';
import type { DnsResolver } from './dns-resolver.js';
import { DATA_DIR, MESSAGING_APPS, readListFile } from './presets.js';
import type { DialContext, Outbound, UdpTunnel } from './outbound.js';

export interface TunOptions {
  /** Everything into the TUN (default), or only the ranges the rules send to a server group, plus DNS. */
  routes?: 'all' | 'preset';
  /** Device name (default pigeon0). */
  name?: string;
  /** Device MTU (default 9000: both ends of every TCP flow are this machine's own stack). */
  mtu?: number;
  /** The nftables kill switch (default on). */
  killSwitch?: boolean;
}

/** The router as the TUN inbound uses it: an Outbound that can also say where a name would go. */
export interface TunRouter extends Outbound {
  decide(target: Address, network: 'tcp' | 'udp', inbound: string): { target: Target };
}

export interface TunInboundOptions extends TunOptions {
  router: TunRouter;
  resolver: DnsResolver;
  /** The rules (for "preset" routes: the ranges they tunnel) and the lists they name. */
  rules: readonly Rule[];
  ruleSets?: Record<string, string>;
  geoip?: Record<string, string>;
  /** Host names of the servers: resolved directly, never through the tunnel they lead to. */
  serverNames?: string[];
  idleTimeoutMs: number;
  udpTimeoutMs: number;
  log: Log;
}

export interface RunningTun {
  name: string;
  routes: 'all' | 'preset';
  /** IPv6 is carried too (the device got its IPv6 address). */
  v6: boolean;
  killSwitch: boolean;
  /** Leftovers of an earlier run that were removed at start. */
  cleaned: string[];
  close(): Promise<void>;
}

export { SystemError as TunError };

const V4: Family = { address: '172.19.0.1', peer: '172.19.0.2', prefix: 30 };
const V6: Family = { address: 'fd00:19::1', peer: 'fd00:19::2', prefix: 126 };
const DEFAULT_NAME = 'pigeon0';
const DEFAULT_MTU = 65_520;
const MAX_UDP_FLOWS = 4096;
const MAX_DNS_IN_FLIGHT = 1024;
const DNS_PORT = 53;
const UDP_DNS_MIN = 512;
const UDP_DNS_MAX = 1232;
const FLAG_TC = 0x0200;
const SWEEP_MS = 1000;

/** The address ranges the rules send to a server group; `all` when a MATCH (or GEOIP-less catch-all) does. */
export function tunnelledRanges(
  rules: readonly Rule[],
  ruleSets: Record<string, string> = {},
  geoip: Record<string, string> = {},
): { all: boolean; v4: string[]; v6: string[] } {
  const out = { all: false, v4: [] as string[], v6: [] as string[] };
  const seen = new Set<string>();
  const add = (v6: boolean, text: string): void => {
    if (seen.has(text)) return;
    seen.add(text);
    (v6 ? out.v6 : out.v4).push(text);
  };
  const fromFile = (path: string): void => {
    for (const e of readListFile(path)) if (e.type === 'cidr') add(e.value.v6, e.value.text);
  };
  for (const r of rules) {
    if (r.target.kind !== 'group') continue;
    const m = r.matcher;
    if (m.type === 'match') {
      out.all = true;
      break;
    }
    if (m.type === 'ip-cidr') add(m.value.v6, m.value.text);
    else if (m.type === 'geoip') {
      const path = geoip[m.value] ?? (m.value === 'cn' ? join(DATA_DIR, 'geoip', 'cn.txt') : undefined);
      if (path) fromFile(path);
    } else if (m.type === 'rule-set') {
      const name = m.value;
      if (name in ruleSets) fromFile(ruleSets[name]!);
      else if (name === 'messaging')
        for (const app of MESSAGING_APPS) fromFile(join(DATA_DIR, 'rules', 'messaging', `${app}.txt`));
      else if ((MESSAGING_APPS as readonly string[]).includes(name))
        fromFile(join(DATA_DIR, 'rules', 'messaging', `${name}.txt`));
      else if (name === 'china-domains') fromFile(join(DATA_DIR, 'rules', 'china-domains.txt'));
    }
  }
  return out;
}

/** An answer as it may go over UDP (RFC 1035/6891 size), else its header and question with TC set. */
function fitUdp(query: Buffer, answer: Buffer): Buffer | undefined {
  let limit = UDP_DNS_MIN;
  try {
    const opt = dnsPacket.decode(query).additionals?.find((rr) => rr.type === 'OPT');
    if (opt && opt.type === 'OPT') limit = Math.min(UDP_DNS_MAX, Math.max(UDP_DNS_MIN, opt.udpPayloadSize));
  } catch {
    // the resolver answered FORMERR; that answer is small
  }
  if (answer.length <= limit) return answer;
  try {
    const p = dnsPacket.decode(answer);
    return dnsPacket.encode({
      type: 'response',
      id: p.id,
      flags: (p.flags ?? 0) | FLAG_TC,
      questions: p.questions,
      answers: [],
      authorities: [],
      additionals: (p.additionals ?? []).filter((rr) => rr.type === 'OPT'),
    });
  } catch {
    return undefined;
  }
}

function questionName(query: Buffer): string | undefined {
  try {
    return dnsPacket.decode(query).questions?.[0]?.name.toLowerCase().replace(/\.$/, '');
  } catch {
    return undefined;
  }
}

function answeredAddresses(answer: Buffer): string[] {
  try {
    return (dnsPacket.decode(answer).answers ?? []).flatMap((a) =>
      a.type === 'A' || a.type === 'AAAA' ? [a.data] : [],
    );
  } catch {
    return [];
  }
}

function listen(server: Server, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port: 0 }, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : 0);
    });
  });
}

/**
 * Creates the TUN device, its routes and the kill switch, and starts turning its packets into flows.
 * Needs root (CAP_NET_ADMIN); throws TunError (named 'TunError') with a readable message otherwise.
 */
export async function startTunInbound(o: TunInboundOptions): Promise<RunningTun> {
  if (process.platform !== 'linux') throw new SystemError('TUN mode is only available on Linux');
  if (process.getuid?.() !== 0) {
    throw new SystemError('TUN mode needs root (it creates a network device and routes): run it with sudo');
  }
  requireTools();
  const log = o.log;
  const name = o.name ?? DEFAULT_NAME;
  const mtu = o.mtu ?? DEFAULT_MTU;
  const mode = o.routes ?? 'all';
  const killSwitch = o.killSwitch ?? true;

  const cleaned = cleanupLeftovers(name);
  if (cleaned.length) log.warn(`removed leftovers of an earlier TUN run: ${cleaned.join(', ')}`);

  const ranges =
    mode === 'preset' ? tunnelledRanges(o.rules, o.ruleSets, o.geoip) : { all: true, v4: [], v6: [] };
  const routeMode = ranges.all ? 'all' : 'ranges';
  if (mode === 'preset' && ranges.all) {
    log.warn('the rules send everything else to a server group: --tun-routes preset routes everything');
  }

  let device: TunDevice | undefined;
  let stamp: SocketStamp | undefined;
  let hostRoutes: HostRoutes | undefined;
  const servers: Server[] = [];
  const sockets = new Set<Socket>();
  let udpFlows: IdleTable<UdpTunnel> | undefined;
  let sweeper: NodeJS.Timeout | undefined;
  let closed = false;

  // The process ends without close() having finished. Asked to stop (a second Ctrl-C, the CLI's exit
  // deadline, exit code 0): everything goes. A crash (an uncaught error): the kill switch and the rules
  // stay, as after SIGKILL, so nothing leaves in the clear until the next start cleans them up.
  const onExit = (code: number): void => {
    if (closed || code === 0) {
      removeRoutes();
      removeKillSwitch();
    } else {
      process.stderr.write(
        `pigeon: stopped by an error; the TUN kill switch stays until \`pigeon client --tun\` runs again (docs/tun.md)\n`,
      );
    }
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    // Routes first: from here on traffic takes the normal routes, where the kill switch still holds it.
    removeRoutes();
    hostRoutes?.close();
    clearInterval(sweeper);
    udpFlows?.close();
    for (const s of sockets) s.destroy();
    await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    await device?.close();
    removeKillSwitch();
    stamp?.restore();
    process.off('exit', onExit);
  };

  try {
    process.on('exit', onExit);
    if (killSwitch) {
      installKillSwitch({
        device: name,
        mode: routeMode,
        bypassUid: BYPASS_UID,
        lan: lanRanges(),
        ranges: { v4: ranges.v4, v6: ranges.v6 },
      });
    }
    stamp = stampOwnSockets(BYPASS_UID);
    if (!stamp.keptCapabilities) {
      log.warn(
        'could not keep file capabilities for the main thread; files Pigeon reads from now on need to be world-readable',
      );
    }

    // Packets that arrive before everything is ready are dropped (nothing is routed here yet).
    let onPacket: (pkt: Buffer) => void = () => undefined;
    const dev = openTun({
      name,
      mtu,
      onPacket: (pkt) => onPacket(pkt),
      onError: (e) => log.error({ err: e.message }, 'TUN device failed'),
    });
    device = dev;
    const conf = configureDevice(dev.name, mtu, V4, V6);
    const tcpNat = new TcpNat({
      v4: { local: ipToBytes(V4.address), peer: ipToBytes(V4.peer) },
      ...(conf.v6 ? { v6: { local: ipToBytes(V6.address), peer: ipToBytes(V6.peer) } } : {}),
    });
    if (!conf.v6)
      log.warn(
        `${dev.name} has no IPv6 address (IPv6 disabled?): IPv6 is not carried, and the kill switch drops it`,
      );

    // --- TCP: the listener behind the translation ------------------------------------------------
    const onConnection = (socket: Socket, version: 4 | 6): void => {
      const flow = tcpNat.accept(socket.remotePort ?? 0, version);
      if (!flow || closed) return void socket.destroy();
      const port = flow.port;
      sockets.add(socket);
      socket.once('close', () => {
        sockets.delete(socket);
        tcpNat.release(port);
      });
      socket.on('error', () => socket.destroy());
      socket.setNoDelay(true);
      if (flow.dstPort === DNS_PORT) return serveDnsOverTcp(socket, bytesToIp(flow.dst));
      socket.pause();
      const ctx: DialContext = { inbound: 'tun' };
      o.router.dialTcp(makeAddress(bytesToIp(flow.dst), flow.dstPort), ctx).then(
        (remote) => {
          if (socket.destroyed) return void remote.destroy();
          socket.resume();
          void relay(socket, remote, { idleTimeoutMs: o.idleTimeoutMs, onData: ctx.onData });
        },
        () => {
          if (!socket.destroyed) socket.resetAndDestroy();
        },
      );
    };
    for (const [version, fam] of [
      [4, V4],
      [6, V6],
    ] as const) {
      if (version === 6 && !conf.v6) continue;
      const server = createServer({ allowHalfOpen: true }, (s) => onConnection(s, version));
      server.on('error', (e) => log.error({ err: e.message }, 'TUN listener error'));
      servers.push(server);
      tcpNat.setListenerPort(version, await listen(server, fam.address));
    }

    // --- DNS ----------------------------------------------------------------------------------------
    const bypassNames = new Set((o.serverNames ?? []).map((n) => n.toLowerCase().replace(/\.$/, '')));
    if (routeMode === 'ranges') hostRoutes = new HostRoutes({ device: dev.name, v6: conf.v6, killSwitch });
    // Where a name's DNS goes: as the resolver decides it (src/client/index.ts), except that the
    // servers' own names are always direct (resolving them through the tunnel they lead to would hang).
    const routeOf = (name: string): 'proxy' | 'direct' | 'reject' => {
      if (bypassNames.has(name)) return 'direct';
      let kind: Target['kind'];
      try {
        kind = o.router.decide(makeAddress(name, 443), 'udp', 'dns').target.kind;
      } catch {
        return 'direct';
      }
      return kind === 'group' ? 'proxy' : kind;
    };
    /** The answer to a query an app sent to `server`:53: direct names from that server, the rest from the resolver. */
    const answer = async (query: Buffer, server: string, viaTcp: boolean): Promise<Buffer | undefined> => {
      const qname = questionName(query);
      const route = qname === undefined ? 'proxy' : routeOf(qname);
      if (route === 'direct') {
        return viaTcp ? forwardTcp(query, server, DNS_PORT) : forwardUdp(query, server, DNS_PORT);
      }
      const reply = await o.resolver.resolve(query);
      // "preset" routes: addresses given for a tunnelled name are routed into the TUN before the app
      // sees them, so apps that dial by name (not by a listed range) are tunnelled too.
      if (reply && hostRoutes && route === 'proxy') await hostRoutes.add(answeredAddresses(reply));
      return reply;
    };
    const serveDnsOverTcp = (socket: Socket, server: string): void => {
      let buf: Buffer = Buffer.alloc(0);
      let busy = false;
      let ended = false;
      socket.setTimeout(10_000, () => socket.destroy());
      const next = (): void => {
        if (busy || socket.destroyed) return;
        if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) {
          if (ended) socket.end();
          return;
        }
        const len = buf.readUInt16BE(0);
        if (len < 12) return void socket.destroy();
        const query = Buffer.from(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        busy = true;
        answer(query, server, true)
          .then((reply) => {
            if (!reply || reply.length > 0xffff) return void socket.destroy();
            const frame = Buffer.allocUnsafe(2 + reply.length);
            frame.writeUInt16BE(reply.length, 0);
            reply.copy(frame, 2);
            if (!socket.destroyed) socket.write(frame);
          })
          .catch(() => socket.destroy())
          .finally(() => {
            busy = false;
            next();
          });
      };
      socket.on('data', (c: Buffer) => {
        buf = buf.length ? Buffer.concat([buf, c]) : c;
        if (buf.length > 70_000) return void socket.destroy();
        next();
      });
      socket.once('end', () => {
        ended = true;
        next();
      });
    };
    let dnsInFlight = 0;
    const dnsOverUdp = (b: Buffer, p: IpPacket): void => {
      if (dnsInFlight >= MAX_DNS_IN_FLIGHT || p.payloadEnd - p.payload < 12) return;
      const off = addressOffsets(p.version);
      const app = Buffer.from(b.subarray(off.src, off.src + off.size));
      const server = Buffer.from(b.subarray(off.dst, off.dst + off.size));
      const appPort = p.srcPort;
      const query = b.subarray(p.payload, p.payloadEnd);
      dnsInFlight++;
      answer(query, bytesToIp(server), false)
        .then((reply) => {
          const out = reply && fitUdp(query, reply);
          if (out && !closed) dev.write(buildUdpPacket(server, DNS_PORT, app, appPort, out));
        })
        .catch(() => undefined)
        .finally(() => dnsInFlight--);
    };

    // --- UDP ----------------------------------------------------------------------------------------
    const flows = new IdleTable<UdpTunnel>(
      { idleTimeoutMs: o.udpTimeoutMs, maxEntries: MAX_UDP_FLOWS },
      (t) => t.close(),
    );
    udpFlows = flows;
    const replyTo = (app: Buffer, appPort: number, d: Datagram): void => {
      if (closed || d.address.kind === 'domain') return;
      let from = d.address.host;
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(from);
      if (mapped && app.length === 4) from = mapped[1]!;
      const fromBytes = ipToBytes(from);
      if (fromBytes.length !== app.length) return; // an IPv4 reply to an IPv6 socket, or the reverse
      try {
        dev.write(buildUdpPacket(fromBytes, d.address.port, app, appPort, d.payload));
      } catch {
        // too big for one IP packet: dropped, as a link would
      }
    };
    const onUdp = (b: Buffer, p: IpPacket): void => {
      if (p.dstPort === DNS_PORT) return dnsOverUdp(b, p);
      const off = addressOffsets(p.version);
      const key = b.toString('latin1', off.src, off.src + off.size) + String(p.srcPort);
      let t = flows.touch(key);
      if (!t) {
        const app = Buffer.from(b.subarray(off.src, off.src + off.size));
        const appPort = p.srcPort;
        t = o.router.openUdp(
          (d) => {
            flows.touch(key);
            replyTo(app, appPort, d);
          },
          { inbound: 'tun' },
        );
        flows.set(key, t);
      }
      const dst = bytesToIp(b.subarray(off.dst, off.dst + off.size));
      t.send({ address: makeAddress(dst, p.dstPort), payload: b.subarray(p.payload, p.payloadEnd) });
    };

    // --- packets ------------------------------------------------------------------------------------
    onPacket = (pkt: Buffer): void => {
      if (closed) return;
      let p: IpPacket;
      try {
        p = parseIpPacket(pkt);
      } catch {
        return; // malformed, a fragment: dropped
      }
      if (p.protocol === IPPROTO_TCP) {
        const verdict = tcpNat.translate(pkt, p);
        if (verdict === 'write') dev.write(pkt.subarray(0, p.length));
        else if (verdict === 'reset') {
          const rst = buildTcpReset(pkt, p);
          if (rst) dev.write(rst);
        }
      } else if (p.protocol === IPPROTO_UDP) {
        onUdp(pkt, p);
      }
      // ICMP and the rest: dropped (a Shadowsocks tunnel carries only TCP and UDP).
    };
    sweeper = setInterval(() => tcpNat.sweep(), SWEEP_MS);
    sweeper.unref();

    installRoutes({
      device: dev.name,
      mode: routeMode,
      ranges: { v4: ranges.v4, v6: ranges.v6 },
      bypassUid: BYPASS_UID,
      v6: conf.v6,
    });
    log.info(
      `TUN ${dev.name} up: ${routeMode === 'all' ? 'all traffic' : `${ranges.v4.length + ranges.v6.length} tunnelled ranges and DNS`} through it${killSwitch ? ', kill switch on' : ''}`,
    );
    return { name: dev.name, routes: mode, v6: conf.v6, killSwitch, cleaned, close };
  } catch (e) {
    await close().catch(() => undefined);
    throw e;
  }
}
