// TCP through the kernel's own stack (the "system stack" of sing-box and Clash). The TUN has an
// address (LOCAL, e.g. 172.19.0.1) and a reserved peer (PEER, 172.19.0.2) on its little subnet, and
// Pigeon listens on LOCAL:L. A segment an app sends to REMOTE:rp from APP:ap is written back into the
// TUN as PEER:n → LOCAL:L, so the kernel delivers it to the listener; the listener's segments to
// PEER:n come out of the TUN and are written back as REMOTE:rp → APP:ap. Port n identifies the flow:
// the listener looks it up to learn where the app wanted to go. Only addresses, ports and checksums
// change (incrementally), so a segment costs a table lookup and a few dozen byte writes.
import {
  TCP_ACK,
  TCP_RST,
  TCP_SYN,
  addressOffsets,
  rewriteEndpoints,
  type IpPacket,
} from '../wire/ip-packet.js';

export interface NatFamily {
  /** The TUN's address, where the listener is. */
  local: Buffer;
  /** The reserved peer address that translated flows come from. */
  peer: Buffer;
}

export interface TcpNatOptions {
  v4?: NatFamily;
  v6?: NatFamily;
  /** Ports of PEER that name flows (default 10000..65535). */
  firstPort?: number;
  lastPort?: number;
  /** A flow whose connection never reached the listener is forgotten after this long (default 30 s). */
  unacceptedMs?: number;
  /** A flow is kept this long after its connection closed, for the last segments (default 10 s). */
  lingerMs?: number;
  now?: () => number;
}

export interface NatFlow {
  /** The PEER port that names the flow. */
  readonly port: number;
  readonly version: 4 | 6;
  /** The app's address and port. */
  readonly src: Buffer;
  readonly srcPort: number;
  /** Where the app wanted to go. */
  readonly dst: Buffer;
  readonly dstPort: number;
}

interface Entry extends NatFlow {
  key: string;
  /** The listener accepted the connection (its socket lives). */
  accepted: boolean;
  /** The listener's connection closed (at closedAt). */
  closed: boolean;
  closedAt: number;
  createdAt: number;
}

/** What to do with a segment after translate(). */
export type NatVerdict = 'write' | 'reset' | 'drop';

export class TcpNat {
  private readonly byPort: (Entry | undefined)[] = [];
  private readonly byKey = new Map<string, Entry>();
  private readonly first: number;
  private readonly last: number;
  private readonly unacceptedMs: number;
  private readonly lingerMs: number;
  private readonly now: () => number;
  private next: number;
  private listenPort4 = 0;
  private listenPort6 = 0;

  constructor(private readonly opts: TcpNatOptions) {
    this.first = opts.firstPort ?? 10_000;
    this.last = opts.lastPort ?? 65_535;
    this.unacceptedMs = opts.unacceptedMs ?? 30_000;
    this.lingerMs = opts.lingerMs ?? 10_000;
    this.now = opts.now ?? Date.now;
    this.next = this.first;
  }

  get size(): number {
    return this.byKey.size;
  }

  setListenerPort(version: 4 | 6, port: number): void {
    if (version === 4) this.listenPort4 = port;
    else this.listenPort6 = port;
  }

