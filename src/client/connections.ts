// The client's live connections and UDP associations, for `pigeon client`'s status line and the local
// control API: destination, the rule that matched, the server used, and bytes each way.
export interface ConnectionInfo {
  id: number;
  network: 'tcp' | 'udp';
  inbound: string;
  /** host:port as the app asked for it (for UDP: the first destination of this route). */
  destination: string;
  /** The name the local DNS gave an IP destination, when known. */
  domain?: string;
  rule: string;
  /** DIRECT, or GROUP/SERVER. */
  via: string;
  up: number;
  down: number;
  started: number;
}

export class ConnectionTable {
  private readonly open = new Map<number, ConnectionInfo>();
  private nextId = 1;
  private totals = { tcp: 0, udp: 0, up: 0, down: 0 };

  add(info: Omit<ConnectionInfo, 'id' | 'up' | 'down' | 'started'>): ConnectionInfo {
    const c: ConnectionInfo = { ...info, id: this.nextId++, up: 0, down: 0, started: Date.now() };
    this.open.set(c.id, c);
    this.totals[c.network]++;
    return c;
  }

  /** Counts bytes on a live connection (and in the totals, which outlive it). */
  count(c: ConnectionInfo, direction: 'up' | 'down', bytes: number): void {
    c[direction] += bytes;
    this.totals[direction] += bytes;
  }

  remove(c: ConnectionInfo): void {
    this.open.delete(c.id);
  }

  list(): ConnectionInfo[] {
    return [...this.open.values()].map((c) => ({ ...c }));
  }

  /** Live counts and lifetime totals. */
  summary(): { tcp: number; udp: number; totalTcp: number; totalUdp: number; up: number; down: number } {
    let tcp = 0;
    let udp = 0;
    for (const c of this.open.values()) {
      if (c.network === 'tcp') tcp++;
      else udp++;
    }
    return {
      tcp,
      udp,
      totalTcp: this.totals.tcp,
      totalUdp: this.totals.udp,
      up: this.totals.up,
      down: this.totals.down,
    };
  }
}
