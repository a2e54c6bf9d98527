// A minimal SOCKS5 client (RFC 1928, no authentication) for tests: CONNECT and UDP ASSOCIATE.
// The byte framing is written out here on purpose, so that the test does not trust the code under test.
import { connect, isIPv4, isIPv6, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';

const HANDSHAKE_TIMEOUT_MS = 10_000;
const REPLY_NAMES = [
  'succeeded',
  'general SOCKS server failure',
  'connection not allowed by ruleset',
  'network unreachable',
  'host unreachable',
  'connection refused',
  'TTL expired',
  'command not supported',
  'address type not supported',
];

/** ATYP + address + port, as in SOCKS5 requests and UDP datagram headers. */
export function encodeAddress(host: string, port: number): Buffer {
  const portBuf = Buffer.alloc(2);
  portBuf.writeUInt16BE(port);
  if (isIPv4(host))
    return Buffer.concat([Buffer.from([0x01]), Buffer.from(host.split('.').map(Number)), portBuf]);
  if (isIPv6(host)) {
    // expand "::" and write 8 groups of 16 bits
    const [head = '', tail = ''] = host.split('::');
    const h = head ? head.split(':') : [];
    const tl = host.includes('::') ? (tail ? tail.split(':') : []) : [];
    const groups = [...h, ...Array<string>(8 - h.length - tl.length).fill('0'), ...tl];
    const addr = Buffer.alloc(16);
    groups.forEach((g, i) => addr.writeUInt16BE(parseInt(g, 16), i * 2));
    return Buffer.concat([Buffer.from([0x04]), addr, portBuf]);
  }
  const name = Buffer.from(host, 'utf8');
  if (name.length === 0 || name.length > 255) throw new Error(`bad SOCKS5 host name "${host}"`);
  return Buffer.concat([Buffer.from([0x03, name.length]), name, portBuf]);
}

/** Parses ATYP + address + port at `buf[offset]`; returns the address and the offset just after it. */
export function decodeAddress(buf: Buffer, offset: number): { host: string; port: number; end: number } {
  const atyp = buf[offset];
  let p = offset + 1;
  let host: string;
  if (atyp === 0x01) {
    if (buf.length < p + 6) throw new Error('SOCKS5 address: short IPv4');
    host = [...buf.subarray(p, p + 4)].join('.');
    p += 4;
  } else if (atyp === 0x04) {
    if (buf.length < p + 18) throw new Error('SOCKS5 address: short IPv6');
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(p + i * 2).toString(16));
    host = groups.join(':');
    p += 16;
  } else if (atyp === 0x03) {
    const len = buf[p] ?? 0;
    if (buf.length < p + 1 + len + 2) throw new Error('SOCKS5 address: short name');
    host = buf.subarray(p + 1, p + 1 + len).toString('utf8');
    p += 1 + len;
  } else {
    throw new Error(`SOCKS5 address: unknown ATYP ${atyp}`);
  }
  return { host, port: buf.readUInt16BE(p), end: p + 2 };
}

/** Buffers a socket's bytes so that a handshake can read exact lengths. */
class Reader {
  private buf = Buffer.alloc(0);
  private wake: (() => void) | null = null;
  private failure: Error | null = null;
  private readonly onData = (d: Buffer): void => {
    this.buf = Buffer.concat([this.buf, d]);
    this.wake?.();
  };
  private readonly onEnd = (): void =>
    this.fail(new Error('proxy closed the connection during the SOCKS5 handshake'));
  private readonly onError = (e: Error): void => this.fail(e);

  constructor(private readonly socket: Socket) {
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
  }

  private fail(e: Error): void {
    this.failure ??= e;
    this.wake?.();
  }

  async read(n: number, deadline: number): Promise<Buffer> {
    for (let i = 0; i < 1000 && this.buf.length < n; i++) {
      if (this.failure) throw this.failure;
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`SOCKS5 handshake timed out waiting for ${n} bytes (have ${this.buf.length})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
    if (this.buf.length < n) throw this.failure ?? new Error('SOCKS5 handshake: not enough bytes');
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }

  /** Reads a reply "VER REP RSV ATYP BND.ADDR BND.PORT" and returns the bound address. */
  async readReply(deadline: number): Promise<{ host: string; port: number }> {
    const head = await this.read(5, deadline); // VER REP RSV ATYP and the first address byte
    if (head[0] !== 0x05) throw new Error(`SOCKS5 reply: bad version ${head[0]}`);
    if (head[1] !== 0x00) {
      throw new Error(`SOCKS5 request refused: REP=${head[1]} (${REPLY_NAMES[head[1] ?? 0] ?? 'unknown'})`);
    }
    const atyp = head[3];
    const rest = atyp === 0x01 ? 3 + 2 : atyp === 0x04 ? 15 + 2 : atyp === 0x03 ? (head[4] ?? 0) + 2 : -1;
    if (rest < 0) throw new Error(`SOCKS5 reply: unknown ATYP ${atyp}`);
    const tail = await this.read(rest, deadline);
    const addr = decodeAddress(Buffer.concat([head.subarray(3), tail]), 0);
    return { host: addr.host, port: addr.port };
  }

  /** Stops reading; any bytes read past the handshake go back into the socket. */
  detach(): void {
    this.socket.off('data', this.onData);
    this.socket.off('end', this.onEnd);
    this.socket.off('error', this.onError);
    this.socket.pause();
    if (this.buf.length > 0) this.socket.unshift(this.buf);
  }
}

function connectProxy(proxyPort: number, deadline: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port: proxyPort, host: '127.0.0.1', allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect to SOCKS5 proxy 127.0.0.1:${proxyPort} timed out`));
    }, deadline - Date.now());
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`connect to SOCKS5 proxy 127.0.0.1:${proxyPort}: ${e.message}`));
    });
  });
}

