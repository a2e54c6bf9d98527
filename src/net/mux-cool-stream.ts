// Mux.Cool sessions over one carrier stream (a WebSocket, for v2ray-plugin), each session a Duplex.
// The server role accepts the sessions the peer opens (as v2ray-plugin's server does with its
// default `mux=1`); the client role opens them (as its client does: one New frame per TCP connection,
// the target being whatever the plugin was asked to reach, which the server side ignores).
// Semantics follow v2ray-core common/mux: an End frame closes the session in both directions, so
// a session ended by the peer ends its readable side and refuses further writes; ending a session's
// writable side sends End. One carrier-wide backpressure: a session whose reader is full pauses the
// carrier (Mux.Cool has no per-session flow control; v2ray blocks the same way).
import { Duplex } from 'node:stream';
import { encodeMuxFrame, MuxFrameParser, type MuxFrame, type MuxTarget } from '../wire/mux-cool.js';

/** Data per frame; v2ray writes stream data in 8 KiB frames too. */
const FRAME_DATA = 8 * 1024;
/**
 * What a session buffers before its reader's slowness pauses the whole carrier: room for a request
 * that waits while the server dials its target, without stalling the carrier's other sessions.
 */
const SESSION_BUFFER = 256 * 1024;

export interface MuxCarrierOptions {
  role: 'client' | 'server';
  /** Server role: each session the peer opens, with the target it named (v2ray-plugin: unused). */
  onSession?: (session: MuxSession, target: MuxTarget) => void;
  /** Server role: sessions open at once on one carrier; more are refused with End (default 128). */
  maxSessions?: number;
  /**
   * Server role: the carrier is closed after this long without sessions (default 60 s; v2ray's client
   * drops a carrier after 16-32 s without sessions). The client role closes it when its last session ends.
   */
  idleTimeoutMs?: number;
}

export class MuxCarrier {
  private readonly sessions = new Map<number, MuxSession>();
  private readonly parser = new MuxFrameParser();
  private readonly blocked = new Set<MuxSession>();
  private drainWaiters: Array<(e?: Error) => void> = [];
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    readonly carrier: Duplex,
    private readonly opts: MuxCarrierOptions,
  ) {
    carrier.on('data', (d: Buffer) => this.onData(d));
    carrier.on('drain', () => this.flushWaiters());
    // The peer closed the carrier: nothing more can be sent on it either.
    carrier.once('end', () => carrier.destroy());
    carrier.on('error', () => undefined); // reported through 'close'
    carrier.once('close', () => this.shut());
    carrier.resume();
    this.armIdle();
  }

  /** Sessions open now. */
  get size(): number {
    return this.sessions.size;
  }

  /** Client role: a new session to `target`; its New frame goes out with its first bytes. */
  open(target: MuxTarget): MuxSession {
    if (this.closed) throw new Error('the mux carrier is closed');
    let id = this.nextId;
    for (let i = 0; i < 0x10000 && (id === 0 || this.sessions.has(id)); i++) id = (id + 1) & 0xffff;
    this.nextId = (id + 1) & 0xffff;
    const s = new MuxSession(this, id, target);
    this.sessions.set(id, s);
    clearTimeout(this.idleTimer);
    return s;
  }

  private onData(d: Buffer): void {
    let frames: MuxFrame[];
    try {
      frames = this.parser.push(d);
    } catch (e) {
      this.carrier.destroy(e as Error);
      return;
    }
    for (const f of frames) this.onFrame(f);
  }

  private onFrame(f: MuxFrame): void {
    const s = this.sessions.get(f.session);
    switch (f.status) {
      case 'new': {
        if (this.opts.role !== 'server') return; // as v2ray's client: ignored
        if (s || this.sessions.size >= (this.opts.maxSessions ?? 128) || !f.target) {
          if (!s) this.write(encodeMuxFrame({ session: f.session, status: 'end', error: true }));
          return;
        }
        const ns = new MuxSession(this, f.session, undefined);
        this.sessions.set(f.session, ns);
        clearTimeout(this.idleTimer);
        this.opts.onSession?.(ns, f.target);
        if (f.data?.length) ns.deliver(f.data);
        return;
      }
      case 'keep':
        if (!f.data) return;
        // Data for a session we no longer have: tell the peer to close it (as v2ray does).
        if (!s) this.write(encodeMuxFrame({ session: f.session, status: 'end' }));
        else if (f.data.length) s.deliver(f.data);
        return;
      case 'end':
        s?.peerEnded(f.error ?? false);
        return;
      case 'keep-alive':
        return;
    }
  }

  /** Writes frames to the carrier; `cb` runs once the carrier can take more. */
  write(frames: Buffer, cb?: (e?: Error) => void): void {
    if (this.closed) {
      cb?.(new Error('the mux carrier is closed'));
      return;
    }
    if (this.carrier.write(frames) || !cb) cb?.();
    else this.drainWaiters.push(cb);
  }

  private flushWaiters(e?: Error): void {
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const cb of w) cb(e);
  }

  block(s: MuxSession): void {
    this.blocked.add(s);
    this.carrier.pause();
  }

  unblock(s: MuxSession): void {
    if (this.blocked.delete(s) && this.blocked.size === 0 && !this.closed) this.carrier.resume();
  }

  /** A session is gone for good. */
  remove(s: MuxSession): void {
    if (this.sessions.get(s.id) !== s) return;
    this.sessions.delete(s.id);
    this.unblock(s);
    if (this.sessions.size > 0 || this.closed) return;
    if (this.opts.role === 'client') this.carrier.end();
    else this.armIdle();
  }

  private armIdle(): void {
    if (this.opts.role !== 'server') return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.sessions.size === 0) this.carrier.destroy();
    }, this.opts.idleTimeoutMs ?? 60_000);
    this.idleTimer.unref();
  }

  private shut(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.idleTimer);
    this.flushWaiters(new Error('the mux carrier closed'));
    for (const s of [...this.sessions.values()]) s.carrierClosed();
    this.sessions.clear();
  }
}

