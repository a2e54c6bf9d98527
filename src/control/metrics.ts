// Prometheus metrics for the server, in a registry of their own. Labels carry key IDs, protocols,
// reasons and error kinds only: never client addresses or destinations.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { ServerEvents } from '../server/users.js';

type Protocol = 'tcp' | 'udp';

interface KeyTally {
  in: number;
  out: number;
  active: number;
}

export class PrometheusMetrics implements ServerEvents {
  readonly registry = new Registry();

  /**
   * Per-key numbers, kept as plain numbers and copied into the metrics when they are collected.
   * bytes() runs per relayed chunk, and a prom-client child counter (labels(…).inc) hashes and
   * validates its labels on every call; a Map lookup and an addition cost far less.
   */
  private readonly tallies = new Map<string, KeyTally>();

  private readonly active: Gauge<'protocol'>;
  private readonly opened: Counter<'protocol'>;
  private readonly authFailures: Counter<'reason'>;
  private readonly connErrors: Counter<'kind'>;

  constructor() {
    const registers = [this.registry];
    const tallies = this.tallies;
    // The per-key metrics are filled from the tallies when collected (the registry holds them).
    new Counter({
      name: 'pigeon_key_bytes_total',
      help: 'Bytes relayed per access key and direction (in: from the client, out: to the client)',
      labelNames: ['key', 'direction'] as const,
      registers,
      collect() {
        this.reset();
        for (const [key, t] of tallies) {
          if (t.in > 0) this.inc({ key, direction: 'in' }, t.in);
          if (t.out > 0) this.inc({ key, direction: 'out' }, t.out);
        }
      },
    });
    new Gauge({
      name: 'pigeon_key_active_connections',
      help: 'Open TCP connections and UDP associations per access key',
      labelNames: ['key'] as const,
      registers,
      collect() {
        this.reset();
        for (const [key, t] of tallies) this.set({ key }, t.active);
      },
    });
    this.active = new Gauge({
      name: 'pigeon_active_connections',
      help: 'Open TCP connections and UDP associations',
      labelNames: ['protocol'] as const,
      registers,
    });
    this.opened = new Counter({
      name: 'pigeon_connections_total',
      help: 'TCP connections and UDP associations accepted with a valid key',
      labelNames: ['protocol'] as const,
      registers,
    });
    this.authFailures = new Counter({
      name: 'pigeon_auth_failures_total',
      help: 'Connections or packets refused before a key was accepted, by reason',
      labelNames: ['reason'] as const,
      registers,
    });
    this.connErrors = new Counter({
      name: 'pigeon_connection_errors_total',
      help: 'Failures while relaying (e.g. the destination refused or timed out), by kind',
      labelNames: ['kind'] as const,
      registers,
    });
    // Zero-valued protocol series from the start, so that rate() and dashboards see them before any use.
    for (const protocol of ['tcp', 'udp'] as const) {
      this.active.set({ protocol }, 0);
      this.opened.inc({ protocol }, 0);
    }
    collectDefaultMetrics({ register: this.registry, prefix: 'pigeon_' });
  }

  private tally(keyId: string): KeyTally {
    let t = this.tallies.get(keyId);
    if (!t) this.tallies.set(keyId, (t = { in: 0, out: 0, active: 0 }));
    return t;
  }

  bytes(keyId: string, direction: 'in' | 'out', n: number): void {
    if (!(n > 0)) return; // a counter never goes down, and 0 changes nothing
    this.tally(keyId)[direction] += n;
  }

  connectionOpened(keyId: string, protocol: Protocol): void {
    this.active.inc({ protocol });
    this.opened.inc({ protocol });
    this.tally(keyId).active++;
  }

  connectionClosed(keyId: string, protocol: Protocol): void {
    this.active.dec({ protocol });
    this.tally(keyId).active--;
  }

  authFailure(reason: string): void {
    this.authFailures.inc({ reason });
  }

  connectionError(kind: string): void {
    this.connErrors.inc({ kind });
  }

  /** The Content-Type of text(): Prometheus text exposition format 0.0.4. */
  get contentType(): string {
    return this.registry.contentType;
  }

  /** The exposition text of every metric in this registry. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}
