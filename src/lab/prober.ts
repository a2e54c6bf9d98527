// The lab's censor, active half: the probe set published by Alice et al. (IMC 2020) and Outline's
// PROBES.md (../shared/censor-model.md §2), sent to a server, each probe's reaction recorded, and a verdict.
//
// Probes: identical replays of recorded first packets; replays with changed bytes (byte 0; bytes 0–7 and
// 62–63; byte 16; bytes 6 and 16); random payloads of lengths 7–9, 11–13, 15–17, 21–23, 32–34, 40–42,
// 48–50 and 221. The reaction: bytes sent back, how the server closed (FIN, RST, or still open at the
// prober's deadline) and when; then the prober half-closes and watches the answer to its own FIN.
// A server is indistinguishable when no probe got a byte back and every probe met the same reaction
// (same close class, close times within the timer's spread), whatever its length or kind.
//
// A server behind TLS with a cover website (Trojan) cannot pass that way: a web server answers junk
// and replayed handshakes. For it the same probes (plus three over TLS: a browser-like GET, junk
// after the handshake, silence after the handshake) go to an ordinary HTTPS server as well, and each
// probe's reaction class — what came back (nothing, a TLS alert, a TLS handshake, an HTTP status),
// how and when the connection ended — must match the baseline's (compareProbes).
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { randomBytes } from 'node:crypto';
import { Duplex } from 'node:stream';
import { browserLikeTlsOptions } from '../net/tls-client.js';
import { looksLikeTlsRecord, TLS_ALERT, TLS_HANDSHAKE } from '../wire/tls-client-hello.js';

export type ProbeKind = 'replay' | 'replay-changed' | 'random' | 'tls';
export type CloseClass = 'fin' | 'rst' | 'open' | 'refused' | 'unreachable';

export interface ProbeSpec {
  kind: ProbeKind;
  label: string;
  /** Sent on connect, or (kind 'tls') after a TLS handshake; an empty TLS payload sends nothing. */
  payload: Buffer;
}

export interface ProbeResult {
  kind: ProbeKind;
  label: string;
  length: number;
  /** Bytes the server sent back (before and after the prober's FIN); decrypted for 'tls' probes. */
  bytesBack: number;
  /** What came back, as a class: a TLS alert, a TLS handshake, an HTTP status, other data; unset for none. */
  back?: string;
  /** How the server ended the connection before the prober's deadline, or 'open'. */
  close: CloseClass;
  /** Milliseconds from sending the probe to the server's FIN/RST (when it closed first). */
  closeMs?: number;
  /** The answer to the prober's FIN (sent at the deadline when the connection was still open). */
  afterFin?: { close: CloseClass; ms?: number };
}

export interface ProbeVerdict {
  indistinguishable: boolean;
  /** Why not, one line each. */
  reasons: string[];
  /** Reaction class → number of probes ("open, then fin after our fin": 40). */
  reactions: Record<string, number>;
}

export interface BaselineComparison {
  /** The ordinary HTTPS server the same probes went to. */
  target: string;
  probes: ProbeResult[];
  reactions: Record<string, number>;
  /** Probes whose reaction class (and timing) matched the baseline's. */
  matched: number;
}

export interface ProbeReport extends ProbeVerdict {
  target: string;
  waitMs: number;
  probes: ProbeResult[];
  /** How the verdict was reached: one reaction for all probes, or probe by probe against a baseline. */
  method: 'uniform' | 'baseline';
  baseline?: BaselineComparison;
}

/** The published random-probe lengths: 7–9, 11–13, 15–17, 21–23, 32–34, 40–42, 48–50 and 221. */
export const RANDOM_PROBE_LENGTHS = [
  7, 8, 9, 11, 12, 13, 15, 16, 17, 21, 22, 23, 32, 33, 34, 40, 41, 42, 48, 49, 50, 221,
] as const;

/** The published byte changes of replays (indices into the recorded packet). */
export const REPLAY_CHANGES: { label: string; bytes: number[] }[] = [
  { label: 'byte 0', bytes: [0] },
  { label: 'bytes 0-7 and 62-63', bytes: [0, 1, 2, 3, 4, 5, 6, 7, 62, 63] },
  { label: 'byte 16', bytes: [16] },
  { label: 'bytes 6 and 16', bytes: [6, 16] },
];

