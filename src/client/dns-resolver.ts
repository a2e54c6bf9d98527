// The client's leak-free DNS resolver: raw DNS messages in, raw DNS messages out.
//
//  - Names the router sends through the tunnel ('proxy') are resolved by DNS over HTTPS (RFC 8484,
//    POST) on a stream opened through the tunnel, so no plaintext packet ever carries them.
//  - 'direct' names go to plain DNS servers (the system's by default) over UDP, with retries, the next
//    server on timeout and a TCP retry when the answer is truncated.
//  - 'reject' names are answered locally, without asking anyone.
//
// Answers are cached per (route, name, type, class, DO, CD) with TTLs counting down; negative answers
// are cached by their SOA (RFC 2308), capped. Identical concurrent questions share one upstream query.
// Proxied A/AAAA answers feed a reverse map IP → name so that later connections to those IPs can be
// routed by name. Privacy: query names and client addresses are logged at debug level only.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { getServers } from 'node:dns';
import { randomInt } from 'node:crypto';
import { connect as tcpConnect, isIP, isIPv4 } from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, OptAnswer, Packet, Question } from 'dns-packet';
import { HttpConnectionPool, httpRequestVia, type StreamDial } from '../net/http-client.js';
import {
  bytesToIpv6,
  formatAddress,
  ipv6ToBytes,
  makeAddress,
  parseHostPort,
  type Address,
} from '../wire/socks-address.js';
import type { Log } from '../log.js';

export type DnsRoute = 'proxy' | 'direct' | 'reject';

export interface DnsResolverOptions {
  /** Routing decision for a query name (lower-case, no trailing dot). */
  route(name: string): DnsRoute;
  /** DNS over HTTPS for proxied names; `dial` opens a stream through the tunnel. Default url https://1.1.1.1/dns-query */
  doh: { url: string; dial: StreamDial; ca?: string | Buffer; timeoutMs?: number };
  /** Plain DNS servers for direct names; default: the system's (node:dns getServers(), i.e. /etc/resolv.conf). */
  directServers?: Address[];
  /** Whole budget for one direct query, all retries included (default 3000 ms). */
  directTimeoutMs?: number;
  maxCacheEntries?: number; // default 4096
  /** Reverse map IP → name (default 16384 entries). */
  maxReverseEntries?: number;
  /** Upstream queries in flight at once; beyond this, SERVFAIL at once (default 256). */
  maxInFlight?: number;
  now?: () => number; // injectable clock for cache tests
  log: Log;
}

export const DEFAULT_DOH_URL = 'https://1.1.1.1/dns-query';
const DEFAULT_DOH_TIMEOUT_MS = 5000;
const DEFAULT_DIRECT_TIMEOUT_MS = 3000;
const MAX_POSITIVE_TTL_S = 86_400;
const MAX_NEGATIVE_TTL_S = 300;
/** TTL of the locally made SOA for rejected names: how long clients may remember the NXDOMAIN. */
const REJECT_TTL_S = 60;
/** EDNS buffer size we advertise, upstream and to clients (DNS Flag Day 2020). */
const EDNS_SIZE = 1232;
const PADDING_BLOCK = 128; // RFC 8467: pad DoH queries to a multiple of 128 bytes
const WARN_INTERVAL_MS = 10_000;

// Header bits, as dns-packet exposes them in `flags` (QR is separate: `type`).
const FLAG_AA = 0x0400;
const FLAG_TC = 0x0200;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const FLAG_AD = 0x0020;
const FLAG_CD = 0x0010;
const EDNS_DO = 0x8000;
const OPCODE_MASK = 0x7800;
const RCODE_MASK = 0x000f;

export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

/** A parsed, validated client query. */
interface ClientQuery {
  id: number;
  flags: number;
  /** The question as the client sent it (case preserved, so that 0x20-randomizing clients match). */
  question: Question;
  /** Lower-case, no trailing dot; '' for the root. */
  name: string;
  edns: boolean;
  dnssecOk: boolean;
  checkingDisabled: boolean;
}

/** What an upstream said, minus its ID, question and OPT record. */
interface UpstreamAnswer {
  /** Header flags without QR: opcode, AA, TC, RD, RA, AD, CD, rcode. */
  flags: number;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
}

