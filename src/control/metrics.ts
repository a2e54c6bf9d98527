// Prometheus metrics for the server. Labels carry key IDs and reasons only: never client addresses
// or destinations.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { ServerEvents } from '../server/users.js';

export class PrometheusMetrics implements ServerEvents {
  readonly registry = new Registry();
  private readonly keyBytes = new Counter({
    name: 'pigeon_key_bytes_total',
    help: 'Bytes relayed per access key and direction (in: from the client, out: to the client)',
    labelNames: ['key', 'direction'] as const,
    registers: [this.registry],
  });
  private readonly active = new Gauge({
    name: 'pigeon_active_connections',
    help: 'Open TCP connections and UDP associations',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  private readonly keyActive = new Gauge({
    name: 'pigeon_key_active_connections',
    help: 'Open TCP connections and UDP associations per access key',
    labelNames: ['key'] as const,
    registers: [this.registry],
  });
  private readonly opened = new Counter({
    name: 'pigeon_connections_total',
    help: 'Connections and UDP associations opened',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  private readonly authFailures = new Counter({
    name: 'pigeon_auth_failures_total',
    help: 'Connections or packets refused before a key was accepted, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private readonly connErrors = new Counter({
    name: 'pigeon_connection_errors_total',
    help: 'Failures to reach a destination, by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  // bytes() runs per relayed chunk: keep the labelled children instead of looking them up each time.
  private readonly byteChildren = new Map<string, { inc(n: number): void }>();

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'pigeon_' });
  }

  bytes(keyId: string, direction: 'in' | 'out', n: number): void {
    const k = `${keyId}\u0000${direction}`;
    let c = this.byteChildren.get(k);
    if (!c) this.byteChildren.set(k, (c = this.keyBytes.labels(keyId, direction)));
    c.inc(n);
  }

  connectionOpened(keyId: string, protocol: 'tcp' | 'udp'): void {
    this.active.labels(protocol).inc();
    this.keyActive.labels(keyId).inc();
    this.opened.labels(protocol).inc();
  }

  connectionClosed(keyId: string, protocol: 'tcp' | 'udp'): void {
    this.active.labels(protocol).dec();
    this.keyActive.labels(keyId).dec();
  }

  authFailure(reason: string): void {
    this.authFailures.labels(reason).inc();
  }

  connectionError(kind: string): void {
    this.connErrors.labels(kind).inc();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }
}
