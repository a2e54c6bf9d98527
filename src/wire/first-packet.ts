// The first client→server TCP segment, as the censor sees it, and how Pigeon disguises it.
//
// The censor (Wu et al., USENIX Security 2023; ../shared/censor-model.md §1) looks at the payload of the
// first data segment only, and exempts it when any of these hold:
//   Ex1 average set bits per byte ≤ 3.4 or ≥ 4.6   Ex2 the first 6 bytes are printable (0x20..0x7e)
//   Ex3 more than half of the bytes are printable   Ex4 more than 20 contiguous printable bytes
//   Ex5 it starts like TLS ([\x16-\x17]\x03[\x00-\x09]) or HTTP ("GET ", "PUT ", "POST ", "HEAD ")
// Random-looking AEAD Shadowsocks fails all five almost always.
//
// Pigeon's disguise, set per key and carried in the URI as Outline's `prefix` parameter:
//   - a protocol-like printable prefix (an HTTP request line start) replaces the start of the salt, so
//     Ex2 and Ex5 hold whatever follows; the server needs nothing: the prefix is part of the salt;
//   - the client cuts its first write so that the first segment is short and mostly printable (Ex3),
//     of a random length (no fixed sizes), at a point where its popcount is ≤ 3.4 when one exists (Ex1).
// Apps that ignore the parameter send an ordinary salt, which the server accepts on the same port.

export interface FirstPacketVerdict {
  exempt: boolean;
  /** Which exemptions held (Ex1..Ex5 above). */
  rules: { ex1: boolean; ex2: boolean; ex3: boolean; ex4: boolean; ex5: boolean };
  popcountPerByte: number;
  printableFraction: number;
  longestPrintableRun: number;
}

const isPrintable = (b: number): boolean => b >= 0x20 && b <= 0x7e;

const POPCOUNT = new Uint8Array(256);
for (let i = 0; i < 256; i++) POPCOUNT[i] = (i & 1) + POPCOUNT[i >> 1]!;

export function popcount(bytes: Uint8Array): number {
  let n = 0;
  for (const b of bytes) n += POPCOUNT[b]!;
  return n;
}

const HTTP_STARTS = ['GET ', 'PUT ', 'POST ', 'HEAD '].map((s) => Buffer.from(s, 'latin1'));

/** The censor's fully-encrypted-traffic test on one segment's payload (empty payloads are not judged). */
export function judgeFirstPacket(payload: Uint8Array): FirstPacketVerdict {
  const n = payload.length;
  const bits = popcount(payload);
  const perByte = n ? bits / n : 0;
  let printable = 0;
  let run = 0;
  let longest = 0;
  for (const b of payload) {
    if (isPrintable(b)) {
      printable++;
      run++;
      if (run > longest) longest = run;
    } else run = 0;
  }
  const buf = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
  const rules = {
    ex1: n > 0 && (perByte <= 3.4 || perByte >= 4.6),
    ex2: n >= 6 && [...buf.subarray(0, 6)].every(isPrintable),
    ex3: n > 0 && printable / n > 0.5,
    ex4: longest > 20,
    ex5:
      (n >= 3 && (buf[0] === 0x16 || buf[0] === 0x17) && buf[1] === 0x03 && buf[2]! <= 0x09) ||
      HTTP_STARTS.some((h) => buf.subarray(0, h.length).equals(h)),
  };
  return {
    exempt: n === 0 || Object.values(rules).some(Boolean),
    rules,
    popcountPerByte: perByte,
    printableFraction: n ? printable / n : 0,
    longestPrintableRun: longest,
  };
}

/** At least this many bytes of every salt stay random (replay filters need unique salts). */
export const MIN_RANDOM_SALT_BYTES = 8;

const METHODS = ['GET', 'POST', 'HEAD'] as const;
// Path characters with at most 3 set bits, so the prefix pulls the segment's popcount down (Ex1).
const PATH_CHARS = 'abdhp01248ABCDEFHIJLPQRTX';

/**
 * A key's disguise prefix: "GET /", "POST /" or "HEAD /" and a few path characters, 6 to 8 bytes, from
 * `seed` (random bytes for a new key; a hash of the secret in quick mode, so restarts print the same
 * URI). Keeps at least MIN_RANDOM_SALT_BYTES of the salt random.
 */
export function disguisePrefix(seed: Uint8Array, saltSize: number): string {
  const s = (i: number): number => seed[i % Math.max(1, seed.length)] ?? 0;
  const method = METHODS[s(0) % METHODS.length]!;
  const head = `${method} /`;
  const max = Math.min(8, saltSize - MIN_RANDOM_SALT_BYTES);
  const want = 6 + (s(1) % 3);
  const len = Math.max(Math.min(want, max), Math.min(head.length + 1, max));
  let out = head;
  for (let i = 2; out.length < len; i++) out += PATH_CHARS[s(i) % PATH_CHARS.length];
  return out.slice(0, Math.max(len, 0));
}

/**
 * Where to cut a disguised connection's first write: the first segment is the prefix and then a random
 * number of bytes, fewer than the prefix (so most of the segment is printable: Ex2, Ex3, Ex5), preferring
 * cuts whose popcount per byte is ≤ 3.4 (Ex1). `rand` gives integers in [0, n). Returns the length of the
 * first piece, or `wire.length` when the write is too short to cut.
 */
export function firstSegmentLength(
  wire: Uint8Array,
  prefixLength: number,
  rand: (n: number) => number,
): number {
  if (prefixLength < 1 || wire.length <= prefixLength + 1) return wire.length;
  const maxExtra = Math.min(prefixLength - 1, wire.length - prefixLength - 1);
  const candidates: number[] = [];
  let bits = popcount(wire.subarray(0, prefixLength));
  for (let extra = 0; extra <= maxExtra; extra++) {
    if (extra > 0) bits += POPCOUNT[wire[prefixLength + extra - 1]!]!;
    const len = prefixLength + extra;
    if (bits / len <= 3.4) candidates.push(len);
  }
  if (candidates.length) return candidates[rand(candidates.length)]!;
  return prefixLength + rand(maxExtra + 1);
}
