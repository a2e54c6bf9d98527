// Replay filters: a salt pool for TCP streams and a sliding window for UDP packet IDs.

/**
 * Remembers salts for at least `ttlMs` (or the last `capacity` salts, whichever is fewer) in two
 * rotating generations, so memory stays bounded under a flood. Exact: no false positives (SIP022
 * forbids Bloom filters).
 */
export class SaltPool {
  private current = new Set<string>();
  private previous = new Set<string>();
  private rotatedAt: number;

  constructor(
    private readonly ttlMs = 60_000,
    private readonly capacity = 100_000,
    private readonly now: () => number = Date.now,
  ) {
    this.rotatedAt = now();
  }

  has(salt: Uint8Array): boolean {
    this.maybeRotate();
    const k = Buffer.from(salt.buffer, salt.byteOffset, salt.byteLength).toString('latin1');
    return this.current.has(k) || this.previous.has(k);
  }

  /** Adds the salt; returns false if it was already there (a replay). */
  add(salt: Uint8Array): boolean {
    if (this.has(salt)) return false;
    this.current.add(Buffer.from(salt.buffer, salt.byteOffset, salt.byteLength).toString('latin1'));
    return true;
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }

  private maybeRotate(): void {
    const t = this.now();
    if (t - this.rotatedAt >= this.ttlMs || this.current.size >= this.capacity) {
      this.previous = this.current;
      this.current = new Set();
      this.rotatedAt = t;
    }
  }
}

/** WireGuard-style sliding window over u64 packet IDs (RFC 6479 without the bitmap tricks). */
export class SlidingWindow {
  private highest = -1n;
  private bits = 0n; // bit i set = packet (highest - i) seen

  constructor(private readonly size = 2048n) {}

  /** True if `id` is new and inside the window; does not record it. */
  check(id: bigint): boolean {
    if (id > this.highest) return true;
    const diff = this.highest - id;
    if (diff >= this.size) return false;
    return ((this.bits >> diff) & 1n) === 0n;
  }

  /** Records `id` (call only after the packet validated). */
  accept(id: bigint): void {
    if (id > this.highest) {
      const shift = this.highest < 0n ? this.size : id - this.highest;
      this.bits = shift >= this.size ? 1n : ((this.bits << shift) | 1n) & ((1n << this.size) - 1n);
      this.highest = id;
    } else {
      this.bits |= 1n << (this.highest - id);
    }
  }
}
