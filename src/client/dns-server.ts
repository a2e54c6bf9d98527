// The client's DNS listener: UDP and TCP on one port, for apps and routers to point at. It only
// frames messages; the DnsResolver decides where each name goes.
//  - UDP: malformed datagrams are dropped or answered FORMERR by the resolver, never a crash; an
//    answer larger than the client can take (512 bytes, or its EDNS size, at most 1232) is sent
//    truncated with TC set, so the client asks again over TCP.
//  - TCP (RFC 7766): two-byte length framing, several (pipelined) queries per connection, answers
//    in completion order, an idle timeout and a cap on connections and on queries per connection.
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import dnsPacket from 'dns-packet';
import type { DnsResolver } from './dns-resolver.js';
import { formatAddress, type Address } from '../wire/socks-address.js';
import type { Log } from '../log.js';

export interface RunningDns {
  port: number;
  close(): Promise<void>;
}

export interface DnsServerLimits {
  /** A TCP connection with no traffic for this long is closed (default 10 s). */
  tcpIdleTimeoutMs?: number;
  /** TCP connections at once; more are refused (default 128). */
  maxTcpConnections?: number;
  /** Queries being answered at once on one TCP connection; reading pauses beyond (default 16). */
  maxQueriesPerConnection?: number;
  /** UDP queries being answered at once; more are dropped and the client retries (default 1024). */
  maxUdpInFlight?: number;
}

const UDP_MIN_SIZE = 512;
const UDP_MAX_SIZE = 1232; // DNS Flag Day 2020: no fragmented UDP answers
const FLAG_TC = 0x0200;
const PORT_ATTEMPTS = 20;

/** Starts UDP and TCP listeners on the same address and port (port 0: one free for both). */
export async function startDnsServer(
  resolver: DnsResolver,
  listen: Address,
  log: Log,
  limits: DnsServerLimits = {},
): Promise<RunningDns> {
  if (listen.kind === 'domain') {
    throw new Error(`the DNS listen address must be an IP address, not "${listen.host}"`);
  }
  const idleMs = limits.tcpIdleTimeoutMs ?? 10_000;
  const maxPerConn = Math.max(1, limits.maxQueriesPerConnection ?? 16);
  const maxUdp = Math.max(1, limits.maxUdpInFlight ?? 1024);

  let udp: UdpSocket | undefined;
  let tcp: Server | undefined;
  let lastError: Error | undefined;
  for (let i = 0; i < (listen.port === 0 ? PORT_ATTEMPTS : 1) && !tcp; i++) {
    const u = createSocket({ type: listen.kind === 'ipv6' ? 'udp6' : 'udp4' });
    try {
      const port = await bindUdp(u, listen.host, listen.port);
      tcp = await listenTcp(listen.host, port, limits.maxTcpConnections ?? 128);
      udp = u;
    } catch (e) {
      lastError = e as Error;
      u.close();
      // With port 0 the UDP port may be taken for TCP by someone else: try another.
      if ((e as NodeJS.ErrnoException).code !== 'EADDRINUSE') break;
    }
  }
  if (!udp || !tcp) {
    const code = (lastError as NodeJS.ErrnoException | undefined)?.code;
    throw new Error(
      `cannot listen for DNS on ${formatAddress(listen)}: ${code ?? lastError?.message ?? 'unknown error'}`,
    );
  }
  const udpSock = udp;
  const tcpServer = tcp;
  const port = udpSock.address().port;
  let closed = false;

  // --- UDP -------------------------------------------------------------------------------------------
  let udpInFlight = 0;
  udpSock.on('error', (e) => log.warn(`DNS UDP listener: ${(e as NodeJS.ErrnoException).code ?? e.message}`));
  udpSock.on('message', (msg, rinfo) => {
    if (closed || msg.length < 12) return;
    if (udpInFlight >= maxUdp) return; // overloaded: drop, the client retries
    udpInFlight++;
    resolver
      .resolve(msg)
      .then((answer) => {
        if (!answer || closed) return;
        const out = fitUdp(msg, answer);
        if (!out) return;
        udpSock.send(out, rinfo.port, rinfo.address, () => undefined);
      })
      .catch(() => undefined)
      .finally(() => udpInFlight--);
  });

  // --- TCP -------------------------------------------------------------------------------------------
  const conns = new Set<Socket>();
  tcpServer.on('error', (e) =>
    log.warn(`DNS TCP listener: ${(e as NodeJS.ErrnoException).code ?? e.message}`),
  );
  tcpServer.on('connection', (sock) => {
    if (closed) return void sock.destroy();
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => undefined);
    sock.setNoDelay(true);
    sock.setTimeout(idleMs, () => sock.destroy());
    let buf: Buffer = Buffer.alloc(0);
    let inFlight = 0;
    let ended = false;
    const parse = (): void => {
      while (inFlight < maxPerConn && buf.length >= 2 && !sock.destroyed) {
        const len = buf.readUInt16BE(0);
        if (len < 12) return void sock.destroy(); // no DNS message is shorter than its header
        if (buf.length < 2 + len) break;
        const query = Buffer.from(buf.subarray(2, 2 + len));
        buf = buf.subarray(2 + len);
        inFlight++;
        resolver
          .resolve(query)
          .then((answer) => {
            if (!answer) return void sock.destroy(); // unreadable: framing is lost, drop the connection
            if (sock.destroyed || answer.length > 0xffff) return;
            const frame = Buffer.allocUnsafe(2 + answer.length);
            frame.writeUInt16BE(answer.length, 0);
            answer.copy(frame, 2);
            sock.write(frame);
          })
          .catch(() => undefined)
          .finally(() => {
            inFlight--;
            parse();
            if (inFlight < maxPerConn && !ended) sock.resume();
            if (ended && inFlight === 0 && buf.length < 2) sock.end();
          });
      }
      if (inFlight >= maxPerConn) sock.pause();
    };
    sock.on('data', (chunk: Buffer) => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      parse();
    });
    sock.on('end', () => {
      ended = true;
      if (inFlight === 0) sock.end();
    });
  });

  log.info(`DNS listening on ${formatAddress({ ...listen, port })} (UDP and TCP)`);
  return {
    port,
    close: async () => {
      if (closed) return;
      closed = true;
      for (const c of conns) c.destroy();
      await Promise.all([
        new Promise<void>((r) => tcpServer.close(() => r())),
        new Promise<void>((r) => {
          try {
            udpSock.close(() => r());
          } catch {
            r();
          }
        }),
      ]);
    },
  };
}

function bindUdp(sock: UdpSocket, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    sock.once('error', onError);
    sock.bind({ address: host, port, exclusive: true }, () => {
      sock.off('error', onError);
      resolve(sock.address().port);
    });
  });
}

function listenTcp(host: string, port: number, maxConnections: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    // allowHalfOpen: a client may send its queries and shut down its side before the answers.
    const server = createServer({ allowHalfOpen: true });
    server.maxConnections = maxConnections;
    server.once('error', reject);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

/**
 * The answer as it may go over UDP to this client: unchanged when it fits, otherwise the header and
 * question alone with TC set (RFC 2181 §9: never a partial RRset), so the client retries over TCP.
 */
function fitUdp(query: Buffer, answer: Buffer): Buffer | undefined {
  let limit = UDP_MIN_SIZE;
  try {
    const opt = dnsPacket.decode(query).additionals?.find((rr) => rr.type === 'OPT');
    if (opt && opt.type === 'OPT') limit = Math.min(UDP_MAX_SIZE, Math.max(UDP_MIN_SIZE, opt.udpPayloadSize));
  } catch {
    // the resolver answered FORMERR to it; that answer is small
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
