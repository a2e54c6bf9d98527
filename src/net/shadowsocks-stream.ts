// A Shadowsocks-encrypted TCP connection as a plain Duplex of plaintext: writes are sealed by a
// StreamWriter, reads are opened by a StreamReader. Serves both the server (request reader, response
// writer) and the client (request writer, response reader).
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';
import type { StreamReader, StreamWriter } from '../crypto/ss-stream.js';
import { WireError } from '../wire/errors.js';

export class ShadowsocksStream extends Duplex {
  private readonly onData = (d: Buffer): void => this.decode(d);

  constructor(
    readonly socket: Socket,
    private readonly reader: StreamReader,
    private readonly writer: StreamWriter,
    /** Plaintext already decoded before this stream took over the socket. */
    initial: Buffer[] = [],
  ) {
    super({ allowHalfOpen: true });
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
      out = this.reader.push(d);
    } catch (e) {
      this.destroy(e as Error);
      return;
    }
    for (const p of out) {
      if (!this.push(p)) this.socket.pause();
    }
  }

  override _read(): void {
    this.socket.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    clearTimeout(this.headerTimer);
    let wire: Buffer;
    try {
      wire = this.writer.write(chunk);
    } catch (e) {
      cb(e as Error);
      return;
    }
    if (wire.length === 0 || this.socket.write(wire)) cb();
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
