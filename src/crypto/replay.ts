// Replay filters: a salt pool for TCP streams and a sliding window for UDP packet IDs.

/**
 * Remembers salts for at least `ttlMs` (or the last `capacity` salts, whichever is fewer) in two
 * rotating generations, so memory stays bounded under a flood. Exact: no false positives (SIP022
 * forbids Bloom filters). Each salt keeps the time it was added, so a journal can carry the pool
 * across a restart (src/server/salt-journal.ts) and drop what has aged out.
 */
export class SaltPool {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  private rotatedAt: number;
  /** Called for every salt added (not for restored ones). */
  onAdd: ((salt: Uint8Array, at: number) => void) | undefined;

  constructor(
    readonly ttlMs = 60_000,
    private readonly capacity = 100_000,
    private readonly now: () => number = Date.now,
  ) {
    this.rotatedAt = now();
  }

  has(salt: Uint8Array): boolean {
    this.maybeRotate();
    const k = key(salt);
    return this.current.has(k) || this.previous.has(k);
  }

  /** Adds the salt; returns false if it was already there (a replay). */
  add(salt: Uint8Array): boolean {
    if (this.has(salt)) return false;
    const at = this.now();
    this.current.set(key(salt), at);
    this.onAdd?.(salt, at);
    return true;
  }

  /** Puts back salts from before a restart; those older than the TTL are skipped. Returns how many stayed. */
  restore(entries: Iterable<{ salt: Uint8Array; at: number }>): number {
    const cutoff = this.now() - this.ttlMs;
    let n = 0;
    for (const e of entries) {
      if (e.at < cutoff || this.current.size >= this.capacity) continue;
      this.current.set(key(e.salt), e.at);
      n++;
    }
    return n;
  }

  /** Every remembered salt with its time (for compacting a journal). */
  *entries(): IterableIterator<{ salt: Buffer; at: number }> {
    for (const gen of [this.previous, this.current]) {
      for (const [k, at] of gen) yield { salt: Buffer.from(k, 'latin1'), at };
    }
  }

  get size(): number {
    return this.current.size + this.previous.size;
  }

  private maybeRotate(): void {
    const t = this.now();
    if (t - this.rotatedAt >= this.ttlMs || this.current.size >= this.capacity) {
      this.previous = this.current;
      this.current = new Map();
      this.rotatedAt = t;
    }
  }
}

function key(salt: Uint8Array): string {
  return Buffer.from(salt.buffer, salt.byteOffset, salt.byteLength).toString('latin1');
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