interface CacheEntry {
  answer: UpstreamAnswer;
  storedAt: number;
  expiresAt: number;
}

const RCODE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(RCODE).map(([name, code]) => [code, name]),
);

class UpstreamError extends Error {
  override name = 'UpstreamError';
}

/** The upstream answered, with an error we do not pass on or cache (SERVFAIL, REFUSED, ...). */
class RcodeError extends UpstreamError {
  override name = 'RcodeError';
}

function isOpt(rr: Answer): rr is OptAnswer {
  return rr.type === 'OPT';
}

function ttlOf(rr: Answer): number {
  return isOpt(rr) ? 0 : (rr.ttl ?? 0);
}

function normalizeIp(ip: string): string | undefined {
  if (isIPv4(ip)) return ip;
  if (isIP(ip) !== 6) return undefined;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1];
  return bytesToIpv6(ipv6ToBytes(ip));
}

/** The system's resolvers as Addresses (node:dns reads /etc/resolv.conf when the process starts). */
export function systemDnsServers(): Address[] {
  const out: Address[] = [];
  for (const s of getServers()) {
    try {
      out.push(isIP(s) ? makeAddress(s, 53) : parseHostPort(s));
    } catch {
      // an entry node:dns could not have used either
    }
  }
  return out;
}

export class DnsResolver {
  private readonly now: () => number;
  private readonly log: Log;
  private readonly maxCache: number;
  private readonly maxReverse: number;
  private readonly maxInFlight: number;
  private readonly directTimeoutMs: number;
  private readonly cache = new Map<string, CacheEntry>();
  private readonly reverse = new Map<string, { name: string; expiresAt: number }>();
  private readonly inFlight = new Map<string, Promise<UpstreamAnswer>>();
  /** Cancels every pending upstream exchange (for close()). */
  private readonly aborts = new Set<() => void>();
  /** Kept-alive DoH connections through the tunnel. */
  private readonly dohPool: HttpConnectionPool;
  private readonly lastWarn = new Map<string, { at: number; suppressed: number }>();
  private servers: Address[] | undefined;
  private closed = false;

