// A FIFO of byte chunks that hands out exact-length reads without concatenating everything that
// arrives: a read that lies inside one chunk is a zero-copy subarray; only reads that straddle chunks copy.

export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // offset into chunks[0]
  private total = 0;

  get length(): number {
    return this.total;
  }

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.total += chunk.length;
  }

  /** Removes and returns exactly n bytes; the caller must check `length` first. */
  read(n: number): Buffer {
    if (n > this.total) throw new RangeError(`ByteQueue.read(${n}) with ${this.total} queued`);
    this.total -= n;
    const first = this.chunks[0]!;
    const avail = first.length - this.head;
    if (n <= avail) {
      const out = first.subarray(this.head, this.head + n);
      this.head += n;
      if (this.head === first.length) {
        this.chunks.shift();
        this.head = 0;
      }
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const take = Math.min(c.length - this.head, n - filled);
      c.copy(out, filled, this.head, this.head + take);
      filled += take;
      this.head += take;
      if (this.head === c.length) {
        this.chunks.shift();
        this.head = 0;
      }
    }
    return out;
  }

  /** Removes and returns everything queued. */
  readAll(): Buffer {
    return this.read(this.total);
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.total = 0;
  }
}
