// The lab's censor, passive half: tcpdump on the censor's link to the client, then the rules of
// ../shared/censor-model.md applied to what it captured. Each rule gives a verdict and its numbers:
//   fully-encrypted (§1)  the first data segment of every client→server connection, judged by
//                         judgeFirstPacket (Wu et al. 2023); also how many would trigger active probing
//                         (160–700 bytes of high entropy, §2)
//   sni (§3)              the SNI of every ClientHello the client sends, against a blocklist
//   dns (§3)              every plaintext DNS query (UDP or TCP port 53) the client sends, against it
//   tls-in-tls (§3)       burst sizes of each tunnel connection: an encapsulated TLS handshake shows as
//                         a ClientHello-sized client burst, then a larger server burst (ServerHello and
//                         certificate), then a small client burst (Finished), in the spirit of Xue et al.
//                         2024 and nDPI's tls.c (which scores 4 bursts against browser models)
import { readFileSync, statSync } from 'node:fs';
import dnsPacket from 'dns-packet';
import { judgeFirstPacket } from '../wire/first-packet.js';
import { parseClientHello, splitTlsRecords, TLS_APPLICATION_DATA } from '../wire/tls-client-hello.js';
import {
  bursts,
  firstClientFlight,
  firstClientSegment,
  readPcap,
  tcpConnections,
  type Burst,
  type Packet,
  type TcpConnection,
} from './pcap.js';
import { startIn, type LabProc } from './proc.js';

export type Verdict = 'PASS' | 'DETECTED';

/** Names the lab's censor blocks (SNI and DNS), each with its subdomains. */
export const BLOCKLIST = [
  'telegram.org',
  't.me',
  'whatsapp.com',
  'whatsapp.net',
  'signal.org',
  'facebook.com',
  'instagram.com',
  'google.com',
  'youtube.com',
  'twitter.com',
  'x.com',
  'line.me',
  'discord.com',
  'viber.com',
];

export function matchesDomain(name: string, domain: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, '');
  const d = domain.toLowerCase().replace(/\.$/, '');
  return n === d || n.endsWith(`.${d}`);
}

export const isBlocked = (name: string, list: readonly string[] = BLOCKLIST): boolean =>
  list.some((d) => matchesDomain(name, d));

export interface FullyEncryptedReport {
  verdict: Verdict;
  /** Tunnel connections with a first data segment. */
  judged: number;
  flagged: number;
  /** How many first segments each exemption held for. */
  exemptions: { ex1: number; ex2: number; ex3: number; ex4: number; ex5: number };
  /** Flagged first segments of 160–700 bytes: the ones that draw active probes (§2). */
  probeTriggers: number;
  firstSegmentLengths: { min: number; max: number; distinct: number };
}

export interface SniReport {
  verdict: Verdict;
  /** ClientHellos on tunnel connections (an outer TLS layer, e.g. Trojan) and their names. */
  tunnelHellos: number;
  tunnelNames: string[];
  tunnelBlocked: string[];
  /** Control: ClientHellos the client sent elsewhere (direct), and the blocked names among them. */
  otherHellos: number;
  otherBlocked: string[];
}

export interface DnsReport {
  verdict: Verdict;
  /** Plaintext DNS queries the client sent, and the names asked. */
  queries: number;
  names: string[];
  blocked: string[];
}

export interface TlsInTlsSample {
  /** Inner bytes of the first four bursts: client, server, client, server. */
  bursts: number[];
  flagged: boolean;
  outerTls: boolean;
}

export interface TlsInTlsReport {
  verdict: Verdict;
  judged: number;
  flagged: number;
  /** Burst sizes of the flagged connections (up to 8), then of some others. */
  samples: TlsInTlsSample[];
}

export interface CensorReport {
  packets: number;
  /** Client→server TCP connections to the tunnel server (SYN seen). */
  tunnelConnections: number;
  fullyEncrypted: FullyEncryptedReport;
  sni: SniReport;
  dns: DnsReport;
  tlsInTls: TlsInTlsReport;
  /** What the client sent first on each tunnel connection (for the prober's replays), up to 8. */
  recordedFlights: Buffer[];
  /**
   * Tunnel connections under an outer TLS layer (up to 8): the ClientHello flight, the client's bytes
   * through its second flight (Finished and the first encrypted data: a Trojan header), and whether
   * the hello resumes a session (pre_shared_key), for replays of either.
   */
  recordedTls: RecordedTlsFlight[];
}

