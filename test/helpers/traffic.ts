// Moving bytes through a proxy and checking that exactly the same bytes come back.
import { connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import assert from 'node:assert/strict';

/** Opens a plain TCP connection to 127.0.0.1:port (allowing half-open). */
export function tcpConnect(port: number, timeoutMs = 10_000): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`connect to 127.0.0.1:${port} timed out`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`connect to 127.0.0.1:${port}: ${e.message}`));
    });
  });
}

/**
 * Writes `data` through `s` and collects what comes back:
 * - `until: 'length'` (default): reads until `data.length` bytes came back, then closes;
 * - `until: 'half-close'`: ends our write side right after `data` (FIN) and reads until the peer's FIN;
 * - `until: 'peer-close'`: keeps our side open and reads until the peer closes first.
 * Returns everything read.
 */
export function echoThrough(
  s: Socket,
  data: Buffer,
  opts: { until?: 'length' | 'half-close' | 'peer-close'; timeoutMs?: number } = {},
): Promise<Buffer> {
  const until = opts.until ?? 'length';
  const timeoutMs = opts.timeoutMs ?? 15_000;
  return new Promise((resolve, reject) => {
    const got: Buffer[] = [];
    let n = 0;
    const finish = (err: Error | null): void => {
      clearTimeout(timer);
      s.removeAllListeners('data');
      s.destroy();
      if (err) reject(err);
      else resolve(Buffer.concat(got));
    };
    const timer = setTimeout(() => {
      const fin = until === 'length' ? '' : ' and no end of stream';
      finish(new Error(`TCP echo: got ${n} of ${data.length} bytes${fin} within ${timeoutMs} ms`));
    }, timeoutMs);
    s.on('data', (d: Buffer) => {
      got.push(d);
      n += d.length;
      if (until === 'length' && n >= data.length) finish(null);
    });
    s.on('end', () => {
      if (until !== 'length') finish(null);
      else finish(new Error(`TCP echo: connection closed after ${n} of ${data.length} bytes`));
    });
    s.on('error', (e) => finish(new Error(`TCP echo: ${e.message} after ${n} of ${data.length} bytes`)));
    s.resume(); // sockets from socks5Connect() come paused
    if (until === 'half-close') s.end(data);
    else s.write(data);
  });
}

/** Asserts two buffers are equal without printing megabytes on failure. */
export function assertSameBytes(actual: Buffer, expected: Buffer, what: string): void {
  if (actual.equals(expected)) return;
  let i = 0;
  while (i < actual.length && i < expected.length && actual[i] === expected[i]) i++;
  assert.fail(
    `${what}: got ${actual.length} bytes, expected ${expected.length}; first difference at offset ${i}`,
  );
}

/** Random payloads of the given sizes, each distinct (a 4-byte index prefix makes them unique). */
export function distinctPayloads(sizes: number[]): Buffer[] {
  return sizes.map((size, i) => {
    const b = randomBytes(Math.max(size, 4));
    b.writeUInt32BE(i);
    return b.subarray(0, Math.max(size, 4));
  });
}

/**
 * UDP round trips: sends each payload (one at a time, from one socket) and waits for the identical
 * datagram to come back. A missing reply is re-sent (bounded), since UDP relays may still be setting up.
 * Returns the replies, in order.
 */
export async function udpEchoRoundTrips(
  send: (payload: Buffer) => void,
  receive: (timeoutMs: number) => Promise<Buffer>,
  payloads: Buffer[],
  opts: { attempts?: number; replyTimeoutMs?: number } = {},
): Promise<Buffer[]> {
  const attempts = opts.attempts ?? 4;
  const replyTimeoutMs = opts.replyTimeoutMs ?? 2500;
  const out: Buffer[] = [];
  for (const [i, p] of payloads.entries()) {
    let reply: Buffer | null = null;
    const seen: string[] = [];
    for (let a = 0; a < attempts && !reply; a++) {
      send(p);
      const deadline = Date.now() + replyTimeoutMs;
      for (let r = 0; r < 20 && !reply && Date.now() < deadline; r++) {
        let d: Buffer;
        try {
          d = await receive(Math.max(1, deadline - Date.now()));
        } catch {
          break;
        }
        // replies to an earlier, re-sent datagram may arrive late; skip them, keep anything else
        if (d.equals(p)) reply = d;
        else if (!payloads.slice(0, i).some((q) => q.equals(d))) seen.push(`${d.length} bytes`);
      }
    }
    if (!reply) {
      const other = seen.length ? ` (got other datagrams: ${seen.join(', ')})` : '';
      throw new Error(`UDP datagram ${i} (${p.length} bytes) was not echoed after ${attempts} tries${other}`);
    }
    out.push(reply);
  }
  return out;
}

/** UDP round trips to a plain UDP port on 127.0.0.1 (a tunnel or forward), from one local socket. */
export async function udpEchoVia(port: number, payloads: Buffer[]): Promise<Buffer[]> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  const queue: Buffer[] = [];
  let wake: (() => void) | null = null;
  s.on('message', (m, from) => {
    if (from.port === port) queue.push(m);
    wake?.();
  });
  s.on('error', () => undefined);
  try {
    return await udpEchoRoundTrips(
      (p) => s.send(p, port, '127.0.0.1'),
      async (timeoutMs) => {
        const deadline = Date.now() + timeoutMs;
        for (let i = 0; i < 1000 && queue.length === 0 && Date.now() < deadline; i++) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = null;
        }
        const d = queue.shift();
        if (!d) throw new Error('timeout');
        return d;
      },
      payloads,
    );
  } finally {
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/**
 * UDP round trips through a SOCKS5 UDP association to an echo at host:port; each reply must come
 * from host:port (the SOCKS5 header) and carry the same bytes.
 */
export async function udpEchoViaSocks5(
  assoc: {
    send(host: string, port: number, p: Buffer): void;
    receive(ms: number): Promise<{ address: { host: string; port: number }; payload: Buffer }>;
  },
  host: string,
  port: number,
  payloads: Buffer[],
): Promise<Buffer[]> {
  return udpEchoRoundTrips(
    (p) => assoc.send(host, port, p),
    async (ms) => {
      const d = await assoc.receive(ms);
      assert.deepEqual(d.address, { host, port }, 'SOCKS5 UDP reply header names the echo as the source');
      return d.payload;
    },
    payloads,
  );
}
