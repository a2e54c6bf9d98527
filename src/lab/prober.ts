// The lab's censor, active half: the probe set published by Alice et al. (IMC 2020) and Outline's
// PROBES.md (../shared/censor-model.md §2), sent to a server, each probe's reaction recorded, and a verdict.
//
// Probes: identical replays of recorded first packets; replays with changed bytes (byte 0; bytes 0–7 and
// 62–63; byte 16; bytes 6 and 16); random payloads of lengths 7–9, 11–13, 15–17, 21–23, 32–34, 40–42,
// 48–50 and 221. The reaction: bytes sent back, how the server closed (FIN, RST, or still open at the
// prober's deadline) and when; then the prober half-closes and watches the answer to its own FIN.
// A server is indistinguishable when no probe got a byte back and every probe met the same reaction
// (same close class, close times within the timer's spread), whatever its length or kind.
import { connect, type Socket } from 'node:net';
import { randomBytes } from 'node:crypto';

export type ProbeKind = 'replay' | 'replay-changed' | 'random';
export type CloseClass = 'fin' | 'rst' | 'open' | 'refused' | 'unreachable';

export interface ProbeSpec {
  kind: ProbeKind;
  label: string;
  payload: Buffer;
}

export interface ProbeResult {
  kind: ProbeKind;
  label: string;
  length: number;
  /** Bytes the server sent back (before and after the prober's FIN). */
  bytesBack: number;
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

export interface ProbeReport extends ProbeVerdict {
  target: string;
  waitMs: number;
  probes: ProbeResult[];
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
): ProbeSpec[] {
  const out: ProbeSpec[] = [];
  recorded.forEach((r, i) => {
    out.push({ kind: 'replay', label: `replay #${i + 1} (${r.length} B)`, payload: Buffer.from(r) });
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

/** Sends one probe and records the server's reaction. */
export function sendProbe(o: ProbeOptions, spec: ProbeSpec): Promise<ProbeResult> {
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
    const finish = (): void => {
      if (phase === 'done') return;
      phase = 'done';
      clearTimeout(timer);
      s.destroy();
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
    s.on('data', (d: Buffer) => (result.bytesBack += d.length));
    s.on('end', () => ended('fin'));
    s.on('error', (e: NodeJS.ErrnoException) =>
      ended(
        e.code === 'ECONNRESET' || e.code === 'ECONNREFUSED' || e.code === 'EPIPE' ? 'rst' : 'unreachable',
      ),
    );
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
  r.close === 'open'
    ? `open at the deadline, then ${r.afterFin?.close === 'open' ? 'still open' : `${r.afterFin?.close}`} after our FIN`
    : `${r.close} before the deadline`;

/** Indistinguishable: no data back, one reaction class for all probes, close times within the spread. */
export function judgeProbes(results: ProbeResult[]): ProbeVerdict {
  const reasons: string[] = [];
  const reactions: Record<string, number> = {};
  for (const r of results) reactions[reactionOf(r)] = (reactions[reactionOf(r)] ?? 0) + 1;
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
  const host = o.host.includes(':') ? `[${o.host}]` : o.host;
  return { target: `${host}:${o.port}`, waitMs: o.waitMs, probes, ...judgeProbes(probes) };
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
  lines.push(
    r.indistinguishable
      ? `Verdict: indistinguishable — no data back and the same reaction to all ${r.probes.length} probes`
      : `Verdict: DISTINGUISHABLE — ${r.reasons.join('; ')}`,
  );
  return lines.join('\n') + '\n';
}