export interface RecordedTlsFlight {
  hello: Buffer;
  withSecond: Buffer;
  psk: boolean;
}

/** TLS 1.3 pre_shared_key extension (a resumed session). */
const EXT_PRE_SHARED_KEY = 41;

export interface AnalyseOptions {
  client: string;
  server: { host: string; port: number };
  blocklist?: readonly string[];
}

const verdict = (detected: boolean): Verdict => (detected ? 'DETECTED' : 'PASS');
const isTunnel = (c: TcpConnection, s: AnalyseOptions['server']): boolean =>
  c.server.host === s.host && c.server.port === s.port;

export function analyseCapture(pcap: Buffer | Packet[], o: AnalyseOptions): CensorReport {
  const packets = Buffer.isBuffer(pcap) ? readPcap(pcap) : pcap;
  const list = o.blocklist ?? BLOCKLIST;
  const conns = tcpConnections(packets).filter((c) => c.client.host === o.client);
  const tunnel = conns.filter((c) => isTunnel(c, o.server));
  const others = conns.filter((c) => !isTunnel(c, o.server));
  return {
    packets: packets.length,
    tunnelConnections: tunnel.length,
    fullyEncrypted: fullyEncrypted(tunnel),
    sni: sni(tunnel, others, list),
    dns: dns(packets, conns, o.client, list),
    tlsInTls: tlsInTls(tunnel),
    recordedFlights: tunnel
      .map((c) => firstClientFlight(c, 4096))
      .filter((f) => f.length > 0)
      .slice(0, 8),
    recordedTls: recordedTls(tunnel),
  };
}

function recordedTls(tunnel: TcpConnection[]): RecordedTlsFlight[] {
  const out: RecordedTlsFlight[] = [];
  for (const c of tunnel) {
    if (out.length >= 8) break;
    const hello = firstClientFlight(c, 4096);
    const parsed = parseClientHello(hello);
    if (!parsed) continue;
    const fromClient = bursts(c, 4).filter((b) => b.fromClient);
    if (fromClient.length < 2) continue;
    const withSecond = Buffer.concat([hello, fromClient[1]!.data]).subarray(0, 8192);
    out.push({ hello, withSecond, psk: parsed.extensions.includes(EXT_PRE_SHARED_KEY) });
  }
  return out;
}

function fullyEncrypted(tunnel: TcpConnection[]): FullyEncryptedReport {
  const firsts = tunnel.map(firstClientSegment).filter((f): f is Buffer => !!f);
  const exemptions = { ex1: 0, ex2: 0, ex3: 0, ex4: 0, ex5: 0 };
  let flagged = 0;
  let probeTriggers = 0;
  for (const f of firsts) {
    const v = judgeFirstPacket(f);
    for (const k of Object.keys(exemptions) as (keyof typeof exemptions)[]) if (v.rules[k]) exemptions[k]++;
    if (!v.exempt) {
      flagged++;
      if (f.length >= 160 && f.length <= 700) probeTriggers++;
    }
  }
  const lengths = firsts.map((f) => f.length);
  return {
    verdict: verdict(flagged > 0),
    judged: firsts.length,
    flagged,
    exemptions,
    probeTriggers,
    firstSegmentLengths: {
      min: lengths.length ? Math.min(...lengths) : 0,
      max: lengths.length ? Math.max(...lengths) : 0,
      distinct: new Set(lengths).size,
    },
  };
}

function sni(tunnel: TcpConnection[], others: TcpConnection[], list: readonly string[]): SniReport {
  const names = (cs: TcpConnection[]) =>
    cs.map((c) => parseClientHello(firstClientFlight(c, 16_384))).filter((h) => h !== undefined);
  const th = names(tunnel);
  const oh = names(others);
  const tunnelNames = th.map((h) => h.sni ?? '(none)');
  const tunnelBlocked = th.flatMap((h) => (h.sni && isBlocked(h.sni, list) ? [h.sni] : []));
  return {
    verdict: verdict(tunnelBlocked.length > 0),
    tunnelHellos: th.length,
    tunnelNames: [...new Set(tunnelNames)],
    tunnelBlocked: [...new Set(tunnelBlocked)],
    otherHellos: oh.length,
    otherBlocked: [...new Set(oh.flatMap((h) => (h.sni && isBlocked(h.sni, list) ? [h.sni] : [])))],
  };
}