/** The probe set: for each recorded first packet an identical and four changed replays, then random probes. */
export function publishedProbeSet(
  recorded: Buffer[],
  random: (n: number) => Buffer = randomBytes,
  /** What each recorded packet is, for the labels ("ClientHello"). */
  names: string[] = [],
): ProbeSpec[] {
  const out: ProbeSpec[] = [];
  recorded.forEach((r, i) => {
    const what = names[i] ? `${names[i]}, ` : '';
    out.push({ kind: 'replay', label: `replay #${i + 1} (${what}${r.length} B)`, payload: Buffer.from(r) });
    for (const c of REPLAY_CHANGES) {
      const b = Buffer.from(r);
      // A changed byte is XORed with a random non-zero value, as the GFW's probes differ in those bytes.
      for (const at of c.bytes) if (at < b.length) b[at] = b[at]! ^ (1 + (random(1)[0]! % 255));
      out.push({ kind: 'replay-changed', label: `replay #${i + 1}, ${c.label} changed`, payload: b });
    }
  });
  for (const n of RANDOM_PROBE_LENGTHS)
    out.push({ kind: 'random', label: `random ${n} B`, payload: random(n) });
  return out;
}

/**
 * Probes over TLS, for servers that speak it (a web server's everyday visitors): a browser-like GET,
 * 64 random bytes after the handshake (an unknown protocol, or a Trojan header with a wrong password),
 * and silence after the handshake.
 */
export function tlsProbeSet(host: string, random: (n: number) => Buffer = randomBytes): ProbeSpec[] {
  const get =
    `GET / HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) ` +
    `AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36\r\nAccept: text/html,*/*\r\n` +
    `Accept-Language: en-US,en;q=0.9\r\n\r\n`;
  return [
    { kind: 'tls', label: 'TLS, GET /', payload: Buffer.from(get) },
    { kind: 'tls', label: 'TLS, 64 random bytes', payload: random(64) },
    { kind: 'tls', label: 'TLS, nothing', payload: Buffer.alloc(0) },
  ];
}

/** A deterministic byte source over `pool` (so that two probe sets get the same random payloads). */
export function bytesFrom(pool: Buffer): (n: number) => Buffer {
  let at = 0;
  return (n) => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = pool[at++ % pool.length]!;
    return out;
  };
}

/** The class of what a server sent back, from its first bytes. */
export function backClass(head: Buffer, tls = false): string | undefined {
  if (head.length === 0) return undefined;
  const http = /^HTTP\/[0-9.]+ (\d{3})/.exec(head.subarray(0, 16).toString('latin1'));
  if (http) return `${tls ? 'over TLS, ' : ''}HTTP ${http[1]}`;
  if (!tls && looksLikeTlsRecord(head)) {
    if (head[0] === TLS_ALERT) return 'TLS alert';
    if (head[0] === TLS_HANDSHAKE) return 'TLS handshake';
    return 'TLS records';
  }
  return tls ? 'over TLS, data' : 'data';
}

export interface ProbeOptions {
  host: string;
  port: number;
  /** How long each probe waits for the server to react before sending its own FIN. */
  waitMs: number;
  /** How long to wait for the answer to the prober's FIN. */
  finWaitMs?: number;
  connectTimeoutMs?: number;
  /** Probes in flight at once (all by default: the wait is then paid once). */
  concurrency?: number;
}

const HEAD_BYTES = 64;

/** Sends one probe and records the server's reaction. */
export function sendProbe(o: ProbeOptions, spec: ProbeSpec): Promise<ProbeResult> {
  return spec.kind === 'tls' ? sendTlsProbe(o, spec) : sendRawProbe(o, spec);
}

