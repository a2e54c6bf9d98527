// A Shadowsocks-encrypted TCP connection as a plain Duplex of plaintext: writes are sealed by a
// StreamWriter, reads are opened by a StreamReader. Serves both the server (request reader, response
// writer) and the client (request writer, response reader).
//
// Hot path (docs/performance.md): a socket's read buffers are handed to the reader, which opens the
// chunks in place (no allocation or copy per read); writes queued while the socket was busy are
// sealed together (_writev) into one buffer and one socket write; over a plain TCP socket that
// buffer comes from a small pool and goes back when the socket has written it.
import { Duplex } from 'node:stream';
import { Socket } from 'node:net';
import type { StreamReader, StreamWriter } from '../crypto/ss-stream.js';
import { WireError } from '../wire/errors.js';

/** A pooled block holds one 64 KiB socket read once sealed (≤ 65,706 bytes), or a batch as large. */
const BLOCK_SIZE = 66 * 1024;
/** Free blocks kept for reuse (process-wide): memory goes to active transfers, not idle connections. */
const POOL_MAX = 16;
const pool: Buffer[] = [];

function takeBlock(): Buffer {
  return pool.pop() ?? Buffer.allocUnsafeSlow(BLOCK_SIZE);
}

function giveBlock(b: Buffer): void {
  if (pool.length < POOL_MAX) pool.push(b);
}

/** Plain TCP sockets (not TLS, not other Duplexes) release a written buffer only in the write's callback. */
function isPlainSocket(s: Duplex): boolean {
  return s instanceof Socket && !(s as Socket & { encrypted?: boolean }).encrypted;
}

export class ShadowsocksStream extends Duplex {
  private readonly onData: (d: Buffer) => void;
  /** Read buffers belong to us alone (a net.Socket's, TLS included): open them in place. */
  private readonly ownsReads: boolean;
  /** Sealed output may come from the pool. */
  private readonly pooled: boolean;

  constructor(
    readonly socket: Socket,
    private readonly reader: StreamReader,
    private readonly writer: StreamWriter,
    /** Plaintext already decoded before this stream took over the socket. */
    initial: Buffer[] = [],
  ) {
    super({ allowHalfOpen: true });
    this.ownsReads = socket instanceof Socket;
    this.pooled = isPlainSocket(socket);
    this.onData = (d: Buffer): void => this.decode(d);
    for (const p of initial) this.push(p);
    socket.on('data', this.onData);
    const onEnd = (): void => {
      if (this.reader.atBoundary) this.push(null);
      else this.destroy(new WireError('truncated', 'stream ended inside a chunk'));
    };
    // A paused socket still emits 'end' when the FIN arrives with nothing left unread: the peer may
    // have finished before this stream took over (a short request followed by FIN).
    if (socket.readableEnded) onEnd();
    else socket.once('end', onEnd);
    socket.once('error', (e) => this.destroy(e));
    socket.once('close', () => {
      if (!this.destroyed && !(this.readableEnded && this.writableFinished)) this.destroy();
    });
    socket.resume();
  }

  private headerTimer: NodeJS.Timeout | undefined;

  /**
   * Request streams: send the header with the first payload, or alone after `ms` if the application
   * stays silent (server-first protocols). One write either way, so no fixed-size first packet.
   */
  sendHeaderAfter(ms: number): void {
    this.headerTimer = setTimeout(() => {
      if (!this.writer.hasStarted && !this.socket.destroyed)
        this.socket.write(this.writer.write(Buffer.alloc(0)));
    }, ms);
  }

  private decode(d: Buffer): void {
    let out: Buffer[];
    try {
      out = this.reader.push(d, this.ownsReads);
    } catch (e) {
      this.destroy(e as Error);
      return;
    }
    let more = true;
    for (const p of out) more = this.push(p);
    if (!more) this.socket.pause();
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    this.send([chunk], cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (e?: Error | null) => void): void {
    this.send(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  private send(list: Buffer[], cb: (e?: Error | null) => void): void {
    clearTimeout(this.headerTimer);
    let wire: Buffer;
    let block: Buffer | undefined;
    try {
      if (this.writer.hasStarted) {
        const size = this.writer.sealedSizeOf(list);
        block = this.pooled && size <= BLOCK_SIZE ? takeBlock() : undefined;
        const out = block ?? Buffer.allocUnsafe(size);
        wire = out.subarray(0, this.writer.writevInto(list, out, 0));
      } else {
        wire = this.writer.writev(list);
      }
    } catch (e) {
      cb(e as Error);
      return;
    }
    if (wire.length === 0) {
      if (block) giveBlock(block);
      cb();
      return;
    }
    // The socket's callback runs once the kernel has the bytes (or the write failed): the block is free.
    const ok = block ? this.socket.write(wire, () => giveBlock(block)) : this.socket.write(wire);
    if (ok) cb();
    else this.socket.once('drain', () => cb());
  }

  override _final(cb: (e?: Error | null) => void): void {
    clearTimeout(this.headerTimer);
    this.socket.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    clearTimeout(this.headerTimer);
    this.socket.removeListener('data', this.onData);
    this.socket.destroy();
    cb(err);
  }
}