function questionNames(msg: Buffer): string[] {
  try {
    const p = dnsPacket.decode(msg);
    if (p.type !== 'query') return [];
    return (p.questions ?? []).map((q) => q.name.toLowerCase());
  } catch {
    return [];
  }
}

function dns(packets: Packet[], conns: TcpConnection[], client: string, list: readonly string[]): DnsReport {
  const names: string[] = [];
  let queries = 0;
  for (const p of packets) {
    if (p.ip?.src !== client || !p.udp || p.udp.dstPort !== 53) continue;
    queries++;
    names.push(...questionNames(p.udp.payload));
  }
  for (const c of conns) {
    if (c.server.port !== 53) continue;
    const flight = firstClientFlight(c, 65_536);
    for (let o = 0, n = 0; o + 2 <= flight.length && n < 100; n++) {
      const len = flight.readUInt16BE(o);
      queries++;
      names.push(...questionNames(flight.subarray(o + 2, o + 2 + len)));
      o += 2 + len;
    }
  }
  const blocked = [...new Set(names.filter((n) => isBlocked(n, list)))];
  return { verdict: verdict(blocked.length > 0), queries, names: [...new Set(names)], blocked };
}

// --- TLS in TLS -------------------------------------------------------------------------------------

/** Inner ClientHello: 512–700 bytes for today's browsers and OpenSSL (padded to 512), plus a tunnel's
 * per-connection overhead (salt, headers, tags, a Trojan header: up to ~120 bytes). */
export const TLS_IN_TLS = {
  clientHello: { min: 500, max: 820 },
  /** ServerHello, ChangeCipherSpec, EncryptedExtensions, Certificate, CertificateVerify, Finished. */
  serverFlight: { min: 600, max: 16_000 },
  /** The client's Finished (≈ 60–80 bytes), maybe with its first request. */
  clientFinished: { min: 40, max: 1_500 },
  /** A ClientHello is one or two segments (nDPI refuses more than 3). */
  maxHelloPackets: 3,
  /** Per-record overhead of an outer TLS 1.3 layer: 5 header + 1 content type + 16 tag. */
  outerRecordOverhead: 22,
} as const;

const within = (n: number, r: { min: number; max: number }): boolean => n >= r.min && n <= r.max;

/**
 * The bursts of what a tunnel carries. Without an outer TLS layer the bursts as they are; with one
 * (the connection starts with a ClientHello), its own handshake removed: handshake and
 * ChangeCipherSpec records; in TLS 1.3 also the client's Finished (its first application_data record)
 * and every server application_data record before the client's first data — the server's encrypted
 * handshake and the NewSessionTickets it sends after the client's Finished. Each remaining record
 * counts its length less the record overhead, in the packet where its header is; a burst's packets are
 * those that carry bytes of remaining records (a packet with only the outer Finished does not count).
 */