function sendRawProbe(o: ProbeOptions, spec: ProbeSpec): Promise<ProbeResult> {
  const finWaitMs = o.finWaitMs ?? 2000;
  const connectTimeoutMs = o.connectTimeoutMs ?? 5000;
  return new Promise((resolve) => {
    const result: ProbeResult = {
      kind: spec.kind,
      label: spec.label,
      length: spec.payload.length,
      bytesBack: 0,
      close: 'open',
    };
    let sentAt = 0;
    let finAt = 0;
    let phase: 'connect' | 'wait' | 'fin' | 'done' = 'connect';
    const s: Socket = connect({ host: o.host, port: o.port, allowHalfOpen: true });
    let head = Buffer.alloc(0);
    const finish = (): void => {
      if (phase === 'done') return;
      phase = 'done';
      clearTimeout(timer);
      s.destroy();
      const back = backClass(head);
      if (back) result.back = back;
      resolve(result);
    };
    const ended = (how: CloseClass): void => {
      if (phase === 'wait') {
        result.close = how;
        result.closeMs = Date.now() - sentAt;
        finish();
      } else if (phase === 'fin') {
        result.afterFin = { close: how, ms: Date.now() - finAt };
        finish();
      } else if (phase === 'connect') {
        result.close = how === 'rst' ? 'refused' : 'unreachable';
        finish();
      }
    };
    let timer = setTimeout(() => ended('unreachable'), connectTimeoutMs);
    s.on('connect', () => {
      clearTimeout(timer);
      phase = 'wait';
      sentAt = Date.now();
      s.write(spec.payload);
      timer = setTimeout(() => {
        // Still open at the deadline: half-close and see how the server answers our FIN.
        phase = 'fin';
        finAt = Date.now();
        result.afterFin = { close: 'open' };
        s.end();
        timer = setTimeout(finish, finWaitMs);
      }, o.waitMs);
    });
    s.on('data', (d: Buffer) => {
      result.bytesBack += d.length;
      if (head.length < HEAD_BYTES) head = Buffer.concat([head, d]).subarray(0, HEAD_BYTES);
    });
    s.on('end', () => ended('fin'));
    s.on('error', (e: NodeJS.ErrnoException) =>
      ended(
        e.code === 'ECONNRESET' || e.code === 'ECONNREFUSED' || e.code === 'EPIPE' ? 'rst' : 'unreachable',
      ),
    );
  });
}

/** TLS options of the prober's TLS client: a browser's, without verification, HTTP/1.1 only. */
const proberTls = () => ({
  ...browserLikeTlsOptions(undefined, ['http/1.1']),
  rejectUnauthorized: false,
});

/** A probe over TLS: handshake, then the payload; the reaction is read from the decrypted stream. */
function sendTlsProbe(o: ProbeOptions, spec: ProbeSpec): Promise<ProbeResult> {
  const finWaitMs = o.finWaitMs ?? 2000;
  const connectTimeoutMs = o.connectTimeoutMs ?? 5000;
  return new Promise((resolve) => {
    const result: ProbeResult = {
      kind: spec.kind,
      label: spec.label,
      length: spec.payload.length,
      bytesBack: 0,
      close: 'open',
    };
    let sentAt = 0;
    let finAt = 0;
    let phase: 'connect' | 'wait' | 'fin' | 'done' = 'connect';
    let head = Buffer.alloc(0);
    const raw: Socket = connect({ host: o.host, port: o.port, allowHalfOpen: true });
    raw.on('error', () => undefined);
    const s: TLSSocket = tlsConnect({ ...proberTls(), socket: raw });
    const finish = (): void => {
      if (phase === 'done') return;
      phase = 'done';
      clearTimeout(timer);
      s.destroy();
      raw.destroy();
      const back = backClass(head, true);
      if (back) result.back = back;
      resolve(result);
    };
    const ended = (how: CloseClass): void => {
      if (phase === 'wait') {
        result.close = how;
        result.closeMs = Date.now() - sentAt;
        finish();
      } else if (phase === 'fin') {
        result.afterFin = { close: how, ms: Date.now() - finAt };
        finish();
      } else if (phase === 'connect') {
        result.close = how === 'rst' ? 'refused' : 'unreachable';
        finish();
      }
    };
    let timer = setTimeout(() => ended('unreachable'), connectTimeoutMs);
    s.on('secureConnect', () => {
      clearTimeout(timer);
      phase = 'wait';
      sentAt = Date.now();
      if (spec.payload.length) s.write(spec.payload);
      timer = setTimeout(() => {
        phase = 'fin';
        finAt = Date.now();
        result.afterFin = { close: 'open' };
        s.end(); // close_notify, then FIN
        timer = setTimeout(finish, finWaitMs);
      }, o.waitMs);
    });
    s.on('data', (d: Buffer) => {
      result.bytesBack += d.length;
      if (head.length < HEAD_BYTES) head = Buffer.concat([head, d]).subarray(0, HEAD_BYTES);
    });
    s.on('end', () => ended('fin'));
    s.on('error', (e: NodeJS.ErrnoException) =>
      ended(
        e.code === 'ECONNRESET' || e.code === 'ECONNREFUSED' || e.code === 'EPIPE' ? 'rst' : 'unreachable',
      ),
    );
  });
}