  /**
   * Translates a TCP segment read from the TUN, in place: from an app (to the listener) or from the
   * listener (back to the app). 'write': write it back into the TUN; 'reset': answer the app with a
   * RST (a segment of a flow we do not know, e.g. from before a restart); 'drop': ignore it.
   */
  translate(b: Buffer, p: IpPacket): NatVerdict {
    const fam = p.version === 4 ? this.opts.v4 : this.opts.v6;
    const listenPort = p.version === 4 ? this.listenPort4 : this.listenPort6;
    if (!fam || !listenPort) return 'drop';
    const o = addressOffsets(p.version);
    const dstIsPeer = b.compare(fam.peer, 0, o.size, o.dst, o.dst + o.size) === 0;
    if (dstIsPeer) {
      // From the listener to a flow's peer port: back to the app, as if from where it wanted to go.
      if (p.srcPort !== listenPort || b.compare(fam.local, 0, o.size, o.src, o.src + o.size) !== 0)
        return 'drop';
      const e = this.byPort[p.dstPort];
      if (!e || e.version !== p.version) return 'drop';
      rewriteEndpoints(b, p, e.dst, e.dstPort, e.src, e.srcPort);
      return 'write';
    }
    const key = b.toString('latin1', o.src, o.dst + o.size) + b.toString('latin1', p.l4, p.l4 + 4);
    let e = this.byKey.get(key);
    const syn = (p.tcpFlags & (TCP_SYN | TCP_ACK | TCP_RST)) === TCP_SYN;
    if (e && syn && e.closed) {
      // The app opens a new connection on the 4-tuple of one that has closed: a new flow.
      this.remove(e);
      e = undefined;
    }
    if (!e) {
      if (!syn) return p.tcpFlags & TCP_RST ? 'drop' : 'reset';
      const created = this.create(key, b, p, o);
      if (!created) return 'reset';
      e = created;
    }
    rewriteEndpoints(b, p, fam.peer, e.port, fam.local, listenPort);
    return 'write';
  }

  /** The flow the listener's connection from PEER:`port` belongs to; marks it accepted. */
  accept(port: number, version: 4 | 6): NatFlow | undefined {
    const e = this.byPort[port];
    if (!e || e.version !== version || e.closed) return undefined;
    e.accepted = true;
    return e;
  }

  /** The listener's connection from PEER:`port` closed: the flow lingers a while, then goes. */
  release(port: number): void {
    const e = this.byPort[port];
    if (e && !e.closed) {
      e.closed = true;
      e.closedAt = this.now();
    }
  }

  /** Forgets flows that never reached the listener, and closed flows past their linger time. */
  sweep(): void {
    const now = this.now();
    for (const e of this.byKey.values()) {
      if (
        e.closed ? now - e.closedAt >= this.lingerMs : !e.accepted && now - e.createdAt >= this.unacceptedMs
      ) {
        this.remove(e);
      }
    }
  }

  clear(): void {
    this.byKey.clear();
    this.byPort.length = 0;
  }

  private create(
    key: string,
    b: Buffer,
    p: IpPacket,
    o: { src: number; dst: number; size: number },
  ): Entry | undefined {
    const port = this.allocate();
    if (port === undefined) return undefined;
    const e: Entry = {
      key,
      port,
      version: p.version,
      src: Buffer.from(b.subarray(o.src, o.src + o.size)),
      srcPort: p.srcPort,
      dst: Buffer.from(b.subarray(o.dst, o.dst + o.size)),
      dstPort: p.dstPort,
      accepted: false,
      closed: false,
      closedAt: 0,
      createdAt: this.now(),
    };
    this.byKey.set(key, e);
    this.byPort[port] = e;
    return e;
  }

  /**
   * The next free port, round robin: a port comes back into use only after every other one has, long
   * after the kernel has forgotten its last connection (TIME_WAIT). When all are taken, the oldest
   * closed flow gives its port up; when none has closed, there is no port (the new flow is refused).
   */
  private allocate(): number | undefined {
    const span = this.last - this.first + 1;
    for (let i = 0; i < span; i++) {
      const port = this.next;
      this.next = port >= this.last ? this.first : port + 1;
      if (!this.byPort[port]) return port;
    }
    let oldest: Entry | undefined;
    for (const e of this.byKey.values())
      if (e.closed && (!oldest || e.closedAt < oldest.closedAt)) oldest = e;
    if (!oldest) return undefined;
    this.remove(oldest);
    return oldest.port;
  }

  private remove(e: Entry): void {
    if (this.byKey.get(e.key) === e) this.byKey.delete(e.key);
    if (this.byPort[e.port] === e) this.byPort[e.port] = undefined;
  }
}