export function innerBursts(c: TcpConnection): { bursts: Burst[]; outerTls: boolean } {
  const all = bursts(c, 24);
  const first = all[0];
  if (!first?.fromClient || !parseClientHello(first.data)) return { bursts: all, outerTls: false };
  const tls13 = (() => {
    const s = all.find((b) => !b.fromClient);
    return !!s && splitTlsRecords(s.data).some((r) => r.type === TLS_APPLICATION_DATA);
  })();
  const inner: Burst[] = [];
  // Per direction: bytes of the current record still to come and whether it is inner, a partial header.
  const state = [0, 1].map(() => ({ left: 0, inner: false, partial: Buffer.alloc(0), broken: false }));
  const next = [1, 1];
  let clientAppRecords = 0;
  let clientData = false;
  let segments = 0;
  for (const seg of c.segments) {
    if (seg.payload.length === 0) continue;
    if (++segments > 20_000 || inner.length > 24) break;
    const d = seg.fromClient ? 0 : 1;
    const end = seg.relSeq + seg.payload.length;
    if (end <= next[d]!) continue; // retransmitted
    const fresh = seg.payload.subarray(Math.max(0, next[d]! - seg.relSeq));
    next[d] = end;
    const st = state[d]!;
    if (st.broken) continue;
    const data = st.partial.length ? Buffer.concat([st.partial, fresh]) : fresh;
    st.partial = Buffer.alloc(0);
    let bytes = 0;
    let touched = false;
    let o = Math.min(st.left, data.length);
    if (o > 0 && st.inner) touched = true;
    st.left -= o;
    for (let n = 0; o < data.length && n < 10_000; n++) {
      if (data.length - o < 5) {
        st.partial = Buffer.from(data.subarray(o));
        break;
      }
      const r = splitTlsRecords(data.subarray(o), 1)[0];
      if (!r) {
        st.broken = true; // not TLS records any more: stop reading this direction
        break;
      }
      const outer =
        r.type !== TLS_APPLICATION_DATA ||
        (tls13 && seg.fromClient && clientAppRecords++ === 0) ||
        (tls13 && !seg.fromClient && !clientData);
      if (!outer) {
        bytes += Math.max(0, r.length + 5 - TLS_IN_TLS.outerRecordOverhead);
        touched = true;
        if (seg.fromClient) clientData = true;
      }
      const take = Math.min(5 + r.length, data.length - o);
      st.left = 5 + r.length - take;
      st.inner = !outer;
      o += take;
    }
    if (!touched) continue;
    const last = inner[inner.length - 1];
    if (last && last.fromClient === seg.fromClient) {
      last.bytes += bytes;
      last.packets++;
    } else inner.push({ fromClient: seg.fromClient, bytes, packets: 1, data: Buffer.alloc(0) });
  }
  return { bursts: inner, outerTls: true };
}

/** The heuristic on one tunnel connection. */
export function judgeTlsInTls(c: TcpConnection): TlsInTlsSample {
  const { bursts: b, outerTls } = innerBursts(c);
  const sizes = b.slice(0, 4).map((x) => x.bytes);
  const [c1, s1, c2] = b;
  const flagged =
    !!c1 &&
    !!s1 &&
    !!c2 &&
    c1.fromClient &&
    c1.packets <= TLS_IN_TLS.maxHelloPackets &&
    within(c1.bytes, TLS_IN_TLS.clientHello) &&
    within(s1.bytes, TLS_IN_TLS.serverFlight) &&
    s1.bytes > c1.bytes &&
    within(c2.bytes, TLS_IN_TLS.clientFinished);
  return { bursts: sizes, flagged, outerTls };
}

function tlsInTls(tunnel: TcpConnection[]): TlsInTlsReport {
  const judged = tunnel.map(judgeTlsInTls).filter((s) => s.bursts.length > 0);
  const flagged = judged.filter((s) => s.flagged);
  return {
    verdict: verdict(flagged.length > 0),
    judged: judged.length,
    flagged: flagged.length,
    samples: [...flagged.slice(0, 8), ...judged.filter((s) => !s.flagged).slice(0, 4)],
  };
}

// --- the observer -----------------------------------------------------------------------------------

export interface Observer {
  /** Stops tcpdump once the file has stopped growing; returns the pcap bytes. */
  stop(): Promise<Buffer>;
  proc: LabProc;
}

/** tcpdump on `iface` in namespace `ns`, writing every IPv4 packet to `file`. */
export async function startObserver(ns: string, iface: string, file: string): Promise<Observer> {
  // --immediate-mode: packets reach tcpdump at once, not in blocks that a stop would discard.
  const proc = startIn(ns, 'tcpdump', 'tcpdump', [
    '-i',
    iface,
    '-n',
    '-s',
    '0',
    '-B',
    '16384',
    '--immediate-mode',
    '-U',
    '-Z',
    'root',
    '-w',
    file,
    'ip',
  ]);
  await proc.waitForLine(/listening on/, 15_000);
  return {
    proc,
    async stop() {
      let size = -1;
      for (let i = 0; i < 25; i++) {
        await new Promise((r) => setTimeout(r, 150));
        const now = statSync(file, { throwIfNoEntry: false })?.size ?? 0;
        if (now === size && now >= 24) break;
        size = now;
      }
      await proc.stop('SIGINT', 10_000);
      return readFileSync(file);
    },
  };
}
