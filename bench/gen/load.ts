// Load generators, in a process of their own (driven over IPC by bench/run.ts), so that their sockets
// and CPU are not the harness's: latency (fresh connection + 1-byte echo, one after another), connections
// per second (short HTTP requests through a SOCKS5 port, N at a time), idle connections (open N tunnelled
// connections, hold them, close them on request) and a UDP blaster with rate steps. Loopback only; every
// loop is bounded by a count and a deadline.
import { connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';

export type Job =
  | { kind: 'latency'; port: number; count: number; timeoutMs: number }
  | { kind: 'cps'; port: number; socksTo: number | null; concurrency: number; durationMs: number }
  | { kind: 'idleOpen'; port: number; count: number; parallel: number; timeoutMs: number }
  | { kind: 'idleClose' }
  | {
      kind: 'udp';
      port: number;
      rates: number[];
      stepMs: number;
      size: number;
      graceMs: number;
      refine: number;
    };

const HOST = '127.0.0.1';
const OP_TIMEOUT_MS = 5000;
const MAX_REQUESTS = 5_000_000;

function now(): number {
  return performance.now();
}

/** Reads from a socket on demand: `take(n)` resolves with the next n bytes, `until(s)` up to s. */
class Reader {
  private buf: Buffer = Buffer.alloc(0);
  private want: {
    need: (b: Buffer) => number;
    resolve: (b: Buffer) => void;
    reject: (e: Error) => void;
  } | null = null;
  private failed: Error | null = null;
  constructor(sock: Socket) {
    sock.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      if (this.buf.length > 65536) sock.destroy(new Error('too much data'));
      else this.pump();
    });
    const fail = (e: Error): void => {
      this.failed ??= e;
      this.want?.reject(this.failed);
      this.want = null;
    };
    sock.on('error', fail);
    sock.on('close', () => fail(new Error('closed')));
  }
  private pump(): void {
    if (!this.want) return;
    const n = this.want.need(this.buf);
    if (n < 0) return;
    const { resolve } = this.want;
    this.want = null;
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    resolve(out);
  }
  private wait(need: (b: Buffer) => number): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      this.want = { need, resolve, reject };
      this.pump();
    });
  }
  take(n: number): Promise<Buffer> {
    return this.wait((b) => (b.length >= n ? n : -1));
  }
  until(suffix: Buffer): Promise<Buffer> {
    return this.wait((b) => {
      const i = b.indexOf(suffix);
      return i < 0 ? -1 : i + suffix.length;
    });
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => void): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    t = setTimeout(() => {
      onTimeout();
      reject(new Error(`timeout after ${ms} ms`));
    }, ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(t));
}

function open(port: number): { sock: Socket; reader: Reader; connected: Promise<void> } {
  const sock = connect({ port, host: HOST, noDelay: true });
  const reader = new Reader(sock);
  const connected = new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  return { sock, reader, connected };
}

async function latency(j: Extract<Job, { kind: 'latency' }>) {
  const samplesUs: number[] = [];
  let errors = 0;
  const deadline = now() + j.timeoutMs;
  for (let i = 0; i < j.count && now() < deadline; i++) {
    const t0 = now();
    const c = open(j.port);
    try {
      await withTimeout(
        (async () => {
          await c.connected;
          c.sock.write(Buffer.from([0x61]));
          await c.reader.take(1);
        })(),
        OP_TIMEOUT_MS,
        () => c.sock.destroy(),
      );
      samplesUs.push((now() - t0) * 1000);
    } catch {
      errors++;
      if (errors > 20 && errors > samplesUs.length) break;
    } finally {
      c.sock.destroy();
    }
  }
  return { samplesUs, errors };
}

const HTTP_END = Buffer.from('\r\n\r\nok');

