// Salts and nonces for the hot paths. crypto.randomBytes costs about 3.5 µs a call whatever its size
// (one trip into OpenSSL's DRBG and a fresh Buffer); a UDP packet or a new connection needs 8–32
// bytes. This draws from the same CSPRNG 4 KiB at a time and hands each byte out once.
import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafeSlow(POOL_SIZE);
let used = POOL_SIZE;

/** `n` cryptographically random bytes in a new Buffer (n ≤ 4096). */
export function randomSalt(n: number): Buffer {
  if (n > POOL_SIZE) throw new RangeError(`randomSalt: at most ${POOL_SIZE} bytes`);
  if (used + n > POOL_SIZE) {
    randomFillSync(pool);
    used = 0;
  }
  const out = Buffer.allocUnsafe(n);
  pool.copy(out, 0, used, used + n);
  pool.fill(0, used, used + n); // handed out once, then gone from the pool
  used += n;
  return out;
}