export class MuxSession extends Duplex {
  /** A New frame has gone out (always true on the server side, whose frames are all Keep). */
  private started: boolean;
  private endSent = false;
  private peerDone = false;

  constructor(
    private readonly mux: MuxCarrier,
    readonly id: number,
    private readonly target: MuxTarget | undefined,
  ) {
    super({ allowHalfOpen: true, readableHighWaterMark: SESSION_BUFFER });
    this.started = target === undefined;
  }

  /** Data from the peer. */
  deliver(d: Buffer): void {
    if (this.peerDone || this.destroyed) return;
    if (!this.push(d)) this.mux.block(this);
  }

  /** The peer sent End: the session is over in both directions (with `error`, abortively). */
  peerEnded(error: boolean): void {
    if (this.peerDone || this.destroyed) return;
    this.peerDone = true;
    if (error) this.destroy(new Error('the peer reset the mux session'));
    else this.push(null);
  }

  /** The carrier is gone: a session the peer had ended keeps its unread data; any other is destroyed. */
  carrierClosed(): void {
    if (this.destroyed) return;
    this.endSent = true;
    if (!this.peerDone) this.destroy(new Error('the mux carrier closed'));
  }

  override _read(): void {
    this.mux.unblock(this);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.peerDone || this.endSent) {
      cb(new Error('the mux session is closed'));
      return;
    }
    const frames: Buffer[] = [];
    for (let o = 0; o < chunk.length; o += FRAME_DATA) {
      const data = chunk.subarray(o, o + FRAME_DATA);
      const status = this.started ? 'keep' : 'new';
      frames.push(encodeMuxFrame({ session: this.id, status, target: this.target, data }));
      this.started = true;
    }
    if (frames.length === 0) cb();
    else this.mux.write(frames.length === 1 ? frames[0]! : Buffer.concat(frames), (e) => cb(e ?? null));
  }

  override _final(cb: (e?: Error | null) => void): void {
    this.sendEnd(false);
    cb();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    // Torn down before our side finished: an End with the error option, as v2ray's writer sends.
    this.sendEnd(!this.writableFinished && !this.peerDone);
    this.mux.remove(this);
    cb(err);
  }

  private sendEnd(error: boolean): void {
    if (this.endSent) return;
    this.endSent = true;
    // A client session that never sent its New frame has nothing to end.
    if (this.started) this.mux.write(encodeMuxFrame({ session: this.id, status: 'end', error }));
  }
}
