// Seeded fuzzing for the wire codecs' tests: a small PRNG (so every run tests the same inputs) and
// mutations of valid messages, as bytes or as text.

/** mulberry32: a small seeded PRNG, so that every run tests the same inputs. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Fuzzer {
  private readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32(seed);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }
  bytes(n: number): Buffer {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
  /** A few random edits: bit flips, interesting bytes, truncation, insertion, deletion, duplication. */
  mutate(input: Buffer, interesting: readonly number[]): Buffer {
    let b = Buffer.from(input);
    for (let k = 1 + this.int(3); k > 0; k--) {
      const at = this.int(b.length + 1);
      switch (this.int(6)) {
        case 0:
          if (b.length) b[at % b.length]! ^= 1 << this.int(8);
          break;
        case 1:
          if (b.length) b[at % b.length] = this.pick(interesting);
          break;
        case 2:
          b = b.subarray(0, at);
          break;
        case 3:
          b = Buffer.concat([b.subarray(0, at), this.bytes(1 + this.int(4)), b.subarray(at)]);
          break;
        case 4:
          b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + this.int(4))]);
          break;
        case 5:
          b = Buffer.concat([b.subarray(0, at), b.subarray(this.int(b.length + 1))]);
          break;
      }
    }
    return b;
  }

  /** A few edits of text: a character replaced by an interesting one, inserted, deleted, or a span cut. */
  mutateText(input: string, interesting: readonly string[]): string {
    let s = input;
    for (let k = 1 + this.int(3); k > 0; k--) {
      const at = this.int(s.length + 1);
      switch (this.int(5)) {
        case 0:
          s = s.slice(0, at) + this.pick(interesting) + s.slice(at + 1);
          break;
        case 1:
          s = s.slice(0, at) + this.pick(interesting) + s.slice(at);
          break;
        case 2:
          s = s.slice(0, at) + s.slice(at + 1 + this.int(4));
          break;
        case 3:
          s = s.slice(0, at) + s.slice(this.int(s.length + 1));
          break;
        case 4:
          s = s.slice(0, at);
          break;
      }
    }
    return s;
  }
}
