// Building blocks for UDP relays: a table of associations that expire when idle (with a size cap),
// and a full-cone outbound socket pair, so that any remote may answer an association.
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';

export interface IdleTableOptions {
  idleTimeoutMs: number;
  maxEntries: number;
}

/** A Map whose entries are closed after `idleTimeoutMs` without `touch`, oldest first past the cap. */
export class IdleTable<V> {
  private readonly entries = new Map<string, { value: V; last: number }>();
  private readonly sweeper: NodeJS.Timeout;

  constructor(
    private readonly opts: IdleTableOptions,
    private readonly onRemove: (value: V) => void,
  ) {
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, Math.min(opts.idleTimeoutMs / 4, 15_000)));
    this.sweeper.unref();
  }

  get size(): number {
    return this.entries.size;
  }

  /** The value for `key`, marking it active. */
  touch(key: string): V | undefined {
    const e = this.entries.get(key);
    if (e) e.last = Date.now();
    return e?.value;
  }

  set(key: string, value: V): void {
    this.delete(key);
    if (this.entries.size >= this.opts.maxEntries) this.evictOldest();
    this.entries.set(key, { value, last: Date.now() });
  }

  delete(key: string): void {
    const e = this.entries.get(key);
    if (!e) return;
    this.entries.delete(key);
    this.onRemove(e.value);
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const k of [...this.entries.keys()]) this.delete(k);
  }

  private evictOldest(): void {
    let oldestKey: string | undefined;
    let oldest = Infinity;
    for (const [k, e] of this.entries) {
      if (e.last < oldest) {
        oldest = e.last;
        oldestKey = k;
      }
    }
    if (oldestKey !== undefined) this.delete(oldestKey);
  }

  private sweep(): void {
    const cutoff = Date.now() - this.opts.idleTimeoutMs;
    for (const [k, e] of this.entries) if (e.last < cutoff) this.delete(k);
  }
}

/**
 * An association's own outbound sockets (IPv4 and IPv6, opened on first use). Packets from any remote
 * come back through `onMessage`: endpoint-independent mapping and filtering, which STUN needs.
 */
export class FullConeSocket {
  private v4: Socket | undefined;
  private v6: Socket | undefined;
  private closed = false;

  constructor(private readonly onMessage: (payload: Buffer, from: RemoteInfo) => void) {}

  send(payload: Buffer, ip: string, port: number): void {
    if (this.closed) return;
    this.socketFor(isIPv6(ip)).send(payload, port, ip);
  }

  close(): void {
    this.closed = true;
    this.v4?.close();
    this.v6?.close();
    this.v4 = this.v6 = undefined;
  }

  private socketFor(v6: boolean): Socket {
    const existing = v6 ? this.v6 : this.v4;
    if (existing) return existing;
    const s = createSocket(v6 ? 'udp6' : 'udp4');
    s.on('message', this.onMessage);
    s.on('error', () => undefined); // ICMP errors and the like: the association lives on
    if (v6) this.v6 = s;
    else this.v4 = s;
    return s;
  }
}
