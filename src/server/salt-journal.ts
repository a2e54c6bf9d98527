// Carries a salt pool across restarts, so that a replay recorded before a restart is still refused
// after it (the firewall replays first packets from 0.3 s to days later; censor-model.md §2).
//
// The journal is an append-only file of records — u8 salt length, the salt, u32 seconds since the
// epoch — written in batches once a second and on close; on start it is read back into the pool
// (records older than the pool's TTL are dropped) and rewritten compactly when it has grown to twice
// what the pool holds. A torn last record (a crash mid-write) is ignored. At most a second of salts is
// lost to a crash.
import { closeSync, openSync, readFileSync, renameSync, writeSync, fsyncSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { SaltPool } from '../crypto/replay.js';
import type { Log } from '../log.js';

const FLUSH_MS = 1000;
const MIN_COMPACT_BYTES = 1 << 20;

export interface SaltJournal {
  /** Entries read back at start (after dropping the expired ones). */
  readonly restored: number;
  close(): void;
}

function parse(buf: Buffer): { salt: Buffer; at: number }[] {
  const out: { salt: Buffer; at: number }[] = [];
  let o = 0;
  while (o < buf.length) {
    const len = buf[o]!;
    if (len < 8 || len > 64 || o + 1 + len + 4 > buf.length) break; // torn or foreign tail
    out.push({ salt: buf.subarray(o + 1, o + 1 + len), at: buf.readUInt32BE(o + 1 + len) * 1000 });
    o += 1 + len + 4;
  }
  return out;
}

function record(salt: Uint8Array, at: number): Buffer {
  const b = Buffer.allocUnsafe(1 + salt.length + 4);
  b[0] = salt.length;
  b.set(salt, 1);
  b.writeUInt32BE(Math.floor(at / 1000), 1 + salt.length);
  return b;
}

/** Restores `pool` from `file` (if any) and journals its new salts there until close(). */
export function openSaltJournal(file: string, pool: SaltPool, log: Log): SaltJournal {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  let restored = 0;
  try {
    restored = pool.restore(parse(readFileSync(file)));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      log.warn({ err: (e as Error).message }, 'replay journal unreadable; starting with an empty salt pool');
    }
  }
  let pending: Buffer[] = [];
  let written = 0;

  const rewrite = (): void => {
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      let batch: Buffer[] = [];
      let size = 0;
      for (const e of pool.entries()) {
        const r = record(e.salt, e.at);
        batch.push(r);
        size += r.length;
        if (batch.length >= 4096) {
          writeSync(fd, Buffer.concat(batch));
          batch = [];
        }
      }
      if (batch.length) writeSync(fd, Buffer.concat(batch));
      fsyncSync(fd);
      written = size;
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  };
  rewrite(); // drops what expired while the server was down
  let fd = openSync(file, 'a', 0o600);

  const flush = (): void => {
    if (!pending.length) return;
    const data = Buffer.concat(pending);
    pending = [];
    try {
      writeSync(fd, data);
      written += data.length;
      if (written > Math.max(MIN_COMPACT_BYTES, 2 * pool.size * 37)) {
        closeSync(fd);
        rewrite();
        fd = openSync(file, 'a', 0o600);
      }
    } catch (e) {
      log.warn({ err: (e as Error).message }, 'cannot write the replay journal');
    }
  };
  pool.onAdd = (salt, at) => void pending.push(record(salt, at));
  const timer = setInterval(flush, FLUSH_MS);
  timer.unref();
  let closed = false;
  return {
    restored,
    close() {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      pool.onAdd = undefined;
      flush();
      closeSync(fd);
    },
  };
}