/**
 * The client side of a TLS connection as a browser-like client sends it, flight by flight (what it
 * wrote before each answer of the server): flight 1 is the ClientHello, flight 2 its Finished and
 * `request`. With `session`, the ClientHello resumes it (a pre_shared_key extension). For replays to a
 * baseline server: the same kind of first flights as a recorded tunnel connection, made with it.
 */
export function recordTlsFlights(
  host: string,
  port: number,
  request: Buffer,
  session?: Buffer,
  timeoutMs = 5000,
): Promise<{ flights: Buffer[]; session?: Buffer }> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host, port });
    const flights: Buffer[][] = [[]];
    let answered = false;
    let ticket: Buffer | undefined;
    const pipe = new Duplex({
      read: () => void sock.resume(),
      write(chunk: Buffer, _enc, cb) {
        if (answered) {
          flights.push([]);
          answered = false;
        }
        if (flights.length <= 4) flights[flights.length - 1]!.push(chunk);
        sock.write(chunk, cb);
      },
    });
    sock.on('data', (d: Buffer) => {
      answered = true;
      if (!pipe.push(d)) sock.pause();
    });
    sock.on('end', () => pipe.push(null));
    sock.on('error', (e) => pipe.destroy(e));
    // The tunnel client's TLS options (src/client/trojan-outbound.ts: an IP host, so no SNI).
    const t = tlsConnect({
      ...browserLikeTlsOptions(undefined),
      rejectUnauthorized: false,
      socket: pipe,
      ...(session ? { session } : {}),
    });
    const done = (e?: Error): void => {
      clearTimeout(timer);
      t.destroy();
      sock.destroy();
      if (e) reject(e);
      else resolve({ flights: flights.map((f) => Buffer.concat(f)), ...(ticket ? { session: ticket } : {}) });
    };
    const timer = setTimeout(() => done(new Error(`TLS to ${host}:${port}: timed out`)), timeoutMs);
    t.on('session', (s: Buffer) => (ticket = s));
    t.on('error', (e) => done(e));
    t.on('secureConnect', () => {
      t.write(request);
      // The server's tickets (TLS 1.3) follow its Finished; its answer to the request follows them.
      t.once('data', () => setTimeout(() => done(), 50));
    });
  });
}

/** Runs the probes (bounded concurrency) and returns the reactions in the order given. */
export async function runProbes(o: ProbeOptions, specs: ProbeSpec[]): Promise<ProbeResult[]> {
  const limit = Math.max(1, Math.min(o.concurrency ?? specs.length, 256));
  const out: ProbeResult[] = new Array(specs.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < specs.length) {
      const i = next++;
      out[i] = await sendProbe(o, specs[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, specs.length) }, worker));
  return out;
}

export const reactionOf = (r: ProbeResult): string =>
  (r.back ? `${r.back}, ` : '') +
  (r.close === 'open'
    ? `open at the deadline, then ${r.afterFin?.close === 'open' ? 'still open' : `${r.afterFin?.close}`} after our FIN`
    : `${r.close} before the deadline`);

const count = (results: ProbeResult[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const r of results) out[reactionOf(r)] = (out[reactionOf(r)] ?? 0) + 1;
  return out;
};

/** Close times are alike when within 15 % of the larger and 0.5 s (the timer's spread, jitter). */
const alike = (a: number | undefined, b: number | undefined): boolean =>
  a === undefined || b === undefined || Math.abs(a - b) <= 0.15 * Math.max(a, b) + 500;

