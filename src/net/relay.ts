// Two-way relay between duplex streams: backpressure in both directions (pause the reader while the
// writer's buffer is full), half-close (a FIN on one side ends the other's write side, the other
// direction carries on), one idle timer for the pair, and everything torn down on error or timeout.
import type { Duplex } from 'node:stream';

export interface RelayOptions {
  /** Close both sides after this long without data in either direction. */
  idleTimeoutMs: number;
  /** Called for every chunk forwarded: 'up' is a→b, 'down' is b→a. */
  onData?: (direction: 'up' | 'down', bytes: number) => void;
}

export interface RelayResult {
  up: number;
  down: number;
  /** Why the relay ended: both sides closed cleanly, idle timeout, or an error on one side. */
  reason: 'done' | 'idle' | 'error';
}

export function relay(a: Duplex, b: Duplex, opts: RelayOptions): Promise<RelayResult> {
  return new Promise((resolve) => {
    const result: RelayResult = { up: 0, down: 0, reason: 'done' };
    let last = Date.now();
    let closed = 0;
    let idleTimer: NodeJS.Timeout | undefined;
    let lingerTimer: NodeJS.Timeout | undefined;

    const teardown = (reason: RelayResult['reason']): void => {
      if (result.reason === 'done') result.reason = reason;
      a.destroy();
      b.destroy();
    };

    const pipe = (src: Duplex, dst: Duplex, dir: 'up' | 'down'): void => {
      src.on('data', (chunk: Buffer) => {
        last = Date.now();
        result[dir] += chunk.length;
        opts.onData?.(dir, chunk.length);
        if (!dst.write(chunk)) src.pause();
      });
      dst.on('drain', () => src.resume());
      const onEnd = (): void => {
        if (!dst.writableEnded && !dst.destroyed) dst.end();
      };
      // 'end' may already have fired while the source sat paused during the dial.
      if (src.readableEnded) onEnd();
      else src.once('end', onEnd);
    };
    pipe(a, b, 'up');
    pipe(b, a, 'down');

    const onError = (): void => teardown('error');
    a.on('error', onError);
    b.on('error', onError);

    const onClose = (side: Duplex, other: Duplex) => () => {
      closed++;
      if (closed === 2) {
        clearTimeout(idleTimer);
        clearTimeout(lingerTimer);
        resolve(result);
        return;
      }
      // A side that closed after a clean exchange of FINs leaves the other flushing its last writes;
      // one that closed abruptly takes the other down with it.
      if (side.readableEnded && side.writableFinished) {
        lingerTimer = setTimeout(() => other.destroy(), Math.min(opts.idleTimeoutMs, 10_000));
        lingerTimer.unref?.();
      } else {
        other.destroy();
      }
    };
    for (const [side, other] of [
      [a, b],
      [b, a],
    ] as const) {
      const handler = onClose(side, other);
      if (side.closed) queueMicrotask(handler);
      else side.once('close', handler);
    }

    const armIdle = (ms: number): void => {
      idleTimer = setTimeout(() => {
        const quiet = Date.now() - last;
        if (quiet >= opts.idleTimeoutMs) teardown('idle');
        else armIdle(opts.idleTimeoutMs - quiet);
      }, ms);
      idleTimer.unref?.();
    };
    armIdle(opts.idleTimeoutMs);
  });
}