  constructor(private readonly opts: DnsResolverOptions) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log;
    this.maxCache = Math.max(1, opts.maxCacheEntries ?? 4096);
    this.maxReverse = Math.max(1, opts.maxReverseEntries ?? 16_384);
    this.maxInFlight = Math.max(1, opts.maxInFlight ?? 256);
    this.directTimeoutMs = Math.max(100, opts.directTimeoutMs ?? DEFAULT_DIRECT_TIMEOUT_MS);
    this.servers = opts.directServers;
    this.dohPool = new HttpConnectionPool(opts.doh.dial, opts.doh.ca);
  }

  /**
   * Raw DNS query in, raw response out (same ID, question echoed). Never throws: failures become
   * SERVFAIL, malformed queries FORMERR; `undefined` (send nothing) when even the header is
   * unreadable or the message is itself a response (answering those invites reflection loops).
   */
  async resolve(query: Buffer): Promise<Buffer | undefined> {
    try {
      return await this.resolveInner(query);
    } catch (e) {
      // Only reachable through a bug; still an answer, never a crash.
      this.warn('internal', `DNS resolver error: ${(e as Error).message}`);
      return query.length >= 12
        ? this.errorReply(query.readUInt16BE(0), 0, undefined, RCODE.SERVFAIL)
        : undefined;
    }
  }

  /** The name a proxied A/AAAA answer gave this IP (until its TTL ends). */
  domainOf(ip: string): string | undefined {
    const key = normalizeIp(ip);
    if (key === undefined) return undefined;
    const e = this.reverse.get(key);
    if (!e) return undefined;
    if (e.expiresAt <= this.now()) {
      this.reverse.delete(key);
      return undefined;
    }
    return e.name;
  }

  /** Resolves a name to its IPv4 and IPv6 addresses with the same routing as resolve(). */
  async lookup(name: string): Promise<string[]> {
    const ip = normalizeIp(name.replace(/^\[(.*)\]$/, '$1'));
    if (ip !== undefined) return [ip];
    const queries = (['A', 'AAAA'] as const).map((type) =>
      dnsPacket.encode({
        type: 'query',
        id: randomInt(0, 0x10000),
        flags: FLAG_RD,
        questions: [{ name: name.replace(/\.$/, '') || '.', type, class: 'IN' }],
      }),
    );
    const replies = await Promise.all(queries.map((q) => this.resolve(q)));
    const out: string[] = [];
    const rcodes = new Set<number>();
    for (const r of replies) {
      if (!r) continue;
      let p: DecodedPacket;
      try {
        p = dnsPacket.decode(r);
      } catch {
        continue;
      }
      rcodes.add((p.flags ?? 0) & RCODE_MASK);
      for (const a of p.answers ?? []) {
        if ((a.type === 'A' || a.type === 'AAAA') && !out.includes(a.data)) out.push(a.data);
      }
    }
    if (out.length === 0) {
      const nx = rcodes.has(RCODE.NXDOMAIN);
      const why = nx ? 'no such name' : rcodes.has(RCODE.NOERROR) ? 'no address' : 'failed';
      const err = new Error(`DNS lookup: ${why}`) as NodeJS.ErrnoException;
      err.code = nx || rcodes.has(RCODE.NOERROR) ? 'ENOTFOUND' : 'ESERVFAIL';
      throw err;
    }
    return out;
  }

  close(): void {
    this.closed = true;
    this.dohPool.close();
    for (const abort of [...this.aborts]) abort();
    this.aborts.clear();
    this.cache.clear();
    this.reverse.clear();
    this.inFlight.clear();
  }

  // --- query handling -------------------------------------------------------------------------------

  private async resolveInner(raw: Buffer): Promise<Buffer | undefined> {
    if (raw.length < 12) return undefined;
    const id = raw.readUInt16BE(0);
    const rawFlags = raw.readUInt16BE(2);
    if (rawFlags & 0x8000) return undefined; // a response, not a query
    let packet: DecodedPacket;
    try {
      packet = dnsPacket.decode(raw);
    } catch {
      return this.errorReply(id, rawFlags, undefined, RCODE.FORMERR);
    }
    const flags = packet.flags ?? 0;
    const questions = packet.questions ?? [];
    const question = questions.length === 1 ? questions[0] : undefined;
    if ((flags & OPCODE_MASK) !== 0) return this.errorReply(id, flags, question, RCODE.NOTIMP);
    if (!question || (packet.answers?.length ?? 0) > 0) {
      return this.errorReply(id, flags, question, RCODE.FORMERR);
    }
    // Printable ASCII only: anything else cannot round-trip through dns-packet's text names.
    if (!/^[\x21-\x7e]+$/.test(question.name)) {
      return this.errorReply(id, flags, question, RCODE.FORMERR);
    }
    if (question.type === 'AXFR' || question.type === 'IXFR') {
      return this.errorReply(id, flags, question, RCODE.NOTIMP); // zone transfers are not a stub's job
    }
    const opt = (packet.additionals ?? []).find(isOpt);
    const q: ClientQuery = {
      id,
      flags,
      question,
      name: question.name === '.' ? '' : question.name.toLowerCase().replace(/\.$/, ''),
      edns: opt !== undefined,
      dnssecOk: opt !== undefined && (opt.flags & EDNS_DO) !== 0,
      checkingDisabled: (flags & FLAG_CD) !== 0,
    };
    if (this.closed) return this.errorReply(id, flags, question, RCODE.SERVFAIL);

    let route: DnsRoute;
    try {
      route = this.opts.route(q.name);
    } catch (e) {
      // Fail closed: without a decision the name must not go out in plaintext.
      this.warn('route', `DNS routing failed: ${(e as Error).message}`);
      return this.errorReply(id, flags, question, RCODE.SERVFAIL);
    }
    this.log.debug({ name: q.name, type: question.type, route }, 'DNS query');
    if (route === 'reject') return this.rejectReply(q);

    const key = `${route}|${q.name}|${question.type}|${question.class ?? 'IN'}|${q.dnssecOk ? 1 : 0}|${q.checkingDisabled ? 1 : 0}`;
    const hit = this.cacheGet(key);
    if (hit) {
      if (route === 'proxy') this.remember(q.name, hit.answer, hit.storedAt);
      return this.reply(q, hit.answer, hit.storedAt);
    }

    let pending = this.inFlight.get(key);
    if (!pending) {
      if (this.inFlight.size >= this.maxInFlight) {
        this.warn('busy', `DNS: ${this.maxInFlight} upstream queries already in flight; answering SERVFAIL`);
        return this.errorReply(id, flags, question, RCODE.SERVFAIL);
      }
      pending = route === 'proxy' ? this.viaDoh(q) : this.viaDirect(q);
      const shared = pending;
      this.inFlight.set(key, shared);
      void shared.then(
        (answer) => {
          if (this.inFlight.get(key) === shared) this.inFlight.delete(key);
          if (!this.closed) this.store(key, route, q.name, answer);
        },
        () => {
          if (this.inFlight.get(key) === shared) this.inFlight.delete(key);
        },
      );
    }
    let answer: UpstreamAnswer;
    try {
      answer = await pending;
    } catch (e) {
      const via = route === 'proxy' ? 'DNS over HTTPS' : 'direct DNS';
      this.warn(route, `${via} failed: ${(e as Error).message}`);
      return this.errorReply(id, flags, question, RCODE.SERVFAIL);
    }
    return this.reply(q, answer, this.now());
  }

  /**
   * Rejected names get NXDOMAIN with a locally made SOA (RFC 2308). NXDOMAIN rather than an empty
   * NOERROR: it covers every record type at once, so an app gives up at once instead of trying
   * AAAA after A or HTTPS after both; the SOA lets clients cache the refusal for REJECT_TTL_S
   * instead of asking again for every connection.
   */
  private rejectReply(q: ClientQuery): Buffer {
    const soa: Answer = {
      type: 'SOA',
      name: q.name || '.',
      class: 'IN',
      ttl: REJECT_TTL_S,
      data: {
        mname: 'pigeon.invalid',
        rname: 'hostmaster.pigeon.invalid',
        serial: 1,
        refresh: 3600,
        retry: 600,
        expire: 86_400,
        minimum: REJECT_TTL_S,
      },
    };
    return this.reply(
      q,
      { flags: RCODE.NXDOMAIN, answers: [], authorities: [soa], additionals: [] },
      this.now(),
    );
  }

  /** Encodes the answer for this client: its ID and question, TTLs aged since `storedAt`. */
  private reply(q: ClientQuery, a: UpstreamAnswer, storedAt: number): Buffer {
    const elapsed = Math.max(0, Math.floor((this.now() - storedAt) / 1000));
    const age = (rrs: Answer[]): Answer[] =>
      rrs.map((rr) => (isOpt(rr) ? rr : ({ ...rr, ttl: Math.max(0, (rr.ttl ?? 0) - elapsed) } as Answer)));
    // AD only for clients that asked about DNSSEC (RFC 6840 §5.8); RD and CD echo the query.
    const ad = q.dnssecOk || q.flags & FLAG_AD ? a.flags & FLAG_AD : 0;
    const flags = (a.flags & RCODE_MASK) | ad | FLAG_RA | (q.flags & (FLAG_RD | FLAG_CD));
    const additionals = age(a.additionals);
    if (q.edns) additionals.push(this.opt(q.dnssecOk, []));
    const packet: Packet = {
      type: 'response',
      id: q.id,
      flags,
      questions: [q.question],
      answers: age(a.answers),
      authorities: age(a.authorities),
      additionals,
    };
    try {
      return dnsPacket.encode(packet);
    } catch (e) {
      this.warn('encode', `DNS: cannot encode an answer: ${(e as Error).message}`);
      return this.errorReply(q.id, q.flags, q.question, RCODE.SERVFAIL);
    }
  }

  private errorReply(id: number, flags: number, question: Question | undefined, rcode: number): Buffer {
    const packet: Packet = {
      type: 'response',
      id,
      flags: (flags & (OPCODE_MASK | FLAG_RD | FLAG_CD)) | FLAG_RA | rcode,
      questions: question ? [question] : [],
    };
    try {
      return dnsPacket.encode(packet);
    } catch {
      return dnsPacket.encode({ ...packet, questions: [] });
    }
  }

  private opt(dnssecOk: boolean, options: OptAnswer['options']): OptAnswer {
    return {
      type: 'OPT',
      name: '.',
      udpPayloadSize: EDNS_SIZE,
      extendedRcode: 0,
      ednsVersion: 0,
      flags: dnssecOk ? EDNS_DO : 0,
      flag_do: dnssecOk,
      options,
    };
  }

  /**
   * The query we send upstream: built from the question alone (never the client's EDNS options, so
   * no Client Subnet or cookie leaks, and the answer can be shared and cached for every client).
   */
  private upstreamQuery(q: ClientQuery, id: number, pad: boolean): Buffer {
    const packet: Packet = {
      type: 'query',
      id,
      flags: FLAG_RD | (q.checkingDisabled ? FLAG_CD : 0),
      questions: [{ name: q.name || '.', type: q.question.type, class: q.question.class ?? 'IN' }],
      additionals: [this.opt(q.dnssecOk, [])],
    };
    if (pad) {
      const unpadded = dnsPacket.encodingLength(packet) + 4; // + the option's code and length
      const length = (PADDING_BLOCK - (unpadded % PADDING_BLOCK)) % PADDING_BLOCK;
      packet.additionals = [this.opt(q.dnssecOk, [{ code: 12, length }])];
    }
    return dnsPacket.encode(packet);
  }

  /** Parses an upstream's reply; throws unless it answers exactly our question. */
  private parseUpstream(raw: Buffer, id: number, q: ClientQuery): UpstreamAnswer {
    let p: DecodedPacket;
    try {
      p = dnsPacket.decode(raw);
    } catch (e) {
      throw new UpstreamError(`malformed answer (${(e as Error).message})`);
    }
    if (!this.answers(p, id, q)) throw new UpstreamError('answer does not match the question');
    const flags = p.flags ?? 0;
    const rcode = flags & RCODE_MASK;
    if (rcode !== RCODE.NOERROR && rcode !== RCODE.NXDOMAIN) {
      throw new RcodeError(`upstream answered ${RCODE_NAMES[rcode] ?? `rcode ${rcode}`}`);
    }
    return {
      flags: flags & ~(FLAG_AA | FLAG_TC),
      answers: (p.answers ?? []).filter((rr) => !isOpt(rr)),
      authorities: (p.authorities ?? []).filter((rr) => !isOpt(rr)),
      additionals: (p.additionals ?? []).filter((rr) => !isOpt(rr)),
    };
  }

  private answers(p: DecodedPacket, id: number, q: ClientQuery): boolean {
    const pq = p.questions?.[0];
    return (
      p.type === 'response' &&
      p.id === id &&
      p.questions?.length === 1 &&
      pq !== undefined &&
      pq.name.toLowerCase().replace(/\.$/, '') === (q.name || '.') &&
      pq.type === q.question.type &&
      (pq.class ?? 'IN') === (q.question.class ?? 'IN')
    );
  }

  // --- upstreams ------------------------------------------------------------------------------------

  private async viaDoh(q: ClientQuery): Promise<UpstreamAnswer> {
    const { url, dial, ca, timeoutMs } = this.opts.doh;
    // RFC 8484 §4.1: ID 0 in DoH queries (HTTP pairs request and response; better for caches).
    const body = this.upstreamQuery(q, 0, true);
    let aborted = false;
    const abort = (): void => {
      aborted = true;
    };
    this.aborts.add(abort);
    try {
      const ask = (pooled: boolean) =>
        httpRequestVia(dial, url || DEFAULT_DOH_URL, {
          method: 'POST',
          headers: { 'content-type': 'application/dns-message', accept: 'application/dns-message' },
          body,
          ca,
          timeoutMs: timeoutMs ?? DEFAULT_DOH_TIMEOUT_MS,
          maxBytes: 65_535,
          ...(pooled ? { pool: this.dohPool } : {}),
        });
      // A kept-alive connection (one tunnel connection and TLS handshake for many queries) may have
      // been closed by the server just as we reused it: then once more on a connection of its own.
      const res = await ask(true).catch((e: unknown) => {
        if (aborted || (e instanceof Error && /timed out/.test(e.message))) throw e;
        return ask(false);
      });
      if (aborted) throw new UpstreamError('resolver closed');
      if (res.status !== 200) throw new UpstreamError(`DoH server answered HTTP ${res.status}`);
      const type = String(res.headers['content-type'] ?? '').toLowerCase();
      if (!type.startsWith('application/dns-message')) {
        throw new UpstreamError(`DoH server answered content-type "${type.slice(0, 60)}"`);
      }
      return this.parseUpstream(res.body, 0, q);
    } finally {
      this.aborts.delete(abort);
    }
  }

  private directServerList(): Address[] {
    this.servers ??= systemDnsServers();
    return this.servers;
  }

  private async viaDirect(q: ClientQuery): Promise<UpstreamAnswer> {
    const servers = this.directServerList();
    if (servers.length === 0) throw new UpstreamError('no DNS servers configured for direct names');
    const deadline = Date.now() + this.directTimeoutMs;
    // Each server gets two tries, round-robin, within the whole budget; a timeout moves on to the next.
    const attempts = Math.max(2, servers.length * 2);
    const perAttempt = Math.min(2000, Math.max(300, Math.floor(this.directTimeoutMs / attempts)));
    let lastError = 'no answer';
    for (let i = 0; i < attempts; i++) {
      if (this.closed) throw new UpstreamError('resolver closed');
      const remaining = deadline - Date.now();
      if (remaining <= 0) break;
      const server = servers[i % servers.length]!;
      const id = randomInt(0, 0x10000);
      const query = this.upstreamQuery(q, id, false);
      try {
        const raw = await this.udpExchange(server, query, id, q, Math.min(perAttempt, remaining));
        if (raw.readUInt16BE(2) & FLAG_TC) {
          const left = deadline - Date.now();
          if (left <= 0) throw new UpstreamError('truncated answer and no time left for TCP');
          return this.parseUpstream(await this.tcpExchange(server, query, id, left), id, q);
        }
        return this.parseUpstream(raw, id, q);
      } catch (e) {
        lastError = `${formatAddress(server)}: ${(e as Error).message}`;
        // SERVFAIL or REFUSED: the next server may do better, but asking the only one again will not.
        if (e instanceof RcodeError && servers.length === 1) throw e;
      }
    }
    throw new UpstreamError(
      `no usable answer within ${this.directTimeoutMs} ms (last: ${lastError.slice(0, 200)})`,
    );
  }

  /** One UDP query on a fresh socket (random source port); resolves with the matching reply. */
  private udpExchange(
    server: Address,
    query: Buffer,
    id: number,
    q: ClientQuery,
    timeoutMs: number,
  ): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      let sock: UdpSocket;
      try {
        sock = createSocket(server.kind === 'ipv6' ? 'udp6' : 'udp4');
      } catch (e) {
        reject(e as Error);
        return;
      }
      let done = false;
      const finish = (err: Error | undefined, msg?: Buffer): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.aborts.delete(abort);
        try {
          sock.close();
        } catch {
          // already closed
        }
        if (err) reject(err);
        else resolve(msg as Buffer);
      };
      const abort = (): void => finish(new UpstreamError('resolver closed'));
      this.aborts.add(abort);
      const timer = setTimeout(() => finish(new UpstreamError(`timed out after ${timeoutMs} ms`)), timeoutMs);
      sock.on('error', (e) => finish(new UpstreamError((e as NodeJS.ErrnoException).code ?? e.message)));
      sock.on('message', (msg) => {
        // A connected socket only hears from the server; still check ID and question (spoofing).
        if (msg.length < 12 || msg.readUInt16BE(0) !== id) return;
        try {
          if (!this.answers(dnsPacket.decode(msg), id, q)) return;
        } catch {
          if (!(msg.readUInt16BE(2) & FLAG_TC)) return; // truncated replies may not decode
        }
        finish(undefined, msg);
      });
      // Connected, so an ICMP "port unreachable" surfaces as ECONNREFUSED and we move on at once.
      sock.connect(server.port, server.host, () => {
        sock.send(query, (e) => {
          if (e) finish(new UpstreamError((e as NodeJS.ErrnoException).code ?? e.message));
        });
      });
    });
  }

  /** One query over TCP (RFC 1035 §4.2.2 two-byte length framing). */
  private tcpExchange(server: Address, query: Buffer, id: number, timeoutMs: number): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const sock = tcpConnect({ host: server.host, port: server.port });
      let buf = Buffer.alloc(0);
      let done = false;
      const finish = (err: Error | undefined, msg?: Buffer): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.aborts.delete(abort);
        sock.destroy();
        if (err) reject(err);
        else resolve(msg as Buffer);
      };
      const abort = (): void => finish(new UpstreamError('resolver closed'));
      this.aborts.add(abort);
      const timer = setTimeout(
        () => finish(new UpstreamError(`TCP timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      sock.on('error', (e) =>
        finish(new UpstreamError(`TCP: ${(e as NodeJS.ErrnoException).code ?? e.message}`)),
      );
      sock.on('close', () => finish(new UpstreamError('TCP connection closed before the answer')));
      sock.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        while (buf.length >= 2) {
          const len = buf.readUInt16BE(0);
          if (buf.length < 2 + len) return;
          const msg = buf.subarray(2, 2 + len);
          buf = buf.subarray(2 + len);
          if (msg.length >= 12 && msg.readUInt16BE(0) === id) return finish(undefined, Buffer.from(msg));
        }
      });
      const frame = Buffer.allocUnsafe(2 + query.length);
      frame.writeUInt16BE(query.length, 0);
      query.copy(frame, 2);
      sock.write(frame);
    });
  }

  // --- cache and reverse map ------------------------------------------------------------------------

  private cacheGet(key: string): CacheEntry | undefined {
    const e = this.cache.get(key);
    if (!e) return undefined;
    this.cache.delete(key);
    if (e.expiresAt <= this.now()) return undefined;
    this.cache.set(key, e); // most recently used goes last
    return e;
  }

  private store(key: string, route: DnsRoute, name: string, answer: UpstreamAnswer): void {
    const now = this.now();
    const ttl = cacheTtl(answer);
    if (ttl > 0) {
      this.cache.delete(key);
      this.cache.set(key, { answer, storedAt: now, expiresAt: now + ttl * 1000 });
      while (this.cache.size > this.maxCache) {
        const oldest = this.cache.keys().next().value as string;
        this.cache.delete(oldest);
      }
    }
    if (route === 'proxy') this.remember(name, answer, now);
  }

  /** IP → name for proxied A/AAAA answers, until each record's TTL ends. */
  private remember(name: string, answer: UpstreamAnswer, storedAt: number): void {
    for (const rr of answer.answers) {
      if (rr.type !== 'A' && rr.type !== 'AAAA') continue;
      const ip = normalizeIp(rr.data);
      if (ip === undefined) continue;
      const expiresAt = storedAt + Math.min(rr.ttl ?? 0, MAX_POSITIVE_TTL_S) * 1000;
      if (expiresAt <= this.now()) continue;
      this.reverse.delete(ip);
      this.reverse.set(ip, { name, expiresAt });
      while (this.reverse.size > this.maxReverse) {
        this.reverse.delete(this.reverse.keys().next().value as string);
      }
    }
  }

  /** Logs at warn, at most once per kind every WARN_INTERVAL_MS (an unreachable upstream would flood). */
  private warn(kind: string, message: string): void {
    const now = Date.now();
    const last = this.lastWarn.get(kind);
    if (last && now - last.at < WARN_INTERVAL_MS) {
      last.suppressed++;
      return;
    }
    const suppressed = last?.suppressed ?? 0;
    this.lastWarn.set(kind, { at: now, suppressed: 0 });
    this.log.warn(suppressed ? `${message} (and ${suppressed} similar since the last report)` : message);
  }
}

/** Seconds an answer may be cached: min TTL of the answers; for negative answers the SOA's (capped). */
function cacheTtl(a: UpstreamAnswer): number {
  const rcode = a.flags & RCODE_MASK;
  if (rcode === RCODE.NOERROR && a.answers.length > 0) {
    return Math.min(MAX_POSITIVE_TTL_S, ...a.answers.map(ttlOf));
  }
  if (rcode === RCODE.NOERROR || rcode === RCODE.NXDOMAIN) {
    // RFC 2308 §5: negative answers live min(SOA TTL, SOA minimum); without an SOA, not at all.
    const soa = a.authorities.find((rr) => rr.type === 'SOA');
    if (!soa || soa.type !== 'SOA') return 0;
    return Math.min(MAX_NEGATIVE_TTL_S, soa.ttl ?? 0, soa.data.minimum ?? 0);
  }
  return 0;
}