/**
 * Probe by probe against a baseline server that got the same probes: indistinguishable when every
 * probe's reaction class (what came back, how and when the connection ended) is the baseline's.
 */
export function compareProbes(
  results: ProbeResult[],
  baseline: ProbeResult[],
): ProbeVerdict & { matched: number } {
  const reasons: string[] = [];
  if (results.length === 0) reasons.push('no probe was sent');
  if (results.length !== baseline.length)
    reasons.push(`${results.length} probes against ${baseline.length} to the baseline`);
  const unreachable = [...results, ...baseline].filter(
    (r) => r.close === 'refused' || r.close === 'unreachable',
  );
  if (unreachable.length)
    reasons.push(
      `${unreachable.length} probe(s) could not connect (${unreachable[0]!.close}): are both servers up?`,
    );
  const differ: string[] = [];
  let matched = 0;
  results.forEach((r, i) => {
    const b = baseline[i];
    if (!b) return;
    const same =
      reactionOf(r) === reactionOf(b) && alike(r.closeMs, b.closeMs) && alike(r.afterFin?.ms, b.afterFin?.ms);
    if (same) matched++;
    else {
      const ms = (x: ProbeResult): string =>
        x.closeMs !== undefined
          ? ` (${x.closeMs} ms)`
          : x.afterFin?.ms !== undefined
            ? ` (${x.afterFin.ms} ms)`
            : '';
      differ.push(`"${r.label}": ${reactionOf(r)}${ms(r)}, baseline: ${reactionOf(b)}${ms(b)}`);
    }
  });
  if (differ.length)
    reasons.push(
      `${differ.length} probe(s) met another reaction than at the baseline: ${differ.slice(0, 4).join('; ')}`,
    );
  return { indistinguishable: reasons.length === 0, reasons, reactions: count(results), matched };
}

/** Indistinguishable: no data back, one reaction class for all probes, close times within the spread. */
export function judgeProbes(results: ProbeResult[]): ProbeVerdict {
  const reasons: string[] = [];
  const reactions = count(results);
  if (results.length === 0) reasons.push('no probe was sent');
  const unreachable = results.filter((r) => r.close === 'refused' || r.close === 'unreachable');
  if (unreachable.length)
    reasons.push(
      `${unreachable.length} probe(s) could not connect (${unreachable[0]!.close}): is the server up?`,
    );
  const answered = results.filter((r) => r.bytesBack > 0);
  if (answered.length)
    reasons.push(
      `${answered.length} probe(s) got data back, e.g. "${answered[0]!.label}": ${answered[0]!.bytesBack} bytes`,
    );
  const kinds = Object.keys(reactions);
  if (kinds.length > 1) {
    const byClass = kinds.map((k) => {
      const lens = results.filter((r) => reactionOf(r) === k).map((r) => r.length);
      return `${k}: ${reactions[k]} (lengths ${Math.min(...lens)}–${Math.max(...lens)})`;
    });
    reasons.push(`reactions differ by probe: ${byClass.join('; ')}`);
  }
  // Servers that close on a timer: the times must not depend on the probe (jitter allowed).
  const timed = results.filter((r) => r.closeMs !== undefined).map((r) => r.closeMs!);
  if (timed.length > 1 && kinds.length === 1) {
    const sorted = [...timed].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const spread = sorted[sorted.length - 1]! - sorted[0]!;
    if (spread > 0.15 * median + 500)
      reasons.push(`close times vary from ${sorted[0]} to ${sorted[sorted.length - 1]} ms`);
  }
  return { indistinguishable: reasons.length === 0, reasons, reactions };
}

/** The whole active probe: the published set (with replays of `recorded`), the reactions, the verdict. */
export async function probeServer(o: ProbeOptions & { recorded?: Buffer[] }): Promise<ProbeReport> {
  const specs = publishedProbeSet(o.recorded ?? []);
  const probes = await runProbes(o, specs);
  return {
    target: hostPort(o.host, o.port),
    waitMs: o.waitMs,
    probes,
    method: 'uniform',
    ...judgeProbes(probes),
  };
}

