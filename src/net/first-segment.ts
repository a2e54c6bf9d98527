// The client half of the first-packet disguise (src/wire/first-packet.ts): a disguised connection's
// first write leaves as two TCP segments — a short, mostly printable one that starts with the key's
// prefix (the only segment the censor judges), then the rest — so the censor's fully-encrypted rule
// exempts it, and first-segment lengths vary from one connection to the next.
import { randomInt } from 'node:crypto';
import type { Socket } from 'node:net';
import { firstSegmentLength } from '../wire/first-packet.js';

type WriteFn = Socket['write'];

/**
 * Arms `socket` (connected, with Nagle off) so that its next write is cut after the first segment.
 * Each piece is its own write system call, so each leaves as its own segment.
 */
export function splitFirstWrite(
  socket: Socket,
  prefixLength: number,
  rand: (n: number) => number = (n) => randomInt(n),
): void {
  if (prefixLength <= 0) return;
  const original = socket.write;
  const patched = function (this: Socket, ...args: Parameters<WriteFn>): boolean {
    socket.write = original;
    const [chunk] = args;
    if (!Buffer.isBuffer(chunk)) return original.apply(socket, args);
    const cut = firstSegmentLength(chunk, prefixLength, rand);
    if (cut >= chunk.length) return original.apply(socket, args);
    // A corked socket would gather both pieces into one segment.
    while (socket.writableCorked > 0) socket.uncork();
    original.call(socket, chunk.subarray(0, cut));
    const rest = args.slice(1) as [];
    return original.call(socket, chunk.subarray(cut), ...rest);
  } as WriteFn;
  socket.write = patched;
}
