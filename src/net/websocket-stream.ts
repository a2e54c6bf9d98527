// An open WebSocket (from `ws`) as a Node Duplex of the bytes its data messages carry, the way
// v2ray's ws transport and shadowsocks' v2ray-plugin use it: every write is one binary message (cut
// into 64 KiB messages when larger), and every message received (binary or, as v2ray tolerates,
// text) is pushed as bytes.
// - Backpressure: writes wait while more than `writeHighWaterMark` bytes are queued on the socket;
//   a full read buffer pauses the WebSocket (and so its TCP socket).
// - Ending: WebSockets have no half-close. Ending the writable side sends a close frame (1000) once
//   what was written has left and `closeLingerMs` more have passed without the peer closing: v2ray
//   drops the data still in its pipeline when a close frame arrives (its own server waits 1 s after
//   the last data too). The peer answers the close at once, so what it had not sent by then is lost,
//   as with every WebSocket carrier. A clean close by the peer (1000, 1001 or none given) ends the
//   readable side; writing after that fails. An abnormal close (1006: the TCP connection died, 1002: bad frames,
//   1009: message too big, …) destroys the stream with an error.
// - destroy() sends a close frame; destroy(err) drops the TCP connection without one.
import { Duplex } from 'node:stream';
import { WebSocket, type RawData } from 'ws';

export interface WebSocketStreamOptions {
  /** Sends a ping this often, so that CDN and NAT idle timers leave a quiet connection alone; 0: off. */
  pingIntervalMs?: number;
  /** Bytes queued for the socket before a write waits for them to leave (default 64 KiB). */
  writeHighWaterMark?: number;
  /** After end(): how long to wait, once the queue is empty, before the close frame (default 1 s). */
  closeLingerMs?: number;
}

/** Writes larger than this go out as several messages (peers and CDNs limit message sizes). */
const MAX_MESSAGE = 64 * 1024;
/** The longest end() waits for queued data to leave before closing anyway. */
const MAX_FLUSH_WAIT_MS = 10_000;
const FLUSH_POLL_MS = 20;

const CLEAN_CLOSE = new Set([1000, 1001, 1005]);

function toBuffer(d: RawData): Buffer {
  if (Buffer.isBuffer(d)) return d;
  if (Array.isArray(d)) return Buffer.concat(d);
  return Buffer.from(d);
}

export class WebSocketStream extends Duplex {
  private readonly hwm: number;
  private readonly linger: number;
  private readonly pinger: NodeJS.Timeout | undefined;
  private closer: NodeJS.Timeout | undefined;

  constructor(
    readonly ws: WebSocket,
    opts: WebSocketStreamOptions = {},
  ) {
    super({ allowHalfOpen: true });
    if (ws.readyState !== WebSocket.OPEN) throw new Error('WebSocketStream needs an open WebSocket');
    this.hwm = opts.writeHighWaterMark ?? 64 * 1024;
    this.linger = opts.closeLingerMs ?? 1000;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: RawData) => {
      const b = toBuffer(data);
      if (b.length > 0 && !this.push(b)) ws.pause();
    });
    ws.on('error', (e: Error) => this.destroy(e));
    ws.once('close', (code: number) => {
      clearInterval(this.pinger);
      clearTimeout(this.closer);
      if (this.destroyed) return;
      if (CLEAN_CLOSE.has(code)) this.push(null);
      else this.destroy(new Error(`the WebSocket closed abnormally (code ${code})`));
    });
    const every = opts.pingIntervalMs ?? 0;
    if (every > 0) {
      this.pinger = setInterval(() => {
        if (ws.readyState === WebSocket.OPEN) ws.ping();
      }, every);
      this.pinger.unref();
    }
  }

  override _read(): void {
    if (this.ws.isPaused) this.ws.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (e?: Error | null) => void): void {
    if (this.ws.readyState !== WebSocket.OPEN) {
      cb(new Error('the WebSocket is closed'));
      return;
    }
    if (chunk.length === 0) {
      cb();
      return;
    }
    let sent = false;
    let waiting = false;
    const last = Math.ceil(chunk.length / MAX_MESSAGE) - 1;
    for (let i = 0; i <= last; i++) {
      const part = chunk.subarray(i * MAX_MESSAGE, (i + 1) * MAX_MESSAGE);
      this.ws.send(part, { binary: true, compress: false }, (err?: Error) => {
        if (err && i < last) this.destroy(err);
        if (i < last) return;
        sent = true;
        if (waiting) cb(err ?? null);
        else if (err) this.destroy(err);
      });
    }
    if (sent || this.ws.bufferedAmount <= this.hwm) cb();
    else waiting = true;
  }

  override _final(cb: (e?: Error | null) => void): void {
    cb();
    const ws = this.ws;
    const deadline = Date.now() + MAX_FLUSH_WAIT_MS;
    const close = (): void => {
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
    };
    const waitFlushed = (): void => {
      if (ws.readyState !== WebSocket.OPEN) return;
      if (ws.bufferedAmount > 0 && Date.now() < deadline)
        this.closer = setTimeout(waitFlushed, FLUSH_POLL_MS);
      else this.closer = setTimeout(close, this.linger);
    };
    waitFlushed();
  }

  override _destroy(err: Error | null, cb: (e?: Error | null) => void): void {
    clearInterval(this.pinger);
    clearTimeout(this.closer);
    const state = this.ws.readyState;
    if (err) this.ws.terminate();
    else if (state === WebSocket.OPEN) this.ws.close(1000);
    cb(err);
  }
}