async function httpRequest(port: number, socksTo: number | null, httpPort: number): Promise<void> {
  const c = open(port);
  try {
    await withTimeout(
      (async () => {
        await c.connected;
        if (socksTo !== null) {
          c.sock.write(Buffer.from([5, 1, 0]));
          const hello = await c.reader.take(2);
          if (hello[0] !== 5 || hello[1] !== 0) throw new Error('socks: method refused');
          const req = Buffer.from([5, 1, 0, 1, 127, 0, 0, 1, 0, 0]);
          req.writeUInt16BE(socksTo, 8);
          c.sock.write(req);
          const rep = await c.reader.take(4);
          if (rep[1] !== 0) throw new Error(`socks: reply ${rep[1]}`);
          const atyp = rep[3];
          const rest = atyp === 1 ? 6 : atyp === 4 ? 18 : (await c.reader.take(1))[0]! + 2;
          await c.reader.take(rest);
        }
        c.sock.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${httpPort}\r\nConnection: close\r\n\r\n`);
        await c.reader.until(HTTP_END);
      })(),
      OP_TIMEOUT_MS,
      () => c.sock.destroy(),
    );
  } finally {
    c.sock.destroy();
  }
}

async function cps(j: Extract<Job, { kind: 'cps' }>) {
  let ok = 0;
  let errors = 0;
  let lastError = '';
  const t0 = now();
  const deadline = t0 + j.durationMs;
  const worker = async (): Promise<void> => {
    while (now() < deadline && ok + errors < MAX_REQUESTS) {
      try {
        // Without SOCKS (the "direct" baseline), `port` is the HTTP server itself.
        await httpRequest(j.port, j.socksTo, j.socksTo ?? j.port);
        ok++;
      } catch (e) {
        errors++;
        lastError = String(e);
        await new Promise((r) => setTimeout(r, 10));
      }
    }
  };
  await Promise.all(Array.from({ length: j.concurrency }, worker));
  return { ok, errors, elapsedMs: now() - t0, lastError };
}

let held: Socket[] = [];

async function idleOpen(j: Extract<Job, { kind: 'idleOpen' }>) {
  for (const s of held) s.destroy();
  held = [];
  let errors = 0;
  let next = 0;
  let lastError = '';
  const t0 = now();
  const deadline = t0 + j.timeoutMs;
  const worker = async (): Promise<void> => {
    while (next < j.count && now() < deadline && errors < j.count) {
      next++;
      const c = open(j.port);
      try {
        await withTimeout(
          (async () => {
            await c.connected;
            c.sock.write(Buffer.from([0x61]));
            await c.reader.take(1);
          })(),
          OP_TIMEOUT_MS * 2,
          () => c.sock.destroy(),
        );
        held.push(c.sock);
      } catch (e) {
        errors++;
        lastError = String(e);
        c.sock.destroy();
      }
    }
  };
  await Promise.all(Array.from({ length: j.parallel }, worker));
  // Count the ones still open (a tunnel may have dropped some meanwhile).
  const open_ = held.filter((s) => !s.destroyed && s.readyState === 'open').length;
  return { open: open_, errors, elapsedMs: now() - t0, lastError };
}

function idleClose() {
  const n = held.length;
  for (const s of held) s.destroy();
  held = [];
  return { closed: n };
}

interface UdpStep {
  rate: number;
  sent: number;
  received: number;
  sendSeconds: number;
  achievedPps: number;
  loss: number;
}

async function udpStep(
  port: number,
  rate: number,
  stepMs: number,
  size: number,
  graceMs: number,
  id: number,
) {
  const sock = createSocket({ type: 'udp4', recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, HOST, () => resolve());
  });
  sock.on('error', () => {});
  const total = Math.max(1, Math.round((rate * stepMs) / 1000));
  const seen = new Uint8Array(total);
  let received = 0;
  sock.on('message', (m) => {
    if (m.length < 8 || m.readUInt32BE(0) !== id) return;
    const seq = m.readUInt32BE(4);
    if (seq < total && !seen[seq]) {
      seen[seq] = 1;
      received++;
    }
  });
  let sent = 0;
  let inFlight = 0;
  let lastDone = 0;
  const t0 = now();
  const hardStop = t0 + stepMs * 3 + 1000;
  for (let tick = 0; tick < 1_000_000 && sent < total && now() < hardStop; tick++) {
    const due = Math.min(total, Math.ceil((rate * (now() - t0)) / 1000));
    // At most 4,096 unsent datagrams queued in the socket: beyond that the blaster itself is the limit.
    for (; sent < due && inFlight < 4096; sent++) {
      const b = Buffer.allocUnsafe(size);
      b.fill(0x55);
      b.writeUInt32BE(id, 0);
      b.writeUInt32BE(sent, 4);
      inFlight++;
      sock.send(b, port, HOST, () => {
        inFlight--;
        lastDone = now();
      });
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  for (let i = 0; i < 1000 && inFlight > 0; i++) await new Promise((r) => setTimeout(r, 1));
  const sendSeconds = Math.max(0.001, ((lastDone || now()) - t0) / 1000);
  await new Promise((r) => setTimeout(r, graceMs));
  sock.close();
  return { rate, sent, received, sendSeconds, achievedPps: sent / sendSeconds, loss: 1 - received / sent };
}

async function udp(j: Extract<Job, { kind: 'udp' }>) {
  const steps: UdpStep[] = [];
  let best: UdpStep | null = null;
  let failRate = 0;
  let id = 1;
  for (const rate of j.rates) {
    const s = await udpStep(j.port, rate, j.stepMs, j.size, j.graceMs, id++);
    steps.push(s);
    if (s.loss < 0.01) best = s;
    else {
      failRate = rate;
      break;
    }
  }
  // Refine between the last passing and the first failing rate.
  let lo = best?.rate ?? 0;
  let hi = failRate;
  for (let i = 0; i < j.refine && hi > 0 && hi - lo > Math.max(100, hi * 0.1); i++) {
    const rate = Math.round((lo + hi) / 2);
    const s = await udpStep(j.port, rate, j.stepMs, j.size, j.graceMs, id++);
    steps.push(s);
    if (s.loss < 0.01) {
      lo = rate;
      if (!best || s.achievedPps > best.achievedPps) best = s;
    } else hi = rate;
  }
  return { bestPps: best ? best.achievedPps : 0, bestRate: best?.rate ?? 0, steps };
}

async function run(job: Job): Promise<unknown> {
  switch (job.kind) {
    case 'latency':
      return latency(job);
    case 'cps':
      return cps(job);
    case 'idleOpen':
      return idleOpen(job);
    case 'idleClose':
      return idleClose();
    case 'udp':
      return udp(job);
  }
}

process.on('message', (m: { id: number; job: Job }) => {
  run(m.job).then(
    (result) => process.send?.({ id: m.id, ok: true, result }),
    (e: unknown) => process.send?.({ id: m.id, ok: false, error: String(e) }),
  );
});
process.on('disconnect', () => process.exit(0));
process.send?.({ ready: true });