async function greet(s: Socket, reader: Reader, deadline: number): Promise<void> {
  s.write(Buffer.from([0x05, 0x01, 0x00])); // VER, NMETHODS=1, METHOD=no authentication
  const choice = await reader.read(2, deadline);
  if (choice[0] !== 0x05 || choice[1] !== 0x00)
    throw new Error(`SOCKS5 method selection refused: ${choice.toString('hex')}`);
}

/**
 * Opens a TCP connection through the SOCKS5 proxy on 127.0.0.1:proxyPort to host:port.
 * The socket allows half-open (you may end() and keep reading); it is paused: call resume() (or pipe it) to read.
 */
export async function socks5Connect(proxyPort: number, host: string, port: number): Promise<Socket> {
  const deadline = Date.now() + HANDSHAKE_TIMEOUT_MS;
  const s = await connectProxy(proxyPort, deadline);
  const reader = new Reader(s);
  try {
    await greet(s, reader, deadline);
    s.write(Buffer.concat([Buffer.from([0x05, 0x01, 0x00]), encodeAddress(host, port)])); // CONNECT
    await reader.readReply(deadline);
  } catch (e) {
    s.destroy();
    throw new Error(`SOCKS5 CONNECT to ${host}:${port} via 127.0.0.1:${proxyPort}: ${(e as Error).message}`);
  }
  reader.detach();
  return s;
}

export interface Socks5Udp {
  /** The relay address the proxy told us to send datagrams to. */
  relay: { host: string; port: number };
  /** Sends one datagram to host:port through the relay. */
  send(host: string, port: number, payload: Buffer): void;
  /** Next datagram from the relay (FIFO), or throws after timeoutMs. */
  receive(timeoutMs: number): Promise<{ address: { host: string; port: number }; payload: Buffer }>;
  close(): Promise<void>;
}

/** UDP ASSOCIATE on the SOCKS5 proxy at 127.0.0.1:proxyPort. Keep it open until close(). */
export async function socks5UdpAssociate(proxyPort: number): Promise<Socks5Udp> {
  const deadline = Date.now() + HANDSHAKE_TIMEOUT_MS;
  const udp: UdpSocket = createSocket('udp4');
  await new Promise<void>((resolve) => udp.bind(0, '127.0.0.1', resolve));
  const control = await connectProxy(proxyPort, deadline).catch((e: Error) => {
    udp.close();
    throw e;
  });
  const reader = new Reader(control);
  let relay: { host: string; port: number };
  try {
    await greet(control, reader, deadline);
    // DST.ADDR/DST.PORT = where our datagrams will come from
    control.write(
      Buffer.concat([Buffer.from([0x05, 0x03, 0x00]), encodeAddress('127.0.0.1', udp.address().port)]),
    );
    relay = await reader.readReply(deadline);
  } catch (e) {
    control.destroy();
    udp.close();
    throw new Error(`SOCKS5 UDP ASSOCIATE via 127.0.0.1:${proxyPort}: ${(e as Error).message}`);
  }
  reader.detach();
  control.resume();
  control.on('error', () => undefined);
  // An unspecified relay address means "the proxy's own address".
  if (relay.host === '0.0.0.0' || relay.host === '0:0:0:0:0:0:0:0')
    relay = { host: '127.0.0.1', port: relay.port };
  if (relay.host !== '127.0.0.1' && relay.host !== '0:0:0:0:0:0:0:1') {
    control.destroy();
    udp.close();
    throw new Error(`SOCKS5 UDP relay is not on loopback: ${relay.host}:${relay.port}`);
  }

  const queue: { address: { host: string; port: number }; payload: Buffer }[] = [];
  const errors: string[] = [];
  let wake: (() => void) | null = null;
  udp.on('message', (msg, from) => {
    if (from.port !== relay.port) return; // only the relay may answer
    try {
      // RSV(2) FRAG(1) ATYP DST.ADDR DST.PORT DATA
      if (msg.length < 4 || msg[0] !== 0 || msg[1] !== 0)
        throw new Error(`bad RSV in ${msg.subarray(0, 4).toString('hex')}`);
      if (msg[2] !== 0) throw new Error(`fragmented datagram (FRAG=${msg[2]})`);
      const a = decodeAddress(msg, 3);
      queue.push({ address: { host: a.host, port: a.port }, payload: Buffer.from(msg.subarray(a.end)) });
    } catch (e) {
      errors.push((e as Error).message);
    }
    wake?.();
  });
  udp.on('error', (e) => errors.push(e.message));
  let closed = false;

  return {
    relay,
    send(host, port, payload) {
      const header = Buffer.concat([Buffer.from([0x00, 0x00, 0x00]), encodeAddress(host, port)]);
      udp.send(Buffer.concat([header, payload]), relay.port, relay.host);
    },
    async receive(timeoutMs) {
      const deadline = Date.now() + timeoutMs;
      for (let i = 0; i < 1000 && queue.length === 0; i++) {
        const left = deadline - Date.now();
        if (left <= 0) break;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = null;
      }
      const next = queue.shift();
      if (!next) {
        const extra = errors.length ? `; malformed datagrams: ${errors.join('; ')}` : '';
        throw new Error(`no SOCKS5 UDP datagram within ${timeoutMs} ms${extra}`);
      }
      return next;
    },
    async close() {
      if (closed) return;
      closed = true;
      control.destroy();
      await new Promise<void>((resolve) => udp.close(() => resolve()));
    },
  };
}