const hostPort = (host: string, port: number): string => `${host.includes(':') ? `[${host}]` : host}:${port}`;

/** What a recorded tunnel flight was, so that a baseline twin of the same kind can be made. */
export interface RecordedTls {
  bytes: Buffer;
  /** ClientHello alone (1), or with the client's second flight: Finished and its first data (2). */
  flights: 1 | 2;
  /** The ClientHello resumes a session (pre_shared_key). */
  psk: boolean;
}

/**
 * A TLS server with a cover site, against an ordinary HTTPS server (`baseline`): the published set
 * (replays of `recorded` to the target; to the baseline, replays of the same kind of flights made with
 * it by the same TLS client), the TLS probes, and the same random payloads to both, sent at once; then
 * probe-by-probe comparison of the reaction classes.
 */
export async function probeAgainstBaseline(
  o: ProbeOptions & { recorded: RecordedTls[]; baseline: { host: string; port: number } },
): Promise<ProbeReport> {
  const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${o.baseline.host}\r\n\r\n`);
  const twins: Buffer[] = [];
  let session: Buffer | undefined;
  for (const r of o.recorded) {
    if (r.psk && !session)
      session = (await recordTlsFlights(o.baseline.host, o.baseline.port, request)).session;
    const t = await recordTlsFlights(o.baseline.host, o.baseline.port, request, r.psk ? session : undefined);
    if (r.psk) session = t.session ?? session;
    twins.push(Buffer.concat(t.flights.slice(0, r.flights)));
  }
  const names = o.recorded.map(
    (r) => `${r.psk ? 'resumed ' : ''}ClientHello${r.flights === 2 ? ' + Finished and data' : ''}`,
  );
  const pool = randomBytes(4096);
  const set = (recorded: Buffer[], host: string): ProbeSpec[] => {
    const random = bytesFrom(pool);
    return [...publishedProbeSet(recorded, random, names), ...tlsProbeSet(host, random)];
  };
  const [probes, base] = await Promise.all([
    runProbes(
      o,
      set(
        o.recorded.map((r) => r.bytes),
        o.host,
      ),
    ),
    runProbes({ ...o, ...o.baseline }, set(twins, o.baseline.host)),
  ]);
  const v = compareProbes(probes, base);
  return {
    target: hostPort(o.host, o.port),
    waitMs: o.waitMs,
    probes,
    method: 'baseline',
    indistinguishable: v.indistinguishable,
    reasons: v.reasons,
    reactions: v.reactions,
    baseline: {
      target: hostPort(o.baseline.host, o.baseline.port),
      probes: base,
      reactions: count(base),
      matched: v.matched,
    },
  };
}

/** A probe report as text: one line per probe, then the verdict. */
export function formatProbeReport(r: ProbeReport): string {
  const lines = [`Active probing of ${r.target} (${r.probes.length} probes, ${r.waitMs / 1000} s wait each)`];
  const w = Math.max(...r.probes.map((p) => p.label.length), 10);
  for (const p of r.probes) {
    const closed = p.closeMs !== undefined ? ` after ${p.closeMs} ms` : '';
    const fin = p.afterFin?.ms !== undefined ? ` (${p.afterFin.ms} ms)` : '';
    lines.push(
      `  ${p.label.padEnd(w)}  ${String(p.bytesBack).padStart(5)} B back  ${reactionOf(p)}${closed}${fin}`,
    );
  }
  const b = r.baseline;
  if (b) {
    lines.push(`Baseline: the same probes to ${b.target}, an ordinary HTTPS server`);
    for (const p of b.probes)
      lines.push(
        `  ${p.label.padEnd(w)}  ${String(p.bytesBack).padStart(5)} B back  ${reactionOf(p)}` +
          (p.closeMs !== undefined ? ` after ${p.closeMs} ms` : ''),
      );
  }
  lines.push(
    !r.indistinguishable
      ? `Verdict: DISTINGUISHABLE — ${r.reasons.join('; ')}`
      : b
        ? `Verdict: indistinguishable — all ${r.probes.length} probes met the baseline's reaction class`
        : `Verdict: indistinguishable — no data back and the same reaction to all ${r.probes.length} probes`,
  );
  return lines.join('\n') + '\n';
}
